/**
 * SHA-256 and HMAC-SHA-256, synchronous on purpose: awaiting WebCrypto for each
 * small hash costs more than the hash (see ../../SPEC.md, "Cryptographic choices").
 */
import { HMAC, hmac } from '@stablelib/hmac';
import { SHA256, hash } from '@stablelib/sha256';

export const SHA256_LENGTH = 32;

export function sha256(data: Uint8Array): Uint8Array {
  return hash(data);
}

/** SHA-256 of several parts without concatenating them first. */
export function sha256Parts(...parts: readonly Uint8Array[]): Uint8Array {
  const h = new SHA256();
  for (const part of parts) h.update(part);
  const out = h.digest();
  h.clean();
  return out;
}

export function hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array {
  return hmac(SHA256, key, data);
}

/**
 * A keyed HMAC that reuses its key schedule: about five times faster than
 * one-shot HMAC for the many short inputs of key-name blinding.
 */
export class HmacSha256 {
  private readonly keyed: HMAC;

  constructor(key: Uint8Array) {
    this.keyed = new HMAC(SHA256, key);
  }

  mac(data: Uint8Array): Uint8Array {
    const out = this.keyed.update(data).digest();
    this.keyed.reset();
    return out;
  }

  /** Erases the key schedule; the instance must not be used afterwards. */
  clean(): void {
    this.keyed.clean();
  }
}
