// Judges a chaos run's history against what the replicas hold after healing
// and a quiet period. Each check returns its violations, so a failing run says
// what was lost, where and by whom, not just "false":
//
// - lost-writes: every acknowledged write's entry is on every replica (its
//   vector covers it), and the key's siblings there include the write or a
//   write that causally follows it.
// - undelivered-writes (when asked): the same for writes whose outcome was
//   unknown but which reached their device's log: the device kept them and
//   its final sync must deliver them.
// - convergence: every replica could be read, and all hold the same vector,
//   the same log roots and the same siblings for every key.
// - sibling-bound: a key never shows more siblings than there are writers,
//   never two of one device, never one that causally precedes another.
// - monotonic-reads: no session reads a value causally older than one it has
//   already read; a complete read (getAll) also never loses sight of a write
//   the session saw before.
// - read-your-writes: a session's reads of a key show its own last write to it
//   or something causally newer.
// - phantom-values: every value read is one some write wrote, to that key, by
//   the entry the read names; a write known to have failed is never seen.
// - crash-durability: a replica restarted after kill -9 still holds every
//   entry it had acknowledged before the kill.
//
// Causality comes from the writes' entries: write a happened before write b
// when b's writer had applied a (b's context covers a's index) or a is an
// earlier entry of the same log. Contexts are causally closed, so this direct
// look-up is transitive.
import type { CrashProbe, Observed, Operation, WriteEntry } from './history.js';

export interface ReplicaSnapshot {
  replica: string;
  /** Entries the replica holds of each device's log (its vault state). */
  vector: Record<string, number>;
  /** Each log's root hash at that size, hex, when known. */
  roots?: Record<string, string>;
  /** Every key's siblings, as a reader that synced from this replica alone sees them. */
  state: Record<string, Observed[]>;
  /** Why the replica could not be read; its vector and state are then empty. */
  error?: string;
}

export interface CheckInput {
  ops: readonly Operation[];
  replicas: readonly ReplicaSnapshot[];
  probes?: readonly CrashProbe[];
  /** Devices that write: the most siblings a key may ever have. */
  writers: number;
  /** Also require every unknown-outcome write that reached its log to be on every replica (default false). */
  requireUnacknowledged?: boolean;
}

export const CHECKS = [
  'lost-writes',
  'undelivered-writes',
  'convergence',
  'sibling-bound',
  'monotonic-reads',
  'read-your-writes',
  'phantom-values',
  'crash-durability',
] as const;
export type CheckName = (typeof CHECKS)[number];

export interface Violation {
  check: CheckName;
  message: string;
  op?: number;
  replica?: string;
  key?: string;
  session?: string;
}

export interface CheckResult {
  valid: boolean;
  /** How many things were checked (writes, reads, keys, probes), so that a vacuous pass shows. */
  checked: number;
  /** Every violation found (the report's text shows the first few). */
  violations: Violation[];
}

export interface CheckReport {
  valid: boolean;
  checks: Record<CheckName, CheckResult>;
  stats: {
    ops: Record<string, number>;
    replicas: number;
    keys: number;
    maxSiblings: number;
    /** Reads that returned more than one sibling. */
    conflictedReads: number;
  };
}

/** Identity of a write's entry. */
function idOf(entry: Pick<WriteEntry, 'device' | 'index'>): string {
  return `${entry.device}/${entry.index}`;
}

/** Whether write a happened before write b (never a write before itself). */
export function happenedBefore(a: WriteEntry, b: WriteEntry): boolean {
  if (a.device === b.device) return a.index < b.index;
  return (b.context[a.device] ?? 0) > a.index;
}

/** Whether `versions` still shows `write`: holds it, or a write that happened after it. */
function covers(versions: readonly WriteEntry[], write: WriteEntry): boolean {
  return versions.some((v) => idOf(v) === idOf(write) || happenedBefore(write, v));
}

/** The writes of `writes` that no other of them happened after. */
function maximal(writes: readonly WriteEntry[]): WriteEntry[] {
  const unique = [...new Map(writes.map((w) => [idOf(w), w])).values()];
  return unique.filter((w) => !unique.some((other) => happenedBefore(w, other)));
}

class Checks {
  readonly results = Object.fromEntries(
    CHECKS.map((name) => [name, { valid: true, checked: 0, violations: [] as Violation[] }]),
  ) as Record<CheckName, CheckResult>;

  add(violation: Violation): void {
    const result = this.results[violation.check];
    result.valid = false;
    result.violations.push(violation);
  }

