// Mutation testing (npm run test:mutation; not part of npm test). Stryker
// copies the project to a sandbox, writes every mutant into the TypeScript
// at once behind a switch, and runs the command below once per mutant with
// the switch set in the environment. So the sandbox is compiled once (the
// first run) and each mutant only reruns the compiled tests that exercise
// methods, the federation and the prompt. A subset: add
// `-- --mutate 'src/methods/**/*.ts'` (a full run takes hours on 2 cores).

import path from 'node:path';

// The sandbox sits in .stryker-tmp/, so the tests' default `../shared` would miss the fixtures.
const shared = process.env.PFEDPROMPT_SHARED ?? path.resolve('..', 'shared');
const tests = ['visual-memory', 'method-behaviour', 'engine', 'prompt', 'methods', 'fedotp-transport', 'fedotp', 'pfedmoap', 'pfedmoap-clients'].map((name) => `dist/test/${name}.test.js`).join(' ');

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'command',
  commandRunner: {
    command: `{ [ -d dist ] || npx tsc -p . ; } && PFEDPROMPT_SHARED='${shared}' node --test --test-concurrency=1 --test-reporter=dot ${tests}`,
  },
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
