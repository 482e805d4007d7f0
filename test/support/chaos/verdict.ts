// What a chaos run amounts to: its summary for the log, and every reason it
// fails, beyond the checker's report: too few operations, no kill during a
// write, no partition, no crash probe, a run that strayed from its seed's
// plan, an incomplete final sync, a fault that could not be carried out.
import { formatReport } from './checker.js';
import type { History } from './history.js';
import { Random } from './random.js';
import type { ChaosConfig, ChaosResult } from './run.js';
import { firstEvents } from './schedule.js';
import { sessionPlan, type PlannedOp } from './workload.js';

/** Kills that landed during a write: some set was invoked before and completed after (or never). */
function killsDuringWrites(history: History): number {
  const kills = history.faults.filter(
    (f) => f.origin === 'schedule' && f.action.kind === 'kill' && f.error === undefined,
  );
  return kills.filter((kill) =>
    history.ops.some((op) => op.f === 'set' && op.invokeMs <= kill.atMs && (op.completeMs ?? Infinity) >= kill.atMs),
  ).length;
}

/** Errors by operation, outcome and code; and the first message of each kind other than UNAVAILABLE. */
function errorsOf(history: History): { counts: Record<string, number>; notable: Record<string, string> } {
  const counts: Record<string, number> = {};
  const notable: Record<string, string> = {};
  for (const op of history.ops) {
    if (op.error === undefined) continue;
    const name = `${op.f} ${op.outcome} ${op.error.code ?? op.error.message.slice(0, 60)}`;
    counts[name] = (counts[name] ?? 0) + 1;
    // An unreachable replica is what chaos is for; anything else is worth a look even when the checks pass.
    if (op.error.code !== 'UNAVAILABLE') notable[name] ??= `op ${op.id} at ${op.invokeMs} ms: ${op.error.message}`;
  }
  return { counts, notable };
}

export function summarize(config: ChaosConfig, result: ChaosResult) {
  const { counts, notable } = errorsOf(result.history);
  return {
    seed: config.seed,
    ops: result.opsDone,
    outcomes: result.history.summary(),
    errors: counts,
    notable,
    faults: result.injected,
    links: result.linkStats,
    killsDuringWrites: killsDuringWrites(result.history),
    crashProbes: result.history.probes.length,
    faultPhaseMs: result.faultPhaseMs,
    totalMs: result.totalMs,
    maxSiblings: result.report.stats.maxSiblings,
    conflictedReads: result.report.stats.conflictedReads,
    finalSyncComplete: result.finalSyncComplete,
  };
}

/**
 * Whether the run carried out its seed's plan: the scheduled faults in order,
 * and each session's operations (kind, key, level, value) as planned.
 */
export function followedPlan(config: ChaosConfig, history: History, sessions: readonly string[]): boolean {
  const scheduled = history.faults.filter((f) => f.origin === 'schedule').map((f) => f.action);
  const planned = firstEvents(
    new Random(config.seed).fork('faults'),
    { replicas: config.replicas, clients: sessions, peers: true, ...config.schedule },
    scheduled.length,
  ).map((e) => e.action);
  if (JSON.stringify(scheduled) !== JSON.stringify(planned)) return false;
  return sessions.every((session) => {
    const ran = history.ops
      .filter((op) => op.session === session)
      .map(({ f, key, level, value }): PlannedOp => {
        const op: PlannedOp = { f, key, level: level as PlannedOp['level'] };
        if (value !== undefined) op.value = value;
        return op;
      });
    const plan = sessionPlan(new Random(config.seed).fork(`plan ${session}`), session, { keys: config.keys });
    const expected = ran.map(() => plan.next().value);
    return JSON.stringify(ran) === JSON.stringify(expected);
  });
}

/** Every reason the run fails; none when it passes. */
export function problemsOf(config: ChaosConfig, result: ChaosResult, sessions: readonly string[]): string[] {
  const { history, report } = result;
  const problems: string[] = [];
  if (result.opsDone < config.ops) {
    problems.push(`only ${result.opsDone} of ${config.ops} operations ran in ${config.maxDurationMs} ms`);
  }
  if (killsDuringWrites(history) < 1) problems.push('no replica was killed during a write');
  if (result.injected.partition < 1) problems.push('no partition was made');
  if (history.probes.length < 1) problems.push('no restarted replica was probed for what it held');
  if (!followedPlan(config, history, sessions)) problems.push(`the run did not follow the plan of seed ${config.seed}`);
  if (!result.finalSyncComplete) problems.push('the final sync did not get every write to every replica');
  const failedFaults = history.faults.filter((f) => f.error !== undefined);
  if (failedFaults.length > 0) {
    problems.push(`faults that could not be carried out: ${JSON.stringify(failedFaults.slice(0, 3))}`);
  }
  const peer = result.peerPhase?.report;
  if (peer !== undefined && !peer.valid) {
    problems.push(`after the heal, before any final sync, the replicas alone:\n${formatReport(peer)}`);
  }
  if (!report.valid) problems.push(`after the final sync of every writer:\n${formatReport(report)}`);
  return problems;
}
