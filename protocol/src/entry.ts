/**
 * Log entries (SPEC.md, "Log entries"): the leaves of each device's Merkle log.
 *
 * A data entry carries, in the clear, only what a blind server needs to route
 * and check it: vault, device, position, key epoch, blinded keys and sealed
 * envelopes (or the hashes of blobs holding them). The clock and the causal
 * context travel inside the sealed metadata envelope. Membership entries and
 * epoch records are public, because servers enforce who may write them; an
 * epoch record's secret is public only as wraps for each recipient.
 */
import { ByteReader, ByteWriter, bytesEqual, compareBytes, utf8 } from './bytes.js';
import { BLINDED_KEY_LENGTH } from './crypto/blind.js';
import { ED25519_PUBLIC_KEY_LENGTH } from './crypto/ed25519.js';
import { VAULT_ID_LENGTH } from './crypto/kdf.js';
import { SHA256_LENGTH } from './crypto/sha256.js';
import { MIN_ENVELOPE_LENGTH } from './envelope.js';
import { E2ekvError } from './errors.js';
import { LIMITS } from './limits.js';

const ENTRY_TAG = utf8('e2ekv/v1/entry\0');
const X25519_PUBLIC_KEY_LENGTH = 32;
/** A wrapped epoch secret: nonce [24] || secretbox of 32 bytes (tag 16 + 32). */
export const EPOCH_WRAP_LENGTH = 24 + 16 + 32;
const EPOCH_CHECK_LENGTH = 32;

export const EntryType = { data: 1, membership: 2, epoch: 3 } as const;

/** Hybrid logical clock: wall-clock milliseconds and a counter for ties. */
export interface HybridClock {
  wallMs: bigint;
  counter: number;
}

/** What the writer had verified of other devices' logs: (device, size) pairs. */
export interface ContextEntry {
  device: Uint8Array;
  size: bigint;
}
export type CausalContext = readonly ContextEntry[];

export interface EntryHeader {
  vaultId: Uint8Array;
  device: Uint8Array;
  index: bigint;
  epoch: number;
}

export type ValueRef = { kind: 'inline'; envelope: Uint8Array } | { kind: 'blob'; hash: Uint8Array; length: number };

export interface EntryItem {
  blindedKey: Uint8Array;
  value: ValueRef;
}

export interface DataEntry extends EntryHeader {
  type: 'data';
  /** Sealed entry metadata (clock and causal context), see encodeEntryMeta. */
  meta: Uint8Array;
  /** Strictly ascending by blinded key: one write per key per entry. */
  items: readonly EntryItem[];
}

export type Role = 'reader' | 'writer' | 'admin';
export const ROLE_CODES: Readonly<Record<Role, number>> = { reader: 1, writer: 2, admin: 3 };

export type MembershipChange =
  | { op: 'add'; member: Uint8Array; boxKey: Uint8Array; role: Role }
  | { op: 'set-role'; member: Uint8Array; role: Role }
  | { op: 'remove'; member: Uint8Array };

export interface MembershipEntry extends EntryHeader {
  type: 'membership';
  clock: HybridClock;
  context: CausalContext;
  change: MembershipChange;
}

/** One member's copy of an epoch secret (SPEC.md section 21.3). */
export interface EpochRecipient {
  /** The member's Ed25519 key. */
  member: Uint8Array;
  /** wrapSecret of S_e for the member's box key: exactly EPOCH_WRAP_LENGTH bytes. */
  wrapped: Uint8Array;
}

/** Starts key epoch `epoch` (>= 1): S_e wrapped for every member (SPEC.md section 21.3). */
export interface EpochEntry extends EntryHeader {
  type: 'epoch';
  clock: HybridClock;
  context: CausalContext;
  /** check(e) of SPEC.md section 5: a public commitment to S_e. */
  check: Uint8Array;
  /** The record's ephemeral X25519 key E, never all zero. */
  ephemeral: Uint8Array;
  /** 1 to LIMITS.maxEpochRecipients, strictly ascending by member. */
  recipients: readonly EpochRecipient[];
}

export type Entry = DataEntry | MembershipEntry | EpochEntry;

