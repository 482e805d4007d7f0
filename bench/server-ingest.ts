/**
 * Ingest throughput of e2ekv-server's append path, against a baseline measured
 * in the same run on the same machine: bench/baseline-server.ts, an express 5 +
 * sqlite3 service that stores the same entry bytes with the same durability
 * (WAL, synchronous=FULL, one transaction per request) but checks nothing.
 *
 * Workloads: batches of 1, 16 and 256 data entries (one item each, whose
 * envelope seals 1 KiB of random bytes), with 1 and 16 concurrent writers. Each
 * writer is its own device writing its own log in one shared vault; the vault's
 * creator is writer 0 and adds the others as writers before anything is timed.
 * Each writer is a closed loop: one append in flight, the next sent when the
 * previous is acknowledged. Both servers run as child processes and are driven
 * by the same load generator (keep-alive node:http agent).
 *
 * Append bodies are built before the timed loop (sealing, Merkle tree, the
 * device's checkpoint signature), so the loop measures the server, not the
 * client's crypto. Only the Authorization header is signed at send time, as it
 * must be (timestamp and nonce); the body's SHA-256 is also computed ahead.
 *
 *   npm run bench:server                 (about 2.5 minutes)
 *   npm run bench:server -- --quick      (about 1 minute)
 *   npm run bench:server -- --only 1x16  (one workload: batch x writers)
 *
 * Prints a Markdown table and writes the raw numbers to
 * bench/results/server-ingest-<ISO time>.json.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  EnvelopePurpose,
  MerkleTree,
  NO_BLINDED_KEY,
  REQUEST_NONCE_LENGTH,
  ValueKind,
  bytesEqual,
  deriveValueKey,
  deviceCheckpointSigner,
  encodeAppendRequest,
  encodeCreateVaultRequest,
  encodeEntry,
  encodeEntryMeta,
  encodeItemPayload,
  formatAuthorization,
  fromBase64,
  fromHex,
  leafHash,
  randomBytes,
  requestSignatureInput,
  sealEnvelope,
  signDeviceCheckpoint,
} from '@e2ekv/protocol';
import type { AppendRequest, Ed25519Signer, HybridClock, NoteSigner } from '@e2ekv/protocol';
import { startServerProcess, tempDir } from '../server/test/support/process.js';
import { TestDevice } from '../server/test/support/writer.js';

const quick = process.argv.includes('--quick');
/** `--only 256x16` runs one workload (batch x writers), for profiling. */
const onlyFlag = process.argv.indexOf('--only');
const only = onlyFlag === -1 ? undefined : process.argv[onlyFlag + 1];
const ROUNDS = 3;
const ROUND_MS = quick ? 1000 : 3000;
const WARMUP_MS = quick ? 300 : 1000;
const BATCH_SIZES = [1, 16, 256] as const;
const WRITER_COUNTS = [1, 16] as const;
const VALUE_BYTES = 1024;
/** Entries built per workload before its warm-up has measured a rate. */
const WARMUP_GUESS_ENTRIES = 512;
/** Entries per workload the baseline may cycle through (see BenchWriter.nextForBaseline). */
const BASELINE_POOL_ENTRIES = 16384;

const benchDir = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(benchDir, '..');

type TargetName = 'e2ekv' | 'baseline';

// ---------------------------------------------------------------------------
// A tiny HTTP client: keep-alive sockets, one request per socket at a time.
// (Bare fetch tops out around 2,500 requests/s here and would cap the numbers.)

interface HttpReply {
  status: number;
  text: string;
}

class HttpClient {
  readonly #agent: http.Agent;
  readonly #host: string;
  readonly #port: number;

  constructor(baseUrl: string, maxSockets: number) {
    const url = new URL(baseUrl);
    this.#host = url.hostname;
    this.#port = Number(url.port);
    this.#agent = new http.Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets });
  }

