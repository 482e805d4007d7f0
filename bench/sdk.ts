/**
 * Throughput and latency of the e2ekv SDK as an application sees it, with
 * baselines and a crypto ceiling measured in the same run:
 *
 * 1. Crypto ceiling per 1 KiB value: the SDK's own entry sealing and opening
 *    (sdk/src/entries.ts sealDataEntry / openDataEntry, same key derivation as
 *    the client), its parts (envelope, HMAC blinding, Merkle leaf), and the
 *    per-request Ed25519 work (checkpoint sign, cosigned checkpoint verify,
 *    request signature). No storage, no network. The seal and open loops also
 *    run beside the workloads they bound (after every round of a local set,
 *    for 1 s before each sync phase), so "X% of the crypto ceiling" compares
 *    figures taken under the same load.
 * 2. `set` with ack 'local' on the memory and on the file local store, and `get`
 *    with read 'local', sequential; beside a plaintext Map and a bare
 *    open + append + fsync + close of an entry-sized record (what the file
 *    store does per entry).
 * 3. `set` acknowledged by one real e2ekv-server process (ack 'one'):
 *    sequential, 16 concurrent `set`s in flight on one vault, and 16-key
 *    batches; beside the same fetch POSTing plaintext appends to
 *    bench/baseline-server.ts (express + sqlite3, same durability, no checks).
 * 4. Sync of a vault of N entries (one 1 KiB key each) to a fresh device: the
 *    writer writes N entries with ack 'local', pushes them with one sync(),
 *    then another identity, added as a reader before the writes, opens the
 *    vault on a fresh memory store (and, for sizes up to 10,000, a fresh file
 *    store). Beside them: the entry pages fetched raw through the transport
 *    (no verification, no decryption) and a plaintext push of N entries to
 *    the baseline server. Also the live memory an open vault keeps per entry.
 *
 * Values are 1 KiB of random bytes (a pool of distinct random values, cycled).
 * Every request and response body is counted through the client's `fetch`
 * option. The e2ekv-server runs with its defaults except the per-device append
 * rate and the vault quota, raised so that they do not cut the run short.
 *
 *   npm run bench:sdk                      (full: sync of 10,000 and 100,000 entries; about 10 minutes)
 *   npm run bench:sdk -- --quick           (sync of 10,000 only, fewer and shorter rounds; about 1.5 minutes)
 *   npm run bench:sdk -- --only crypto,local,replica,sync   (some sections)
 *   npm run bench:sdk -- --sync-sizes 10000,50000           (other vault sizes)
 *
 * Prints a Markdown report and writes it, with the raw numbers, to
 * bench/results/sdk-<ISO time>.md and .json. Every server it starts is stopped
 * and every temp dir removed, on errors and on SIGINT/SIGTERM too.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  EnvelopePurpose,
  addNoteSignatures,
  cosignatureSigner,
  deviceCheckpointSigner,
  ed25519Signer,
  leafHash,
  openEnvelope,
  randomBytes,
  sealEnvelope,
  signDeviceCheckpoint,
  signRequest,
  toBase64,
  toHex,
  verifyDeviceCheckpoint,
  type EnvelopeBinding,
} from '@e2ekv/protocol';
import {
  MemoryLocalStore,
  createClient,
  createIdentity,
  publicIdentity,
  type Identity,
  type LocalStore,
  type Vault,
  type VaultAccess,
} from 'e2ekv';
import { openFileLocalStore } from 'e2ekv/node';
import { ReplicaTransport } from '../sdk/src/transport.js';
import { startServerProcess, tempDir, type ServerProcess } from '../server/test/support/process.js';
import {
  EntryCrypto,
  WireCounter,
  fmt,
  liveBytes,
  measureRate,
  median,
  medianBy,
  ms,
  pct,
  runOps,
  startBaselineServer,
  withCpu,
  type BaselineProcess,
  type CpuShares,
  type OpRun,
  type WireTotals,
} from './sdk-support.js';

// ---------------------------------------------------------------------------
// Parameters.

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
function flag(name: string): string | undefined {
  const i = argv.indexOf(name);
  return i === -1 ? undefined : argv[i + 1];
}
const SECTIONS = ['crypto', 'local', 'replica', 'sync'] as const;
type Section = (typeof SECTIONS)[number];
const only = flag('--only')?.split(',');
for (const s of only ?? []) {
  if (!(SECTIONS as readonly string[]).includes(s))
    throw new Error(`--only: unknown section ${s} (${SECTIONS.join(', ')})`);
}
const runs = (section: Section) => only === undefined || only.includes(section);

const VALUE_BYTES = 1024;
/** Distinct random values, cycled: enough that no cache or dedup could flatter us. */
const VALUE_POOL = 4096;
const ROUNDS = quick ? 3 : 5;
const ROUND_MS = quick ? 500 : 2000;
const WARMUP_MS = quick ? 300 : 1000;
const CRYPTO_ROUNDS = quick ? 3 : 5;
const CRYPTO_ROUND_MS = quick ? 300 : 1000;
const CONCURRENCY = 16;
const BATCH_KEYS = 16;
const SYNC_SIZES = (flag('--sync-sizes') ?? (quick ? '10000' : '10000,100000')).split(',').map((s) => {
  const n = Number(s);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`--sync-sizes: ${s} is not a positive whole number`);
  return n;
});
/** Vault sizes up to this also sync a fresh device onto a file store. */
const FILE_READER_MAX = 10_000;
/** Repetitions of the whole sync cycle (fresh vault, write, push, fresh device) per size. */
function syncRepetitions(n: number): number {
  if (n > 20_000) return 1;
  return quick ? 2 : 3;
}
/** e2ekv-server's default maxBatchEntries (server/src/limits.ts): entries per page and per pushed chunk. */
const SERVER_BATCH = 1024;
/** Push chunk size for the bench's own workaround, used only if a single sync() push is refused. */
const WORKAROUND_PUSH_EVERY = 1000;

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

// ---------------------------------------------------------------------------
// 1. Crypto ceiling.