const OP_CODES = { add: 1, 'set-role': 2, remove: 3 } as const;

function writeHeader(w: ByteWriter, type: number, e: EntryHeader): void {
  w.bytes(ENTRY_TAG)
    .u8(type)
    .fixed(e.vaultId, VAULT_ID_LENGTH, 'vault id')
    .fixed(e.device, ED25519_PUBLIC_KEY_LENGTH, 'device key')
    .u64(e.index)
    .u32(e.epoch);
}

function writeClockAndContext(w: ByteWriter, clock: HybridClock, context: CausalContext, writer: Uint8Array): void {
  checkContext(context, writer, 'INVALID_ARGUMENT');
  w.u64(clock.wallMs).u32(clock.counter).u16(context.length);
  for (const c of context) w.fixed(c.device, ED25519_PUBLIC_KEY_LENGTH, 'context device').u64(c.size);
}

function readClockAndContext(r: ByteReader, writer: Uint8Array): { clock: HybridClock; context: CausalContext } {
  const clock = { wallMs: r.u64('clock wall time'), counter: r.u32('clock counter') };
  const count = r.u16('context count');
  if (count > LIMITS.maxContextDevices) {
    throw new E2ekvError(
      'TOO_LARGE',
      `a causal context lists at most ${LIMITS.maxContextDevices} devices, got ${count}`,
    );
  }
  const context: ContextEntry[] = [];
  for (let i = 0; i < count; i++) {
    context.push({ device: r.bytes(ED25519_PUBLIC_KEY_LENGTH, 'context device'), size: r.u64('context size') });
  }
  checkContext(context, writer, 'MALFORMED');
  return { clock, context };
}

/** SPEC.md: devices strictly ascending, never the writer itself, sizes at least 1. */
function checkContext(context: CausalContext, writer: Uint8Array, code: 'MALFORMED' | 'INVALID_ARGUMENT'): void {
  if (context.length > LIMITS.maxContextDevices) {
    throw new E2ekvError('TOO_LARGE', `a causal context lists at most ${LIMITS.maxContextDevices} devices`);
  }
  for (let i = 0; i < context.length; i++) {
    const c = context[i]!;
    if (c.size < 1n) throw new E2ekvError(code, 'a causal context lists only sizes of at least 1');
    if (bytesEqual(c.device, writer)) throw new E2ekvError(code, 'a causal context must not list the writer itself');
    if (i > 0 && compareBytes(context[i - 1]!.device, c.device) >= 0) {
      throw new E2ekvError(code, 'causal context devices must be strictly ascending');
    }
  }
}

export interface EntryMeta {
  clock: HybridClock;
  context: CausalContext;
}

/** The plaintext sealed in a data entry's metadata envelope. */
export function encodeEntryMeta(meta: EntryMeta, writer: Uint8Array): Uint8Array {
  const w = new ByteWriter();
  writeClockAndContext(w, meta.clock, meta.context, writer);
  return w.finish();
}

export function decodeEntryMeta(bytes: Uint8Array, writer: Uint8Array): EntryMeta {
  const r = new ByteReader(bytes, 'entry metadata');
  const meta = readClockAndContext(r, writer);
  r.end();
  return meta;
}

export const ValueKind = { tombstone: 0, bytes: 1, json: 2, automerge: 3 } as const;
export type ValueKind = (typeof ValueKind)[keyof typeof ValueKind];

export interface ItemPayload {
  /** UTF-8 bytes of the key name (see encodeKeyName). */
  name: Uint8Array;
  kind: ValueKind;
  value: Uint8Array;
}

/** The plaintext sealed in an item's envelope: the key name, the value's kind, the value. */
export function encodeItemPayload(item: ItemPayload): Uint8Array {
  checkItemPayload(item, 'INVALID_ARGUMENT');
  return new ByteWriter().vec16(item.name, 'key name').u8(item.kind).bytes(item.value).finish();
}

