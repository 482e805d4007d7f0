/**
 * The argument checks every storage adapter applies before writing anything, so
 * that all adapters reject the same malformed input the same way
 * (server/test/storage-conformance.ts), and the errors they share.
 */
import { E2ekvError } from '@e2ekv/protocol';
import type { AppendBatch, Evidence } from './adapter.js';

const LOWER_HEX_32_BYTES = /^[0-9a-f]{64}$/;
const HASH_LENGTH = 32;

function invalid(message: string, details?: Record<string, string | number | boolean>): E2ekvError {
  return new E2ekvError('INVALID_ARGUMENT', message, details === undefined ? {} : { details });
}

export function checkBytes(value: unknown, what: string, length?: number): void {
  if (!(value instanceof Uint8Array)) throw invalid(`${what} must be a Uint8Array`);
  if (length !== undefined && value.length !== length) {
    throw invalid(`${what} must be ${length} bytes`, { length: value.length });
  }
}

function checkCount(value: unknown, what: string): void {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw invalid(`${what} must be a non-negative whole number`);
  }
}

export function checkVaultId(vaultId: unknown): void {
  if (typeof vaultId !== 'string' || vaultId.length === 0) throw invalid('the vault id must be a non-empty string');
}

/**
 * Rejects a batch that is not internally consistent, before anything is
 * written: a batch that fails halfway through must leave no trace, and the
 * cheapest way to get there is to refuse it whole up front.
 */
export function checkAppendBatch(batch: AppendBatch): void {
  checkVaultId(batch.vaultId);
  if (typeof batch.device !== 'string' || !LOWER_HEX_32_BYTES.test(batch.device)) {
    throw invalid('the device must be a 32-byte public key in lowercase hex');
  }
  checkCount(batch.expectedSize, 'expectedSize');
  batch.entries.forEach((entry, i) => {
    const index = batch.expectedSize + i;
    if (entry.index !== index) {
      throw invalid(`entries must be numbered from expectedSize without gaps: entry ${i} should be ${index}`, {
        expected: index,
        actual: String(entry.index),
      });
    }
    checkBytes(entry.bytes, `entry ${index}`);
    checkBytes(entry.leafHash, `leaf hash of entry ${index}`, HASH_LENGTH);
  });
  const newSize = batch.expectedSize + batch.entries.length;
  if (batch.head.device !== batch.device) throw invalid('the head belongs to another device than the batch');
  if (batch.head.size !== newSize) {
    throw invalid('the new head size must be expectedSize plus the number of entries', {
      expected: newSize,
      actual: String(batch.head.size),
    });
  }
  checkBytes(batch.head.root, 'the head root', HASH_LENGTH);
  if (typeof batch.head.note !== 'string') throw invalid('the head note must be a string');
  for (const blob of batch.blobs) {
    if (typeof blob.hash !== 'string' || !LOWER_HEX_32_BYTES.test(blob.hash)) {
      throw invalid('a blob hash must be a SHA-256 in lowercase hex');
    }
    checkBytes(blob.bytes, `blob ${blob.hash}`);
  }
  const membershipIndices = new Set<number>();
  for (const member of batch.membership) {
    // Membership entries are some of this batch's own entries, listed again so
    // that replay does not have to decode every entry to find them.
    if (member.device !== batch.device) throw invalid('a membership entry must come from the batch device');
    if (!Number.isSafeInteger(member.index) || member.index < batch.expectedSize || member.index >= newSize) {
      throw invalid('a membership entry must be one of the batch entries', { index: String(member.index) });
    }
    if (membershipIndices.has(member.index)) {
      throw invalid('a membership entry is listed twice', { index: member.index });
    }
    membershipIndices.add(member.index);
    checkBytes(member.bytes, `membership entry ${member.index}`);
  }
}

/** Entry ranges are half-open [start, end) of whole numbers; an empty or inverted one reads nothing. */
export function checkEntryRange(start: number, end: number): void {
  checkCount(start, 'start');
  checkCount(end, 'end');
}

export function checkEvidence(evidence: Evidence): void {
  if (typeof evidence.device !== 'string' || evidence.device.length === 0) {
    throw invalid('evidence must name a device');
  }
  if (typeof evidence.first !== 'string' || typeof evidence.second !== 'string') {
    throw invalid('evidence must hold two checkpoint notes');
  }
  if (!Number.isSafeInteger(evidence.recordedAtMs)) throw invalid('recordedAtMs must be a whole number of ms');
}

/** The vault must exist before anything is stored in it. */
export function vaultNotFound(vaultId: string): E2ekvError {
  return new E2ekvError('NOT_FOUND', `vault ${vaultId} does not exist on this replica`, { details: { vaultId } });
}

export function sizeConflict(expectedSize: number, actualSize: number): E2ekvError {
  return new E2ekvError('CONFLICT', `the log grew concurrently: expected size ${expectedSize}, found ${actualSize}`, {
    details: { expectedSize, actualSize },
  });
}

export function storageClosed(): E2ekvError {
  return new E2ekvError('UNAVAILABLE', 'the storage is closed');
}
