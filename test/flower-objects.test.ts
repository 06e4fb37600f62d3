// Flower object encoding against a golden made by flwr 1.42.0's own classes
// (test/fixtures/flower/make_objects_golden.py): inflating Python's objects gives the
// values Python put in, and deflating them again gives the same bytes and ids. Plus the
// .npy codec's round trips and the checks on malformed or tampered objects.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { PROJECT_ROOT } from './shared.js';
import { nodeSha256Hex } from '../src/flower/node-crypto.js';
import { ObjectCodec, ObjectFormatError, parseObject, verifyObject, withObjectHead } from '../src/flower/objects.js';
import { decodeNpy, encodeNpy } from '../src/flower/npy.js';
import { ArrayRecord, ConfigRecord, MetricRecord, RecordDict, float32Array, int, ndarray, type NdArray } from '../src/flower/records.js';

interface GoldenMessage { messageId: string; objects: Record<string, string>; tree: unknown }
const golden = JSON.parse(readFileSync(path.join(PROJECT_ROOT, 'test', 'fixtures', 'flower', 'objects-golden.json'), 'utf8')) as {
  flwr: string; chunkSize: number; message: GoldenMessage; errorMessage: GoldenMessage;
};
const objectsOf = (m: GoldenMessage) => new Map(Object.entries(m.objects).map(([id, b64]) => [id, new Uint8Array(Buffer.from(b64, 'base64'))]));
const codec = new ObjectCodec(nodeSha256Hex, golden.chunkSize);
const plain = (tree: { objectId: string; children: unknown[] }): unknown => ({ objectId: tree.objectId, children: tree.children.map((c) => plain(c as never)) });

test('the golden comes from flwr 1.42.0', () => {
  assert.equal(golden.flwr, '1.42.0');
});

test('a Python message inflates to the values Python put in', async () => {
  const objects = objectsOf(golden.message);
  for (const [id, bytes] of objects) await verifyObject(id, bytes, nodeSha256Hex);
  const message = codec.inflateMessage(golden.message.messageId, objects);
  assert.equal(message.metadata.runId, 1234567890123n);
  assert.equal(message.metadata.dstNodeId, 987654321987654321n);
  assert.equal(message.metadata.messageType, 'train');
  assert.equal(message.metadata.createdAt, 1767225600.125);
  const content = message.content!;
  assert.deepEqual([...content.records.keys()], ['arrays', 'config', 'metrics']);

  const arrays = content.arrayRecord('arrays');
  assert.deepEqual([...arrays.arrays.keys()], ['10', '2', 'ids', 'counts', 'zeros', 'scalar']);
  const a10 = arrays.get('10')!;
  assert.equal(a10.dtype, 'float32');
  assert.deepEqual(a10.shape, [2, 3]);
  assert.ok(Math.abs((a10.data as Float32Array)[6 - 1] - 5 / 7) < 1e-6);
  assert.deepEqual([...(arrays.get('2')!.data as Float64Array)], [1.5, -2.25]);
  assert.deepEqual([...(arrays.get('ids')!.data as BigInt64Array)], [-(2n ** 40n), 3n]);
  assert.deepEqual(arrays.get('counts')!.shape, [3, 1]);
  assert.deepEqual([...(arrays.get('counts')!.data as Int32Array)], [1, 2, 3]);
  assert.equal(arrays.get('zeros')!.data.length, 200);
  assert.deepEqual(arrays.get('scalar')!.shape, []);

  const config = content.configRecord('config');
  assert.equal(config.string('pfedprompt'), 'fit');
  assert.deepEqual(JSON.parse(config.string('run-config')), { rounds: 2, name: 'café' });
  assert.equal(config.get('server-round'), 1n);
  assert.equal(config.integer('server-round'), 1);
  assert.equal(config.get('lr'), 0.002);
  assert.equal(config.get('flag'), true);
  assert.deepEqual(config.get('blob'), new Uint8Array([0, 1, 255]));
  assert.equal(config.get('big'), 2n ** 63n + 5n);
  assert.deepEqual(config.get('ints'), [1n, -2n]);
  assert.deepEqual(config.get('bools'), [true, false]);
  assert.deepEqual(config.get('empty'), []);

  const metrics = content.metricRecord('metrics');
  assert.equal(metrics.get('num-examples'), 16n);
  assert.equal(metrics.get('train-loss'), 0.75);
  assert.deepEqual(metrics.get('accuracies'), [0.5, 0.25]);
  assert.deepEqual(metrics.get('steps'), [1n, 2n]);
});

