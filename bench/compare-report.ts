/**
 * The results of bench/compare.ts: their shape (written as JSON) and the
 * Markdown tables written beside them. Every figure in the Markdown comes
 * from the results object; nothing here measures anything.
 */

export type System = 'e2ekv' | 'etcd' | 'redis' | 'ceiling' | 'plaintext' | 'diagnostic';

export interface Row {
  /** e.g. "e2ekv SDK: set, ack 'one'" (the clients column says how many). */
  name: string;
  system: System;
  /** Concurrent clients (closed loops). */
  clients: number;
  opsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** Peak summed RSS of the processes under test during the median round, MiB. */
  serverRssMiB?: number;
  /** RSS of the benchmark process (the load generator, and the SDK for e2ekv rows), MiB. */
  clientRssMiB: number;
  /** CPU per second of wall time, 1 = one core: the benchmark process / the processes under test. */
  clientCpu: number;
  serverCpu?: number;
  /** HTTP requests and bytes per operation (e2ekv SDK rows that count them). */
  wire?: { requestsPerOp: number; bytesPerOp?: number };
  /** ops/s of every round, in order. */
  rounds: number[];
  failed: Record<string, number>;
  failedSamples?: Record<string, string>;
  /** This row's throughput over each baseline's, for the rows it is compared with (same workload, same clients). */
  ratios?: Record<string, number>;
  note?: string;
}

export interface WorkloadResult {
  id: string;
  title: string;
  rows: Row[];
  /** Figures that are not throughput rows (sync, anti-entropy, memory). */
  figures?: Record<string, number | string>;
  notes: string[];
  /** Why a part was not measured. */
  notMeasured: string[];
  seconds: number;
}

export interface CompareResults {
  benchmark: 'compare';
  date: string;
  quick: boolean;
  argv: string[];
  machine: Record<string, unknown>;
  settings: Record<string, unknown>;
  services: Record<string, { available: boolean; version?: string; problem?: string }>;
  installNotes: string[];
  workloads: WorkloadResult[];
  summary: Record<string, number | string | undefined>;
  elapsedSeconds: number;
}

// ---------------------------------------------------------------------------

export function fmt(x: number | undefined): string {
  if (x === undefined || !Number.isFinite(x)) return 'n/a';
  return Math.round(x).toLocaleString('en-US');
}

export function ms(x: number | undefined): string {
  if (x === undefined || !Number.isFinite(x)) return 'n/a';
  return x < 0.1 ? x.toFixed(3) : x < 10 ? x.toFixed(2) : x.toFixed(1);
}

export function ratio(x: number | undefined): string {
  if (x === undefined || !Number.isFinite(x)) return 'n/a';
  return x >= 10 ? `${x.toFixed(1)}×` : x >= 0.1 ? `${x.toFixed(2)}×` : `${x.toFixed(3)}×`;
}

export function pct(x: number | undefined): string {
  if (x === undefined || !Number.isFinite(x)) return 'n/a';
  return `${(x * 100).toFixed(x < 0.1 ? 1 : 0)}%`;
}

/** Whole numbers and large ones with separators; small fractions with three significant digits. */
function number(x: number): string {
  if (!Number.isFinite(x)) return 'n/a';
  if (Number.isInteger(x) || Math.abs(x) >= 100) return fmt(x);
  return x.toPrecision(3);
}

function mib(x: number | undefined): string {
  return x === undefined ? 'n/a' : fmt(x);
}

function cpu(row: Row): string {
  const c = (x: number) => x.toFixed(2);
  return row.serverCpu === undefined ? c(row.clientCpu) : `${c(row.clientCpu)} / ${c(row.serverCpu)}`;
}

