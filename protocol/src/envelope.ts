/**
 * The value envelope (SPEC.md, "Envelopes"): Padmé-padded plaintext sealed with
 * NaCl secretbox (XSalsa20-Poly1305) under K_enc with a fresh random nonce.
 *
 * secretbox has no associated data, so the routing fields a server could tamper
 * with (vault, device, log index, key epoch, item, blinded key) are hashed into
 * a 32-byte binding that is the first thing inside the plaintext and is checked
 * after decryption. A ciphertext moved anywhere else fails that check.
 */
import nacl from 'tweetnacl';
import { ByteReader, ByteWriter, concatBytes, constantTimeEqual, utf8 } from './bytes.js';
import { BLINDED_KEY_LENGTH } from './crypto/blind.js';
import { VAULT_ID_LENGTH } from './crypto/kdf.js';
import { padme } from './crypto/pad.js';
import { randomBytes } from './crypto/random.js';
import { sha256Parts } from './crypto/sha256.js';
import { E2ekvError } from './errors.js';
import { ED25519_PUBLIC_KEY_LENGTH } from './crypto/ed25519.js';

export const ENVELOPE_VERSION = 0x01;
export const NONCE_LENGTH = 24;
export const MAC_LENGTH = 16;
const BINDING_LENGTH = 32;
const HEADER_LENGTH = 1 + NONCE_LENGTH;
/** Binding hash and payload length: the fixed part of every plaintext. */
const PLAINTEXT_PREFIX = BINDING_LENGTH + 4;
export const MIN_ENVELOPE_LENGTH = HEADER_LENGTH + MAC_LENGTH + PLAINTEXT_PREFIX;

const BINDING_TAG = utf8('e2ekv/v1/binding\0');

/** What an envelope is sealed for. */
export const EnvelopePurpose = {
  /** The encrypted metadata of a data entry (clock and causal context). */
  entryMeta: 1,
  /** The value of one item of a data entry. */
  itemValue: 2,
} as const;
export type EnvelopePurpose = (typeof EnvelopePurpose)[keyof typeof EnvelopePurpose];

export interface EnvelopeBinding {
  purpose: EnvelopePurpose;
  vaultId: Uint8Array;
  device: Uint8Array;
  logIndex: bigint;
  epoch: number;
  /** Position of the item in its entry; 0 for entry metadata. */
  item: number;
  /** The item's blinded key; 32 zero bytes for entry metadata. */
  blindedKey: Uint8Array;
}

export const NO_BLINDED_KEY = new Uint8Array(BLINDED_KEY_LENGTH);

/** The 32-byte binding hash of SPEC.md. */
export function envelopeBindingHash(binding: EnvelopeBinding): Uint8Array {
  const fields = new ByteWriter()
    .u8(binding.purpose)
    .fixed(binding.vaultId, VAULT_ID_LENGTH, 'vault id')
    .fixed(binding.device, ED25519_PUBLIC_KEY_LENGTH, 'device key')
    .u64(binding.logIndex)
    .u32(binding.epoch)
    .u16(binding.item)
    .fixed(binding.blindedKey, BLINDED_KEY_LENGTH, 'blinded key')
    .finish();
  return sha256Parts(BINDING_TAG, fields);
}

/** The length of the envelope that sealing `payloadLength` bytes produces. */
export function envelopeLength(payloadLength: number): number {
  return HEADER_LENGTH + MAC_LENGTH + padme(PLAINTEXT_PREFIX + payloadLength);
}

function checkKey(key: Uint8Array): void {
  if (key.length !== nacl.secretbox.keyLength) throw new E2ekvError('INVALID_ARGUMENT', 'K_enc is 32 bytes');
}

/**
 * Seals with a caller-chosen nonce. Only for reproducible test vectors: reusing
 * a nonce under one key reveals plaintexts. Not exported from the package.
 */
