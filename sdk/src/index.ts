/**
 * The e2ekv SDK (browsers and Node; Node-only parts are in 'e2ekv/node',
 * Automerge documents in 'e2ekv/automerge').
 */
export {
  E2ekvError,
  isE2ekvError,
  errorCategory,
  formatIdentityString,
  identityFingerprint,
  parseIdentityString,
} from '@e2ekv/protocol';
export type { ErrorCode, ErrorCategory, Role } from '@e2ekv/protocol';
export { Client, createClient } from './client.js';
export type { ClientOptions, JoinedVault, OpenVaultOptions, VaultAccess } from './client.js';
export { createIdentity, deviceId, publicIdentity } from './identity.js';
export type { Identity, PublicIdentity } from './identity.js';
export { Vault } from './vault.js';
export type {
  AckLevel,
  BatchOperation,
  ReadLevel,
  ReadOptions,
  RejectedEntry,
  Settable,
  Sibling,
  VaultChange,
  VaultEvidence,
  VaultMember,
  VaultSecrets,
  VaultStatus,
  VerifyReport,
  WriteOptions,
} from './vault.js';

export { MemoryLocalStore } from './local/memory.js';
export { IndexedDbLocalStore, openIndexedDbLocalStore, type IndexedDbLocalStoreOptions } from './local/indexeddb.js';
export type { LocalStore, StoredEvidence, StoredLog, StoredPin, StoredVault } from './local/adapter.js';
export { SCRYPT_DEFAULT, SCRYPT_MINIMUM, openKeystore, sealKeystore } from './keystore.js';
export type { KeystoreContents, ScryptParams, StoredVaultAccess } from './keystore.js';

/** The protocol versions this SDK speaks (protocol/SPEC.md section 2). */
export const PROTOCOL_VERSIONS: readonly number[] = [1];
