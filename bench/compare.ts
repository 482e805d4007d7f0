/**
 * e2ekv beside etcd and Redis on the same machine, in the same run, driven by
 * the same load generator (bench/loadgen.ts): the `npm run bench` entry.
 *
 *   W1  SDK local: set (ack 'local') and get (read 'local') of 1 KiB values,
 *       against the crypto-only ceiling (seal + Merkle leaf) and a plaintext Map.
 *   W2  Durable writes through one replica, 1 and 16 writers: the SDK's set
 *       with ack 'one' (sealed, signed, verified, fsynced by e2ekv-server), and
 *       pre-built appends sent raw to e2ekv-server (the server alone); against
 *       single-node etcd and Redis with appendfsync always.
 *   W3  Three replicas, acknowledged by a quorum: the SDK's set with ack
 *       'quorum' over three e2ekv-server processes; against a three-member
 *       etcd cluster on the same machine.
 *   W4  Reads of 1 KiB values at read levels local, one and quorum (three
 *       replicas); against etcd serializable and linearizable reads (three
 *       members) and Redis GET.
 *   W5  A fresh device syncing a vault of 100,000 entries: entries/s, wire
 *       bytes per payload byte, and the SDK's heap for 100,000 keys.
 *   W6  Anti-entropy between two replicas that differ by 10 entries of a
 *       100,000-entry vault (needs server-to-server replication,
 *       server/src/peers.ts; reported as not measured without it).
 *   Memory  e2ekv-server's RSS holding 1,000,000 entries.
 *
 * etcd (Debian etcd-server) and Redis (Debian redis-server) are installed
 * with apt-get when missing and running as root, started on 127.0.0.1 with
 * temp dirs, and stopped at the end, also on errors and SIGINT/SIGTERM; one
 * that cannot start is reported and the rest still runs.
 *
 *   npm run bench                  (about 12 minutes)
 *   npm run bench -- --quick       (a minute or two: short rounds, small vaults)
 *   npm run bench -- --only w2,w4  (some workloads: w1 w2 w3 w4 w5 w6 memory)
 *   npm run bench -- --only w2 --filter 'pre-built.*x16' --cpu-prof DIR
 *                                  (targets whose "name x<clients>" matches; e2ekv-server
 *                                   processes write V8 CPU profiles into DIR)
 *
 * Writes bench/results/<ISO time>.json and .md (the Markdown table).
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from '@e2ekv/protocol';
import {
  MemoryLocalStore,
  createClient,
  createIdentity,
  publicIdentity,
  type AckLevel,
  type ReadLevel,
  type Vault,
} from 'e2ekv';
import { RESP_TYPES } from 'redis';
import { ETCD_BINARY, startEtcd, type EtcdCluster } from './baselines/etcd.js';
import { ensurePackages } from './baselines/install.js';
import { REDIS_BINARY, startRedis, type RedisServer } from './baselines/redis.js';
import {
  fmt,
  markdown,
  pct,
  type CompareResults,
  type Row,
  type System,
  type WorkloadResult,
} from './compare-report.js';
import {
  BenchWriter,
  HttpClient,
  createSharedVault,
  replicaAudience,
  sendAppend,
  streamEntries,
  type RawReplica,
} from './ingest-support.js';
import { compareTargets, runLoad, type LoadRun, type RoundPlan, type Target } from './loadgen.js';
import { EntryCrypto, ServerRequestCounter, WireCounter, liveBytes, measureRate, withCpu } from './sdk-support.js';
import { freePort, rssBytes, rssSampler, startE2ekvServer, type E2ekvServer } from './services.js';
import type { TestDevice } from '../server/test/support/writer.js';

// ---------------------------------------------------------------------------
// Parameters.

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
function flag(name: string): string | undefined {
  const i = argv.indexOf(name);
  return i === -1 ? undefined : argv[i + 1];
}
const WORKLOADS = ['w1', 'w2', 'w3', 'w4', 'w5', 'w6', 'memory'] as const;
type WorkloadId = (typeof WORKLOADS)[number];
const only = flag('--only')?.split(',');
for (const w of only ?? []) {
  if (!(WORKLOADS as readonly string[]).includes(w))
    throw new Error(`--only: unknown workload ${w} (${WORKLOADS.join(', ')})`);
}
const runs = (w: WorkloadId) => only === undefined || only.includes(w);
const filterFlag = flag('--filter');
const filter = filterFlag === undefined ? undefined : new RegExp(filterFlag);
const cpuProfDir = flag('--cpu-prof');
const serverNodeArgs = cpuProfDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', path.resolve(cpuProfDir)];

const PLAN: RoundPlan = quick
  ? { rounds: 1, roundMs: 700, warmupMs: 300 }
  : { rounds: 3, roundMs: 3000, warmupMs: 1000 };
const READ_PLAN: RoundPlan = quick ? PLAN : { rounds: 3, roundMs: 2000, warmupMs: 500 };
const LOCAL_PLAN: RoundPlan = quick
  ? { rounds: 1, roundMs: 800, warmupMs: 300 }
  : { rounds: 3, roundMs: 2000, warmupMs: 500 };
const CLIENTS = [1, 16] as const;
const VALUE_BYTES = 1024;
const VALUE_POOL = 4096;
/** Keys a writer cycles through (etcd, Redis and the plaintext Map overwrite; e2ekv appends either way). */
const KEY_SPACE = 100_000;
const READ_KEYS = quick ? 200 : 1000;
const SYNC_ENTRIES = Number(flag('--sync-entries') ?? (quick ? 5_000 : 100_000));
const AE_ENTRIES = quick ? 5_000 : 100_000;
const AE_DIFFERENCE = 10;
const AE_INTERVAL_MS = quick ? 1000 : 2000;
const MEMORY_ENTRIES = Number(flag('--memory-entries') ?? (quick ? 20_000 : 1_000_000));
const MEMORY_VAULTS = 10;
/** Entries per raw append when loading large vaults: e2ekv-server's default maxBatchEntries. */
const LOAD_BATCH = 1024;
const CEILING_WINDOW_MS = 1000;

const benchDir = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(benchDir, '..');

const values = Array.from({ length: VALUE_POOL }, () => randomBytes(VALUE_BYTES));
const valueOf = (i: number) => values[i % VALUE_POOL]!;
const keyOf = (i: number) => `bench/${i.toString().padStart(7, '0')}`;

function log(line: string): void {
  console.error(line);
}

function equalBytes(a: unknown, b: Uint8Array): boolean {
  return a instanceof Uint8Array && a.length === b.length && a.every((x, i) => x === b[i]);
}

const MiB = 2 ** 20;

// ---------------------------------------------------------------------------
// Run state: what to stop, and the services.

const cleanups: (() => Promise<unknown>)[] = [];
/** Registers a cleanup step; returns a function that runs it now (and only once). */
function onCleanup(step: () => Promise<unknown>): () => Promise<void> {
  let done = false;
  const once = async () => {
    if (done) return;
    done = true;
    const i = cleanups.indexOf(once);
    if (i !== -1) cleanups.splice(i, 1);
    await step();
  };
  cleanups.push(once);
  return once;
}
let cleaning: Promise<void> | undefined;
const cleanUp = () =>
  (cleaning ??= (async () => {
    for (const step of cleanups.splice(0).reverse()) await step().catch((error: unknown) => console.error(error));
  })());

let scratch = '';
/** e2ekv-server's defaults, except the limits a benchmark would trip: appends per minute per device and bytes per vault. */
let serverConfig = '';

