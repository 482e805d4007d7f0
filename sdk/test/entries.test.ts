import test from 'ava';
import fc from 'fast-check';
import {
  EnvelopePurpose,
  ValueKind,
  decodeEntry,
  ed25519PublicKeyFromSeed,
  encodeItemPayload,
  randomBytes,
  sealEnvelope,
  sha256,
  toHex,
  utf8,
  type DataEntry,
} from '@e2ekv/protocol';
import { BLOB_THRESHOLD, openDataEntry, sealDataEntry, type VaultKeys, type Write } from '../src/entries.js';
import { EpochKeyRing } from '../src/keyring.js';
import { asyncCodeOf, codeOf } from '../../test/support/errors.js';

const vaultId = randomBytes(32);
const secret = randomBytes(32);
const keys: VaultKeys = new EpochKeyRing(vaultId, secret);
const device = ed25519PublicKeyFromSeed(randomBytes(32));
const other = toHex(ed25519PublicKeyFromSeed(randomBytes(32)));

function seal(writes: Write[], index = 3) {
  return sealDataEntry({
    keys,
    device,
    index,
    clock: { wallMs: 1_000n, counter: 2 },
    context: [{ device: Buffer.from(other, 'hex'), size: 4n }],
    writes,
  });
}

function blobStore(blobs: Uint8Array[]) {
  return (hash: Uint8Array) => {
    const found = blobs.find((b) => toHex(sha256(b)) === toHex(hash));
    if (found === undefined) throw new Error('blob not found');
    return Promise.resolve(found);
  };
}

test('writes round-trip through a sealed entry, with metadata', async (t) => {
  const writes: Write[] = [
    { name: 'notes/a', value: { kind: 'json', json: { done: false, n: [1, 2] } } },
    { name: 'bytes', value: { kind: 'bytes', bytes: Uint8Array.of(1, 2, 3) } },
    { name: 'gone', value: { kind: 'tombstone' } },
    { name: 'big', value: { kind: 'bytes', bytes: randomBytes(20_000) } },
  ];
  const sealed = seal(writes);
  t.is(sealed.blobs.length, 1, 'the large value went to a blob');
  t.true(sealed.blobs[0]!.length > BLOB_THRESHOLD);
  const decoded = decodeEntry(sealed.bytes) as DataEntry;
  const opened = await openDataEntry(decoded, keys, blobStore(sealed.blobs));
  t.deepEqual(sealed.opened, opened, 'the writer holds exactly what readers decrypt');
  t.is(opened.device, toHex(device));
  t.is(opened.index, 3);
  t.deepEqual(opened.clock, { wallMs: 1_000n, counter: 2 });
  t.deepEqual([...opened.context], [[other, 4]]);
  const byName = new Map(opened.items.map((i) => [i.name, i.value]));
  for (const w of writes) t.deepEqual(byName.get(w.name), w.value, w.name);
  for (const item of opened.items) t.is(item.blindedKey, toHex(keys.blinder.blind(item.name)));
});

test('any set of distinct names and values round-trips', async (t) => {
  await fc.assert(
    fc.asyncProperty(
      fc.uniqueArray(
        fc.tuple(fc.string({ minLength: 1, maxLength: 30, unit: 'grapheme' }), fc.uint8Array({ maxLength: 100 })),
        {
          minLength: 1,
          maxLength: 10,
          selector: ([name]) => name,
        },
      ),
      async (pairs) => {
        const writes: Write[] = pairs.map(([name, bytes]) => ({ name, value: { kind: 'bytes', bytes } }));
        const sealed = seal(writes);
        const opened = await openDataEntry(decodeEntry(sealed.bytes) as DataEntry, keys, blobStore(sealed.blobs));
        t.deepEqual(sealed.opened, opened);
        t.deepEqual(opened.items.map((i) => [i.name, i.value]).sort(), writes.map((w) => [w.name, w.value]).sort());
      },
    ),
    { numRuns: 100 },
  );
});

test('the same key twice in one batch, or no keys, is refused', (t) => {
  t.is(
    codeOf(() => seal([])),
    'INVALID_ARGUMENT',
  );
  const twice: Write[] = [
    { name: 'a', value: { kind: 'tombstone' } },
    { name: 'a', value: { kind: 'bytes', bytes: new Uint8Array(1) } },
  ];
  t.is(
    codeOf(() => seal(twice)),
    'INVALID_ARGUMENT',
  );
});

test('an item moved into another entry, or a name sealed under another key, is BINDING_MISMATCH', async (t) => {
  const first = decodeEntry(
    seal([{ name: 'a', value: { kind: 'bytes', bytes: Uint8Array.of(1) } }], 3).bytes,
  ) as DataEntry;
  const second = decodeEntry(
    seal([{ name: 'a', value: { kind: 'bytes', bytes: Uint8Array.of(2) } }], 4).bytes,
  ) as DataEntry;
  const moved: DataEntry = { ...second, items: first.items };
  t.is(await asyncCodeOf(() => openDataEntry(moved, keys, blobStore([]))), 'BINDING_MISMATCH');

  // A member seals the name "b" under the blinded key of "a", at the right place.
  const blindedKey = keys.blinder.blind('a');
  const envelope = sealEnvelope(
    keys.keysFor(0)[0]!,
    { vaultId, device, logIndex: 3n, epoch: 0, purpose: EnvelopePurpose.itemValue, item: 0, blindedKey },
    encodeItemPayload({ name: utf8('b'), kind: ValueKind.bytes, value: Uint8Array.of(9) }),
  );
  const lying: DataEntry = { ...first, items: [{ blindedKey, value: { kind: 'inline', envelope } }] };
  t.is(await asyncCodeOf(() => openDataEntry(lying, keys, blobStore([]))), 'BINDING_MISMATCH');
});

test('an entry of an epoch whose key this device lacks is PERMISSION_DENIED; another vault is INTEGRITY', async (t) => {
  const entry = decodeEntry(seal([{ name: 'a', value: { kind: 'tombstone' } }]).bytes) as DataEntry;
  t.is(await asyncCodeOf(() => openDataEntry({ ...entry, epoch: 1 }, keys, blobStore([]))), 'PERMISSION_DENIED');
  t.is(
    await asyncCodeOf(() => openDataEntry({ ...entry, vaultId: randomBytes(32) }, keys, blobStore([]))),
    'INTEGRITY',
  );
});
