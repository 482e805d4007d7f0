/**
 * Padmé padding (Nikitin et al., "Reducing Metadata Leakage from Encrypted Files
 * and Communication with PURBs", PETS 2019): rounds a length up so that at most
 * O(log log L) bits of it show, with at most 12% overhead.
 */
import { E2ekvError } from '../errors.js';

const MAX_LENGTH = 0xffffffff;

/** The padded length for a plaintext of `length` bytes (1 ≤ length < 2^32). */
export function padme(length: number): number {
  if (!Number.isInteger(length) || length < 1 || length > MAX_LENGTH) {
    throw new E2ekvError('INVALID_ARGUMENT', `Padmé is defined here for lengths 1 to 2^32-1, got ${length}`);
  }
  if (length < 2) return length;
  const e = 31 - Math.clz32(length); // floor(log2(L))
  const s = 32 - Math.clz32(e); // floor(log2(E)) + 1
  const lastBits = e - s;
  // Arithmetic rather than bitwise: padded lengths can exceed 2^31.
  const unit = 2 ** lastBits;
  return Math.ceil(length / unit) * unit;
}