async function e2ekvServer(name: string, extra: readonly string[] = [], script?: string): Promise<E2ekvServer> {
  const dataDir = path.join(scratch, name);
  await mkdir(dataDir, { recursive: true });
  const server = await startE2ekvServer(dataDir, ['--config', serverConfig, ...extra], serverNodeArgs, name, script);
  onCleanup(() => server.stop());
  return server;
}

const services: CompareResults['services'] = {};
const installNotes: string[] = [];

async function tryEtcd(size: number): Promise<EtcdCluster | undefined> {
  const key = size === 1 ? 'etcd (1 member)' : `etcd (${size} members)`;
  if (services['etcd-server-package']?.available === false) {
    services[key] = { available: false, problem: 'etcd-server is not installed' };
    return undefined;
  }
  try {
    const cluster = await startEtcd(size, log);
    onCleanup(() => cluster.stop());
    services[key] = { available: true, version: cluster.version };
    return cluster;
  } catch (error) {
    const problem = `could not start: ${String((error as Error).message).split('\n')[0]}`;
    log(`${key}: ${problem}`);
    services[key] = { available: false, problem };
    return undefined;
  }
}

let redisServer: RedisServer | undefined;
async function tryRedis(): Promise<RedisServer | undefined> {
  if (redisServer !== undefined) return redisServer;
  if (services['redis']?.available === false) return undefined;
  try {
    redisServer = await startRedis(log);
    const r = redisServer;
    onCleanup(() => r.stop());
    services['redis'] = { available: true, version: r.version };
    return redisServer;
  } catch (error) {
    const problem = `could not start: ${String((error as Error).message).split('\n')[0]}`;
    log(`redis: ${problem}`);
    services['redis'] = { available: false, problem };
    return undefined;
  }
}

// ---------------------------------------------------------------------------
// Rows and ratios.

function toRow(name: string, system: System, clients: number, result: { median: LoadRun; rounds: LoadRun[] }): Row {
  const m = result.median;
  const row: Row = {
    name,
    system,
    clients,
    opsPerSecond: m.opsPerSecond,
    p50Ms: m.p50Ms,
    p99Ms: m.p99Ms,
    clientRssMiB: m.clientRssBytes / MiB,
    clientCpu: m.clientCpu,
    rounds: result.rounds.map((r) => r.opsPerSecond),
    failed: m.errors,
  };
  if (m.serverRssBytes !== undefined) row.serverRssMiB = m.serverRssBytes / MiB;
  if (m.wire !== undefined) row.wire = m.wire;
  if (m.serverCpu !== undefined) row.serverCpu = m.serverCpu;
  if (Object.keys(m.errorSamples).length > 0) row.failedSamples = m.errorSamples;
  return row;
}

interface ClientTarget extends Target {
  clients: number;
  /** Names of the rows this one is compared with (default: every non-e2ekv row with the same clients). */
  against?: string[];
}

/** Runs targets grouped by client count, each group in rotating rounds; returns rows with ratios. */
async function measureGroups(targets: readonly ClientTarget[], plan: RoundPlan): Promise<Row[]> {
  const selected = targets.filter((t) => filter === undefined || filter.test(`${t.name} x${t.clients}`));
  const rows: Row[] = [];
  for (const clients of [...new Set(selected.map((t) => t.clients))]) {
    const group = selected.filter((t) => t.clients === clients);
    log(`  ${clients} client${clients === 1 ? '' : 's'}:`);
    const results = await compareTargets(group, plan, log);
    const groupRows = results.map((r, k) => toRow(r.name, group[k]!.system as System, clients, r));
    for (const [k, row] of groupRows.entries()) {
      if (row.system !== 'e2ekv') continue;
      const against = group[k]!.against;
      const ratios: Record<string, number> = {};
      for (const base of groupRows) {
        if (base.system === 'e2ekv' || base.system === 'diagnostic') continue;
        if (against !== undefined && !against.includes(base.name)) continue;
        ratios[base.name] = row.opsPerSecond / base.opsPerSecond;
      }
      if (Object.keys(ratios).length > 0) row.ratios = ratios;
    }
    rows.push(...groupRows);
  }
  return rows;
}

/** A CPU-only loop as a target: batches of synchronous or awaited work, no per-operation latency. */
function loopTarget(name: string, system: System, body: (n: number) => Promise<void> | void): ClientTarget {
  return {
    name,
    system,
    clients: 1,
    run: async (durationMs) => {
      const before = process.cpuUsage();
      const started = performance.now();
      const rate = await measureRate(body, 64, 1, durationMs);
      const seconds = (performance.now() - started) / 1000;
      const used = process.cpuUsage(before);
      return {
        ops: Math.round(rate * seconds),
        seconds,
        opsPerSecond: rate,
        p50Ms: NaN,
        p99Ms: NaN,
        meanMs: 1000 / rate,
        clientCpu: (used.user + used.system) / 1e6 / seconds,
        clientRssBytes: process.memoryUsage().rss,
        errors: {},
        errorSamples: {},
      };
    },
  };
}

// ---------------------------------------------------------------------------
// SDK setups.

/**
 * A vault on `urls` with `count` writer devices (the creator first), each with its own client and memory store,
 * on the SDK's default transport (node:http with keep-alive in Node).
 */
async function sdkWriters(urls: readonly string[], count: number): Promise<Vault[]> {
  const creator = await createClient({ identity: createIdentity(), servers: urls, store: new MemoryLocalStore() });
  onCleanup(async () => creator.close());
  const { vault, access } = await creator.createVault();
  const others = Array.from({ length: count - 1 }, () => createIdentity());
  for (const id of others) await vault.addMember(publicIdentity(id), 'writer', { ack: 'all' });
  const vaults = [vault];
  for (const id of others) {
    const client = await createClient({ identity: id, servers: urls, store: new MemoryLocalStore() });
    onCleanup(async () => client.close());
    vaults.push(await client.openVault(access));
  }
  return vaults;
}

/** Each writer keeps one set in flight; requests are counted by the servers (their /metrics). */
async function sdkWriteTarget(
  name: string,
  urls: readonly string[],
  clients: number,
  ack: AckLevel,
  pids: readonly number[],
): Promise<ClientTarget> {
  const served = new ServerRequestCounter(urls);
  const vaults = await sdkWriters(urls, clients);
  let n = 0;
  return {
    name,
    system: 'e2ekv',
    clients,
    run: async (durationMs) => {
      const before = await served.total();
      const run = await runLoad(
        (_i, worker) => {
          const k = n++;
          return vaults[worker]!.set(`w${worker}/${keyOf(k % KEY_SPACE)}`, valueOf(k), { ack });
        },
        { concurrency: clients, durationMs, pids, tolerateErrors: true },
      );
      // Requests still in flight when the run stopped are counted too: a bias of at most one per client.
      run.wire = { requestsPerOp: ((await served.total()) - before) / Math.max(1, run.ops) };
      return run;
    },
  };
}

