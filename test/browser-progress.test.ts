// What the browser node's page shows of the run's progress (src/browser/protocol.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { roundText } from '../src/browser/protocol.js';

test('the page counts rounds out of the cell\'s rounds, and the steps after the last as done (the server numbers them rounds + 1)', () => {
  assert.equal(roundText({}), undefined);
  assert.equal(roundText({ round: 2 }), '2'); // before the node has described its cell
  assert.equal(roundText({ round: 2, rounds: 3 }), '2 of 3');
  assert.equal(roundText({ round: 3, rounds: 3 }), '3 of 3');
  assert.equal(roundText({ round: 4, rounds: 3 }), '3 of 3, done');
});
