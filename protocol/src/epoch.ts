/**
 * Epoch records (SPEC.md section 21.3): an admin starts key epoch e by wrapping
 * a fresh S_e for every member with one ephemeral X25519 key, and publishes
 * check(e) so that each member can confirm it unwrapped the secret everybody
 * else uses.
 *
 * Sealing and opening only: which records count (the writer an admin, the
 * record not void) is the membership rules' question (SPEC.md 21.5).
 */
import { ByteWriter, bytesEqual, compareBytes, constantTimeEqual, toHex, wipe } from './bytes.js';
import { EPOCH_SECRET_LENGTH, deriveEpochCheck } from './crypto/kdf.js';
import {
  newEphemeralKeyPair,
  unwrapSecret,
  wrapSecret,
  wrapSecretWithNonce,
  x25519PublicKey,
  type WrapContext,
  type X25519KeyPair,
} from './crypto/wrap.js';
import type { CausalContext, EpochEntry, EpochRecipient, HybridClock } from './entry.js';
import { E2ekvError } from './errors.js';
import type { PublicDeviceKeys } from './identity-string.js';
import { LIMITS } from './limits.js';

/** The HKDF label of epoch-secret wraps (SPEC.md 21.3). */
export const EPOCH_WRAP_LABEL = 'e2ekv/v1 epoch-wrap';

export interface SealEpochRecordOptions {
  vaultId: Uint8Array;
  /** The writing admin's Ed25519 key. */
  device: Uint8Array;
  /** Where the record goes in the writer's log. */
  index: bigint;
  /** The epoch it starts, at least 1. */
  epoch: number;
  clock: HybridClock;
  context: CausalContext;
  /** S_e: 32 random bytes (randomBytes(EPOCH_SECRET_LENGTH)). */
  secret: Uint8Array;
  /** Every current member, the writer included, with the box key it was added with. */
  recipients: readonly PublicDeviceKeys[];
}

/** The wrap context of an epoch record: extra = u32(e). */
export function epochWrapContext(vaultId: Uint8Array, epoch: number): WrapContext {
  return { vaultId, label: EPOCH_WRAP_LABEL, extra: new ByteWriter().u32(epoch).finish() };
}

/**
 * Builds the epoch record that gives `secret` to `recipients` (sorted here by
 * member key). A fresh ephemeral key is made for it and wiped afterwards.
 */
export function sealEpochRecord(options: SealEpochRecordOptions): EpochEntry {
  const ephemeral = newEphemeralKeyPair();
  try {
    return buildEpochRecord(options, ephemeral, (plaintext, boxKey, context) =>
      wrapSecret(plaintext, boxKey, ephemeral, context),
    );
  } finally {
    wipe(ephemeral.secretKey);
  }
}

/**
 * sealEpochRecord with a given ephemeral secret and per-recipient nonces (by
 * position after sorting). Only for reproducible test vectors. Not exported
 * from the package.
 */
export function sealEpochRecordDeterministic(
  options: SealEpochRecordOptions,
  ephemeralSecret: Uint8Array,
  nonce: (position: number) => Uint8Array,
): EpochEntry {
  const ephemeral: X25519KeyPair = { publicKey: x25519PublicKey(ephemeralSecret), secretKey: ephemeralSecret };
  let position = 0;
  return buildEpochRecord(options, ephemeral, (plaintext, boxKey, context) =>
    wrapSecretWithNonce(plaintext, boxKey, ephemeral, context, nonce(position++)),
  );
}

function buildEpochRecord(
  options: SealEpochRecordOptions,
  ephemeral: X25519KeyPair,
  wrap: (plaintext: Uint8Array, boxKey: Uint8Array, context: WrapContext) => Uint8Array,
): EpochEntry {
  const { vaultId, epoch, secret } = options;
  if (!Number.isInteger(epoch) || epoch < 1 || epoch > 0xffffffff) {
    throw new E2ekvError('INVALID_ARGUMENT', `an epoch record starts an epoch from 1 to 2^32 - 1, got ${epoch}`);
  }
  if (secret.length !== EPOCH_SECRET_LENGTH) {
    throw new E2ekvError('INVALID_ARGUMENT', `an epoch secret is ${EPOCH_SECRET_LENGTH} bytes, got ${secret.length}`);
  }
  if (options.recipients.length === 0) {
    throw new E2ekvError('INVALID_ARGUMENT', 'an epoch record wraps its secret for at least one member');
  }
  if (options.recipients.length > LIMITS.maxEpochRecipients) {
    throw new E2ekvError('TOO_LARGE', `an epoch record wraps for at most ${LIMITS.maxEpochRecipients} members`);
  }
  const sorted = [...options.recipients].sort((a, b) => compareBytes(a.signingKey, b.signingKey));
  for (let i = 1; i < sorted.length; i++) {
    if (bytesEqual(sorted[i - 1]!.signingKey, sorted[i]!.signingKey)) {
      throw new E2ekvError('INVALID_ARGUMENT', `member ${toHex(sorted[i]!.signingKey)} is listed twice`);
    }
  }
  const context = epochWrapContext(vaultId, epoch);
  const recipients: EpochRecipient[] = sorted.map((r) => ({
    member: r.signingKey,
    wrapped: wrap(secret, r.boxKey, context),
  }));
  return {
    type: 'epoch',
    vaultId,
    device: options.device,
    index: options.index,
    epoch,
    clock: options.clock,
    context: options.context,
    check: deriveEpochCheck(secret, vaultId, epoch),
    ephemeral: ephemeral.publicKey,
    recipients,
  };
}

/**
 * S_e from an epoch record, or undefined when the record has no wrap for
 * `me.signingKey`. DECRYPT_FAILED when the wrap for me does not open (made for
 * another box key, or altered); INTEGRITY when it opens to a secret that does
 * not match the record's check(e): the admin gave me another secret than the
 * one it committed to, so the record must not count for me.
 */
export function openEpochRecord(
  entry: EpochEntry,
  me: { signingKey: Uint8Array; boxKey: Uint8Array; boxSecret: Uint8Array },
): Uint8Array | undefined {
  const mine = entry.recipients.find((r) => bytesEqual(r.member, me.signingKey));
  if (mine === undefined) return undefined;
  const secret = unwrapSecret(mine.wrapped, entry.ephemeral, me, epochWrapContext(entry.vaultId, entry.epoch));
  if (secret.length !== EPOCH_SECRET_LENGTH) {
    wipe(secret);
    throw new E2ekvError('INTEGRITY', `the epoch ${entry.epoch} record wraps ${secret.length} bytes, not a secret`);
  }
  const check = deriveEpochCheck(secret, entry.vaultId, entry.epoch);
  if (!constantTimeEqual(check, entry.check)) {
    wipe(secret);
    throw new E2ekvError(
      'INTEGRITY',
      `the epoch ${entry.epoch} record of device ${toHex(entry.device)} at index ${entry.index} wraps a secret that does not match its check: it does not count`,
      { details: { epoch: entry.epoch, index: Number(entry.index) } },
    );
  }
  return secret;
}