/** Pre-built single-entry appends of `clients` devices in one vault, sent raw: the server's side alone. */
async function rawAppendTarget(server: E2ekvServer, clients: number): Promise<ClientTarget> {
  const http = new HttpClient(server.url, clients);
  onCleanup(async () => http.close());
  const replica: RawReplica = { client: http, audience: await replicaAudience(http) };
  const { vaultId, devices } = await createSharedVault([replica], clients);
  const writers = await Promise.all(devices.map((d) => BenchWriter.takeOver(d, vaultId, 1, 0, { opaque: true })));
  let perWriterRate = 0;
  let builtInLoop = 0;
  return {
    name: 'e2ekv-server: pre-built single-entry appends, raw HTTP (no client crypto)',
    system: 'e2ekv',
    clients,
    run: async (durationMs) => {
      // Built ahead, sized by the last rate; one that runs dry builds in the loop (counted).
      const ahead = perWriterRate === 0 ? 64 : Math.ceil((perWriterRate * durationMs * 1.5) / 1000) + 4;
      for (const w of writers) await w.prepare(ahead);
      const run = await runLoad(
        async (_i, worker) => {
          const w = writers[worker]!;
          let append = w.nextForE2ekv();
          if (append === undefined) {
            builtInLoop++;
            await w.prepare(1);
            append = w.nextForE2ekv()!;
          }
          await sendAppend(replica, w, append);
        },
        { concurrency: clients, durationMs, pids: [server.pid] },
      );
      for (const w of writers) w.trim();
      perWriterRate = Math.max(perWriterRate, run.opsPerSecond / clients);
      if (builtInLoop > 0) log(`    (${builtInLoop} appends were built inside the timed loop)`);
      builtInLoop = 0;
      return run;
    },
  };
}

function etcdWriteTarget(etcd: EtcdCluster, clients: number): ClientTarget {
  let n = 0;
  const members = etcd.members.length;
  return {
    name: members === 1 ? 'etcd, 1 member: put' : `etcd, ${members} members: put`,
    system: 'etcd',
    clients,
    run: (durationMs) =>
      runLoad(
        async () => {
          const k = n++;
          await etcd.client.put(keyOf(k % KEY_SPACE)).value(Buffer.from(valueOf(k)));
        },
        { concurrency: clients, durationMs, pids: etcd.pids },
      ),
  };
}

function redisWriteTarget(redis: RedisServer, clients: number): ClientTarget {
  let n = 0;
  return {
    name: 'Redis, appendfsync always: SET',
    system: 'redis',
    clients,
    run: (durationMs) =>
      runLoad(
        async () => {
          const k = n++;
          await redis.client.set(keyOf(k % KEY_SPACE), Buffer.from(valueOf(k)));
        },
        { concurrency: clients, durationMs, pids: [redis.pid] },
      ),
  };
}

// ---------------------------------------------------------------------------
// W1: SDK local.

async function w1(server: E2ekvServer): Promise<WorkloadResult> {
  const started = performance.now();
  const crypto = new EntryCrypto(keyOf, valueOf);
  const client = await createClient({
    identity: createIdentity(),
    servers: [server.url],
    store: new MemoryLocalStore(),
  });
  const { vault } = await client.createVault();
  let written = 0;
  let probe = 0;
  const plain = new Map<string, Uint8Array>();
  let plainWritten = 0;
  const SET = "e2ekv SDK: set, ack 'local' (memory store)";
  const GET = "e2ekv SDK: get, read 'local'";
  const CEILING = 'crypto-only ceiling: sealDataEntry + Merkle leaf, no storage';
  const MAP_SET = 'plaintext Map.set of a copied 1 KiB value';
  const MAP_GET = 'plaintext Map.get';
  const targets: ClientTarget[] = [
    {
      name: SET,
      system: 'e2ekv',
      clients: 1,
      against: [CEILING, MAP_SET],
      run: (durationMs) =>
        runLoad(
          () => {
            const k = written++;
            return vault.set(keyOf(k % KEY_SPACE), valueOf(k), { ack: 'local' });
          },
          { concurrency: 1, durationMs },
        ),
    },
    loopTarget(CEILING, 'ceiling', (n) => crypto.sealAndLeaf(n)),
    {
      name: MAP_SET,
      system: 'plaintext',
      clients: 1,
      run: (durationMs) =>
        runLoad(
          async () => {
            const k = plainWritten++;
            plain.set(keyOf(k % KEY_SPACE), valueOf(k).slice());
          },
          { concurrency: 1, durationMs },
        ),
    },
    {
      name: GET,
      system: 'e2ekv',
      clients: 1,
      against: [MAP_GET],
      run: (durationMs) =>
        runLoad(
          async () => {
            // A pseudo-random walk over the keys written, so that reads do not stay in one cache line.
            probe = (probe + 7919) % Math.min(written, KEY_SPACE);
            await vault.get(keyOf(probe));
          },
          { concurrency: 1, durationMs },
        ),
    },
    {
      name: MAP_GET,
      system: 'plaintext',
      clients: 1,
      run: (durationMs) =>
        runLoad(
          async () => {
            probe = (probe + 7919) % Math.min(plainWritten, KEY_SPACE);
            plain.get(keyOf(probe));
          },
          { concurrency: 1, durationMs },
        ),
    },
  ];
  // Sets and their ceiling rotate together; gets after, over what the sets wrote.
  const rows = [
    ...(await measureGroups(targets.slice(0, 3), LOCAL_PLAN)),
    ...(await measureGroups(targets.slice(3), LOCAL_PLAN)),
  ];
  const last = written - 1;
  if (!equalBytes(await vault.get(keyOf(last % KEY_SPACE)), valueOf(last))) {
    throw new Error(`W1: get ${keyOf(last % KEY_SPACE)} read back wrong`);
  }
  return {
    id: 'W1',
    title: 'SDK local: set and get of 1 KiB values, against the crypto-only ceiling',
    rows,
    notes: [
      "The ceiling is what a set with ack 'local' must compute (sealDataEntry: blind the key, seal metadata and value, " +
        'encode; then the Merkle leaf hash), in a tight loop with nothing else; the set row adds the vault, the local ' +
        "store and the event loop. A get with read 'local' does no crypto (values are verified and decrypted once, " +
        'when they arrive), so it is compared with a plaintext Map.',
    ],
    notMeasured: [],
    seconds: (performance.now() - started) / 1000,
  };
}

// ---------------------------------------------------------------------------
// W2: durable writes through one replica.

async function w2(
  server: E2ekvServer,
  etcd: EtcdCluster | undefined,
  redis: RedisServer | undefined,
): Promise<WorkloadResult> {
  const started = performance.now();
  // Diagnostic only: the same server on its in-memory storage (no fsync, nothing kept).
  const memoryServer = await e2ekvServer('memory-storage', [], path.join(benchDir, 'memory-server.ts'));
  const targets: ClientTarget[] = [];
  const durable = ['etcd, 1 member: put', 'Redis, appendfsync always: SET'];
  for (const clients of CLIENTS) {
    targets.push({
      ...(await sdkWriteTarget("e2ekv SDK: set, ack 'one'", [server.url], clients, 'one', [server.pid])),
      against: durable,
    });
    targets.push({ ...(await rawAppendTarget(server, clients)), against: durable });
    const diagnostic = await rawAppendTarget(memoryServer, clients);
    targets.push({
      ...diagnostic,
      name: 'diagnostic, not durable: the same pre-built appends to e2ekv-server on in-memory storage',
      system: 'diagnostic',
    });
    if (etcd !== undefined) targets.push(etcdWriteTarget(etcd, clients));
    if (redis !== undefined) targets.push(redisWriteTarget(redis, clients));
  }
  const rows = await measureGroups(targets, PLAN);
  await memoryServer.stop();
  const notMeasured: string[] = [];
  if (etcd === undefined)
    notMeasured.push(`single-node etcd: ${services['etcd (1 member)']?.problem ?? 'unavailable'}`);
  if (redis === undefined) notMeasured.push(`Redis: ${services['redis']?.problem ?? 'unavailable'}`);
  return {
    id: 'W2',
    title: 'durable writes through one replica, 1 KiB values, acknowledged after fsync',
    rows,
    notes: [
      'e2ekv SDK rows: each client is its own device (identity, SDK client, memory store) writing its own keys in one ' +
        "shared vault with set(..., { ack: 'one' }): the value is sealed, the entry signed into the device's log, " +
        'sent to e2ekv-server, which verifies it and commits it to SQLite (WAL, synchronous=FULL) before answering, and ' +
        'the SDK verifies the cosigned checkpoint it gets back.',
      'Pre-built rows: the same shape of single-entry appends built before the timed loop (their two envelopes are ' +
        "random bytes of a sealed envelope's length: the server holds no key and cannot tell), signed at send time and " +
        'POSTed over keep-alive HTTP: what the server alone sustains. The diagnostic row sends the same appends to the ' +
        'same server code on its in-memory storage adapter (bench/memory-server.ts): not durable and not a ' +
        'comparison, only the measure of how much of an append is SQLite.',
      'etcd: one etcd3 client (gRPC), `put` of the same keys and values; etcd fsyncs its WAL before answering. Redis: one ' +
        'node-redis connection (commands of concurrent clients are pipelined on it), `SET` with appendonly yes and ' +
        'appendfsync always: Redis writes and fsyncs the AOF before replying, one fsync for all the commands of an event-loop turn.',
    ],
    notMeasured,
    seconds: (performance.now() - started) / 1000,
  };
}

