// A small seeded PRNG for the chaos harness: the fault schedule, the workload
// and the proxies' coin flips all come from one seed, so a failing run can be
// planned again exactly (what OS scheduling does with that plan is not ours to
// replay). xoshiro128** seeded through splitmix32; never used for anything secret.

/** splitmix32: spreads one 32-bit seed over the generator's state words. */
function splitmix32(state: number): () => number {
  return () => {
    state = (state + 0x9e3779b9) | 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/** FNV-1a of a string: how a text seed or a fork label becomes 32 bits. */
function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export class Random {
  /** The seed this generator was made from, for printing and forking. */
  readonly seed: string;
  readonly #s = new Uint32Array(4);

  constructor(seed: number | string) {
    this.seed = String(seed);
    const mix = splitmix32(typeof seed === 'number' ? seed >>> 0 : hash32(seed));
    for (let i = 0; i < 4; i++) this.#s[i] = mix();
    // xoshiro's all-zero state is a fixed point; splitmix32 never yields four zeros, but be sure.
    if (this.#s.every((word) => word === 0)) this.#s[0] = 1;
  }

  /** The next 32 random bits (xoshiro128**). */
  uint32(): number {
    const s = this.#s;
    let [s0, s1, s2, s3] = [s[0]!, s[1]!, s[2]!, s[3]!];
    const result = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
    const t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = rotl(s3, 11);
    s[0] = s0;
    s[1] = s1;
    s[2] = s2;
    s[3] = s3;
    return result;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.uint32() / 2 ** 32;
  }

  /** A whole number in [min, max] (both included). */
  int(min: number, max: number): number {
    if (!Number.isInteger(min) || !Number.isInteger(max) || max < min) throw new RangeError(`bad range ${min}..${max}`);
    return min + Math.floor(this.next() * (max - min + 1));
  }

  /** A number in [min, max). */
  range(min: number, max: number): number {
    return min + this.next() * (max - min);
  }

  /** true with probability p. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('pick from an empty list');
    return items[Math.floor(this.next() * items.length)]!;
  }

  /** One of the keys, with probability proportional to its weight (weights >= 0, not all 0). */
  weighted<K extends string>(weights: Readonly<Record<K, number>>): K {
    const entries = Object.entries(weights) as [K, number][];
    const total = entries.reduce((sum, [, w]) => sum + w, 0);
    if (!(total > 0)) throw new RangeError('weights must not all be zero');
    let roll = this.next() * total;
    for (const [key, weight] of entries) {
      roll -= weight;
      if (roll < 0) return key;
    }
    return entries[entries.length - 1]![0];
  }

  /** A shuffled copy (Fisher-Yates). */
  shuffle<T>(items: readonly T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  }

  /**
   * An independent generator for one part of the run, named by `label`. Each
   * part draws from its own stream, so adding a coin flip to the workload does
   * not shift the fault schedule of the same seed.
   */
  fork(label: string): Random {
    return new Random(`${this.seed}/${label}`);
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** The seed of a chaos run: $CHAOS_SEED when set, else `fallback`. */
export function seedFromEnv(fallback: string, env: NodeJS.ProcessEnv = process.env): string {
  const value = env['CHAOS_SEED']?.trim();
  return value === undefined || value === '' ? fallback : value;
}
