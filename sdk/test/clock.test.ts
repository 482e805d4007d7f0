/**
 * The hybrid logical clock (SPEC.md 8.2, rule "Clock"): checked against a plain model
 * of the rule under random local times, including backward jumps, and random clocks
 * observed from other devices, including ones at the end of the counter range.
 */
import test from 'ava';
import fc from 'fast-check';
import type { HybridClock } from '@e2ekv/protocol';
import { HybridLogicalClock, MAX_CLOCK_COUNTER, MAX_CLOCK_WALL_MS, compareClocks } from '../src/clock.js';
import { throwsCode } from '../../test/support/errors.js';

const RUNS = 300;

const clockArb: fc.Arbitrary<HybridClock> = fc.record({
  wallMs: fc.bigInt({ min: 0n, max: 4_000_000_000_000n }),
  // Counters near the top of the u32 range make the overflow path common, not rare.
  counter: fc.oneof(fc.nat(5), fc.integer({ min: MAX_CLOCK_COUNTER - 3, max: MAX_CLOCK_COUNTER })),
});

/** What the clock is asked to do: tick at a local time, or observe another device's clock. */
type Op = { tick: number } | { observe: HybridClock };

/** Local times as a random walk with backward jumps, from 0 up to a few thousand years. */
const opsArb: fc.Arbitrary<Op[]> = fc
  .array(
    fc.oneof(
      fc.record({ step: fc.integer({ min: -5_000, max: 5_000 }) }), // jitter, both ways
      fc.record({ step: fc.constantFrom(-86_400_000, -1, 0, 0, 1, 3_600_000) }), // big jumps, repeats
      fc.record({ observe: clockArb }),
    ),
    { maxLength: 60 },
  )
  .chain((moves) =>
    fc.integer({ min: 0, max: 2_000_000_000_000 }).map((start) => {
      let now = start;
      return moves.map((m): Op => {
        if ('observe' in m) return { observe: m.observe };
        now = Math.max(0, now + m.step);
        return { tick: now };
      });
    }),
  );

const maxClock = (a: HybridClock | undefined, b: HybridClock): HybridClock =>
  a === undefined || compareClocks(b, a) > 0 ? b : a;

test('compareClocks orders by wall time, then counter, and is antisymmetric', (t) => {
  fc.assert(
    fc.property(clockArb, clockArb, (a, b) => {
      const expected =
        a.wallMs < b.wallMs ? -1 : a.wallMs > b.wallMs ? 1 : a.counter < b.counter ? -1 : a.counter > b.counter ? 1 : 0;
      return (
        Math.sign(compareClocks(a, b)) === expected &&
        Math.sign(compareClocks(b, a)) === -expected &&
        compareClocks(a, { ...a }) === 0
      );
    }),
    { numRuns: RUNS },
  );
  t.is(compareClocks({ wallMs: 2n, counter: 0 }, { wallMs: 1n, counter: MAX_CLOCK_COUNTER }), 1);
});

test('ticks follow the SPEC rule exactly and exceed every clock issued or observed', (t) => {
  fc.assert(
    fc.property(fc.option(clockArb, { nil: undefined }), opsArb, (restored, ops) => {
      let now = 0;
      const clock = new HybridLogicalClock(() => now, restored);
      let seen = restored; // the largest clock issued or observed: the model's state
      for (const op of ops) {
        if ('observe' in op) {
          clock.observe(op.observe);
          seen = maxClock(seen, op.observe);
          continue;
        }
        now = op.tick;
        const local = BigInt(now);
        // The rule of SPEC.md 8.2, written out independently of the implementation.
        const expected: HybridClock =
          seen === undefined || local > seen.wallMs
            ? { wallMs: local, counter: 0 }
            : seen.counter < MAX_CLOCK_COUNTER
              ? { wallMs: seen.wallMs, counter: seen.counter + 1 }
              : { wallMs: seen.wallMs + 1n, counter: 0 };
        const issued = clock.tick();
        t.deepEqual(issued, expected);
        if (seen !== undefined && compareClocks(issued, seen) <= 0) return false;
        if (issued.counter > MAX_CLOCK_COUNTER || issued.counter < 0) return false;
        seen = issued;
        t.deepEqual(clock.last, seen);
      }
      return true;
    }),
    { numRuns: RUNS },
  );
});

test('a wall clock that jumps backwards keeps clocks increasing', (t) => {
  let now = 10_000;
  const clock = new HybridLogicalClock(() => now);
  t.deepEqual(clock.tick(), { wallMs: 10_000n, counter: 0 });
  now = 4_000; // NTP correction, or a user setting the date back
  t.deepEqual(clock.tick(), { wallMs: 10_000n, counter: 1 });
  t.deepEqual(clock.tick(), { wallMs: 10_000n, counter: 2 });
  now = 10_000; // same millisecond as before: still counts up
  t.deepEqual(clock.tick(), { wallMs: 10_000n, counter: 3 });
  now = 10_001; // local time passes the clock again: back to following it
  t.deepEqual(clock.tick(), { wallMs: 10_001n, counter: 0 });
});

