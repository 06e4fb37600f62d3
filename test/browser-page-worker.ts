// The page test's Worker (bundled): the real node Worker with the real methods' texts, and
// no compute or server, which that test does not reach (test/browser-federation.test.ts does).
import { browserMethods } from '../src/browser/methods.js';
import { serveNodeWorker } from '../src/browser/node-worker.js';

const absent = (what: string) => (): never => { throw new Error(`the page test's Worker has no ${what}`); };
serveNodeWorker(self as unknown as Parameters<typeof serveNodeWorker>[0], {
  methods: browserMethods(),
  createCompute: absent('compute'),
  transport: absent('server'),
  clockOffset: absent('server'),
});
