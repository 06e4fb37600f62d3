// The Python `random` port against outputs of CPython 3.11 itself: the
// `python_random` entries of the protocol fixture, and a few more values
// printed by /usr/bin/python3 (the snippet that made each is in its comment).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import { fixture } from './shared.js';
import { PythonRandom, bitLength, pythonRound } from '../src/data/python-random.js';

interface ProtocolFixture {
  python_random: {
    seed2023_getrandbits32: number[];
    seed2023_shuffle_range100: number[];
    seed1_sample_range1000_k5: number[];
    then_sample_range30_k25: number[];
    then_random: number[];
  };
}

const golden = (JSON.parse(readFileSync(fixture('protocol', 'pathological.json'), 'utf8')) as ProtocolFixture).python_random;
const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

test('fixture: random.seed(2023); getrandbits(32) × 8', () => {
  const rng = new PythonRandom(2023);
  assert.deepEqual(range(8).map(() => rng.getrandbits(32)), golden.seed2023_getrandbits32);
});

test('fixture: random.seed(2023); shuffle(list(range(100)))', () => {
  assert.deepEqual(new PythonRandom(2023).shuffle(range(100)), golden.seed2023_shuffle_range100);
});

test('fixture: random.seed(1); sample(range(1000), 5) [set branch], then sample(range(30), 25) [pool branch], then random() × 4', () => {
  const rng = new PythonRandom(1);
  assert.deepEqual(rng.sample(range(1000), 5), golden.seed1_sample_range1000_k5);
  assert.deepEqual(rng.sample(range(30), 25), golden.then_sample_range30_k25);
  // random() is exact: the same 53 bits scaled by a power of two.
  assert.deepEqual(range(4).map(() => rng.random()), golden.then_random);
});

test('seeding: zero, negative (uses |n|), and ints wider than one 32-bit word', () => {
  // [random.Random(s).getrandbits(32) for _ in range(3)]
  const first3 = (seed: number | bigint): number[] => {
    const rng = new PythonRandom(seed);
    return range(3).map(() => rng.getrandbits(32));
  };
  assert.deepEqual(first3(0), [3626764237, 1654615998, 3255389356]);
  assert.deepEqual(first3(-2023), [1644637140, 3013484573, 4174115899]);
  assert.deepEqual(first3(2 ** 40 + 5), [2166296868, 2220160828, 1153647273]);
  assert.deepEqual(first3(2n ** 70n + 12345n), [4124372728, 1880144277, 4058479540]);
  // Re-seeding restarts the stream.
  const rng = new PythonRandom(5);
  const a = rng.random();
  rng.seed(5);
  assert.equal(rng.random(), a);
});

test('getrandbits for 0 to 53 bits, including the two-word case', () => {
  // r = random.Random(42); [r.getrandbits(k) for k in (1, 7, 31, 32, 33, 48, 53, 0)]
  const rng = new PythonRandom(42);
  assert.deepEqual([1, 7, 31, 32, 33, 48, 53, 0].map((k) => rng.getrandbits(k)), [1, 14, 53710184, 3184935163, 1181241943, 39274139637470, 923193498493097, 0]);
  assert.throws(() => rng.getrandbits(54), /at most 53 bits/);
});

test('randint and randrange (positive and negative steps, a range over 2^32)', () => {
  // r = random.Random(42); [r.randint(-5, 17) ×10] + [r.randrange(3, 100, 7) ×5] + [r.randrange(50, 0, -3) ×5] + [r.randrange(10**15) ×3]
  const rng = new PythonRandom(42);
  const got = [
    ...range(10).map(() => rng.randint(-5, 17)),
    ...range(5).map(() => rng.randrange(3, 100, 7)),
    ...range(5).map(() => rng.randrange(50, 0, -3)),
    ...range(3).map(() => rng.randrange(10 ** 15)),
  ];
  assert.deepEqual(got, [15, -2, -5, 3, 2, 2, -1, -2, 16, 12, 10, 66, 45, 3, 3, 44, 32, 29, 2, 50, 223873285865894, 731706588729265, 613551975303308]);
  assert.throws(() => rng.randrange(5, 5), /empty range/);
  assert.throws(() => rng.randrange(0), /empty range/);
  assert.throws(() => rng.randrange(0, 10, 0), /zero step/);
});

test('choices without weights: floor(random() · n)', () => {
  // random.Random(7).choices(list(range(13)), k=10)
  assert.deepEqual(new PythonRandom(7).choices(range(13), 10), [4, 1, 8, 0, 6, 4, 0, 6, 0, 5]);
});

test('sample: both branches at their boundary, and the set branch with k > 5', () => {
  // random.Random(7).sample(range(20), 5): n = 20 ≤ setsize 21 → pool
  assert.deepEqual(new PythonRandom(7).sample(range(20), 5), [10, 4, 12, 1, 2]);
  // random.Random(7).sample(range(22), 5): n = 22 > 21 → set
  assert.deepEqual(new PythonRandom(7).sample(range(22), 5), [10, 4, 12, 20, 1]);
  // random.Random(7).sample(range(10000), 50): setsize 21 + 4^ceil(log4(150)) = 277 → set
  assert.deepEqual(new PythonRandom(7).sample(range(10000), 50), [
    5305, 2471, 6468, 791, 1186, 8779, 1542, 5991, 9548, 950, 8313, 3517, 614, 1408, 7104, 6851, 1144, 3943, 1486, 9028, 6955, 968, 9264, 2028, 3657,
    9551, 1013, 9455, 9593, 6499, 812, 3622, 763, 9120, 2181, 4744, 6867, 2363, 8858, 1929, 9353, 5054, 9179, 2961, 1688, 9528, 9358, 3078, 6101, 1596,
  ]);
  const rng = new PythonRandom(1);
  assert.throws(() => rng.sample([1, 2, 3], 4), /larger than population/);
  assert.deepEqual(rng.sample([1, 2, 3], 0), []);
});

test('shuffle of a list long enough to regenerate the state several times', () => {
  // r = random.Random(9); x = list(range(1500)); r.shuffle(x); x[:20], sum(i * v for i, v in enumerate(x))
  const x = new PythonRandom(9).shuffle(range(1500));
  assert.deepEqual(x.slice(0, 20), [734, 46, 1229, 937, 1371, 773, 1037, 128, 883, 133, 192, 637, 805, 144, 1357, 453, 139, 244, 551, 1184]);
  assert.equal(x.reduce((s, v, i) => s + i * v, 0), 842049136);
});

test('pythonRound sends halves to the even neighbour, as round() does', () => {
  // [(v, round(v)) for v in ...] from CPython
  const cases: [number, number][] = [
    [0.5, 0], [1.5, 2], [2.5, 2], [-0.5, 0], [-1.5, -2], [2.4999999999999996, 2], [2.5000000000000004, 3], [3.5, 4],
    [100 / 40, 2], [35 / 10, 4], [1e15 + 0.5, 1e15], [-2.5, -2], [7, 7], [7 / 3, 2],
  ];
  for (const [x, expected] of cases) assert.equal(pythonRound(x), expected, `round(${x})`);
  assert.ok(Object.is(pythonRound(-0.5), 0), 'no negative zero');
});

test('bitLength is int.bit_length() across word boundaries', () => {
  const cases: [number, number][] = [[0, 0], [1, 1], [2, 2], [255, 8], [256, 9], [2 ** 32 - 1, 32], [2 ** 32, 33], [2 ** 53 - 1, 53], [2 ** 40 + 1, 41]];
  for (const [n, bits] of cases) assert.equal(bitLength(n), bits, `bit_length(${n})`);
});
