/**
 * Conflict resolution (resolve.ts) against random causal histories.
 *
 * A small simulator plays 1 to 5 devices that write entries and receive each other's
 * entries in random order. Each device keeps what it has received closed under
 * causality (receiving an entry brings its causal past along, as verifying a log
 * prefix does), and builds each new entry's context from a random subset of what it
 * received, joined with its previous context (SPEC.md 8.2: closed and monotone).
 * Devices have skewed clocks (some years ahead or behind), local time jumps back, and
 * some devices break the clock rule by not observing their causal past, so clock order
 * and causal order disagree in many histories.
 *
 * The oracle for "happened before" walks the causal graph transitively, so it does not
 * share resolve.ts's shortcut of reading one vector entry.
 */
import test from 'ava';
import fc from 'fast-check';
import { toHex } from '@e2ekv/protocol';
import { HybridLogicalClock, compareClocks } from '../src/clock.js';
import { MultiValueRegister, concurrentSiblings, happenedBefore, type VersionedWrite } from '../src/resolve.js';

const RUNS = 200;

type Write = VersionedWrite<string>;

interface Plan {
  devices: string[];
  /** Per device: how far its local time is from true time, in ms. */
  skews: number[];
  /** Per device: whether it follows the clock rule by observing its causal past. */
  observes: boolean[];
  steps: Step[];
}

type Step =
  | { kind: 'write'; device: number; advance: number; picks: boolean[] }
  | { kind: 'deliver'; device: number; entry: number };

interface History {
  devices: string[];
  /** Every write, in the order they were made (a topological order of the causal graph). */
  writes: Write[];
  /** For each write id, the ids of every write in its causal past (by a transitive walk). */
  past: Map<string, Set<string>>;
}

const idOf = (w: Pick<Write, 'device' | 'index'>): string => `${w.device}/${w.index}`;
const idsOf = (writes: readonly Write[]): string[] => writes.map(idOf);

const YEAR_MS = 365 * 24 * 3_600_000;

const planArb: fc.Arbitrary<Plan> = fc.integer({ min: 1, max: 5 }).chain((n) =>
  fc.record({
    devices: fc.uniqueArray(
      fc.uint8Array({ minLength: 32, maxLength: 32 }).map((bytes) => toHex(bytes)),
      { minLength: n, maxLength: n },
    ),
    skews: fc.array(
      // Mostly in sync (so clocks tie and the device key decides), some far off.
      fc.oneof(fc.constant(0), fc.integer({ min: -2_000, max: 2_000 }), fc.constantFrom(-10 * YEAR_MS, 10 * YEAR_MS)),
      { minLength: n, maxLength: n },
    ),
    observes: fc.array(fc.oneof(fc.constant(true), fc.boolean()), { minLength: n, maxLength: n }),
    steps: fc.array(
      fc.oneof(
        {
          weight: 2,
          arbitrary: fc.record({
            kind: fc.constant('write' as const),
            device: fc.nat(n - 1),
            // 0 often, so writes share a millisecond; negative: local time jumps back.
            advance: fc.oneof(fc.constant(0), fc.integer({ min: -3_000, max: 3_000 })),
            picks: fc.array(fc.oneof(fc.constant(true), fc.boolean()), { minLength: 1, maxLength: 7 }),
          }),
        },
        {
          weight: 3,
          arbitrary: fc.record({ kind: fc.constant('deliver' as const), device: fc.nat(n - 1), entry: fc.nat() }),
        },
      ),
      // 'max': lengths spread over the whole range, so long, tangled histories are common.
      { minLength: 1, maxLength: 40, size: 'max' },
    ),
  }),
);

/** Raises `into` to at least `from`, device by device, leaving out `self`. */
function join(into: Map<string, number>, from: ReadonlyMap<string, number>, self: string): void {
  for (const [device, size] of from) {
    if (device !== self && size > (into.get(device) ?? 0)) into.set(device, size);
  }
}