test('deflating the inflated message reproduces Python\'s bytes, ids and tree', async () => {
  for (const m of [golden.message, golden.errorMessage]) {
    const objects = objectsOf(m);
    const message = codec.inflateMessage(m.messageId, objects);
    const deflated = await codec.deflateMessage(message);
    assert.equal(deflated.messageId, m.messageId);
    assert.deepEqual([...deflated.objects.keys()].sort(), [...objects.keys()].sort());
    for (const [id, bytes] of objects) assert.deepEqual(deflated.objects.get(id), bytes, `object ${id}`);
    assert.deepEqual(plain(deflated.tree), m.tree);
  }
});

test('a message built in TypeScript matches the same message built from Python values', async () => {
  // The same content as the golden, written by hand in TypeScript.
  const pyMessage = codec.inflateMessage(golden.message.messageId, objectsOf(golden.message));
  const py = pyMessage.content!.arrayRecord('arrays');
  const content = new RecordDict([
    ['arrays', new ArrayRecord([
      ['10', py.get('10')!],
      ['2', ndarray('float64', [2], Float64Array.from([1.5, -2.25]))],
      ['ids', ndarray('int64', [2], BigInt64Array.from([-(2n ** 40n), 3n]))],
      ['counts', ndarray('int32', [3, 1], Int32Array.from([1, 2, 3]))],
      ['zeros', float32Array(new Float32Array(200))],
      ['scalar', ndarray('float32', [], Float32Array.from([3.5]))],
    ])],
    ['config', new ConfigRecord([
      ['pfedprompt', 'fit'], ['run-config', '{"rounds": 2, "name": "caf\\u00e9"}'], // Python's json.dumps
      ['server-round', int(1)], ['lr', 0.002], ['flag', true], ['blob', new Uint8Array([0, 1, 255])], ['big', 2n ** 63n + 5n],
      ['ints', [1n, -2n]], ['floats', [0.5]], ['strs', ['a', 'b']], ['bools', [true, false]], ['empty', []],
    ])],
    ['metrics', new MetricRecord({ 'num-examples': 16n, 'train-loss': 0.75, accuracies: [0.5, 0.25], steps: [1n, 2n], none: [] })],
  ]);
  const deflated = await codec.deflateMessage({ metadata: pyMessage.metadata, content });
  assert.equal(deflated.messageId, golden.message.messageId);
});

test('.npy round trips for every supported dtype and shape, with NumPy\'s header layout', () => {
  const cases: NdArray[] = [
    float32Array([1, 2, 3]),
    ndarray('float32', [2, 0], new Float32Array(0)),
    ndarray('float64', [2, 2], Float64Array.from([1, 2, 3, 4])),
    ndarray('int64', [1], BigInt64Array.from([-5n])),
    ndarray('int32', [], Int32Array.from([7])),
    ndarray('int16', [2], Int16Array.from([-1, 1])),
    ndarray('int8', [2], Int8Array.from([-1, 1])),
    ndarray('uint8', [2], Uint8Array.from([0, 255])),
    ndarray('bool', [2], Uint8Array.from([1, 0])),
  ];
  for (const a of cases) {
    const bytes = encodeNpy(a);
    const headerEnd = 10 + new DataView(bytes.buffer).getUint16(8, true);
    assert.equal(headerEnd % 64, 0, 'data starts 64-byte aligned');
    const back = decodeNpy(bytes);
    assert.equal(back.dtype, a.dtype);
    assert.deepEqual(back.shape, a.shape);
    assert.deepEqual([...back.data as Iterable<unknown>], [...a.data as Iterable<unknown>]);
  }
  assert.throws(() => float32Array([1, 2], [3]), /needs 3 elements/);
});

test('malformed and tampered objects are refused', async () => {
  const good = withObjectHead('ArrayChunk', [], new Uint8Array([1, 2, 3]));
  assert.deepEqual(parseObject(good).body, new Uint8Array([1, 2, 3]));
  assert.throws(() => parseObject(withObjectHead('ArrayChunk', [], new Uint8Array(3)).subarray(0, 15)), ObjectFormatError);
  assert.throws(() => parseObject(new TextEncoder().encode('Evil  0\0')), /unknown object type/);
  assert.throws(() => parseObject(new TextEncoder().encode('Array xyz 0\0')), /invalid child id/);
  const id = await nodeSha256Hex(good);
  await verifyObject(id, good, nodeSha256Hex);
  const tampered = good.slice();
  tampered[tampered.length - 1] = 9;
  await assert.rejects(verifyObject(id, tampered, nodeSha256Hex), /arrived with hash/);
  // A missing child is named.
  const objects = objectsOf(golden.message);
  objects.delete([...objects.keys()][0]);
  assert.throws(() => codec.inflateMessage(golden.message.messageId, objects), /is missing/);
});
