import test from 'ava';
import fc from 'fast-check';
import { compareBytes } from '../src/bytes.js';
import {
  decodeEntry,
  decodeEntryMeta,
  decodeItemPayload,
  encodeEntry,
  encodeEntryMeta,
  encodeItemPayload,
  ValueKind,
  type CausalContext,
  type DataEntry,
  type Entry,
  type EpochEntry,
  type MembershipChange,
} from '../src/entry.js';
import { codeOf } from '../../test/support/errors.js';

const key32 = fc.uint8Array({ minLength: 32, maxLength: 32 });
const writer = new Uint8Array(32).fill(0xaa);

const context: fc.Arbitrary<CausalContext> = fc
  .uniqueArray(fc.tuple(key32, fc.bigInt({ min: 1n, max: (1n << 64n) - 1n })), {
    maxLength: 6,
    selector: ([device]) => Buffer.from(device).toString('hex'),
  })
  .map((pairs) =>
    pairs
      .filter(([device]) => compareBytes(device, writer) !== 0)
      .map(([device, size]) => ({ device, size }))
      .sort((a, b) => compareBytes(a.device, b.device)),
  );

const envelope = fc.uint8Array({ minLength: 77, maxLength: 300 });
const header = fc.record({
  vaultId: key32,
  device: fc.constant(writer),
  index: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  epoch: fc.nat(0xffffffff),
});

const dataEntry: fc.Arbitrary<Entry> = fc
  .tuple(
    header,
    envelope,
    fc.uniqueArray(
      fc.tuple(
        key32,
        fc.oneof(
          envelope.map((e) => ({ kind: 'inline' as const, envelope: e })),
          fc.tuple(key32, fc.integer({ min: 77, max: 64 * 1024 * 1024 })).map(([hash, length]) => ({
            kind: 'blob' as const,
            hash,
            length,
          })),
        ),
      ),
      { minLength: 1, maxLength: 8, selector: ([k]) => Buffer.from(k).toString('hex') },
    ),
  )
  .map(([h, meta, items]) => ({
    type: 'data' as const,
    ...h,
    meta,
    items: items
      .map(([blindedKey, value]) => ({ blindedKey, value }))
      .sort((a, b) => compareBytes(a.blindedKey, b.blindedKey)),
  }));

const role = fc.constantFrom('reader' as const, 'writer' as const, 'admin' as const);
const change: fc.Arbitrary<MembershipChange> = fc.oneof(
  fc.record({
    op: fc.constant('add' as const),
    member: key32,
    boxKey: key32.filter((k) => k.some((b) => b !== 0)),
    role,
  }),
  fc.record({ op: fc.constant('set-role' as const), member: key32, role }),
  fc.record({ op: fc.constant('remove' as const), member: key32 }),
);
const membershipEntry: fc.Arbitrary<Entry> = fc
  .tuple(header, fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.nat(0xffffffff), context, change)
  .map(([h, wallMs, counter, ctx, ch]) => ({
    type: 'membership' as const,
    ...h,
    clock: { wallMs, counter },
    context: ctx,
    change: ch,
  }));

const epochEntry: fc.Arbitrary<Entry> = fc
  .tuple(
    header.map((h) => ({ ...h, epoch: Math.max(1, h.epoch) })),
    fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
    fc.nat(0xffffffff),
    context,
    key32,
    key32.filter((k) => k.some((b) => b !== 0)),
    fc.uniqueArray(fc.tuple(key32, fc.uint8Array({ minLength: 72, maxLength: 72 })), {
      minLength: 1,
      maxLength: 6,
      selector: ([member]) => Buffer.from(member).toString('hex'),
    }),
  )
  .map(([h, wallMs, counter, ctx, check, ephemeral, recipients]) => ({
    type: 'epoch' as const,
    ...h,
    clock: { wallMs, counter },
    context: ctx,
    check,
    ephemeral,
    recipients: recipients
      .map(([member, wrapped]) => ({ member, wrapped }))
      .sort((a, b) => compareBytes(a.member, b.member)),
  }));

test('entries round-trip and re-encode to the same bytes', (t) => {
  fc.assert(
    fc.property(fc.oneof(dataEntry, membershipEntry, epochEntry), (entry) => {
      const bytes = encodeEntry(entry);
      const decoded = decodeEntry(bytes);
      t.deepEqual(decoded, entry);
      t.deepEqual(encodeEntry(decoded), bytes);
    }),
    { numRuns: 300 },
  );
});

test('no prefix of an entry and no entry with a byte appended decodes', (t) => {
  fc.assert(
    fc.property(fc.oneof(dataEntry, membershipEntry, epochEntry), fc.nat(), (entry, cut) => {
      const bytes = encodeEntry(entry);
      t.is(codeOf(() => decodeEntry(bytes.subarray(0, cut % bytes.length))) !== 'ok', true);
      t.is(
        codeOf(() => decodeEntry(Uint8Array.of(...bytes, 0))),
        'MALFORMED',
      );
    }),
    { numRuns: 200 },
  );
});

