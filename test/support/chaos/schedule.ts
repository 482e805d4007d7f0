// The seeded fault schedule of a chaos run: fault windows (a kill and its
// restart, a pause and its resume, a partition and its heal, a link impaired
// and restored) laid over time, as a stream of timed events in time order. A
// pure function of the seed and options, so a failing seed plans the same
// faults again; the stream is endless, and the run takes what it has time for.
import type { LinkFaults } from './link-proxy.js';
import type { Random } from './random.js';

export type FaultAction =
  | { kind: 'kill'; replica: number }
  | { kind: 'restart'; replica: number; samePort: boolean }
  | { kind: 'pause'; replica: number }
  | { kind: 'resume'; replica: number }
  | { kind: 'partition'; groups: string[][]; cut: 'refuse' | 'blackhole' }
  | { kind: 'heal' }
  | { kind: 'impair'; from: string; to: string; faults: Omit<LinkFaults, 'cut'> }
  | { kind: 'restore'; from: string; to: string };

export interface FaultEvent {
  /** When, in ms from the start of the run. */
  atMs: number;
  action: FaultAction;
}

export type WindowKind = 'kill' | 'pause' | 'partition' | 'impair';

export interface ScheduleOptions {
  replicas: number;
  /** Client node names; with the replica names ("r0", ...) they make up partitions. */
  clients: readonly string[];
  /** Whether replicas have links to each other (their peers), which partitions and impairments reach. */
  peers: boolean;
  /** The first window starts here (default 300 ms). */
  startMs?: number;
  /** Time between the starts of consecutive windows (default 300..1500 ms). */
  gapMs?: readonly [number, number];
  /** How long a kill, pause or partition lasts (default 400..2500 ms). */
  faultMs?: readonly [number, number];
  /** How long a link stays impaired (default 1000..5000 ms). */
  impairMs?: readonly [number, number];
  /** Replicas killed or paused at one time, at most (default 1). */
  maxDown?: number;
  /**
   * Extra time a killed replica counts as down after its restart is due: a
   * restart takes a process start-up, and maxDown should hold in practice.
   */
  restartAllowanceMs?: number;
  weights?: Partial<Record<WindowKind, number>>;
  /** Kinds the first windows must have, in order (default kill, then partition). */
  first?: readonly WindowKind[];
}

interface Window {
  kind: WindowKind;
  start: number;
  /** When the window counts as over for the limits (a kill: restart plus allowance). */
  busyUntil: number;
  replica?: number;
  link?: string;
}

const DEFAULT_WEIGHTS: Record<WindowKind, number> = { kill: 3, pause: 2, partition: 3, impair: 2 };

