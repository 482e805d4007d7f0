/**
 * Authentication of requests between replicas (SPEC.md section 22.2): the
 * sending replica signs the method, path, body hash, time and a nonce with its
 * server key, for one receiving replica (the audience). The shape is that of
 * device requests (section 18) under its own domain-separation tag and header
 * scheme, so that a device request can never pass for a peer request nor the
 * reverse. Whether the signer is a configured peer is the caller's question.
 */
import {
  ByteWriter,
  E2ekvError,
  ED25519_PUBLIC_KEY_LENGTH,
  ED25519_SIGNATURE_LENGTH,
  REQUEST_NONCE_LENGTH,
  assertEnrollableEd25519Key,
  ed25519Verify,
  fromBase64,
  fromHex,
  isE2ekvError,
  randomBytes,
  sha256,
  toBase64,
  toHex,
  utf8,
} from '@e2ekv/protocol';
import type { Ed25519Signer } from '@e2ekv/protocol';

const PEER_REQUEST_TAG = utf8('e2ekv/v1/peer-request\0');
export const PEER_AUTH_SCHEME = 'e2ekv-peer-v1';

export interface PeerRequestToSign {
  /** The receiving replica's server (cosigner) public key. */
  audience: Uint8Array;
  /** The sending replica's server (cosigner) public key. */
  sender: Uint8Array;
  timestampMs: bigint;
  nonce: Uint8Array;
  /** Uppercase HTTP method. */
  method: string;
  /** Path and query exactly as sent, starting with "/". */
  path: string;
  body: Uint8Array;
}

/** The bytes a replica signs for one peer request (SPEC.md 22.2). */
export function peerRequestSignatureInput(request: PeerRequestToSign): Uint8Array {
  if (!/^[A-Z]{1,16}$/.test(request.method)) {
    throw new E2ekvError('INVALID_ARGUMENT', 'method must be uppercase letters');
  }
  if (!request.path.startsWith('/')) throw new E2ekvError('INVALID_ARGUMENT', 'path must start with /');
  return new ByteWriter()
    .bytes(PEER_REQUEST_TAG)
    .fixed(request.audience, ED25519_PUBLIC_KEY_LENGTH, 'audience')
    .fixed(request.sender, ED25519_PUBLIC_KEY_LENGTH, 'sender')
    .u64(request.timestampMs)
    .fixed(request.nonce, REQUEST_NONCE_LENGTH, 'nonce')
    .vec16(utf8(request.method), 'method')
    .vec16(utf8(request.path), 'path')
    .bytes(sha256(request.body))
    .finish();
}

export interface PeerAuthorization {
  sender: Uint8Array;
  timestampMs: bigint;
  nonce: Uint8Array;
  signature: Uint8Array;
}

/** `e2ekv-peer-v1 replica=<hex>,ts=<ms>,nonce=<hex>,sig=<base64>` */
export function formatPeerAuthorization(auth: PeerAuthorization): string {
  return `${PEER_AUTH_SCHEME} replica=${toHex(auth.sender)},ts=${auth.timestampMs},nonce=${toHex(auth.nonce)},sig=${toBase64(auth.signature)}`;
}

const PEER_AUTH_PATTERN =
  /^e2ekv-peer-v1 replica=([0-9a-f]{64}),ts=(0|[1-9][0-9]{0,15}),nonce=([0-9a-f]{32}),sig=([A-Za-z0-9+/]{86}==)$/;

/** Parses a peer Authorization header strictly; anything else is MALFORMED. */
export function parsePeerAuthorization(header: string): PeerAuthorization {
  const match = PEER_AUTH_PATTERN.exec(header);
  if (match === null) {
    throw new E2ekvError(
      'MALFORMED',
      `a peer request's Authorization header must be "${PEER_AUTH_SCHEME} replica=<hex>,ts=<ms>,nonce=<hex>,sig=<base64>"`,
    );
  }
  const signature = fromBase64(match[4]!, 'peer request signature');
  if (signature.length !== ED25519_SIGNATURE_LENGTH) {
    throw new E2ekvError('MALFORMED', 'a peer request signature is 64 bytes');
  }
  return { sender: fromHex(match[1]!), timestampMs: BigInt(match[2]!), nonce: fromHex(match[3]!), signature };
}

/** Signs a request to the replica whose key is `audience`; returns the Authorization header value. */
export async function signPeerRequest(
  signer: Ed25519Signer,
  request: { audience: Uint8Array; method: string; path: string; body: Uint8Array },
  now: () => number = Date.now,
): Promise<string> {
  const timestampMs = BigInt(now());
  const nonce = randomBytes(REQUEST_NONCE_LENGTH);
  const signature = await signer.sign(
    peerRequestSignatureInput({ ...request, sender: signer.publicKey, timestampMs, nonce }),
  );
  return formatPeerAuthorization({ sender: signer.publicKey, timestampMs, nonce, signature });
}

