/**
 * Deployment limits of a replica. Each is enforced without plaintext: sizes,
 * counts and rates. Exceeding a size or quota is TOO_LARGE (HTTP 413); exceeding
 * a rate is RATE_LIMITED (HTTP 429).
 */
import { LIMITS } from '@e2ekv/protocol';

export interface ServerLimits {
  /** Bytes of one HTTP request body. */
  maxBodyBytes: number;
  /** Entries in one append. */
  maxBatchEntries: number;
  /** Bytes of one encoded entry (at most the protocol's limit). */
  maxEntryBytes: number;
  /** Bytes of one blob (at most the protocol's limit). */
  maxBlobBytes: number;
  /** Appends per minute per device (token bucket, burst of the same size). */
  appendsPerMinutePerDevice: number;
  /** Bytes of entries and blobs stored per vault. */
  maxVaultBytes: number;
  /** Authenticated-request clock skew tolerated, in ms, either side. */
  requestWindowMs: number;
}

export const DEFAULT_LIMITS: ServerLimits = {
  maxBodyBytes: 16 * 1024 * 1024,
  maxBatchEntries: 1024,
  maxEntryBytes: LIMITS.maxEntryBytes,
  maxBlobBytes: 8 * 1024 * 1024,
  appendsPerMinutePerDevice: 6000,
  maxVaultBytes: 1024 * 1024 * 1024,
  requestWindowMs: 5 * 60 * 1000,
};