/** The events of the schedule, in time order, forever. */
export function* faultSchedule(random: Random, options: ScheduleOptions): Generator<FaultEvent, never> {
  const gap = options.gapMs ?? [300, 1500];
  const faultMs = options.faultMs ?? [400, 2500];
  const impairMs = options.impairMs ?? [1000, 5000];
  const maxDown = options.maxDown ?? 1;
  const allowance = options.restartAllowanceMs ?? 3000;
  const weights = { ...DEFAULT_WEIGHTS, ...options.weights };
  // With every weight zero no window would ever open, and the loop below would never yield.
  if (Object.values(weights).every((w) => !(w > 0))) throw new RangeError('at least one fault weight must be positive');
  const first = [...(options.first ?? ['kill', 'partition'])];
  const replicas = Array.from({ length: options.replicas }, (_, i) => i);
  const replicaNames = replicas.map((i) => `r${i}`);
  const nodes = [...options.clients, ...replicaNames];
  const links: [string, string][] = [];
  for (const from of [...options.clients, ...(options.peers ? replicaNames : [])]) {
    for (const to of replicaNames) if (from !== to) links.push([from, to]);
  }

  const windows: Window[] = [];
  // Pending events, kept sorted by time (ties keep insertion order: a window's end after its start).
  const pending: FaultEvent[] = [];
  const schedule = (event: FaultEvent) => {
    let i = pending.length;
    while (i > 0 && pending[i - 1]!.atMs > event.atMs) i--;
    pending.splice(i, 0, event);
  };
  let next = options.startMs ?? 300;

  const openWindow = (start: number) => {
    const active = windows.filter((w) => w.busyUntil > start);
    const down = new Set(active.filter((w) => w.kind === 'kill' || w.kind === 'pause').map((w) => w.replica));
    const impaired = new Set(active.filter((w) => w.kind === 'impair').map((w) => w.link));
    const allowed: Record<WindowKind, boolean> = {
      kill: down.size < maxDown,
      pause: down.size < maxDown,
      partition: !active.some((w) => w.kind === 'partition'),
      impair: links.some(([from, to]) => !impaired.has(`${from}->${to}`)),
    };
    const forced = first[0];
    let kind: WindowKind;
    if (forced !== undefined) {
      // A forced kind waits for its turn rather than being replaced.
      if (!allowed[forced]) return;
      first.shift();
      kind = forced;
    } else {
      const choices = Object.fromEntries(
        (Object.keys(weights) as WindowKind[]).map((k) => [k, allowed[k] ? weights[k] : 0]),
      ) as Record<WindowKind, number>;
      if (Object.values(choices).every((w) => w === 0)) return;
      kind = random.weighted(choices);
    }
    const length = Math.round(random.range(...(kind === 'impair' ? impairMs : faultMs)));
    const end = start + length;
    switch (kind) {
      case 'kill': {
        const replica = random.pick(replicas.filter((r) => !down.has(r)));
        windows.push({ kind, start, busyUntil: end + allowance, replica });
        schedule({ atMs: start, action: { kind: 'kill', replica } });
        schedule({ atMs: end, action: { kind: 'restart', replica, samePort: random.chance(0.7) } });
        return;
      }
      case 'pause': {
        const replica = random.pick(replicas.filter((r) => !down.has(r)));
        windows.push({ kind, start, busyUntil: end, replica });
        schedule({ atMs: start, action: { kind: 'pause', replica } });
        schedule({ atMs: end, action: { kind: 'resume', replica } });
        return;
      }
      case 'partition': {
        windows.push({ kind, start, busyUntil: end });
        const cut = random.chance(0.7) ? 'refuse' : 'blackhole';
        schedule({ atMs: start, action: { kind: 'partition', groups: partitionGroups(random, nodes, options), cut } });
        schedule({ atMs: end, action: { kind: 'heal' } });
        return;
      }
      case 'impair': {
        const [from, to] = random.pick(links.filter(([f, t]) => !impaired.has(`${f}->${t}`)));
        windows.push({ kind, start, busyUntil: end, link: `${from}->${to}` });
        schedule({ atMs: start, action: { kind: 'impair', from, to, faults: linkFaults(random) } });
        schedule({ atMs: end, action: { kind: 'restore', from, to } });
        return;
      }
    }
  };

  for (;;) {
    // Open windows until the next one would start after the earliest pending event: then that event is final.
    while (pending.length === 0 || next <= pending[0]!.atMs) {
      openWindow(next);
      next += Math.round(random.range(gap[0], gap[1]));
    }
    yield pending.shift()!;
  }
}

/** The first `count` events of a schedule (for printing a plan, and for tests). */
export function firstEvents(random: Random, options: ScheduleOptions, count: number): FaultEvent[] {
  const events: FaultEvent[] = [];
  for (const event of faultSchedule(random, options)) {
    events.push(event);
    if (events.length >= count) break;
  }
  return events;
}

/**
 * Groups of a partition: a random split of all nodes in two, one replica cut
 * off from everything, or one client cut off from every replica.
 */
function partitionGroups(random: Random, nodes: readonly string[], options: ScheduleOptions): string[][] {
  const replicaNames = Array.from({ length: options.replicas }, (_, i) => `r${i}`);
  const shape = random.weighted({ split: 3, replica: 2, client: options.clients.length > 0 ? 1 : 0 });
  if (shape === 'replica') {
    const alone = random.pick(replicaNames);
    return [[alone], nodes.filter((n) => n !== alone)];
  }
  if (shape === 'client') {
    const alone = random.pick(options.clients);
    return [[alone], nodes.filter((n) => n !== alone)];
  }
  const shuffled = random.shuffle(nodes);
  const at = random.int(1, shuffled.length - 1);
  return [shuffled.slice(0, at), shuffled.slice(at)];
}

/** Delay, duplication or reordering, or several at once. */
function linkFaults(random: Random): Omit<LinkFaults, 'cut'> {
  const faults: Omit<LinkFaults, 'cut'> = {};
  while (Object.keys(faults).length === 0) {
    if (random.chance(0.5)) faults.delay = { ms: random.int(5, 150), jitterMs: random.int(0, 100) };
    if (random.chance(0.4)) faults.duplicate = { probability: random.range(0.3, 1), lagMs: random.int(5, 200) };
    if (random.chance(0.4)) faults.reorder = { probability: random.range(0.3, 1), maxHoldMs: random.int(50, 400) };
  }
  return faults;
}
