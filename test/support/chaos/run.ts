// One seeded chaos run, end to end: a cluster of replicas behind link proxies,
// a vault with an admin, writer devices and an auditor, sessions running their
// plans while the nemesis runs the fault schedule, then heal, final sync of
// every writer, a quiet period, a snapshot of every replica read on its own,
// and the checker's report. The test (and the soak script) decide what to
// assert; this module only runs and records.
import os from 'node:os';
import path from 'node:path';
import { toHex } from '../../../protocol/src/index.js';
import {
  MemoryLocalStore,
  createClient,
  createIdentity,
  publicIdentity,
  type Identity,
  type Vault,
  type VaultAccess,
} from '../../../sdk/src/index.js';
import { deviceSigner } from '../../../sdk/src/identity.js';
import { ReplicaTransport } from '../../../sdk/src/transport.js';
import { checkHistory, type CheckReport, type ReplicaSnapshot } from './checker.js';
import { Cluster, serverHelp } from './cluster.js';
import { History } from './history.js';
import { Nemesis, type FaultCounts } from './nemesis.js';
import { Random } from './random.js';
import { faultSchedule, type ScheduleOptions } from './schedule.js';
import { runSession, sessionPlan } from './workload.js';

export interface ChaosConfig {
  seed: string;
  replicas: number;
  writers: number;
  /** Operations to run in all, at least. */
  ops: number;
  /** Keep running (and injecting faults) at least this long, even with `ops` reached. */
  minDurationMs: number;
  /** Give up starting new operations after this long, `ops` reached or not. */
  maxDurationMs: number;
  keys: number;
  thinkMs: readonly [number, number];
  /** The SDK's per-request timeout: how long a paused replica or a blackhole holds a request. */
  requestTimeoutMs: number;
  /** After the heal, and again after the final sync: time for replicas to replicate among themselves. */
  quietMs: number;
  /** Replicas replicate among themselves (--peer works): check them alone after the heal, before the final sync. */
  replicasConverge: boolean;
  /** How long the final sync may take to get every write to every replica. */
  finalSyncMs: number;
  schedule?: Partial<Omit<ScheduleOptions, 'replicas' | 'clients' | 'peers'>>;
  /** Server flags for a short anti-entropy interval, when the server has one. */
  serverArgs?: readonly string[];
  log: (line: string) => void;
}

export interface ChaosResult {
  /** The sessions (client node names, one writer device each): c0, c1, ... */
  sessions: string[];
  /** The check after the final sync of every writer. */
  report: CheckReport;
  /** With replication between replicas: the check of the replicas alone, after the heal and before any final sync. */
  peerPhase: { report: CheckReport; snapshots: ReplicaSnapshot[] } | undefined;
  history: History;
  snapshots: ReplicaSnapshot[];
  injected: FaultCounts;
  opsDone: number;
  /** ms: the fault phase, and the whole run. */
  faultPhaseMs: number;
  totalMs: number;
  /** What the link proxies did, summed over client links and over replica-to-replica links. */
  linkStats: { clients: Record<string, number>; peers: Record<string, number> };
  /** Whether every writer's final sync got all its writes acknowledged by every replica. */
  finalSyncComplete: boolean;
  logs: () => Record<string, string>;
}

/** Server flags this server version offers for fast replication in tests (none before peers exist). */
export async function replicationArgs(intervalMs: number): Promise<{ replicates: boolean; args: string[] }> {
  const help = await serverHelp();
  const replicates = !/replication is not\s+implemented/i.test(help);
  // --anti-entropy-interval MS (server/src/main.ts); read from --help, so the harness runs on servers without it too.
  const flag = /(--anti-entropy-interval)\b/.exec(help)?.[1];
  return { replicates, args: replicates && flag !== undefined ? [flag, String(intervalMs)] : [] };
}