/**
 * What a device knows once it has verified `w`: w's context, plus the writer's log up to
 * and including w (one more than SPEC.md 8.2's vector clock, which stops before w).
 */
function knownThrough(w: Write): Map<string, number> {
  return new Map([...w.vector, [w.device, w.index + 1]]);
}

function simulate(plan: Plan): History {
  let trueTime = 1_700_000_000_000;
  const logs = new Map<string, Write[]>(plan.devices.map((d) => [d, []]));
  const entry = (device: string, index: number): Write => logs.get(device)![index]!;
  const states = plan.devices.map((_, d) => ({
    received: new Map<string, number>(), // closed: every entry's causal past comes along
    context: new Map<string, number>(), // the context of this device's last entry
    clock: new HybridLogicalClock(() => trueTime + plan.skews[d]!),
  }));
  const writes: Write[] = [];
  const past = new Map<string, Set<string>>();

  for (const step of plan.steps) {
    const self = plan.devices[step.device]!;
    const state = states[step.device]!;
    if (step.kind === 'deliver') {
      if (writes.length > 0) join(state.received, knownThrough(writes[step.entry % writes.length]!), self);
      continue;
    }
    trueTime += step.advance;
    // A random subset of the received entries, each with its causal past, on top of
    // the previous context: closed and monotone, as SPEC.md 8.2 requires.
    const context = new Map(state.context);
    let k = 0;
    for (const [device, size] of state.received) {
      for (let i = 0; i < size; i++) {
        if (step.picks[k++ % step.picks.length]) join(context, knownThrough(entry(device, i)), self);
      }
    }
    if (plan.observes[step.device]) {
      // Clocks within one log increase, so the last entry of each log is the largest there.
      for (const [device, size] of context) state.clock.observe(entry(device, size - 1).clock);
    }
    const log = logs.get(self)!;
    const write: Write = {
      device: self,
      index: log.length,
      vector: context,
      clock: state.clock.tick(),
      value: `${self.slice(0, 6)}#${log.length}`,
    };
    state.context = context;

    // The oracle: parents are the writer's previous entry and the last entry of each
    // context device; the causal past is everything reachable from them.
    const ancestors = new Set<string>();
    const parents = [...context].map(([device, size]) => entry(device, size - 1));
    if (write.index > 0) parents.push(entry(self, write.index - 1));
    for (const parent of parents) {
      ancestors.add(idOf(parent));
      for (const a of past.get(idOf(parent))!) ancestors.add(a);
    }
    past.set(idOf(write), ancestors);
    log.push(write);
    writes.push(write);
  }
  return { devices: plan.devices, writes, past };
}

const historyArb = planArb.map(simulate);

const causallyBefore = (h: History, a: Write, b: Write): boolean => h.past.get(idOf(b))!.has(idOf(a));

/** A history with some selections of its writes: any subset, in any order, with repeats. */
const historyWithSelectionsArb = historyArb.chain((history) =>
  fc.record({
    history: fc.constant(history),
    selections: fc.array(
      history.writes.length === 0
        ? fc.constant([] as Write[])
        : fc.array(fc.constantFrom(...history.writes), { maxLength: 2 * history.writes.length }),
      { minLength: 3, maxLength: 3 },
    ),
  }),
);

/** A history with several full delivery orders of its writes, each with some writes repeated. */
const historyWithOrdersArb = historyArb.chain((history) =>
  fc.record({
    history: fc.constant(history),
    orders: fc.array(
      fc
        .tuple(
          fc.shuffledSubarray(history.writes, { minLength: history.writes.length }),
          fc.shuffledSubarray(history.writes),
          fc.nat(),
        )
        .map(([all, repeats, cut]) => {
          // Repeats spliced in at a random place: redelivery after a reconnect.
          const at = all.length === 0 ? 0 : cut % (all.length + 1);
          return [...all.slice(0, at), ...repeats, ...all.slice(at)];
        }),
      { minLength: 2, maxLength: 4 },
    ),
  }),
);

