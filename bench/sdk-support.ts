/**
 * Helpers of bench/sdk.ts and bench/compare.ts: a fetch wrapper that counts
 * what crosses the wire, timed loops with per-operation latencies, CPU
 * accounting of this process and of a server process, the SDK's crypto
 * ceiling per value (EntryCrypto), and the baseline server from
 * bench/baseline-server.ts.
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import vm from 'node:vm';
import { decodeEntry, ed25519PublicKeyFromSeed, leafHash, randomBytes, type DataEntry } from '@e2ekv/protocol';
import { HybridLogicalClock } from '../sdk/src/clock.js';
import { openDataEntry, sealDataEntry, type VaultKeys } from '../sdk/src/entries.js';
import { EpochKeyRing } from '../sdk/src/keyring.js';

const benchDir = path.dirname(fileURLToPath(import.meta.url));

// ---------------------------------------------------------------------------
// Bytes on the wire.

export interface WireTotals {
  requests: number;
  /** Request bodies, as sent. */
  requestBodyBytes: number;
  /** Response bodies, as received (HTTP framing and compression aside: e2ekv-server does not compress). */
  responseBodyBytes: number;
  /** Request line and headers as fetch was asked to send them (approximate: fetch adds a few of its own). */
  requestHeaderBytes: number;
  /** Status line and response headers (approximate). */
  responseHeaderBytes: number;
}

function headerBytes(headers: Headers): number {
  let n = 0;
  headers.forEach((value, name) => (n += name.length + value.length + 4));
  return n;
}

function bodyLength(body: unknown): number {
  if (body === undefined || body === null) return 0;
  if (typeof body === 'string') return Buffer.byteLength(body);
  if (body instanceof ArrayBuffer) return body.byteLength;
  if (ArrayBuffer.isView(body)) return body.byteLength;
  throw new Error(`the wire counter cannot measure a ${Object.prototype.toString.call(body)} body`);
}

/**
 * Wraps fetch and counts requests and bytes both ways. A response with a
 * Content-Length (and no Content-Encoding) is counted by it and passed on
 * untouched; any other is read in full and handed back as a new Response:
 * right for the SDK's JSON and blob requests (it reads them whole anyway),
 * wrong for event streams (the benchmark never watches).
 */
export class WireCounter implements WireTotals {
  requests = 0;
  requestBodyBytes = 0;
  responseBodyBytes = 0;
  requestHeaderBytes = 0;
  responseHeaderBytes = 0;
  readonly #inner: typeof fetch;

  constructor(inner: typeof fetch = globalThis.fetch) {
    this.#inner = inner;
  }

  readonly fetch: typeof fetch = async (input, init) => {
    const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
    this.requests++;
    this.requestBodyBytes += bodyLength(init?.body);
    this.requestHeaderBytes +=
      `${init?.method ?? 'GET'} ${url.pathname}${url.search} HTTP/1.1\r\n`.length +
      headerBytes(new Headers(init?.headers));
    const response = await this.#inner(input, init);
    this.responseHeaderBytes +=
      `HTTP/1.1 ${response.status} ${response.statusText}\r\n`.length + headerBytes(response.headers);
    // e2ekv-server sends a Content-Length and does not compress: counting it
    // leaves the response untouched, so counting costs the SDK nothing.
    const length = Number(response.headers.get('content-length') ?? NaN);
    if (Number.isSafeInteger(length) && length >= 0 && response.headers.get('content-encoding') === null) {
      this.responseBodyBytes += length;
      return response;
    }
    const bytes = await response.arrayBuffer();
    this.responseBodyBytes += bytes.byteLength;
    const nullBody = response.status === 204 || response.status === 304;
    return new Response(nullBody ? null : bytes, {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    });
  };

  snapshot(): WireTotals {
    return {
      requests: this.requests,
      requestBodyBytes: this.requestBodyBytes,
      responseBodyBytes: this.responseBodyBytes,
      requestHeaderBytes: this.requestHeaderBytes,
      responseHeaderBytes: this.responseHeaderBytes,
    };
  }

  /** What was counted since `before`. */
  since(before: WireTotals): WireTotals {
    const now = this.snapshot();
    return {
      requests: now.requests - before.requests,
      requestBodyBytes: now.requestBodyBytes - before.requestBodyBytes,
      responseBodyBytes: now.responseBodyBytes - before.responseBodyBytes,
      requestHeaderBytes: now.requestHeaderBytes - before.requestHeaderBytes,
      responseHeaderBytes: now.responseHeaderBytes - before.responseHeaderBytes,
    };
  }
}

/**
 * Requests that e2ekv-servers answered, read from their /metrics
 * (`e2ekv_http_requests_total`, the scrapes themselves left out). For clients
 * on the SDK's default transport (node:http in Node), which a fetch wrapper
 * does not see: it counts requests, not bytes.
 */
