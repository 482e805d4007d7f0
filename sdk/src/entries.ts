/**
 * Data entries as the SDK writes and reads them (protocol/SPEC.md section 8):
 * a batch of writes becomes one entry whose key names are blinded, whose values
 * and metadata are sealed in envelopes bound to their place, and whose large
 * values move to blobs; and back, checking every binding on the way.
 */
import type { KeyNameBlinder } from '@e2ekv/protocol';
import {
  E2ekvError,
  EnvelopePurpose,
  LIMITS,
  NO_BLINDED_KEY,
  ValueKind,
  compareBytes,
  decodeEntryMeta,
  decodeItemPayload,
  encodeEntry,
  encodeEntryMeta,
  encodeItemPayload,
  encodeKeyName,
  fromUtf8,
  openEnvelope,
  sealEnvelope,
  sha256,
  toHex,
  utf8,
  bytesEqual,
  type CausalContext,
  type DataEntry,
  type EntryItem,
  type HybridClock,
} from '@e2ekv/protocol';

/** Envelopes larger than this go to blobs (SPEC.md 8.2: writers SHOULD above 4,096 bytes). */
export const BLOB_THRESHOLD = 4096;

/** A value as the SDK hands it out. */
export type Value =
  | { kind: 'bytes'; bytes: Uint8Array }
  | { kind: 'json'; json: unknown }
  | { kind: 'automerge'; document: Uint8Array }
  | { kind: 'tombstone' };

export interface Write {
  name: string;
  value: Value;
}

/** The keys of one vault a member holds (an EpochKeyRing). */
export interface VaultKeys {
  vaultId: Uint8Array;
  blinder: KeyNameBlinder;
  /** The epoch this device writes in, and its K_enc. */
  writing(): { epoch: number; key: Uint8Array };
  /** Every K_enc held for `epoch`; empty when this device holds none. */
  keysFor(epoch: number): readonly Uint8Array[];
}

/** An entry sealed in an epoch whose secret this device does not hold (yet). */
export class MissingEpochKeyError extends E2ekvError {
  readonly epoch: number;
  constructor(epoch: number, options: { cause?: unknown } = {}) {
    super(
      'PERMISSION_DENIED',
      `this device holds no key that opens an entry of epoch ${epoch} of this vault: it was removed from the vault, or an admin must invite it again`,
      { details: { epoch }, ...options },
    );
    this.epoch = epoch;
  }
}

function encodeValue(value: Value): { kind: ValueKind; bytes: Uint8Array } {
  switch (value.kind) {
    case 'bytes':
      return { kind: ValueKind.bytes, bytes: value.bytes };
    case 'json': {
      const text = JSON.stringify(value.json);
      if (text === undefined) throw new E2ekvError('INVALID_ARGUMENT', 'the value cannot be represented as JSON');
      return { kind: ValueKind.json, bytes: utf8(text) };
    }
    case 'automerge':
      return { kind: ValueKind.automerge, bytes: value.document };
    case 'tombstone':
      return { kind: ValueKind.tombstone, bytes: new Uint8Array(0) };
  }
}

function decodeValue(kind: ValueKind, bytes: Uint8Array): Value {
  switch (kind) {
    case ValueKind.bytes:
      return { kind: 'bytes', bytes };
    case ValueKind.json:
      try {
        return { kind: 'json', json: JSON.parse(fromUtf8(bytes, 'JSON value')) as unknown };
      } catch (cause) {
        throw new E2ekvError('MALFORMED', 'a JSON value does not parse: the writer sealed a bad value', { cause });
      }
    case ValueKind.automerge:
      return { kind: 'automerge', document: bytes };
    case ValueKind.tombstone:
      return { kind: 'tombstone' };
  }
}

export interface SealedEntry {
  entry: DataEntry;
  bytes: Uint8Array;
  /** Blob envelopes referenced by the entry, to upload with it. */
  blobs: Uint8Array[];
  /** What openDataEntry would return for this entry, without decrypting what was just sealed. */
  opened: OpenedEntry;
}