/** Runs one chaos run; `teardown` receives the cleanup (the test's t.teardown), registered before anything starts. */
export async function runChaos(
  config: ChaosConfig,
  teardown: (cleanup: () => Promise<void>) => void,
): Promise<ChaosResult> {
  const started = Date.now();
  const random = new Random(config.seed);
  const sessions = Array.from({ length: config.writers }, (_, i) => `c${i}`);
  const cluster = await Cluster.start({
    replicas: config.replicas,
    clients: sessions,
    random: random.fork('links'),
    peers: true,
    serverArgs: config.serverArgs ?? [],
  });
  teardown(() => cluster.stop());

  // The vault: an admin that adds the writers and a read-only auditor, everywhere, before any fault.
  const direct = cluster.replicas.map((r) => r.url);
  const admin = await createClient({ identity: createIdentity(), servers: direct, store: new MemoryLocalStore() });
  const { vault: adminVault, access } = await admin.createVault();
  const writerIds = sessions.map(() => createIdentity());
  const auditor = createIdentity();
  for (const id of writerIds) await adminVault.addMember(publicIdentity(id), 'writer', { ack: 'all' });
  await adminVault.addMember(publicIdentity(auditor), 'reader', { ack: 'all' });
  const writers = await Promise.all(
    sessions.map(async (session, i) => {
      const client = await createClient({
        identity: writerIds[i]!,
        servers: cluster.urlsFor(session),
        store: new MemoryLocalStore(),
        timeoutMs: config.requestTimeoutMs,
      });
      return { session, device: client.deviceId, vault: await client.openVault(access) };
    }),
  );

  const history = new History({
    seed: config.seed,
    config: { ...config, log: undefined },
    vault: access.vaultId,
    devices: Object.fromEntries(writers.map((w) => [w.session, w.device])),
    links: Object.fromEntries(cluster.links().map((l) => [l.name, l.url])),
  });
  const probe = crashProbe(cluster, writers, auditor, access, history, config.log);
  const nemesis = new Nemesis(
    cluster,
    faultSchedule(random.fork('faults'), {
      replicas: config.replicas,
      clients: sessions,
      peers: true,
      ...config.schedule,
    }),
    history,
    { ...probe, maxDown: config.schedule?.maxDown ?? 1 },
  );

  // The fault phase: sessions run their plans while the nemesis works.
  const faultStart = Date.now();
  let opsDone = 0;
  const stop = () => {
    const elapsed = Date.now() - faultStart;
    return elapsed >= config.maxDurationMs || (opsDone >= config.ops && elapsed >= config.minDurationMs);
  };
  nemesis.start();
  const progress = setInterval(() => {
    config.log(
      `chaos: ${opsDone} operations, ${Math.round((Date.now() - faultStart) / 1000)} s, faults ${JSON.stringify(nemesis.injected)}`,
    );
  }, 10_000);
  try {
    await Promise.all(
      writers.map((w) =>
        runSession({
          session: w.session,
          device: w.device,
          vault: w.vault,
          plan: sessionPlan(random.fork(`plan ${w.session}`), w.session, { keys: config.keys }),
          history,
          stop: () => {
            if (stop()) return true;
            opsDone++;
            return false;
          },
          thinkMs: config.thinkMs,
          random: random.fork(`think ${w.session}`),
        }),
      ),
    );
  } catch (error) {
    // A session that throws is a harness or SDK failure outside the checker's view: keep what was recorded.
    const file = await history.dump(historyFile(config.seed), { error: String(error), serverLogs: cluster.logs() });
    config.log(`chaos: the fault phase failed; history written to ${file}`);
    throw error;
  } finally {
    clearInterval(progress);
    await nemesis.stop();
  }
  const faultPhaseMs = Date.now() - faultStart;
  config.log(`chaos: fault phase over after ${faultPhaseMs} ms and ${opsDone} operations; healed`);

  const keys = Array.from({ length: config.keys }, (_, i) => `k${i}`);
  const snapshotAll = () =>
    Promise.all(cluster.replicas.map((r) => snapshotReplica(r.name, r.url, auditor, access, keys)));

  // Replicas that replicate among themselves must converge on their own: every
  // acknowledged write reached one replica, and peers carry it to the others.
  // (A write whose outcome was unknown may be on its device alone until it syncs.)
  let peerPhase: ChaosResult['peerPhase'];
  if (config.replicasConverge) {
    await new Promise((resolve) => setTimeout(resolve, config.quietMs));
    const snapshots = await snapshotAll();
    peerPhase = { snapshots, report: checkHistory({ ops: history.ops, replicas: snapshots, writers: config.writers }) };
    config.log(
      `chaos: replicas alone after the heal and ${config.quietMs} ms: ${peerPhase.report.valid ? 'converged' : 'NOT converged'}`,
    );
  }

  const finalSyncComplete = await finalSync(
    writers.map((w) => ({ ...w, urls: cluster.urlsFor(w.session) })),
    config.finalSyncMs,
    config.log,
  );
  await new Promise((resolve) => setTimeout(resolve, config.quietMs));
  const snapshots = await snapshotAll();
  const report = checkHistory({
    ops: history.ops,
    replicas: snapshots,
    probes: history.probes,
    writers: config.writers,
    // Devices outlive the run and their final sync sends what they saved: nothing they wrote may be missing.
    requireUnacknowledged: true,
  });
  return {
    sessions,
    report,
    peerPhase,
    history,
    snapshots,
    injected: { ...nemesis.injected },
    opsDone,
    faultPhaseMs,
    totalMs: Date.now() - started,
    finalSyncComplete,
    linkStats: sumStats(cluster),
    logs: () => cluster.logs(),
  };
}