interface CryptoResults {
  /** ops/s of each measured operation. */
  rates: Record<string, number>;
  /** Derived per-operation ceilings, ops/s. */
  ceilings: {
    /** sealDataEntry + Merkle leaf: what a local set must compute. */
    setLocal: number;
    /** setLocal + checkpoint sign + request signature + cosigned checkpoint verify: one set acknowledged by one replica. */
    setOne: number;
    /** decode + openDataEntry + Merkle leaf per entry, plus a page's checkpoint verify and request signature shared by 1,024 entries. */
    syncEntry: number;
  };
}

const CRYPTO_NAMES = {
  seal: 'sealDataEntry, one 1 KiB value (blind + 2 envelopes + encode)',
  sealLeaf: 'sealDataEntry + Merkle leaf hash (local set ceiling)',
  open: 'decodeEntry + openDataEntry + Merkle leaf hash (sync ceiling per entry)',
  envelopeSeal: 'envelope seal, 1 KiB payload',
  envelopeOpen: 'envelope open, 1 KiB payload',
  blind: 'HMAC-SHA-256 blinding of a key name',
  leaf: 'Merkle leaf hash of a sealed entry',
  checkpointSign: 'Ed25519 checkpoint sign (signDeviceCheckpoint, one at a time)',
  checkpointVerify: 'cosigned checkpoint verify (device + cosigner, one at a time)',
  requestSign: 'request signature (SHA-256 of a 2 KiB body + Ed25519)',
} as const;

/** One window of `durationMs` of a ceiling loop: ops/s, for ceilings interleaved with the workloads. */
async function ceilingWindow(run: (n: number) => Promise<void> | void, durationMs: number): Promise<number> {
  return measureRate(run, 64, 1, durationMs);
}

async function cryptoCeiling(entries: EntryCrypto): Promise<CryptoResults> {
  const { vaultId, seed, device, keys } = entries;
  const binding: EnvelopeBinding = {
    purpose: EnvelopePurpose.itemValue,
    vaultId,
    device,
    logIndex: 1n,
    epoch: 0,
    item: 0,
    blindedKey: randomBytes(32),
  };
  const valueKey = keys.keysFor(0)[0]!;
  const envelope = sealEnvelope(valueKey, binding, valueOf(0));
  const checkpointSigner = await deviceCheckpointSigner(seed, vaultId);
  const cosigner = await cosignatureSigner('bench.example/replica', randomBytes(32));
  const note = await signDeviceCheckpoint(checkpointSigner, { size: 1000n, root: randomBytes(32) });
  const cosigned = await addNoteSignatures(note, [cosigner]);
  const requestSigner = await ed25519Signer(seed);
  const requestBody = randomBytes(2048);
  const audience = randomBytes(32);

  const rates: Record<string, number> = {};
  const bench = async (name: string, batch: number, run: (n: number) => Promise<void> | void) => {
    rates[name] = await measureRate(run, batch, CRYPTO_ROUNDS, CRYPTO_ROUND_MS);
    log(`  ${name}: ${fmt(rates[name])} ops/s`);
  };
  await bench(CRYPTO_NAMES.seal, 64, (n) => {
    for (let i = 0; i < n; i++) entries.seal();
  });
  await bench(CRYPTO_NAMES.sealLeaf, 64, (n) => entries.sealAndLeaf(n));
  await bench(CRYPTO_NAMES.open, 64, (n) => entries.decodeOpenAndLeaf(n));
  await bench(CRYPTO_NAMES.envelopeSeal, 64, (n) => {
    for (let i = 0; i < n; i++) sealEnvelope(valueKey, binding, valueOf(i));
  });
  await bench(CRYPTO_NAMES.envelopeOpen, 64, (n) => {
    for (let i = 0; i < n; i++) openEnvelope(valueKey, binding, envelope);
  });
  await bench(CRYPTO_NAMES.blind, 256, (n) => {
    for (let i = 0; i < n; i++) keys.blinder.blind(keyOf(i));
  });
  await bench(CRYPTO_NAMES.leaf, 256, (n) => {
    for (let i = 0; i < n; i++) leafHash(entries.sealed[i % entries.sealed.length]!);
  });
  await bench(CRYPTO_NAMES.checkpointSign, 16, async (n) => {
    for (let i = 0; i < n; i++) await signDeviceCheckpoint(checkpointSigner, { size: BigInt(i + 1), root: audience });
  });
  await bench(CRYPTO_NAMES.checkpointVerify, 16, async (n) => {
    for (let i = 0; i < n; i++) await verifyDeviceCheckpoint(cosigned, vaultId, device, [cosigner]);
  });
  await bench(CRYPTO_NAMES.requestSign, 16, async (n) => {
    for (let i = 0; i < n; i++) {
      await signRequest(requestSigner, { audience, method: 'POST', path: '/v1/vaults/x/append', body: requestBody });
    }
  });
  const perOp = (...names: string[]) => 1 / names.reduce((s, name) => s + 1 / rates[name]!, 0);
  const perPage = 1 / rates[CRYPTO_NAMES.checkpointVerify]! + 1 / rates[CRYPTO_NAMES.requestSign]!;
  return {
    rates,
    ceilings: {
      setLocal: rates[CRYPTO_NAMES.sealLeaf]!,
      setOne: perOp(
        CRYPTO_NAMES.sealLeaf,
        CRYPTO_NAMES.checkpointSign,
        CRYPTO_NAMES.requestSign,
        CRYPTO_NAMES.checkpointVerify,
      ),
      syncEntry: 1 / (1 / rates[CRYPTO_NAMES.open]! + perPage / SERVER_BATCH),
    },
  };
}

// ---------------------------------------------------------------------------
// Workloads measured in rounds: warm-up, then the median round.

interface Workload {
  name: string;
  rounds: OpRun[];
  median: OpRun;
  /** Keys written per operation (batches), for keys/s. */
  keysPerOp: number;
  /** The crypto ceiling measured beside each round (ops/s), when the workload has one. */
  ceilingRounds?: number[];
  /** Median over rounds of (ops/s ÷ the ceiling measured in the same round). */
  ofCeiling?: number;
}

