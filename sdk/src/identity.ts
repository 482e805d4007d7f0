/**
 * A device identity: an Ed25519 key that signs (its log, its requests) and an
 * X25519 key that receives wrapped vault secrets. Made from a secure random
 * source; the private halves never leave the device except in an encrypted
 * backup.
 */
import nacl from 'tweetnacl';
import {
  E2ekvError,
  ed25519PublicKeyFromSeed,
  ed25519Signer,
  randomBytes,
  toHex,
  type Ed25519Signer,
} from '@e2ekv/protocol';

export interface Identity {
  /** RFC 8032 Ed25519 seed. Secret. */
  signingSeed: Uint8Array;
  /** X25519 private scalar. Secret. */
  boxSecret: Uint8Array;
}

export interface PublicIdentity {
  /** Ed25519 public key: the device id. */
  signingKey: Uint8Array;
  /** X25519 public key. */
  boxKey: Uint8Array;
}

export function createIdentity(): Identity {
  return { signingSeed: randomBytes(32), boxSecret: randomBytes(32) };
}

export function publicIdentity(identity: Identity): PublicIdentity {
  if (identity.signingSeed.length !== 32 || identity.boxSecret.length !== 32) {
    throw new E2ekvError('INVALID_ARGUMENT', 'an identity holds a 32-byte signing seed and a 32-byte box secret');
  }
  return {
    signingKey: ed25519PublicKeyFromSeed(identity.signingSeed),
    boxKey: nacl.scalarMult.base(identity.boxSecret),
  };
}

export function deviceSigner(identity: Identity): Promise<Ed25519Signer> {
  return ed25519Signer(identity.signingSeed);
}

/** The device id in hex, as logs and membership name it. */
export function deviceId(identity: Identity): string {
  return toHex(publicIdentity(identity).signingKey);
}
