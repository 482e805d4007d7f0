/**
 * What a replica sends a peer that lacks the end of a log (SPEC.md 22.4): the
 * entries from the peer's size up to a size the device signed a checkpoint
 * for, the blobs they reference, that checkpoint, and a consistency proof from
 * the peer's size. It is an append request like a device's, so the peer
 * verifies it with the same code. A replica cannot sign a checkpoint for a
 * device, so a batch always ends where one of the device's appends ended
 * (storage keeps every head note for this).
 */
import { E2ekvError, decodeEntry, toHex } from '@e2ekv/protocol';
import type { Acceptor } from './accept.js';
import type { Shipment } from './peer-messages.js';
import type { StorageAdapter, StoredEntry } from './storage/adapter.js';

export interface ShipmentLimits {
  /** Entries in one shipment at most (the receiver's maxBatchEntries). */
  maxEntries: number;
  /**
   * Bytes of entries and blobs at most, unless the first checkpoint above the
   * start is further: a device's own batch is always shipped whole.
   */
  maxBytes: number;
}

// Entries read from storage per query while measuring a shipment.
const READ_CHUNK = 64;

export async function buildShipment(
  storage: StorageAdapter,
  acceptor: Acceptor,
  vaultIdHex: string,
  deviceHex: string,
  start: number,
  limits: ShipmentLimits,
): Promise<Shipment> {
  const head = await storage.getHead(vaultIdHex, deviceHex);
  const size = head?.size ?? 0;
  if (start >= size) {
    throw new E2ekvError('NOT_FOUND', `this replica holds ${size} entries of that log: nothing from ${start}`, {
      details: { size },
    });
  }
  const notes = await storage.listCheckpoints(vaultIdHex, deviceHex, start, limits.maxEntries);
  if (notes.length === 0) {
    throw new E2ekvError('INTERNAL', `no checkpoint is stored above size ${start} of a log of ${size}`);
  }
  // The largest checkpoint within both limits; the first one when none is.
  const within = notes.filter((n) => n.size <= start + limits.maxEntries);
  const last = within.at(-1) ?? notes[0]!;
  const entries: StoredEntry[] = [];
  const blobs = new Map<string, number>();
  let bytes = 0;
  let chosen = notes[0]!;
  let next = 0; // index into `within` of the next checkpoint to reach
  for (let at = start; at < last.size;) {
    const chunk = await storage.getEntries(vaultIdHex, deviceHex, at, Math.min(at + READ_CHUNK, last.size));
    if (chunk.length === 0) throw new E2ekvError('INTERNAL', `storage returned no entries at ${at} of ${size}`);
    let over = false;
    for (const entry of chunk) {
      bytes += entry.bytes.length + newBlobBytes(entry.bytes, blobs);
      entries.push(entry);
      at = entry.index + 1;
      if (bytes > limits.maxBytes && at > chosen.size) {
        over = true;
        break;
      }
      while (next < within.length && within[next]!.size <= at) {
        if (within[next]!.size === at && bytes <= limits.maxBytes) chosen = within[next]!;
        next++;
      }
    }
    if (over) break;
  }
  const shipped = entries.slice(0, chosen.size - start);
  if (shipped.length !== chosen.size - start) {
    throw new E2ekvError('INTERNAL', `read ${shipped.length} entries for a shipment of ${chosen.size - start}`);
  }
  const blobBytes: Uint8Array[] = [];
  for (const hash of blobHashes(shipped)) {
    const blob = await storage.getBlob(vaultIdHex, hash);
    if (blob === undefined) throw new E2ekvError('INTERNAL', `blob ${hash} of a stored entry is missing`);
    blobBytes.push(blob);
  }
  const shipment: Shipment = {
    start,
    entries: shipped.map((e) => e.bytes),
    blobs: blobBytes,
    checkpoint: chosen.note,
    consistencyProof: [],
  };
  if (start > 0) {
    const { fromRoot, proof } = await acceptor.rangeProof(vaultIdHex, deviceHex, start, chosen.size);
    shipment.consistencyProof = proof;
    shipment.startRoot = fromRoot;
  }
  return shipment;
}

/** Bytes of the blobs `entry` references that `seen` does not hold yet (and adds them). */
function newBlobBytes(entry: Uint8Array, seen: Map<string, number>): number {
  const decoded = decodeEntry(entry);
  if (decoded.type !== 'data') return 0;
  let bytes = 0;
  for (const { value } of decoded.items) {
    if (value.kind !== 'blob') continue;
    const hash = toHex(value.hash);
    if (seen.has(hash)) continue;
    seen.set(hash, value.length);
    bytes += value.length;
  }
  return bytes;
}

function blobHashes(entries: readonly StoredEntry[]): string[] {
  const hashes = new Map<string, number>();
  for (const entry of entries) newBlobBytes(entry.bytes, hashes);
  return [...hashes.keys()];
}
