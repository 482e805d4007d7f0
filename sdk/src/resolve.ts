/**
 * Conflict resolution for one key: a multi-value register ordered by causal contexts
 * (protocol/SPEC.md section 8.2; DESIGN.md section 6).
 *
 * Why wall-clock time never decides alone: device clocks are skewed, sometimes by
 * years, and a device that overwrote a value after seeing it must replace that value
 * even if its clock is behind the clock of the device it read from. So the order is:
 *
 * 1. Causality. A write that happened before another (the later writer had verified
 *    it, as its causal context says) is superseded and disappears. No clock is
 *    consulted, so a skewed clock can neither resurrect an overwritten value nor
 *    hide a newer one.
 * 2. Only writes that are concurrent (neither writer had seen the other) remain,
 *    as siblings. Every sibling is kept and exposed (`getAll`, conflict events), so
 *    no write is lost to a clock. To still give `get` one answer that every replica
 *    agrees on, siblings are ranked by hybrid logical clock, then by device key. Both
 *    are signed into the entries, so every replica ranks them the same way.
 *
 * A tombstone is just a value here: a delete concurrent with a set is a sibling like
 * any other, and the caller decides what a winning tombstone means.
 */
import type { HybridClock } from '@e2ekv/protocol';
import { compareClocks } from './clock.js';

/** One write to a key, with the position and causal context of the entry that made it. */
export interface VersionedWrite<T> {
  /** The writer's Ed25519 public key, lowercase hex: identifies the log. */
  device: string;
  /** The entry's index in the writer's log (0 for its first entry). */
  index: number;
  /**
   * The entry's causal context: for each other device, how many entries of its log the
   * writer had verified. Never lists the writer itself (its `index` stands for that).
   * Contexts are causally closed (SPEC.md 8.2, rule "Closed"); this module relies on it.
   */
  vector: ReadonlyMap<string, number>;
  clock: HybridClock;
  value: T;
}

/**
 * Whether `a` happened before `b`: the writer of `b` had verified `a` when it wrote `b`.
 * Because contexts are closed, a direct look-up suffices: if a happened before some c
 * that b had verified, b's context already covers a. A write did not happen before itself.
 */
export function happenedBefore(
  a: Pick<VersionedWrite<unknown>, 'device' | 'index'>,
  b: Pick<VersionedWrite<unknown>, 'device' | 'index' | 'vector'>,
): boolean {
  if (a.device === b.device) return a.index < b.index;
  return a.index < (b.vector.get(a.device) ?? 0);
}

/**
 * Ranks siblings, winner first: later clock first, then larger device key. A total
 * order on concurrent writes, because a device's own writes are never concurrent and
 * so no two siblings share a device. (The index comparison only makes the function
 * total on any input; among siblings it is never reached.)
 */
function rankSiblings(a: VersionedWrite<unknown>, b: VersionedWrite<unknown>): number {
  const byClock = compareClocks(b.clock, a.clock);
  if (byClock !== 0) return byClock;
  if (a.device !== b.device) return a.device < b.device ? 1 : -1;
  return b.index - a.index;
}

/**
 * The writes of `writes` that no other write of it happened after, each once, winner
 * first. Writes are identified by (device, index): a verified log holds one entry per
 * index, so two writes with the same identity are the same write.
 */
export function concurrentSiblings<T>(writes: Iterable<VersionedWrite<T>>): readonly VersionedWrite<T>[] {
  const unique = new Map<string, VersionedWrite<T>>();
  for (const w of writes) {
    const id = `${w.device}/${w.index}`;
    if (!unique.has(id)) unique.set(id, w);
  }
  const all = [...unique.values()];
  const maximal = all.filter((w) => !all.some((other) => happenedBefore(w, other)));
  return maximal.sort(rankSiblings);
}

/**
 * The state of one key: its current siblings, and nothing else. Superseded writes are
 * dropped, so the size is bounded by the number of devices writing concurrently, not
 * by the number of writes. Dropping them loses nothing needed later: any write that
 * happened before a dropped one also happened before the write that superseded it
 * (contexts are closed), so it is still recognized as superseded if it arrives again.
 *
 * Adding and merging commute, associate and are idempotent, so replicas that have
 * received the same writes, in any order and any number of times, hold the same
 * siblings and the same winner.
 */
export class MultiValueRegister<T> {
  private current: readonly VersionedWrite<T>[];

  constructor(writes: Iterable<VersionedWrite<T>> = []) {
    this.current = Object.freeze(concurrentSiblings(writes));
  }

  /** Adds one write; adding a write already present or already superseded changes nothing. */
  add(write: VersionedWrite<T>): void {
    this.current = Object.freeze(concurrentSiblings([...this.current, write]));
  }

  /** Takes in every write another replica's register holds. */
  merge(other: MultiValueRegister<T>): void {
    this.current = Object.freeze(concurrentSiblings([...this.current, ...other.current]));
  }

  /** The concurrent writes, winner first; empty before any write. */
  siblings(): readonly VersionedWrite<T>[] {
    return this.current;
  }

  /** The sibling every replica picks for a plain read: latest clock, then largest device key. */
  winner(): VersionedWrite<T> | undefined {
    return this.current[0];
  }
}
