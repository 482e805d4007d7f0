/**
 * Identity strings and fingerprints (SPEC.md section 21.1): how a device's two
 * public keys travel between people, and what two people read to each other to
 * check they hold the same identity.
 *
 * The string carries a checksum so that a mistyped or truncated paste fails
 * here rather than inviting a key nobody holds. The checksum is no defence
 * against someone who swaps the whole string: that is the fingerprint's job.
 */
import { bytesEqual, concatBytes, fromBase64Url, toBase64Url, toHex, utf8 } from './bytes.js';
import { assertEnrollableEd25519Key, ED25519_PUBLIC_KEY_LENGTH } from './crypto/ed25519.js';
import { sha256Parts } from './crypto/sha256.js';
import { X25519_KEY_LENGTH } from './crypto/wrap.js';
import { E2ekvError } from './errors.js';

/** A device's public keys: its id (Ed25519) and the key secrets are wrapped to (X25519). */
export interface PublicDeviceKeys {
  signingKey: Uint8Array;
  boxKey: Uint8Array;
}

export const IDENTITY_STRING_PREFIX = 'e2ekv-id1-';
const CHECKSUM_LENGTH = 4;
const PAYLOAD_LENGTH = ED25519_PUBLIC_KEY_LENGTH + X25519_KEY_LENGTH + CHECKSUM_LENGTH;
/** 10 + 91 characters: 68 bytes in unpadded base64url. */
export const IDENTITY_STRING_LENGTH = IDENTITY_STRING_PREFIX.length + Math.ceil((PAYLOAD_LENGTH * 8) / 6);

const IDENTITY_TAG = utf8('e2ekv/v1/identity\0');
const FINGERPRINT_TAG = utf8('e2ekv/v1/fingerprint\0');
const FINGERPRINT_LENGTH = 10;

function checkLengths(keys: PublicDeviceKeys): void {
  if (keys.signingKey.length !== ED25519_PUBLIC_KEY_LENGTH || keys.boxKey.length !== X25519_KEY_LENGTH) {
    throw new E2ekvError('INVALID_ARGUMENT', 'an identity is a 32-byte Ed25519 key and a 32-byte X25519 key');
  }
}

function checksum(keys: PublicDeviceKeys): Uint8Array {
  return sha256Parts(IDENTITY_TAG, keys.signingKey, keys.boxKey).subarray(0, CHECKSUM_LENGTH);
}

/** `e2ekv-id1-` and the base64url of signing key, box key and checksum. */
export function formatIdentityString(keys: PublicDeviceKeys): string {
  checkLengths(keys);
  return IDENTITY_STRING_PREFIX + toBase64Url(concatBytes(keys.signingKey, keys.boxKey, checksum(keys)));
}

/**
 * Parses an identity string and checks its keys may be enrolled. Rejects, in
 * this order: another prefix (MALFORMED, or UNSUPPORTED_VERSION for another
 * `e2ekv-idN-`), another length, padding or a character outside base64url
 * (MALFORMED), non-zero unused bits (NON_CANONICAL), a wrong checksum
 * (MALFORMED: mistyped), keys that fail the enrolment checks (BAD_KEY).
 * No trimming: callers that read pasted text trim whitespace themselves.
 */
export function parseIdentityString(text: string): PublicDeviceKeys {
  if (!text.startsWith(IDENTITY_STRING_PREFIX)) {
    if (/^e2ekv-id[0-9]+-/.test(text)) {
      throw new E2ekvError('UNSUPPORTED_VERSION', 'this identity string is of another version of e2ekv');
    }
    throw new E2ekvError('MALFORMED', `an identity string starts with ${IDENTITY_STRING_PREFIX}`);
  }
  if (text.length !== IDENTITY_STRING_LENGTH) {
    throw new E2ekvError(
      'MALFORMED',
      `an identity string is ${IDENTITY_STRING_LENGTH} characters, got ${text.length}: it was cut or extended`,
      { details: { length: text.length } },
    );
  }
  const payload = fromBase64Url(text.slice(IDENTITY_STRING_PREFIX.length), 'the identity string');
  const keys: PublicDeviceKeys = {
    signingKey: payload.slice(0, ED25519_PUBLIC_KEY_LENGTH),
    boxKey: payload.slice(ED25519_PUBLIC_KEY_LENGTH, ED25519_PUBLIC_KEY_LENGTH + X25519_KEY_LENGTH),
  };
  const expected = checksum(keys);
  const given = payload.subarray(ED25519_PUBLIC_KEY_LENGTH + X25519_KEY_LENGTH);
  if (!bytesEqual(expected, given)) {
    throw new E2ekvError('MALFORMED', 'the identity string was mistyped: its checksum does not match');
  }
  assertEnrollableEd25519Key(keys.signingKey);
  if (keys.boxKey.every((b) => b === 0)) {
    throw new E2ekvError('BAD_KEY', 'the X25519 key of this identity is all zero');
  }
  return keys;
}

/** 20 lowercase hex digits in five groups of four: `1a2b 3c4d 5e6f 7a8b 9c0d`. */
export function identityFingerprint(keys: PublicDeviceKeys): string {
  checkLengths(keys);
  const digest = toHex(sha256Parts(FINGERPRINT_TAG, keys.signingKey, keys.boxKey).subarray(0, FINGERPRINT_LENGTH));
  return digest.match(/.{4}/g)!.join(' ');
}
