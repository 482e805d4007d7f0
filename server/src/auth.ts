/**
 * Authentication of vault requests by device signature (SPEC.md section 18):
 * which device asks, and that the request is fresh, unaltered and meant for
 * this replica. What the device may do is membership.ts's question.
 */
import { createHash } from 'node:crypto';
import {
  E2ekvError,
  assertEnrollableEd25519Key,
  bytesEqual,
  ed25519Verify,
  isE2ekvError,
  parseAuthorization,
  requestSignatureInput,
  toHex,
} from '@e2ekv/protocol';
import type { RequestAuthorization, RequestToSign } from '@e2ekv/protocol';

export interface RequestAuthenticatorOptions {
  /** This server's cosigner public key: requests signed for another replica fail. */
  audience: Uint8Array;
  /** Clock difference tolerated either side, in ms. */
  windowMs: number;
  now?: () => number;
  /** How many (device, nonce) pairs to remember at most; default 1,000,000. */
  maxRememberedNonces?: number;
}

export interface RequestToAuthenticate {
  /** HTTP method, uppercase. */
  method: string;
  /** Path and query exactly as received. */
  path: string;
  body: Uint8Array;
  /** The Authorization header, undefined when absent. */
  authorization: string | undefined;
}

export interface AuthenticatedDevice {
  device: Uint8Array;
  /** The device key in lowercase hex, as vaults and logs name it. */
  deviceHex: string;
}

export const DEFAULT_MAX_REMEMBERED_NONCES = 1_000_000;

export class RequestAuthenticator {
  readonly #audience: Uint8Array;
  readonly #windowMs: number;
  readonly #now: () => number;
  readonly #maxNonces: number;
  // "device/nonce" -> when it may be forgotten. Insertion order is expiry order
  // (every entry lives 2 x window from its arrival), so expired ones are at the front.
  readonly #nonces = new Map<string, number>();

  constructor(options: RequestAuthenticatorOptions) {
    if (!Number.isFinite(options.windowMs) || options.windowMs <= 0) {
      throw new E2ekvError('INVALID_ARGUMENT', 'windowMs must be a positive number of milliseconds');
    }
    this.#audience = options.audience.slice();
    this.#windowMs = options.windowMs;
    this.#now = options.now ?? Date.now;
    this.#maxNonces = options.maxRememberedNonces ?? DEFAULT_MAX_REMEMBERED_NONCES;
  }

  /** Nonces currently remembered (for metrics and tests). */
  get rememberedNonces(): number {
    return this.#nonces.size;
  }

  /** The device that signed the request; UNAUTHENTICATED (or RATE_LIMITED) otherwise. */
  async authenticate(request: RequestToAuthenticate): Promise<AuthenticatedDevice> {
    if (request.authorization === undefined || request.authorization === '') {
      throw unauthenticated('this request needs an Authorization header signed by a member device');
    }
    let auth: RequestAuthorization;
    try {
      auth = parseAuthorization(request.authorization);
    } catch (cause) {
      throw unauthenticated(isE2ekvError(cause) ? cause.message : 'the Authorization header does not parse', cause);
    }
    const deviceHex = toHex(auth.device);
    try {
      assertEnrollableEd25519Key(auth.device);
    } catch (cause) {
      throw unauthenticated(`the device key ${deviceHex} cannot sign requests: ${messageOf(cause)}`, cause);
    }

    const now = this.#now();
    const skewMs = Number(auth.timestampMs) - now;
    if (Math.abs(skewMs) > this.#windowMs) {
      const seconds = Math.round(Math.abs(skewMs) / 1000);
      throw unauthenticated(
        `the request time is ${seconds} s ${skewMs > 0 ? 'ahead of' : 'behind'} this server's clock: check the device clock`,
        undefined,
        { skewMs },
      );
    }

    let input: Uint8Array;
    try {
      input = signatureInput({
        audience: this.#audience,
        device: auth.device,
        timestampMs: auth.timestampMs,
        nonce: auth.nonce,
        method: request.method,
        path: request.path,
        body: request.body,
      });
    } catch (cause) {
      throw unauthenticated(`the request cannot have been signed: ${messageOf(cause)}`, cause);
    }
    if (!(await ed25519Verify(auth.device, input, auth.signature))) {
      throw unauthenticated(
        'the request signature does not verify: sign the method, path, body, time and nonce for this server (its cosigner key from /v1/info)',
      );
    }

    // No await from here on: checking and remembering the nonce happen as one
    // step, so two copies of one request in flight cannot both pass.
    const key = `${deviceHex}/${toHex(auth.nonce)}`;
    const at = this.#now();
    this.#forgetExpired(at);
    if (this.#nonces.has(key)) {
      throw unauthenticated('replayed request: sign every request with a fresh nonce');
    }
    if (this.#nonces.size >= this.#maxNonces) {
      // Forgetting an unexpired nonce would let its request be replayed.
      throw new E2ekvError(
        'RATE_LIMITED',
        'this server is handling too many requests to detect replays: retry shortly',
      );
    }
    this.#nonces.set(key, at + 2 * this.#windowMs);
    return { device: auth.device, deviceHex };
  }

  #forgetExpired(now: number): void {
    for (const [key, expiresAt] of this.#nonces) {
      // A clock that stepped back leaves later entries unsorted; they are then
      // kept a little longer, never forgotten early.
      if (expiresAt > now) return;
      this.#nonces.delete(key);
    }
  }
}

// The request signature input (SPEC.md section 18) ends with SHA-256 of the
// body. The protocol's portable SHA-256 takes about 13 ms of CPU for the 1.8 MB
// body of a 1,024-entry append here, node:crypto about 1 ms: the input is built
// with an empty body and its last 32 bytes replaced by node:crypto's hash. That
// this gives the protocol's own bytes is checked once, when this module loads;
// if it ever does not (the layout changed), the protocol's function is used.
const EMPTY = new Uint8Array(0);
const BODY_HASH_LENGTH = 32;

function nativeSignatureInput(request: RequestToSign): Uint8Array {
  const input = requestSignatureInput({ ...request, body: EMPTY });
  input.set(createHash('sha256').update(request.body).digest(), input.length - BODY_HASH_LENGTH);
  return input;
}

const nativeBodyHashMatches = ((): boolean => {
  const probe: RequestToSign = {
    audience: new Uint8Array(32).fill(1),
    device: new Uint8Array(32).fill(2),
    timestampMs: 1_700_000_000_000n,
    nonce: new Uint8Array(16).fill(3),
    method: 'POST',
    path: '/v1/vaults/probe',
    body: new TextEncoder().encode('{"probe":"a body to hash"}'),
  };
  return bytesEqual(nativeSignatureInput(probe), requestSignatureInput(probe));
})();

function signatureInput(request: RequestToSign): Uint8Array {
  return nativeBodyHashMatches ? nativeSignatureInput(request) : requestSignatureInput(request);
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

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
