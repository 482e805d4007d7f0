/**
 * The epoch secrets one device holds for one vault (protocol/SPEC.md sections 5
 * and 21.3), and the keys derived from them.
 *
 * Secrets come from the vault access (epoch 0, and the epochs an invitation
 * carried) and from epoch records wrapped for this device. Readers try every
 * secret they hold for an entry's epoch, because two admins may start the same
 * epoch concurrently; writers use the highest epoch whose record counts, and
 * within it the record first in (clock, device, index) order, so that all
 * members converge on the same key.
 */
import { E2ekvError, KeyNameBlinder, bytesEqual, deriveBlindingKey, deriveValueKey } from '@e2ekv/protocol';

interface HeldSecret {
  secret: Uint8Array;
  key: Uint8Array;
  /**
   * Given by the access (an invitation, a keystore) or by a record that
   * counts. Other secrets (unwrapped from a record before it was judged, or
   * from one that does not count) only ever decrypt: never written with,
   * numbered from or handed on.
   */
  trusted: boolean;
  /**
   * Where a counted epoch record started it, as a sort position; undefined for
   * a secret given by the access alone (epoch 0, or an invitation).
   */
  rank: readonly [bigint, number, string, number] | undefined;
}

function compareRank(a: HeldSecret['rank'], b: HeldSecret['rank']): number {
  if (a === undefined || b === undefined) return a === b ? 0 : a === undefined ? 1 : -1;
  if (a[0] !== b[0]) return a[0] < b[0] ? -1 : 1;
  if (a[1] !== b[1]) return a[1] - b[1];
  if (a[2] !== b[2]) return a[2] < b[2] ? -1 : 1;
  return a[3] - b[3];
}

export class EpochKeyRing {
  readonly vaultId: Uint8Array;
  readonly blinder: KeyNameBlinder;
  readonly #held = new Map<number, HeldSecret[]>();
  /** Epochs whose record counts for this device, so a writer may use them. */
  readonly #started = new Set<number>([0]);

  constructor(
    vaultId: Uint8Array,
    firstSecret: Uint8Array,
    later: readonly { epoch: number; secret: Uint8Array }[] = [],
  ) {
    this.vaultId = vaultId;
    this.blinder = new KeyNameBlinder(deriveBlindingKey(firstSecret, vaultId));
    this.#add(0, firstSecret, true);
    for (const { epoch, secret } of later) {
      // An invitation's epochs were started by records the invitee cannot unwrap: an admin vouched for them.
      this.#add(epoch, secret, true);
      this.#started.add(epoch);
    }
  }

  /** Adds a secret unwrapped from a record not judged yet: it decrypts, nothing more. */
  add(epoch: number, secret: Uint8Array): void {
    this.#add(epoch, secret, false);
  }

  /** Adds the secret of a record that counts, at its place in (clock, device, index) order, and starts its epoch. */
  addCounted(epoch: number, secret: Uint8Array, rank: NonNullable<HeldSecret['rank']>): void {
    this.#add(epoch, secret, true, rank);
    this.#started.add(epoch);
  }

  #add(epoch: number, secret: Uint8Array, trusted: boolean, rank?: HeldSecret['rank']): void {
    if (!Number.isInteger(epoch) || epoch < 0 || epoch > 0xffffffff) {
      throw new E2ekvError('INVALID_ARGUMENT', `an epoch is a u32, got ${epoch}`);
    }
    const list = this.#held.get(epoch) ?? [];
    const known = list.find((h) => bytesEqual(h.secret, secret));
    if (known !== undefined) {
      if (rank !== undefined && compareRank(rank, known.rank) < 0) known.rank = rank;
      known.trusted ||= trusted;
    } else {
      list.push({ secret: secret.slice(), key: deriveValueKey(secret, this.vaultId, epoch), rank, trusted });
      this.#held.set(epoch, list);
    }
    // Trusted first, then by rank: the writers' choice leads.
    list.sort((a, b) => Number(b.trusted) - Number(a.trusted) || compareRank(a.rank, b.rank));
  }

  /** Every K_enc held for `epoch`, the writers' choice first. */
  keysFor(epoch: number): Uint8Array[] {
    return (this.#held.get(epoch) ?? []).map((h) => h.key);
  }

  #trusted(epoch: number): HeldSecret | undefined {
    const first = this.#held.get(epoch)?.[0];
    return first?.trusted === true ? first : undefined;
  }

  /** The epoch this device writes in, and its key: the highest started epoch it holds a trusted secret for. */
  writing(): { epoch: number; key: Uint8Array } {
    let best = 0;
    for (const epoch of this.#started) if (epoch > best && this.#trusted(epoch) !== undefined) best = epoch;
    return { epoch: best, key: this.#trusted(best)!.key };
  }

  /** The highest epoch started by a record that counts (or an access): a new epoch takes the next number. */
  highestStartedEpoch(): number {
    return Math.max(...this.#started);
  }

  /** One trusted secret per epoch (the writers' choice), ascending: what invitations and backups carry. */
  secrets(): { epoch: number; secret: Uint8Array }[] {
    return [...this.#held.keys()]
      .sort((a, b) => a - b)
      .flatMap((epoch) => {
        const held = this.#trusted(epoch);
        return held === undefined ? [] : [{ epoch, secret: held.secret.slice() }];
      });
  }
}