  request(
    method: string,
    requestPath: string,
    body?: Buffer,
    headers: Record<string, string> = {},
  ): Promise<HttpReply> {
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          agent: this.#agent,
          host: this.#host,
          port: this.#port,
          method,
          path: requestPath,
          headers:
            body === undefined
              ? headers
              : { ...headers, 'content-type': 'application/json', 'content-length': String(body.length) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  close(): void {
    this.#agent.destroy();
  }
}

// ---------------------------------------------------------------------------
// Request signing at send time.

const EMPTY = new Uint8Array(0);

function sha256Node(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(bytes).digest());
}

/**
 * The Authorization header of one POST (SPEC.md section 18). Same bytes as
 * signRequest, except that the body's SHA-256 comes precomputed: the signature
 * input ends with it, and hashing a 256-entry body with the protocol's
 * JavaScript SHA-256 takes ~4 ms, which would make the client the bottleneck.
 */
async function authorize(signer: Ed25519Signer, audience: Uint8Array, requestPath: string, bodyHash: Uint8Array) {
  const timestampMs = BigInt(Date.now());
  const nonce = randomBytes(REQUEST_NONCE_LENGTH);
  const input = requestSignatureInput({
    audience,
    device: signer.publicKey,
    timestampMs,
    nonce,
    method: 'POST',
    path: requestPath,
    body: EMPTY,
  });
  input.set(bodyHash, input.length - bodyHash.length);
  return formatAuthorization({ device: signer.publicKey, timestampMs, nonce, signature: await signer.sign(input) });
}

// Shortcuts for building bodies ahead: node:crypto SHA-256 and Buffer base64
// are 5 to 10 times faster than the protocol's portable JavaScript, and produce
// the same bytes (checkShortcuts makes sure of it before anything runs).

const LEAF_PREFIX = Uint8Array.of(0);

/** RFC 6962 leaf hash, as protocol's leafHash. */
function fastLeafHash(entry: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(LEAF_PREFIX).update(entry).digest());
}

function base64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

/** JSON.stringify(encodeAppendRequest(request)), with fast base64. */
function encodeAppendBody(request: AppendRequest): string {
  return JSON.stringify({
    start: request.start,
    entries: request.entries.map(base64),
    blobs: request.blobs.map(base64),
    checkpoint: request.checkpoint,
    consistencyProof: request.consistencyProof.map(base64),
  });
}

/** Fails loudly if a shortcut ever stops producing what the protocol's own code does. */
function checkShortcuts(): void {
  const body = randomBytes(100);
  const request = {
    audience: randomBytes(32),
    device: randomBytes(32),
    timestampMs: 1n,
    nonce: randomBytes(REQUEST_NONCE_LENGTH),
    method: 'POST',
    path: '/v1/x',
  };
  const expected = requestSignatureInput({ ...request, body });
  const shortcut = requestSignatureInput({ ...request, body: EMPTY });
  shortcut.set(sha256Node(body), shortcut.length - 32);
  if (!bytesEqual(expected, shortcut)) throw new Error('the request signature input no longer ends with SHA-256(body)');
  for (const length of [0, 1, 2, 3, 1344]) {
    const bytes = randomBytes(length);
    if (!bytesEqual(fastLeafHash(bytes), leafHash(bytes))) throw new Error('fastLeafHash differs from leafHash');
  }
  const append: AppendRequest = {
    start: 3,
    entries: [randomBytes(1344), randomBytes(1)],
    blobs: [randomBytes(2)],
    checkpoint: 'note\n',
    consistencyProof: [randomBytes(32)],
  };
  if (encodeAppendBody(append) !== JSON.stringify(encodeAppendRequest(append))) {
    throw new Error('encodeAppendBody differs from encodeAppendRequest');
  }
}

/** A setup request, signed the ordinary way. */
async function signedPost(
  client: HttpClient,
  device: TestDevice,
  audience: Uint8Array,
  requestPath: string,
  json: unknown,
) {
  const body = Buffer.from(JSON.stringify(json));
  const authorization = await device.authorize({ audience, method: 'POST', path: requestPath, body });
  const reply = await client.request('POST', requestPath, body, { authorization });
  if (reply.status !== 200 && reply.status !== 201) {
    throw new Error(`setup request ${requestPath} answered ${reply.status}: ${reply.text.slice(0, 500)}`);
  }
}