export function decodeItemPayload(bytes: Uint8Array): ItemPayload {
  const r = new ByteReader(bytes, 'item payload');
  const name = r.vec16('key name');
  const kind = r.u8('value kind');
  const value = r.rest();
  if (kind > ValueKind.automerge) throw new E2ekvError('UNSUPPORTED_VERSION', `unknown value kind ${kind}`);
  const item = { name, kind: kind as ValueKind, value };
  checkItemPayload(item, 'MALFORMED');
  return item;
}

function checkItemPayload(item: ItemPayload, code: 'MALFORMED' | 'INVALID_ARGUMENT'): void {
  if (item.name.length === 0) throw new E2ekvError(code, 'a key name is not empty');
  if (item.name.length > LIMITS.maxKeyNameBytes) {
    throw new E2ekvError('TOO_LARGE', `a key name is at most ${LIMITS.maxKeyNameBytes} bytes`);
  }
  if (item.kind === ValueKind.tombstone && item.value.length !== 0) {
    throw new E2ekvError(code, 'a tombstone carries no value');
  }
}

export function encodeEntry(entry: Entry): Uint8Array {
  const w = new ByteWriter();
  if (entry.type === 'data') {
    writeHeader(w, EntryType.data, entry);
    checkEnvelopeLength(entry.meta.length, 'INVALID_ARGUMENT');
    w.vec32(entry.meta);
    checkItems(entry.items, 'INVALID_ARGUMENT');
    w.u16(entry.items.length);
    for (const item of entry.items) {
      w.fixed(item.blindedKey, BLINDED_KEY_LENGTH, 'blinded key');
      if (item.value.kind === 'inline') {
        checkEnvelopeLength(item.value.envelope.length, 'INVALID_ARGUMENT');
        w.u8(0).vec32(item.value.envelope);
      } else {
        checkBlobLength(item.value.length, 'INVALID_ARGUMENT');
        w.u8(1).fixed(item.value.hash, SHA256_LENGTH, 'blob hash').u32(item.value.length);
      }
    }
  } else if (entry.type === 'membership') {
    writeHeader(w, EntryType.membership, entry);
    writeClockAndContext(w, entry.clock, entry.context, entry.device);
    writeMembershipChange(w, entry.change);
  } else {
    checkEpochRecord(entry.epoch, entry.ephemeral, entry.recipients, 'INVALID_ARGUMENT');
    writeHeader(w, EntryType.epoch, entry);
    writeClockAndContext(w, entry.clock, entry.context, entry.device);
    w.fixed(entry.check, EPOCH_CHECK_LENGTH, 'epoch check')
      .fixed(entry.ephemeral, X25519_PUBLIC_KEY_LENGTH, 'ephemeral key')
      .u16(entry.recipients.length);
    for (const r of entry.recipients) {
      w.fixed(r.member, ED25519_PUBLIC_KEY_LENGTH, 'recipient key').fixed(
        r.wrapped,
        EPOCH_WRAP_LENGTH,
        'wrapped secret',
      );
    }
  }
  const out = w.finish();
  if (out.length > LIMITS.maxEntryBytes)
    throw new E2ekvError('TOO_LARGE', `an entry is at most ${LIMITS.maxEntryBytes} bytes`);
  return out;
}

