// A port of CPython 3.11's `random.Random`: the Mersenne Twister (MT19937)
// and the algorithms Python builds on it (`shuffle`, `sample`, `choices`,
// `randrange`). The published federated splits were drawn with Python's
// `random` module, so reproducing their clients and shots needs the same
// 32-bit words consumed in the same order, not merely "a good generator".
// Every method below consumes exactly the words its Python namesake does.

const N = 624;
const M = 397;
const MATRIX_A = 0x9908b0df;
const UPPER_MASK = 0x80000000;
const LOWER_MASK = 0x7fffffff;

/** Python's `random.Random`, seeded with an integer as `random.seed(n)` is. */
export class PythonRandom {
  private readonly state = new Uint32Array(N);
  private index = N + 1;

  constructor(seed: number | bigint = 0) {
    this.seed(seed);
  }

  /**
   * `random.seed(n)` for an int n: MT's init_by_array over the 32-bit words of
   * |n|, least significant first (one zero word for n = 0), as CPython does.
   */
  seed(n: number | bigint): void {
    if (typeof n === 'number' && !Number.isSafeInteger(n)) throw new RangeError(`seed must be an integer, got ${n}`);
    let magnitude = BigInt(n);
    if (magnitude < 0n) magnitude = -magnitude;
    const key: number[] = [];
    while (magnitude > 0n) {
      key.push(Number(magnitude & 0xffffffffn));
      magnitude >>= 32n;
    }
    if (key.length === 0) key.push(0);
    this.initByArray(key);
  }

  /** A uniformly random 32-bit unsigned integer: MT19937's `genrand_uint32`. */
  nextUint32(): number {
    const mt = this.state;
    if (this.index >= N) this.twist();
    let y = mt[this.index++];
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /**
   * `random.getrandbits(k)` for k ≤ 53 (so the result is an exact JS number).
   * Python fills 32-bit words from the least significant end and keeps the
   * top bits of the last word.
   */
  getrandbits(k: number): number {
    if (!Number.isInteger(k) || k < 0) throw new RangeError(`number of bits must be a non-negative integer, got ${k}`);
    if (k > 53) throw new RangeError(`getrandbits(${k}): this port returns exact numbers, so at most 53 bits`);
    if (k === 0) return 0;
    if (k <= 32) return this.nextUint32() >>> (32 - k);
    const low = this.nextUint32();
    const high = this.nextUint32() >>> (64 - k);
    return high * 0x100000000 + low;
  }

  /** `random.random()`: a float in [0, 1) with 53 random bits. */
  random(): number {
    const a = this.nextUint32() >>> 5;
    const b = this.nextUint32() >>> 6;
    return (a * 67108864 + b) * (1 / 9007199254740992);
  }

  /** `Random._randbelow(n)`: uniform in [0, n) by rejection on getrandbits(n.bit_length()). */
  randbelow(n: number): number {
    // Python defines it for n > 0 only (with n = 0 its loop would never end).
    if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`randbelow needs a positive integer, got ${n}`);
    const k = bitLength(n);
    let r = this.getrandbits(k);
    while (r >= n) r = this.getrandbits(k);
    return r;
  }

  /**
   * `random.randrange(start, stop[, step])`, or `randrange(stop)` with one
   * argument; the same empty-range errors as Python.
   */
  randrange(start: number, stop?: number, step = 1): number {
    for (const [name, v] of [['start', start], ['stop', stop], ['step', step]] as const) {
      if (v !== undefined && !Number.isSafeInteger(v)) throw new RangeError(`randrange: ${name} must be an integer, got ${v}`);
    }
    if (stop === undefined) {
      if (step !== 1) throw new TypeError('randrange: missing a non-None stop argument');
      if (start > 0) return this.randbelow(start);
      throw new RangeError(`empty range for randrange(${start})`);
    }
    const width = stop - start;
    if (step === 1) {
      if (width > 0) return start + this.randbelow(width);
      throw new RangeError(`empty range for randrange(${start}, ${stop})`);
    }
    if (step === 0) throw new RangeError('zero step for randrange()');
    const n = step > 0 ? Math.floor((width + step - 1) / step) : Math.floor((width + step + 1) / step);
    if (n <= 0) throw new RangeError(`empty range for randrange(${start}, ${stop}, ${step})`);
    return start + step * this.randbelow(n);
  }

  /** `random.randint(a, b)`: uniform in [a, b], both ends included. */
  randint(a: number, b: number): number {
    return this.randrange(a, b + 1);
  }

  /** `random.shuffle(x)`, in place: Fisher–Yates from the end, j = randbelow(i + 1). */
  shuffle<T>(x: T[]): T[] {
    for (let i = x.length - 1; i > 0; i--) {
      const j = this.randbelow(i + 1);
      const t = x[i];
      x[i] = x[j];
      x[j] = t;
    }
    return x;
  }

