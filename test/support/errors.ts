// Shared ways for tests to observe which E2ekvError code a call fails with.
import type { ExecutionContext } from 'ava';
import { E2ekvError, type ErrorCode } from '../../protocol/src/errors.js';

/** The code a synchronous call fails with, or 'ok'. Non-E2ekvError failures propagate. */
export function codeOf(fn: () => unknown): ErrorCode | 'ok' {
  try {
    fn();
    return 'ok';
  } catch (error) {
    if (error instanceof E2ekvError) return error.code;
    throw error;
  }
}

/** The code a call fails with, awaiting it, or 'ok'. */
export async function asyncCodeOf(fn: () => unknown): Promise<ErrorCode | 'ok'> {
  try {
    await fn();
    return 'ok';
  } catch (error) {
    if (error instanceof E2ekvError) return error.code;
    throw error;
  }
}

export function throwsCode(t: ExecutionContext, fn: () => unknown, code: ErrorCode): void {
  const error = t.throws(fn, { instanceOf: E2ekvError });
  t.is(error?.code, code, error?.message);
}

export async function rejectsCode(t: ExecutionContext, fn: () => Promise<unknown>, code: ErrorCode): Promise<void> {
  const error = await t.throwsAsync(fn, { instanceOf: E2ekvError });
  t.is(error?.code, code, error?.message);
}