interface RoundOptions {
  keysPerOp?: number;
  baseline?: { name: string; run: (durationMs: number) => Promise<OpRun> };
  /** A crypto-ceiling loop run for half a round in every round, so its ratio is taken under the same load. */
  ceiling?: (n: number) => Promise<void> | void;
}

/**
 * Warm-up, then ROUNDS rounds; with a `baseline`, each round runs both,
 * alternating which goes first so drift (disk, other load) hits both alike.
 */
async function rounds(
  name: string,
  run: (durationMs: number) => Promise<OpRun>,
  options: RoundOptions = {},
): Promise<Workload[]> {
  const { baseline, ceiling } = options;
  await run(WARMUP_MS);
  if (baseline !== undefined) await baseline.run(WARMUP_MS);
  const ours: OpRun[] = [];
  const theirs: OpRun[] = [];
  const ceilings: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 || baseline === undefined ? ['ours', 'baseline'] : ['baseline', 'ours'];
    for (const who of order) {
      if (who === 'ours') {
        const result = await run(ROUND_MS);
        ours.push(result);
        log(`  ${name}, round ${r + 1}: ${describe(result)}`);
      } else if (baseline !== undefined) {
        const result = await baseline.run(ROUND_MS);
        theirs.push(result);
        log(`  ${baseline.name}, round ${r + 1}: ${describe(result)}`);
      }
    }
    if (ceiling !== undefined) ceilings.push(await ceilingWindow(ceiling, ROUND_MS / 2));
  }
  const keysPerOp = options.keysPerOp ?? 1;
  const workload: Workload = { name, rounds: ours, median: medianBy(ours, (x) => x.opsPerSecond), keysPerOp };
  if (ceiling !== undefined) {
    workload.ceilingRounds = ceilings;
    workload.ofCeiling = median(ours.map((x, i) => x.opsPerSecond / ceilings[i]!));
    log(`  ${name}: ${pct(workload.ofCeiling)} of the crypto ceiling measured beside it`);
  }
  const workloads = [workload];
  if (baseline !== undefined) {
    workloads.push({ name: baseline.name, rounds: theirs, median: medianBy(theirs, (x) => x.opsPerSecond), keysPerOp });
  }
  return workloads;
}

function describe(run: OpRun): string {
  const errors = Object.entries(run.errors)
    .map(([code, n]) => `${n} ${code}`)
    .join(', ');
  return (
    `${fmt(run.opsPerSecond)} ops/s, p50 ${ms(run.p50Ms)} ms, p99 ${ms(run.p99Ms)} ms` +
    (errors === '' ? '' : `, failed: ${errors}`)
  );
}

// ---------------------------------------------------------------------------
// 2. Local writes and reads.

interface Clients {
  server: ServerProcess;
  baseline: BaselineProcess;
  entryCrypto: EntryCrypto;
}

async function newVault(
  server: ServerProcess,
  store: LocalStore,
  wire?: WireCounter,
): Promise<{ vault: Vault; access: VaultAccess }> {
  const client = await createClient({
    identity: createIdentity(),
    servers: [server.url],
    store,
    ...(wire === undefined ? {} : { fetch: wire.fetch }),
  });
  return client.createVault();
}

async function localWorkloads({ server, entryCrypto }: Clients, scratch: string): Promise<Workload[]> {
  const results: Workload[] = [];

  // Memory store, then reads over what it wrote.
  const memory = await newVault(server, new MemoryLocalStore());
  let written = 0;
  const plain = new Map<string, Uint8Array>();
  let plainWritten = 0;
  results.push(
    ...(await rounds(
      "set, ack 'local', memory store",
      async (durationMs) => {
        const run = await runOps((i) => memory.vault.set(keyOf(i), valueOf(i), { ack: 'local' }), {
          durationMs,
          first: written,
        });
        written += run.started;
        return run;
      },
      {
        ceiling: (n) => entryCrypto.sealAndLeaf(n),
        baseline: {
          name: 'baseline: plaintext Map.set of a copied 1 KiB value',
          run: async (durationMs) => {
            const run = await runOps(
              async (i) => {
                plain.set(keyOf(i), valueOf(i).slice());
              },
              { durationMs, first: plainWritten },
            );
            plainWritten += run.started;
            return run;
          },
        },
      },
    )),
  );
  log(`  (memory vault now holds ${fmt(written)} keys)`);
  let probe = 0;
  const pick = () => {
    // A pseudo-random walk over every key written, so reads do not stay in one cache line.
    probe = (probe + 7919) % written;
    return probe;
  };
  for (const i of [0, written - 1, Math.floor(written / 2)]) {
    if (!equalBytes(await memory.vault.get(keyOf(i)), valueOf(i))) throw new Error(`get ${keyOf(i)} read back wrong`);
  }
  results.push(
    ...(await rounds(
      "get, read 'local', memory store",
      (durationMs) =>
        runOps(
          async () => {
            await memory.vault.get(keyOf(pick()));
          },
          { durationMs },
        ),
      {
        baseline: {
          name: 'baseline: plaintext Map.get',
          run: (durationMs) =>
            runOps(
              async (i) => {
                plain.get(keyOf(i % plainWritten));
              },
              { durationMs },
            ),
        },
      },
    )),
  );
  plain.clear();

  // File store in a temp dir, beside a bare append + fsync of the same record size.
  const fileStore = await openFileLocalStore(path.join(scratch, 'file-store'));
  try {
    const file = await newVault(server, fileStore);
    let fileWritten = 0;
    const rawPath = path.join(scratch, 'raw-append.log');
    // A sealed entry with the file store's 4-byte length prefix.
    const record = randomBytes(4 + entryCrypto.sealed[0]!.length);
    results.push(
      ...(await rounds(
        "set, ack 'local', file store",
        async (durationMs) => {
          const run = await runOps((i) => file.vault.set(keyOf(i), valueOf(i), { ack: 'local' }), {
            durationMs,
            first: fileWritten,
          });
          fileWritten += run.started;
          return run;
        },
        {
          ceiling: (n) => entryCrypto.sealAndLeaf(n),
          baseline: {
            name: 'baseline: open, append an entry-sized record, fsync, close (the file store per entry)',
            run: (durationMs) =>
              runOps(
                async () => {
                  const handle = await open(rawPath, 'a', 0o600);
                  try {
                    await handle.write(record);
                    await handle.sync();
                  } finally {
                    await handle.close();
                  }
                },
                { durationMs },
              ),
          },
        },
      )),
    );
  } finally {
    await fileStore.close();
  }
  return results;
}