export function decodeEntry(bytes: Uint8Array): Entry {
  if (bytes.length > LIMITS.maxEntryBytes) {
    throw new E2ekvError('TOO_LARGE', `an entry is at most ${LIMITS.maxEntryBytes} bytes, got ${bytes.length}`);
  }
  const r = new ByteReader(bytes, 'entry');
  const tag = r.bytes(ENTRY_TAG.length, 'tag');
  if (!bytesEqual(tag, ENTRY_TAG)) {
    const looksVersioned = bytesEqual(tag.subarray(0, 7), ENTRY_TAG.subarray(0, 7));
    throw new E2ekvError(looksVersioned ? 'UNSUPPORTED_VERSION' : 'MALFORMED', 'not an e2ekv v1 log entry');
  }
  const type = r.u8('type');
  const header: EntryHeader = {
    vaultId: r.bytes(VAULT_ID_LENGTH, 'vault id'),
    device: r.bytes(ED25519_PUBLIC_KEY_LENGTH, 'device key'),
    index: r.u64('index'),
    epoch: r.u32('epoch'),
  };
  let entry: Entry;
  if (type === EntryType.data) {
    const meta = r.vec32('metadata envelope');
    checkEnvelopeLength(meta.length, 'MALFORMED');
    const count = r.u16('item count');
    if (count > LIMITS.maxItemsPerEntry) {
      throw new E2ekvError('TOO_LARGE', `an entry holds at most ${LIMITS.maxItemsPerEntry} items, got ${count}`);
    }
    const items: EntryItem[] = [];
    for (let i = 0; i < count; i++) {
      const blindedKey = r.bytes(BLINDED_KEY_LENGTH, 'blinded key');
      const refKind = r.u8('value reference kind');
      if (refKind === 0) {
        const envelope = r.vec32('item envelope');
        checkEnvelopeLength(envelope.length, 'MALFORMED');
        items.push({ blindedKey, value: { kind: 'inline', envelope } });
      } else if (refKind === 1) {
        const hash = r.bytes(SHA256_LENGTH, 'blob hash');
        const length = r.u32('blob length');
        checkBlobLength(length, 'MALFORMED');
        items.push({ blindedKey, value: { kind: 'blob', hash, length } });
      } else {
        throw new E2ekvError('MALFORMED', `unknown value reference kind ${refKind}`);
      }
    }
    checkItems(items, 'MALFORMED');
    entry = { type: 'data', ...header, meta, items };
  } else if (type === EntryType.membership) {
    const { clock, context } = readClockAndContext(r, header.device);
    entry = { type: 'membership', ...header, clock, context, change: readMembershipChange(r) };
  } else if (type === EntryType.epoch) {
    entry = readEpochRecord(r, header);
  } else {
    throw new E2ekvError('UNSUPPORTED_VERSION', `unknown entry type ${type}`);
  }
  r.end();
  return entry;
}

function checkItems(items: readonly EntryItem[], code: 'MALFORMED' | 'INVALID_ARGUMENT'): void {
  if (items.length === 0) throw new E2ekvError(code, 'a data entry writes at least one key');
  if (items.length > LIMITS.maxItemsPerEntry) {
    throw new E2ekvError('TOO_LARGE', `an entry holds at most ${LIMITS.maxItemsPerEntry} items`);
  }
  for (let i = 1; i < items.length; i++) {
    if (compareBytes(items[i - 1]!.blindedKey, items[i]!.blindedKey) >= 0) {
      throw new E2ekvError(code, 'entry items must be strictly ascending by blinded key (one write per key)');
    }
  }
}

function checkEnvelopeLength(length: number, code: 'MALFORMED' | 'INVALID_ARGUMENT'): void {
  if (length < MIN_ENVELOPE_LENGTH) throw new E2ekvError(code, `an envelope is at least ${MIN_ENVELOPE_LENGTH} bytes`);
  if (length > LIMITS.maxInlineEnvelopeBytes) {
    throw new E2ekvError(
      'TOO_LARGE',
      `an inline envelope is at most ${LIMITS.maxInlineEnvelopeBytes} bytes; use a blob`,
    );
  }
}

function checkBlobLength(length: number, code: 'MALFORMED' | 'INVALID_ARGUMENT'): void {
  if (length < MIN_ENVELOPE_LENGTH) throw new E2ekvError(code, `a blob is at least ${MIN_ENVELOPE_LENGTH} bytes`);
  if (length > LIMITS.maxBlobBytes) throw new E2ekvError('TOO_LARGE', `a blob is at most ${LIMITS.maxBlobBytes} bytes`);
}

/** The role of a role code (1 reader, 2 writer, 3 admin); MALFORMED otherwise. */
export function roleFromCode(code: number): Role {
  for (const [role, value] of Object.entries(ROLE_CODES)) if (value === code) return role as Role;
  throw new E2ekvError('MALFORMED', `unknown role ${code}`);
}