export class ServerRequestCounter {
  readonly #urls: readonly string[];

  constructor(urls: readonly string[]) {
    this.#urls = urls;
  }

  async total(): Promise<number> {
    let sum = 0;
    for (const url of this.#urls) {
      const response = await fetch(new URL('/metrics', url));
      if (!response.ok) throw new Error(`GET ${url}/metrics answered ${response.status}`);
      for (const line of (await response.text()).split('\n')) {
        if (!line.startsWith('e2ekv_http_requests_total{') || line.includes('route="metrics"')) continue;
        sum += Number(line.slice(line.lastIndexOf(' ') + 1));
      }
    }
    return sum;
  }
}

// ---------------------------------------------------------------------------
// Statistics.

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? NaN : sorted[Math.floor(sorted.length / 2)]!;
}

/** The element whose `key` is the median (the lower middle for an even count). */
export function medianBy<T>(items: readonly T[], key: (item: T) => number): T {
  const sorted = [...items].sort((a, b) => key(a) - key(b));
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

// ---------------------------------------------------------------------------
// CPU.

/** CPU seconds (user + system, all threads) a process has used; undefined off Linux. */
export async function processCpuSeconds(pid: number): Promise<number | undefined> {
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

export interface CpuShares {
  /** CPU of this process (the SDK) per second of wall time: 1 = one core busy. */
  client: number;
  /** CPU of the server process per second of wall time, when one was involved. */
  server?: number;
}

/** Measures wall time and CPU shares around `work`. */
export async function withCpu<T>(
  serverPid: number | undefined,
  work: () => Promise<T>,
): Promise<{ result: T; seconds: number; cpu: CpuShares }> {
  const serverBefore = serverPid === undefined ? undefined : await processCpuSeconds(serverPid);
  const clientBefore = process.cpuUsage();
  const started = performance.now();
  const result = await work();
  const seconds = (performance.now() - started) / 1000;
  const client = process.cpuUsage(clientBefore);
  const serverAfter = serverPid === undefined ? undefined : await processCpuSeconds(serverPid);
  const cpu: CpuShares = { client: (client.user + client.system) / 1e6 / seconds };
  if (serverBefore !== undefined && serverAfter !== undefined) cpu.server = (serverAfter - serverBefore) / seconds;
  return { result, seconds, cpu };
}

/**
 * Live memory (JS heap + array buffers) after a full collection. The collector
 * is reached through V8's flag, so the npm script needs no --expose-gc; it is
 * only called outside timed sections.
 */
let collect: (() => void) | undefined;
export function liveBytes(): number {
  if (collect === undefined) {
    v8.setFlagsFromString('--expose-gc');
    collect = vm.runInNewContext('gc') as () => void;
  }
  collect();
  collect();
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.arrayBuffers;
}

// ---------------------------------------------------------------------------
// Timed loops of asynchronous operations.

export interface OpRun {
  /** Operations that succeeded. */
  ops: number;
  seconds: number;
  opsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
  cpu: CpuShares;
  /** Failed operations by error code (concurrent workloads only; sequential ones throw). */
  errors: Record<string, number>;
  /** The first error message seen per code. */
  errorSamples: Record<string, string>;
  wire?: WireTotals;
}

/**
 * Runs `op` in `concurrency` closed loops (each starts its next operation when
 * the previous settles) until `durationMs` has passed or `maxOps` were started.
 * `op` receives a counter unique within this call, offset by `first`.
 * With `tolerateErrors`, failures are counted by code instead of thrown.
 */
export async function runOps(
  op: (i: number) => Promise<void>,
  options: {
    durationMs: number;
    first?: number;
    concurrency?: number;
    maxOps?: number;
    serverPid?: number;
    tolerateErrors?: boolean;
    wire?: WireCounter;
  },
): Promise<OpRun & { started: number }> {
  const concurrency = options.concurrency ?? 1;
  const first = options.first ?? 0;
  const maxOps = options.maxOps ?? Number.MAX_SAFE_INTEGER;
  const latencies: number[] = [];
  const errors: Record<string, number> = {};
  const errorSamples: Record<string, string> = {};
  let next = 0;
  const wireBefore = options.wire?.snapshot();
  const { seconds, cpu } = await withCpu(options.serverPid, async () => {
    const deadline = performance.now() + options.durationMs;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < maxOps && performance.now() < deadline) {
          const i = first + next++;
          const start = performance.now();
          try {
            await op(i);
          } catch (error) {
            if (options.tolerateErrors !== true) throw error;
            const code = (error as { code?: unknown }).code;
            const key = typeof code === 'string' ? code : 'other';
            errors[key] = (errors[key] ?? 0) + 1;
            errorSamples[key] ??= error instanceof Error ? error.message : String(error);
            continue;
          }
          latencies.push(performance.now() - start);
        }
      }),
    );
  });
  latencies.sort((a, b) => a - b);
  const run: OpRun & { started: number } = {
    ops: latencies.length,
    started: next,
    seconds,
    opsPerSecond: latencies.length / seconds,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    meanMs: latencies.reduce((a, b) => a + b, 0) / Math.max(1, latencies.length),
    cpu,
    errors,
    errorSamples,
  };
  if (options.wire !== undefined && wireBefore !== undefined) run.wire = options.wire.since(wireBefore);
  return run;
}