// ---------------------------------------------------------------------------
// W3 and W4: three replicas.

async function w3(servers: readonly E2ekvServer[], etcd: EtcdCluster | undefined): Promise<WorkloadResult> {
  const started = performance.now();
  const urls = servers.map((s) => s.url);
  const pids = servers.map((s) => s.pid);
  const targets: ClientTarget[] = [];
  for (const clients of CLIENTS) {
    targets.push(await sdkWriteTarget("e2ekv SDK: set, ack 'quorum' of 3 replicas", urls, clients, 'quorum', pids));
    if (etcd !== undefined) targets.push(etcdWriteTarget(etcd, clients));
  }
  const rows = await measureGroups(targets, PLAN);
  return {
    id: 'W3',
    title: 'three replicas, writes acknowledged by a quorum, 1 KiB values',
    rows,
    notes: [
      'e2ekv: three independent e2ekv-server processes; the SDK pushes each write to all three and resolves when two ' +
        'have it on disk (the third finishes in the background). etcd: a three-member cluster on the same machine; a put ' +
        'is acknowledged once a majority has it in its fsynced WAL. Server RSS and CPU are the three processes summed.',
    ],
    notMeasured:
      etcd === undefined ? [`three-member etcd: ${services['etcd (3 members)']?.problem ?? 'unavailable'}`] : [],
    seconds: (performance.now() - started) / 1000,
  };
}

async function w4(
  servers: readonly E2ekvServer[],
  etcd: EtcdCluster | undefined,
  redis: RedisServer | undefined,
): Promise<WorkloadResult> {
  const started = performance.now();
  const urls = servers.map((s) => s.url);
  const pids = servers.map((s) => s.pid);
  // The vault: READ_KEYS keys on all three replicas, then a reader device that synced them.
  const writerClient = await createClient({ identity: createIdentity(), servers: urls, store: new MemoryLocalStore() });
  const { vault, access } = await writerClient.createVault();
  const readerIdentity = createIdentity();
  await vault.addMember(publicIdentity(readerIdentity), 'reader', { ack: 'all' });
  for (let start = 0; start < READ_KEYS; start += 50) {
    const ops = Array.from({ length: Math.min(50, READ_KEYS - start) }, (_, k) => ({
      name: keyOf(start + k),
      value: valueOf(start + k),
    }));
    await vault.batch(ops, { ack: 'all' });
  }
  // On the SDK's default transport; requests are counted by the servers (their /metrics).
  const served = new ServerRequestCounter(urls);
  const readerClient = await createClient({ identity: readerIdentity, servers: urls, store: new MemoryLocalStore() });
  onCleanup(async () => readerClient.close());
  const reader = await readerClient.openVault(access);
  for (const level of ['local', 'one', 'quorum'] as const) {
    if (!equalBytes(await reader.get(keyOf(READ_KEYS - 1), { read: level }), valueOf(READ_KEYS - 1))) {
      throw new Error(`W4: read '${level}' of ${keyOf(READ_KEYS - 1)} came back wrong`);
    }
  }
  if (etcd !== undefined) {
    for (let k = 0; k < READ_KEYS; k++) await etcd.client.put(`read/${keyOf(k)}`).value(Buffer.from(valueOf(k)));
    const back = await etcd.client.get(`read/${keyOf(1)}`).buffer();
    if (!equalBytes(back === null ? null : new Uint8Array(back), valueOf(1)))
      throw new Error('W4: etcd read back wrong');
  }
  const redisBuffers = redis?.client.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer });
  if (redis !== undefined && redisBuffers !== undefined) {
    for (let k = 0; k < READ_KEYS; k++) await redis.client.set(`read/${keyOf(k)}`, Buffer.from(valueOf(k)));
    const back = await redisBuffers.get(`read/${keyOf(1)}`);
    if (!equalBytes(back === null ? null : new Uint8Array(back), valueOf(1)))
      throw new Error('W4: Redis read back wrong');
  }
  let probe = 0;
  const next = () => (probe = (probe + 7919) % READ_KEYS);
  const targets: ClientTarget[] = [];
  for (const clients of CLIENTS) {
    for (const level of ['local', 'one', 'quorum'] as ReadLevel[]) {
      targets.push({
        name: `e2ekv SDK: get, read '${level}'${level === 'local' ? '' : ' (3 replicas)'}`,
        system: 'e2ekv',
        clients,
        run: async (durationMs) => {
          const before = await served.total();
          const run = await runLoad(
            async () => {
              await reader.get(keyOf(next()), { read: level });
            },
            { concurrency: clients, durationMs, pids, tolerateErrors: true },
          );
          run.wire = { requestsPerOp: ((await served.total()) - before) / Math.max(1, run.ops) };
          return run;
        },
      });
    }
    if (etcd !== undefined) {
      for (const serializable of [true, false]) {
        targets.push({
          name: `etcd, ${etcd.members.length} members: ${serializable ? 'serializable' : 'linearizable'} get`,
          system: 'etcd',
          clients,
          run: (durationMs) =>
            runLoad(
              async () => {
                await etcd.client
                  .get(`read/${keyOf(next())}`)
                  .serializable(serializable)
                  .buffer();
              },
              { concurrency: clients, durationMs, pids: etcd.pids },
            ),
        });
      }
    }
    if (redis !== undefined && redisBuffers !== undefined) {
      targets.push({
        name: 'Redis: GET',
        system: 'redis',
        clients,
        run: (durationMs) =>
          runLoad(
            async () => {
              await redisBuffers.get(`read/${keyOf(next())}`);
            },
            { concurrency: clients, durationMs, pids: [redis.pid] },
          ),
      });
    }
  }
  const rows = await measureGroups(targets, READ_PLAN);
  return {
    id: 'W4',
    title: 'reads of 1 KiB values',
    rows,
    notes: [
      `e2ekv: one reader device (its own identity, a reader member) holding a vault of ${fmt(READ_KEYS)} keys on the ` +
        "three replicas of W3, with N gets in flight on one SDK client. 'local' answers from what the device verified; " +
        "'one' first asks one replica for the vault's state (and pulls and verifies anything new), 'quorum' asks two. " +
        'etcd: the three-member cluster of W3 through one etcd3 client (requests spread over the members); a ' +
        'serializable get is answered by the member asked, a linearizable one after a read-index round with the leader. ' +
        'Redis: the single server of W2, one connection.',
    ],
    notMeasured: [
      ...(etcd === undefined ? [`etcd reads: ${services['etcd (3 members)']?.problem ?? 'unavailable'}`] : []),
      ...(redis === undefined ? [`Redis GET: ${services['redis']?.problem ?? 'unavailable'}`] : []),
    ],
    seconds: (performance.now() - started) / 1000,
  };
}

