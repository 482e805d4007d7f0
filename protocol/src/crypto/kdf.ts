/**
 * Key separation (SPEC.md, "Key derivation"): every subkey comes from HKDF-SHA-256
 * with its own label, so no key ever serves two purposes.
 */
import { HKDF } from '@stablelib/hkdf';
import { SHA256 } from '@stablelib/sha256';
import { ByteWriter, utf8 } from '../bytes.js';
import { E2ekvError } from '../errors.js';

export const EPOCH_SECRET_LENGTH = 32;
export const VAULT_ID_LENGTH = 32;

/** HKDF info labels. Changing one changes every key derived with it. */
export const KDF_LABELS = {
  valueKey: 'e2ekv/v1 value-encryption',
  blindingKey: 'e2ekv/v1 key-name-blinding',
  epochCheck: 'e2ekv/v1 epoch-check',
} as const;

function hkdf32(secret: Uint8Array, vaultId: Uint8Array, info: Uint8Array): Uint8Array {
  if (secret.length !== EPOCH_SECRET_LENGTH) {
    throw new E2ekvError('INVALID_ARGUMENT', `an epoch secret is ${EPOCH_SECRET_LENGTH} bytes, got ${secret.length}`);
  }
  if (vaultId.length !== VAULT_ID_LENGTH) {
    throw new E2ekvError('INVALID_ARGUMENT', `a vault id is ${VAULT_ID_LENGTH} bytes, got ${vaultId.length}`);
  }
  return hkdfSha256(secret, vaultId, info);
}

/** HKDF-SHA-256 (RFC 5869, extract and expand) with 32 bytes of output. */
export function hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array): Uint8Array {
  const kdf = new HKDF(SHA256, ikm, salt, info);
  const out = kdf.expand(32);
  kdf.clean();
  return out;
}

function labelWithEpoch(label: string, epoch: number): Uint8Array {
  return new ByteWriter().bytes(utf8(label)).u32(epoch).finish();
}

/** K_enc for one key epoch: seals values and entry metadata. */
export function deriveValueKey(epochSecret: Uint8Array, vaultId: Uint8Array, epoch: number): Uint8Array {
  return hkdf32(epochSecret, vaultId, labelWithEpoch(KDF_LABELS.valueKey, epoch));
}

/**
 * K_blind, from the secret of epoch 0 only, so a key name keeps its blinded id
 * across key rotations (SPEC.md explains what this costs after a removal).
 */
export function deriveBlindingKey(firstEpochSecret: Uint8Array, vaultId: Uint8Array): Uint8Array {
  return hkdf32(firstEpochSecret, vaultId, utf8(KDF_LABELS.blindingKey));
}

/**
 * A public value that commits to an epoch secret, so a member who unwraps a
 * secret can check it is the one everybody else uses. Reveals nothing useful:
 * HKDF output under its own label.
 */
export function deriveEpochCheck(epochSecret: Uint8Array, vaultId: Uint8Array, epoch: number): Uint8Array {
  return hkdf32(epochSecret, vaultId, labelWithEpoch(KDF_LABELS.epochCheck, epoch));
}