// ---------------------------------------------------------------------------
// 3. Writes acknowledged by one replica.

/** POSTs plaintext appends to the baseline server with the same global fetch the SDK uses. */
function baselineAppender(baseline: BaselineProcess, wire: WireCounter) {
  const vault = toHex(randomBytes(32));
  const device = toHex(randomBytes(32));
  let next = 0;
  return async (count: number) => {
    const start = next;
    next += count;
    const body = JSON.stringify({
      start,
      entries: Array.from({ length: count }, (_, k) => toBase64(valueOf(start + k))),
    });
    const response = await wire.fetch(`${baseline.url}/v1/vaults/${vault}/logs/${device}/append`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: new TextEncoder().encode(body),
    });
    if (!response.ok) throw new Error(`baseline answered ${response.status}: ${await response.text()}`);
    await response.arrayBuffer();
  };
}

async function replicaWorkloads({ server, baseline }: Clients): Promise<Workload[]> {
  const results: Workload[] = [];
  const serverPid = server.child.pid!;
  const baselinePid = baseline.pid;

  const baselineRun = (appender: (count: number) => Promise<void>, wire: WireCounter, concurrency = 1, count = 1) => {
    return (durationMs: number) =>
      runOps(() => appender(count), { durationMs, concurrency, serverPid: baselinePid, wire });
  };

  {
    const wire = new WireCounter();
    const { vault } = await newVault(server, new MemoryLocalStore(), wire);
    const baselineWire = new WireCounter();
    let written = 0;
    results.push(
      ...(await rounds(
        "set, ack 'one', sequential",
        async (durationMs) => {
          const run = await runOps((i) => vault.set(keyOf(i), valueOf(i), { ack: 'one' }), {
            durationMs,
            first: written,
            serverPid,
            wire,
          });
          written += run.started;
          return run;
        },
        {
          baseline: {
            name: 'baseline: fetch POST of one plaintext 1 KiB entry, sequential',
            run: baselineRun(baselineAppender(baseline, baselineWire), baselineWire),
          },
        },
      )),
    );
  }

  {
    const wire = new WireCounter();
    const { vault } = await newVault(server, new MemoryLocalStore(), wire);
    const baselineWire = new WireCounter();
    let written = 0;
    results.push(
      ...(await rounds(
        `set, ack 'one', ${CONCURRENCY} in flight on one vault`,
        async (durationMs) => {
          const run = await runOps((i) => vault.set(keyOf(i), valueOf(i), { ack: 'one' }), {
            durationMs,
            first: written,
            serverPid,
            wire,
            concurrency: CONCURRENCY,
            tolerateErrors: true,
          });
          written += run.started;
          return run;
        },
        {
          baseline: {
            name: `baseline: fetch POST of one plaintext 1 KiB entry, ${CONCURRENCY} in flight`,
            run: baselineRun(baselineAppender(baseline, baselineWire), baselineWire, CONCURRENCY),
          },
        },
      )),
    );
  }

  {
    const wire = new WireCounter();
    const { vault } = await newVault(server, new MemoryLocalStore(), wire);
    const baselineWire = new WireCounter();
    let written = 0;
    results.push(
      ...(await rounds(
        `batch of ${BATCH_KEYS} keys, ack 'one', sequential`,
        async (durationMs) => {
          const run = await runOps(
            (i) =>
              vault.batch(
                Array.from({ length: BATCH_KEYS }, (_, k) => ({
                  name: keyOf(i * BATCH_KEYS + k),
                  value: valueOf(i * BATCH_KEYS + k),
                })),
                { ack: 'one' },
              ),
            { durationMs, first: written, serverPid, wire },
          );
          written += run.started;
          return run;
        },
        {
          keysPerOp: BATCH_KEYS,
          baseline: {
            name: `baseline: fetch POST of ${BATCH_KEYS} plaintext 1 KiB entries, sequential`,
            run: baselineRun(baselineAppender(baseline, baselineWire), baselineWire, 1, BATCH_KEYS),
          },
        },
      )),
    );
  }
  return results;
}

// ---------------------------------------------------------------------------
// 4. Sync of a large vault to a fresh device.

interface Phase {
  entries: number;
  seconds: number;
  entriesPerSecond: number;
  cpu: CpuShares;
  wire?: WireTotals;
  /** Request + response body bytes per entry. */
  bodyBytesPerEntry?: number;
  /** Body and header bytes per entry (headers approximate). */
  wireBytesPerEntry?: number;
  /** Live memory (JS heap + buffers, after a full GC) the open vault holds per entry: fresh devices only. */
  memoryBytesPerEntry?: number;
  /** The crypto ceiling (entries/s) measured for 1 s just before this phase, when it has one. */
  ceiling?: number;
  /** Peak JS heap + buffers (live or not yet collected) during the phase, above the live memory before it, MiB. */
  peakMemoryMiB?: number;
}

const CEILING_WINDOW_MS = 1000;

interface SyncCycle {
  entries: number;
  /** The writer's N local sets (ack 'local'), timed as one loop. */
  write: Phase;
  /** The writer's sync() that pushes them. */
  push: Phase;
  /** How the push went: 'one sync()' or the bench's workaround. */
  pushMode: string;
  pushProblem?: string;
  /** Baseline: N plaintext entries POSTed to the baseline server in 1,024-entry appends. */
  plainPush: Phase;
  /** Baseline: every page of the writer's log fetched through the transport, nothing verified or decrypted. */
  rawFetch: Phase;
  /** A fresh device (another identity, a reader) opening the vault on a memory store. */
  readMemory: Phase;
  /** The same on a file store, for sizes up to FILE_READER_MAX. */
  readFile?: Phase;
  /** Largest resident set size seen so far, MiB (this process). */
  maxRssMiB: number;
}

