import { E2ekvError } from '../errors.js';

/** Cryptographically secure random bytes from the platform (WebCrypto). */
export function randomBytes(length: number): Uint8Array {
  const source = globalThis.crypto;
  if (source === undefined || typeof source.getRandomValues !== 'function') {
    throw new E2ekvError(
      'UNSUPPORTED_PLATFORM',
      'this runtime has no crypto.getRandomValues; e2ekv needs a secure random source',
    );
  }
  const out = new Uint8Array(length);
  // getRandomValues fills at most 65536 bytes per call.
  for (let offset = 0; offset < length; offset += 65536) {
    source.getRandomValues(out.subarray(offset, Math.min(length, offset + 65536)));
  }
  return out;
}