export interface PeerRequestVerifierOptions {
  /** This replica's server key: requests signed for another replica fail. */
  audience: Uint8Array;
  /** Clock difference tolerated either side, in ms. */
  windowMs: number;
  now?: () => number;
  /** (sender, nonce) pairs remembered at most; default 100,000 (peers are few). */
  maxRememberedNonces?: number;
}

export interface PeerRequestToVerify {
  method: string;
  path: string;
  body: Uint8Array;
  authorization: string | undefined;
}

/**
 * Checks peer requests: a well-formed header, a fresh timestamp, a signature
 * by the sender's key over this request for this replica, a sender the caller
 * accepts, and a nonce not seen within twice the window.
 */
export class PeerRequestVerifier {
  readonly #audience: Uint8Array;
  readonly #windowMs: number;
  readonly #now: () => number;
  readonly #maxNonces: number;
  // "sender/nonce" -> when it may be forgotten; insertion order is expiry order.
  readonly #nonces = new Map<string, number>();

  constructor(options: PeerRequestVerifierOptions) {
    this.#audience = options.audience.slice();
    this.#windowMs = options.windowMs;
    this.#now = options.now ?? Date.now;
    this.#maxNonces = options.maxRememberedNonces ?? 100_000;
  }

  /**
   * The value `accept` returns for the verified sender. UNAUTHENTICATED for a
   * request that is not a valid peer request for this replica; PERMISSION_DENIED
   * when `accept` returns undefined (a replica that is not a configured peer).
   */
  async verify<T>(request: PeerRequestToVerify, accept: (senderHex: string) => Promise<T | undefined>): Promise<T> {
    if (request.authorization === undefined || request.authorization === '') {
      throw unauthenticated('peer routes need an Authorization header signed by a peer replica');
    }
    let auth: PeerAuthorization;
    try {
      auth = parsePeerAuthorization(request.authorization);
    } catch (cause) {
      throw unauthenticated(isE2ekvError(cause) ? cause.message : 'the Authorization header does not parse', cause);
    }
    const senderHex = toHex(auth.sender);
    try {
      assertEnrollableEd25519Key(auth.sender);
    } catch (cause) {
      throw unauthenticated(`the replica key ${senderHex} cannot sign requests`, cause);
    }
    const skewMs = Number(auth.timestampMs) - this.#now();
    if (Math.abs(skewMs) > this.#windowMs) {
      throw unauthenticated(
        `the peer request time is ${Math.round(Math.abs(skewMs) / 1000)} s ${skewMs > 0 ? 'ahead of' : 'behind'} this replica's clock: check both clocks`,
        undefined,
        { skewMs },
      );
    }
    let input: Uint8Array;
    try {
      input = peerRequestSignatureInput({
        audience: this.#audience,
        sender: auth.sender,
        timestampMs: auth.timestampMs,
        nonce: auth.nonce,
        method: request.method,
        path: request.path,
        body: request.body,
      });
    } catch (cause) {
      throw unauthenticated('the peer request cannot have been signed', cause);
    }
    if (!(await ed25519Verify(auth.sender, input, auth.signature))) {
      throw unauthenticated(
        "the peer request signature does not verify: sign the method, path, body, time and nonce for this replica's key",
      );
    }
    const accepted = await accept(senderHex);
    if (accepted === undefined) {
      throw new E2ekvError(
        'PERMISSION_DENIED',
        `replica ${senderHex} is not a configured peer of this replica: add it with --peer on both sides`,
        { details: { replica: senderHex } },
      );
    }
    // No await from here on: checking and remembering the nonce are one step.
    const key = `${senderHex}/${toHex(auth.nonce)}`;
    const at = this.#now();
    for (const [k, expiresAt] of this.#nonces) {
      if (expiresAt > at) break;
      this.#nonces.delete(k);
    }
    if (this.#nonces.has(key)) throw unauthenticated('replayed peer request: sign every request with a fresh nonce');
    if (this.#nonces.size >= this.#maxNonces) {
      throw new E2ekvError('RATE_LIMITED', 'too many peer requests to detect replays: retry shortly');
    }
    this.#nonces.set(key, at + 2 * this.#windowMs);
    return accepted;
  }
}

function unauthenticated(
  message: string,
  cause?: unknown,
  details?: Readonly<Record<string, string | number | boolean>>,
): E2ekvError {
  return new E2ekvError('UNAUTHENTICATED', message, {
    ...(cause === undefined ? {} : { cause }),
    ...(details === undefined ? {} : { details }),
  });
}
