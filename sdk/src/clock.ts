/**
 * The hybrid logical clock every entry carries (protocol/SPEC.md section 8.2, rule "Clock").
 *
 * A clock is (wall milliseconds, counter), compared as a pair. It follows local time
 * when local time moves forward, and otherwise stays on the largest wall time seen and
 * counts up, so it never goes backwards: not when the device's own clock jumps back
 * (NTP correction, a user changing the date), and not below a clock it has observed
 * from another device. That makes it usable as the tie-break between concurrent
 * writes (resolve.ts). It is never used to decide causality: the causal context does.
 *
 * Pure and isomorphic: time comes from an injected `now`, so tests drive it.
 */
import { E2ekvError, type HybridClock } from '@e2ekv/protocol';

/** The counter is a u32 on the wire (SPEC.md 8.2). */
export const MAX_CLOCK_COUNTER = 0xffff_ffff;
/** The wall time is a u64 on the wire (SPEC.md 8.2). */
export const MAX_CLOCK_WALL_MS = (1n << 64n) - 1n;

/** Negative if a is earlier, positive if later, 0 if equal: wall time first, then counter. */
export function compareClocks(a: HybridClock, b: HybridClock): number {
  if (a.wallMs !== b.wallMs) return a.wallMs < b.wallMs ? -1 : 1;
  return a.counter === b.counter ? 0 : a.counter < b.counter ? -1 : 1;
}

export class HybridLogicalClock {
  /**
   * The largest clock this clock has issued or observed; the next tick exceeds it.
   * Persist it (the `last` getter) and pass it back after a restart, so the clocks of a
   * device stay increasing even if its wall clock went back while it was off.
   */
  private latest: HybridClock | undefined;

  constructor(
    private readonly now: () => number = Date.now,
    last?: HybridClock,
  ) {
    if (last !== undefined) this.latest = checkedCopy(last, 'the restored clock');
  }

  get last(): HybridClock | undefined {
    // A copy: callers must not be able to move this clock backwards by mutating it.
    return this.latest === undefined ? undefined : { ...this.latest };
  }

  /** A clock greater than every clock this clock issued or observed before. */
  tick(): HybridClock {
    const now = wallTime(this.now());
    const last = this.latest;
    let next: HybridClock;
    if (last === undefined || now > last.wallMs) {
      next = { wallMs: now, counter: 0 };
    } else if (last.counter < MAX_CLOCK_COUNTER) {
      next = { wallMs: last.wallMs, counter: last.counter + 1 };
    } else {
      // Wrapping the counter would go backwards. Moving the wall time one millisecond
      // ahead of local time instead keeps the order, and local time catches up.
      next = { wallMs: last.wallMs + 1n, counter: 0 };
    }
    if (next.wallMs > MAX_CLOCK_WALL_MS) {
      // Only reachable after observing a clock at the very end of the u64 range,
      // which no honest device writes; refuse rather than wrap.
      throw new E2ekvError('TOO_LARGE', 'the hybrid logical clock ran past the largest wall time a clock can hold');
    }
    this.latest = next;
    return { ...next };
  }

  /** Take a clock from another device into account: later ticks will exceed it. */
  observe(remote: HybridClock): void {
    const clock = checkedCopy(remote, 'an observed clock');
    if (this.latest === undefined || compareClocks(clock, this.latest) > 0) this.latest = clock;
  }
}

/** Local time as a wall time; a broken clock (negative, NaN) reads as 0 and the max rule keeps order. */
function wallTime(ms: number): bigint {
  if (!Number.isFinite(ms) || ms <= 0) return 0n;
  const wall = BigInt(Math.floor(ms));
  return wall > MAX_CLOCK_WALL_MS ? MAX_CLOCK_WALL_MS : wall;
}

function checkedCopy(clock: HybridClock, what: string): HybridClock {
  const { wallMs, counter } = clock;
  if (typeof wallMs !== 'bigint' || wallMs < 0n || wallMs > MAX_CLOCK_WALL_MS) {
    throw new E2ekvError('INVALID_ARGUMENT', `${what} has a wall time outside the u64 range`);
  }
  if (!Number.isInteger(counter) || counter < 0 || counter > MAX_CLOCK_COUNTER) {
    throw new E2ekvError('INVALID_ARGUMENT', `${what} has a counter outside the u32 range`);
  }
  return { wallMs, counter };
}
