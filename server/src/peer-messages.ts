/**
 * JSON bodies of the replica-to-replica routes (server/API.md "Peer routes",
 * SPEC.md section 22), and the vector digest two replicas compare to find the
 * vaults they disagree on. Parsers reject unknown fields, like the client
 * messages of @e2ekv/protocol, whose append layout shipments reuse.
 */
import {
  ByteWriter,
  E2ekvError,
  compareBytes,
  encodeAppendRequest,
  fromBase64,
  fromHex,
  parseAppendRequest,
  sha256,
  toBase64,
  toHex,
  utf8,
} from '@e2ekv/protocol';
import type { AppendRequest } from '@e2ekv/protocol';

type Json = Record<string, unknown>;
const HEX64 = /^[0-9a-f]{64}$/;

function object(value: unknown, what: string, fields: readonly string[]): Json {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new E2ekvError('MALFORMED', `${what} must be a JSON object`);
  }
  for (const key of Object.keys(value)) {
    if (!fields.includes(key)) throw new E2ekvError('MALFORMED', `${what} has an unknown field "${key}"`);
  }
  return value as Json;
}

function hex64(value: unknown, what: string): string {
  if (typeof value !== 'string' || !HEX64.test(value)) {
    throw new E2ekvError('MALFORMED', `${what} must be 64 lowercase hex digits`);
  }
  return value;
}

function array(value: unknown, what: string, max: number): unknown[] {
  if (!Array.isArray(value)) throw new E2ekvError('MALFORMED', `${what} must be an array`);
  if (value.length > max) throw new E2ekvError('TOO_LARGE', `${what} has more than ${max} items`);
  return value;
}

const VECTOR_TAG = utf8('e2ekv/v1/peer-vector\0');

/**
 * SHA-256 of a vault's vector (SPEC.md 22.3): equal digests mean equal heads,
 * so two replicas compare one hash per vault before they compare logs.
 */
export function vectorDigest(heads: readonly { device: string; size: number; root: Uint8Array }[]): string {
  const sorted = heads.map((h) => ({ device: fromHex(h.device), size: h.size, root: h.root }));
  sorted.sort((a, b) => compareBytes(a.device, b.device));
  const writer = new ByteWriter().bytes(VECTOR_TAG).u32(sorted.length);
  for (const h of sorted) writer.fixed(h.device, 32, 'device').u64(BigInt(h.size)).fixed(h.root, 32, 'root');
  return toHex(sha256(writer.finish()));
}

/** GET /v1/peer/vaults: vault ids in ascending order, each with its vector digest. */
export interface PeerVaultList {
  vaults: { vaultId: string; vector: string }[];
  /** Pass as `after` for the next page; absent on the last page. */
  next?: string;
}

export const MAX_VAULTS_PER_PAGE = 1000;

export function encodePeerVaultList(m: PeerVaultList): Json {
  return { vaults: m.vaults, ...(m.next === undefined ? {} : { next: m.next }) };
}

export function parsePeerVaultList(value: unknown): PeerVaultList {
  const o = object(value, 'vault list', ['vaults', 'next']);
  const vaults = array(o['vaults'], 'vaults', MAX_VAULTS_PER_PAGE).map((v, i) => {
    const item = object(v, `vaults[${i}]`, ['vaultId', 'vector']);
    return { vaultId: hex64(item['vaultId'], 'vaultId'), vector: hex64(item['vector'], 'vector') };
  });
  const list: PeerVaultList = { vaults };
  if (o['next'] !== undefined) list.next = hex64(o['next'], 'next');
  return list;
}

/**
 * GET /v1/peer/vaults/{vault}: the genesis and every log's head as the
 * device-signed checkpoint note (size and root are read from it; the receiver
 * verifies the signature when it acts on one).
 */
export interface PeerVaultState {
  genesis: Uint8Array;
  logs: { device: string; checkpoint: string }[];
}

/** Devices per vault a vault state may list. */
export const MAX_LOGS_PER_VAULT = 65_536;

export function encodePeerVaultState(m: PeerVaultState): Json {
  return { genesis: toBase64(m.genesis), logs: m.logs.map((l) => ({ device: l.device, checkpoint: l.checkpoint })) };
}

export function parsePeerVaultState(value: unknown): PeerVaultState {
  const o = object(value, 'vault state', ['genesis', 'logs']);
  if (typeof o['genesis'] !== 'string') throw new E2ekvError('MALFORMED', 'genesis must be base64 text');
  return {
    genesis: fromBase64(o['genesis'], 'genesis'),
    logs: array(o['logs'], 'logs', MAX_LOGS_PER_VAULT).map((l, i) => {
      const log = object(l, `logs[${i}]`, ['device', 'checkpoint']);
      if (typeof log['checkpoint'] !== 'string') throw new E2ekvError('MALFORMED', 'checkpoint must be a note');
      return { device: hex64(log['device'], 'device'), checkpoint: log['checkpoint'] };
    }),
  };
}

/**
 * GET /v1/peer/vaults/{vault}/logs/{device}/suffix: an append request the
 * receiver verifies as it would a device's, plus the sender's root at `start`
 * (absent when start is 0), so that a receiver whose own root at `start`
 * differs can tell the device's equivocation from a peer's bad proof.
 */
export interface Shipment extends AppendRequest {
  startRoot?: Uint8Array;
}

export function encodeShipment(m: Shipment): Json {
  return { ...encodeAppendRequest(m), ...(m.startRoot === undefined ? {} : { startRoot: toBase64(m.startRoot) }) };
}

export function parseShipment(value: unknown): Shipment {
  const o = object(value, 'shipment', ['start', 'entries', 'blobs', 'checkpoint', 'consistencyProof', 'startRoot']);
  const { startRoot, ...append } = o;
  const shipment: Shipment = parseAppendRequest(append);
  if (startRoot !== undefined) {
    if (typeof startRoot !== 'string') throw new E2ekvError('MALFORMED', 'startRoot must be base64 text');
    shipment.startRoot = fromBase64(startRoot, 'startRoot');
    if (shipment.startRoot.length !== 32) throw new E2ekvError('MALFORMED', 'startRoot must be 32 bytes');
  }
  return shipment;
}