/**
 * Throughput of a synchronous or asynchronous loop body run `batch` times per
 * call: median ops/s over `rounds` rounds of `roundMs`, after one warm-up call.
 */
export async function measureRate(
  run: (n: number) => Promise<void> | void,
  batch: number,
  rounds: number,
  roundMs: number,
): Promise<number> {
  await run(batch);
  const rates: number[] = [];
  for (let r = 0; r < rounds; r++) {
    let ops = 0;
    const start = performance.now();
    while (performance.now() - start < roundMs) {
      await run(batch);
      ops += batch;
    }
    rates.push(ops / ((performance.now() - start) / 1000));
  }
  return median(rates);
}

// ---------------------------------------------------------------------------
// The crypto ceiling of a set and of a sync, per 1 KiB value.

/**
 * The SDK's entry sealing and opening with the key material the client derives
 * from a vault secret (client.ts #open): the ceiling a set or a sync could reach
 * with free storage and network.
 */
export class EntryCrypto {
  readonly vaultId = randomBytes(32);
  readonly seed = randomBytes(32);
  readonly device = ed25519PublicKeyFromSeed(this.seed);
  readonly keys: VaultKeys;
  readonly #clock = new HybridLogicalClock();
  readonly #context = [{ device: randomBytes(32), size: 1000n }];
  #index = 0;
  readonly sealed: Uint8Array[];

  readonly #keyOf: (i: number) => string;
  readonly #valueOf: (i: number) => Uint8Array;

  /** `keyOf` and `valueOf` name and fill the i-th key sealed. */
  constructor(keyOf: (i: number) => string, valueOf: (i: number) => Uint8Array) {
    this.#keyOf = keyOf;
    this.#valueOf = valueOf;
    const secret = randomBytes(32);
    this.keys = new EpochKeyRing(this.vaultId, secret);
    this.sealed = Array.from({ length: 256 }, () => this.seal().bytes);
  }

  seal() {
    const i = this.#index++;
    return sealDataEntry({
      keys: this.keys,
      device: this.device,
      index: i,
      clock: this.#clock.tick(),
      context: this.#context,
      writes: [{ name: this.#keyOf(i), value: { kind: 'bytes', bytes: this.#valueOf(i) } }],
    });
  }

  /** What a local set computes: seal the entry, hash it into the Merkle tree. */
  sealAndLeaf(n: number): void {
    for (let i = 0; i < n; i++) leafHash(this.seal().bytes);
  }

  /** What a sync computes per entry: decode, open (decrypt, check bindings, blind the name again), hash the leaf. */
  async decodeOpenAndLeaf(n: number): Promise<void> {
    for (let i = 0; i < n; i++) {
      const bytes = this.sealed[i % this.sealed.length]!;
      await openDataEntry(decodeEntry(bytes) as DataEntry, this.keys, noBlob);
      leafHash(bytes);
    }
  }
}

function noBlob(): Promise<Uint8Array> {
  return Promise.reject(new Error('no blobs in this benchmark'));
}

// ---------------------------------------------------------------------------
// The baseline server (bench/baseline-server.ts): express 5 + sqlite3 with
// e2ekv-server's durability and append route, but no checks at all.

export interface BaselineProcess {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

export async function startBaselineServer(dataDir: string): Promise<BaselineProcess> {
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
  // Never leave a server behind, whatever happens to this process.
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
    return { url, pid: child.pid!, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

// ---------------------------------------------------------------------------
// Formatting.

export function fmt(x: number | undefined): string {
  if (x === undefined || !Number.isFinite(x)) return 'n/a';
  return Math.round(x).toLocaleString('en-US');
}

export function ms(x: number | undefined): string {
  if (x === undefined || !Number.isFinite(x)) return 'n/a';
  return x < 0.1 ? x.toFixed(3) : x < 10 ? x.toFixed(2) : x.toFixed(1);
}

export function pct(x: number | undefined): string {
  if (x === undefined || !Number.isFinite(x)) return 'n/a';
  return `${Math.round(x * 100)}%`;
}
