/**
 * Authenticated HTTP requests (SPEC.md section 18): a device signs the method,
 * path, body hash, time and a nonce, for one server (the audience), so that a
 * request cannot be altered, replayed later, or replayed to another replica.
 */
import { ByteWriter, fromBase64, fromHex, toBase64, toHex, utf8 } from './bytes.js';
import { ED25519_PUBLIC_KEY_LENGTH, ED25519_SIGNATURE_LENGTH, type Ed25519Signer } from './crypto/ed25519.js';
import { randomBytes } from './crypto/random.js';
import { sha256 } from './crypto/sha256.js';
import { E2ekvError } from './errors.js';

const REQUEST_TAG = utf8('e2ekv/v1/request\0');
export const REQUEST_NONCE_LENGTH = 16;
export const AUTH_SCHEME = 'e2ekv-v1';

export interface RequestToSign {
  /** The server's cosigner public key, from GET /v1/info. */
  audience: Uint8Array;
  device: Uint8Array;
  timestampMs: bigint;
  nonce: Uint8Array;
  /** Uppercase HTTP method. */
  method: string;
  /** Path and query exactly as sent, starting with "/". */
  path: string;
  body: Uint8Array;
}

/** The bytes a device signs for one request. */
export function requestSignatureInput(request: RequestToSign): Uint8Array {
  if (!/^[A-Z]{1,16}$/.test(request.method))
    throw new E2ekvError('INVALID_ARGUMENT', 'method must be uppercase letters');
  if (!request.path.startsWith('/')) throw new E2ekvError('INVALID_ARGUMENT', 'path must start with /');
  return new ByteWriter()
    .bytes(REQUEST_TAG)
    .fixed(request.audience, ED25519_PUBLIC_KEY_LENGTH, 'audience')
    .fixed(request.device, ED25519_PUBLIC_KEY_LENGTH, 'device')
    .u64(request.timestampMs)
    .fixed(request.nonce, REQUEST_NONCE_LENGTH, 'nonce')
    .vec16(utf8(request.method), 'method')
    .vec16(utf8(request.path), 'path')
    .bytes(sha256(request.body))
    .finish();
}

export interface RequestAuthorization {
  device: Uint8Array;
  timestampMs: bigint;
  nonce: Uint8Array;
  signature: Uint8Array;
}

/** `e2ekv-v1 device=<hex>,ts=<ms>,nonce=<hex>,sig=<base64>` */
export function formatAuthorization(auth: RequestAuthorization): string {
  return `${AUTH_SCHEME} device=${toHex(auth.device)},ts=${auth.timestampMs},nonce=${toHex(auth.nonce)},sig=${toBase64(auth.signature)}`;
}

const AUTH_PATTERN =
  /^e2ekv-v1 device=([0-9a-f]{64}),ts=(0|[1-9][0-9]{0,15}),nonce=([0-9a-f]{32}),sig=([A-Za-z0-9+/]{86}==)$/;

/** Parses an Authorization header strictly; anything else is MALFORMED. */
export function parseAuthorization(header: string): RequestAuthorization {
  const match = AUTH_PATTERN.exec(header);
  if (match === null) {
    throw new E2ekvError(
      'MALFORMED',
      `the Authorization header must be "${AUTH_SCHEME} device=<hex>,ts=<ms>,nonce=<hex>,sig=<base64>"`,
    );
  }
  const signature = fromBase64(match[4]!, 'request signature');
  if (signature.length !== ED25519_SIGNATURE_LENGTH)
    throw new E2ekvError('MALFORMED', 'a request signature is 64 bytes');
  return {
    device: fromHex(match[1]!),
    timestampMs: BigInt(match[2]!),
    nonce: fromHex(match[3]!),
    signature,
  };
}

/** Signs a request and returns the Authorization header value. */
export async function signRequest(
  signer: Ed25519Signer,
  request: Omit<RequestToSign, 'device' | 'timestampMs' | 'nonce'>,
  now: () => number = Date.now,
): Promise<string> {
  const timestampMs = BigInt(now());
  const nonce = randomBytes(REQUEST_NONCE_LENGTH);
  const signature = await signer.sign(
    requestSignatureInput({ ...request, device: signer.publicKey, timestampMs, nonce }),
  );
  return formatAuthorization({ device: signer.publicKey, timestampMs, nonce, signature });
}
