/**
 * Key-name blinding (SPEC.md, "Key names"): servers index values by
 * HMAC-SHA-256(K_blind, name) and never see the name.
 */
import { isWellFormedString, utf8 } from '../bytes.js';
import { E2ekvError } from '../errors.js';
import { LIMITS } from '../limits.js';
import { HmacSha256 } from './sha256.js';

export const BLINDED_KEY_LENGTH = 32;

/** Validates a key name and returns its UTF-8 bytes (no Unicode normalization). */
export function encodeKeyName(name: string): Uint8Array {
  if (typeof name !== 'string' || name.length === 0) {
    throw new E2ekvError('INVALID_ARGUMENT', 'a key name must be a non-empty string');
  }
  if (!isWellFormedString(name)) {
    throw new E2ekvError('INVALID_ARGUMENT', 'a key name must not contain unpaired UTF-16 surrogates');
  }
  const bytes = utf8(name);
  if (bytes.length > LIMITS.maxKeyNameBytes) {
    throw new E2ekvError(
      'TOO_LARGE',
      `a key name is at most ${LIMITS.maxKeyNameBytes} UTF-8 bytes, got ${bytes.length}`,
    );
  }
  return bytes;
}

/** Blinds key names under one vault's K_blind, reusing the HMAC key schedule. */
export class KeyNameBlinder {
  private readonly hmac: HmacSha256;

  constructor(blindingKey: Uint8Array) {
    if (blindingKey.length !== 32) throw new E2ekvError('INVALID_ARGUMENT', 'K_blind is 32 bytes');
    this.hmac = new HmacSha256(blindingKey);
  }

  blind(name: string): Uint8Array {
    return this.hmac.mac(encodeKeyName(name));
  }

  blindEncoded(nameBytes: Uint8Array): Uint8Array {
    return this.hmac.mac(nameBytes);
  }

  clean(): void {
    this.hmac.clean();
  }
}