test('observing a clock from the future carries later ticks past it', (t) => {
  const clock = new HybridLogicalClock(() => 1_000);
  clock.observe({ wallMs: 9_000_000n, counter: 7 });
  t.deepEqual(clock.tick(), { wallMs: 9_000_000n, counter: 8 });
  clock.observe({ wallMs: 5n, counter: 99 }); // an older clock changes nothing
  t.deepEqual(clock.tick(), { wallMs: 9_000_000n, counter: 9 });
});

test('counter overflow moves the wall time one millisecond ahead instead of wrapping', (t) => {
  const restored = new HybridLogicalClock(() => 0, { wallMs: 5n, counter: MAX_CLOCK_COUNTER });
  t.deepEqual(restored.tick(), { wallMs: 6n, counter: 0 });
  t.deepEqual(restored.tick(), { wallMs: 6n, counter: 1 });

  const observing = new HybridLogicalClock(() => 100);
  observing.observe({ wallMs: 200n, counter: MAX_CLOCK_COUNTER });
  t.deepEqual(observing.tick(), { wallMs: 201n, counter: 0 });
  // Local time reaching the borrowed millisecond does not repeat a clock.
  const catchingUp = new HybridLogicalClock(() => 201, { wallMs: 200n, counter: MAX_CLOCK_COUNTER });
  t.deepEqual(catchingUp.tick(), { wallMs: 201n, counter: 0 });
  t.deepEqual(catchingUp.tick(), { wallMs: 201n, counter: 1 });
});

test('a clock at the very end of the u64 range refuses to tick rather than wrap', (t) => {
  const clock = new HybridLogicalClock(() => 0);
  clock.observe({ wallMs: MAX_CLOCK_WALL_MS, counter: MAX_CLOCK_COUNTER - 1 });
  t.deepEqual(clock.tick(), { wallMs: MAX_CLOCK_WALL_MS, counter: MAX_CLOCK_COUNTER });
  throwsCode(t, () => clock.tick(), 'TOO_LARGE');
  t.deepEqual(clock.last, { wallMs: MAX_CLOCK_WALL_MS, counter: MAX_CLOCK_COUNTER }, 'state unchanged');
});

test('a restored clock continues after the persisted one, and last is a copy', (t) => {
  const clock = new HybridLogicalClock(() => 50, { wallMs: 100n, counter: 4 });
  t.deepEqual(clock.last, { wallMs: 100n, counter: 4 });
  const exposed = clock.last!;
  exposed.wallMs = 0n; // mutating what the getter returned must not move the clock back
  exposed.counter = 0;
  t.deepEqual(clock.tick(), { wallMs: 100n, counter: 5 });
  const issued = clock.tick();
  issued.wallMs = 0n; // nor mutating what tick returned
  t.deepEqual(clock.tick(), { wallMs: 100n, counter: 7 });
  t.is(new HybridLogicalClock(() => 0).last, undefined);
});

test('clocks outside the wire ranges are rejected; a broken local time reads as 0', (t) => {
  const clock = new HybridLogicalClock(() => 10);
  for (const bad of [
    { wallMs: -1n, counter: 0 },
    { wallMs: MAX_CLOCK_WALL_MS + 1n, counter: 0 },
    { wallMs: 1n, counter: -1 },
    { wallMs: 1n, counter: MAX_CLOCK_COUNTER + 1 },
    { wallMs: 1n, counter: 0.5 },
  ]) {
    throwsCode(t, () => clock.observe(bad), 'INVALID_ARGUMENT');
    throwsCode(t, () => new HybridLogicalClock(() => 0, bad), 'INVALID_ARGUMENT');
  }
  t.is(clock.last, undefined, 'a rejected clock is not observed');

  for (const broken of [NaN, -5, -Infinity, Infinity]) {
    const c = new HybridLogicalClock(() => broken, { wallMs: 3n, counter: 0 });
    t.deepEqual(c.tick(), { wallMs: 3n, counter: 1 });
  }
  t.deepEqual(new HybridLogicalClock(() => 12.9).tick(), { wallMs: 12n, counter: 0 });
});

test('by default the clock follows Date.now', (t) => {
  const before = BigInt(Date.now());
  const issued = new HybridLogicalClock().tick();
  const after = BigInt(Date.now());
  t.true(issued.wallMs >= before && issued.wallMs <= after);
  t.is(issued.counter, 0);
});