/** Seals a batch of writes as the data entry at `index` of `device`'s log. */
export function sealDataEntry(options: {
  keys: VaultKeys;
  device: Uint8Array;
  index: number;
  clock: HybridClock;
  context: CausalContext;
  writes: readonly Write[];
}): SealedEntry {
  const { keys, device, clock, context, writes } = options;
  if (writes.length === 0) throw new E2ekvError('INVALID_ARGUMENT', 'a write needs at least one key');
  if (writes.length > LIMITS.maxItemsPerEntry) {
    throw new E2ekvError('TOO_LARGE', `one write holds at most ${LIMITS.maxItemsPerEntry} keys`);
  }
  const { epoch, key } = keys.writing();
  const logIndex = BigInt(options.index);
  const place = { vaultId: keys.vaultId, device, logIndex, epoch };
  const blinded = writes
    .map((w) => ({ write: w, name: encodeKeyName(w.name), blindedKey: keys.blinder.blind(w.name) }))
    .sort((a, b) => compareBytes(a.blindedKey, b.blindedKey));
  for (let i = 1; i < blinded.length; i++) {
    if (bytesEqual(blinded[i - 1]!.blindedKey, blinded[i]!.blindedKey)) {
      throw new E2ekvError('INVALID_ARGUMENT', `key "${blinded[i]!.write.name}" is written twice in one batch`);
    }
  }
  const blobs: Uint8Array[] = [];
  const openedItems: OpenedItem[] = [];
  const items: EntryItem[] = blinded.map(({ write, name, blindedKey }, item) => {
    const { kind, bytes } = encodeValue(write.value);
    // Decoded from a copy of the encoded bytes, so the writer holds exactly what
    // readers will, and a caller changing its buffer afterwards changes nothing.
    openedItems.push({ name: write.name, blindedKey: toHex(blindedKey), value: decodeValue(kind, bytes.slice()) });
    const envelope = sealEnvelope(
      key,
      { ...place, purpose: EnvelopePurpose.itemValue, item, blindedKey },
      encodeItemPayload({ name, kind, value: bytes }),
    );
    if (envelope.length <= BLOB_THRESHOLD) return { blindedKey, value: { kind: 'inline', envelope } };
    if (envelope.length > LIMITS.maxBlobBytes) {
      throw new E2ekvError('TOO_LARGE', `the value of "${write.name}" is larger than ${LIMITS.maxBlobBytes} bytes`);
    }
    blobs.push(envelope);
    return { blindedKey, value: { kind: 'blob', hash: sha256(envelope), length: envelope.length } };
  });
  const meta = sealEnvelope(
    key,
    { ...place, purpose: EnvelopePurpose.entryMeta, item: 0, blindedKey: NO_BLINDED_KEY },
    encodeEntryMeta({ clock, context }, device),
  );
  const entry: DataEntry = {
    type: 'data',
    vaultId: keys.vaultId,
    device,
    index: logIndex,
    epoch,
    meta,
    items,
  };
  const opened: OpenedEntry = {
    device: toHex(device),
    index: options.index,
    epoch,
    clock,
    context: new Map(context.map((c) => [toHex(c.device), Number(c.size)])),
    items: openedItems,
  };
  return { entry, bytes: encodeEntry(entry), blobs, opened };
}

export interface OpenedItem {
  name: string;
  /** Lowercase hex of the blinded key. */
  blindedKey: string;
  value: Value;
}

export interface OpenedEntry {
  device: string;
  index: number;
  epoch: number;
  clock: HybridClock;
  /** Causal context: other device (hex) → entries of it the writer had verified. */
  context: ReadonlyMap<string, number>;
  items: OpenedItem[];
}

/**
 * Opens a verified data entry: decrypts its metadata and items, checks every
 * binding and that each sealed name blinds to its item's key. `blob` returns a
 * blob already checked against its hash and length.
 */
export async function openDataEntry(
  entry: DataEntry,
  keys: VaultKeys,
  blob: (hash: Uint8Array, length: number) => Promise<Uint8Array>,
): Promise<OpenedEntry> {
  if (!bytesEqual(entry.vaultId, keys.vaultId)) throw new E2ekvError('INTEGRITY', 'the entry belongs to another vault');
  const candidates = keys.keysFor(entry.epoch);
  if (candidates.length === 0) throw new MissingEpochKeyError(entry.epoch);
  const place = { vaultId: entry.vaultId, device: entry.device, logIndex: entry.index, epoch: entry.epoch };
  // Two admins may have started this epoch concurrently: the key that opens
  // the metadata (secretbox authenticates) is the one the writer used.
  let key: Uint8Array | undefined;
  let metaPlain: Uint8Array | undefined;
  let failure: unknown;
  for (const candidate of candidates) {
    try {
      metaPlain = openEnvelope(
        candidate,
        { ...place, purpose: EnvelopePurpose.entryMeta, item: 0, blindedKey: NO_BLINDED_KEY },
        entry.meta,
      );
      key = candidate;
      break;
    } catch (error) {
      // Only a wrong key says "try the next one"; a binding mismatch under the right key is the answer.
      if (!(error instanceof E2ekvError && error.code === 'DECRYPT_FAILED')) throw error;
      failure = error;
    }
  }
  // Entry bytes are signed by their writer, so no replica altered them: none
  // of the keys held opens it because it was sealed under a secret of this
  // epoch that this device does not hold yet (another admin started the epoch
  // concurrently) or was never given. The caller parks it until one arrives.
  if (key === undefined || metaPlain === undefined) throw new MissingEpochKeyError(entry.epoch, { cause: failure });
  const meta = decodeEntryMeta(metaPlain, entry.device);
  const items: OpenedItem[] = [];
  for (const [item, { blindedKey, value: ref }] of entry.items.entries()) {
    const envelope = ref.kind === 'inline' ? ref.envelope : await blob(ref.hash, ref.length);
    const payload = decodeItemPayload(
      openEnvelope(key, { ...place, purpose: EnvelopePurpose.itemValue, item, blindedKey }, envelope),
    );
    if (!bytesEqual(keys.blinder.blindEncoded(payload.name), blindedKey)) {
      throw new E2ekvError('BINDING_MISMATCH', 'a sealed key name does not match the blinded key it is stored under');
    }
    items.push({
      name: fromUtf8(payload.name, 'key name'),
      blindedKey: toHex(blindedKey),
      value: decodeValue(payload.kind, payload.value),
    });
  }
  return {
    device: toHex(entry.device),
    index: Number(entry.index),
    epoch: entry.epoch,
    clock: meta.clock,
    context: new Map(meta.context.map((c) => [toHex(c.device), Number(c.size)])),
    items,
  };
}
