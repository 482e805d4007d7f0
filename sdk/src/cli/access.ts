/**
 * Between what the keystore stores of a vault and what the SDK opens it with:
 * the epoch-0 secret plus the secrets of later key epochs this device holds.
 */
import { compareBytes } from '@e2ekv/protocol';
import type { VaultAccess } from '../client.js';
import type { StoredVaultAccess } from '../keystore.js';

type EpochSecret = { epoch: number; secret: Uint8Array };

/** What the SDK opens the stored vault with. */
export function vaultAccessOf(stored: StoredVaultAccess): VaultAccess {
  return {
    vaultId: stored.vaultId,
    secret: stored.secret,
    ...(stored.epochs === undefined || stored.epochs.length === 0 ? {} : { epochs: stored.epochs }),
  };
}

/**
 * The later-epoch secrets of both lists, once each, in the keystore's order:
 * by epoch, then by secret bytes (two admins that start one epoch concurrently
 * give a member two secrets for it; SPEC.md 21.3).
 */
export function mergeEpochs(...lists: readonly (readonly EpochSecret[] | undefined)[]): EpochSecret[] {
  const all: EpochSecret[] = [];
  for (const list of lists) {
    for (const e of list ?? []) {
      if (e.epoch < 1) continue; // epoch 0 is the record's own secret
      if (!all.some((a) => a.epoch === e.epoch && compareBytes(a.secret, e.secret) === 0)) {
        all.push({ epoch: e.epoch, secret: e.secret.slice() });
      }
    }
  }
  return all.sort((a, b) => a.epoch - b.epoch || compareBytes(a.secret, b.secret));
}

/**
 * The stored record with the epoch secrets `access` holds that it lacks, or
 * undefined when `access` adds nothing (so that the keystore is re-sealed,
 * one scrypt derivation, only when a secret was gained).
 */
export function withGainedSecrets(stored: StoredVaultAccess, access: VaultAccess): StoredVaultAccess | undefined {
  if (access.vaultId !== stored.vaultId) return undefined;
  const merged = mergeEpochs(stored.epochs, access.epochs);
  if (merged.length === (stored.epochs?.length ?? 0)) return undefined;
  return { ...stored, epochs: merged };
}

/** A stored record made from what the SDK handed out (a join, a backup restore). */
export function storedAccessOf(name: string, access: VaultAccess, servers: readonly string[]): StoredVaultAccess {
  const epochs = mergeEpochs(access.epochs);
  return {
    name,
    vaultId: access.vaultId,
    secret: access.secret.slice(),
    servers: [...servers],
    ...(epochs.length === 0 ? {} : { epochs }),
  };
}

/** The highest key epoch the record holds a secret for. */
export function latestEpoch(access: { epochs?: readonly EpochSecret[] | undefined }): number {
  return Math.max(0, ...(access.epochs ?? []).map((e) => e.epoch));
}
