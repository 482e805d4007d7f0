/**
 * The chaos harness's own tests: the seeded PRNG, the link proxy's faults
 * (against small local servers), the fault schedule's invariants, the
 * workload plan, the history, the checker (each check against hand-made
 * histories that must fail), and one small cluster of real servers.
 */
import net from 'node:net';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { listen } from './support/listen.js';
import {
  checkHistory,
  formatReport,
  type CheckInput,
  type CheckName,
  type ReplicaSnapshot,
} from './support/chaos/checker.js';
import { Cluster } from './support/chaos/cluster.js';
import { History, type Operation, type WriteEntry } from './support/chaos/history.js';
import { LinkProxy } from './support/chaos/link-proxy.js';
import { Random, seedFromEnv } from './support/chaos/random.js';
import { faultSchedule, firstEvents, type FaultEvent, type ScheduleOptions } from './support/chaos/schedule.js';
import type { ChaosConfig } from './support/chaos/run.js';
import { followedPlan } from './support/chaos/verdict.js';
import { sessionPlan } from './support/chaos/workload.js';

// ---------------------------------------------------------------- random

test('random: one seed, one sequence; another seed, another', (t) => {
  const draw = (seed: string | number) => {
    const r = new Random(seed);
    return Array.from({ length: 50 }, () => r.uint32());
  };
  t.deepEqual(draw('abc'), draw('abc'));
  t.deepEqual(draw(7), draw(7));
  t.notDeepEqual(draw('abc'), draw('abd'));
  t.notDeepEqual(draw(7), draw(8));
});

test('random: forks are deterministic and independent of draws from the parent', (t) => {
  const a = new Random('seed');
  const b = new Random('seed');
  b.next();
  b.next();
  const fa = a.fork('faults');
  const fb = b.fork('faults');
  t.deepEqual(
    Array.from({ length: 10 }, () => fa.next()),
    Array.from({ length: 10 }, () => fb.next()),
  );
  t.not(new Random('seed').fork('x').next(), new Random('seed').fork('y').next());
});

test('random: ranges, weights and shuffles stay within bounds', (t) => {
  const r = new Random(42);
  const seen = new Set<number>();
  for (let i = 0; i < 2000; i++) {
    const n = r.int(3, 7);
    t.true(n >= 3 && n <= 7 && Number.isInteger(n));
    seen.add(n);
    const x = r.next();
    t.true(x >= 0 && x < 1);
    t.not(r.weighted({ a: 1, b: 0, c: 2 }), 'b');
  }
  t.deepEqual([...seen].sort(), [3, 4, 5, 6, 7]);
  t.deepEqual(r.shuffle([1, 2, 3, 4, 5]).sort(), [1, 2, 3, 4, 5]);
  t.throws(() => r.weighted({ a: 0 }));
  t.throws(() => r.pick([]));
});

test('random: the seed comes from CHAOS_SEED when set', (t) => {
  t.is(seedFromEnv('fallback', {}), 'fallback');
  t.is(seedFromEnv('fallback', { CHAOS_SEED: ' 1234 ' }), '1234');
  t.is(seedFromEnv('fallback', { CHAOS_SEED: '' }), 'fallback');
});

// ---------------------------------------------------------------- link proxy

/** A TCP server that echoes, and records what each connection received, in arrival order. */
async function echoServer(): Promise<{
  url: string;
  received: string[];
  connections: () => number;
  close(): Promise<void>;
}> {
  const received: string[] = [];
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('data', (chunk: Buffer) => {
      received.push(chunk.toString());
      socket.write(chunk);
    });
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    received,
    connections: () => connections,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function connect(url: string): Promise<net.Socket> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), '127.0.0.1', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Writes `text` and resolves with the first answer, or 'closed' / 'silent' after `ms`. */
function exchange(socket: net.Socket, text: string, ms = 1000): Promise<string> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve('silent'), ms);
    socket.once('data', (chunk: Buffer) => {
      clearTimeout(timer);
      resolve(chunk.toString());
    });
    socket.once('close', () => {
      clearTimeout(timer);
      resolve('closed');
    });
    socket.on('error', () => undefined);
    socket.write(text);
  });
}

/** Connects and exchanges; a connection reset before or after connecting is 'closed'. */
async function exchangeNew(url: string, text: string, ms = 1000): Promise<string> {
  let socket: net.Socket;
  try {
    socket = await connect(url);
  } catch {
    return 'closed';
  }
  const answer = await exchange(socket, text, ms);
  socket.destroy();
  return answer;
}

const closed = (socket: net.Socket) =>
  new Promise<void>((resolve) => {
    if (socket.destroyed) resolve();
    socket.once('close', () => resolve());
  });

