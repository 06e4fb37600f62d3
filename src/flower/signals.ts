// Ctrl-C and `kill` stop a node cleanly (DeactivateNode) instead of leaving the
// SuperLink to find it offline after two heartbeat intervals.
/** An AbortSignal that fires on the first SIGINT or SIGTERM; a second one exits at once. */
export function abortOnSignals(signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM']): AbortSignal {
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(128 + (signal === 'SIGINT' ? 2 : 15));
    controller.abort(new Error(`received ${signal}`));
  };
  for (const s of signals) process.on(s, onSignal);
  return controller.signal;
}