/**
 * Hooks that check kill -9 durability: right after a kill, what each writer
 * saw the replica acknowledge of its log; after the restart, before any link
 * reaches it again, what the replica holds. Read before clients can re-send
 * anything, so that a lost entry is not quietly made good by a later push.
 */
function crashProbe(
  cluster: Cluster,
  writers: readonly { session: string; device: string; vault: Vault }[],
  auditor: Identity,
  access: VaultAccess,
  history: History,
  log: (line: string) => void,
) {
  const acknowledged = new Map<number, Record<string, number>>();
  return {
    afterKill(replica: number) {
      const acks: Record<string, number> = {};
      for (const w of writers) {
        const url = cluster.urlsFor(w.session)[replica]!;
        acks[w.device] = w.vault.status().acked[url] ?? 0;
      }
      acknowledged.set(replica, acks);
    },
    async beforeReconnect(replica: number, url: string) {
      const name = cluster.replica(replica).name;
      const atMs = history.now();
      const acks = acknowledged.get(replica) ?? {};
      let lastError: unknown;
      for (let attempt = 0; attempt < 3; attempt++) {
        try {
          const { vector } = await replicaVector(url, auditor, access);
          history.probe({ replica: name, atMs, acknowledged: acks, held: vector });
          return;
        } catch (error) {
          // A replica that answers it has no such vault holds nothing of it: the checker weighs that.
          if ((error as { code?: unknown }).code === 'NOT_FOUND') {
            history.probe({ replica: name, atMs, acknowledged: acks, held: {} });
            return;
          }
          lastError = error;
          await new Promise((resolve) => setTimeout(resolve, 500));
        }
      }
      const error = lastError instanceof Error ? lastError.message : String(lastError);
      log(`chaos: could not read ${name} after its restart: ${error}`);
      history.probe({ replica: name, atMs, acknowledged: acks, error });
    },
  };
}

