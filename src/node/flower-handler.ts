// A ClientNode behind Flower: a pfedprompt ServerApp's message (a RecordDict,
// flower/PROTOCOL.md) becomes a NodeRequest, and the NodeReply a RecordDict.
// Everything a node sends passes through `replyRecords`, which writes only
// the reply's arrays (ClientNode has checked them against the method's
// declared upload), the metrics listed below, and the describe facts:
// nothing else can reach the wire.

import type { IncomingMessage, MessageHandler } from '../flower/node.js';
import { ArrayRecord, ConfigRecord, MetricRecord, RecordDict, float32Array, int, type NdArray } from '../flower/records.js';
import type { Choice, Tensors } from '../federation/method.js';
import { NODE_ASKS, type NodeAsk, type NodeReply, type NodeRequest } from './client-core.js';

/** Flower message types each request may come as. */
const MESSAGE_TYPES: Readonly<Record<NodeAsk, string>> = { describe: 'query', fit: 'train', finish: 'train', evaluate: 'evaluate' };

/** Metrics a node may send, and whether each is an integer (Flower types ints and floats apart). */
export const NODE_METRICS: Readonly<Record<string, 'int' | 'float' | 'floats'>> = {
  'num-examples': 'int', client: 'int', steps: 'int', 'train-loss': 'float', accuracy: 'float', accuracies: 'floats',
};

/** Anything that answers NodeRequests: a ClientNode in Node, the browser client in a page's Worker. */
export interface RequestHandler {
  handle(request: NodeRequest): Promise<NodeReply>;
}

export function flowerHandler(node: RequestHandler): MessageHandler {
  return async (message) => replyRecords(await node.handle(nodeRequest(message)));
}

/** The request a ServerApp's message carries; anything malformed is an error naming it. */
export function nodeRequest(message: IncomingMessage): NodeRequest {
  const config = message.content.configRecord('config');
  const ask = config.string('pfedprompt') as NodeAsk;
  if (!NODE_ASKS.includes(ask)) throw new Error(`config "pfedprompt" is "${ask}": a pfedprompt node answers ${NODE_ASKS.join(', ')}`);
  if (MESSAGE_TYPES[ask] !== message.messageType) throw new Error(`"${ask}" came as a ${message.messageType} message, expected ${MESSAGE_TYPES[ask]}`);
  const cell = parseJson(config.string('cell'), 'cell') as NodeRequest['cell'];
  const optional = (key: string): string | undefined => (config.get(key) === undefined ? undefined : config.string(key));
  const split = optional('split');
  if (split !== undefined && split !== 'test' && split !== 'val') throw new Error(`config "split" is "${split}", expected test or val`);
  const choices = optional('memory-choices');
  const choice = optional('memory-choice');
  return {
    runId: String(message.runId),
    ask,
    runConfig: config.string('run-config'),
    cell,
    ...(config.get('server-round') !== undefined ? { round: config.integer('server-round') } : {}),
    arrays: message.content.get('arrays') ? tensorsOf(message.content.arrayRecord('arrays')) : {},
    ...(split ? { split } : {}),
    ...(choices ? { choices: parseJson(choices, 'memory-choices') as Choice[] } : {}),
    ...(choice ? { choice: parseJson(choice, 'memory-choice') as Choice } : {}),
  };
}

/** Float32 arrays by name, flattened; any other dtype is refused. */
function tensorsOf(record: ArrayRecord): Tensors {
  const out: Record<string, Float32Array> = {};
  for (const [name, array] of record.arrays) {
    if (array.dtype !== 'float32') throw new Error(`array "${name}" is ${array.dtype}, expected float32`);
    out[name] = array.data as Float32Array;
  }
  return out;
}

/** The RecordDict a node sends: declared arrays, listed metrics, facts. */
export function replyRecords(reply: NodeReply): RecordDict {
  const records = new Map<string, ArrayRecord | MetricRecord | ConfigRecord>();
  if (reply.arrays) records.set('arrays', new ArrayRecord(Object.entries(reply.arrays).map(([name, t]): [string, NdArray] => [name, float32Array(t)])));
  if (reply.metrics) {
    const metrics = new MetricRecord();
    for (const [key, value] of Object.entries(reply.metrics)) {
      const kind = NODE_METRICS[key];
      if (!kind) throw new Error(`metric "${key}" is not one a node sends (${Object.keys(NODE_METRICS).join(', ')})`);
      if (kind === 'floats') metrics.values.set(key, Array.from(value as readonly number[], Number));
      else if (typeof value !== 'number') throw new Error(`metric "${key}" must be a number`);
      else metrics.values.set(key, kind === 'int' ? int(value) : value);
    }
    records.set('metrics', metrics);
  }
  if (reply.facts) records.set('facts', new ConfigRecord({ json: JSON.stringify(reply.facts) }));
  return new RecordDict(records);
}

function parseJson(text: string, key: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new Error(`config "${key}" is not JSON (${(error as Error).message})`);
  }
}
