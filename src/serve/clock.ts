// GET /clock: the server's time, so a browser whose clock is off can sign with the
// SuperLink's time (the SuperLink accepts a timestamp from 5 s ahead to 305 s behind its
// own). The page reads it with measureClockOffset (src/flower/server-clock.ts).
import type { ServerResponse } from 'node:http';

export function sendClock(res: ServerResponse, now: () => number = Date.now): void {
  const body = JSON.stringify({ serverTimeMs: now() });
  res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