function workloadTable(w: WorkloadResult): string[] {
  const lines = [
    '| system | clients | ops/s | p50 ms | p99 ms | server RSS MiB | bench RSS MiB | CPU bench / server | ratio to baselines (same run, same clients) | requests, bytes per op | failed |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|',
  ];
  for (const r of w.rows) {
    const ratios = Object.entries(r.ratios ?? {})
      .map(([name, x]) => `${ratio(x)} ${name}`)
      .join('; ');
    const failed = Object.entries(r.failed)
      .map(([code, n]) => `${fmt(n)} ${code}`)
      .join(', ');
    lines.push(
      `| ${r.name} | ${r.clients} | ${fmt(r.opsPerSecond)} | ${ms(r.p50Ms)} | ${ms(r.p99Ms)} | ${mib(r.serverRssMiB)} | ` +
        `${mib(r.clientRssMiB)} | ${cpu(r)} | ${ratios} | ` +
        `${r.wire === undefined ? '' : `${r.wire.requestsPerOp.toFixed(2)}${r.wire.bytesPerOp === undefined ? '' : `, ${fmt(r.wire.bytesPerOp)}`}`} | ${failed} |`,
    );
  }
  return lines;
}

export function markdown(results: CompareResults): string {
  const m = results.machine;
  const lines: string[] = [];
  lines.push(
    `# e2ekv beside etcd and Redis (${results.quick ? 'quick' : 'full'} run, ${results.date})`,
    '',
    `Machine: ${String(m['node'])} on ${String(m['platform'])}/${String(m['arch'])}, ${String(m['cpus'])} × ${String(m['cpuModel'])}, ` +
      `${String(m['memoryGiB'])} GiB RAM. Load average at start ${String(m['loadAverageStart'])}, at end ${String(m['loadAverageEnd'])}; ` +
      `the whole machine's CPU was ${pct(m['machineBusyShare'] as number | undefined)} busy during the run ` +
      `(this benchmark and the services it drove included). The load generator and every service share these CPUs.`,
    `Code: commit ${String(m['commit'] ?? 'unknown').slice(0, 12)}${m['uncommittedChanges'] === true ? ' with uncommitted changes' : ''}. ` +
      `Whole run ${fmt(results.elapsedSeconds)} s.`,
    `Services: ${Object.entries(results.services)
      .map(([name, s]) => `${name} ${s.available ? (s.version ?? '') : `not measured (${s.problem ?? 'unavailable'})`}`)
      .join('; ')}.`,
  );
  for (const note of results.installNotes) lines.push(`Install: ${note}.`);
  lines.push(
    '',
    `Method: closed loops (each client starts its next operation when the previous one settled), 1 KiB random values; ` +
      `${String(results.settings['rounds'])} rounds of ${String(results.settings['roundMs'])} ms per system after a ` +
      `${String(results.settings['warmupMs'])} ms warm-up, rotating which system goes first; each row is the median round ` +
      `(reads: rounds of ${String(results.settings['readRoundMs'])} ms). RSS is the peak during that round; CPU is cores busy ` +
      '(1 = one core), of the benchmark process (load generator, SDK) and of the processes under test.',
  );

  const summary = results.summary;
  lines.push('', '## Summary', '', '| figure | value |', '|---|---:|');
  for (const [name, value] of Object.entries(summary)) {
    if (value === undefined) continue;
    lines.push(`| ${name} | ${typeof value === 'number' ? number(value) : value} |`);
  }

  for (const w of results.workloads) {
    lines.push('', `## ${w.id}: ${w.title}`, '');
    if (w.rows.length > 0) lines.push(...workloadTable(w));
    if (w.figures !== undefined && Object.keys(w.figures).length > 0) {
      if (w.rows.length > 0) lines.push('');
      lines.push('| figure | value |', '|---|---:|');
      for (const [name, value] of Object.entries(w.figures)) {
        lines.push(`| ${name} | ${typeof value === 'number' ? number(value) : value} |`);
      }
    }
    for (const r of w.rows) {
      for (const [code, message] of Object.entries(r.failedSamples ?? {})) {
        lines.push('', `${r.name}, ${r.clients} clients, first ${code} failure: "${message.slice(0, 400)}"`);
      }
    }
    for (const n of w.notMeasured) lines.push('', `Not measured: ${n}`);
    for (const n of w.notes) lines.push('', n);
    lines.push('', `(${fmt(w.seconds)} s, setup included)`);
  }
  return lines.join('\n') + '\n';
}
