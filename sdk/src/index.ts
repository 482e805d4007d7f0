/**
 * The e2ekv SDK. Only the shared error type exists so far: createClient, vaults,
 * sync and the CLI are being built (see the README's status section).
 */
export { E2ekvError, isE2ekvError, errorCategory } from '@e2ekv/protocol';
export type { ErrorCode, ErrorCategory } from '@e2ekv/protocol';

/** The protocol versions this SDK speaks (protocol/SPEC.md section 2). */
export const PROTOCOL_VERSIONS: readonly number[] = [1];
