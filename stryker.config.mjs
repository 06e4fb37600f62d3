// Mutation testing (npm run test:mutation; not part of npm test). Stryker
// copies the project to a sandbox, writes every mutant into the TypeScript
// at once behind a switch, and runs the command below once per mutant with
// the switch set in the environment. So the sandbox is compiled once (the
// first run) and each mutant only reruns the compiled tests that exercise
// methods, the federation and the prompt. A subset: add
// `-- --mutate 'src/methods/promptamp.ts'` (a full run takes hours on 2 cores).

import path from 'node:path';

// The sandbox sits in .stryker-tmp/, so the tests' default `../shared` would miss the fixtures.
const shared = process.env.PFEDPROMPT_SHARED ?? path.resolve('..', 'shared');
// Most mutants die in a fast test, so the suites run one after another and the
// first failing one ends the run: the model-free ones first (each method's
// halves on a fake runtime, FedOTP's transport, pFedMoAP's parts), the
// end-to-end run of every method (half the time) last. Node 20 runs a test whose
// name or whose parent's matches the pattern, so the exclusion must not match
// the root ('<root>').
const endToEnd = 'every method runs end to end';
const node = `PFEDPROMPT_SHARED='${shared}' node --test --test-concurrency=1 --test-reporter=dot`;
const stages = [
  ...['visual-memory', 'method-contracts', 'fedotp-transport', 'pfedmoap'].map((name) => `${node} dist/test/${name}.test.js`),
  `${node} --test-name-pattern='^(?!${endToEnd}|<root>$)' dist/test/methods.test.js`,
  ...['method-behaviour', 'engine', 'prompt', 'fedotp', 'pfedmoap-clients', 'protocol'].map((name) => `${node} dist/test/${name}.test.js`),
  `${node} --test-name-pattern='^${endToEnd}' dist/test/methods.test.js`,
  // The client half in a browser: decode, features from decoded images, the browser client against a Node node.
  ...['browser-decode', 'checkpoint-bytes', 'browser-client'].map((name) => `${node} dist/test/${name}.test.js`),
];
// Other modules name their own tests: PFEDPROMPT_STRYKER_TESTS=web-crypto,gateway-transport,serve
// npx stryker run --mutate 'src/flower/web-crypto.ts,src/flower/gateway-transport.ts,src/serve/*.ts'
const ownTests = process.env.PFEDPROMPT_STRYKER_TESTS?.split(',').map((name) => `${node} dist/test/${name.trim()}.test.js`);

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'command',
  commandRunner: {
    command: `{ [ -d dist ] || npx tsc -p . ; } && ${(ownTests ?? stages).join(' && ')}`,
  },
  // Methods' descriptions of themselves (`trains`, `uploads`, `staysOnClient`) are read by no code: not mutated.
  plugins: ['@stryker-mutator/*', './scripts/stryker-method-documentation.mjs'],
  ignorers: ['method-documentation'],
  mutate: ['src/methods/**/*.ts', 'src/federation/**/*.ts', 'src/prompt/**/*.ts'],
  // A stale dist/ copied into the sandbox would be tested instead of the mutated sources.
  ignorePatterns: ['dist', 'runs', 'scratch', '.venv', 'flower/build', 'reports'],
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  incrementalFile: 'reports/mutation/stryker-incremental.json',
  tempDirName: '.stryker-tmp',
  // The machine is shared: a slow test run is not an infinite loop.
  timeoutMS: 20000,
  concurrency: 2,
};
