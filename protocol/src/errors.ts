/**
 * One error class for the whole project. Every failure carries a stable `code`
 * that programs match on; messages are for people and may change.
 *
 * The server maps codes to HTTP statuses and the CLI maps them to exit codes,
 * each in one place, through the `category` of the code (see `errorCategory`).
 */

/** Stable error codes. Adding a code is a minor change; renaming one is breaking. */
export const ErrorCodes = [
  // Input that does not parse or breaks an encoding rule of SPEC.md.
  'MALFORMED',
  // Input that parses but is not in the single canonical form SPEC.md allows
  // (non-canonical base64, leading zeros, unsorted lists, non-zero padding).
  'NON_CANONICAL',
  // A size limit of SPEC.md or of the deployment was exceeded.
  'TOO_LARGE',
  // A version or type tag this implementation does not know.
  'UNSUPPORTED_VERSION',
  // A signature from a known key did not verify.
  'BAD_SIGNATURE',
  // No signature from any key the verifier trusts (wrong key ID, unknown name).
  'UNKNOWN_KEY',
  // A public key that must not be used: wrong length, not a canonical encoding,
  // not a curve point, or of small order.
  'BAD_KEY',
  // An inclusion or consistency proof did not verify.
  'BAD_PROOF',
  // A ciphertext failed authentication (wrong key or tampered bytes).
  'DECRYPT_FAILED',
  // A ciphertext decrypted but was sealed for another vault, device, position,
  // key or epoch: it was moved.
  'BINDING_MISMATCH',
  // A catch-all for verified data that contradicts itself.
  'INTEGRITY',
  // A checkpoint smaller than one already verified (history rolled back).
  'ROLLBACK',
  // Two checkpoints of the same size with different roots, or otherwise inconsistent.
  'EQUIVOCATION',
  // A server offers less than a verified causal dependency proves exists.
  'WITHHELD',
  // Arguments a caller passed are wrong (programming or usage error).
  'INVALID_ARGUMENT',
  'NOT_FOUND',
  // A request without a valid device signature, outside the time window, or replayed.
  'UNAUTHENTICATED',
  'PERMISSION_DENIED',
  'CONFLICT',
  'RATE_LIMITED',
  'UNAVAILABLE',
  // The runtime lacks something required (for example a secure random source).
  'UNSUPPORTED_PLATFORM',
  'INTERNAL',
] as const;

export type ErrorCode = (typeof ErrorCodes)[number];

/**
 * What kind of failure a code is, so that transports map a whole family at once.
 * `integrity` means someone (a server, the network, a file) presented data that
 * failed verification: the one kind of failure a user must never ignore.
 */
export type ErrorCategory =
  'invalid-input' | 'integrity' | 'not-found' | 'permission' | 'conflict' | 'limit' | 'unavailable' | 'internal';

const categories: Record<ErrorCode, ErrorCategory> = {
  MALFORMED: 'invalid-input',
  NON_CANONICAL: 'invalid-input',
  TOO_LARGE: 'limit',
  UNSUPPORTED_VERSION: 'invalid-input',
  BAD_SIGNATURE: 'integrity',
  UNKNOWN_KEY: 'integrity',
  BAD_KEY: 'invalid-input',
  BAD_PROOF: 'integrity',
  DECRYPT_FAILED: 'integrity',
  BINDING_MISMATCH: 'integrity',
  INTEGRITY: 'integrity',
  ROLLBACK: 'integrity',
  EQUIVOCATION: 'integrity',
  WITHHELD: 'integrity',
  INVALID_ARGUMENT: 'invalid-input',
  NOT_FOUND: 'not-found',
  UNAUTHENTICATED: 'permission',
  PERMISSION_DENIED: 'permission',
  CONFLICT: 'conflict',
  RATE_LIMITED: 'limit',
  UNAVAILABLE: 'unavailable',
  UNSUPPORTED_PLATFORM: 'internal',
  INTERNAL: 'internal',
};

export function errorCategory(code: ErrorCode): ErrorCategory {
  return categories[code];
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(categories, value);
}

export interface E2ekvErrorOptions {
  /** The lower-level error, if any. Never put secrets in it. */
  cause?: unknown;
  /** Non-secret facts for programs and logs (field names, sizes, indices). */
  details?: Readonly<Record<string, string | number | boolean>>;
}

export class E2ekvError extends Error {
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, string | number | boolean>>;

  constructor(code: ErrorCode, message: string, options: E2ekvErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'E2ekvError';
    this.code = code;
    this.details = Object.freeze({ ...options.details });
  }

  get category(): ErrorCategory {
    return errorCategory(this.code);
  }
}

export function isE2ekvError(value: unknown, code?: ErrorCode): value is E2ekvError {
  return value instanceof E2ekvError && (code === undefined || value.code === code);
}