// Every change has the same fixed layout, so servers can size-check it before parsing:
// op u8 || member [32] || box key [32] (zero unless op = add) || role u8 (0 for remove).
function writeMembershipChange(w: ByteWriter, change: MembershipChange): void {
  w.u8(OP_CODES[change.op]).fixed(change.member, ED25519_PUBLIC_KEY_LENGTH, 'member key');
  w.fixed(change.op === 'add' ? change.boxKey : new Uint8Array(32), X25519_PUBLIC_KEY_LENGTH, 'member box key');
  w.u8(change.op === 'remove' ? 0 : ROLE_CODES[change.role]);
}

function readMembershipChange(r: ByteReader): MembershipChange {
  const op = r.u8('membership op');
  const member = r.bytes(ED25519_PUBLIC_KEY_LENGTH, 'member key');
  const boxKey = r.bytes(X25519_PUBLIC_KEY_LENGTH, 'member box key');
  const roleCode = r.u8('role');
  const boxKeyIsZero = boxKey.every((b) => b === 0);
  switch (op) {
    case OP_CODES.add:
      if (boxKeyIsZero) throw new E2ekvError('MALFORMED', 'an added member needs its X25519 key');
      return { op: 'add', member, boxKey, role: roleFromCode(roleCode) };
    case OP_CODES['set-role']:
      if (!boxKeyIsZero) throw new E2ekvError('NON_CANONICAL', 'a role change carries a zero box key');
      return { op: 'set-role', member, role: roleFromCode(roleCode) };
    case OP_CODES.remove:
      if (!boxKeyIsZero || roleCode !== 0)
        throw new E2ekvError('NON_CANONICAL', 'a removal carries a zero box key and role 0');
      return { op: 'remove', member };
    default:
      throw new E2ekvError('MALFORMED', `unknown membership op ${op}`);
  }
}

// SPEC.md 21.3: clock and context, check(e), E, then the recipients. The count
// is checked against the limit before any recipient is read.
function readEpochRecord(r: ByteReader, header: EntryHeader): EpochEntry {
  const { clock, context } = readClockAndContext(r, header.device);
  const check = r.bytes(EPOCH_CHECK_LENGTH, 'epoch check');
  const ephemeral = r.bytes(X25519_PUBLIC_KEY_LENGTH, 'ephemeral key');
  const count = r.u16('recipient count');
  if (count > LIMITS.maxEpochRecipients) {
    throw new E2ekvError(
      'TOO_LARGE',
      `an epoch record wraps for at most ${LIMITS.maxEpochRecipients} members, got ${count}`,
    );
  }
  const recipients: EpochRecipient[] = [];
  for (let i = 0; i < count; i++) {
    recipients.push({
      member: r.bytes(ED25519_PUBLIC_KEY_LENGTH, 'recipient key'),
      wrapped: r.bytes(EPOCH_WRAP_LENGTH, 'wrapped secret'),
    });
  }
  checkEpochRecord(header.epoch, ephemeral, recipients, 'MALFORMED');
  return { type: 'epoch', ...header, clock, context, check, ephemeral, recipients };
}

/** The layout rules of SPEC.md 21.3 that a replica can check without keys. */
function checkEpochRecord(
  epoch: number,
  ephemeral: Uint8Array,
  recipients: readonly EpochRecipient[],
  code: 'MALFORMED' | 'INVALID_ARGUMENT',
): void {
  // Epoch 0's secret comes with the genesis (the creator makes it): no record starts it.
  if (epoch < 1) throw new E2ekvError(code, 'an epoch record starts an epoch of at least 1');
  if (ephemeral.every((b) => b === 0)) throw new E2ekvError(code, "an epoch record's ephemeral key is not all zero");
  if (recipients.length === 0) throw new E2ekvError(code, 'an epoch record wraps its secret for at least one member');
  if (recipients.length > LIMITS.maxEpochRecipients) {
    throw new E2ekvError('TOO_LARGE', `an epoch record wraps for at most ${LIMITS.maxEpochRecipients} members`);
  }
  for (let i = 1; i < recipients.length; i++) {
    if (compareBytes(recipients[i - 1]!.member, recipients[i]!.member) >= 0) {
      throw new E2ekvError(code, 'epoch record recipients must be strictly ascending by member key');
    }
  }
}
