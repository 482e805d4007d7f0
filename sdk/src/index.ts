/**
 * The e2ekv SDK. Work in progress: vaults with set/get/delete/list/batch/sync
 * against replicas exist; persistence, sharing, watch, verify, Automerge and the
 * CLI do not yet (see the README's status section).
 */
export { E2ekvError, isE2ekvError, errorCategory } from '@e2ekv/protocol';
export type { ErrorCode, ErrorCategory } from '@e2ekv/protocol';
export { Client, createClient } from './client.js';
export type { ClientOptions, VaultAccess } from './client.js';
export { createIdentity, deviceId, publicIdentity } from './identity.js';
export type { Identity, PublicIdentity } from './identity.js';
export { Vault } from './vault.js';
export type { AckLevel, Settable, Sibling, VaultEvidence, WriteOptions } from './vault.js';

/** The protocol versions this SDK speaks (protocol/SPEC.md section 2). */
export const PROTOCOL_VERSIONS: readonly number[] = [1];