export function sealEnvelopeWithNonce(
  key: Uint8Array,
  binding: EnvelopeBinding,
  payload: Uint8Array,
  nonce: Uint8Array,
): Uint8Array {
  checkKey(key);
  if (nonce.length !== NONCE_LENGTH) throw new E2ekvError('INVALID_ARGUMENT', 'a secretbox nonce is 24 bytes');
  if (payload.length > 0xffffffff - PLAINTEXT_PREFIX) throw new E2ekvError('TOO_LARGE', 'payload too large to seal');
  const paddedLength = padme(PLAINTEXT_PREFIX + payload.length);
  const plaintext = new Uint8Array(paddedLength);
  plaintext.set(envelopeBindingHash(binding), 0);
  new DataView(plaintext.buffer).setUint32(BINDING_LENGTH, payload.length);
  plaintext.set(payload, PLAINTEXT_PREFIX);
  const box = nacl.secretbox(plaintext, nonce, key);
  plaintext.fill(0);
  return concatBytes(Uint8Array.of(ENVELOPE_VERSION), nonce, box);
}

/** Pads, binds and encrypts `payload` for the place described by `binding`. */
export function sealEnvelope(key: Uint8Array, binding: EnvelopeBinding, payload: Uint8Array): Uint8Array {
  return sealEnvelopeWithNonce(key, binding, payload, randomBytes(NONCE_LENGTH));
}

/**
 * Decrypts and checks an envelope. Throws DECRYPT_FAILED when the ciphertext is
 * not authentic under `key`, BINDING_MISMATCH when it was sealed for another
 * place, and MALFORMED / NON_CANONICAL when a key holder sealed a bad layout.
 */
export function openEnvelope(key: Uint8Array, binding: EnvelopeBinding, envelope: Uint8Array): Uint8Array {
  checkKey(key);
  const reader = new ByteReader(envelope, 'envelope');
  const version = reader.u8('version');
  if (version !== ENVELOPE_VERSION) {
    throw new E2ekvError(
      'UNSUPPORTED_VERSION',
      `envelope version ${version} is not supported (expected ${ENVELOPE_VERSION})`,
    );
  }
  if (envelope.length < MIN_ENVELOPE_LENGTH) {
    throw new E2ekvError('MALFORMED', `an envelope is at least ${MIN_ENVELOPE_LENGTH} bytes, got ${envelope.length}`);
  }
  const nonce = reader.bytes(NONCE_LENGTH, 'nonce');
  const plaintext = nacl.secretbox.open(reader.rest(), nonce, key);
  if (plaintext === null) {
    throw new E2ekvError(
      'DECRYPT_FAILED',
      'the envelope does not decrypt under this key: it was altered, or sealed under another key epoch',
    );
  }
  try {
    if (!constantTimeEqual(plaintext.subarray(0, BINDING_LENGTH), envelopeBindingHash(binding))) {
      throw new E2ekvError(
        'BINDING_MISMATCH',
        'the envelope was sealed for another vault, device, log position, epoch or key: it has been moved',
      );
    }
    const payloadLength = new DataView(plaintext.buffer, plaintext.byteOffset).getUint32(BINDING_LENGTH);
    if (payloadLength > plaintext.length - PLAINTEXT_PREFIX) {
      throw new E2ekvError('MALFORMED', 'the envelope payload length exceeds its plaintext');
    }
    if (padme(PLAINTEXT_PREFIX + payloadLength) !== plaintext.length) {
      throw new E2ekvError('NON_CANONICAL', 'the envelope is not padded to the Padmé length');
    }
    const end = PLAINTEXT_PREFIX + payloadLength;
    for (let i = end; i < plaintext.length; i++) {
      if (plaintext[i] !== 0) throw new E2ekvError('NON_CANONICAL', 'the envelope padding is not all zero');
    }
    return plaintext.slice(PLAINTEXT_PREFIX, end);
  } finally {
    plaintext.fill(0);
  }
}
