/**
 * A small, seeded, deterministic pseudo-random number generator for the simulator.
 *
 * The simulator must replay any run exactly from its seed (TigerBeetle VOPR: "a failing seed is
 * a reproducible bug report"), so every random choice — message delays, faults, the workload,
 * the cores' own election timeouts — comes from one of these generators and never from
 * `Math.random`. The algorithm is xoshiro128** (Blackman and Vigna), whose 128-bit state is
 * expanded from the 32-bit seed with splitmix32. All arithmetic is on 32-bit integers through
 * `Math.imul` and `>>> 0`, so results are identical on every platform.
 */

/** One step of splitmix32: scrambles `state` and returns the next state and output. */
function splitmix32(state: number): { state: number; output: number } {
  const next = (state + 0x9e3779b9) >>> 0;
  let z = next;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  z = (z ^ (z >>> 16)) >>> 0;
  return { state: next, output: z };
}

function rotateLeft(value: number, bits: number): number {
  return ((value << bits) | (value >>> (32 - bits))) >>> 0;
}

/**
 * xoshiro128** seeded through splitmix32.
 *
 * Contract: two generators built from the same seed produce the same sequence for the same
 * sequence of calls. `fork()` derives an independent generator deterministically, so a consumer
 * that draws a variable number of values (for example a Raft core's election timeouts) does not
 * shift the sequence seen by the others.
 */
export class Prng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /** Builds a generator from any integer seed (only its low 32 bits matter beyond 2^32). */
  constructor(seed: number) {
    let state = (seed >>> 0) ^ Math.floor(seed / 0x100000000);
    const words: number[] = [];
    for (let i = 0; i < 4; i++) {
      const step = splitmix32(state);
      state = step.state;
      words.push(step.output);
    }
    this.s0 = words[0] ?? 1;
    this.s1 = words[1] ?? 2;
    this.s2 = words[2] ?? 3;
    this.s3 = words[3] ?? 4;
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1; // the all-zero state is a fixed point
  }

  /** The next 32-bit unsigned integer. */
  nextUint32(): number {
    const result = Math.imul(rotateLeft(Math.imul(this.s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.s1 << 9) >>> 0;
    this.s2 = (this.s2 ^ this.s0) >>> 0;
    this.s3 = (this.s3 ^ this.s1) >>> 0;
    this.s1 = (this.s1 ^ this.s2) >>> 0;
    this.s0 = (this.s0 ^ this.s3) >>> 0;
    this.s2 = (this.s2 ^ t) >>> 0;
    this.s3 = rotateLeft(this.s3, 11);
    return result;
  }

  /** A float in [0, 1) with 32 bits of randomness. */
  nextFloat(): number {
    return this.nextUint32() / 0x100000000;
  }

  /** An integer in [0, n). `n` must be a positive integer below 2^32. */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 0xffffffff) throw new Error(`Prng.int: bad bound ${n}`);
    // Rejection sampling removes the modulo bias.
    const limit = 0x100000000 - (0x100000000 % n);
    for (;;) {
      const value = this.nextUint32();
      if (value < limit) return value % n;
    }
  }

  /** An integer in [low, high] (both inclusive). */
  between(low: number, high: number): number {
    if (high < low) throw new Error(`Prng.between: empty range [${low}, ${high}]`);
    return low + this.int(high - low + 1);
  }

  /** True with probability `probability` (0 never, 1 always). */
  chance(probability: number): boolean {
    if (probability <= 0) return false;
    if (probability >= 1) return true;
    return this.nextFloat() < probability;
  }

  /** A uniformly chosen element; `items` must not be empty. */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('Prng.pick: no items');
    return items[this.int(items.length)] as T;
  }

  /** A new array with the items in a uniformly random order (Fisher–Yates). */
  shuffle<T>(items: readonly T[]): T[] {
    const out = items.slice();
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const swap = out[i] as T;
      out[i] = out[j] as T;
      out[j] = swap;
    }
    return out;
  }

  /** An independent generator derived from this one's next output. */
  fork(): Prng {
    return new Prng(this.nextUint32());
  }
}