/** A replica's vector and log roots, from its vault state (unsigned: the snapshot's auditor verifies). */
async function replicaVector(
  url: string,
  auditor: Identity,
  access: VaultAccess,
): Promise<{ vector: Record<string, number>; roots: Record<string, string> }> {
  const transport = new ReplicaTransport({ url, signer: await deviceSigner(auditor), timeoutMs: 10_000 });
  const state = await transport.vaultState(access.vaultId);
  return {
    vector: Object.fromEntries(state.logs.map((l) => [l.device, l.size])),
    roots: Object.fromEntries(state.logs.map((l) => [l.device, toHex(l.root)])),
  };
}

/**
 * Syncs every writer until every replica acknowledged its whole log (the SDK
 * pushes to all replicas; sync() waits for one). Returns false when the time
 * ran out first: the checker then shows what is missing where.
 */
async function finalSync(
  writers: readonly { session: string; device: string; vault: Vault; urls: readonly string[] }[],
  withinMs: number,
  log: (line: string) => void,
): Promise<boolean> {
  const deadline = Date.now() + withinMs;
  const done = (w: (typeof writers)[number]) => {
    const status = w.vault.status();
    const size = status.logs.find((l) => l.device === w.device)?.entries ?? 0;
    return w.urls.every((url) => (status.acked[url] ?? 0) >= size);
  };
  let complete = false;
  while (!complete && Date.now() < deadline) {
    await Promise.all(
      writers.map(async (w) => {
        try {
          await w.vault.sync();
        } catch (error) {
          log(`chaos: final sync of ${w.session}: ${error instanceof Error ? error.message : String(error)}`);
        }
      }),
    );
    complete = writers.every(done);
    if (!complete) await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return complete;
}

/**
 * What one replica holds, read on its own: its vector from its vault state,
 * and every key's siblings as a fresh auditor device that syncs from this
 * replica alone sees them (so each replica's entries are verified and applied
 * independently of the others).
 */
async function snapshotReplica(
  name: string,
  url: string,
  auditor: Identity,
  access: VaultAccess,
  keys: readonly string[],
): Promise<ReplicaSnapshot> {
  try {
    const { vector, roots } = await replicaVector(url, auditor, access);
    const client = await createClient({
      identity: auditor,
      servers: [url],
      store: new MemoryLocalStore(),
      timeoutMs: 30_000,
    });
    const vault = await client.openVault(access);
    const state: ReplicaSnapshot['state'] = {};
    for (const key of keys) {
      const siblings = await vault.getAll(key);
      if (siblings.length > 0) state[key] = siblings.map((s) => ({ value: s.value, device: s.device, index: s.index }));
    }
    // The auditor must have applied all the replica holds, or the state above is not the replica's.
    const applied = Object.fromEntries(vault.status().logs.map((l) => [l.device, l.applied]));
    for (const [device, size] of Object.entries(vector)) {
      if ((applied[device] ?? 0) !== size) {
        throw new Error(
          `the auditor applied ${applied[device] ?? 0} of the ${size} entries of ${device.slice(0, 12)} it holds`,
        );
      }
    }
    return { replica: name, vector, roots, state };
  } catch (error) {
    return { replica: name, vector: {}, state: {}, error: error instanceof Error ? error.message : String(error) };
  }
}

/** Link proxy stats summed over client links and over replica-to-replica links. */
function sumStats(cluster: Cluster): ChaosResult['linkStats'] {
  const total: ChaosResult['linkStats'] = { clients: {}, peers: {} };
  for (const link of cluster.links()) {
    const sum = /^r\d+->/.test(link.name) ? total.peers : total.clients;
    for (const [name, value] of Object.entries(link.stats)) sum[name] = (sum[name] ?? 0) + value;
  }
  return total;
}

/** Where a failed run's history goes: $CHAOS_HISTORY_DIR, else the system's temp directory. */
export function historyFile(seed: string): string {
  const dir = process.env['CHAOS_HISTORY_DIR'] ?? os.tmpdir();
  const safe = seed.replace(/[^A-Za-z0-9._-]/g, '_');
  return path.join(dir, `e2ekv-chaos-${safe}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
}
