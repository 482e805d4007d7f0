/**
 * The argument checks and errors every local store adapter shares, so that all
 * of them refuse the same input the same way (sdk/test/local-conformance.ts).
 */
import { E2ekvError, LIMITS } from '@e2ekv/protocol';
import type { StoredEvidence, StoredPin } from './adapter.js';

// Names become file names in the file adapter, so they
// are held to lowercase hex: nothing else can reach outside a vault's folder.

const VAULT_OR_HASH = /^(?:[0-9a-f]{2}){1,64}$/;
const DEVICE = /^[0-9a-f]{64}$/;

function invalid(message: string): E2ekvError {
  return new E2ekvError('INVALID_ARGUMENT', message);
}

export function checkVaultId(vaultId: unknown): asserts vaultId is string {
  if (typeof vaultId !== 'string' || !VAULT_OR_HASH.test(vaultId)) {
    throw invalid('a vault id must be lowercase hex of 1 to 64 bytes');
  }
}

export function checkDevice(device: unknown): asserts device is string {
  if (typeof device !== 'string' || !DEVICE.test(device)) {
    throw invalid('a device must be a 32-byte public key in lowercase hex');
  }
}

export function checkBlobHash(hashHex: unknown): asserts hashHex is string {
  if (typeof hashHex !== 'string' || !VAULT_OR_HASH.test(hashHex)) {
    throw invalid('a blob hash must be lowercase hex of 1 to 64 bytes');
  }
}

function checkCount(value: unknown, what: string): asserts value is number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw invalid(`${what} must be a non-negative whole number`);
  }
}

/**
 * Entries are protocol entries: never empty, and never over the protocol's
 * limit. The file adapter relies on both to tell a damaged log from one whose
 * last append was cut short.
 */
export function checkAppend(start: unknown, entries: readonly unknown[]): asserts start is number {
  checkCount(start, 'the start of an append');
  if (!Array.isArray(entries)) throw invalid('entries must be an array of Uint8Arrays');
  entries.forEach((entry: unknown, i) => {
    if (!(entry instanceof Uint8Array)) throw invalid(`entry ${i} of the append is not a Uint8Array`);
    if (entry.length === 0) throw invalid(`entry ${i} of the append is empty: log entries never are`);
    if (entry.length > LIMITS.maxEntryBytes) {
      throw new E2ekvError(
        'TOO_LARGE',
        `entry ${i} of the append is ${entry.length} bytes; an entry is at most ${LIMITS.maxEntryBytes}`,
      );
    }
  });
}

export function checkPin(pin: StoredPin): void {
  if (typeof pin !== 'object' || pin === null) throw invalid('a pin must be an object');
  checkCount(pin.size, 'a pin size');
  if (!(pin.root instanceof Uint8Array)) throw invalid('a pin root must be a Uint8Array');
  if (typeof pin.note !== 'string') throw invalid('a pin note must be a string');
}

export function checkAcked(replica: unknown, size: unknown): asserts size is number {
  if (typeof replica !== 'string' || replica.length === 0) throw invalid('a replica must be a non-empty string');
  checkCount(size, 'an acknowledged size');
}

export function checkEvidence(evidence: StoredEvidence): void {
  if (typeof evidence !== 'object' || evidence === null) throw invalid('evidence must be an object');
  for (const field of ['replica', 'device', 'first', 'second'] as const) {
    if (typeof evidence[field] !== 'string') throw invalid(`evidence.${field} must be a string`);
  }
}

export function checkBlob(bytes: unknown): void {
  if (!(bytes instanceof Uint8Array)) throw invalid('a blob must be a Uint8Array');
}

// ---------------------------------------------------------------------------
// Shared errors.

export function appendConflict(device: string, start: number, stored: number): E2ekvError {
  return new E2ekvError(
    'CONFLICT',
    `cannot append at entry ${start} of log ${device}: the local replica holds ${stored} entries of it, ` +
      `so the next append must start at ${stored}`,
    { details: { expected: start, actual: stored } },
  );
}

export function pinBeyondLog(device: string, size: number, stored: number): E2ekvError {
  return new E2ekvError(
    'INVALID_ARGUMENT',
    `cannot pin log ${device} at size ${size}: the local replica holds only ${stored} entries of it; ` +
      `store the entries before pinning them`,
    { details: { size, stored } },
  );
}

export function storeClosed(): E2ekvError {
  return new E2ekvError('UNAVAILABLE', 'the local store is closed: open a new one to keep using it');
}
