/**
 * Ed25519 signatures (RFC 8032) through node:crypto in Node (synchronous, about
 * three times WebCrypto's rate when awaited one at a time), WebCrypto elsewhere,
 * and tweetnacl as the fallback for runtimes without either. Every verifier here gives Go's
 * crypto/ed25519 verdicts on the C2SP/CCTV edge cases (protocol/test/ed25519.test.ts
 * checks each backend), so every party in a vault accepts exactly the same
 * signatures whatever runtime it is on.
 *
 * Runtimes do not agree on their own: Node 24's OpenSSL rejects signatures whose
 * R is a small-order point, and keys with a small-order component, where Go,
 * Node 20 and tweetnacl accept them. A member could craft such a signature (R =
 * identity needs only its own key) to split replicas running different runtimes.
 * So the node:crypto and WebCrypto backends send exactly those inputs to
 * tweetnacl, which gives Go's verdict; ordinary signatures under enrolled keys
 * never take that path.
 *
 * Keys: the private key is the 32-byte RFC 8032 seed; the public key is the
 * 32-byte RFC 8032 encoding.
 */
import { ed25519 as nobleEd25519 } from '@noble/curves/ed25519.js';
import nacl from 'tweetnacl';
import { concatBytes, toHex } from '../bytes.js';
import { E2ekvError } from '../errors.js';
import { nodeCrypto, type NodeCrypto, type NodeKeyObject } from './node.js';

export const ED25519_SEED_LENGTH = 32;
export const ED25519_PUBLIC_KEY_LENGTH = 32;
export const ED25519_SIGNATURE_LENGTH = 64;

export interface Ed25519Signer {
  readonly publicKey: Uint8Array;
  sign(message: Uint8Array): Promise<Uint8Array>;
}

/** One implementation of Ed25519; tests run the vectors through each. */
export interface Ed25519Backend {
  readonly name: 'node' | 'webcrypto' | 'tweetnacl';
  signer(seed: Uint8Array): Promise<Ed25519Signer>;
  verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean>;
}

/** The public key of a seed (synchronous; one scalar multiplication). */
export function ed25519PublicKeyFromSeed(seed: Uint8Array): Uint8Array {
  checkLength(seed, ED25519_SEED_LENGTH, 'Ed25519 seed');
  return nacl.sign.keyPair.fromSeed(seed).publicKey;
}

export const tweetnaclEd25519: Ed25519Backend = {
  name: 'tweetnacl',
  signer(seed) {
    checkLength(seed, ED25519_SEED_LENGTH, 'Ed25519 seed');
    const pair = nacl.sign.keyPair.fromSeed(seed);
    return Promise.resolve({
      publicKey: pair.publicKey,
      sign: (message) => Promise.resolve(nacl.sign.detached(message, pair.secretKey)),
    });
  },
  verify(publicKey, message, signature) {
    if (publicKey.length !== ED25519_PUBLIC_KEY_LENGTH || signature.length !== ED25519_SIGNATURE_LENGTH) {
      return Promise.resolve(false);
    }
    return Promise.resolve(nacl.sign.detached.verify(message, signature, publicKey));
  },
};

// RFC 8410 PKCS #8 wrapping of a raw Ed25519 seed: WebCrypto imports private
// keys only as PKCS #8 or JWK.
const pkcs8Prefix = Uint8Array.of(
  0x30,
  0x2e,
  0x02,
  0x01,
  0x00,
  0x30,
  0x05,
  0x06,
  0x03,
  0x2b,
  0x65,
  0x70,
  0x04,
  0x22,
  0x04,
  0x20,
);
const algorithm = { name: 'Ed25519' } as const;

// Importing a key costs about as much as a verification; replicas verify the
// same few device keys over and over.
const verifyKeyCache = new Map<string, CryptoKey>();
const VERIFY_KEY_CACHE_LIMIT = 4096;

