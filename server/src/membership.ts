/**
 * Who may do what in a vault, as this replica enforces it: roles derived by
 * replaying the vault's genesis and its membership entries in the order this
 * replica accepted them. Clients replay the same entries themselves, by the
 * causal past of each entry (SPEC.md section 21.5), and never trust this list.
 *
 * The rules of SPEC.md 21.5, as far as a replica can apply them in acceptance
 * order (it cannot see the causal context of data entries, and must decide on
 * each append when it arrives):
 * - rule 1: an entry counts when its writer is an admin in the state this
 *   replica had when it accepted the entry (its stand-in for the entry's past).
 *   That verdict is fixed when the entry is accepted (rule 4: a later removal
 *   does not reach entries of other devices that relied on the removed one);
 * - rule 2: `add` gives a device a role (or replaces the role of a member),
 *   `set-role` changes the role of a current member and is ignored otherwise,
 *   `remove` takes the device out for good: later `add`s of it are ignored;
 * - rule 3: a counted removal of X fixes X's cut (R's context size for X, or
 *   R's own index if X removed itself; the smallest cut wins). X's membership
 *   entries at or above the cut that this replica accepted before the removal
 *   (concurrent with it) are void from then on: their changes are undone by
 *   replaying the counted entries without them. Removals are never void.
 * Epoch records (entry type 3) need an admin, like membership entries, but
 * change no role (the acceptor checks them; they are not replayed here).
 *
 * A removed device is refused for reads from the moment its removal is
 * applied, and for appends of any entry at or above its cut. Its entries below
 * the cut are in the removal's own causal past (its writer had verified them),
 * so a replica that has not received them yet still takes them, judged by the
 * role the device had when it was removed: refusing them would make this
 * replica withhold what the removal depends on (clients would see WITHHELD).
 * Entries that do not count are kept in the log and skipped by every replay.
 *
 * TODO(sharing): membership entries and epoch records carry their causal
 * context in the clear, so a replica could judge them by their own past
 * exactly as clients do. Acceptance order is simpler, but it can count an entry
 * that clients do not (a writer that became an admin through an entry outside
 * the context it signed).
 */
import { E2ekvError, decodeEntry, isE2ekvError, toHex, verifyGenesis } from '@e2ekv/protocol';
import type { MembershipChange, MembershipEntry, Role } from '@e2ekv/protocol';
import type { StorageAdapter } from './storage/adapter.js';

export type { Role } from '@e2ekv/protocol';

export interface Member {
  /** Ed25519 public key, lowercase hex. */
  device: string;
  role: Role;
}

/** A membership entry that counted when this replica accepted it. */
interface CountedChange {
  writer: string;
  index: bigint;
  change: MembershipChange;
}

/** The roles of one vault at one point of its membership history. */
export class MembershipState {
  readonly #creator: string | undefined;
  #roles = new Map<string, Role>();
  #removed = new Set<string>();
  // Entries already applied, by "device/index", so that an entry that reaches
  // the state both through a replay and through applyAccepted counts once.
  readonly #applied = new Set<string>();
  // Every entry that counted, in acceptance order: a removal that voids some of
  // them replays the rest.
  readonly #counted: CountedChange[] = [];
  // Removed device -> the smallest cut of a counted removal of it (rule 3).
  readonly #cuts = new Map<string, bigint>();
  // Removed device -> its role when its first counted removal was applied.
  #roleAtRemoval = new Map<string, Role>();

  /** The state right after genesis: the creator is the only member, an admin. */
  constructor(creatorHex?: string) {
    this.#creator = creatorHex;
    if (creatorHex !== undefined) this.#roles.set(creatorHex, 'admin');
  }

  /** The device's current role: what reads are judged by. */
  roleOf(deviceHex: string): Role | undefined {
    return this.#roles.get(deviceHex);
  }

  /**
   * The role the device writes its entry `index` with: its current role, or
   * for a removed device, the role it had when removed if `index` is below its
   * cut (see the module comment), else none.
   */
  roleAt(deviceHex: string, index: bigint): Role | undefined {
    const role = this.#roles.get(deviceHex);
    if (role !== undefined) return role;
    const cut = this.#cuts.get(deviceHex);
    return cut !== undefined && index < cut ? this.#roleAtRemoval.get(deviceHex) : undefined;
  }

  /** Whether a counted removal took the device out (it never comes back). */
  isRemoved(deviceHex: string): boolean {
    return this.#removed.has(deviceHex);
  }