test('link proxy: passes bytes both ways and counts them', async (t) => {
  const echo = await echoServer();
  const proxy = await LinkProxy.start({ name: 'a->b', target: echo.url, random: new Random(1) });
  t.teardown(async () => {
    await proxy.close();
    await echo.close();
  });
  const socket = await connect(proxy.url);
  t.is(await exchange(socket, 'hello'), 'hello');
  socket.destroy();
  t.is(proxy.stats.connections, 1);
  t.is(proxy.stats.bytesUp, 5);
});

test('link proxy: a refusing cut resets open connections and every new one; healing restores the link', async (t) => {
  const echo = await echoServer();
  const proxy = await LinkProxy.start({ name: 'a->b', target: echo.url, random: new Random(1) });
  t.teardown(async () => {
    await proxy.close();
    await echo.close();
  });
  const open = await connect(proxy.url);
  t.is(await exchange(open, 'x'), 'x');
  proxy.setCut('refuse');
  await closed(open);
  t.is(proxy.stats.reset, 1);
  t.is(await exchangeNew(proxy.url, 'y'), 'closed');
  t.is(proxy.stats.refused, 1);
  t.false(echo.received.includes('y'), 'nothing crosses a cut link');
  proxy.setCut(undefined);
  const healed = await connect(proxy.url);
  t.is(await exchange(healed, 'z'), 'z');
  healed.destroy();
});

test('link proxy: a blackhole accepts and never answers, and drops what it held when it ends', async (t) => {
  const echo = await echoServer();
  const proxy = await LinkProxy.start({ name: 'a->b', target: echo.url, random: new Random(1) });
  t.teardown(async () => {
    await proxy.close();
    await echo.close();
  });
  proxy.setFaults({ cut: 'blackhole' });
  const held = await connect(proxy.url);
  t.is(await exchange(held, 'lost', 300), 'silent');
  t.is(echo.connections(), 0, 'the target never saw the connection');
  proxy.setFaults({});
  await closed(held);
  const fresh = await connect(proxy.url);
  t.is(await exchange(fresh, 'back'), 'back');
  fresh.destroy();
});

test('link proxy: delay holds every chunk, both ways, and keeps their order', async (t) => {
  const echo = await echoServer();
  const proxy = await LinkProxy.start({ name: 'a->b', target: echo.url, random: new Random(1) });
  t.teardown(async () => {
    await proxy.close();
    await echo.close();
  });
  proxy.setFaults({ delay: { ms: 100, jitterMs: 50 } });
  const socket = await connect(proxy.url);
  const started = Date.now();
  t.is(await exchange(socket, 'slow'), 'slow');
  t.true(Date.now() - started >= 195, `a round trip took ${Date.now() - started} ms`);
  // Several chunks with jitter arrive in the order they were sent.
  const answers: string[] = [];
  socket.on('data', (chunk: Buffer) => answers.push(chunk.toString()));
  for (const part of ['1', '2', '3', '4', '5']) {
    socket.write(part);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  await new Promise((resolve) => setTimeout(resolve, 600));
  t.is(answers.join(''), '12345');
  t.true(proxy.stats.delayed >= 2, `${proxy.stats.delayed} chunks delayed`);
  socket.destroy();
});

test('link proxy: duplicate replays the whole request on a second connection, the caller sees one answer', async (t) => {
  const requests: string[] = [];
  const http = await listen((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      requests.push(`${req.method} ${req.url} ${body}`);
      res.end(`answer ${requests.length}`);
    });
  });
  const proxy = await LinkProxy.start({ name: 'a->b', target: http.url, random: new Random(1) });
  t.teardown(async () => {
    await proxy.close();
    await http.close();
  });
  proxy.setFaults({ duplicate: { probability: 1, lagMs: 50 } });
  const response = await fetch(`${proxy.url}/append`, { method: 'POST', body: 'entry-7' });
  t.is(await response.text(), 'answer 1');
  await new Promise((resolve) => setTimeout(resolve, 300));
  t.deepEqual(requests, ['POST /append entry-7', 'POST /append entry-7']);
  t.is(proxy.stats.duplicated, 1);
  // A replay still on its way when the link is cut does not cross the cut.
  proxy.setFaults({ duplicate: { probability: 1, lagMs: 300 } });
  const socket = await connect(proxy.url); // a new connection, so a new coin flip and a new lag
  const answer = await exchange(socket, 'POST /append HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\nentry-8');
  t.regex(answer, /answer \d$/);
  proxy.setCut('refuse');
  await new Promise((resolve) => setTimeout(resolve, 600));
  t.is(requests.filter((r) => r.endsWith('entry-8')).length, 1);
});

