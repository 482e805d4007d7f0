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
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fromBase64 } from '@e2ekv/protocol';
import { startServerProcess, tempDir } from '../server/test/support/process.js';
import {
  BenchWriter,
  HttpClient,
  VALUE_BYTES,
  authorize,
  checkShortcuts,
  createSharedVault,
  type HttpReply,
  type PreparedAppend,
} from './ingest-support.js';

const quick = process.argv.includes('--quick');
/** `--only 256x16` runs one workload (batch x writers), for profiling. */
const onlyFlag = process.argv.indexOf('--only');
const only = onlyFlag === -1 ? undefined : process.argv[onlyFlag + 1];
const ROUNDS = 3;
const ROUND_MS = quick ? 1000 : 3000;
const WARMUP_MS = quick ? 300 : 1000;
const BATCH_SIZES = [1, 16, 256] as const;
const WRITER_COUNTS = [1, 16] as const;
/** Entries built per workload before its warm-up has measured a rate. */
const WARMUP_GUESS_ENTRIES = 512;
/** Entries per workload the baseline may cycle through (see BenchWriter.nextForBaseline). */
const BASELINE_POOL_ENTRIES = 16384;

const benchDir = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(benchDir, '..');

type TargetName = 'e2ekv' | 'baseline';

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
  const { vaultId, devices } = await createSharedVault([{ client: e2ekv.client!, audience }], writerCount);
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