  members(): Member[] {
    return [...this.#roles].map(([device, role]) => ({ device, role })).sort((a, b) => compare(a.device, b.device));
  }

  /**
   * Applies one accepted membership entry, by the rules of the module comment.
   * Returns whether it counted (false when its writer was not an admin at this
   * point, or it was applied before).
   */
  apply(entry: MembershipEntry): boolean {
    const writer = toHex(entry.device);
    const key = `${writer}/${entry.index}`;
    if (this.#applied.has(key)) return false;
    this.#applied.add(key);
    if (this.roleAt(writer, entry.index) !== 'admin') return false;
    const counted: CountedChange = { writer, index: entry.index, change: entry.change };
    this.#counted.push(counted);
    if (entry.change.op === 'remove') {
      const member = toHex(entry.change.member);
      const cut = member === writer ? entry.index : (entry.context.find((c) => toHex(c.device) === member)?.size ?? 0n);
      const previous = this.#cuts.get(member);
      if (previous === undefined || cut < previous) {
        this.#cuts.set(member, cut);
        if (this.#counted.some((c) => this.#isVoid(c))) {
          this.#rebuild();
          return true;
        }
      }
    }
    this.#change(counted);
    return true;
  }

  /** A copy to try changes on (the acceptor checks a batch entry by entry). */
  clone(): MembershipState {
    const copy = new MembershipState(this.#creator);
    copy.#roles = new Map(this.#roles);
    copy.#removed = new Set(this.#removed);
    for (const key of this.#applied) copy.#applied.add(key);
    copy.#counted.push(...this.#counted);
    for (const [device, cut] of this.#cuts) copy.#cuts.set(device, cut);
    copy.#roleAtRemoval = new Map(this.#roleAtRemoval);
    return copy;
  }

  // Rule 3: a non-removal entry of a removed device at or above its cut.
  #isVoid(c: CountedChange): boolean {
    const cut = this.#cuts.get(c.writer);
    return c.change.op !== 'remove' && cut !== undefined && c.index >= cut;
  }

  // The roles from genesis and the counted entries that are not void, in acceptance order.
  #rebuild(): void {
    this.#roles = new Map(this.#creator === undefined ? [] : [[this.#creator, 'admin' as const]]);
    this.#removed = new Set();
    this.#roleAtRemoval = new Map();
    for (const c of this.#counted) if (!this.#isVoid(c)) this.#change(c);
  }

  // Rule 2 for a change that counts.
  #change({ change }: CountedChange): void {
    const member = toHex(change.member);
    switch (change.op) {
      case 'add':
        if (!this.#removed.has(member)) this.#roles.set(member, change.role);
        return;
      case 'set-role':
        if (this.#roles.has(member)) this.#roles.set(member, change.role);
        return;
      case 'remove': {
        const role = this.#roles.get(member);
        if (role !== undefined && !this.#roleAtRemoval.has(member)) this.#roleAtRemoval.set(member, role);
        this.#removed.add(member);
        this.#roles.delete(member);
        return;
      }
    }
  }
}

/**
 * Per-vault membership states, built from storage on first use and kept up to
 * date by the acceptor. The acceptor must call applyAccepted for a vault's
 * batches in the order it stored them (it holds a per-vault lock for batches
 * with membership entries); a replay racing with it is harmless, because an
 * entry applied twice counts once.
 */
export class MembershipCache {
  readonly #storage: StorageAdapter;
  readonly #states = new Map<string, Promise<MembershipState | undefined>>();

  constructor(storage: StorageAdapter) {
    this.#storage = storage;
  }

  /** The device's role in the vault, or undefined if it is not a member (or the vault does not exist). */
  async roleOf(vaultId: string, deviceHex: string): Promise<Role | undefined> {
    return (await this.state(vaultId))?.roleOf(deviceHex);
  }

  /** The members and their roles, sorted by device; NOT_FOUND if the vault does not exist. */
  async members(vaultId: string): Promise<Member[]> {
    const state = await this.state(vaultId);
    if (state === undefined) throw new E2ekvError('NOT_FOUND', `this server holds no vault ${vaultId}`);
    return state.members();
  }

  /**
   * The vault's current state, shared: do not change it (clone it to try
   * changes). Undefined if the vault does not exist.
   */
  async state(vaultId: string): Promise<MembershipState | undefined> {
    let state = this.#states.get(vaultId);
    if (state === undefined) {
      state = this.#replay(vaultId);
      this.#states.set(vaultId, state);
      // A failed or empty replay is not remembered: the vault may appear, or storage may recover.
      state.then(
        (s) => {
          if (s === undefined && this.#states.get(vaultId) === state) this.#states.delete(vaultId);
        },
        () => {
          if (this.#states.get(vaultId) === state) this.#states.delete(vaultId);
        },
      );
    }
    return state;
  }

  /** Records membership entries that were just stored, in acceptance order. */
  async applyAccepted(vaultId: string, entries: readonly MembershipEntry[]): Promise<void> {
    const pending = this.#states.get(vaultId);
    if (pending === undefined) return; // the next use replays from storage, these entries included
    let state: MembershipState | undefined;
    try {
      state = await pending;
    } catch {
      return;
    }
    for (const entry of entries) state?.apply(entry);
  }

  /** Forgets the vault's state; the next use replays it from storage. */
  invalidate(vaultId: string): void {
    this.#states.delete(vaultId);
  }

  async #replay(vaultId: string): Promise<MembershipState | undefined> {
    const genesis = await this.#storage.getGenesis(vaultId);
    if (genesis === undefined) return undefined;
    const creator = (await verifyGenesis(genesis).catch((cause: unknown) => corrupt('the stored genesis', cause)))
      .genesis.creator;
    const state = new MembershipState(toHex(creator));
    for (const record of await this.#storage.listMembership(vaultId)) {
      let entry;
      try {
        entry = decodeEntry(record.bytes);
      } catch (cause) {
        return corrupt(`stored membership entry ${record.device}/${record.index}`, cause);
      }
      if (
        entry.type !== 'membership' ||
        toHex(entry.device) !== record.device ||
        entry.index !== BigInt(record.index)
      ) {
        return corrupt(`stored membership entry ${record.device}/${record.index}`, undefined);
      }
      state.apply(entry);
    }
    return state;
  }
}

// Storage holds only what the acceptor verified, so a record that fails now
// means the storage was changed behind the server's back.
function corrupt(what: string, cause: unknown): never {
  const reason = isE2ekvError(cause) ? `: ${cause.message}` : '';
  throw new E2ekvError('INTERNAL', `${what} does not verify${reason}; the storage was altered or is corrupt`, {
    cause,
  });
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
