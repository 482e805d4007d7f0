// The recorded history of a chaos run, Jepsen-style: every client operation
// with its invocation and completion (ok, fail, or unknown: the client cannot
// tell whether it took effect), what it wrote or read, and the faults injected.
// The checker judges it afterwards; on failure it is written out as JSON so a
// run can be inspected without running it again.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { FaultAction } from './schedule.js';

export type Outcome = 'ok' | 'fail' | 'unknown';
export type OpFunction = 'set' | 'get' | 'getAll';

/** One version of a key as a read returned it; getAll also says which entry wrote it. */
export interface Observed {
  value: unknown;
  device?: string;
  index?: number;
}

/** Where a write landed: the entry of the writer's log, and that entry's causal context. */
export interface WriteEntry {
  device: string;
  index: number;
  /** For every other device, how many of its entries the writer had applied (the entry's vector, less itself). */
  context: Record<string, number>;
}

export interface OperationError {
  code?: string;
  message: string;
}

export interface Operation {
  id: number;
  /** The session (one client device) that ran it; a session runs one operation at a time. */
  session: string;
  f: OpFunction;
  key: string;
  /** set: the value written, unique in the run. */
  value?: string;
  /** set: the ack level; reads: the read level. */
  level: string;
  invokeMs: number;
  completeMs?: number;
  /** Undefined while the operation is still running. */
  outcome?: Outcome;
  error?: OperationError;
  /** set: the entry that carries the write, once it reached the writer's own log. */
  entry?: WriteEntry;
  /** get: the winner alone (nothing when the key is unset); getAll: every sibling. */
  observed?: Observed[];
}

export interface FaultRecord {
  /** 'schedule': from the seeded schedule; 'heal': the heal-everything at the end of the fault phase. */
  origin: 'schedule' | 'heal';
  /** When it was planned, and when it was carried out, in ms from the start of the history. */
  plannedMs: number;
  atMs: number;
  doneMs?: number;
  action: FaultAction;
  error?: string;
}

/**
 * What a replica held right after a kill -9 and restart, before any client
 * could reach it again, against what it had acknowledged before the kill: for
 * each device, the largest own-log size the device had seen it acknowledge.
 */
export interface CrashProbe {
  replica: string;
  atMs: number;
  acknowledged: Record<string, number>;
  held?: Record<string, number>;
  error?: string;
}

export function errorOf(error: unknown): OperationError {
  const code = (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : String(error);
  return typeof code === 'string' ? { code, message } : { message };
}

/** The completion side of one invoked operation. */
export class Invocation {
  readonly op: Operation;
  readonly #now: () => number;

  constructor(op: Operation, now: () => number) {
    this.op = op;
    this.#now = now;
  }

  ok(details: Pick<Operation, 'entry' | 'observed'> = {}): void {
    this.#complete('ok', details);
  }

  /** The operation certainly had no effect. */
  fail(error: unknown): void {
    this.#complete('fail', { error: errorOf(error) });
  }

  /** The operation may or may not have taken effect (a write saved locally but not acknowledged). */
  unknown(error: unknown, details: Pick<Operation, 'entry'> = {}): void {
    this.#complete('unknown', { ...details, error: errorOf(error) });
  }

  #complete(outcome: Outcome, details: Partial<Operation>): void {
    if (this.op.outcome !== undefined) throw new Error(`operation ${this.op.id} completed twice`);
    Object.assign(this.op, details, { outcome, completeMs: this.#now() });
  }
}

export class History {
  readonly meta: Record<string, unknown>;
  readonly ops: Operation[] = [];
  readonly faults: FaultRecord[] = [];
  readonly probes: CrashProbe[] = [];
  readonly #t0 = performance.now();

  constructor(meta: Record<string, unknown> = {}) {
    this.meta = meta;
  }

  /** ms since the history began. */
  now(): number {
    return Math.round((performance.now() - this.#t0) * 10) / 10;
  }

  invoke(op: Pick<Operation, 'session' | 'f' | 'key' | 'level' | 'value'>): Invocation {
    const recorded: Operation = { id: this.ops.length, ...op, invokeMs: this.now() };
    this.ops.push(recorded);
    return new Invocation(recorded, () => this.now());
  }

  fault(record: FaultRecord): void {
    this.faults.push(record);
  }

  probe(record: CrashProbe): void {
    this.probes.push(record);
  }

  /** Operations by outcome and function, for a run's summary. */
  summary(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const op of this.ops) {
      const key = `${op.f} ${op.outcome ?? 'pending'}`;
      counts[key] = (counts[key] ?? 0) + 1;
    }
    return counts;
  }

  toJSON(): Record<string, unknown> {
    return { meta: this.meta, ops: this.ops, faults: this.faults, probes: this.probes };
  }

  /** Writes the history (and `extra`, e.g. the checker's report) as JSON; returns the file's path. */
  async dump(file: string, extra: Record<string, unknown> = {}): Promise<string> {
    await mkdir(path.dirname(file), { recursive: true });
    const replacer = (_key: string, value: unknown) =>
      value instanceof Uint8Array ? Buffer.from(value).toString('hex') : value;
    await writeFile(file, JSON.stringify({ ...this.toJSON(), ...extra }, replacer, 1));
    return file;
  }
}
