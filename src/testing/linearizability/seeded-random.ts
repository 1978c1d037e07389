/**
 * A small seeded pseudo-random generator for tests, workloads and the nemesis.
 *
 * Every random choice in the fault-injection suite flows from one explicit seed, so a failing
 * run is reproducible from the seed printed in its summary (HOUSE_STYLE: "Hidden global
 * randomness" is to be avoided). The generator is mulberry32: 32 bits of state, fast, and good
 * enough for choosing operations and faults. It is not cryptographic.
 */

/** A deterministic source of random numbers derived from a 32-bit seed. */
export class SeededRandom {
  private state: number;

  /** Creates a generator; equal seeds produce equal sequences. */
  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** The next 32-bit unsigned integer. */
  nextUint32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let value = this.state;
    value = Math.imul(value ^ (value >>> 15), value | 1);
    value ^= value + Math.imul(value ^ (value >>> 7), value | 61);
    return (value ^ (value >>> 14)) >>> 0;
  }

  /** A float in [0, 1). */
  nextFloat(): number {
    return this.nextUint32() / 4294967296;
  }

  /** An integer in [minimum, maximum] (both inclusive). */
  integerBetween(minimum: number, maximum: number): number {
    if (!Number.isInteger(minimum) || !Number.isInteger(maximum) || maximum < minimum) {
      throw new RangeError(`integerBetween: bad range [${minimum}, ${maximum}]`);
    }
    return minimum + Math.floor(this.nextFloat() * (maximum - minimum + 1));
  }

  /** True with the given probability (0..1). */
  chance(probability: number): boolean {
    return this.nextFloat() < probability;
  }

  /** One element of a non-empty array, chosen uniformly. */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('pick: empty array');
    return items[Math.floor(this.nextFloat() * items.length)] as T;
  }

  /** A new generator whose seed is drawn from this one (for independent sub-streams). */
  fork(): SeededRandom {
    return new SeededRandom(this.nextUint32());
  }
}