test('link proxy: reorder lets a later connection overtake a held one', async (t) => {
  const echo = await echoServer();
  const proxy = await LinkProxy.start({ name: 'a->b', target: echo.url, random: new Random(1) });
  t.teardown(async () => {
    await proxy.close();
    await echo.close();
  });
  proxy.setFaults({ reorder: { probability: 1, maxHoldMs: 2000 } });
  const first = await connect(proxy.url);
  const firstAnswer = exchange(first, 'first', 3000);
  await new Promise((resolve) => setTimeout(resolve, 50));
  const second = await connect(proxy.url);
  t.is(await exchange(second, 'second'), 'second');
  t.is(await firstAnswer, 'first');
  t.deepEqual(echo.received, ['second', 'first']);
  t.is(proxy.stats.reordered, 1);
  // Alone, a held connection goes after maxHoldMs: reordering never loses bytes.
  proxy.setFaults({ reorder: { probability: 1, maxHoldMs: 100 } });
  const alone = await connect(proxy.url);
  t.is(await exchange(alone, 'alone'), 'alone');
  for (const socket of [first, second, alone]) socket.destroy();
});

test('link proxy: re-targeting resets open connections and leads new ones to the new target', async (t) => {
  const one = await echoServer();
  const two = await echoServer();
  const proxy = await LinkProxy.start({ name: 'a->b', target: one.url, random: new Random(1) });
  t.teardown(async () => {
    await proxy.close();
    await one.close();
    await two.close();
  });
  const open = await connect(proxy.url);
  t.is(await exchange(open, 'a'), 'a');
  proxy.retarget(two.url);
  await closed(open);
  const moved = await connect(proxy.url);
  t.is(await exchange(moved, 'b'), 'b');
  t.deepEqual(two.received, ['b']);
  proxy.retarget(undefined);
  t.is(await exchangeNew(proxy.url, 'c'), 'closed');
  moved.destroy();
});

test('link proxy: a killed target reaches the caller as a reset', async (t) => {
  const echo = await echoServer();
  const target = echo.url;
  await echo.close();
  const proxy = await LinkProxy.start({ name: 'a->b', target, random: new Random(1) });
  t.teardown(() => proxy.close());
  t.is(await exchangeNew(proxy.url, 'anyone?'), 'closed');
  t.is(proxy.stats.upstreamFailed, 1);
});

// ---------------------------------------------------------------- schedule

const scheduleOptions: ScheduleOptions = { replicas: 3, clients: ['c0', 'c1', 'c2', 'c3'], peers: true };

test('schedule: a pure function of the seed', (t) => {
  t.deepEqual(firstEvents(new Random('s1'), scheduleOptions, 200), firstEvents(new Random('s1'), scheduleOptions, 200));
  t.notDeepEqual(
    firstEvents(new Random('s1'), scheduleOptions, 200),
    firstEvents(new Random('s2'), scheduleOptions, 200),
  );
});

/** Replays a schedule's events against a model of the cluster, failing on anything impossible. */
function replaySchedule(events: readonly FaultEvent[], maxDown: number): { maxDownSeen: number; kinds: Set<string> } {
  const state = new Map<number, 'running' | 'killed' | 'paused'>([0, 1, 2].map((r) => [r, 'running']));
  const impaired = new Set<string>();
  let partitioned = false;
  let last = 0;
  let maxDownSeen = 0;
  const kinds = new Set<string>();
  const nodes = new Set(['c0', 'c1', 'c2', 'c3', 'r0', 'r1', 'r2']);
  for (const { atMs, action } of events) {
    if (atMs < last) throw new Error(`event at ${atMs} after one at ${last}`);
    last = atMs;
    kinds.add(action.kind);
    switch (action.kind) {
      case 'kill':
      case 'pause':
        if (state.get(action.replica) !== 'running') throw new Error(`${action.kind} of a replica that is down`);
        state.set(action.replica, action.kind === 'kill' ? 'killed' : 'paused');
        break;
      case 'restart':
        if (state.get(action.replica) !== 'killed') throw new Error('restart of a replica not killed');
        state.set(action.replica, 'running');
        break;
      case 'resume':
        if (state.get(action.replica) !== 'paused') throw new Error('resume of a replica not paused');
        state.set(action.replica, 'running');
        break;
      case 'partition': {
        if (partitioned) throw new Error('two partitions at once');
        partitioned = true;
        const listed = action.groups.flat();
        if (action.groups.some((g) => g.length === 0)) throw new Error('an empty group');
        if (new Set(listed).size !== listed.length || listed.some((n) => !nodes.has(n)) || listed.length !== nodes.size)
          throw new Error(`bad groups ${JSON.stringify(action.groups)}`);
        break;
      }
      case 'heal':
        if (!partitioned) throw new Error('heal without a partition');
        partitioned = false;
        break;
      case 'impair':
        if (impaired.has(`${action.from}->${action.to}`)) throw new Error('impair of an impaired link');
        if (Object.keys(action.faults).length === 0) throw new Error('an impairment with no fault');
        impaired.add(`${action.from}->${action.to}`);
        break;
      case 'restore':
        if (!impaired.delete(`${action.from}->${action.to}`)) throw new Error('restore of a healthy link');
        break;
    }
    const down = [...state.values()].filter((s) => s !== 'running').length;
    if (down > maxDown) throw new Error(`${down} replicas down at ${atMs} ms`);
    maxDownSeen = Math.max(maxDownSeen, down);
  }
  return { maxDownSeen, kinds };
}

