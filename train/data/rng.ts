/**
 * Seeded random numbers for data generation and augmentation. seedrandom turns any seed
 * (number or string, e.g. `'7/epoch3/sample12'`) into state for sfc32, a small fast generator,
 * so per-pixel noise stays cheap and every stream is reproducible from its seed alone.
 */
import seedrandom from 'seedrandom';

/** A reproducible stream of random numbers. */
export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform in [a, b). */
  uniform(a: number, b: number): number;
  /** Integer uniform in [a, b] (inclusive). */
  int(a: number, b: number): number;
  /** True with probability p. */
  chance(p: number): boolean;
  /** Standard normal (Box-Muller). */
  normal(): number;
  /** A random element of a non-empty array. */
  pick<T>(items: readonly T[]): T;
  /** Log-uniform in [a, b), a > 0: as likely to fall in [8, 16) as in [64, 128). */
  logUniform(a: number, b: number): number;
  /** Raw 32-bit unsigned output. */
  u32(): number;
}

/** Creates a generator from a seed; the same seed always gives the same stream. */
export function createRng(seed: number | string): Rng {
  const init = seedrandom(String(seed));
  let a = init.int32() >>> 0;
  let b = init.int32() >>> 0;
  let c = init.int32() >>> 0;
  let d = init.int32() >>> 0 || 1;
  const u32 = (): number => {
    // sfc32
    const t = (((a + b) >>> 0) + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) >>> 0;
    return t;
  };
  for (let i = 0; i < 12; i++) u32();
  const next = () => u32() / 4294967296;
  return {
    next,
    u32,
    uniform: (lo, hi) => lo + (hi - lo) * next(),
    int: (lo, hi) => lo + Math.floor((hi - lo + 1) * next()),
    chance: (p) => next() < p,
    normal: () => {
      const u = 1 - next();
      const v = next();
      return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
    },
    pick: (items) => items[Math.floor(next() * items.length)],
    logUniform: (lo, hi) => Math.exp(Math.log(lo) + (Math.log(hi) - Math.log(lo)) * next()),
  };
}
