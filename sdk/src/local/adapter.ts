/**
 * The local replica: what a device keeps between runs so that it never trusts
 * a replica with less than it already verified. It holds only what servers
 * hold too (ciphertext entries and blobs, signed checkpoint notes, replica
 * cosigner keys, which the Vault keeps as small blobs of their own) plus this
 * device's own not-yet-pushed entries, so a stolen disk leaks no vault
 * data; keys live in the keystore, encrypted under a passphrase.
 *
 * Adapters (memory, file for Node, IndexedDB for browsers) pass one
 * conformance suite: sdk/test/local-conformance.ts.
 */

/**
 * A log's largest verified checkpoint (SPEC.md 11.1). The Vault also keeps one
 * for its own log: the largest checkpoint a replica cosigned, which restore
 * checks against the stored entries but never trusts entries by.
 */
export interface StoredPin {
  size: number;
  root: Uint8Array;
  /**
   * The checkpoint note: the device's signature, and the cosignatures of the
   * replicas it was verified with (notes kept before those were, the device's
   * alone). Evidence anyone can check; only the device's signature is verified
   * again on load.
   */
  note: string;
}

export interface StoredLog {
  /** Device Ed25519 key, lowercase hex. */
  device: string;
  /** Entries [0, n) in order. */
  entries: Uint8Array[];
  pin: StoredPin | undefined;
}

export interface StoredEvidence {
  replica: string;
  device: string;
  first: string;
  second: string;
}

export interface StoredVault {
  logs: StoredLog[];
  /** Own-log size each replica acknowledged, by replica URL. */
  acked: Record<string, number>;
  evidence: StoredEvidence[];
}

/**
 * Vault ids and blob hashes are lowercase hex of 1 to 64 bytes and devices are
 * keys in lowercase hex, because they name files; entries are never empty and
 * at most LIMITS.maxEntryBytes, which lets the file adapter tell damage from an
 * append a crash cut short. Anything else is rejected (INVALID_ARGUMENT,
 * TOO_LARGE) before anything is written. The first write to a vault creates it.
 */
export interface LocalStore {
  /**
   * Appends entries [start, start + n) to a log. Durable when it resolves.
   * Rejects with E2ekvError CONFLICT, writing nothing, unless `start` equals the
   * number of entries stored for that log.
   */
  appendEntries(vaultId: string, device: string, start: number, entries: readonly Uint8Array[]): Promise<void>;
  /** Replaces a log's pin; the pin's size must not exceed its stored entries (INVALID_ARGUMENT). */
  setPin(vaultId: string, device: string, pin: StoredPin): Promise<void>;
  putBlob(vaultId: string, hashHex: string, bytes: Uint8Array): Promise<void>;
  getBlob(vaultId: string, hashHex: string): Promise<Uint8Array | undefined>;
  /** Records the own-log size a replica acknowledged (only ever grows: smaller values are ignored). */
  setAcked(vaultId: string, replica: string, size: number): Promise<void>;
  addEvidence(vaultId: string, evidence: StoredEvidence): Promise<void>;
  /** Everything stored for a vault, or undefined if nothing is. */
  loadVault(vaultId: string): Promise<StoredVault | undefined>;
  listVaults(): Promise<string[]>;
  /** Forgets a vault entirely (leaving a vault). */
  deleteVault(vaultId: string): Promise<void>;
  close(): Promise<void>;
}