function registerOf(writes: readonly Write[]): MultiValueRegister<string> {
  const register = new MultiValueRegister<string>();
  for (const w of writes) register.add(w);
  return register;
}

function merged(...registers: MultiValueRegister<string>[]): MultiValueRegister<string> {
  const result = new MultiValueRegister<string>();
  for (const r of registers) result.merge(r);
  return result;
}

/** Siblings are in winner-first order: later clock first, then larger device key. */
function isRanked(siblings: readonly Write[]): boolean {
  for (let i = 1; i < siblings.length; i++) {
    const a = siblings[i - 1]!;
    const b = siblings[i]!;
    const byClock = compareClocks(a.clock, b.clock);
    if (byClock < 0 || (byClock === 0 && a.device <= b.device)) return false;
  }
  return true;
}

test('the simulator makes closed contexts, so happenedBefore agrees with a walk of the causal graph', (t) => {
  fc.assert(
    fc.property(historyArb, (h) => {
      const disagreements: string[] = [];
      for (const a of h.writes) {
        for (const b of h.writes) {
          if (happenedBefore(a, b) !== causallyBefore(h, a, b)) disagreements.push(`${idOf(a)} -> ${idOf(b)}`);
        }
      }
      t.deepEqual(disagreements, []);
    }),
    { numRuns: RUNS },
  );
});

test('concurrentSiblings keeps exactly the writes nothing happened after, each once, winner first', (t) => {
  fc.assert(
    fc.property(historyWithSelectionsArb, ({ history: h, selections: [selection] }) => {
      const siblings = concurrentSiblings(selection!);
      const unique = [...new Map(selection!.map((w) => [idOf(w), w])).values()];
      const expected = unique.filter((w) => !unique.some((other) => causallyBefore(h, w, other)));
      t.deepEqual(idsOf(siblings).sort(), idsOf(expected).sort());
      t.is(siblings.length, expected.length, 'no write twice');
      t.true(isRanked(siblings), 'winner first, then by clock and device key');
    }),
    { numRuns: RUNS },
  );
});

test('merge is commutative, associative and idempotent', (t) => {
  fc.assert(
    fc.property(historyWithSelectionsArb, ({ selections }) => {
      const [a, b, c] = selections.map(registerOf) as [
        MultiValueRegister<string>,
        MultiValueRegister<string>,
        MultiValueRegister<string>,
      ];
      const ids = (r: MultiValueRegister<string>): string[] => idsOf(r.siblings());

      t.deepEqual(ids(merged(a, b)), ids(merged(b, a)), 'commutative');
      t.deepEqual(ids(merged(merged(a, b), c)), ids(merged(a, merged(b, c))), 'associative');

      t.deepEqual(ids(merged(a, a)), ids(a), 'idempotent');
      const again = merged(a);
      again.merge(again);
      t.deepEqual(ids(again), ids(a), 'merging a register into itself');
      for (const w of a.siblings()) again.add(w);
      t.deepEqual(ids(again), ids(a), 'adding what is already there');
      for (const w of selections[0]!) again.add(w);
      t.deepEqual(ids(again), ids(a), 'adding what was already superseded');
    }),
    { numRuns: RUNS },
  );
});

test('convergence: every delivery order, with repeats and gossip, gives the same siblings and winner', (t) => {
  fc.assert(
    fc.property(historyWithOrdersArb, ({ history: h, orders }) => {
      const expected = idsOf(concurrentSiblings(h.writes));
      for (const order of orders) {
        const replica = registerOf(order);
        t.deepEqual(idsOf(replica.siblings()), expected);
        t.is(replica.winner() && idOf(replica.winner()!), expected[0]);

        // The same writes reaching two replicas in halves, then gossiped between them.
        const half = Math.floor(order.length / 2);
        const left = registerOf(order.slice(0, half));
        const right = registerOf(order.slice(half));
        left.merge(right);
        right.merge(left);
        t.deepEqual(idsOf(left.siblings()), expected);
        t.deepEqual(idsOf(right.siblings()), expected);
      }
    }),
    { numRuns: RUNS },
  );
});