// ---------------------------------------------------------------------------
// W5: a fresh device syncing a large vault.

async function w5(): Promise<WorkloadResult> {
  const started = performance.now();
  const server = await e2ekvServer('w5');
  const crypto = new EntryCrypto(keyOf, valueOf);
  const n = SYNC_ENTRIES;
  const readerIdentity = createIdentity();
  // The writer's client and vault stay in this block, so they can be collected before the reader's memory is measured.
  const { access, write, push, pushWire } = await (async () => {
    const wire = new WireCounter();
    const writer = await createClient({
      identity: createIdentity(),
      servers: [server.url],
      fetch: wire.fetch,
      store: new MemoryLocalStore(),
    });
    const created = await writer.createVault();
    await created.vault.addMember(publicIdentity(readerIdentity), 'reader');
    log(`  writing ${fmt(n)} entries with ack 'local'`);
    const write = await withCpu(undefined, async () => {
      for (let i = 0; i < n; i++) await created.vault.set(keyOf(i), valueOf(i), { ack: 'local' });
    });
    const before = wire.snapshot();
    const push = await withCpu(server.pid, () => created.vault.sync());
    const pushWire = wire.since(before);
    const unpushed = created.vault.status().unpushed;
    if (unpushed !== 0) throw new Error(`W5: ${unpushed} entries were not pushed by sync()`);
    log(`  pushed in ${push.seconds.toFixed(1)} s (${fmt(n / push.seconds)} entries/s)`);
    return { access: created.access, write, push, pushWire };
  })();

  const ceiling = await measureRate((k) => crypto.decodeOpenAndLeaf(k), 64, 1, CEILING_WINDOW_MS);
  const wire = new WireCounter();
  const memoryBefore = liveBytes();
  const rss = rssSampler([process.pid], 100);
  const readerClient = await createClient({
    identity: readerIdentity,
    servers: [server.url],
    fetch: wire.fetch,
    store: new MemoryLocalStore(),
  });
  const read = await withCpu(server.pid, () => readerClient.openVault(access));
  const rssPeak = (await rss.stop()).peak;
  const heap = liveBytes() - memoryBefore;
  const vault = read.result;
  const names = await vault.list();
  if (names.length !== n) throw new Error(`W5: the fresh device sees ${names.length} keys, not ${n}`);
  for (const i of [0, n - 1, Math.floor(n / 3)]) {
    if (!equalBytes(await vault.get(keyOf(i)), valueOf(i)))
      throw new Error(`W5: the fresh device read ${keyOf(i)} wrong`);
  }
  const w = wire.snapshot();
  const bodyBytes = w.requestBodyBytes + w.responseBodyBytes;
  const wireBytes = bodyBytes + w.requestHeaderBytes + w.responseHeaderBytes;
  const payload = n * VALUE_BYTES;
  const entriesPerSecond = n / read.seconds;
  await server.stop();
  return {
    id: 'W5',
    title: `a fresh device syncing a ${fmt(n)}-entry vault`,
    rows: [],
    figures: {
      entries: n,
      'fresh device: seconds': read.seconds,
      'fresh device: entries/s': entriesPerSecond,
      'fresh device: payload MiB/s (1 KiB values)': payload / MiB / read.seconds,
      'crypto-only ceiling of a sync (decode + open + leaf), entries/s': ceiling,
      'fresh device: share of the crypto-only ceiling': `${pct(entriesPerSecond / ceiling)}`,
      'wire bytes per payload byte (bodies + headers)': wireBytes / payload,
      'body bytes per payload byte': bodyBytes / payload,
      requests: w.requests,
      'CPU, SDK / server (cores)': `${read.cpu.client.toFixed(2)} / ${(read.cpu.server ?? NaN).toFixed(2)}`,
      'SDK heap for the synced vault, MiB (JS heap + buffers after GC)': heap / MiB,
      'SDK heap per key, bytes': heap / n,
      'benchmark process peak RSS during the sync, MiB': (rssPeak ?? NaN) / MiB,
      "writer: local sets (ack 'local'), entries/s": n / write.seconds,
      'writer: push with one sync(), entries/s': n / push.seconds,
      'writer: push, CPU µs per entry, SDK / server': `${((push.cpu.client * push.seconds * 1e6) / n).toFixed(0)} / ${(((push.cpu.server ?? NaN) * push.seconds * 1e6) / n).toFixed(0)}`,
      'fresh device: CPU µs per entry, SDK / server': `${((read.cpu.client * read.seconds * 1e6) / n).toFixed(0)} / ${(((read.cpu.server ?? NaN) * read.seconds * 1e6) / n).toFixed(0)}`,
      'writer: push, wire bytes per payload byte':
        (pushWire.requestBodyBytes +
          pushWire.responseBodyBytes +
          pushWire.requestHeaderBytes +
          pushWire.responseHeaderBytes) /
        payload,
    },
    notes: [
      `A writer device writes ${fmt(n)} keys (1 KiB each, one entry per key) with ack 'local' and pushes them with one ` +
        'sync(); then a fresh device (another identity, added as a reader first) opens the vault on an empty memory store: ' +
        'it fetches every page, verifies checkpoints, consistency proofs and every entry, decrypts every value. Wire bytes ' +
        "are counted through the SDK's fetch option (headers approximately). The ceiling is measured for 1 s just before.",
    ],
    notMeasured: [],
    seconds: (performance.now() - started) / 1000,
  };
}

// ---------------------------------------------------------------------------
// W6: anti-entropy between two replicas.

interface LinkStatus {
  url: string;
  state: string;
  rounds: number;
  lastRoundAt: string | null;
  lastSuccessAt: string | null;
  lastError: string | null;
  entriesReceived: number;
  bytesReceived: number;
  bytesSent: number;
  requestsSent: number;
  missingEntries: number;
}

async function replicationStatus(client: HttpClient): Promise<LinkStatus[]> {
  const reply = await client.request('GET', '/v1/replication');
  if (reply.status !== 200) throw new Error(`/v1/replication answered ${reply.status}: ${reply.text.slice(0, 300)}`);
  return (JSON.parse(reply.text) as { peers: LinkStatus[] }).peers;
}

async function logSize(replica: RawReplica, device: TestDevice, vaultId: string): Promise<number> {
  const requestPath = `/v1/vaults/${vaultId}`;
  const authorization = await device.authorize({ audience: replica.audience, method: 'GET', path: requestPath });
  const reply = await replica.client.request('GET', requestPath, undefined, { authorization });
  if (reply.status !== 200) throw new Error(`GET ${requestPath} answered ${reply.status}: ${reply.text.slice(0, 300)}`);
  const state = JSON.parse(reply.text) as { logs: { device: string; size: number }[] };
  return state.logs.find((l) => l.device === device.hex)?.size ?? 0;
}

