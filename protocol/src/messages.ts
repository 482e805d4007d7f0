/**
 * JSON bodies of the replica HTTP API (server/API.md). Binary fields are strict
 * base64 (SPEC.md section 1); counts and indices are JSON safe integers. Parsers
 * reject unknown fields, so that a message has one meaning everywhere.
 */
import { fromBase64, toBase64 } from './bytes.js';
import { E2ekvError } from './errors.js';

type Json = Record<string, unknown>;

function object(value: unknown, what: string, fields: readonly string[]): Json {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new E2ekvError('MALFORMED', `${what} must be a JSON object`);
  }
  for (const key of Object.keys(value)) {
    if (!fields.includes(key)) throw new E2ekvError('MALFORMED', `${what} has an unknown field "${key}"`);
  }
  return value as Json;
}

function index(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new E2ekvError('MALFORMED', `${what} must be a non-negative integer`);
  }
  return value;
}

function text(value: unknown, what: string): string {
  if (typeof value !== 'string') throw new E2ekvError('MALFORMED', `${what} must be a string`);
  return value;
}

function bytes(value: unknown, what: string): Uint8Array {
  return fromBase64(text(value, what), what);
}

function bytesList(value: unknown, what: string, max: number): Uint8Array[] {
  if (!Array.isArray(value)) throw new E2ekvError('MALFORMED', `${what} must be an array`);
  if (value.length > max)
    throw new E2ekvError('TOO_LARGE', `${what} has ${value.length} items, at most ${max} allowed`);
  return value.map((v, i) => bytes(v, `${what}[${i}]`));
}

const b64 = (list: readonly Uint8Array[]) => list.map(toBase64);

/** POST /v1/vaults */
export interface CreateVaultRequest {
  genesis: Uint8Array;
}

export function encodeCreateVaultRequest(m: CreateVaultRequest): Json {
  return { genesis: toBase64(m.genesis) };
}

export function parseCreateVaultRequest(value: unknown): CreateVaultRequest {
  const o = object(value, 'create-vault request', ['genesis']);
  return { genesis: bytes(o['genesis'], 'genesis') };
}

/** The most entries, blobs or proof hashes one message may carry. */
export const MAX_BATCH_ITEMS = 4096;

/**
 * POST /v1/vaults/{vault}/logs/{device}/append: entries [start, start + n) of the
 * device's log, the device's checkpoint of the new size, and a consistency proof
 * from the server's current size (`start`) to the new one (empty when start = 0).
 */
export interface AppendRequest {
  start: number;
  entries: Uint8Array[];
  blobs: Uint8Array[];
  checkpoint: string;
  consistencyProof: Uint8Array[];
}

export function encodeAppendRequest(m: AppendRequest): Json {
  return {
    start: m.start,
    entries: b64(m.entries),
    blobs: b64(m.blobs),
    checkpoint: m.checkpoint,
    consistencyProof: b64(m.consistencyProof),
  };
}

export function parseAppendRequest(value: unknown): AppendRequest {
  const o = object(value, 'append request', ['start', 'entries', 'blobs', 'checkpoint', 'consistencyProof']);
  const entries = bytesList(o['entries'], 'entries', MAX_BATCH_ITEMS);
  if (entries.length === 0) throw new E2ekvError('MALFORMED', 'an append carries at least one entry');
  return {
    start: index(o['start'], 'start'),
    entries,
    blobs: bytesList(o['blobs'] ?? [], 'blobs', MAX_BATCH_ITEMS),
    checkpoint: text(o['checkpoint'], 'checkpoint'),
    consistencyProof: bytesList(o['consistencyProof'] ?? [], 'consistencyProof', 64),
  };
}

/** The answer to an append: the checkpoint with this server's cosignature. */
export interface AppendResponse {
  checkpoint: string;
}

export function parseAppendResponse(value: unknown): AppendResponse {
  const o = object(value, 'append response', ['checkpoint']);
  return { checkpoint: text(o['checkpoint'], 'checkpoint') };
}

/**
 * GET /v1/vaults/{vault}/logs/{device}/entries?start=a&end=b[&proofFrom=m]:
 * entries [start, end) of a log, the cosigned checkpoint they are proven
 * against, an inclusion proof for each, and, when asked, a consistency proof
 * from size m to the checkpoint's size.
 */
export interface EntriesResponse {
  checkpoint: string;
  start: number;
  entries: Uint8Array[];
  inclusionProofs: Uint8Array[][];
  consistencyProof: Uint8Array[];
}

export function encodeEntriesResponse(m: EntriesResponse): Json {
  return {
    checkpoint: m.checkpoint,
    start: m.start,
    entries: b64(m.entries),
    inclusionProofs: m.inclusionProofs.map(b64),
    consistencyProof: b64(m.consistencyProof),
  };
}

export function parseEntriesResponse(value: unknown): EntriesResponse {
  const o = object(value, 'entries response', [
    'checkpoint',
    'start',
    'entries',
    'inclusionProofs',
    'consistencyProof',
  ]);
  const entries = bytesList(o['entries'], 'entries', MAX_BATCH_ITEMS);
  const proofs = o['inclusionProofs'];
  if (!Array.isArray(proofs) || proofs.length !== entries.length) {
    throw new E2ekvError('MALFORMED', 'inclusionProofs must hold one proof per entry');
  }
  return {
    checkpoint: text(o['checkpoint'], 'checkpoint'),
    start: index(o['start'], 'start'),
    entries,
    inclusionProofs: proofs.map((p, i) => bytesList(p, `inclusionProofs[${i}]`, 64)),
    consistencyProof: bytesList(o['consistencyProof'], 'consistencyProof', 64),
  };
}

/** GET /v1/vaults/{vault}: the genesis and the vault's vector (device to log size and root). */
export interface VaultStateResponse {
  genesis: Uint8Array;
  logs: { device: string; size: number; root: Uint8Array }[];
}

export function encodeVaultStateResponse(m: VaultStateResponse): Json {
  return {
    genesis: toBase64(m.genesis),
    logs: m.logs.map((l) => ({ device: l.device, size: l.size, root: toBase64(l.root) })),
  };
}

export function parseVaultStateResponse(value: unknown): VaultStateResponse {
  const o = object(value, 'vault state', ['genesis', 'logs']);
  const logs = o['logs'];
  if (!Array.isArray(logs)) throw new E2ekvError('MALFORMED', 'logs must be an array');
  return {
    genesis: bytes(o['genesis'], 'genesis'),
    logs: logs.map((l: unknown, i) => {
      const log = object(l, `logs[${i}]`, ['device', 'size', 'root']);
      const device = text(log['device'], 'device');
      if (!/^[0-9a-f]{64}$/.test(device)) throw new E2ekvError('MALFORMED', 'device must be 64 lowercase hex digits');
      return { device, size: index(log['size'], 'size'), root: bytes(log['root'], 'root') };
    }),
  };
}

/** Every error response: `{ "error": { "code", "message", "details"? } }`. */
export interface ErrorBody {
  error: { code: string; message: string; details?: Record<string, string | number | boolean> };
}