test('a write that happened after another always supersedes it, in any arrival order', (t) => {
  fc.assert(
    fc.property(historyWithOrdersArb, ({ history: h, orders }) => {
      for (const order of orders) {
        const replica = new MultiValueRegister<string>();
        const arrived = new Map<string, Write>();
        for (const w of order) {
          replica.add(w);
          arrived.set(idOf(w), w);
          const siblings = new Set(idsOf(replica.siblings()));
          for (const earlier of arrived.values()) {
            const superseded = [...arrived.values()].some((later) => causallyBefore(h, earlier, later));
            t.is(siblings.has(idOf(earlier)), !superseded, idOf(earlier));
          }
        }
      }
    }),
    { numRuns: RUNS / 2 },
  );
});

test('sibling count never exceeds the number of devices, however many writes', (t) => {
  let most = 0;
  fc.assert(
    fc.property(historyWithOrdersArb, ({ history: h, orders }) => {
      const replica = new MultiValueRegister<string>();
      for (const w of orders[0]!) {
        replica.add(w);
        t.true(replica.siblings().length <= h.devices.length);
        t.is(new Set(replica.siblings().map((s) => s.device)).size, replica.siblings().length, 'one per device');
        most = Math.max(most, replica.siblings().length);
      }
    }),
    { numRuns: RUNS },
  );
  t.true(most >= 3, 'the histories include several concurrent writers');
});

test('the winner is the same on every replica and is the first sibling, by clock then device key', (t) => {
  let decidedByDevice = 0;
  fc.assert(
    fc.property(historyWithOrdersArb, ({ orders }) => {
      const replicas = orders.map(registerOf);
      const winners = new Set(replicas.map((r) => r.winner() && idOf(r.winner()!)));
      t.is(winners.size, 1, 'one winner everywhere');
      for (const r of replicas) {
        const siblings = r.siblings();
        t.is(r.winner(), siblings[0]);
        t.is(r.winner() === undefined, siblings.length === 0);
        t.true(isRanked(siblings));
        if (siblings.length > 1 && compareClocks(siblings[0]!.clock, siblings[1]!.clock) === 0) decidedByDevice++;
      }
    }),
    { numRuns: RUNS },
  );
  t.true(decidedByDevice > 0, 'some histories have siblings whose clocks tie');
});

test('skew cannot reorder causality: a causally later write wins even with a smaller clock', (t) => {
  let inversions = 0;
  fc.assert(
    fc.property(historyArb, (h) => {
      for (const a of h.writes) {
        for (const b of h.writes) {
          if (!causallyBefore(h, a, b) || compareClocks(a.clock, b.clock) <= 0) continue;
          // a's clock is larger, yet b overwrote a: b must win, whichever arrives first.
          inversions++;
          t.deepEqual(idsOf(registerOf([a, b]).siblings()), [idOf(b)]);
          t.deepEqual(idsOf(registerOf([b, a]).siblings()), [idOf(b)]);
        }
      }
    }),
    { numRuns: RUNS },
  );
  t.true(inversions > 0, 'the histories include clocks that contradict causality');
});

// Hand-written cases, readable as examples of the rules.

const FAST = 'f'.repeat(64); // a device whose clock is ten years ahead
const SLOW = '1'.repeat(64); // a device whose clock is ten years behind
const NOW = 1_700_000_000_000;

function write<T>(device: string, index: number, vector: [string, number][], clock: bigint, value: T, counter = 0) {
  return { device, index, vector: new Map(vector), clock: { wallMs: clock, counter }, value };
}