// ---------------------------------------------------------------------------
// Writers: each continues its device's log with data entries, prepared ahead.

interface PreparedAppend {
  /** The log's size before this append: the request's `start`. */
  start: number;
  entries: number;
  body: Buffer;
  bodyHash: Uint8Array;
}

class BenchWriter {
  readonly device: TestDevice;
  readonly vaultId: string;
  readonly appendPath: string;
  readonly #vaultId: Uint8Array;
  readonly #checkpointSigner: NoteSigner;
  readonly #valueKey: Uint8Array;
  readonly #tree: MerkleTree;
  readonly #batch: number;
  readonly #poolSize: number;
  #clock: HybridClock = { wallMs: 0n, counter: 0 };
  /** Built appends; `#dropped` of them were dropped from the front. */
  #prepared: PreparedAppend[] = [];
  #dropped = 0;
  /** Absolute index of the next append e2ekv gets. */
  #e2ekvNext = 0;
  #baselineNext = 0;
  #baselineCycle = 0;

  private constructor(
    device: TestDevice,
    vaultId: string,
    checkpointSigner: NoteSigner,
    batch: number,
    poolSize: number,
  ) {
    this.device = device;
    this.vaultId = vaultId;
    this.appendPath = `/v1/vaults/${vaultId}/logs/${device.hex}/append`;
    this.#vaultId = fromHex(vaultId);
    this.#checkpointSigner = checkpointSigner;
    // A fresh random epoch secret: the server never sees keys, so any will do.
    this.#valueKey = deriveValueKey(randomBytes(32), this.#vaultId, 0);
    // Continues whatever the device already wrote (the creator's membership entries).
    this.#tree = new MerkleTree(device.entries(vaultId).map(fastLeafHash));
    this.#batch = batch;
    this.#poolSize = poolSize;
  }

  static async takeOver(device: TestDevice, vaultId: string, batch: number, poolSize: number): Promise<BenchWriter> {
    const signer = await deviceCheckpointSigner(device.seed, fromHex(vaultId));
    return new BenchWriter(device, vaultId, signer, batch, poolSize);
  }

  get signer(): Ed25519Signer {
    return this.device.signer;
  }

  /** Appends ready for e2ekv. */
  get readyForE2ekv(): number {
    return this.#dropped + this.#prepared.length - this.#e2ekvNext;
  }

  /** Builds appends until `count` are ready for e2ekv. */
  async prepare(count: number): Promise<void> {
    while (this.readyForE2ekv < count) this.#prepared.push(await this.#build());
  }

  /** The next append of this log, in order; undefined when none is prepared. */
  nextForE2ekv(): PreparedAppend | undefined {
    const next = this.#prepared[this.#e2ekvNext - this.#dropped];
    if (next !== undefined) this.#e2ekvNext++;
    return next;
  }