/** No round in progress: the last one that started has succeeded. */
function settled(link: LinkStatus): boolean {
  return (
    link.lastRoundAt !== null &&
    link.lastSuccessAt !== null &&
    Date.parse(link.lastSuccessAt) >= Date.parse(link.lastRoundAt)
  );
}

async function waitFor<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

async function replicationAvailable(): Promise<string | undefined> {
  try {
    await readFile(path.join(repoRoot, 'server/src/peers.ts'));
  } catch {
    return 'replication not available (server/src/peers.ts does not exist)';
  }
  const usage = await readFile(path.join(repoRoot, 'server/src/main.ts'), 'utf8');
  if (!usage.includes('--peer') || !usage.includes('anti-entropy-interval')) {
    return 'replication not available (e2ekv-server has no --peer / --anti-entropy-interval flags)';
  }
  return undefined;
}

async function w6(): Promise<WorkloadResult> {
  const started = performance.now();
  const base = {
    id: 'W6',
    title: `anti-entropy: two replicas differing by ${AE_DIFFERENCE} entries of a ${fmt(AE_ENTRIES)}-entry vault`,
    rows: [],
    notes: [] as string[],
  };
  const unavailable = await replicationAvailable();
  if (unavailable !== undefined) {
    return { ...base, notMeasured: [unavailable], seconds: (performance.now() - started) / 1000 };
  }
  try {
    // Fixed ports: each replica must name the other with --peer once they are restarted.
    const ports = [await freePort(), await freePort()];
    const urlOf = (k: number) => `http://127.0.0.1:${ports[k]}`;
    let a = await e2ekvServer('w6-a', ['--port', String(ports[0])]);
    let b = await e2ekvServer('w6-b', ['--port', String(ports[1])]);
    const http = [new HttpClient(a.url, 2), new HttpClient(b.url, 2)];
    onCleanup(async () => http.forEach((h) => h.close()));
    const ra: RawReplica = { client: http[0]!, audience: await replicaAudience(http[0]!) };
    const rb: RawReplica = { client: http[1]!, audience: await replicaAudience(http[1]!) };
    const { vaultId, devices } = await createSharedVault([ra, rb], 1);
    const device = devices[0]!;
    const writer = await BenchWriter.takeOver(device, vaultId, LOAD_BATCH, 0, { opaque: true });
    const common = AE_ENTRIES - 2 * AE_DIFFERENCE;
    log(`  loading ${fmt(common)} entries into both replicas, ${AE_DIFFERENCE} more into A`);
    const loadStarted = performance.now();
    await streamEntries([ra, rb], writer, common);
    const loadSeconds = (performance.now() - loadStarted) / 1000;
    await streamEntries([ra], writer, AE_DIFFERENCE);
    const sizes = [await logSize(ra, device, vaultId), await logSize(rb, device, vaultId)];
    if (sizes[0] !== common + AE_DIFFERENCE || sizes[1] !== common) {
      throw new Error(`W6: the replicas hold ${sizes.join(' and ')} entries before anti-entropy`);
    }
    // Both again, now peers of each other (a replica serves only its configured peers), and
    // with a push queue of one byte: every push is dropped, so only anti-entropy moves entries.
    log(`  restarting both as peers of each other, anti-entropy every ${AE_INTERVAL_MS} ms, pushes off`);
    await a.stop();
    await b.stop();
    const peerConfig = path.join(scratch, 'w6-config.json');
    await writeFile(
      peerConfig,
      JSON.stringify({
        limits: { appendsPerMinutePerDevice: 1_000_000_000, maxVaultBytes: 2 ** 50 },
        replication: { antiEntropyIntervalMs: AE_INTERVAL_MS, pushQueueBytes: 1 },
      }),
    );
    a = await e2ekvServer('w6-a', ['--port', String(ports[0]), '--peer', urlOf(1), '--config', peerConfig]);
    const restartAt = performance.now();
    b = await e2ekvServer('w6-b', ['--port', String(ports[1]), '--peer', urlOf(0), '--config', peerConfig]);
    const listeningAt = performance.now();
    const received = (n: number) => async () => {
      const [link] = await replicationStatus(http[1]!);
      return link !== undefined && link.entriesReceived >= n && settled(link) ? link : undefined;
    };
    // 1. Just restarted: B's first round finds the difference (cold processes).
    const cold = await waitFor(
      `B to pull ${AE_DIFFERENCE} entries after the restart`,
      120_000,
      received(AE_DIFFERENCE),
    );
    const coldAt = performance.now();
    if ((await logSize(rb, device, vaultId)) !== common + AE_DIFFERENCE) throw new Error('W6: B did not converge');
    // 2. Both warm: A takes 10 more entries (its push is dropped), B's next round repairs them.
    const idle = await waitFor('a round with nothing to repair', 60_000, async () => {
      const [link] = await replicationStatus(http[1]!);
      return link !== undefined && link.rounds > cold.rounds && settled(link) ? link : undefined;
    });
    await streamEntries([ra], writer, AE_DIFFERENCE);
    const appendedAt = performance.now();
    const warm = await waitFor(`B to pull ${AE_DIFFERENCE} more entries`, 60_000, received(2 * AE_DIFFERENCE));
    const warmAt = performance.now();
    const sizeB = await logSize(rb, device, vaultId);
    if (sizeB !== AE_ENTRIES) throw new Error(`W6: B holds ${sizeB} of ${AE_ENTRIES} entries after its round`);
    const roundMs = (l: LinkStatus) => Date.parse(l.lastSuccessAt!) - Date.parse(l.lastRoundAt!);
    const payloadBytes = AE_DIFFERENCE * VALUE_BYTES;
    const warmReceived = warm.bytesReceived - idle.bytesReceived;
    const warmSent = warm.bytesSent - idle.bytesSent;
    return {
      ...base,
      figures: {
        'entries in the vault': AE_ENTRIES,
        'entries missing on B': AE_DIFFERENCE,
        'warm round repairing the difference: ms, as B timed it': roundMs(warm),
        'warm: A accepted the entries to B holding them, ms (includes the wait for the round)': warmAt - appendedAt,
        'warm round: bytes B received / sent': `${fmt(warmReceived)} / ${fmt(warmSent)}`,
        'warm round: requests B sent': warm.requestsSent - idle.requestsSent,
        'warm round: wire bytes per payload byte of the missing entries (received + sent)':
          (warmReceived + warmSent) / payloadBytes,
        'round with nothing to repair: ms': roundMs(idle),
        'round with nothing to repair: bytes received / sent': `${fmt(idle.bytesReceived - cold.bytesReceived)} / ${fmt(idle.bytesSent - cold.bytesSent)}`,
        'after a restart (cold processes): first repairing round, ms as B timed it': roundMs(cold),
        'after a restart: B listening to B converged, ms (polled every 5 ms)': coldAt - listeningAt,
        'after a restart: B spawned to B converged, ms': coldAt - restartAt,
        'after a restart: bytes B received / sent': `${fmt(cold.bytesReceived)} / ${fmt(cold.bytesSent)}`,
        'loading both replicas (raw appends of 1,024 entries), entries/s per replica': common / loadSeconds,
      },
      notes: [
        `Replicas A and B (e2ekv-server processes, not yet peers) both get the first ${fmt(common)} entries of one ` +
          `device's log, A alone the next ${AE_DIFFERENCE}. Both restart as each other's --peer, with anti-entropy ` +
          `every ${AE_INTERVAL_MS} ms (±20%) and pushes switched off (a push queue of one byte drops every push), ` +
          "so that only anti-entropy moves entries. B's first round after the restart repairs the difference " +
          `(cold processes); then A takes ${AE_DIFFERENCE} more entries and B's next round repairs those (warm): ` +
          `the vault then holds ${fmt(AE_ENTRIES)} entries and B lacked ${AE_DIFFERENCE}. A round compares one digest ` +
          'per vault, asks for the heads of a vault that differs, pulls the missing suffix and accepts it as it would ' +
          "a device's append. Times and bytes come from B's /v1/replication status (bodies, as the link counts " +
          "them). Entries are raw appends whose envelopes are random bytes of a sealed envelope's length.",
      ],
      notMeasured: [],
      seconds: (performance.now() - started) / 1000,
    };
  } catch (error) {
    return {
      ...base,
      notMeasured: [`replication did not work in this run: ${String((error as Error).message).split('\n')[0]}`],
      seconds: (performance.now() - started) / 1000,
    };
  }
}