function phase(entries: number, seconds: number, cpu: CpuShares, wire?: WireTotals): Phase {
  const p: Phase = { entries, seconds, entriesPerSecond: entries / seconds, cpu };
  if (wire !== undefined) {
    p.wire = wire;
    p.bodyBytesPerEntry = (wire.requestBodyBytes + wire.responseBodyBytes) / entries;
    p.wireBytesPerEntry =
      (wire.requestBodyBytes + wire.responseBodyBytes + wire.requestHeaderBytes + wire.responseHeaderBytes) / entries;
  }
  return p;
}

/** How many entries of `device`'s log the replica holds, asked as `identity`. */
async function replicaLogSize(url: string, identity: Identity, vaultId: string, device: string): Promise<number> {
  const transport = new ReplicaTransport({ url, signer: await ed25519Signer(identity.signingSeed) });
  const state = await transport.vaultState(vaultId);
  return state.logs.find((l) => l.device === device)?.size ?? 0;
}

async function readInto(
  { server, entryCrypto }: Clients,
  identity: Identity,
  access: VaultAccess,
  store: LocalStore,
  n: number,
): Promise<Phase> {
  const ceiling = await ceilingWindow((k) => entryCrypto.decodeOpenAndLeaf(k), CEILING_WINDOW_MS);
  const wire = new WireCounter();
  const memoryBefore = liveBytes();
  let peak = memoryBefore;
  const sample = () => {
    const usage = process.memoryUsage();
    peak = Math.max(peak, usage.heapUsed + usage.arrayBuffers);
  };
  const sampler = setInterval(sample, 50);
  let timed;
  try {
    const client = await createClient({ identity, servers: [server.url], fetch: wire.fetch, store });
    timed = await withCpu(server.child.pid, () => client.openVault(access));
    sample();
  } finally {
    clearInterval(sampler);
  }
  const { result: vault, seconds, cpu } = timed;
  const p = phase(n, seconds, cpu, wire.snapshot());
  p.memoryBytesPerEntry = (liveBytes() - memoryBefore) / n;
  p.peakMemoryMiB = (peak - memoryBefore) / 2 ** 20;
  p.ceiling = ceiling;
  const names = await vault.list();
  if (names.length !== n) throw new Error(`the fresh device sees ${names.length} keys, not ${n}`);
  for (const i of [0, n - 1, Math.floor(n / 3)]) {
    if (!equalBytes(await vault.get(keyOf(i)), valueOf(i))) throw new Error(`the fresh device read ${keyOf(i)} wrong`);
  }
  return p;
}

interface Written {
  access: VaultAccess;
  writerDevice: string;
  memoryReader: Identity;
  fileReader: Identity | undefined;
  write: Phase;
  push: Phase;
}

/**
 * A fresh vault with its readers, N local sets and the push. The writer's
 * client and vault stay inside: once this returns they can be collected, so
 * they do not weigh on the fresh device's memory figures.
 */
async function writeAndPush(clients: Clients, n: number, pushEvery: number | undefined): Promise<Written> {
  const { server } = clients;
  const serverPid = server.child.pid!;
  const writerIdentity = createIdentity();
  const memoryReader = createIdentity();
  const fileReader = n <= FILE_READER_MAX ? createIdentity() : undefined;
  const writerWire = new WireCounter();
  const writer = await createClient({
    identity: writerIdentity,
    servers: [server.url],
    fetch: writerWire.fetch,
    store: new MemoryLocalStore(),
  });
  const { vault, access } = await writer.createVault();
  // Readers join before the data: the membership entries come first in the log.
  for (const reader of [memoryReader, fileReader]) {
    if (reader !== undefined) await vault.addMember(publicIdentity(reader), 'reader');
  }
  const before = await replicaLogSize(server.url, writerIdentity, access.vaultId, writer.deviceId);

  const writeCeiling = await ceilingWindow((k) => clients.entryCrypto.sealAndLeaf(k), CEILING_WINDOW_MS);
  const writeWire = writerWire.snapshot();
  const write = await withCpu(undefined, async () => {
    for (let i = 0; i < n; i++) {
      await vault.set(keyOf(i), valueOf(i), { ack: 'local' });
      if (pushEvery !== undefined && (i + 1) % pushEvery === 0) await vault.sync();
    }
  });
  const writePhase = phase(
    n,
    write.seconds,
    write.cpu,
    pushEvery === undefined ? undefined : writerWire.since(writeWire),
  );
  writePhase.ceiling = writeCeiling;
  log(`    ${fmt(n)} local sets: ${write.seconds.toFixed(2)} s (${fmt(n / write.seconds)}/s)`);

  const pushWire = writerWire.snapshot();
  const push = await withCpu(serverPid, () => vault.sync());
  const pushPhase = phase(n, push.seconds, push.cpu, writerWire.since(pushWire));
  const held = await replicaLogSize(server.url, writerIdentity, access.vaultId, writer.deviceId);
  if (held !== before + n) {
    // sync() swallows UNAVAILABLE (the entries stay local); a write with ack 'one' says why.
    let problem = `the replica holds ${held} of the writer's ${before + n} entries after sync()`;
    try {
      await vault.set('bench/probe', 0, { ack: 'one' });
    } catch (error) {
      problem += `: ${(error as Error).message}`;
    }
    throw new PushIncomplete(problem);
  }
  log(
    `    push (sync): ${push.seconds.toFixed(2)} s (${fmt(n / push.seconds)} entries/s), ` +
      `${fmt(pushPhase.bodyBytesPerEntry)} body bytes/entry in ${pushPhase.wire!.requests} requests`,
  );
  return { access, writerDevice: writer.deviceId, memoryReader, fileReader, write: writePhase, push: pushPhase };
}