  /**
   * The baseline checks nothing, so it may take the same bodies again: it cycles
   * through the most recent ones, each cycle under a different vault id in the
   * path, so that its (vault, device, index) keys stay unique. This way the
   * baseline, which runs faster, needs no bodies beyond those built for e2ekv.
   */
  nextForBaseline(): { path: string; append: PreparedAppend } {
    const first = this.#dropped;
    if (this.#baselineNext < first || this.#baselineNext >= first + this.#prepared.length) {
      this.#baselineNext = first;
      this.#baselineCycle++;
    }
    const append = this.#prepared[this.#baselineNext++ - first]!;
    return { path: this.#baselinePath(), append };
  }

  /** Starts a new baseline cycle (at a run's start, so keys stay unique when the pool moved). */
  newBaselineCycle(): void {
    this.#baselineNext = -1;
  }

  /** Drops bodies e2ekv has sent that the baseline pool no longer needs. */
  trim(): void {
    const keepFrom = Math.max(this.#dropped, this.#e2ekvNext - this.#poolSize);
    this.#prepared.splice(0, keepFrom - this.#dropped);
    this.#dropped = keepFrom;
  }

  #baselinePath(): string {
    // Same length as the real path: the cycle number replaces the vault id's first 8 hex digits.
    const cycle = this.#baselineCycle.toString(16).padStart(8, '0');
    return `/v1/vaults/${cycle}${this.vaultId.slice(8)}/logs/${this.device.hex}/append`;
  }

  async #build(): Promise<PreparedAppend> {
    const start = this.#tree.size;
    const entries: Uint8Array[] = [];
    for (let i = 0; i < this.#batch; i++) {
      const entry = this.#dataEntry(BigInt(start + i));
      entries.push(entry);
      this.#tree.append(fastLeafHash(entry));
    }
    const size = this.#tree.size;
    const body = Buffer.from(
      encodeAppendBody({
        start,
        entries,
        blobs: [],
        checkpoint: await signDeviceCheckpoint(this.#checkpointSigner, { size: BigInt(size), root: this.#tree.root() }),
        consistencyProof: start > 0 ? this.#tree.consistencyProof(start, size) : [],
      }),
    );
    return { start, entries: this.#batch, body, bodyHash: sha256Node(body) };
  }

  // What the SDK writes: sealed metadata (clock, empty context) and one item
  // whose inline envelope seals VALUE_BYTES random bytes under a blinded key.
  #dataEntry(index: bigint): Uint8Array {
    const device = this.signer.publicKey;
    const bind = { vaultId: this.#vaultId, device, logIndex: index, epoch: 0 };
    const wallMs = BigInt(Date.now());
    this.#clock =
      wallMs > this.#clock.wallMs
        ? { wallMs, counter: 0 }
        : { wallMs: this.#clock.wallMs, counter: this.#clock.counter + 1 };
    const meta = sealEnvelope(
      this.#valueKey,
      { ...bind, purpose: EnvelopePurpose.entryMeta, item: 0, blindedKey: NO_BLINDED_KEY },
      encodeEntryMeta({ clock: this.#clock, context: [] }, device),
    );
    const blindedKey = randomBytes(32);
    const envelope = sealEnvelope(
      this.#valueKey,
      { ...bind, purpose: EnvelopePurpose.itemValue, item: 0, blindedKey },
      encodeItemPayload({
        name: new TextEncoder().encode(`bench/${index}`),
        kind: ValueKind.bytes,
        value: randomBytes(VALUE_BYTES),
      }),
    );
    return encodeEntry({
      type: 'data',
      vaultId: this.#vaultId,
      device,
      index,
      epoch: 0,
      meta,
      items: [{ blindedKey, value: { kind: 'inline', envelope } }],
    });
  }
}

// ---------------------------------------------------------------------------
// Server processes.

interface Target {
  name: TargetName;
  pid: number;
  client?: HttpClient;
  stop(): Promise<unknown>;
}

/** Starts bench/baseline-server.ts the way the tests start e2ekv-server. */
async function startBaseline(dataDir: string): Promise<Target & { url: string }> {
  const child = spawn(
    process.execPath,
    [
      '--import=tsx/esm',
      '--conditions=e2ekv-source',
      path.join(benchDir, 'baseline-server.ts'),
      '--port',
      '0',
      '--data',
      dataDir,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  // The same safety net as the tests' processes: never leave a server behind.
  const killOnExit = () => child.kill('SIGKILL');
  process.on('exit', killOnExit);
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    process.off('exit', killOnExit);
  };
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let stdout = '';
      const timer = setTimeout(() => reject(new Error(`baseline did not start in 20 s:\n${stderr}`)), 20_000);
      child.stdout!.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
        const match = /^baseline-server listening on (http:\/\/\S+)$/m.exec(stdout);
        if (match !== null) {
          clearTimeout(timer);
          resolve(match[1]!);
        }
      });
      void exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`baseline exited with ${code} before listening:\n${stderr}`));
      });
    });
    return { name: 'baseline', pid: child.pid!, url, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** CPU seconds (user + system, all threads) a process has used; undefined off Linux. */
async function cpuSeconds(pid: number): Promise<number | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may hold spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15, in clock ticks (100 per second on Linux).
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------
// The load loop.

interface Run {
  appends: number;
  entries: number;
  seconds: number;
  appendsPerSecond: number;
  entriesPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
  /** Mean time to sign one request's Authorization header, client side. */
  signUs: number;
  /** Server CPU (all threads) per second of wall time: 1 = one core busy. */
  serverCpu?: number;
  /** Server CPU per append, in ms. */
  serverCpuMsPerAppend?: number;
  clientCpu: number;
  /** A writer ran out of prepared appends before the duration ended. */
  ranDry: boolean;
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

async function drive(
  target: Target,
  writers: readonly BenchWriter[],
  audience: Uint8Array,
  durationMs: number,
): Promise<Run> {
  const client = target.client!;
  const latencies: number[] = [];
  let appends = 0;
  let entries = 0;
  let signMs = 0;
  let ranDry = false;
  let failed = false;
  if (target.name === 'baseline') for (const w of writers) w.newBaselineCycle();
  const serverCpuBefore = await cpuSeconds(target.pid);
  const clientCpuBefore = process.cpuUsage();
  const started = performance.now();
  const deadline = started + durationMs;
  await Promise.all(
    writers.map(async (writer) => {
      while (!failed && !ranDry && performance.now() < deadline) {
        let requestPath: string;
        let append: PreparedAppend;
        if (target.name === 'e2ekv') {
          const next = writer.nextForE2ekv();
          if (next === undefined) {
            ranDry = true;
            break;
          }
          requestPath = writer.appendPath;
          append = next;
        } else {
          ({ path: requestPath, append } = writer.nextForBaseline());
        }
        const signStart = performance.now();
        const authorization = await authorize(writer.signer, audience, requestPath, append.bodyHash);
        const sent = performance.now();
        signMs += sent - signStart;
        let reply: HttpReply;
        try {
          reply = await client.request('POST', requestPath, append.body, { authorization });
        } catch (error) {
          failed = true;
          throw error;
        }
        latencies.push(performance.now() - sent);
        if (reply.status !== 200) {
          failed = true;
          throw new Error(`${target.name} answered ${reply.status} to an append: ${reply.text.slice(0, 500)}`);
        }
        appends++;
        entries += append.entries;
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const clientCpuUsed = process.cpuUsage(clientCpuBefore);
  const serverCpuAfter = await cpuSeconds(target.pid);
  latencies.sort((a, b) => a - b);
  const serverCpuSeconds =
    serverCpuBefore === undefined || serverCpuAfter === undefined ? undefined : serverCpuAfter - serverCpuBefore;
  return {
    appends,
    entries,
    seconds,
    appendsPerSecond: appends / seconds,
    entriesPerSecond: entries / seconds,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    meanMs: latencies.reduce((a, b) => a + b, 0) / Math.max(1, latencies.length),
    signUs: (signMs / Math.max(1, appends)) * 1000,
    ...(serverCpuSeconds === undefined
      ? {}
      : {
          serverCpu: serverCpuSeconds / seconds,
          serverCpuMsPerAppend: (serverCpuSeconds / Math.max(1, appends)) * 1000,
        }),
    clientCpu: (clientCpuUsed.user + clientCpuUsed.system) / 1e6 / seconds,
    ranDry,
  };
}

// ---------------------------------------------------------------------------
// Workloads.

interface WorkloadResult {
  batch: number;
  writers: number;
  rounds: Record<TargetName, Run[]>;
  /** The round with the median appends/s, per target. */
  median: Record<TargetName, Run>;
  /** Seconds spent building append bodies for this workload, outside timed runs. */
  buildSeconds: number;
}

function medianRun(runs: readonly Run[]): Run {
  const sorted = [...runs].sort((a, b) => a.appendsPerSecond - b.appendsPerSecond);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function runWorkload(
  e2ekv: Target,
  baseline: Target,
  audience: Uint8Array,
  batch: number,
  writerCount: number,
): Promise<WorkloadResult> {
  const devices = await Promise.all(Array.from({ length: writerCount }, () => TestDevice.create()));
  const creator = devices[0]!;
  const { signedGenesis, vaultId } = await creator.genesis();
  await signedPost(
    e2ekv.client!,
    creator,
    audience,
    '/v1/vaults',
    encodeCreateVaultRequest({ genesis: signedGenesis }),
  );
  for (const other of devices.slice(1)) {
    const append = await creator.membershipAppend(vaultId, other.addChange('writer'));
    await signedPost(
      e2ekv.client!,
      creator,
      audience,
      `/v1/vaults/${vaultId}/logs/${creator.hex}/append`,
      encodeAppendRequest(append),
    );
  }
  const poolSize = Math.max(4, Math.ceil(BASELINE_POOL_ENTRIES / (batch * writerCount)));
  const writers = await Promise.all(devices.map((d) => BenchWriter.takeOver(d, vaultId, batch, poolSize)));

  let buildSeconds = 0;
  const prepare = async (appendsPerWriter: number) => {
    const started = performance.now();
    for (const w of writers) await w.prepare(appendsPerWriter);
    buildSeconds += (performance.now() - started) / 1000;
  };
  // Appends per second per writer, as last measured on e2ekv: sizes what to build.
  let e2ekvRate = 0;
  const runE2ekv = async (durationMs: number): Promise<Run> => {
    if (e2ekvRate > 0) await prepare(Math.ceil(e2ekvRate * (durationMs / 1000) * 1.3) + 2);
    const run = await drive(e2ekv, writers, audience, durationMs);
    e2ekvRate = Math.max(e2ekvRate, run.appendsPerSecond / writerCount);
    for (const w of writers) w.trim();
    return run;
  };

  // Warm-up: JIT, sockets, caches. It starts with a small guess of what to build
  // and continues, sized by the measured rate, until it has run WARMUP_MS.
  await prepare(Math.ceil(WARMUP_GUESS_ENTRIES / (batch * writerCount)) + 2);
  for (let warmed = 0; warmed < WARMUP_MS - 50;) warmed += (await runE2ekv(WARMUP_MS - warmed)).seconds * 1000;
  await drive(baseline, writers, audience, WARMUP_MS);

  const rounds: Record<TargetName, Run[]> = { e2ekv: [], baseline: [] };
  for (let r = 0; r < ROUNDS; r++) {
    // Alternate who goes first, so that drift (disk, other load) hits both alike.
    const order: TargetName[] = r % 2 === 0 ? ['e2ekv', 'baseline'] : ['baseline', 'e2ekv'];
    for (const name of order) {
      const run = name === 'e2ekv' ? await runE2ekv(ROUND_MS) : await drive(baseline, writers, audience, ROUND_MS);
      if (run.ranDry) console.error(`  (e2ekv ran out of prepared appends after ${run.seconds.toFixed(2)} s)`);
      rounds[name].push(run);
      console.error(
        `  round ${r + 1} ${name.padEnd(8)} ${fmt(run.appendsPerSecond).padStart(7)} appends/s, p50 ${run.p50Ms.toFixed(2)} ms, p99 ${run.p99Ms.toFixed(2)} ms`,
      );
    }
  }
  return {
    batch,
    writers: writerCount,
    rounds,
    median: { e2ekv: medianRun(rounds.e2ekv), baseline: medianRun(rounds.baseline) },
    buildSeconds,
  };
}

// ---------------------------------------------------------------------------
// Report.

function fmt(x: number): string {
  return Math.round(x).toLocaleString('en-US');
}

function ms(x: number): string {
  return x < 10 ? x.toFixed(2) : x.toFixed(1);
}

function ratio(x: number): string {
  return `${x.toFixed(2)}×`;
}

function workloadName(w: { batch: number; writers: number }): string {
  return `batch ${w.batch}, ${w.writers} writer${w.writers === 1 ? '' : 's'}`;
}

function report(results: readonly WorkloadResult[], machine: Record<string, unknown>, elapsedSeconds: number): string {
  const lines: string[] = [];
  lines.push(
    `## e2ekv-server ingest vs baseline (${quick ? 'quick' : 'full'} run)`,
    '',
    `Median of ${ROUNDS} rounds of ${ROUND_MS / 1000} s after ${WARMUP_MS / 1000} s warm-up; ` +
      `entries of ~1.3 KiB (one item sealing ${VALUE_BYTES} random bytes); each writer is a device with its own log in one shared vault and keeps one append in flight.`,
    '',
    '| workload | e2ekv appends/s | e2ekv entries/s | e2ekv p50 ms | e2ekv p99 ms | baseline appends/s | baseline entries/s | baseline p50 ms | baseline p99 ms | appends/s ratio | p50 ratio |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const w of results) {
    const e = w.median.e2ekv;
    const b = w.median.baseline;
    lines.push(
      `| ${workloadName(w)} | ${fmt(e.appendsPerSecond)} | ${fmt(e.entriesPerSecond)} | ${ms(e.p50Ms)} | ${ms(e.p99Ms)} | ` +
        `${fmt(b.appendsPerSecond)} | ${fmt(b.entriesPerSecond)} | ${ms(b.p50Ms)} | ${ms(b.p99Ms)} | ` +
        `${ratio(e.appendsPerSecond / b.appendsPerSecond)} | ${ratio(e.p50Ms / b.p50Ms)} |`,
    );
  }
  lines.push(
    '',
    'Where the time goes (same median rounds): server CPU is user + system time of the server process, all threads, ' +
      'per append and as a share of one core; sign is the client signing the Authorization header at send time.',
    '',
    '| workload | e2ekv server CPU ms/append | e2ekv server CPU | baseline server CPU ms/append | baseline server CPU | client CPU, e2ekv / baseline run | sign µs/append, e2ekv / baseline run |',
    '|---|---:|---:|---:|---:|---:|---:|',
  );
  const cpu = (run: Run) =>
    run.serverCpu === undefined
      ? ['n/a', 'n/a']
      : [run.serverCpuMsPerAppend!.toFixed(2), `${Math.round(run.serverCpu * 100)}%`];
  for (const w of results) {
    const e = w.median.e2ekv;
    const b = w.median.baseline;
    lines.push(
      `| ${workloadName(w)} | ${cpu(e).join(' | ')} | ${cpu(b).join(' | ')} | ${Math.round(e.clientCpu * 100)}% / ${Math.round(b.clientCpu * 100)}% | ${fmt(e.signUs)} / ${fmt(b.signUs)} |`,
    );
  }
  const dry = results.filter((w) => w.median.e2ekv.ranDry);
  lines.push(
    '',
    `Machine: ${machine['node']} on ${machine['platform']}/${machine['arch']}, ${machine['cpus']} × ${machine['cpuModel']}, ` +
      `${machine['memoryGiB']} GiB RAM; load generator and both servers share these CPUs.`,
    `Signing: every request's header is signed when sent (WebCrypto Ed25519 over a precomputed body hash), ` +
      `${fmt(Math.min(...results.map((w) => w.median.e2ekv.signUs)))}–${fmt(Math.max(...results.map((w) => w.median.e2ekv.signUs)))} µs ` +
      `per append, outside the latency figures but inside each writer's loop; the baseline gets the same signed requests and ignores the header.`,
    `e2ekv-server ran with its defaults (SQLite WAL + synchronous=FULL, info logging) except the per-device rate limit and ` +
      `vault quota, raised so that they do not cut the run short.`,
    `Append bodies were built ahead of the timed runs (${results.reduce((n, w) => n + w.buildSeconds, 0).toFixed(1)} s in total); ` +
      `whole run ${elapsedSeconds.toFixed(0)} s.`,
  );
  if (dry.length > 0) {
    lines.push(
      `Note: e2ekv ran out of prepared appends early in: ${dry.map(workloadName).join('; ')} (rates still valid).`,
    );
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------------------
// Main: start both servers, run every workload, always stop and clean up.

async function main(): Promise<void> {
  const runStarted = performance.now();
  const startedAt = new Date();
  checkShortcuts();
  const machine = {
    node: process.version,
    platform: process.platform,
    arch: process.arch,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
  };
  const cleanups: (() => Promise<unknown>)[] = [];
  const cleanUp = async () => {
    for (const step of cleanups.reverse()) await step().catch((error: unknown) => console.error(error));
    cleanups.length = 0;
  };
  const onSignal = (signal: NodeJS.Signals) => {
    console.error(`\n${signal}: stopping servers`);
    void cleanUp().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const e2ekvDir = await tempDir('e2ekv-bench-');
    cleanups.push(e2ekvDir.remove);
    const baselineDir = await tempDir('e2ekv-bench-baseline-');
    cleanups.push(baselineDir.remove);

    // Defaults, except the limits a benchmark would trip: 6000 appends a minute
    // per device and 1 GiB per vault.
    const config = path.join(e2ekvDir.dir, 'bench-config.json');
    await writeFile(
      config,
      JSON.stringify({ limits: { appendsPerMinutePerDevice: 1_000_000_000, maxVaultBytes: 2 ** 50 } }),
    );
    const server = await startServerProcess(path.join(e2ekvDir.dir, 'data'), ['--config', config]);
    cleanups.push(() => server.stop());
    const baselineProcess = await startBaseline(baselineDir.dir);
    cleanups.push(() => baselineProcess.stop());

    const maxWriters = Math.max(...WRITER_COUNTS);
    const e2ekv: Target = {
      name: 'e2ekv',
      pid: server.child.pid!,
      client: new HttpClient(server.url, maxWriters),
      stop: () => server.stop(),
    };
    const baseline: Target = { ...baselineProcess, client: new HttpClient(baselineProcess.url, maxWriters) };
    cleanups.push(async () => {
      e2ekv.client!.close();
      baseline.client!.close();
    });

    const info = JSON.parse((await e2ekv.client!.request('GET', '/v1/info')).text) as {
      cosigner: { publicKey: string };
    };
    const audience = fromBase64(info.cosigner.publicKey);

    console.error(
      `e2ekv-server at ${server.url}, baseline at ${baselineProcess.url}; ${quick ? 'quick' : 'full'} run, ` +
        `${ROUNDS} rounds of ${ROUND_MS / 1000} s per server and workload`,
    );
    const results: WorkloadResult[] = [];
    for (const batch of BATCH_SIZES) {
      for (const writerCount of WRITER_COUNTS) {
        if (only !== undefined && only !== `${batch}x${writerCount}`) continue;
        console.error(`${workloadName({ batch, writers: writerCount })}:`);
        results.push(await runWorkload(e2ekv, baseline, audience, batch, writerCount));
      }
    }

    const elapsedSeconds = (performance.now() - runStarted) / 1000;
    console.log(report(results, machine, elapsedSeconds));

    const resultsDir = path.join(benchDir, 'results');
    await mkdir(resultsDir, { recursive: true });
    const file = path.join(resultsDir, `server-ingest-${startedAt.toISOString().replace(/:/g, '-')}.json`);
    await writeFile(
      file,
      JSON.stringify(
        {
          benchmark: 'server-ingest',
          date: startedAt.toISOString(),
          quick,
          machine,
          settings: {
            rounds: ROUNDS,
            roundMs: ROUND_MS,
            warmupMs: WARMUP_MS,
            valueBytes: VALUE_BYTES,
            batchSizes: BATCH_SIZES,
            writerCounts: WRITER_COUNTS,
            vaults: 'one shared vault per workload; the creator is writer 0 and adds the others as writers',
          },
          elapsedSeconds,
          results,
        },
        null,
        2,
      ) + '\n',
    );
    console.error(`\nraw results: ${path.relative(repoRoot, file)}`);
  } finally {
    await cleanUp();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

await main();