// ---------------------------------------------------------------------------
// Memory: a replica with 1,000,000 entries.

async function dirBytes(dir: string): Promise<number> {
  const out = execFileSync('du', ['-sb', dir], { encoding: 'utf8' });
  return Number(out.split('\t')[0]);
}

async function memory(): Promise<WorkloadResult> {
  const started = performance.now();
  let server = await e2ekvServer('memory');
  const empty = await rssBytes(server.pid);
  const http = new HttpClient(server.url, 4);
  onCleanup(async () => http.close());
  const replica: RawReplica = { client: http, audience: await replicaAudience(http) };
  const perVault = Math.ceil(MEMORY_ENTRIES / MEMORY_VAULTS);
  const sampler = rssSampler([server.pid], 250);
  const vaults: { vaultId: string; device: TestDevice }[] = [];
  let loaded = 0;
  const loadStarted = performance.now();
  const cpu = await withCpu(server.pid, async () => {
    // Two vaults at a time: one is built while the other is accepted.
    for (let v = 0; v < MEMORY_VAULTS; v += 2) {
      await Promise.all(
        [v, v + 1]
          .filter((k) => k < MEMORY_VAULTS)
          .map(async () => {
            const { vaultId, devices } = await createSharedVault([replica], 1);
            vaults.push({ vaultId, device: devices[0]! });
            const writer = await BenchWriter.takeOver(devices[0]!, vaultId, LOAD_BATCH, 0, { opaque: true });
            await streamEntries([replica], writer, perVault, () => undefined);
            loaded += perVault;
          }),
      );
      log(`  ${fmt(loaded)} entries loaded`);
    }
  });
  const loadSeconds = (performance.now() - loadStarted) / 1000;
  const duringLoad = await sampler.stop();
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const afterLoad = await rssBytes(server.pid);
  // Restarted on the same data: what it holds for 1,000,000 entries it did not just receive.
  await server.stop();
  http.close();
  server = await e2ekvServer('memory');
  const http2 = new HttpClient(server.url, 4);
  onCleanup(async () => http2.close());
  const replica2: RawReplica = { client: http2, audience: await replicaAudience(http2) };
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const afterRestart = await rssBytes(server.pid);
  for (const v of vaults) {
    const size = await logSize(replica2, v.device, v.vaultId);
    if (size !== perVault) throw new Error(`memory: a vault holds ${size} of ${perVault} entries after the restart`);
  }
  const afterTouch = await rssBytes(server.pid);
  const disk = await dirBytes(server.dataDir);
  await server.stop();
  const total = perVault * MEMORY_VAULTS;
  return {
    id: 'Memory',
    title: `e2ekv-server RSS holding ${fmt(total)} entries`,
    rows: [],
    figures: {
      entries: total,
      vaults: MEMORY_VAULTS,
      'RSS empty, MiB': (empty ?? NaN) / MiB,
      'RSS peak while loading, MiB': (duringLoad.peak ?? NaN) / MiB,
      'RSS after loading (idle 2 s), MiB': (afterLoad ?? NaN) / MiB,
      'RSS after a restart on the same data, MiB': (afterRestart ?? NaN) / MiB,
      'RSS after reading every vault state once, MiB': (afterTouch ?? NaN) / MiB,
      'RSS after loading, bytes per entry above empty': ((afterLoad ?? NaN) - (empty ?? NaN)) / total,
      'data dir on disk, bytes per entry': disk / total,
      'load: entries/s (raw appends of 1,024 entries, two vaults at a time)': total / loadSeconds,
      'load: server CPU (cores)': cpu.cpu.server ?? NaN,
      'load: server CPU µs per entry': ((cpu.cpu.server ?? NaN) * cpu.seconds * 1e6) / total,
      'load: benchmark process CPU µs per entry (building appends)': (cpu.cpu.client * cpu.seconds * 1e6) / total,
    },
    notes: [
      `${MEMORY_VAULTS} vaults of ${fmt(perVault)} entries, each one device's log of ~1.3 KiB entries (1 KiB values; raw ` +
        "appends whose envelopes are random bytes of a sealed envelope's length). The SDK's heap with 100,000 keys is in W5.",
    ],
    notMeasured: [],
    seconds: (performance.now() - started) / 1000,
  };
}

// ---------------------------------------------------------------------------
// Machine and code.

function codeVersion(): { commit: string; uncommittedChanges: boolean } | Record<string, never> {
  try {
    const git = (...args: string[]) => execFileSync('git', args, { cwd: repoRoot, encoding: 'utf8' }).trim();
    return {
      commit: git('rev-parse', 'HEAD'),
      uncommittedChanges: git('status', '--porcelain', '--untracked-files=no') !== '',
    };
  } catch {
    return {};
  }
}

