/**
 * Wrapping a secret for a device's X25519 box key (SPEC.md section 21.2): how
 * epoch records and invitations hand epoch secrets to members.
 *
 * Ephemeral-static X25519 (RFC 7748, from @noble/curves), then HKDF-SHA-256
 * over the shared secret with the vault id as salt and the purpose, both public
 * keys and a caller-named extra as info, then NaCl secretbox (tweetnacl). The
 * raw shared secret is never a key: HKDF binds it to this vault, these two keys
 * and this purpose, so a wrap cannot be replayed into another record, vault or
 * recipient.
 */
import { x25519 } from '@noble/curves/ed25519.js';
import nacl from 'tweetnacl';
import { concatBytes, utf8, wipe } from '../bytes.js';
import { E2ekvError } from '../errors.js';
import { hkdfSha256, VAULT_ID_LENGTH } from './kdf.js';
import { randomBytes } from './random.js';

export const X25519_KEY_LENGTH = 32;
const NONCE_LENGTH = nacl.secretbox.nonceLength;
const MAC_LENGTH = nacl.secretbox.overheadLength;
/** Bytes a wrap adds to its plaintext: the nonce and the Poly1305 tag. */
export const WRAP_OVERHEAD = NONCE_LENGTH + MAC_LENGTH;

/** What a wrap is for: HKDF info is `label || E || recipient box key || extra`. */
export interface WrapContext {
  vaultId: Uint8Array;
  /** ASCII, without a terminating zero (e.g. "e2ekv/v1 epoch-wrap"). */
  label: string;
  /** Purpose-specific bytes (the epoch, the invitee's key). */
  extra: Uint8Array;
}

export interface X25519KeyPair {
  publicKey: Uint8Array;
  secretKey: Uint8Array;
}

/** The X25519 public key of a 32-byte secret (clamped as RFC 7748 says). */
export function x25519PublicKey(secret: Uint8Array): Uint8Array {
  checkLength(secret, 'an X25519 secret key');
  return x25519.getPublicKey(secret);
}

/** A fresh key pair for one record or invitation. The caller wipes `secretKey` when done. */
export function newEphemeralKeyPair(): X25519KeyPair {
  const secretKey = randomBytes(X25519_KEY_LENGTH);
  return { publicKey: x25519PublicKey(secretKey), secretKey };
}

/**
 * Wraps `plaintext` for `recipientBoxKey` under the ephemeral pair: returns
 * nonce || secretbox. One ephemeral pair may wrap for many recipients (an
 * epoch record does); the caller wipes its secret afterwards.
 */
export function wrapSecret(
  plaintext: Uint8Array,
  recipientBoxKey: Uint8Array,
  ephemeral: X25519KeyPair,
  context: WrapContext,
): Uint8Array {
  return wrapSecretWithNonce(plaintext, recipientBoxKey, ephemeral, context, randomBytes(NONCE_LENGTH));
}

/**
 * wrapSecret with a caller-chosen nonce. Only for reproducible test vectors: a
 * nonce must never repeat under one wrap key. Not exported from the package.
 */
export function wrapSecretWithNonce(
  plaintext: Uint8Array,
  recipientBoxKey: Uint8Array,
  ephemeral: X25519KeyPair,
  context: WrapContext,
  nonce: Uint8Array,
): Uint8Array {
  checkLength(recipientBoxKey, "the recipient's X25519 key");
  checkLength(ephemeral.publicKey, 'the ephemeral X25519 public key');
  if (nonce.length !== NONCE_LENGTH) throw new E2ekvError('INVALID_ARGUMENT', 'a secretbox nonce is 24 bytes');
  if (isZero(recipientBoxKey)) throw new E2ekvError('BAD_KEY', "the recipient's X25519 key is all zero");
  const key = wrapKey(ephemeral.secretKey, recipientBoxKey, ephemeral.publicKey, recipientBoxKey, context);
  try {
    return concatBytes(nonce, nacl.secretbox(plaintext, nonce, key));
  } finally {
    wipe(key);
  }
}

/**
 * Opens a wrap made for `me`: BAD_KEY for an all-zero E or shared secret,
 * MALFORMED for a wrap too short to hold a tag, DECRYPT_FAILED when it does not
 * open (made for another key or context, or altered).
 */
export function unwrapSecret(
  wrapped: Uint8Array,
  ephemeralPublicKey: Uint8Array,
  me: { boxKey: Uint8Array; boxSecret: Uint8Array },
  context: WrapContext,
): Uint8Array {
  checkLength(ephemeralPublicKey, 'the ephemeral X25519 public key');
  checkLength(me.boxKey, 'my X25519 public key');
  if (isZero(ephemeralPublicKey)) throw new E2ekvError('BAD_KEY', 'the ephemeral X25519 key is all zero');
  if (wrapped.length < WRAP_OVERHEAD) {
    throw new E2ekvError('MALFORMED', `a wrapped secret is at least ${WRAP_OVERHEAD} bytes, got ${wrapped.length}`);
  }
  const key = wrapKey(me.boxSecret, ephemeralPublicKey, ephemeralPublicKey, me.boxKey, context);
  try {
    const opened = nacl.secretbox.open(wrapped.subarray(NONCE_LENGTH), wrapped.subarray(0, NONCE_LENGTH), key);
    if (opened === null) {
      throw new E2ekvError(
        'DECRYPT_FAILED',
        'the wrapped secret does not open with this device key: it was made for another device or purpose, or altered',
      );
    }
    return opened;
  } finally {
    wipe(key);
  }
}

/** The HKDF info of a wrap: label || E || recipient box key || extra. */
export function wrapInfo(
  context: WrapContext,
  ephemeralPublicKey: Uint8Array,
  recipientBoxKey: Uint8Array,
): Uint8Array {
  return concatBytes(utf8(context.label), ephemeralPublicKey, recipientBoxKey, context.extra);
}

/** X25519, refusal of an all-zero result, HKDF. Wipes the shared secret. */
function wrapKey(
  mySecret: Uint8Array,
  theirPublic: Uint8Array,
  ephemeralPublicKey: Uint8Array,
  recipientBoxKey: Uint8Array,
  context: WrapContext,
): Uint8Array {
  checkLength(mySecret, 'an X25519 secret key');
  if (context.vaultId.length !== VAULT_ID_LENGTH) {
    throw new E2ekvError('INVALID_ARGUMENT', `a vault id is ${VAULT_ID_LENGTH} bytes, got ${context.vaultId.length}`);
  }
  let shared: Uint8Array;
  try {
    shared = x25519.getSharedSecret(mySecret, theirPublic);
  } catch (cause) {
    // @noble/curves refuses an all-zero result itself (a small-order public key).
    throw new E2ekvError('BAD_KEY', 'the X25519 key is of small order: the shared secret would be all zero', {
      cause,
    });
  }
  try {
    // Checked here too, so the refusal does not depend on the library's version.
    if (isZero(shared)) {
      throw new E2ekvError('BAD_KEY', 'the X25519 key is of small order: the shared secret is all zero');
    }
    return hkdfSha256(shared, context.vaultId, wrapInfo(context, ephemeralPublicKey, recipientBoxKey));
  } finally {
    wipe(shared);
  }
}

function isZero(bytes: Uint8Array): boolean {
  let acc = 0;
  for (const b of bytes) acc |= b;
  return acc === 0;
}

function checkLength(key: Uint8Array, what: string): void {
  if (key.length !== X25519_KEY_LENGTH) {
    throw new E2ekvError('INVALID_ARGUMENT', `${what} is ${X25519_KEY_LENGTH} bytes, got ${key.length}`);
  }
}
