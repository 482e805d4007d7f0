/**
 * SHA-256 and HMAC-SHA-256, synchronous on purpose: awaiting WebCrypto for each
 * small hash costs more than the hash (see ../../SPEC.md, "Cryptographic choices").
 *
 * In Node, node:crypto (found at run time, see node.ts) where it is faster, else
 * @stablelib (browsers). Measured here (Node 20, one process, ops/s):
 *
 *   SHA-256 of 65 bytes (a Merkle node)        @stablelib 195,000   node:crypto 332,000
 *   SHA-256 of 1,300 bytes (a leaf)            @stablelib  91,000   node:crypto 399,000
 *   SHA-256 of 2 MB (a large request body)     @stablelib      40   node:crypto     700
 *   SHA-256 of parts 1 + 32 + 32 bytes         @stablelib 257,000   node:crypto 734,000
 *   HMAC one-shot, 22 / 65 / 1,300 bytes       @stablelib 103,000 / 79,000 / 41,000
 *                                              node:crypto 268,000 / 270,000 / 329,000
 *   HMAC, keyed @stablelib instance reused     435,000 / 247,000 / 100,000
 *
 * So node:crypto everywhere, except the keyed HmacSha256 on short inputs (key-name
 * blinding), where reusing @stablelib's key schedule beats a node:crypto HMAC
 * made per call; above 64 bytes node:crypto is faster there too.
 */
import { HMAC, hmac } from '@stablelib/hmac';
import { SHA256, hash } from '@stablelib/sha256';
import { nodeCrypto, type NodeCrypto, type NodeHash } from './node.js';

export const SHA256_LENGTH = 32;

/** Inputs longer than this go to node:crypto in HmacSha256.mac (see the figures above). */
const KEYED_HMAC_NATIVE_FROM = 65;

// node:crypto's digests are Buffers with an ArrayBuffer of their own: viewed as
// plain Uint8Arrays, so that callers see the same type whichever backend ran.
function plain(digest: Uint8Array): Uint8Array {
  return new Uint8Array(digest.buffer, digest.byteOffset, digest.byteLength);
}

const native: NodeCrypto | undefined = (() => {
  if (nodeCrypto === undefined) return undefined;
  try {
    // The empty string's SHA-256 and a known HMAC, as a check that this node:crypto hashes as expected.
    const empty = nodeCrypto.createHash('sha256').digest();
    const mac = nodeCrypto.createHmac('sha256', new Uint8Array(32)).update(new Uint8Array(1)).digest();
    const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);
    return same(empty, hash(new Uint8Array(0))) && same(mac, hmac(SHA256, new Uint8Array(32), new Uint8Array(1)))
      ? nodeCrypto
      : undefined;
  } catch {
    return undefined;
  }
})();

export function sha256(data: Uint8Array): Uint8Array {
  return native === undefined ? hash(data) : plain(native.createHash('sha256').update(data).digest());
}

/** SHA-256 of several parts without concatenating them first. */
export function sha256Parts(...parts: readonly Uint8Array[]): Uint8Array {
  if (native !== undefined) {
    const h: NodeHash = native.createHash('sha256');
    for (const part of parts) h.update(part);
    return plain(h.digest());
  }
  const h = new SHA256();
  for (const part of parts) h.update(part);
  const out = h.digest();
  h.clean();
  return out;
}

export function hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array {
  return native === undefined ? hmac(SHA256, key, data) : plain(native.createHmac('sha256', key).update(data).digest());
}

/**
 * A keyed HMAC that reuses its key schedule: about five times faster than
 * @stablelib's one-shot HMAC, and faster than node:crypto's, for the many short
 * inputs of key-name blinding. Longer inputs go to node:crypto when it is there.
 */
export class HmacSha256 {
  private readonly keyed: HMAC;
  private readonly key: Uint8Array | undefined;

  constructor(key: Uint8Array) {
    this.keyed = new HMAC(SHA256, key);
    this.key = native === undefined ? undefined : key.slice();
  }

  mac(data: Uint8Array): Uint8Array {
    if (this.key !== undefined && data.length >= KEYED_HMAC_NATIVE_FROM) {
      return plain(native!.createHmac('sha256', this.key).update(data).digest());
    }
    const out = this.keyed.update(data).digest();
    this.keyed.reset();
    return out;
  }

  /** Erases the key schedule; the instance must not be used afterwards. */
  clean(): void {
    this.keyed.clean();
    this.key?.fill(0);
  }
}
