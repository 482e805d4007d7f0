/**
 * Storage in process memory, for tests and as the reference behaviour of the
 * StorageAdapter contract. Every byte array is copied on the way in and on the
 * way out, so a caller holding one cannot change what is stored.
 */
import type { AppendBatch, CheckpointRecord, Evidence, LogHead, StorageAdapter, StoredEntry } from './adapter.js';
import {
  checkAppendBatch,
  checkBytes,
  checkEntryRange,
  checkEvidence,
  checkVaultId,
  sizeConflict,
  storageClosed,
  vaultNotFound,
} from './validate.js';

// Copies into a plain Uint8Array: a Buffer's own slice() would share memory.
function copy(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes);
}

function copyHead(head: LogHead): LogHead {
  return { device: head.device, size: head.size, root: copy(head.root), note: head.note };
}

function copyEntry(entry: StoredEntry): StoredEntry {
  return { index: entry.index, bytes: copy(entry.bytes), leafHash: copy(entry.leafHash) };
}

interface MembershipRecord {
  device: string;
  index: number;
  bytes: Uint8Array;
}

interface LogRecord {
  head: LogHead;
  entries: StoredEntry[];
  /** Every head's note, ascending by size. */
  checkpoints: CheckpointRecord[];
}

interface VaultRecord {
  genesis: Uint8Array;
  logs: Map<string, LogRecord>;
  blobs: Map<string, Uint8Array>;
  membership: MembershipRecord[];
  evidence: Evidence[];
  storedBytes: number;
}

export class MemoryStorage implements StorageAdapter {
  readonly #vaults = new Map<string, VaultRecord>();
  #closed = false;

  // Every method is async so that failures, including argument checks, always
  // arrive as rejections. Writes do all their work before their first await,
  // which is what makes them atomic with respect to each other.

  async createVault(vaultId: string, genesis: Uint8Array): Promise<'created' | 'exists'> {
    this.#checkOpen();
    checkVaultId(vaultId);
    checkBytes(genesis, 'the genesis');
    if (this.#vaults.has(vaultId)) return 'exists';
    this.#vaults.set(vaultId, {
      genesis: copy(genesis),
      logs: new Map(),
      blobs: new Map(),
      membership: [],
      evidence: [],
      storedBytes: 0,
    });
    return 'created';
  }

  async getGenesis(vaultId: string): Promise<Uint8Array | undefined> {
    this.#checkOpen();
    const vault = this.#vaults.get(vaultId);
    return vault === undefined ? undefined : copy(vault.genesis);
  }

  async listVaults(): Promise<string[]> {
    this.#checkOpen();
    return [...this.#vaults.keys()].sort();
  }

  async getHead(vaultId: string, device: string): Promise<LogHead | undefined> {
    this.#checkOpen();
    const log = this.#vaults.get(vaultId)?.logs.get(device);
    return log === undefined ? undefined : copyHead(log.head);
  }

  async listHeads(vaultId: string): Promise<LogHead[]> {
    this.#checkOpen();
    const logs = this.#vaults.get(vaultId)?.logs;
    if (logs === undefined) return [];
    return [...logs.keys()].sort().map((device) => copyHead(logs.get(device)!.head));
  }

  async listCheckpoints(vaultId: string, device: string, above: number, limit: number): Promise<CheckpointRecord[]> {
    this.#checkOpen();
    checkEntryRange(above, limit);
    const checkpoints = this.#vaults.get(vaultId)?.logs.get(device)?.checkpoints ?? [];
    // Sizes ascend, so the first above `above` is found by bisection, not by a scan of a long log.
    let low = 0;
    let high = checkpoints.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (checkpoints[mid]!.size <= above) low = mid + 1;
      else high = mid;
    }
    return checkpoints.slice(low, low + limit).map((c) => ({ ...c }));
  }

  async append(batch: AppendBatch): Promise<void> {
    this.#checkOpen();
    checkAppendBatch(batch);
    const vault = this.#vaults.get(batch.vaultId);
    if (vault === undefined) throw vaultNotFound(batch.vaultId);
    const log = vault.logs.get(batch.device);
    const actualSize = log?.head.size ?? 0;
    if (actualSize !== batch.expectedSize) throw sizeConflict(batch.expectedSize, actualSize);

    // Everything was checked above; from here on nothing can throw.
    let addedBytes = 0;
    const entries = log?.entries ?? [];
    for (const entry of batch.entries) {
      entries.push(copyEntry(entry));
      addedBytes += entry.bytes.length;
    }
    for (const blob of batch.blobs) {
      if (vault.blobs.has(blob.hash)) continue;
      vault.blobs.set(blob.hash, copy(blob.bytes));
      addedBytes += blob.bytes.length;
    }
    for (const member of batch.membership) {
      vault.membership.push({ device: member.device, index: member.index, bytes: copy(member.bytes) });
    }
    const checkpoints = log?.checkpoints ?? [];
    checkpoints.push({ size: batch.head.size, note: batch.head.note });
    vault.logs.set(batch.device, { head: copyHead(batch.head), entries, checkpoints });
    vault.storedBytes += addedBytes;
  }

  async getEntries(vaultId: string, device: string, start: number, end: number): Promise<StoredEntry[]> {
    this.#checkOpen();
    checkEntryRange(start, end);
    const entries = this.#vaults.get(vaultId)?.logs.get(device)?.entries ?? [];
    if (start >= end) return [];
    return entries.slice(start, end).map(copyEntry);
  }

  async getLeafHashes(vaultId: string, device: string): Promise<Uint8Array[]> {
    this.#checkOpen();
    const entries = this.#vaults.get(vaultId)?.logs.get(device)?.entries ?? [];
    return entries.map((entry) => copy(entry.leafHash));
  }

  async getBlob(vaultId: string, hash: string): Promise<Uint8Array | undefined> {
    this.#checkOpen();
    const blob = this.#vaults.get(vaultId)?.blobs.get(hash);
    return blob === undefined ? undefined : copy(blob);
  }

  async listMembership(vaultId: string): Promise<MembershipRecord[]> {
    this.#checkOpen();
    const membership = this.#vaults.get(vaultId)?.membership ?? [];
    return membership.map((member) => ({ device: member.device, index: member.index, bytes: copy(member.bytes) }));
  }

  async addEvidence(vaultId: string, evidence: Evidence): Promise<void> {
    this.#checkOpen();
    checkEvidence(evidence);
    const vault = this.#vaults.get(vaultId);
    if (vault === undefined) throw vaultNotFound(vaultId);
    vault.evidence.push({ ...evidence });
  }

  async listEvidence(vaultId: string): Promise<Evidence[]> {
    this.#checkOpen();
    return (this.#vaults.get(vaultId)?.evidence ?? []).map((evidence) => ({ ...evidence }));
  }

  async vaultBytes(vaultId: string): Promise<number> {
    this.#checkOpen();
    return this.#vaults.get(vaultId)?.storedBytes ?? 0;
  }

  /** Idempotent; every other method rejects with UNAVAILABLE afterwards. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#vaults.clear();
  }

  #checkOpen(): void {
    if (this.#closed) throw storageClosed();
  }
}
