/**
 * The one load generator of bench/compare.ts: N closed-loop workers (each
 * starts its next operation when the previous one settled) for a fixed
 * duration or operation count, per-operation latencies -> p50/p99,
 * throughput, CPU of this process and of the processes under test, and their
 * resident set size sampled during the run. Every system (e2ekv through its
 * SDK or raw HTTP, etcd through etcd3, Redis through redis) is driven by it in
 * the same way; only the operation differs.
 *
 * Rounds: a workload runs each of its targets for a warm-up, then R rounds,
 * rotating which target goes first so that drift (disk, other load on the
 * machine) hits all of them alike; each target reports its median round.
 */
import { percentile, processCpuSeconds } from './sdk-support.js';
import { rssSampler } from './services.js';

export interface LoadRun {
  /** Operations that succeeded. */
  ops: number;
  seconds: number;
  opsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
  /** CPU of this process per second of wall time (1 = one core busy). */
  clientCpu: number;
  /** CPU of the processes under test per second of wall time, summed. */
  serverCpu?: number;
  /** Peak summed RSS of the processes under test during the run, bytes. */
  serverRssBytes?: number;
  /** RSS of this process at the end of the run, bytes. */
  clientRssBytes: number;
  /** HTTP requests and bytes (bodies and headers) per operation, when the target counted them. */
  wire?: { requestsPerOp: number; bytesPerOp?: number };
  /** Failed operations by error code (only with tolerateErrors). */
  errors: Record<string, number>;
  errorSamples: Record<string, string>;
}

export interface LoadOptions {
  concurrency: number;
  durationMs: number;
  maxOps?: number;
  /** Processes under test: their CPU and RSS are reported. */
  pids?: readonly number[];
  /** Count failures by code instead of failing the run. */
  tolerateErrors?: boolean;
}

/**
 * Runs `op(i, worker)` in `concurrency` closed loops; `i` is unique within
 * the call, `worker` is the loop's number (0 .. concurrency-1).
 */
export async function runLoad(
  op: (i: number, worker: number) => Promise<unknown>,
  options: LoadOptions,
): Promise<LoadRun> {
  const pids = options.pids ?? [];
  const maxOps = options.maxOps ?? Number.MAX_SAFE_INTEGER;
  const latencies: number[] = [];
  const errors: Record<string, number> = {};
  const errorSamples: Record<string, string> = {};
  let next = 0;
  let failure: unknown;
  const sampler = rssSampler(pids);
  const cpuBefore = await Promise.all(pids.map(processCpuSeconds));
  const clientBefore = process.cpuUsage();
  const started = performance.now();
  const deadline = started + options.durationMs;
  await Promise.all(
    Array.from({ length: options.concurrency }, async (_, worker) => {
      while (failure === undefined && next < maxOps && performance.now() < deadline) {
        const i = next++;
        const start = performance.now();
        try {
          await op(i, worker);
        } catch (error) {
          if (options.tolerateErrors !== true) {
            failure ??= error;
            return;
          }
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
  const seconds = (performance.now() - started) / 1000;
  const client = process.cpuUsage(clientBefore);
  const cpuAfter = await Promise.all(pids.map(processCpuSeconds));
  const rss = await sampler.stop();
  if (failure !== undefined) throw failure;
  latencies.sort((a, b) => a - b);
  const run: LoadRun = {
    ops: latencies.length,
    seconds,
    opsPerSecond: latencies.length / seconds,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    meanMs: latencies.reduce((a, b) => a + b, 0) / Math.max(1, latencies.length),
    clientCpu: (client.user + client.system) / 1e6 / seconds,
    clientRssBytes: process.memoryUsage().rss,
    errors,
    errorSamples,
  };
  if (pids.length > 0 && cpuBefore.every((x) => x !== undefined) && cpuAfter.every((x) => x !== undefined)) {
    run.serverCpu = cpuAfter.reduce((s, x, k) => s + x! - cpuBefore[k]!, 0) / seconds;
  }
  if (rss.peak !== undefined) run.serverRssBytes = rss.peak;
  return run;
}

// ---------------------------------------------------------------------------
// Rounds over several targets.

export interface Target {
  /** The row's name in the table, e.g. "etcd, 1 member". */
  name: string;
  /** Which system: e2ekv, etcd, redis or a ceiling/baseline of e2ekv's own. */
  system: string;
  /** One timed run of `durationMs`. */
  run: (durationMs: number) => Promise<LoadRun>;
}

export interface TargetResult {
  name: string;
  system: string;
  rounds: LoadRun[];
  /** The round with the median throughput. */
  median: LoadRun;
  /** Median throughput over rounds (the median round's). */
  opsPerSecond: number;
}

export interface RoundPlan {
  rounds: number;
  roundMs: number;
  warmupMs: number;
}

export async function compareTargets(
  targets: readonly Target[],
  plan: RoundPlan,
  log: (line: string) => void,
): Promise<TargetResult[]> {
  for (const t of targets) await t.run(plan.warmupMs);
  const rounds = targets.map(() => [] as LoadRun[]);
  for (let r = 0; r < plan.rounds; r++) {
    for (let k = 0; k < targets.length; k++) {
      const which = (k + r) % targets.length;
      const target = targets[which]!;
      const run = await target.run(plan.roundMs);
      rounds[which]!.push(run);
      log(`    round ${r + 1} ${target.name}: ${describeRun(run)}`);
    }
  }
  return targets.map((t, k) => {
    const sorted = [...rounds[k]!].sort((a, b) => a.opsPerSecond - b.opsPerSecond);
    const mid = sorted[Math.floor((sorted.length - 1) / 2)]!;
    return {
      name: t.name,
      system: t.system,
      rounds: rounds[k]!,
      median: mid,
      opsPerSecond: mid.opsPerSecond,
    };
  });
}

export function describeRun(run: LoadRun): string {
  const errors = Object.entries(run.errors)
    .map(([code, n]) => `${n} ${code}`)
    .join(', ');
  const f = (x: number) => (x < 10 ? x.toFixed(2) : x.toFixed(1));
  return (
    `${Math.round(run.opsPerSecond).toLocaleString('en-US')} ops/s, p50 ${f(run.p50Ms)} ms, p99 ${f(run.p99Ms)} ms` +
    (errors === '' ? '' : `, failed: ${errors}`)
  );
}