test('entry metadata and item payloads round-trip', (t) => {
  fc.assert(
    fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.nat(0xffffffff), context, (wallMs, counter, ctx) => {
      const meta = { clock: { wallMs, counter }, context: ctx };
      t.deepEqual(decodeEntryMeta(encodeEntryMeta(meta, writer), writer), meta);
    }),
  );
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 1, maxLength: 1024 }),
      fc.constantFrom(ValueKind.bytes, ValueKind.json, ValueKind.automerge),
      fc.uint8Array({ maxLength: 500 }),
      (name, kind, value) => {
        const item = { name, kind, value };
        t.deepEqual(decodeItemPayload(encodeItemPayload(item)), item);
      },
    ),
  );
});

function sampleData(): DataEntry {
  return {
    type: 'data',
    vaultId: new Uint8Array(32).fill(1),
    device: writer,
    index: 0n,
    epoch: 0,
    meta: new Uint8Array(80),
    items: [
      { blindedKey: new Uint8Array(32).fill(1), value: { kind: 'inline', envelope: new Uint8Array(80) } },
      { blindedKey: new Uint8Array(32).fill(2), value: { kind: 'inline', envelope: new Uint8Array(80) } },
    ],
  };
}

test('encoders refuse what decoders would reject', (t) => {
  const e = sampleData();
  t.is(
    codeOf(() => encodeEntry({ ...e, items: [...e.items].reverse() })),
    'INVALID_ARGUMENT',
  );
  t.is(
    codeOf(() => encodeEntry({ ...e, items: [e.items[0]!, e.items[0]!] })),
    'INVALID_ARGUMENT',
  );
  t.is(
    codeOf(() => encodeEntry({ ...e, items: [] })),
    'INVALID_ARGUMENT',
  );
  t.is(
    codeOf(() => encodeEntry({ ...e, meta: new Uint8Array(10) })),
    'INVALID_ARGUMENT',
  );
  t.is(
    codeOf(() => encodeEntry({ ...e, meta: new Uint8Array(65537) })),
    'TOO_LARGE',
  );
  const self = [{ device: writer, size: 1n }];
  t.is(
    codeOf(() => encodeEntryMeta({ clock: { wallMs: 0n, counter: 0 }, context: self }, writer)),
    'INVALID_ARGUMENT',
  );
  const zero = [{ device: new Uint8Array(32), size: 0n }];
  t.is(
    codeOf(() => encodeEntryMeta({ clock: { wallMs: 0n, counter: 0 }, context: zero }, writer)),
    'INVALID_ARGUMENT',
  );
  t.is(
    codeOf(() => encodeItemPayload({ name: Uint8Array.of(0x61), kind: ValueKind.tombstone, value: Uint8Array.of(1) })),
    'INVALID_ARGUMENT',
  );
  t.is(
    codeOf(() => encodeItemPayload({ name: new Uint8Array(0), kind: ValueKind.bytes, value: Uint8Array.of(1) })),
    'INVALID_ARGUMENT',
  );
});

test('decoders reject hand-made bad layouts with the right code', (t) => {
  const bytes = encodeEntry(sampleData());
  const typeOffset = 15;
  const withType = bytes.slice();
  withType[typeOffset] = 9;
  t.is(
    codeOf(() => decodeEntry(withType)),
    'UNSUPPORTED_VERSION',
  );
  const v2 = bytes.slice();
  v2[8] = 0x32; // "e2ekv/v2/entry"
  t.is(
    codeOf(() => decodeEntry(v2)),
    'UNSUPPORTED_VERSION',
  );
  const garbage = bytes.slice();
  garbage[0] = 0x00;
  t.is(
    codeOf(() => decodeEntry(garbage)),
    'MALFORMED',
  );
  // Swap the two items' blinded keys so that they are out of order.
  const swapped = bytes.slice();
  const firstKey = typeOffset + 1 + 32 + 32 + 8 + 4 + 4 + 80 + 2;
  swapped[firstKey] = 3;
  t.is(
    codeOf(() => decodeEntry(swapped)),
    'MALFORMED',
  );
  const badRef = bytes.slice();
  badRef[firstKey + 32] = 7;
  t.is(
    codeOf(() => decodeEntry(badRef)),
    'MALFORMED',
  );
  t.is(
    codeOf(() => decodeItemPayload(Uint8Array.of(0, 1, 0x61, 9))),
    'UNSUPPORTED_VERSION',
  );
  t.is(
    codeOf(() => decodeItemPayload(Uint8Array.of(0, 1, 0x61, 0, 1))),
    'MALFORMED',
  );
  t.is(
    codeOf(() => decodeEntry(new Uint8Array(4 * 1024 * 1024 + 1))),
    'TOO_LARGE',
  );
});