/** Adds to a per-key cache, forgetting the oldest entry beyond the limit. */
function remember<V>(cache: Map<string, V>, key: string, value: V): void {
  if (cache.size >= VERIFY_KEY_CACHE_LIMIT) {
    const oldest = cache.keys().next().value;
    if (oldest !== undefined) cache.delete(oldest);
  }
  cache.set(key, value);
}

async function importVerifyKey(subtle: SubtleCrypto, publicKey: Uint8Array): Promise<CryptoKey> {
  const id = toHex(publicKey);
  const cached = verifyKeyCache.get(id);
  if (cached !== undefined) return cached;
  const key = await subtle.importKey('raw', publicKey as Uint8Array<ArrayBuffer>, algorithm, false, ['verify']);
  remember(verifyKeyCache, id, key);
  return key;
}

function subtleOrThrow(): SubtleCrypto {
  const subtle = globalThis.crypto?.subtle;
  if (subtle === undefined) throw new E2ekvError('UNSUPPORTED_PLATFORM', 'WebCrypto (crypto.subtle) is not available');
  return subtle;
}

export const webCryptoEd25519: Ed25519Backend = {
  name: 'webcrypto',
  async signer(seed) {
    checkLength(seed, ED25519_SEED_LENGTH, 'Ed25519 seed');
    const subtle = subtleOrThrow();
    const key = await subtle.importKey(
      'pkcs8',
      concatBytes(pkcs8Prefix, seed) as Uint8Array<ArrayBuffer>,
      algorithm,
      false,
      ['sign'],
    );
    const publicKey = ed25519PublicKeyFromSeed(seed);
    return {
      publicKey,
      sign: async (message) => new Uint8Array(await subtle.sign(algorithm, key, message as Uint8Array<ArrayBuffer>)),
    };
  },
  async verify(publicKey, message, signature) {
    if (publicKey.length !== ED25519_PUBLIC_KEY_LENGTH || signature.length !== ED25519_SIGNATURE_LENGTH) return false;
    if (needsReferenceVerifier(publicKey, signature)) return tweetnaclEd25519.verify(publicKey, message, signature);
    const subtle = subtleOrThrow();
    let key: CryptoKey;
    try {
      key = await importVerifyKey(subtle, publicKey);
    } catch {
      // A runtime may refuse to import an encoding that is not a curve point;
      // such a key verifies nothing.
      return false;
    }
    return subtle.verify(algorithm, key, signature as Uint8Array<ArrayBuffer>, message as Uint8Array<ArrayBuffer>);
  },
};

// RFC 8410 SubjectPublicKeyInfo wrapping of a raw Ed25519 public key, for node:crypto.
const spkiPrefix = Uint8Array.of(0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00);

function nodeOrThrow(): NodeCrypto {
  if (nodeCrypto === undefined) throw new E2ekvError('UNSUPPORTED_PLATFORM', 'node:crypto is not available');
  return nodeCrypto;
}

// Parsed public keys, as for WebCrypto: creating a KeyObject costs a good part of a verification.
const nodeVerifyKeyCache = new Map<string, NodeKeyObject>();

function nodeVerifyKey(node: NodeCrypto, publicKey: Uint8Array): NodeKeyObject {
  const id = toHex(publicKey);
  const cached = nodeVerifyKeyCache.get(id);
  if (cached !== undefined) return cached;
  const key = node.createPublicKey({ key: concatBytes(spkiPrefix, publicKey), format: 'der', type: 'spki' });
  remember(nodeVerifyKeyCache, id, key);
  return key;
}

/**
 * node:crypto's synchronous Ed25519 (OpenSSL), with KeyObjects made once. Its
 * promises are already settled: no job is queued per signature. Inputs on which
 * OpenSSL versions disagree with Go go to tweetnacl, as for WebCrypto.
 */
