/**
 * The local replica in process memory: for tests, for sessions that keep
 * nothing between runs, and as the reference behaviour of the LocalStore
 * contract. Every byte array is copied on the way in and on the way out, so a
 * caller holding one cannot change what is stored.
 */
import type { LocalStore, StoredEvidence, StoredPin, StoredVault } from './adapter.js';
import {
  checkVaultId,
  checkDevice,
  checkBlobHash,
  checkAppend,
  checkPin,
  checkAcked,
  checkEvidence,
  checkBlob,
  appendConflict,
  pinBeyondLog,
  storeClosed,
} from './validate.js';

// Copies into a plain Uint8Array: a Buffer's own slice() would share memory.
function copy(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes);
}

function copyPin(pin: StoredPin): StoredPin {
  return { size: pin.size, root: copy(pin.root), note: pin.note };
}

function copyEvidence(evidence: StoredEvidence): StoredEvidence {
  return { replica: evidence.replica, device: evidence.device, first: evidence.first, second: evidence.second };
}

interface LogRecord {
  entries: Uint8Array[];
  pin: StoredPin | undefined;
}

interface VaultRecord {
  logs: Map<string, LogRecord>;
  blobs: Map<string, Uint8Array>;
  acked: Map<string, number>;
  evidence: StoredEvidence[];
}

export class MemoryLocalStore implements LocalStore {
  readonly #vaults = new Map<string, VaultRecord>();
  #closed = false;

  // Every method is async so that failures, argument checks included, always
  // arrive as rejections. Writes do all their work before their first await,
  // which is what makes them atomic with respect to each other.

  async appendEntries(vaultId: string, device: string, start: number, entries: readonly Uint8Array[]): Promise<void> {
    this.#checkOpen();
    checkVaultId(vaultId);
    checkDevice(device);
    checkAppend(start, entries);
    const stored = this.#vaults.get(vaultId)?.logs.get(device)?.entries.length ?? 0;
    if (start !== stored) throw appendConflict(device, start, stored);
    if (entries.length === 0) return;
    const log = this.#log(this.#vault(vaultId), device);
    for (const entry of entries) log.entries.push(copy(entry));
  }

  async setPin(vaultId: string, device: string, pin: StoredPin): Promise<void> {
    this.#checkOpen();
    checkVaultId(vaultId);
    checkDevice(device);
    checkPin(pin);
    const stored = this.#vaults.get(vaultId)?.logs.get(device)?.entries.length ?? 0;
    if (pin.size > stored) throw pinBeyondLog(device, pin.size, stored);
    this.#log(this.#vault(vaultId), device).pin = copyPin(pin);
  }

  async putBlob(vaultId: string, hashHex: string, bytes: Uint8Array): Promise<void> {
    this.#checkOpen();
    checkVaultId(vaultId);
    checkBlobHash(hashHex);
    checkBlob(bytes);
    const blobs = this.#vault(vaultId).blobs;
    // Blobs are named by their hash: once stored, one never changes.
    if (!blobs.has(hashHex)) blobs.set(hashHex, copy(bytes));
  }

  async getBlob(vaultId: string, hashHex: string): Promise<Uint8Array | undefined> {
    this.#checkOpen();
    checkVaultId(vaultId);
    checkBlobHash(hashHex);
    const blob = this.#vaults.get(vaultId)?.blobs.get(hashHex);
    return blob === undefined ? undefined : copy(blob);
  }

  async setAcked(vaultId: string, replica: string, size: number): Promise<void> {
    this.#checkOpen();
    checkVaultId(vaultId);
    checkAcked(replica, size);
    const known = this.#vaults.get(vaultId)?.acked.get(replica);
    if (known !== undefined && known >= size) return;
    this.#vault(vaultId).acked.set(replica, size);
  }

  async addEvidence(vaultId: string, evidence: StoredEvidence): Promise<void> {
    this.#checkOpen();
    checkVaultId(vaultId);
    checkEvidence(evidence);
    this.#vault(vaultId).evidence.push(copyEvidence(evidence));
  }

  async loadVault(vaultId: string): Promise<StoredVault | undefined> {
    this.#checkOpen();
    checkVaultId(vaultId);
    const vault = this.#vaults.get(vaultId);
    if (vault === undefined) return undefined;
    return {
      logs: [...vault.logs.keys()].sort().map((device) => {
        const log = vault.logs.get(device)!;
        return { device, entries: log.entries.map(copy), pin: log.pin === undefined ? undefined : copyPin(log.pin) };
      }),
      acked: Object.fromEntries(vault.acked),
      evidence: vault.evidence.map(copyEvidence),
    };
  }

  async listVaults(): Promise<string[]> {
    this.#checkOpen();
    return [...this.#vaults.keys()].sort();
  }

  async deleteVault(vaultId: string): Promise<void> {
    this.#checkOpen();
    checkVaultId(vaultId);
    this.#vaults.delete(vaultId);
  }

  /** Idempotent; every other method rejects with UNAVAILABLE afterwards. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#vaults.clear();
  }

  #checkOpen(): void {
    if (this.#closed) throw storeClosed();
  }

  /** The vault's record, created on its first write. */
  #vault(vaultId: string): VaultRecord {
    let vault = this.#vaults.get(vaultId);
    if (vault === undefined) {
      vault = { logs: new Map(), blobs: new Map(), acked: new Map(), evidence: [] };
      this.#vaults.set(vaultId, vault);
    }
    return vault;
  }

  #log(vault: VaultRecord, device: string): LogRecord {
    let log = vault.logs.get(device);
    if (log === undefined) {
      log = { entries: [], pin: undefined };
      vault.logs.set(device, log);
    }
    return log;
  }
}
