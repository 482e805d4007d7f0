/**
 * The one place where error codes become HTTP statuses. Every rejection is a
 * 4xx with a machine-readable code and a sentence for people; 5xx means a bug
 * or an unavailable disk, never bad input.
 */
import { E2ekvError, isE2ekvError, type ErrorBody, type ErrorCode } from '@e2ekv/protocol';

const statusByCode: Record<ErrorCode, number> = {
  MALFORMED: 400,
  NON_CANONICAL: 400,
  UNSUPPORTED_VERSION: 400,
  INVALID_ARGUMENT: 400,
  BAD_KEY: 400,
  UNAUTHENTICATED: 401,
  PERMISSION_DENIED: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  EQUIVOCATION: 409,
  TOO_LARGE: 413,
  // Well-formed, but fails verification.
  BAD_SIGNATURE: 422,
  UNKNOWN_KEY: 422,
  BAD_PROOF: 422,
  DECRYPT_FAILED: 422,
  BINDING_MISMATCH: 422,
  INTEGRITY: 422,
  ROLLBACK: 422,
  WITHHELD: 422,
  RATE_LIMITED: 429,
  UNAVAILABLE: 503,
  UNSUPPORTED_PLATFORM: 500,
  INTERNAL: 500,
};

export function httpStatus(code: ErrorCode): number {
  return statusByCode[code];
}

/** Turns anything thrown into an E2ekvError; unknown errors become INTERNAL without leaking their text. */
export function toE2ekvError(error: unknown): E2ekvError {
  if (isE2ekvError(error)) return error;
  const e = error as { type?: string; status?: number } | null;
  // express's body parser
  if (e?.type === 'entity.too.large')
    return new E2ekvError('TOO_LARGE', 'the request body is larger than this server accepts');
  if (e?.type === 'request.aborted') return new E2ekvError('MALFORMED', 'the request body was cut off');
  if (typeof e?.status === 'number' && e.status >= 400 && e.status < 500) {
    return new E2ekvError('MALFORMED', 'the request could not be read');
  }
  return new E2ekvError('INTERNAL', 'internal error: the server logged the details', { cause: error });
}

export function errorBody(error: E2ekvError): ErrorBody {
  const body: ErrorBody = { error: { code: error.code, message: error.message } };
  if (Object.keys(error.details).length > 0) body.error.details = { ...error.details };
  return body;
}
