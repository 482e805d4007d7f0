/**
 * Who may do what in a vault, as this replica enforces it: roles derived by
 * replaying the vault's genesis and its membership entries in the order this
 * replica accepted them (SPEC.md sections 4 and 8.4). Clients replay the same
 * entries themselves and never trust this list.
 *
 * Provisional rules, until the sharing work fixes membership semantics (SPEC.md
 * open question 2):
 * - a change counts only if its writer is an admin at that point of the replay;
 * - `add` gives a device a role (or replaces its role), `set-role` changes the
 *   role of a current member, `remove` takes the role away;
 * - a removed device cannot be added again: it enrols a new device key. This
 *   stands in for the deterministic rule for concurrent changes ("removal
 *   wins"), which needs an order every replica agrees on; acceptance order is
 *   only this replica's.
 * Changes that do not count are kept in the log and skipped by every replay.
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

/** The roles of one vault at one point of its membership history. */
export class MembershipState {
  readonly #roles = new Map<string, Role>();
  readonly #removed = new Set<string>();
  // Entries already applied, by "device/index", so that an entry that reaches
  // the state both through a replay and through applyAccepted counts once.
  readonly #applied = new Set<string>();

  /** The state right after genesis: the creator is the only member, an admin. */
  constructor(creatorHex?: string) {
    if (creatorHex !== undefined) this.#roles.set(creatorHex, 'admin');
  }

  roleOf(deviceHex: string): Role | undefined {
    return this.#roles.get(deviceHex);
  }

  members(): Member[] {
    return [...this.#roles].map(([device, role]) => ({ device, role })).sort((a, b) => compare(a.device, b.device));
  }

  /**
   * Applies one accepted membership entry. Returns whether it changed anything
   * (false when its writer was not an admin at this point, or the change is one
   * the rules above skip).
   */
  apply(entry: MembershipEntry): boolean {
    const key = `${toHex(entry.device)}/${entry.index}`;
    if (this.#applied.has(key)) return false;
    this.#applied.add(key);
    return this.applyChange(toHex(entry.device), entry.change);
  }

  /** The rules of the module comment, for a change written by `writerHex`. */
  applyChange(writerHex: string, change: MembershipChange): boolean {
    if (this.#roles.get(writerHex) !== 'admin') return false;
    const member = toHex(change.member);
    switch (change.op) {
      case 'add':
        if (this.#removed.has(member)) return false;
        this.#roles.set(member, change.role);
        return true;
      case 'set-role':
        if (!this.#roles.has(member)) return false;
        this.#roles.set(member, change.role);
        return true;
      case 'remove':
        this.#removed.add(member);
        return this.#roles.delete(member);
    }
  }

  /** A copy to try changes on (the acceptor checks a batch entry by entry). */
  clone(): MembershipState {
    const copy = new MembershipState();
    for (const [device, role] of this.#roles) copy.#roles.set(device, role);
    for (const device of this.#removed) copy.#removed.add(device);
    for (const key of this.#applied) copy.#applied.add(key);
    return copy;
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