  /**
   * `random.sample(population, k)`: k distinct items in selection order.
   * Python picks one of two algorithms by comparing n with the memory of a
   * k-element set; both consume the generator differently, so both are here.
   */
  sample<T>(population: readonly T[], k: number): T[] {
    const n = population.length;
    if (!Number.isInteger(k) || k < 0 || k > n) throw new RangeError(`Sample larger than population or is negative (k = ${k}, n = ${n})`);
    const result: T[] = new Array<T>(k);
    let setsize = 21; // size of a small set minus size of an empty list
    if (k > 5) setsize += 4 ** Math.ceil(Math.log(k * 3) / Math.log(4)); // table size for big sets
    if (n <= setsize) {
      // Pool branch: draw from a shrinking copy, moving the last unpicked item into each hole.
      const pool = population.slice();
      for (let i = 0; i < k; i++) {
        const j = this.randbelow(n - i);
        result[i] = pool[j];
        pool[j] = pool[n - i - 1];
      }
    } else {
      // Set branch: redraw indices already taken.
      const selected = new Set<number>();
      for (let i = 0; i < k; i++) {
        let j = this.randbelow(n);
        while (selected.has(j)) j = this.randbelow(n);
        selected.add(j);
        result[i] = population[j];
      }
    }
    return result;
  }

  /** `random.choices(population, k=k)` without weights: k draws with replacement, floor(random() · n). */
  choices<T>(population: readonly T[], k: number): T[] {
    const n = population.length;
    if (n === 0) throw new RangeError('choices: cannot choose from an empty population');
    const result: T[] = [];
    for (let i = 0; i < k; i++) result.push(population[Math.floor(this.random() * n)]);
    return result;
  }

  /** MT's init_genrand: the linear-congruential fill of the state from one word. */
  private initGenrand(s: number): void {
    const mt = this.state;
    mt[0] = s >>> 0;
    for (let i = 1; i < N; i++) {
      const prev = mt[i - 1] ^ (mt[i - 1] >>> 30);
      mt[i] = (Math.imul(1812433253, prev) + i) >>> 0;
    }
    this.index = N;
  }

  /** MT's init_by_array (2002 reference code, as CPython has it). */
  private initByArray(key: readonly number[]): void {
    const mt = this.state;
    this.initGenrand(19650218);
    let i = 1;
    let j = 0;
    for (let k = Math.max(N, key.length); k > 0; k--) {
      const prev = mt[i - 1] ^ (mt[i - 1] >>> 30);
      mt[i] = ((mt[i] ^ Math.imul(prev, 1664525)) + key[j] + j) >>> 0;
      i++;
      j++;
      if (i >= N) {
        mt[0] = mt[N - 1];
        i = 1;
      }
      if (j >= key.length) j = 0;
    }
    for (let k = N - 1; k > 0; k--) {
      const prev = mt[i - 1] ^ (mt[i - 1] >>> 30);
      mt[i] = ((mt[i] ^ Math.imul(prev, 1566083941)) - i) >>> 0;
      i++;
      if (i >= N) {
        mt[0] = mt[N - 1];
        i = 1;
      }
    }
    mt[0] = 0x80000000; // MSB set: assures a non-zero initial state
  }

  /** Generates the next N words of state at once. */
  private twist(): void {
    const mt = this.state;
    let kk = 0;
    for (; kk < N - M; kk++) {
      const y = (mt[kk] & UPPER_MASK) | (mt[kk + 1] & LOWER_MASK);
      mt[kk] = mt[kk + M] ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0);
    }
    for (; kk < N - 1; kk++) {
      const y = (mt[kk] & UPPER_MASK) | (mt[kk + 1] & LOWER_MASK);
      mt[kk] = mt[kk + (M - N)] ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0);
    }
    const y = (mt[N - 1] & UPPER_MASK) | (mt[0] & LOWER_MASK);
    mt[N - 1] = mt[M - 1] ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0);
    this.index = 0;
  }
}

/** Python's `int.bit_length()` for a non-negative safe integer. */
export function bitLength(n: number): number {
  // Integer arithmetic only: Math.log2 can round across a power of two.
  if (n < 0x100000000) return 32 - Math.clz32(n);
  return 32 + bitLength(Math.floor(n / 0x100000000));
}

/**
 * Python's one-argument `round(x)`: nearest integer, halves to the even
 * neighbour (round(2.5) = 2, round(3.5) = 4), unlike Math.round.
 */
export function pythonRound(x: number): number {
  if (!Number.isFinite(x)) throw new RangeError(`cannot round ${x} to an integer`);
  const floor = Math.floor(x);
  const fraction = x - floor; // exact for doubles
  if (fraction < 0.5) return floor;
  if (fraction > 0.5) return floor + 1;
  return floor % 2 === 0 ? floor : floor + 1;
}
