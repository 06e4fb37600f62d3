// The SuperLink refuses a signed timestamp more than 5 s ahead of or 305 s behind its own
// clock, and a person's device clock can be off by more. The gateway (src/serve) that
// forwards a browser's Fleet calls shares the SuperLink's clock well enough (a server's
// clock is NTP-synced), so the node reads the gateway's time once and signs with
// `offsetClock(offset)` as FleetNode's `now`. Portable: fetch only.

/** Where the gateway answers `{"serverTimeMs": <ms since the epoch>}`. */
export const CLOCK_PATH = '/clock';

export interface ClockOptions {
  fetch?: typeof fetch;
  /** The local clock (ms since the epoch); tests pass a wrong one. */
  localNow?: () => number;
  /** Round trips to make; the shortest one's estimate is kept. */
  samples?: number;
}

/**
 * Milliseconds to add to the local clock to read the server's: the server's time minus the
 * local midpoint of the round trip that fetched it (the shortest of `samples` round trips,
 * so the error is at most half that trip).
 */
export async function measureClockOffset(baseUrl: string, options: ClockOptions = {}): Promise<number> {
  const fetchImpl = options.fetch ?? fetch;
  const localNow = options.localNow ?? Date.now;
  const url = `${baseUrl.replace(/\/$/, '')}${CLOCK_PATH}`;
  let best: { roundTrip: number; offset: number } | undefined;
  for (let i = 0; i < (options.samples ?? 3); i++) {
    const sent = localNow();
    const response = await fetchImpl(url, { cache: 'no-store' });
    const received = localNow();
    if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`);
    const body = (await response.json()) as { serverTimeMs?: unknown };
    if (typeof body.serverTimeMs !== 'number' || !Number.isFinite(body.serverTimeMs)) throw new Error(`GET ${url}: no serverTimeMs in ${JSON.stringify(body)}`);
    const sample = { roundTrip: received - sent, offset: body.serverTimeMs - (sent + received) / 2 };
    if (best === undefined || sample.roundTrip < best.roundTrip) best = sample;
  }
  return Math.round(best!.offset);
}

/** A clock `offsetMs` ahead of `localNow`: FleetNode's `now` for a device whose clock is off. */
export function offsetClock(offsetMs: number, localNow: () => number = Date.now): () => Date {
  return () => new Date(localNow() + offsetMs);
}
