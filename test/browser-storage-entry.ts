// Loaded by test/browser-storage.test.ts's page (bundled): the node's storage on window.
import { NodeStorage, cachedFetch } from '../src/browser/storage.js';

Object.assign(globalThis, { NodeStorage, cachedFetch });