test('a device with a fast clock loses to a later write from a device with a slow clock', (t) => {
  const fast = new HybridLogicalClock(() => NOW + 10 * YEAR_MS);
  const slow = new HybridLogicalClock(() => NOW - 10 * YEAR_MS);
  const first: VersionedWrite<string> = { ...write(FAST, 0, [], 0n, 'from the future'), clock: fast.tick() };

  // Following the clock rule, the slow device observes what it read: its clock jumps ahead.
  slow.observe(first.clock);
  const honest = { ...write(SLOW, 0, [[FAST, 1]], 0n, 'overwrites it'), clock: slow.tick() };
  t.true(compareClocks(honest.clock, first.clock) > 0);
  t.deepEqual(registerOf([honest, first]).siblings(), [honest]);

  // A writer that breaks the clock rule still cannot undo causality.
  const rogue = write(SLOW, 0, [[FAST, 1]], BigInt(NOW - 10 * YEAR_MS), 'overwrites it too');
  t.true(compareClocks(rogue.clock, first.clock) < 0);
  t.deepEqual(registerOf([rogue, first]).siblings(), [rogue]);
  t.deepEqual(registerOf([first, rogue]).winner(), rogue);
});

test('concurrent writes are all kept; the later clock wins, even a skewed one', (t) => {
  const fromFuture = write(FAST, 0, [], BigInt(NOW + 10 * YEAR_MS), 'a');
  const fromNow = write(SLOW, 0, [], BigInt(NOW), 'b');
  const register = registerOf([fromNow, fromFuture]);
  // The fast device wins the tie-break, but nothing is lost: both are siblings.
  t.deepEqual(register.siblings(), [fromFuture, fromNow]);
});

test('equal clocks are decided by the larger device key, whatever the arrival order', (t) => {
  const low = write('0a'.repeat(32), 4, [], 500n, 'low', 2);
  const high = write('a0'.repeat(32), 9, [], 500n, 'high', 2);
  t.deepEqual(registerOf([low, high]).siblings(), [high, low]);
  t.deepEqual(registerOf([high, low]).siblings(), [high, low]);
  t.is(registerOf([low, high]).winner(), high);
});

test('a write added twice, or its copy, is one sibling', (t) => {
  const w = write(FAST, 0, [], 1n, 'x');
  const register = registerOf([w, w, { ...w, vector: new Map() }]);
  t.is(register.siblings().length, 1);
  t.deepEqual(concurrentSiblings([w, w]), [w]);
});

test('a tombstone is a value like any other', (t) => {
  type V = { deleted: true } | { set: string };
  const set = write<V>(SLOW, 0, [], 10n, { set: 'hello' });
  const concurrentDelete = write<V>(FAST, 0, [], 5n, { deleted: true });
  const register = new MultiValueRegister<V>([set, concurrentDelete]);
  t.deepEqual(
    register.siblings().map((s) => s.value),
    [{ set: 'hello' }, { deleted: true }],
  );
  // A delete that saw both writes supersedes them: the key is deleted everywhere.
  const laterDelete = write<V>(FAST, 1, [[SLOW, 1]], 11n, { deleted: true });
  register.add(laterDelete);
  t.deepEqual(register.siblings(), [laterDelete]);
});

test('an empty register has no winner; siblings() is a snapshot', (t) => {
  const register = new MultiValueRegister<string>();
  t.is(register.winner(), undefined);
  t.deepEqual(register.siblings(), []);
  const before = register.siblings();
  register.add(write(FAST, 0, [], 1n, 'x'));
  t.deepEqual(before, []);
  t.true(Object.isFrozen(register.siblings()));
});

test('happenedBefore reads the context: index below the size means seen', (t) => {
  const a = write(FAST, 2, [], 1n, 'a');
  t.true(happenedBefore(a, write(SLOW, 0, [[FAST, 3]], 0n, 'b')));
  t.false(happenedBefore(a, write(SLOW, 0, [[FAST, 2]], 0n, 'b')), 'size 2 covers indexes 0 and 1');
  t.false(happenedBefore(a, write(SLOW, 0, [], 0n, 'b')));
  t.true(happenedBefore(a, write(FAST, 3, [], 0n, 'b')), 'the same log: earlier index');
  t.false(happenedBefore(a, a), 'not before itself');
});