function sampleEpoch(): EpochEntry {
  return {
    type: 'epoch',
    vaultId: new Uint8Array(32).fill(1),
    device: writer,
    index: 5n,
    epoch: 1,
    clock: { wallMs: 10n, counter: 0 },
    context: [{ device: new Uint8Array(32).fill(3), size: 2n }],
    check: new Uint8Array(32).fill(4),
    ephemeral: new Uint8Array(32).fill(5),
    recipients: [
      { member: new Uint8Array(32).fill(6), wrapped: new Uint8Array(72).fill(7) },
      { member: new Uint8Array(32).fill(8), wrapped: new Uint8Array(72).fill(9) },
    ],
  };
}

// Offsets in the encoded sample: header, clock and one context entry, then check and E.
const epochBody = 15 + 1 + 32 + 32 + 8 + 4;
const epochCheckAt = epochBody + 8 + 4 + 2 + 40;
const epochCountAt = epochCheckAt + 32 + 32;

test('epoch records: encoders and decoders enforce the layout rules of SPEC 21.3', (t) => {
  const e = sampleEpoch();
  const bytes = encodeEntry(e);
  t.is(bytes[15], 3, 'entry type 3');
  t.is(bytes.length, epochCountAt + 2 + 2 * (32 + 72));
  t.deepEqual(decodeEntry(bytes), e);

  t.is(
    codeOf(() => encodeEntry({ ...e, epoch: 0 })),
    'INVALID_ARGUMENT',
  );
  t.is(
    codeOf(() => encodeEntry({ ...e, ephemeral: new Uint8Array(32) })),
    'INVALID_ARGUMENT',
  );
  t.is(
    codeOf(() => encodeEntry({ ...e, recipients: [] })),
    'INVALID_ARGUMENT',
  );
  t.is(
    codeOf(() => encodeEntry({ ...e, recipients: [...e.recipients].reverse() })),
    'INVALID_ARGUMENT',
  );
  t.is(
    codeOf(() => encodeEntry({ ...e, recipients: [e.recipients[0]!, e.recipients[0]!] })),
    'INVALID_ARGUMENT',
  );
  const shortWrap = [{ member: e.recipients[0]!.member, wrapped: new Uint8Array(71) }];
  t.is(
    codeOf(() => encodeEntry({ ...e, recipients: shortWrap })),
    'INVALID_ARGUMENT',
  );
  const many = Array.from({ length: 1025 }, (_, i) => ({
    member: Uint8Array.of(i >> 8, i & 255, ...new Uint8Array(30)),
    wrapped: new Uint8Array(72),
  }));
  t.is(
    codeOf(() => encodeEntry({ ...e, recipients: many })),
    'TOO_LARGE',
  );
  t.is(
    codeOf(() => encodeEntry({ ...e, recipients: many.slice(0, 1024) })),
    'ok',
  );

  const epochZero = bytes.slice();
  epochZero.set([0, 0, 0, 0], epochBody - 4);
  t.is(
    codeOf(() => decodeEntry(epochZero)),
    'MALFORMED',
    'epoch 0',
  );
  const zeroE = bytes.slice();
  zeroE.fill(0, epochCheckAt + 32, epochCountAt);
  t.is(
    codeOf(() => decodeEntry(zeroE)),
    'MALFORMED',
    'E all zero',
  );
  const none = Uint8Array.of(...bytes.subarray(0, epochCountAt), 0, 0);
  t.is(
    codeOf(() => decodeEntry(none)),
    'MALFORMED',
    'no recipients',
  );
  const tooMany = bytes.slice();
  tooMany.set([0x04, 0x01], epochCountAt);
  t.is(
    codeOf(() => decodeEntry(tooMany)),
    'TOO_LARGE',
    '1025 recipients, checked before reading them',
  );
  const unsorted = bytes.slice();
  unsorted.fill(0x0a, epochCountAt + 2, epochCountAt + 2 + 32);
  t.is(
    codeOf(() => decodeEntry(unsorted)),
    'MALFORMED',
    'recipients out of order',
  );
  const duplicate = bytes.slice();
  duplicate.fill(0x08, epochCountAt + 2, epochCountAt + 2 + 32);
  t.is(
    codeOf(() => decodeEntry(duplicate)),
    'MALFORMED',
    'one member twice',
  );
  t.is(
    codeOf(() => decodeEntry(bytes.subarray(0, bytes.length - 1))),
    'MALFORMED',
    'a wrap of 71 bytes',
  );
  const count3 = bytes.slice();
  count3[epochCountAt + 1] = 3;
  t.is(
    codeOf(() => decodeEntry(count3)),
    'MALFORMED',
    'count larger than the recipients',
  );
  t.is(
    codeOf(() => decodeEntry(Uint8Array.of(...bytes, 0))),
    'MALFORMED',
    'trailing byte',
  );
  t.is(
    codeOf(() => encodeEntry({ ...e, context: [{ device: writer, size: 1n }] })),
    'INVALID_ARGUMENT',
    'own device in context',
  );
});
