/**
 * Vault genesis (SPEC.md, "Vault genesis"): the record a vault's creator signs.
 * Its hash is the vault id, so nobody (a server included) can present another
 * creator or creation for the same vault.
 */
import { ByteReader, ByteWriter, bytesEqual, utf8 } from './bytes.js';
import {
  assertEnrollableEd25519Key,
  ED25519_PUBLIC_KEY_LENGTH,
  ED25519_SIGNATURE_LENGTH,
  ed25519Verify,
  type Ed25519Signer,
} from './crypto/ed25519.js';
import { sha256 } from './crypto/sha256.js';
import { E2ekvError } from './errors.js';

const GENESIS_TAG = utf8('e2ekv/v1/genesis\0');
export const GENESIS_NONCE_LENGTH = 16;
const X25519_PUBLIC_KEY_LENGTH = 32;
const BODY_LENGTH =
  GENESIS_TAG.length + 8 + GENESIS_NONCE_LENGTH + ED25519_PUBLIC_KEY_LENGTH + X25519_PUBLIC_KEY_LENGTH;
export const SIGNED_GENESIS_LENGTH = BODY_LENGTH + ED25519_SIGNATURE_LENGTH;

export interface Genesis {
  /** Creation time in milliseconds since the Unix epoch: informational only. */
  createdAtMs: bigint;
  /** Random, so that two vaults made by one device in one millisecond differ. */
  nonce: Uint8Array;
  /** The creator device's Ed25519 key: the vault's first admin. */
  creator: Uint8Array;
  /** The creator device's X25519 key, for wrapping epoch secrets to it. */
  creatorBoxKey: Uint8Array;
}

export function encodeGenesisBody(genesis: Genesis): Uint8Array {
  return new ByteWriter()
    .bytes(GENESIS_TAG)
    .u64(genesis.createdAtMs)
    .fixed(genesis.nonce, GENESIS_NONCE_LENGTH, 'genesis nonce')
    .fixed(genesis.creator, ED25519_PUBLIC_KEY_LENGTH, 'creator key')
    .fixed(genesis.creatorBoxKey, X25519_PUBLIC_KEY_LENGTH, 'creator box key')
    .finish();
}

/** The vault id: SHA-256 of the genesis body (the signed bytes, without the signature). */
export function vaultIdOf(genesisBody: Uint8Array): Uint8Array {
  return sha256(genesisBody);
}

/** Signs a genesis with the creator's key; returns body || signature. */
export async function signGenesis(genesis: Genesis, creator: Ed25519Signer): Promise<Uint8Array> {
  if (!bytesEqual(creator.publicKey, genesis.creator)) {
    throw new E2ekvError('INVALID_ARGUMENT', 'a genesis is signed by its creator');
  }
  const body = encodeGenesisBody(genesis);
  const signature = await creator.sign(body);
  return new ByteWriter().bytes(body).bytes(signature).finish();
}

export interface VerifiedGenesis {
  vaultId: Uint8Array;
  genesis: Genesis;
}

/** Parses a signed genesis, checks the creator key and its signature, and returns the vault id. */
export async function verifyGenesis(signed: Uint8Array): Promise<VerifiedGenesis> {
  if (signed.length !== SIGNED_GENESIS_LENGTH) {
    throw new E2ekvError('MALFORMED', `a signed genesis is ${SIGNED_GENESIS_LENGTH} bytes, got ${signed.length}`);
  }
  const r = new ByteReader(signed, 'genesis');
  const tag = r.bytes(GENESIS_TAG.length, 'tag');
  if (!bytesEqual(tag, GENESIS_TAG)) throw new E2ekvError('UNSUPPORTED_VERSION', 'not an e2ekv v1 genesis');
  const genesis: Genesis = {
    createdAtMs: r.u64('created at'),
    nonce: r.bytes(GENESIS_NONCE_LENGTH, 'nonce'),
    creator: r.bytes(ED25519_PUBLIC_KEY_LENGTH, 'creator key'),
    creatorBoxKey: r.bytes(X25519_PUBLIC_KEY_LENGTH, 'creator box key'),
  };
  const signature = r.bytes(ED25519_SIGNATURE_LENGTH, 'signature');
  r.end();
  assertEnrollableEd25519Key(genesis.creator);
  if (genesis.creatorBoxKey.every((b) => b === 0))
    throw new E2ekvError('BAD_KEY', 'the creator X25519 key is all zero');
  const body = signed.subarray(0, BODY_LENGTH);
  if (!(await ed25519Verify(genesis.creator, body, signature))) {
    throw new E2ekvError('BAD_SIGNATURE', 'the genesis signature does not verify under its creator key');
  }
  return { vaultId: vaultIdOf(body), genesis };
}