export const nodeCryptoEd25519: Ed25519Backend = {
  name: 'node',
  signer(seed) {
    try {
      checkLength(seed, ED25519_SEED_LENGTH, 'Ed25519 seed');
      const node = nodeOrThrow();
      const key = node.createPrivateKey({ key: concatBytes(pkcs8Prefix, seed), format: 'der', type: 'pkcs8' });
      const spki = node.createPublicKey(key).export({ format: 'der', type: 'spki' });
      const publicKey = new Uint8Array(spki.subarray(spkiPrefix.length));
      if (spki.length !== spkiPrefix.length + ED25519_PUBLIC_KEY_LENGTH) {
        throw new E2ekvError('INTERNAL', `node:crypto exported a ${spki.length}-byte Ed25519 public key`);
      }
      return Promise.resolve({
        publicKey,
        // A copy in a fresh ArrayBuffer, as WebCrypto gives: Node's Buffers may share a pool.
        sign: (message) => {
          try {
            return Promise.resolve(new Uint8Array(node.sign(null, message, key)));
          } catch (error) {
            return Promise.reject(error as Error);
          }
        },
      });
    } catch (error) {
      return Promise.reject(error as Error);
    }
  },
  verify(publicKey, message, signature) {
    if (publicKey.length !== ED25519_PUBLIC_KEY_LENGTH || signature.length !== ED25519_SIGNATURE_LENGTH) {
      return Promise.resolve(false);
    }
    if (needsReferenceVerifier(publicKey, signature)) return tweetnaclEd25519.verify(publicKey, message, signature);
    try {
      const node = nodeOrThrow();
      let key: NodeKeyObject;
      try {
        key = nodeVerifyKey(node, publicKey);
      } catch {
        // Not a curve point (the reference path takes those first): it verifies nothing.
        return Promise.resolve(false);
      }
      return Promise.resolve(node.verify(null, message, key, signature));
    } catch (error) {
      return Promise.reject(error as Error);
    }
  },
};

// The eight points of small order, canonically encoded: an R among them is the
// case runtimes disagree on. Built from an order-8 point and checked, rather than
// typed in as eight constants.
const smallOrderEncodings: ReadonlySet<string> = (() => {
  const Point = nobleEd25519.Point;
  const orderEight = Point.fromHex('c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a');
  if (!orderEight.multiplyUnsafe(8n).is0() || orderEight.multiplyUnsafe(4n).is0()) {
    throw new E2ekvError('INTERNAL', 'the order-8 base point is wrong');
  }
  const encodings = new Set<string>();
  for (let i = 0, p = Point.ZERO; i < 8; i++, p = p.add(orderEight)) encodings.add(toHex(p.toBytes()));
  return encodings;
})();

function isPrimeOrderKey(publicKey: Uint8Array): boolean {
  return enrolmentProblem(publicKey) === null;
}

/**
 * True when the verdict must come from the reference verifier (tweetnacl,
 * which agrees with Go) because runtimes' native Ed25519 may differ: R of small
 * order, or a public key that is not a canonical prime-order point.
 */
export function needsReferenceVerifier(publicKey: Uint8Array, signature: Uint8Array): boolean {
  return smallOrderEncodings.has(toHex(signature.subarray(0, 32))) || !isPrimeOrderKey(publicKey);
}

let chosen: Promise<Ed25519Backend> | undefined;

