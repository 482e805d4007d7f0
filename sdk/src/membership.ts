/**
 * Who may do what in a vault, replayed by the client from the genesis
 * (protocol/SPEC.md sections 4 and 21.5), so that a replica cannot make this
 * device believe writes of a device that is not a member, was removed, or
 * only reads.
 *
 * Every verdict is a function of the set of entries recorded, never of the
 * order they arrived in, so all devices that hold the same entries agree:
 *
 * - Removals are judged by their causal past alone: a removal counts when its
 *   writer is an admin in the state its past adds up to (changes applied in
 *   hybrid-logical-clock order, which extends causal order; a removal is for
 *   good). So whether a removal counts never depends on anything it did not
 *   see, which keeps the rules well-founded. A removal only ever takes access
 *   away.
 * - Removal wins: a counted removal of X cuts X's log at the number of X's
 *   entries the remover had seen. X's entries from there on are void, whatever
 *   causal context they claim.
 * - Everything else (data, adds, role changes, epoch records) is judged by
 *   its causal past with every void entry left out, wherever the removal that
 *   voids it sits. So a device that a removed admin added past its cut never
 *   becomes a member, and nothing it does counts.
 */
import { type HybridClock, type MembershipChange, type Role, toHex } from '@e2ekv/protocol';
import { compareClocks } from './clock.js';

/** A change as this view records it: a membership entry, or an epoch record (which changes no role). */
export type ViewChange = MembershipChange | { op: 'epoch'; epoch: number };

export interface RecordedChange {
  device: string;
  index: number;
  clock: HybridClock;
  /** The writer's causal context. */
  context: ReadonlyMap<string, number>;
  change: ViewChange;
}

/** A counted removal: the removed device's entries from `cut` on are void. */
interface Cut {
  device: string;
  index: number;
  member: string;
  cut: number;
}

export interface MemberRecord {
  device: string;
  role: Role;
  /** The X25519 key the member was added with (the genesis creator's for the creator). */
  boxKey: Uint8Array;
}

type Mode = 'past' | 'all';

/** Members by device (hex). */
type State = ReadonlyMap<string, { role: Role; boxKey: Uint8Array }>;

/** Memoized states per mode, at most (a bound, not a tuning: pasts that differ in membership are rare). */
const MAX_STATES = 256;

function byClock(a: RecordedChange, b: RecordedChange): number {
  return (
    compareClocks(a.clock, b.clock) || (a.device < b.device ? -1 : a.device > b.device ? 1 : 0) || a.index - b.index
  );
}

const keyOf = (device: string, index: number) => `${device}/${index}`;

export class MembershipView {
  readonly #creator: string;
  readonly #creatorBoxKey: Uint8Array;
  /** Every membership entry and epoch record recorded, in clock order. */
  readonly #changes: RecordedChange[] = [];
  readonly #recorded = new Set<string>();
  /** Counted removals (judged by their past alone), plus any known from a previous view. */
  readonly #cuts: Cut[] = [];
  /** Verdicts by mode and entry; cleared whenever something is recorded. */
  readonly #memo = { past: new Map<string, boolean>(), all: new Map<string, boolean>() };
  /**
   * States by mode and by which recorded changes (and, in mode 'past', which
   * removals) a past holds: every data entry written since the last membership
   * change has the same. Cleared with the verdicts. Never handed out to callers.
   */
  readonly #states = { past: new Map<string, State>(), all: new Map<string, State>() };

  /**
   * `known`: a view of the same vault whose removals are known from the start
   * (a replay after a removal voided applied entries), so that entries of a
   * removed device are judged void even before the removal is recorded again.
   */
  constructor(creatorHex: string, creatorBoxKey: Uint8Array, known?: MembershipView) {
    this.#creator = creatorHex;
    this.#creatorBoxKey = creatorBoxKey;
    if (known !== undefined) this.#cuts.push(...known.#cuts);
  }

  /**
   * Records a membership entry or epoch record; call in causal order (when
   * everything in its past was recorded). Returns whether it counts now (a
   * later removal can still void it: ask `counts` again then).
   */
  record(entry: RecordedChange): boolean {
    const key = keyOf(entry.device, entry.index);
    if (!this.#recorded.has(key)) {
      this.#recorded.add(key);
      const at = this.#changes.findIndex((c) => byClock(entry, c) < 0);
      this.#changes.splice(at === -1 ? this.#changes.length : at, 0, entry);
      this.#forget();
      if (entry.change.op === 'remove' && this.#counts(entry, 'past')) {
        const member = toHex(entry.change.member);
        const cut = member === entry.device ? entry.index : (entry.context.get(member) ?? 0);
        if (!this.#cuts.some((c) => c.device === entry.device && c.index === entry.index)) {
          this.#cuts.push({ device: entry.device, index: entry.index, member, cut });
          this.#forget();
        }
      }
    }
    return this.counts(entry.device, entry.index);
  }