async function syncCycle(clients: Clients, scratch: string, n: number, pushEvery?: number): Promise<SyncCycle> {
  const { server, baseline } = clients;
  const serverPid = server.child.pid!;
  const { access, writerDevice, memoryReader, fileReader, write, push } = await writeAndPush(clients, n, pushEvery);

  // Baseline: the same count of plaintext entries to the baseline server.
  const plainWire = new WireCounter();
  const appender = baselineAppender(baseline, plainWire);
  const plain = await withCpu(baseline.pid, async () => {
    for (let done = 0; done < n; done += SERVER_BATCH) await appender(Math.min(SERVER_BATCH, n - done));
  });
  const plainPush = phase(n, plain.seconds, plain.cpu, plainWire.snapshot());

  // Baseline: the pages, fetched raw (shape-checked and base64-decoded by the transport, nothing else).
  const rawWire = new WireCounter();
  const transport = new ReplicaTransport({
    url: server.url,
    signer: await ed25519Signer(memoryReader.signingSeed),
    fetch: rawWire.fetch,
  });
  const size = await replicaLogSize(server.url, memoryReader, access.vaultId, writerDevice);
  const raw = await withCpu(serverPid, async () => {
    await transport.vaultState(access.vaultId);
    for (let start = 0; start < size;) {
      const page = await transport.entries(access.vaultId, writerDevice, start, size);
      if (page.entries.length === 0) throw new Error(`the replica sent an empty page at ${start} of ${size}`);
      start += page.entries.length;
    }
  });
  const rawFetch = phase(size, raw.seconds, raw.cpu, rawWire.snapshot());
  log(`    raw page fetch: ${raw.seconds.toFixed(2)} s (${fmt(size / raw.seconds)} entries/s)`);

  const readMemory = await readInto(clients, memoryReader, access, new MemoryLocalStore(), n);
  log(
    `    fresh device, memory store: ${readMemory.seconds.toFixed(2)} s (${fmt(readMemory.entriesPerSecond)} entries/s), ` +
      `${fmt(readMemory.bodyBytesPerEntry)} body bytes/entry in ${readMemory.wire!.requests} requests`,
  );
  const cycle: SyncCycle = {
    entries: n,
    write,
    push,
    pushMode: pushEvery === undefined ? 'one sync() after all writes' : `sync() every ${pushEvery} writes (workaround)`,
    plainPush,
    rawFetch,
    readMemory,
    maxRssMiB: 0,
  };
  if (fileReader !== undefined) {
    // Inside the run's scratch dir, so that an interrupted run removes it too.
    const dir = await mkdtemp(path.join(scratch, 'reader-'));
    let readFile: Phase;
    try {
      const store = await openFileLocalStore(dir);
      try {
        readFile = await readInto(clients, fileReader, access, store, n);
      } finally {
        await store.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    cycle.readFile = readFile;
    log(`    fresh device, file store: ${readFile.seconds.toFixed(2)} s (${fmt(readFile.entriesPerSecond)} entries/s)`);
  }
  cycle.maxRssMiB = Math.round(process.resourceUsage().maxRSS / 1024);
  return cycle;
}

class PushIncomplete extends Error {}

interface SyncResult {
  entries: number;
  cycles: SyncCycle[];
  /** The cycle with the median fresh-device (memory store) time. */
  median: SyncCycle;
}

async function syncWorkloads(clients: Clients, scratch: string): Promise<SyncResult[]> {
  const results: SyncResult[] = [];
  let pushEvery: number | undefined;
  for (const n of SYNC_SIZES) {
    const cycles: SyncCycle[] = [];
    const reps = syncRepetitions(n);
    for (let r = 0; r < reps; r++) {
      log(`  ${fmt(n)} entries, repetition ${r + 1} of ${reps}:`);
      try {
        cycles.push(await syncCycle(clients, scratch, n, pushEvery));
      } catch (error) {
        if (!(error instanceof PushIncomplete) || pushEvery !== undefined) throw error;
        log(`    PUSH REFUSED: ${error.message}`);
        log(`    working around it: sync() every ${WORKAROUND_PUSH_EVERY} writes from now on`);
        pushEvery = WORKAROUND_PUSH_EVERY;
        const cycle = await syncCycle(clients, scratch, n, pushEvery);
        cycle.pushProblem = error.message;
        cycles.push(cycle);
      }
    }
    results.push({ entries: n, cycles, median: medianBy(cycles, (c) => c.readMemory.seconds) });
  }
  return results;
}

// ---------------------------------------------------------------------------
// Report.

interface Report {
  crypto?: CryptoResults;
  local?: Workload[];
  replica?: Workload[];
  sync?: SyncResult[];
}

function perOpWire(run: OpRun): { requests: string; bytes: string } {
  if (run.wire === undefined || run.ops === 0) return { requests: '', bytes: '' };
  const w = run.wire;
  return {
    requests: (w.requests / run.ops).toFixed(2),
    bytes: fmt((w.requestBodyBytes + w.responseBodyBytes) / run.ops),
  };
}

/** CPU time per operation (or entry), SDK / server, in `unit` (1e3: ms, 1e6: µs). */
function cpuPer(cpu: CpuShares, perSecond: number, unit: number): string {
  const per = (share: number) => {
    const x = (share / perSecond) * unit;
    return x < 10 ? x.toFixed(2) : x.toFixed(0);
  };
  return cpu.server === undefined ? per(cpu.client) : `${per(cpu.client)} / ${per(cpu.server)}`;
}

function markdown(report: Report, machine: Record<string, unknown>, elapsedSeconds: number): string {
  const lines: string[] = [];
  lines.push(
    `## e2ekv SDK throughput (${quick ? 'quick' : 'full'} run)`,
    '',
    `Values are ${VALUE_BYTES} random bytes, one key per write. Timed workloads: median of ${ROUNDS} rounds of ` +
      `${ROUND_MS / 1000} s after ${WARMUP_MS / 1000} s warm-up, p50/p99 from the median round; ` +
      `crypto: median of ${CRYPTO_ROUNDS} rounds of ${CRYPTO_ROUND_MS / 1000} s.`,
    `Machine: ${machine['node']} on ${machine['platform']}/${machine['arch']}, ${machine['cpus']} × ${machine['cpuModel']}, ` +
      `${machine['memoryGiB']} GiB RAM, load average at start ${machine['loadAverage']}; the SDK, e2ekv-server and the ` +
      `baseline server share these CPUs. Whole run ${elapsedSeconds.toFixed(0)} s.`,
    `Code: commit ${String(machine['commit'] ?? 'unknown').slice(0, 12)}${machine['uncommittedChanges'] === true ? ' with uncommitted changes' : ''}.`,
  );
  const crypto = report.crypto;
  if (crypto !== undefined) {
    lines.push(
      '',
      '### Crypto ceiling (no storage, no network)',
      '',
      '| operation | ops/s | µs/op |',
      '|---|---:|---:|',
    );
    for (const [name, rate] of Object.entries(crypto.rates)) {
      lines.push(`| ${name} | ${fmt(rate)} | ${(1e6 / rate).toFixed(1)} |`);
    }
    const ceiling = (name: string, detail: string, rate: number) =>
      `| **${name}** (${detail}) | ${fmt(rate)} | ${(1e6 / rate).toFixed(1)} |`;
    lines.push(
      ceiling("ceiling: set, ack 'local'", 'seal + leaf', crypto.ceilings.setLocal),
      ceiling(
        "ceiling: set, ack 'one'",
        'seal + leaf, checkpoint sign, request signature, cosigned checkpoint verify',
        crypto.ceilings.setOne,
      ),
      ceiling(
        'ceiling: sync, per entry',
        `decode + open + leaf, and one page's checkpoint verify and request signature / ${SERVER_BATCH}`,
        crypto.ceilings.syncEntry,
      ),
      '',
      'Ed25519 goes through WebCrypto, awaited one at a time as the SDK does: most of a verify is spent waiting for ' +
        "Node's thread pool, not computing.",
    );
  }
  // Local sets: the ceiling measured beside each round. Sets acknowledged by a
  // replica: the composite ceiling of the crypto section.
  const ofCeiling = (w: Workload): string => {
    if (w.ofCeiling !== undefined) return pct(w.ofCeiling);
    if (crypto === undefined || !w.name.startsWith('set') || !w.name.includes("'one'")) return '';
    return pct(w.median.opsPerSecond / crypto.ceilings.setOne);
  };
  const opTable = (title: string, workloads: readonly Workload[]) => {
    lines.push(
      '',
      `### ${title}`,
      '',
      '| workload | ops/s | keys/s | p50 ms | p99 ms | of crypto ceiling | requests/op | body bytes/op | CPU ms/op, SDK / server | failed ops |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|---|',
    );
    for (const w of workloads) {
      const m = w.median;
      const wire = perOpWire(m);
      const failed = Object.entries(m.errors)
        .map(([code, n]) => `${fmt(n)} ${code}`)
        .join(', ');
      lines.push(
        `| ${w.name} | ${fmt(m.opsPerSecond)} | ${fmt(m.opsPerSecond * w.keysPerOp)} | ${ms(m.p50Ms)} | ${ms(m.p99Ms)} | ` +
          `${ofCeiling(w)} | ${wire.requests} | ${wire.bytes} | ` +
          `${cpuPer(m.cpu, m.opsPerSecond, 1e3)} | ${failed} |`,
      );
    }
    for (const w of workloads) {
      for (const [code, message] of Object.entries(w.median.errorSamples)) {
        lines.push('', `${w.name}, first ${code} error: "${message}"`);
      }
    }
  };
  if (report.local !== undefined) {
    opTable('Local writes and reads (sequential)', report.local);
    lines.push(
      '',
      'Of crypto ceiling, local sets: the seal + leaf loop runs for half a round after every round, and the figure is ' +
        'the median of the per-round ratios, so both sides see the same load.',
    );
  }
  if (report.replica !== undefined) {
    opTable("Writes acknowledged by one e2ekv-server (ack 'one')", report.replica);
    lines.push(
      '',
      "Of crypto ceiling, ack 'one': against the composite ceiling of the crypto section. Baseline rows POST " +
        'plaintext entries with the same global fetch to bench/baseline-server.ts (express 5 + sqlite3, same ' +
        'durability, no authentication or checks).',
    );
  }
  if (report.sync !== undefined) {
    lines.push(
      '',
      '### Sync of a vault to a fresh device',
      '',
      "Median cycle by the fresh device's time. Body bytes count request and response bodies through the `fetch` " +
        'wrapper; wire bytes add request and response headers (approximate). Memory is what the open vault keeps ' +
        'alive (JS heap + buffers after a full GC), per entry; peak is the most JS heap + buffers (garbage included) ' +
        'seen during the sync, above what was live before it. The crypto ceiling of a phase (seal + leaf for the ' +
        'writer, decode + open + leaf for a fresh device) is measured for 1 s just before it.',
      '',
      '| entries | phase | wall s | entries/s | of crypto ceiling | body bytes/entry | wire bytes/entry | requests | CPU µs/entry, SDK / server | memory bytes/entry | peak MiB |',
      '|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    );
    const notes: string[] = [];
    for (const s of report.sync) {
      const c = s.median;
      const row = (name: string, p: Phase | undefined) => {
        if (p === undefined) return;
        const ceiling = p.ceiling;
        lines.push(
          `| ${fmt(s.entries)} | ${name} | ${p.seconds.toFixed(2)} | ${fmt(p.entriesPerSecond)} | ` +
            `${ceiling === undefined ? '' : pct(p.entriesPerSecond / ceiling)} | ${p.bodyBytesPerEntry === undefined ? '' : fmt(p.bodyBytesPerEntry)} | ` +
            `${p.wireBytesPerEntry === undefined ? '' : fmt(p.wireBytesPerEntry)} | ${p.wire?.requests ?? ''} | ` +
            `${cpuPer(p.cpu, p.entriesPerSecond, 1e6)} | ${p.memoryBytesPerEntry === undefined ? '' : fmt(p.memoryBytesPerEntry)} | ` +
            `${p.peakMemoryMiB === undefined ? '' : fmt(p.peakMemoryMiB)} |`,
        );
      };
      row("writer: N sets, ack 'local'", c.write);
      row(`writer: push (${c.pushMode})`, c.push);
      row('baseline: plaintext push to the baseline server, 1,024 per append', c.plainPush);
      row('baseline: raw page fetch (no verify, no decrypt)', c.rawFetch);
      row('fresh device, memory store: openVault', c.readMemory);
      row('fresh device, file store: openVault', c.readFile);
      if (s.cycles.length > 1) {
        const all = (pick: (c: SyncCycle) => Phase) => s.cycles.map((x) => fmt(pick(x).entriesPerSecond)).join(', ');
        notes.push(
          `${fmt(s.entries)} entries, all ${s.cycles.length} cycles (entries/s): push ${all((x) => x.push)}; ` +
            `raw page fetch ${all((x) => x.rawFetch)}; fresh device, memory store ${all((x) => x.readMemory)}.`,
        );
      }
    }
    for (const note of notes) lines.push('', note);
    const problems = report.sync.flatMap((s) => s.cycles.map((c) => c.pushProblem)).filter((p) => p !== undefined);
    if (problems.length > 0) lines.push('', `Push problem (worked around in the bench): ${problems[0]}`);
    const peak = Math.max(...report.sync.flatMap((s) => s.cycles.map((c) => c.maxRssMiB)));
    lines.push(
      '',
      `Peak RSS of the benchmark process (all sections so far; writer and fresh devices share it): ${fmt(peak)} MiB.`,
    );
  }
  lines.push(
    '',
    'CPU is user + system time of all threads (WebCrypto and fsync run on the thread pool) divided by the work done: ' +
      'SDK = this process, server = the e2ekv-server process, or the baseline server on baseline rows.',
  );
  return lines.join('\n');
}

/** The commit measured, and whether the working tree had changes (read-only git calls). */
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

// ---------------------------------------------------------------------------
// Main: start the servers, run the sections, always stop and clean up.

async function main(): Promise<void> {
  const runStarted = performance.now();
  const startedAt = new Date();
  const machine = {
    node: process.version,
    platform: process.platform,
    arch: process.arch,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    ...codeVersion(),
    loadAverage: os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(' '),
  };
  const cleanups: (() => Promise<unknown>)[] = [];
  // Runs once, whoever asks first (the signal handler or the finally below).
  let cleaning: Promise<void> | undefined;
  const cleanUp = () =>
    (cleaning ??= (async () => {
      for (const step of cleanups.splice(0).reverse()) await step().catch((error: unknown) => console.error(error));
    })());
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    interrupted = true;
    console.error(`\n${signal}: stopping servers and removing temp dirs`);
    void cleanUp().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const report: Report = {};
  const entryCrypto = new EntryCrypto(keyOf, valueOf);
  try {
    if (runs('crypto')) {
      log('crypto ceiling:');
      report.crypto = await cryptoCeiling(entryCrypto);
    }
    if (runs('local') || runs('replica') || runs('sync')) {
      const scratch = await tempDir('e2ekv-bench-sdk-');
      cleanups.push(scratch.remove);
      // Defaults, except the limits a benchmark would trip: appends per minute per device and bytes per vault.
      const config = path.join(scratch.dir, 'server-config.json');
      await writeFile(
        config,
        JSON.stringify({ limits: { appendsPerMinutePerDevice: 1_000_000_000, maxVaultBytes: 2 ** 50 } }),
      );
      await mkdir(path.join(scratch.dir, 'server'));
      const server = await startServerProcess(path.join(scratch.dir, 'server'), ['--config', config]);
      cleanups.push(() => server.stop());
      await mkdir(path.join(scratch.dir, 'baseline'));
      const baseline = await startBaselineServer(path.join(scratch.dir, 'baseline'));
      cleanups.push(() => baseline.stop());
      const clients = { server, baseline, entryCrypto };
      log(`e2ekv-server at ${server.url}, baseline server at ${baseline.url}`);
      if (runs('local')) {
        log('local:');
        report.local = await localWorkloads(clients, scratch.dir);
      }
      if (runs('replica')) {
        log("ack 'one':");
        report.replica = await replicaWorkloads(clients);
      }
      if (runs('sync')) {
        log('sync:');
        report.sync = await syncWorkloads(clients, scratch.dir);
      }
    }

    const elapsedSeconds = (performance.now() - runStarted) / 1000;
    const text = markdown(report, machine, elapsedSeconds);
    console.log(text);

    const resultsDir = path.join(benchDir, 'results');
    await mkdir(resultsDir, { recursive: true });
    const base = path.join(resultsDir, `sdk-${startedAt.toISOString().replace(/:/g, '-')}`);
    const settings = {
      argv,
      sections: only ?? SECTIONS,
      valueBytes: VALUE_BYTES,
      valuePool: VALUE_POOL,
      rounds: ROUNDS,
      roundMs: ROUND_MS,
      warmupMs: WARMUP_MS,
      cryptoRounds: CRYPTO_ROUNDS,
      cryptoRoundMs: CRYPTO_ROUND_MS,
      concurrency: CONCURRENCY,
      batchKeys: BATCH_KEYS,
      syncSizes: SYNC_SIZES,
      syncRepetitions: Object.fromEntries(SYNC_SIZES.map((n) => [n, syncRepetitions(n)])),
      fileReaderMaxEntries: FILE_READER_MAX,
      server:
        'e2ekv-server defaults (SQLite WAL, synchronous=FULL, info logging) except appendsPerMinutePerDevice and maxVaultBytes, raised',
      freshDevice: 'another identity, added as a reader before the writes, opening the vault on a fresh local store',
    };
    await writeFile(
      `${base}.json`,
      JSON.stringify(
        { benchmark: 'sdk', date: startedAt.toISOString(), quick, machine, settings, elapsedSeconds, ...report },
        (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value),
        2,
      ) + '\n',
    );
    await writeFile(`${base}.md`, text + '\n');
    console.error(`\nresults: ${path.relative(repoRoot, base)}.json and .md`);
  } catch (error) {
    // A workload cut off by the signal handler's cleanup fails; that is expected.
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