// RFC 8032 section 7.1, test 1: a valid key and signature of the empty message, as a probe.
const probeKey = Uint8Array.from([
  0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64, 0x07, 0x3a, 0x0e, 0xe1, 0x72,
  0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07, 0x51, 0x1a,
]);
const probeSignature = Uint8Array.from([
  0xe5, 0x56, 0x43, 0x00, 0xc3, 0x60, 0xac, 0x72, 0x90, 0x86, 0xe2, 0xcc, 0x80, 0x6e, 0x82, 0x8a, 0x84, 0x87, 0x7f,
  0x1e, 0xb8, 0xe5, 0xd9, 0x74, 0xd8, 0x73, 0xe0, 0x65, 0x22, 0x49, 0x01, 0x55, 0x5f, 0xb8, 0x82, 0x15, 0x90, 0xa3,
  0x3b, 0xac, 0xc6, 0x1e, 0x39, 0x70, 0x1c, 0xf9, 0xb4, 0x6b, 0xd2, 0x5b, 0xf5, 0xf0, 0x59, 0x5b, 0xbe, 0x24, 0x65,
  0x51, 0x41, 0x43, 0x8e, 0x7a, 0x10, 0x0b,
]);

/** node:crypto in Node, else WebCrypto when this runtime implements Ed25519 in it, else tweetnacl. */
export function defaultEd25519(): Promise<Ed25519Backend> {
  chosen ??= (async () => {
    try {
      if (
        nodeCrypto !== undefined &&
        (await nodeCryptoEd25519.verify(probeKey, new Uint8Array(0), probeSignature)) &&
        !(await nodeCryptoEd25519.verify(probeKey, Uint8Array.of(0), probeSignature))
      ) {
        return nodeCryptoEd25519;
      }
    } catch {
      // Not usable here: try WebCrypto.
    }
    try {
      const subtle = globalThis.crypto?.subtle;
      if (subtle === undefined) return tweetnaclEd25519;
      // Any valid point works as a probe.
      await subtle.importKey('raw', probeKey, algorithm, false, ['verify']);
      return webCryptoEd25519;
    } catch {
      return tweetnaclEd25519;
    }
  })();
  return chosen;
}

export async function ed25519Signer(seed: Uint8Array): Promise<Ed25519Signer> {
  return (await defaultEd25519()).signer(seed);
}

export async function ed25519Verify(
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
): Promise<boolean> {
  return (await defaultEd25519()).verify(publicKey, message, signature);
}

/**
 * Checks a public key before a device is enrolled (SPEC.md, "Identities"):
 * 32 bytes, the canonical encoding of a point on the curve, in the prime-order
 * subgroup (so neither small-order nor mixed-order). Keys made from a seed always
 * pass; a key that fails was crafted, and could let one signature verify under
 * more than one message or key.
 */
export function assertEnrollableEd25519Key(publicKey: Uint8Array): void {
  const problem = enrolmentProblem(publicKey);
  if (problem !== null) throw new E2ekvError('BAD_KEY', problem);
}

// Verdicts per key: the subgroup check is a scalar multiplication in JavaScript
// (about a millisecond), and replicas check the same few device keys on every
// request and every signature.
const enrolmentVerdicts = new Map<string, string | null>();

/** Why a public key may not be enrolled, or null when it may. */
function enrolmentProblem(publicKey: Uint8Array): string | null {
  if (publicKey.length !== ED25519_PUBLIC_KEY_LENGTH) {
    return `an Ed25519 public key is 32 bytes, got ${publicKey.length}`;
  }
  const id = toHex(publicKey);
  const cached = enrolmentVerdicts.get(id);
  if (cached !== undefined) return cached;
  let problem: string | null = null;
  try {
    // zip215 = false: the strict RFC 8032 decoding, which rejects y >= p and x = 0 with the sign bit set.
    const point = nobleEd25519.Point.fromBytes(publicKey, false);
    if (point.isSmallOrder()) problem = 'the Ed25519 public key has small order';
    else if (!point.isTorsionFree()) problem = 'the Ed25519 public key has a small-order component';
  } catch {
    problem = 'the Ed25519 public key is not the canonical encoding of a curve point';
  }
  remember(enrolmentVerdicts, id, problem);
  return problem;
}

function checkLength(value: Uint8Array, length: number, what: string): void {
  if (value.length !== length)
    throw new E2ekvError('INVALID_ARGUMENT', `${what} must be ${length} bytes, got ${value.length}`);
}
