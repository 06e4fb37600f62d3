// The browser node's Worker (bundled to worker.js next to the page): node-worker.ts's
// FleetNode session with the parts a browser has: the gateway transport to the page's own
// server, the server's clock, and the portable client (client.ts) on onnxruntime-web, served
// by the page's server at /ort/ (scripts/build-web.mjs), with the model's files from /model/
// kept in Cache Storage.

import * as ort from 'onnxruntime-web';
import { GatewayFleetTransport } from '../flower/gateway-transport.js';
import { measureClockOffset } from '../flower/server-clock.js';
import { createBrowserClient, type WebRuntime } from './client.js';
import { browserMethods } from './methods.js';
import { serveNodeWorker } from './node-worker.js';
import { sourceCompute } from './sources.js';
import { cachedFetch } from './storage.js';

/** Wasm threads: two where the page is cross-origin isolated (more rarely pay on a phone or laptop), else one. */
const THREADS = self.crossOriginIsolated ? Math.min(2, navigator.hardwareConcurrency || 1) : 1;

serveNodeWorker(self as unknown as Parameters<typeof serveNodeWorker>[0], {
  methods: browserMethods(),
  createCompute: async (source, { store, status }) => {
    const modelFiles = async (name: string): Promise<Uint8Array | undefined> => {
      try {
        return new Uint8Array(await cachedFetch(`/model/${name}`, { onDownload: (url) => status(`Downloading ${url} (kept in this browser afterwards)…`) }));
      } catch (error) {
        if (/: 404 /.test((error as Error).message)) return undefined;
        throw error;
      }
    };
    return sourceCompute(source, (data) => createBrowserClient({
      ...data, ort: ort as unknown as WebRuntime, threads: THREADS, modelFiles, modelName: 'world-clip', store, log: status,
      onFeatures: (done, total) => { if (done === total || done % 50 === 0) status(`Encoding your images: ${done} of ${total}`); },
    }), status);
  },
  transport: (origin) => new GatewayFleetTransport({ baseUrl: origin }),
  clockOffset: (origin) => measureClockOffset(origin),
});
