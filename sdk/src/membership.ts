/**
 * Who may write, replayed by the client from the genesis (SPEC.md sections 4
 * and 8.4), so that a replica cannot make this device believe writes of a
 * device that is not a member, was removed, or only reads.
 *
 * Every judgement depends only on an entry's causal past, never on the order
 * in which this device received entries, so all devices reach the same
 * verdicts: the causal context of an entry (plus the writer's own earlier
 * entries) names exactly the entries its writer had applied. Within a past,
 * counted changes apply in hybrid-logical-clock order, which extends causal
 * order (a device's clock exceeds every clock it observed), with device id
 * and index breaking ties.
 *
 * Provisional, like the replicas' rules (server/src/membership.ts), until the
 * sharing work fixes membership semantics (SPEC.md open question 2): concurrent
 * changes to one member apply in clock order, not "removal wins"; and a removed
 * device that pretends not to have seen its removal (an older causal context)
 * is judged by that context. Key rotation on removal is what keeps such a
 * device from reading later writes.
 */
import { type HybridClock, type MembershipChange, type Role, toHex } from '@e2ekv/protocol';
import { compareClocks } from './clock.js';

export interface RecordedChange {
  device: string;
  index: number;
  clock: HybridClock;
  /** The writer's causal context. */
  context: ReadonlyMap<string, number>;
  change: MembershipChange;
}

interface Counted {
  device: string;
  index: number;
  clock: HybridClock;
  change: MembershipChange;
}

export class MembershipView {
  readonly #creator: string;
  /** Changes whose writer was an admin in their own past, in the order recorded. */
  readonly #counted: Counted[] = [];
  /** Changes that did not count, by "device/index". */
  readonly #ignored = new Set<string>();

  constructor(creatorHex: string) {
    this.#creator = creatorHex;
  }

  /**
   * Records a membership entry; call in causal order (when everything in its
   * past was recorded). Returns whether it counts: its writer was an admin.
   */
  record(entry: RecordedChange): boolean {
    const counts = this.roleAt(entry.device, pastOf(entry.device, entry.index, entry.context)) === 'admin';
    if (counts) {
      this.#counted.push({ device: entry.device, index: entry.index, clock: entry.clock, change: entry.change });
    } else {
      this.#ignored.add(`${entry.device}/${entry.index}`);
    }
    return counts;
  }

  /** The role of `device` in the state that the entries in `past` add up to (undefined: not a member). */
  roleAt(device: string, past: ReadonlyMap<string, number>): Role | undefined {
    const inPast = this.#counted
      .filter((c) => (past.get(c.device) ?? 0) > c.index)
      .sort(
        (a, b) =>
          compareClocks(a.clock, b.clock) ||
          (a.device < b.device ? -1 : a.device > b.device ? 1 : 0) ||
          a.index - b.index,
      );
    let role: Role | undefined = device === this.#creator ? 'admin' : undefined;
    for (const { change } of inPast) {
      if (toHex(change.member) !== device) continue;
      if (change.op === 'remove') role = undefined;
      else if (change.op === 'add') role = change.role;
      else if (role !== undefined) role = change.role; // set-role changes members only
    }
    return role;
  }

  /** The role of `device` when it wrote entry `index` with causal context `context`. */
  writerRole(device: string, index: number, context: ReadonlyMap<string, number>): Role | undefined {
    return this.roleAt(device, pastOf(device, index, context));
  }
}

/** An entry's causal past: its context plus the writer's own earlier entries. */
export function pastOf(device: string, index: number, context: ReadonlyMap<string, number>): Map<string, number> {
  const past = new Map(context);
  past.set(device, index);
  return past;
}