  count(check: CheckName, n = 1): void {
    this.results[check].checked += n;
  }
}

export function checkHistory(input: CheckInput): CheckReport {
  const checks = new Checks();
  const writes = input.ops.filter((op) => op.f === 'set');
  const byValue = new Map<unknown, Operation>();
  for (const op of writes) byValue.set(op.value, op);
  const sessionOf = new Map<string, string>();
  for (const op of writes) if (op.entry !== undefined) sessionOf.set(op.entry.device, op.session);
  const who = (device: string) => sessionOf.get(device) ?? device.slice(0, 12);
  const show = (entry: WriteEntry) => `${who(entry.device)}#${entry.index}`;
  const describe = (op: Operation) => `${op.f} #${op.id} of ${JSON.stringify(op.key)} by ${op.session}`;

  /** The entry behind an observed version, or undefined (and a phantom-values violation). */
  const resolve = (
    seen: Observed,
    key: string,
    where: Omit<Violation, 'check' | 'message'>,
  ): WriteEntry | undefined => {
    checks.count('phantom-values');
    const op = byValue.get(seen.value);
    const at = where.replica !== undefined ? `replica ${where.replica}` : `read #${where.op}`;
    if (op === undefined) {
      checks.add({
        check: 'phantom-values',
        ...where,
        key,
        message: `${at} shows ${JSON.stringify(seen.value)} for ${JSON.stringify(key)}, a value no operation wrote`,
      });
      return undefined;
    }
    if (op.key !== key) {
      checks.add({
        check: 'phantom-values',
        ...where,
        key,
        message: `${at} shows ${JSON.stringify(seen.value)} under ${JSON.stringify(key)}, but ${describe(op)} wrote it to ${JSON.stringify(op.key)}`,
      });
      return undefined;
    }
    if (op.outcome === 'fail') {
      checks.add({
        check: 'phantom-values',
        ...where,
        key,
        message: `${at} shows ${JSON.stringify(seen.value)}, written by ${describe(op)}, which failed`,
      });
      return undefined;
    }
    if (op.entry === undefined) {
      checks.add({
        check: 'phantom-values',
        ...where,
        key,
        message: `${at} shows ${JSON.stringify(seen.value)}, but ${describe(op)} never reached its device's log`,
      });
      return undefined;
    }
    if (
      (seen.device !== undefined && seen.device !== op.entry.device) ||
      (seen.index !== undefined && seen.index !== op.entry.index)
    ) {
      checks.add({
        check: 'phantom-values',
        ...where,
        key,
        message: `${at} shows ${JSON.stringify(seen.value)} as entry ${seen.device?.slice(0, 12)}#${seen.index}, but ${describe(op)} wrote it as ${show(op.entry)}`,
      });
      return undefined;
    }
    return op.entry;
  };

  const checkSiblings = (entries: readonly WriteEntry[], key: string, where: Omit<Violation, 'check' | 'message'>) => {
    checks.count('sibling-bound');
    const at = where.replica !== undefined ? `replica ${where.replica}` : `read #${where.op}`;
    if (entries.length > input.writers) {
      checks.add({
        check: 'sibling-bound',
        ...where,
        key,
        message: `${at}: ${JSON.stringify(key)} has ${entries.length} siblings, more than the ${input.writers} writers`,
      });
    }
    for (const [i, a] of entries.entries()) {
      for (const b of entries.slice(i + 1)) {
        if (a.device === b.device) {
          checks.add({
            check: 'sibling-bound',
            ...where,
            key,
            message: `${at}: ${JSON.stringify(key)} has two siblings of one device, ${show(a)} and ${show(b)}`,
          });
        } else if (happenedBefore(a, b) || happenedBefore(b, a)) {
          const [older, newer] = happenedBefore(a, b) ? [a, b] : [b, a];
          checks.add({
            check: 'sibling-bound',
            ...where,
            key,
            message: `${at}: ${JSON.stringify(key)} keeps ${show(older)} beside ${show(newer)}, which superseded it`,
          });
        }
      }
    }
  };

  // Reads: phantoms, sibling bounds, and the session guarantees, in each session's order.
  let maxSiblings = 0;
  let conflictedReads = 0;
  const sessions = new Map<string, Operation[]>();
  for (const op of input.ops) {
    const list = sessions.get(op.session) ?? [];
    list.push(op);
    sessions.set(op.session, list);
  }
  for (const [session, ops] of sessions) {
    ops.sort((a, b) => a.invokeMs - b.invokeMs || a.id - b.id);
    // What the session has read of each key (kept as an antichain), and its own writes, by key.
    const read = new Map<string, { entry: WriteEntry; op: number }[]>();
    const written = new Map<string, { entry: WriteEntry; op: number }>();
    for (const op of ops) {
      if (op.f === 'set') {
        // A write that reached the own log is visible to this device at once, acknowledged or not.
        if (op.entry !== undefined && op.outcome !== 'fail') written.set(op.key, { entry: op.entry, op: op.id });
        continue;
      }
      if (op.outcome !== 'ok' || op.observed === undefined) continue;
      const where = { op: op.id, session };
      const entries: WriteEntry[] = [];
      let resolved = true;
      for (const seen of op.observed) {
        const entry = resolve(seen, op.key, where);
        if (entry === undefined) resolved = false;
        else entries.push(entry);
      }
      if (!resolved) continue;
      maxSiblings = Math.max(maxSiblings, entries.length);
      if (entries.length > 1) conflictedReads++;
      if (op.f === 'getAll') checkSiblings(entries, op.key, where);
      else if (entries.length > 1) {
        checks.add({
          check: 'sibling-bound',
          ...where,
          key: op.key,
          message: `get #${op.id} returned ${entries.length} values`,
        });
      }
      const complete = op.f === 'getAll';
      // A complete read must still show what was seen; a get must not return something older than it.
      const stale = (before: WriteEntry) =>
        complete ? !covers(entries, before) : entries.length === 0 || entries.some((e) => happenedBefore(e, before));
      const got = entries.length === 0 ? 'nothing' : entries.map(show).join(', ');
      checks.count('monotonic-reads');
      for (const before of read.get(op.key) ?? []) {
        if (stale(before.entry)) {
          checks.add({
            check: 'monotonic-reads',
            ...where,
            key: op.key,
            message: `${describe(op)} returned ${got}, older than ${show(before.entry)} that read #${before.op} of the same session returned`,
          });
        }
      }
      const own = written.get(op.key);
      if (own !== undefined) {
        checks.count('read-your-writes');
        if (stale(own.entry)) {
          checks.add({
            check: 'read-your-writes',
            ...where,
            key: op.key,
            message: `${describe(op)} returned ${got}, older than the session's own write ${show(own.entry)} (set #${own.op})`,
          });
        }
      }
      const merged = maximal([...(read.get(op.key) ?? []).map((r) => r.entry), ...entries]);
      const opOf = new Map([...(read.get(op.key) ?? []).map((r) => [idOf(r.entry), r.op] as const)]);
      read.set(
        op.key,
        merged.map((entry) => ({ entry, op: opOf.get(idOf(entry)) ?? op.id })),
      );
    }
  }

  // Replicas: what each holds, resolved to entries.
  const readable = input.replicas.filter((r) => r.error === undefined);
  const resolvedState = new Map<string, Map<string, WriteEntry[]>>();
  for (const replica of readable) {
    const keys = new Map<string, WriteEntry[]>();
    for (const [key, siblings] of Object.entries(replica.state)) {
      const where = { replica: replica.replica };
      const entries = siblings.map((s) => resolve(s, key, where)).filter((e): e is WriteEntry => e !== undefined);
      checkSiblings(entries, key, where);
      maxSiblings = Math.max(maxSiblings, entries.length);
      keys.set(key, entries);
    }
    resolvedState.set(replica.replica, keys);
  }

  // Every write that must be everywhere: in each replica's vector, and still visible under its key.
  const mustHold = (check: 'lost-writes' | 'undelivered-writes', op: Operation, what: string) => {
    checks.count(check);
    if (op.entry === undefined) {
      checks.add({
        check,
        op: op.id,
        key: op.key,
        session: op.session,
        message: `${what} ${describe(op)} has no recorded entry`,
      });
      return;
    }
    const entry = op.entry;
    for (const replica of readable) {
      const held = replica.vector[entry.device] ?? 0;
      const where = { op: op.id, key: op.key, session: op.session, replica: replica.replica };
      if (held <= entry.index) {
        checks.add({
          check,
          ...where,
          message: `replica ${replica.replica} holds ${held} entries of ${who(entry.device)}'s log, so not ${what} ${describe(op)} (value ${JSON.stringify(op.value)}, entry ${show(entry)})`,
        });
        continue;
      }
      const versions = resolvedState.get(replica.replica)?.get(op.key) ?? [];
      if (!covers(versions, entry)) {
        checks.add({
          check,
          ...where,
          message: `replica ${replica.replica} shows ${versions.length === 0 ? 'nothing' : versions.map(show).join(', ')} for ${JSON.stringify(op.key)}: neither ${what} ${describe(op)} (entry ${show(entry)}) nor a write after it`,
        });
      }
    }
  };
  for (const op of writes) {
    if (op.outcome === 'ok') mustHold('lost-writes', op, 'the acknowledged');
    else if (input.requireUnacknowledged === true && op.entry !== undefined && op.outcome !== 'fail') {
      mustHold('undelivered-writes', op, 'the unacknowledged');
    }
  }

  // Convergence: one vector, one set of roots, one state.
  checks.count('convergence', input.replicas.length);
  for (const replica of input.replicas) {
    if (replica.error !== undefined) {
      checks.add({
        check: 'convergence',
        replica: replica.replica,
        message: `replica ${replica.replica} could not be read: ${replica.error}`,
      });
    }
  }
  const [reference, ...others] = readable;
  if (reference !== undefined) {
    const devices = new Set(readable.flatMap((r) => Object.keys(r.vector)));
    for (const device of devices) {
      const sizes = readable.map((r) => r.vector[device] ?? 0);
      if (new Set(sizes).size > 1) {
        const listed = readable.map((r, i) => `${r.replica}=${sizes[i]}`).join(' ');
        checks.add({
          check: 'convergence',
          message: `replicas disagree on the size of ${who(device)}'s log: ${listed}`,
        });
        continue;
      }
      const roots = readable.map((r) => r.roots?.[device]).filter((root) => root !== undefined);
      if (new Set(roots).size > 1) {
        checks.add({
          check: 'convergence',
          message: `replicas hold ${who(device)}'s log at the same size with different roots`,
        });
      }
    }
    const keys = new Set(readable.flatMap((r) => Object.keys(r.state)));
    const text = (replica: ReplicaSnapshot, key: string) =>
      (replica.state[key] ?? [])
        .map((s) => `${s.device?.slice(0, 12)}#${s.index}=${JSON.stringify(s.value)}`)
        .join(', ');
    for (const key of keys) {
      checks.count('convergence');
      const expected = text(reference, key);
      for (const replica of others) {
        const actual = text(replica, key);
        if (actual !== expected) {
          checks.add({
            check: 'convergence',
            key,
            replica: replica.replica,
            message: `${JSON.stringify(key)} is [${actual}] on ${replica.replica} but [${expected}] on ${reference.replica}`,
          });
        }
      }
    }
  }

  // Crash durability, from the probes taken between restart and reconnection.
  for (const probe of input.probes ?? []) {
    checks.count('crash-durability');
    if (probe.error !== undefined || probe.held === undefined) {
      checks.add({
        check: 'crash-durability',
        replica: probe.replica,
        message: `replica ${probe.replica} could not be read after its restart at ${probe.atMs} ms: ${probe.error ?? 'no answer'}`,
      });
      continue;
    }
    for (const [device, acknowledged] of Object.entries(probe.acknowledged)) {
      const held = probe.held[device] ?? 0;
      if (held < acknowledged) {
        checks.add({
          check: 'crash-durability',
          replica: probe.replica,
          message: `replica ${probe.replica} acknowledged ${acknowledged} entries of ${who(device)}'s log before kill -9, and held ${held} after its restart at ${probe.atMs} ms`,
        });
      }
    }
  }

  const ops: Record<string, number> = {};
  for (const op of input.ops) {
    const name = `${op.f} ${op.outcome ?? 'pending'}`;
    ops[name] = (ops[name] ?? 0) + 1;
  }
  return {
    valid: Object.values(checks.results).every((r) => r.valid),
    checks: checks.results,
    stats: {
      ops,
      replicas: input.replicas.length,
      keys: new Set(input.ops.map((op) => op.key)).size,
      maxSiblings,
      conflictedReads,
    },
  };
}

/** A few lines per failed check, for a test's failure message. */
export function formatReport(report: CheckReport, perCheck = 5): string {
  const lines: string[] = [];
  for (const name of CHECKS) {
    const result = report.checks[name];
    lines.push(
      `${result.valid ? 'ok  ' : 'FAIL'} ${name} (${result.checked} checked, ${result.violations.length} violations)`,
    );
    for (const v of result.violations.slice(0, perCheck)) lines.push(`       ${v.message}`);
    if (result.violations.length > perCheck) lines.push(`       … and ${result.violations.length - perCheck} more`);
  }
  return lines.join('\n');
}