test('schedule: every fault is undone, limits hold, and the run starts with a kill and a partition', (t) => {
  for (const seed of ['a', 'b', 'c', 'd', 'e']) {
    const events = firstEvents(new Random(seed), scheduleOptions, 600);
    const { maxDownSeen, kinds } = replaySchedule(events, 1);
    t.is(maxDownSeen, 1);
    t.deepEqual([...kinds].sort(), ['heal', 'impair', 'kill', 'partition', 'pause', 'restart', 'restore', 'resume']);
    t.is(events[0]!.action.kind, 'kill', 'a kill comes first, so even a short run has one');
    t.true(events.slice(0, 4).some((e) => e.action.kind === 'partition'));
  }
  const two = firstEvents(new Random('x'), { ...scheduleOptions, maxDown: 2, gapMs: [50, 200] }, 600);
  t.is(replaySchedule(two, 2).maxDownSeen, 2);
  t.throws(() =>
    firstEvents(
      new Random('x'),
      { ...scheduleOptions, weights: { kill: 0, pause: 0, partition: 0, impair: 0 }, first: [] },
      1,
    ),
  );
});

test('schedule: without peers, faults touch only client links', (t) => {
  const events = firstEvents(new Random('p'), { ...scheduleOptions, peers: false, weights: { impair: 10 } }, 300);
  for (const { action } of events) if (action.kind === 'impair') t.regex(action.from, /^c\d$/);
  t.true(events.some((e) => e.action.kind === 'impair'));
  // The stream goes on as long as it is read.
  const stream = faultSchedule(new Random('p'), scheduleOptions);
  for (let i = 0; i < 5000; i++) stream.next();
  t.pass();
});

// ---------------------------------------------------------------- workload plan and history

test('workload: a session plan is a pure function of its seed, with unique values', (t) => {
  const take = (seed: string) => {
    const plan = sessionPlan(new Random(seed), 'c1', { keys: 6 });
    return Array.from({ length: 300 }, () => plan.next().value);
  };
  const ops = take('w');
  t.deepEqual(ops, take('w'));
  t.notDeepEqual(ops, take('v'));
  const values = ops.filter((op) => op.f === 'set').map((op) => op.value);
  t.is(new Set(values).size, values.length);
  t.true(ops.every((op) => /^k[0-5]$/.test(op.key)));
  t.deepEqual([...new Set(ops.map((op) => op.f))].sort(), ['get', 'getAll', 'set']);
  t.deepEqual([...new Set(ops.filter((op) => op.f === 'set').map((op) => op.level))].sort(), ['all', 'one', 'quorum']);
});

test('history: records invocations and completions, refuses a second completion, dumps JSON', async (t) => {
  const history = new History({ seed: 'h' });
  const write = history.invoke({ session: 'c0', f: 'set', key: 'k', level: 'all', value: 'c0:0' });
  const read = history.invoke({ session: 'c1', f: 'get', key: 'k', level: 'one' });
  const lost = history.invoke({ session: 'c2', f: 'set', key: 'k', level: 'one', value: 'c2:0' });
  write.unknown(Object.assign(new Error('only 1 of 3 replicas'), { code: 'UNAVAILABLE' }), {
    entry: { device: 'd0', index: 0, context: {} },
  });
  read.ok({ observed: [] });
  t.throws(() => read.fail(new Error('again')), { message: /completed twice/ });
  t.is(history.ops[0]!.outcome, 'unknown');
  t.deepEqual(history.ops[0]!.error, { code: 'UNAVAILABLE', message: 'only 1 of 3 replicas' });
  t.is(history.ops[2]!.outcome, undefined, 'still pending');
  t.deepEqual(history.summary(), { 'set unknown': 1, 'get ok': 1, 'set pending': 1 });
  lost.fail(new Error('no'));
  const file = await history.dump(path.join(os.tmpdir(), `e2ekv-history-test-${process.pid}.json`), {
    report: { valid: false },
  });
  const parsed = JSON.parse(await readFile(file, 'utf8')) as { meta: unknown; ops: Operation[]; report: unknown };
  t.deepEqual(parsed.meta, { seed: 'h' });
  t.is(parsed.ops.length, 3);
  t.deepEqual(parsed.report, { valid: false });
});