/** Busy and total jiffies of the whole machine, from /proc/stat. */
async function machineCpu(): Promise<{ busy: number; total: number } | undefined> {
  try {
    const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!;
    const fields = line.trim().split(/\s+/).slice(1).map(Number);
    const total = fields.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = fields[3]! + fields[4]!;
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
}

const loadAverage = () =>
  os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');

// ---------------------------------------------------------------------------
// Main.

function summarize(workloads: readonly WorkloadResult[]): CompareResults['summary'] {
  const byId = new Map(workloads.map((w) => [w.id, w]));
  const row = (id: string, prefix: string, clients: number) =>
    byId.get(id)?.rows.find((r) => r.name.startsWith(prefix) && r.clients === clients);
  const summary: CompareResults['summary'] = {};
  const set = row('W1', "e2ekv SDK: set, ack 'local'", 1);
  summary["W1: e2ekv set (ack 'local') ÷ crypto-only ceiling"] =
    set?.ratios?.['crypto-only ceiling: sealDataEntry + Merkle leaf, no storage'];
  for (const clients of CLIENTS) {
    const sdk = row('W2', "e2ekv SDK: set, ack 'one'", clients);
    const raw = row('W2', 'e2ekv-server: pre-built', clients);
    summary[`W2, ${clients} writer${clients === 1 ? '' : 's'}: e2ekv SDK durable writes/s ÷ etcd's`] =
      sdk?.ratios?.['etcd, 1 member: put'];
    summary[`W2, ${clients} writer${clients === 1 ? '' : 's'}: e2ekv-server alone (pre-built appends) ÷ etcd`] =
      raw?.ratios?.['etcd, 1 member: put'];
    summary[`W2, ${clients} writer${clients === 1 ? '' : 's'}: e2ekv SDK ÷ Redis (appendfsync always)`] =
      sdk?.ratios?.['Redis, appendfsync always: SET'];
    const memoryStorage = row('W2', 'diagnostic, not durable', clients);
    if (raw !== undefined && memoryStorage !== undefined) {
      summary[
        `W2, ${clients} writer${clients === 1 ? '' : 's'}: pre-built appends on SQLite ÷ on in-memory storage (diagnostic)`
      ] = raw.opsPerSecond / memoryStorage.opsPerSecond;
    }
  }
  const quorum = row('W3', "e2ekv SDK: set, ack 'quorum'", 16);
  summary["W3, 16 writers: e2ekv SDK (ack 'quorum') ÷ 3-member etcd"] = quorum?.ratios?.['etcd, 3 members: put'];
  const readOne = row('W4', "e2ekv SDK: get, read 'one'", 16);
  summary["W4, 16 readers: e2ekv read 'one' ÷ etcd linearizable get"] =
    readOne?.ratios?.['etcd, 3 members: linearizable get'];
  const readQuorum = row('W4', "e2ekv SDK: get, read 'quorum'", 16);
  summary["W4, 16 readers: e2ekv read 'quorum' ÷ etcd linearizable get"] =
    readQuorum?.ratios?.['etcd, 3 members: linearizable get'];
  const w5r = byId.get('W5')?.figures;
  if (w5r !== undefined) {
    summary['W5: fresh device sync, entries/s'] = w5r['fresh device: entries/s'];
    summary['W5: wire bytes per payload byte'] = w5r['wire bytes per payload byte (bodies + headers)'];
    summary['W5: SDK heap per key, bytes'] = w5r['SDK heap per key, bytes'];
  }
  const w6r = byId.get('W6');
  summary['W6: anti-entropy round repairing 10 missing entries, ms'] =
    w6r?.figures?.['warm round repairing the difference: ms, as B timed it'] ??
    (w6r === undefined ? undefined : `not measured: ${w6r.notMeasured.join('; ')}`);
  const mem = byId.get('Memory')?.figures;
  if (mem !== undefined) {
    summary[`Memory: e2ekv-server RSS with ${fmt(mem['entries'] as number)} entries, MiB`] =
      mem['RSS after loading (idle 2 s), MiB'];
  }
  return summary;
}

async function main(): Promise<void> {
  const runStarted = performance.now();
  const startedAt = new Date();
  const cpuStart = await machineCpu();
  const machine: Record<string, unknown> = {
    node: process.version,
    platform: process.platform,
    arch: process.arch,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    ...codeVersion(),
    loadAverageStart: loadAverage(),
  };
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    interrupted = true;
    console.error(`\n${signal}: stopping every service and removing temp dirs`);
    void cleanUp().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const workloads: WorkloadResult[] = [];
  try {
    scratch = await mkdtemp(path.join(os.tmpdir(), 'e2ekv-bench-compare-'));
    const dir = scratch;
    onCleanup(() => rm(dir, { recursive: true, force: true }));
    serverConfig = path.join(scratch, 'server-config.json');
    await writeFile(
      serverConfig,
      JSON.stringify({ limits: { appendsPerMinutePerDevice: 1_000_000_000, maxVaultBytes: 2 ** 50 } }),
    );
    if (cpuProfDir !== undefined) await mkdir(cpuProfDir, { recursive: true });

    const needsEtcd = runs('w2') || runs('w3') || runs('w4');
    const needsRedis = runs('w2') || runs('w4');
    if (needsEtcd || needsRedis) {
      const packages: Record<string, string> = {};
      if (needsEtcd) packages['etcd-server'] = ETCD_BINARY;
      if (needsRedis) packages['redis-server'] = REDIS_BINARY;
      const installed = await ensurePackages(packages, log);
      installNotes.push(...installed.notes);
      if (needsEtcd && installed.available['etcd-server'] !== true) {
        services['etcd-server-package'] = { available: false, problem: 'etcd-server is not installed' };
      }
      if (needsRedis && installed.available['redis-server'] !== true) {
        services['redis'] = { available: false, problem: 'redis-server is not installed' };
      }
    }

    if (runs('w1') || runs('w2')) {
      const server = await e2ekvServer('single');
      if (runs('w1')) {
        log('W1: SDK local');
        workloads.push(await w1(server));
      }
      if (runs('w2')) {
        log('W2: durable writes through one replica');
        const etcd = await tryEtcd(1);
        const redis = await tryRedis();
        workloads.push(await w2(server, etcd, redis));
        await etcd?.stop();
      }
      await server.stop();
    }
    if (runs('w3') || runs('w4')) {
      const servers = [await e2ekvServer('r1'), await e2ekvServer('r2'), await e2ekvServer('r3')];
      const etcd = await tryEtcd(3);
      if (runs('w3')) {
        log('W3: three replicas, quorum writes');
        workloads.push(await w3(servers, etcd));
      }
      if (runs('w4')) {
        log('W4: reads');
        const redis = await tryRedis();
        workloads.push(await w4(servers, etcd, redis));
      }
      await etcd?.stop();
      for (const s of servers) await s.stop();
    }
    await redisServer?.stop();
    if (runs('w5')) {
      log(`W5: a fresh device syncing ${fmt(SYNC_ENTRIES)} entries`);
      workloads.push(await w5());
    }
    if (runs('w6')) {
      log('W6: anti-entropy');
      workloads.push(await w6());
    }
    if (runs('memory')) {
      log(`Memory: e2ekv-server with ${fmt(MEMORY_ENTRIES)} entries`);
      workloads.push(await memory());
    }

    const cpuEnd = await machineCpu();
    machine['loadAverageEnd'] = loadAverage();
    if (cpuStart !== undefined && cpuEnd !== undefined) {
      machine['machineBusyShare'] = (cpuEnd.busy - cpuStart.busy) / (cpuEnd.total - cpuStart.total);
    }
    const results: CompareResults = {
      benchmark: 'compare',
      date: startedAt.toISOString(),
      quick,
      argv,
      machine,
      settings: {
        ...PLAN,
        readRoundMs: READ_PLAN.roundMs,
        localRoundMs: LOCAL_PLAN.roundMs,
        clients: CLIENTS,
        valueBytes: VALUE_BYTES,
        keySpace: KEY_SPACE,
        readKeys: READ_KEYS,
        syncEntries: SYNC_ENTRIES,
        antiEntropyEntries: AE_ENTRIES,
        antiEntropyDifference: AE_DIFFERENCE,
        antiEntropyIntervalMs: AE_INTERVAL_MS,
        memoryEntries: MEMORY_ENTRIES,
        memoryVaults: MEMORY_VAULTS,
        filter: filterFlag ?? null,
        cpuProfile: cpuProfDir ?? null,
        e2ekvServer:
          'e2ekv-server defaults (SQLite WAL, synchronous=FULL, info logging to a file) except appendsPerMinutePerDevice and maxVaultBytes, raised',
      },
      services,
      installNotes,
      workloads,
      summary: summarize(workloads),
      elapsedSeconds: (performance.now() - runStarted) / 1000,
    };
    const text = markdown(results);
    console.log(text);
    const resultsDir = path.join(benchDir, 'results');
    await mkdir(resultsDir, { recursive: true });
    const stamp = startedAt.toISOString().replace(/:/g, '-');
    const file = path.join(resultsDir, `${quick ? 'quick-' : ''}${stamp}`);
    await writeFile(`${file}.json`, JSON.stringify(results, null, 2) + '\n');
    await writeFile(`${file}.md`, text);
    console.error(`\nresults: ${path.relative(repoRoot, file)}.json and .md`);
  } catch (error) {
    if (!interrupted) throw error;
  } finally {
    await cleanUp();
    if (!interrupted) {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  }
}

await main();