  /** Drops every memoized verdict and state: what was recorded changed. */
  #forget(): void {
    this.#memo.past.clear();
    this.#memo.all.clear();
    this.#states.past.clear();
    this.#states.all.clear();
  }

  /** Whether the recorded change at (device, index) counts, by everything this view holds. */
  counts(device: string, index: number): boolean {
    const entry = this.#changes.find((c) => c.device === device && c.index === index);
    return entry !== undefined && this.#counts(entry, 'all');
  }

  /** Whether entry `index` of `device` is void by a removal this view holds (rule "removal wins"). */
  isVoid(device: string, index: number): boolean {
    return this.#cuts.some((c) => c.member === device && c.cut <= index);
  }

  /** The smallest cut of `device`'s log among the removals held, if any. */
  cutOf(device: string): number | undefined {
    let cut: number | undefined;
    for (const c of this.#cuts) if (c.member === device && (cut === undefined || c.cut < cut)) cut = c.cut;
    return cut;
  }

  /** The role of `device` in the state that the entries in `past` add up to (undefined: not a member). */
  roleAt(device: string, past: ReadonlyMap<string, number>): Role | undefined {
    return this.#stateAt(past, 'all').get(device)?.role;
  }

  /** The members in the state that `past` adds up to, sorted by device. */
  membersAt(past: ReadonlyMap<string, number>): MemberRecord[] {
    return [...this.#stateAt(past, 'all').entries()]
      .map(([device, m]) => ({ device, role: m.role, boxKey: m.boxKey }))
      .sort((a, b) => (a.device < b.device ? -1 : 1));
  }

  /** The role of `device` when it wrote entry `index` with causal context `context`. */
  writerRole(device: string, index: number, context: ReadonlyMap<string, number>): Role | undefined {
    return this.roleAt(device, pastOf(device, index, context));
  }

  /**
   * Whether `entry` counts. In mode 'past' (removals) it is judged by its own
   * past, void entries left out only where the removal that voids them is in
   * that past; in mode 'all', every void entry is left out.
   */
  #counts(entry: RecordedChange, mode: Mode): boolean {
    const key = keyOf(entry.device, entry.index);
    const memo = this.#memo[mode];
    const known = memo.get(key);
    if (known !== undefined) return known;
    let verdict: boolean;
    if (mode === 'all' && entry.change.op === 'remove') verdict = this.#counts(entry, 'past');
    else if (mode === 'all' && this.isVoid(entry.device, entry.index)) verdict = false;
    else
      verdict =
        this.#stateAt(pastOf(entry.device, entry.index, entry.context), mode).get(entry.device)?.role === 'admin';
    memo.set(key, verdict);
    return verdict;
  }

  /** The state `past` adds up to; the map is shared (memoized): callers must not change it. */
  #stateAt(past: ReadonlyMap<string, number>, mode: Mode): State {
    const inPast = (device: string, index: number) => (past.get(device) ?? 0) > index;
    // What the state depends on: which role changes are in this past, and in mode
    // 'past' which counted removals are (they decide what is void there).
    let key = '';
    for (const entry of this.#changes) {
      if (entry.change.op !== 'epoch') key += inPast(entry.device, entry.index) ? '1' : '0';
    }
    if (mode === 'past') {
      key += '/';
      for (const cut of this.#cuts) key += inPast(cut.device, cut.index) ? '1' : '0';
    }
    const states = this.#states[mode];
    const known = states.get(key);
    if (known !== undefined) return known;
    const members = this.#computeStateAt(inPast, mode);
    if (states.size >= MAX_STATES) states.clear();
    states.set(key, members);
    return members;
  }

  #computeStateAt(inPast: (device: string, index: number) => boolean, mode: Mode): State {
    const members = new Map<string, { role: Role; boxKey: Uint8Array }>([
      [this.#creator, { role: 'admin', boxKey: this.#creatorBoxKey }],
    ]);
    const removed = new Set<string>();
    // In mode 'past', a change is void only by a counted removal in this past.
    const voidInPast = (c: RecordedChange) =>
      this.#cuts.some((cut) => cut.member === c.device && cut.cut <= c.index && inPast(cut.device, cut.index));
    for (const entry of this.#changes) {
      const { change } = entry;
      if (change.op === 'epoch' || !inPast(entry.device, entry.index)) continue;
      if (change.op !== 'remove' && mode === 'past' && voidInPast(entry)) continue;
      if (!this.#counts(entry, change.op === 'remove' ? 'past' : mode)) continue;
      const member = toHex(change.member);
      if (removed.has(member)) continue;
      const current = members.get(member);
      if (change.op === 'remove') {
        removed.add(member);
        members.delete(member);
      } else if (change.op === 'add') {
        members.set(member, { role: change.role, boxKey: change.boxKey });
      } else if (current !== undefined) {
        members.set(member, { role: change.role, boxKey: current.boxKey }); // set-role changes members only
      }
    }
    return members;
  }
}

/** An entry's causal past: its context plus the writer's own earlier entries. */
export function pastOf(device: string, index: number, context: ReadonlyMap<string, number>): Map<string, number> {
  const past = new Map(context);
  past.set(device, index);
  return past;
}
