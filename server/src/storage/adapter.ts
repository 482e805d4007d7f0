/**
 * The storage a replica needs, behind one small interface so that SQLite (the
 * default) and memory (tests) are interchangeable; both pass
 * server/test/storage-conformance.ts.
 *
 * Every method that writes is atomic: it either happens entirely and is durable
 * (on disk, fsynced, for persistent adapters) when its promise resolves, or not
 * at all. The adapter checks nothing cryptographic: the acceptor verifies first.
 */

/** The head of one device's log as this replica accepted it. */
export interface LogHead {
  /** Device Ed25519 public key, lowercase hex. */
  device: string;
  size: number;
  root: Uint8Array;
  /** The device-signed checkpoint note for `size` (without our cosignature). */
  note: string;
}

/** A device-signed checkpoint note a log had as its head (without cosignatures). */
export interface CheckpointRecord {
  size: number;
  note: string;
}

export interface StoredEntry {
  index: number;
  bytes: Uint8Array;
  leafHash: Uint8Array;
}

export interface AppendBatch {
  vaultId: string;
  device: string;
  /** The log size the batch was verified against: the append fails with CONFLICT if it changed. */
  expectedSize: number;
  /** Entries expectedSize, expectedSize + 1, ... in order. */
  entries: readonly StoredEntry[];
  /** Blobs keyed by lowercase hex SHA-256; storing one that exists is a no-op. */
  blobs: readonly { hash: string; bytes: Uint8Array }[];
  /** The new head (size = expectedSize + entries.length). */
  head: LogHead;
  /** Membership entries among `entries`, recorded in acceptance order for replay. */
  membership: readonly { device: string; index: number; bytes: Uint8Array }[];
}

export interface Evidence {
  device: string;
  /** Two device-signed checkpoint notes that cannot both be true. */
  first: string;
  second: string;
  recordedAtMs: number;
}

export interface StorageAdapter {
  /** Creates the vault with its signed genesis; 'exists' if it was there already (genesis unchanged). */
  createVault(vaultId: string, genesis: Uint8Array): Promise<'created' | 'exists'>;
  getGenesis(vaultId: string): Promise<Uint8Array | undefined>;
  listVaults(): Promise<string[]>;

  getHead(vaultId: string, device: string): Promise<LogHead | undefined>;
  listHeads(vaultId: string): Promise<LogHead[]>;

  /**
   * Device-signed checkpoint notes the log has had as its head (every append
   * records its head's note), with size greater than `above`, smallest first,
   * at most `limit` of them. Replication ships a log's suffix in batches that
   * each end at one of these sizes: a replica cannot sign a checkpoint for a
   * device, so it can only hand on the device's own.
   */
  listCheckpoints(vaultId: string, device: string, above: number, limit: number): Promise<CheckpointRecord[]>;

  /**
   * All-or-nothing; rejects with E2ekvError CONFLICT when the log's size is not
   * expectedSize. Also records the new head's note for listCheckpoints.
   */
  append(batch: AppendBatch): Promise<void>;

  /** Entries [start, end) of a log; fewer if the log is shorter. */
  getEntries(vaultId: string, device: string, start: number, end: number): Promise<StoredEntry[]>;
  /** Leaf hashes [0, size) of a log, to rebuild its Merkle tree. */
  getLeafHashes(vaultId: string, device: string): Promise<Uint8Array[]>;

  getBlob(vaultId: string, hash: string): Promise<Uint8Array | undefined>;

  /** Membership entries of the vault in the order this replica accepted them. */
  listMembership(vaultId: string): Promise<{ device: string; index: number; bytes: Uint8Array }[]>;

  addEvidence(vaultId: string, evidence: Evidence): Promise<void>;
  listEvidence(vaultId: string): Promise<Evidence[]>;

  /** Bytes stored for the vault (entries and blobs), for quotas and metrics. */
  vaultBytes(vaultId: string): Promise<number>;

  /** Flushes and releases resources; the adapter is unusable afterwards. */
  close(): Promise<void>;
}