test("verdict: a history that follows its seed's plan is recognised, one that strays is not", (t) => {
  const config: ChaosConfig = {
    seed: 'plan-check',
    replicas: 3,
    writers: 2,
    ops: 10,
    minDurationMs: 0,
    maxDurationMs: 1000,
    keys: 4,
    thinkMs: [0, 0],
    requestTimeoutMs: 1000,
    quietMs: 0,
    replicasConverge: false,
    finalSyncMs: 0,
    log: () => undefined,
  };
  const sessions = ['c0', 'c1'];
  const build = (tamper: (history: History) => void = () => undefined) => {
    const history = new History();
    const faults = firstEvents(
      new Random(config.seed).fork('faults'),
      { replicas: 3, clients: sessions, peers: true },
      6,
    );
    for (const { atMs, action } of faults) history.fault({ origin: 'schedule', plannedMs: atMs, atMs, action });
    history.fault({ origin: 'heal', plannedMs: 99, atMs: 99, action: { kind: 'heal' } });
    for (const session of sessions) {
      const plan = sessionPlan(new Random(config.seed).fork(`plan ${session}`), session, { keys: config.keys });
      for (let i = 0; i < 5; i++) {
        const op = plan.next().value;
        history.invoke({
          session,
          f: op.f,
          key: op.key,
          level: op.level,
          ...(op.value === undefined ? {} : { value: op.value }),
        });
      }
    }
    tamper(history);
    return followedPlan(config, history, sessions);
  };
  t.true(build());
  t.false(build((h) => (h.ops[3]!.key = 'elsewhere')));
  t.false(build((h) => h.faults.splice(1, 1)));
  t.false(build((h) => h.ops.pop() && h.ops.push({ ...h.ops[0]!, session: 'c1' })));
});

// ---------------------------------------------------------------- checker

/**
 * Builds hand-made histories: devices A, B, C write; `set` returns the entry
 * so that later writes can name what they had seen.
 */
class Scenario {
  readonly ops: Operation[] = [];
  readonly #sizes = new Map<string, number>();
  #time = 0;

  set(
    session: string,
    key: string,
    value: string,
    seen: readonly WriteEntry[] = [],
    outcome: 'ok' | 'unknown' | 'fail' = 'ok',
  ): WriteEntry {
    const device = `dev-${session}`;
    const index = this.#sizes.get(device) ?? 0;
    const context: Record<string, number> = {};
    for (const w of seen) {
      if (w.device === device) continue;
      context[w.device] = Math.max(context[w.device] ?? 0, w.index + 1);
      for (const [d, n] of Object.entries(w.context)) if (d !== device) context[d] = Math.max(context[d] ?? 0, n);
    }
    const entry = { device, index, context };
    if (outcome !== 'fail') this.#sizes.set(device, index + 1);
    this.ops.push({
      id: this.ops.length,
      session,
      f: 'set',
      key,
      value,
      level: 'quorum',
      invokeMs: this.#time++,
      completeMs: this.#time++,
      outcome,
      ...(outcome === 'fail' ? { error: { message: 'refused' } } : { entry }),
    });
    return entry;
  }

