// The handler the echo ServerApp (test/flower-apps/echo) expects of a node. Portable (it
// imports no Node-only module), so a test page in a browser answers with the same code.
import { ArrayRecord, MetricRecord, RecordDict, type NdArray } from '../src/flower/records.js';
import type { IncomingMessage } from '../src/flower/node.js';

/** The handler under test: arrays × 2, metrics; `action: fail` throws. */
export async function doubling(message: IncomingMessage): Promise<RecordDict> {
  const config = message.content.configRecord('config');
  if (config.string('action') === 'fail') throw new Error('asked to fail');
  const arrays = message.content.arrayRecord('arrays');
  const doubled = new ArrayRecord();
  for (const [name, a] of arrays.arrays) {
    const data = a.data.slice() as Float32Array | Float64Array;
    for (let i = 0; i < data.length; i++) data[i] *= 2;
    doubled.arrays.set(name, { dtype: a.dtype, shape: a.shape, data } as NdArray);
  }
  return new RecordDict({
    arrays: doubled,
    metrics: new MetricRecord({ 'num-examples': 12n, 'train-loss': 0.5, accuracies: [0.25, 0.75], 'server-round': BigInt(config.integer('server-round')) }),
  });
}