  read(session: string, key: string, values: readonly string[], f: 'get' | 'getAll' = 'getAll'): void {
    this.ops.push({
      id: this.ops.length,
      session,
      f,
      key,
      level: 'one',
      invokeMs: this.#time++,
      completeMs: this.#time++,
      outcome: 'ok',
      observed: values.map((value) => ({ value, ...this.#entryOf(value) })),
    });
  }

  #entryOf(value: string): { device: string; index: number } | Record<string, never> {
    const entry = this.ops.find((op) => op.value === value)?.entry;
    return entry === undefined ? {} : { device: entry.device, index: entry.index };
  }

  /** A replica holding exactly these keys' siblings, with the vector that covers every write's entry. */
  replica(name: string, state: Record<string, readonly string[]>, vector?: Record<string, number>): ReplicaSnapshot {
    const sizes: Record<string, number> = {};
    for (const op of this.ops) {
      if (op.entry !== undefined && op.outcome !== 'fail')
        sizes[op.entry.device] = Math.max(sizes[op.entry.device] ?? 0, op.entry.index + 1);
    }
    return {
      replica: name,
      vector: vector ?? sizes,
      state: Object.fromEntries(
        Object.entries(state).map(([key, values]) => [
          key,
          values.map((value) => ({ value, ...this.#entryOf(value) })),
        ]),
      ),
    };
  }

  check(replicas: readonly ReplicaSnapshot[], extra: Partial<CheckInput> = {}) {
    return checkHistory({ ops: this.ops, replicas, writers: 3, ...extra });
  }
}

/** The checks that failed. */
function failed(report: ReturnType<typeof checkHistory>): CheckName[] {
  return (Object.keys(report.checks) as CheckName[]).filter((name) => !report.checks[name].valid);
}

/** A valid run: A and B write k concurrently, C overwrites after seeing both; reads along the way. */
function validScenario(): { s: Scenario; final: Record<string, string[]> } {
  const s = new Scenario();
  const a1 = s.set('A', 'k', 'A:1');
  s.read('A', 'k', ['A:1']);
  const b1 = s.set('B', 'k', 'B:1');
  s.read('B', 'k', ['B:1']);
  s.read('C', 'k', ['A:1', 'B:1']);
  s.set('C', 'k', 'C:1', [a1, b1]);
  s.read('C', 'k', ['C:1']);
  s.read('A', 'k', ['A:1', 'B:1']);
  s.read('A', 'k', ['C:1'], 'get');
  s.set('B', 'j', 'B:2', [a1]);
  s.set('A', 'j', 'A:2', [], 'unknown');
  s.set('A', 'j', 'A:fail', [], 'fail');
  return { s, final: { k: ['C:1'], j: ['B:2', 'A:2'] } };
}

test('checker: a valid history passes every check, and every check had something to check', (t) => {
  const { s, final } = validScenario();
  const report = s.check([s.replica('r0', final), s.replica('r1', final), s.replica('r2', final)], {
    probes: [{ replica: 'r1', atMs: 5, acknowledged: { 'dev-A': 1 }, held: { 'dev-A': 2 } }],
    requireUnacknowledged: true,
  });
  t.true(report.valid, formatReport(report));
  for (const [name, result] of Object.entries(report.checks)) t.true(result.checked > 0, `${name} checked nothing`);
  t.is(report.stats.maxSiblings, 2);
  t.is(report.stats.conflictedReads, 2);
});

test('checker: an acknowledged write missing from one replica is a lost write, named with the replica', (t) => {
  const { s, final } = validScenario();
  const short = s.replica('r2', final, { 'dev-A': 2, 'dev-B': 1, 'dev-C': 1 }); // B:2 is entry 1 of B
  const report = s.check([s.replica('r0', final), s.replica('r1', final), short]);
  t.deepEqual(failed(report), ['lost-writes', 'convergence']);
  const [violation] = report.checks['lost-writes'].violations;
  t.is(violation?.replica, 'r2');
  t.regex(
    violation?.message ?? '',
    /replica r2 holds 1 entries of B's log, so not the acknowledged set #\d+ of "j" by B \(value "B:2"/,
  );
});

test('checker: a replica whose state no longer shows an acknowledged write (nor anything after it) loses it', (t) => {
  const { s, final } = validScenario();
  const wrong = { ...final, j: ['A:2'] }; // B:2 vanished though the vector covers it
  const report = s.check([s.replica('r0', final), s.replica('r1', wrong), s.replica('r2', final)]);
  t.true(failed(report).includes('lost-writes'));
  t.regex(
    report.checks['lost-writes'].violations[0]!.message,
    /replica r1 shows A#1 for "j": neither the acknowledged .* nor a write after it/,
  );
  // A write superseded by a later one that saw it is not lost.
  t.false(report.checks['lost-writes'].violations.some((v) => v.key === 'k'));
});

test('checker: an unacknowledged write may be missing, unless devices were required to deliver it', (t) => {
  const { s, final } = validScenario();
  const without = { ...final, j: ['B:2'] };
  const vector = { 'dev-A': 1, 'dev-B': 2, 'dev-C': 1 };
  const replicas = ['r0', 'r1', 'r2'].map((r) => s.replica(r, without, vector));
  t.true(s.check(replicas).valid);
  const strict = s.check(replicas, { requireUnacknowledged: true });
  t.deepEqual(failed(strict), ['undelivered-writes']);
  t.regex(
    strict.checks['undelivered-writes'].violations[0]!.message,
    /holds 1 entries of A's log, so not the unacknowledged set/,
  );
});

test('checker: a get that returns a value older than one the session read is a stale read', (t) => {
  const s = new Scenario();
  const a1 = s.set('A', 'k', 'A:1');
  s.set('B', 'k', 'B:1', [a1]);
  s.read('C', 'k', ['B:1'], 'get');
  s.read('C', 'k', ['A:1'], 'get');
  const final = { k: ['B:1'] };
  const report = s.check([s.replica('r0', final)]);
  t.deepEqual(failed(report), ['monotonic-reads']);
  t.regex(
    report.checks['monotonic-reads'].violations[0]!.message,
    /get #3 of "k" by C returned A#0, older than B#0 that read #2/,
  );
});

test('checker: a read that returns nothing after a value was read is stale too', (t) => {
  const s = new Scenario();
  s.set('A', 'k', 'A:1');
  s.read('B', 'k', ['A:1'], 'get');
  s.read('B', 'k', [], 'getAll');
  t.deepEqual(failed(s.check([s.replica('r0', { k: ['A:1'] })])), ['monotonic-reads']);
});

test('checker: a getAll that loses sight of a concurrent sibling the session saw is stale', (t) => {
  const s = new Scenario();
  s.set('A', 'k', 'A:1');
  s.set('B', 'k', 'B:1');
  s.read('C', 'k', ['A:1', 'B:1']);
  s.read('C', 'k', ['A:1']);
  const final = { k: ['A:1', 'B:1'] };
  const report = s.check([s.replica('r0', final)]);
  t.deepEqual(failed(report), ['monotonic-reads']);
  // A get shows the winner only: the other sibling may still be there.
  const g = new Scenario();
  g.set('A', 'k', 'A:1');
  g.set('B', 'k', 'B:1');
  g.read('C', 'k', ['A:1', 'B:1']);
  g.read('C', 'k', ['A:1'], 'get');
  t.true(g.check([g.replica('r0', final)]).valid);
});

test('checker: a session that reads something older than its own write breaks read-your-writes', (t) => {
  const s = new Scenario();
  const a1 = s.set('A', 'k', 'A:1');
  s.set('B', 'k', 'B:1', [a1]);
  s.read('B', 'k', ['A:1'], 'get');
  const report = s.check([s.replica('r0', { k: ['B:1'] })]);
  t.deepEqual(failed(report), ['read-your-writes']);
  t.regex(
    report.checks['read-your-writes'].violations[0]!.message,
    /older than the session's own write B#0 \(set #1\)/,
  );
  // An unknown-outcome write is on the device too.
  const u = new Scenario();
  u.set('A', 'k', 'A:1', [], 'unknown');
  u.read('A', 'k', [], 'getAll');
  t.deepEqual(failed(u.check([u.replica('r0', { k: ['A:1'] })])), ['read-your-writes']);
});

test('checker: replicas that differ in vector, root, state or readability have not converged', (t) => {
  const { s, final } = validScenario();
  const good = () => s.replica('r0', final);
  const vectors = s.check([good(), s.replica('r1', final, { 'dev-A': 2, 'dev-B': 2, 'dev-C': 2 })]);
  t.deepEqual(failed(vectors), ['convergence']);
  t.regex(vectors.checks.convergence.violations[0]!.message, /disagree on the size of C's log: r0=1 r1=2/);

  const roots = s.check([
    { ...good(), roots: { 'dev-A': 'aa' } },
    { ...s.replica('r1', final), roots: { 'dev-A': 'bb' } },
  ]);
  t.deepEqual(failed(roots), ['convergence']);

  const states = s.check([good(), s.replica('r1', { ...final, k: ['C:1', 'A:1'] })]);
  t.true(failed(states).includes('convergence'));
  t.true(states.checks.convergence.violations.some((v) => v.key === 'k' && v.replica === 'r1'));

  const unreadable = s.check([good(), { replica: 'r1', vector: {}, state: {}, error: 'UNAVAILABLE' }]);
  t.deepEqual(failed(unreadable), ['convergence']);
  t.regex(unreadable.checks.convergence.violations[0]!.message, /replica r1 could not be read: UNAVAILABLE/);
});

test('checker: too many siblings, two of one device, or a superseded one beside its successor break the bound', (t) => {
  const s = new Scenario();
  const a1 = s.set('A', 'k', 'A:1');
  s.set('A', 'k', 'A:2');
  s.set('B', 'k', 'B:1', [a1]);
  s.set('C', 'k', 'C:1');
  s.set('D', 'k', 'D:1');
  s.read('C', 'k', ['A:2', 'B:1', 'C:1', 'D:1']);
  const base = { k: ['A:2', 'B:1', 'C:1', 'D:1'] };
  const tooMany = s.check([s.replica('r0', base)], { writers: 3 });
  t.deepEqual(failed(tooMany), ['sibling-bound']);
  t.regex(tooMany.checks['sibling-bound'].violations[0]!.message, /has 4 siblings, more than the 3 writers/);
  t.true(s.check([s.replica('r0', base)], { writers: 4 }).valid);

  const sameDevice = s.check([s.replica('r0', { k: ['A:1', 'A:2', 'B:1', 'C:1', 'D:1'] })], { writers: 9 });
  t.true(
    sameDevice.checks['sibling-bound'].violations.some((v) =>
      /two siblings of one device, A#0 and A#1/.test(v.message),
    ),
  );
  t.true(
    sameDevice.checks['sibling-bound'].violations.some((v) =>
      /keeps A#0 beside B#0, which superseded it/.test(v.message),
    ),
  );
});

test('checker: values nobody wrote, values under another key, other entries and failed writes are phantoms', (t) => {
  const s = new Scenario();
  s.set('A', 'k', 'A:1');
  s.set('A', 'j', 'A:2');
  s.set('B', 'k', 'B:fail', [], 'fail');
  s.read('C', 'k', ['forged'], 'get');
  s.read('C', 'j', ['A:1'], 'get');
  s.read('C', 'k', ['B:fail'], 'get');
  s.ops.push({
    id: s.ops.length,
    session: 'C',
    f: 'getAll',
    key: 'k',
    level: 'one',
    invokeMs: 99,
    outcome: 'ok',
    observed: [{ value: 'A:1', device: 'dev-B', index: 0 }],
  });
  const report = s.check([s.replica('r0', { k: ['A:1'], j: ['A:2'] })]);
  t.deepEqual(failed(report), ['phantom-values']);
  const messages = report.checks['phantom-values'].violations.map((v) => v.message);
  t.is(messages.length, 4);
  t.regex(messages[0]!, /"forged" for "k", a value no operation wrote/);
  t.regex(messages[1]!, /"A:1" under "j", but set #0 .* wrote it to "k"/);
  t.regex(messages[2]!, /written by set #2 .*, which failed/);
  t.regex(messages[3]!, /as entry dev-B#0, but set #0 .* wrote it as A#0/);
});

test('checker: a replica that lost acknowledged entries across kill -9 fails crash durability', (t) => {
  const { s, final } = validScenario();
  const replicas = [s.replica('r0', final)];
  const lost = s.check(replicas, {
    probes: [{ replica: 'r2', atMs: 1200, acknowledged: { 'dev-A': 2, 'dev-B': 1 }, held: { 'dev-A': 1, 'dev-B': 1 } }],
  });
  t.deepEqual(failed(lost), ['crash-durability']);
  t.regex(
    lost.checks['crash-durability'].violations[0]!.message,
    /replica r2 acknowledged 2 entries of A's log before kill -9, and held 1 after its restart at 1200 ms/,
  );
  const unread = s.check(replicas, { probes: [{ replica: 'r2', atMs: 1, acknowledged: {}, error: 'timeout' }] });
  t.deepEqual(failed(unread), ['crash-durability']);
});

test('checker: the report text names each failed check and its first violations', (t) => {
  const s = new Scenario();
  s.set('A', 'k', 'A:1');
  const text = formatReport(s.check([s.replica('r0', {}, {})]));
  t.regex(text, /FAIL lost-writes \(1 checked, 1 violations\)/);
  t.regex(text, /ok {3}convergence/);
});

// ---------------------------------------------------------------- cluster (real servers)

test('cluster: partitions, kill -9, restart on the same or a new port, pause and resume, and a clean stop', async (t) => {
  const cluster = await Cluster.start({ replicas: 2, clients: ['c0'], random: new Random('cluster') });
  t.teardown(() => cluster.stop());
  const info = async (url: string, ms = 2000) => {
    try {
      const response = await fetch(`${url}/v1/info`, { signal: AbortSignal.timeout(ms) });
      return response.ok ? 'up' : `HTTP ${response.status}`;
    } catch {
      return 'down';
    }
  };
  const [viaR0, viaR1] = cluster.urlsFor('c0') as [string, string];
  t.is(await info(viaR0), 'up');
  t.is(await info(viaR1), 'up');
  t.deepEqual(
    cluster
      .links()
      .map((l) => l.name)
      .sort(),
    ['c0->r0', 'c0->r1', 'r0->r1', 'r1->r0'],
  );
  const args = cluster.replica(0).process.child.spawnargs;
  t.is(args[args.indexOf('--peer') + 1], cluster.link('r0', 'r1').url, 'replicas reach their peers through the links');

  cluster.partition([['c0', 'r0'], ['r1']]);
  t.is(await info(viaR0), 'up');
  t.is(await info(viaR1), 'down');
  t.is(cluster.link('r0', 'r1').faults.cut, 'refuse');
  t.is(cluster.link('r1', 'r0').faults.cut, 'refuse');
  cluster.heal();
  t.is(await info(viaR1), 'up');

  const port = cluster.replica(0).port;
  await cluster.kill9(0);
  t.is(cluster.replica(0).process.child.signalCode, 'SIGKILL');
  t.is(await info(viaR0), 'down');
  let duringHook = '';
  await cluster.restart(0, {
    samePort: true,
    beforeReconnect: async (url) => {
      duringHook = `${await info(url)} ${await info(viaR0)} ${await info(cluster.link('r0', 'r1').url)}`;
    },
  });
  t.is(duringHook, 'up down down', 'callers, and the way to its peers, are held off until the hook is done');
  t.is(await info(cluster.link('r0', 'r1').url), 'up');
  t.is(cluster.replica(0).port, port);
  t.is(await info(viaR0), 'up');

  await cluster.kill9(1);
  await cluster.restart(1, { samePort: false });
  t.is(await info(viaR1), 'up', 'the link follows a replica to its new port');

  cluster.pause(0);
  t.is(await info(viaR0, 500), 'down', 'a paused replica answers nothing');
  cluster.resume(0);
  t.is(await info(viaR0), 'up');

  cluster.pause(1);
  const children = cluster.replicas.map((r) => r.process.child);
  await cluster.stop();
  t.true(
    children.every((child) => child.exitCode !== null || child.signalCode !== null),
    'every process ended',
  );
  t.is(await info(viaR0), 'down');
});
