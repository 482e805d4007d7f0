import test from 'ava';
import type { ExecutionContext } from 'ava';
import {
  E2ekvError,
  addNoteSignatures,
  cosignatureSigner,
  encodeEntry,
  encodeGenesisBody,
  fromHex,
  leafHash,
  parseNote,
  randomBytes,
  sealEpochRecord,
  sha256,
  signDeviceCheckpoint,
  deviceCheckpointSigner,
  toHex,
  verifyConsistency,
  verifyDeviceCheckpoint,
  verifyInclusion,
} from '@e2ekv/protocol';
import type { AppendRequest, CausalContext, ErrorCode, EntryItem, MembershipChange } from '@e2ekv/protocol';
import { Acceptor } from '../src/accept.js';
import { DEFAULT_LIMITS } from '../src/limits.js';
import type { ServerLimits } from '../src/limits.js';
import { MembershipCache } from '../src/membership.js';
import type { StorageAdapter } from '../src/storage/adapter.js';
import { MemoryStorage } from '../src/storage/memory.js';
import { TestDevice } from './support/writer.js';

const COSIGNER = 'replica.test/w';
const T0 = 1_800_000_000_000;

async function setup(limits: Partial<ServerLimits> = {}, wrap?: (storage: MemoryStorage) => StorageAdapter) {
  const memory = new MemoryStorage();
  const storage = wrap === undefined ? memory : wrap(memory);
  const clock = { now: T0 };
  const cosignerSeed = randomBytes(32);
  const cosigner = await cosignatureSigner(COSIGNER, cosignerSeed, () => BigInt(Math.floor(clock.now / 1000)));
  const membership = new MembershipCache(storage);
  const acceptor = new Acceptor({
    storage,
    membership,
    limits: { ...DEFAULT_LIMITS, ...limits },
    cosigner,
    now: () => clock.now,
  });
  const admin = await TestDevice.create();
  const { signedGenesis, vaultId } = await admin.genesis();
  await acceptor.createVault(signedGenesis);
  const cosigners = [{ name: COSIGNER, publicKey: cosigner.publicKey }];
  /** Adds `device` with `role` through the admin's log. */
  const enrol = async (device: TestDevice, role: 'reader' | 'writer' | 'admin') =>
    acceptor.append(vaultId, admin.hex, await admin.membershipAppend(vaultId, device.addChange(role)));
  return { storage: memory, acceptor, membership, clock, admin, vaultId, cosigners, enrol };
}

type Setup = Awaited<ReturnType<typeof setup>>;

/** Everything storage holds for the vault, to compare before and after a refusal. */
async function snapshot(storage: StorageAdapter, vaultId: string) {
  const heads = await storage.listHeads(vaultId);
  return {
    vaults: await storage.listVaults(),
    logs: await Promise.all(
      heads.map(async (head) => ({
        head,
        entries: await storage.getEntries(vaultId, head.device, 0, head.size + 10),
        leaves: await storage.getLeafHashes(vaultId, head.device),
      })),
    ),
    membership: await storage.listMembership(vaultId),
    evidence: await storage.listEvidence(vaultId),
    bytes: await storage.vaultBytes(vaultId),
  };
}

/** The append is refused with `code`, and storage is as it was (but for `newEvidence` records). */
async function refused(
  t: ExecutionContext,
  s: Setup,
  append: () => Promise<unknown>,
  code: ErrorCode,
  newEvidence = 0,
): Promise<E2ekvError> {
  const before = await snapshot(s.storage, s.vaultId);
  const error = await t.throwsAsync(append, { instanceOf: E2ekvError });
  t.is(error?.code, code, error?.message);
  const after = await snapshot(s.storage, s.vaultId);
  t.deepEqual(after.evidence.slice(0, before.evidence.length), before.evidence);
  t.is(after.evidence.length, before.evidence.length + newEvidence);
  t.deepEqual({ ...after, evidence: [] }, { ...before, evidence: [] });
  return error!;
}

/** A data entry that decodes (its envelopes are random bytes: the server cannot tell). */
function dataEntry(at: { vaultId: Uint8Array; device: Uint8Array; index: bigint }, items?: EntryItem[]): Uint8Array {
  return encodeEntry({
    type: 'data',
    ...at,
    epoch: 0,
    meta: randomBytes(100),
    items: items ?? [{ blindedKey: randomBytes(32), value: { kind: 'inline', envelope: randomBytes(100) } }],
  });
}

function membershipEntry(
  at: { vaultId: Uint8Array; device: Uint8Array; index: bigint },
  change: MembershipChange,
): Uint8Array {
  return encodeEntry({ type: 'membership', ...at, epoch: 0, clock: { wallMs: 1n, counter: 0 }, context: [], change });
}

const SMALL_ORDER_KEY = fromHex('01' + '00'.repeat(31)); // the identity point

function withEntries(request: AppendRequest, entries: Uint8Array[]): AppendRequest {
  return { ...request, entries };
}

// --- vaults -------------------------------------------------------------------------------------

test('createVault verifies the genesis and is idempotent', async (t) => {
  const s = await setup();
  const other = await TestDevice.create();
  const { signedGenesis, vaultId } = await other.genesis();
  t.deepEqual(await s.acceptor.createVault(signedGenesis), { vaultId, created: true });
  t.deepEqual(await s.acceptor.createVault(signedGenesis), { vaultId, created: false });
  t.deepEqual(await s.storage.getGenesis(vaultId), signedGenesis);
});

test('createVault refuses bad genesis records with the protocol codes', async (t) => {
  const s = await setup();
  const device = await TestDevice.create();
  const { signedGenesis } = await device.genesis();
  const flipped = signedGenesis.slice();
  flipped[flipped.length - 1]! ^= 1;
  const wrongTag = signedGenesis.slice();
  wrongTag[7] = '2'.charCodeAt(0); // e2ekv/v2/genesis
  const smallOrder = new Uint8Array([
    ...encodeGenesisBody({
      createdAtMs: 0n,
      nonce: new Uint8Array(16),
      creator: SMALL_ORDER_KEY,
      creatorBoxKey: randomBytes(32),
    }),
    ...new Uint8Array(64),
  ]);
  const cases: [Uint8Array, ErrorCode][] = [
    [flipped, 'BAD_SIGNATURE'],
    [signedGenesis.subarray(1), 'MALFORMED'],
    [wrongTag, 'UNSUPPORTED_VERSION'],
    [smallOrder, 'BAD_KEY'],
  ];
  for (const [genesis, code] of cases) {
    const error = await t.throwsAsync(s.acceptor.createVault(genesis), { instanceOf: E2ekvError });
    t.is(error?.code, code);
  }
  t.deepEqual(await s.storage.listVaults(), [s.vaultId]);
});

// --- accepted appends ---------------------------------------------------------------------------

test('an honest append is stored and its checkpoint cosigned with a timestamp', async (t) => {
  const s = await setup();
  const request = await s.admin.nextAppend(s.vaultId, { values: 3, itemsPerEntry: 2 });
  const result = await s.acceptor.append(s.vaultId, s.admin.hex, request);
  t.is(result.size, 3);
  const verified = await verifyDeviceCheckpoint(
    result.cosignedCheckpoint,
    fromHex(s.vaultId),
    s.admin.publicKey,
    s.cosigners,
  );
  t.is(verified.checkpoint.size, 3n);
  t.deepEqual(verified.checkpoint.root, s.admin.tree(s.vaultId).root());
  t.deepEqual(
    verified.cosignatures.map((c) => [c.name, c.timestamp]),
    [[COSIGNER, BigInt(T0 / 1000)]],
  );

  const head = (await s.storage.getHead(s.vaultId, s.admin.hex))!;
  t.is(head.size, 3);
  t.deepEqual(head.root, s.admin.tree(s.vaultId).root());
  // Stored as the device signed it: no cosignature.
  t.is(head.note, request.checkpoint);
  t.deepEqual(
    (await verifyDeviceCheckpoint(head.note, fromHex(s.vaultId), s.admin.publicKey, s.cosigners)).cosignatures,
    [],
  );
  const stored = await s.storage.getEntries(s.vaultId, s.admin.hex, 0, 3);
  t.deepEqual(
    stored.map((e) => e.bytes),
    request.entries,
  );
  t.deepEqual(
    stored.map((e) => e.leafHash),
    request.entries.map((e) => leafHash(e)),
  );

  // The next batch comes with a consistency proof from size 3.
  const next = await s.admin.nextAppend(s.vaultId, { values: 2 });
  t.is(next.start, 3);
  t.true(next.consistencyProof.length > 0);
  t.is((await s.acceptor.append(s.vaultId, s.admin.hex, next)).size, 5);
  t.is((await s.storage.getHead(s.vaultId, s.admin.hex))!.size, 5);
});

test('the stored note keeps only the device signature; the answer adds only ours', async (t) => {
  const s = await setup();
  const request = await s.admin.nextAppend(s.vaultId);
  // A line that claims to be another replica's cosignature, which nobody checked.
  const stranger = await cosignatureSigner('other.replica/w', randomBytes(32));
  const withStranger = await addNoteSignatures(request.checkpoint, [stranger]);
  const result = await s.acceptor.append(s.vaultId, s.admin.hex, { ...request, checkpoint: withStranger });
  t.is((await s.storage.getHead(s.vaultId, s.admin.hex))!.note, request.checkpoint);
  t.deepEqual(
    parseNote(result.cosignedCheckpoint).signatures.map((sig) => sig.name),
    [parseNote(request.checkpoint).signatures[0]!.name, COSIGNER],
  );
});

test('blobs are checked, stored, and may be referenced again without being sent', async (t) => {
  const s = await setup();
  const request = await s.admin.nextAppend(s.vaultId, { values: 2, blobBytes: 5000 });
  t.is(request.blobs.length, 2);
  await s.acceptor.append(s.vaultId, s.admin.hex, request);
  for (const blob of request.blobs) {
    t.deepEqual(await s.storage.getBlob(s.vaultId, toHex(sha256(blob))), blob);
  }
  const bytes = await s.storage.vaultBytes(s.vaultId);
  const blob = request.blobs[0]!;
  const again = await s.admin.writeRaw(s.vaultId, (at) =>
    dataEntry(at, [{ blindedKey: randomBytes(32), value: { kind: 'blob', hash: sha256(blob), length: blob.length } }]),
  );
  t.deepEqual(again.blobs, []);
  await s.acceptor.append(s.vaultId, s.admin.hex, again);
  // Sending a stored blob again is accepted and stores nothing twice.
  const resent = await s.admin.writeRaw(
    s.vaultId,
    (at) =>
      dataEntry(at, [
        { blindedKey: randomBytes(32), value: { kind: 'blob', hash: sha256(blob), length: blob.length } },
      ]),
    [blob],
  );
  await s.acceptor.append(s.vaultId, s.admin.hex, resent);
  t.is(await s.storage.vaultBytes(s.vaultId), bytes + again.entries[0]!.length + resent.entries[0]!.length);
});

test('membership entries by an admin are stored and enforced from the next append on', async (t) => {
  const s = await setup();
  const writer = await TestDevice.create();
  t.is(await s.membership.roleOf(s.vaultId, writer.hex), undefined);
  await s.enrol(writer, 'writer');
  t.is(await s.membership.roleOf(s.vaultId, writer.hex), 'writer');
  t.is((await s.storage.listMembership(s.vaultId)).length, 1);
  t.is((await s.acceptor.append(s.vaultId, writer.hex, await writer.nextAppend(s.vaultId))).size, 1);
  // A fresh cache replays the same roles from storage.
  t.is(await new MembershipCache(s.storage).roleOf(s.vaultId, writer.hex), 'writer');
});

// --- refusals, in the order the acceptor checks ----------------------------------------------------

test('an unknown vault is NOT_FOUND', async (t) => {
  const s = await setup();
  const other = await TestDevice.create();
  const { vaultId } = await other.genesis();
  const error = await t.throwsAsync(s.acceptor.append(vaultId, other.hex, await other.nextAppend(vaultId)), {
    instanceOf: E2ekvError,
  });
  t.is(error?.code, 'NOT_FOUND');
  t.deepEqual(await s.storage.listVaults(), [s.vaultId]);
});

test('appends beyond the per-device rate are RATE_LIMITED until tokens refill', async (t) => {
  const s = await setup({ appendsPerMinutePerDevice: 2 });
  const writer = await TestDevice.create();
  await s.enrol(writer, 'writer');
  await s.acceptor.append(s.vaultId, s.admin.hex, await s.admin.nextAppend(s.vaultId));
  const third = await s.admin.nextAppend(s.vaultId);
  const error = await refused(t, s, () => s.acceptor.append(s.vaultId, s.admin.hex, third), 'RATE_LIMITED');
  t.regex(error.message, /2 appends a minute/);
  // Another device has its own bucket.
  await s.acceptor.append(s.vaultId, writer.hex, await writer.nextAppend(s.vaultId));
  s.clock.now += 30_000; // one token back
  t.is((await s.acceptor.append(s.vaultId, s.admin.hex, third)).size, 3);
  await refused(
    t,
    s,
    async () => s.acceptor.append(s.vaultId, s.admin.hex, await s.admin.nextAppend(s.vaultId)),
    'RATE_LIMITED',
  );
});

test('non-members and readers cannot append; writers cannot change membership', async (t) => {
  const s = await setup();
  const stranger = await TestDevice.create();
  const reader = await TestDevice.create();
  const writer = await TestDevice.create();
  await s.enrol(reader, 'reader');
  await s.enrol(writer, 'writer');
  const e1 = await refused(
    t,
    s,
    async () => s.acceptor.append(s.vaultId, stranger.hex, await stranger.nextAppend(s.vaultId)),
    'PERMISSION_DENIED',
  );
  t.regex(e1.message, /not a member/);
  const e2 = await refused(
    t,
    s,
    async () => s.acceptor.append(s.vaultId, reader.hex, await reader.nextAppend(s.vaultId)),
    'PERMISSION_DENIED',
  );
  t.regex(e2.message, /readers cannot write/);
  const promote = await writer.membershipAppend(s.vaultId, { op: 'set-role', member: writer.publicKey, role: 'admin' });
  const e3 = await refused(t, s, () => s.acceptor.append(s.vaultId, writer.hex, promote), 'PERMISSION_DENIED');
  t.regex(e3.message, /only an admin/);
});

test('a batch that demotes its own writer cannot go on writing', async (t) => {
  const s = await setup();
  await s.admin.membershipAppend(s.vaultId, { op: 'set-role', member: s.admin.publicKey, role: 'reader' });
  await s.admin.nextAppend(s.vaultId);
  const batch = await s.admin.appendFrom(s.vaultId, 0);
  t.is(batch.entries.length, 2);
  const error = await refused(t, s, () => s.acceptor.append(s.vaultId, s.admin.hex, batch), 'PERMISSION_DENIED');
  t.regex(error.message, /entry 1 writes data/);
  t.is(await s.membership.roleOf(s.vaultId, s.admin.hex), 'admin');
});

test('an append that does not start at the stored size is a CONFLICT naming the size', async (t) => {
  const s = await setup();
  await s.acceptor.append(s.vaultId, s.admin.hex, await s.admin.nextAppend(s.vaultId, { values: 2 }));
  await s.admin.nextAppend(s.vaultId);
  for (const from of [0, 1, 3]) {
    const error = await refused(
      t,
      s,
      async () =>
        s.acceptor.append(s.vaultId, s.admin.hex, { ...(await s.admin.appendFrom(s.vaultId, 2)), start: from }),
      'CONFLICT',
    );
    t.is(error.details['expected'], 2);
  }
});

test('batches, entries, blobs and vaults over the limits are TOO_LARGE', async (t) => {
  const big = await setup({ maxBatchEntries: 2 });
  await refused(
    t,
    big,
    async () => big.acceptor.append(big.vaultId, big.admin.hex, await big.admin.nextAppend(big.vaultId, { values: 3 })),
    'TOO_LARGE',
  );

  const probe = await (await TestDevice.create()).nextAppend('00'.repeat(32));
  const entrySize = probe.entries[0]!.length;
  const wide = await setup({ maxEntryBytes: entrySize - 1 });
  await refused(
    t,
    wide,
    async () => wide.acceptor.append(wide.vaultId, wide.admin.hex, await wide.admin.nextAppend(wide.vaultId)),
    'TOO_LARGE',
  );

  const blobby = await setup({ maxBlobBytes: 1000 });
  await refused(
    t,
    blobby,
    async () =>
      blobby.acceptor.append(
        blobby.vaultId,
        blobby.admin.hex,
        await blobby.admin.nextAppend(blobby.vaultId, { blobBytes: 1000 }),
      ),
    'TOO_LARGE',
  );

  const first = await (await TestDevice.create()).nextAppend('00'.repeat(32), { values: 2 });
  const quota = first.entries.reduce((n, e) => n + e.length, 0) + 10;
  const full = await setup({ maxVaultBytes: quota });
  await full.acceptor.append(full.vaultId, full.admin.hex, await full.admin.nextAppend(full.vaultId, { values: 2 }));
  const error = await refused(
    t,
    full,
    async () => full.acceptor.append(full.vaultId, full.admin.hex, await full.admin.nextAppend(full.vaultId)),
    'TOO_LARGE',
  );
  t.regex(error.message, new RegExp(`quota of ${quota} bytes`));
});

test('entries that do not decode are refused with the decoder codes', async (t) => {
  const s = await setup();
  const request = await s.admin.nextAppend(s.vaultId);
  const entry = request.entries[0]!;
  const unknownType = entry.slice();
  unknownType[15] = 7;
  const otherVersion = entry.slice();
  otherVersion[7] = '2'.charCodeAt(0); // e2ekv/v2/entry
  const removal = membershipEntry(
    { vaultId: fromHex(s.vaultId), device: s.admin.publicKey, index: 0n },
    { op: 'remove', member: (await TestDevice.create()).publicKey },
  );
  const nonCanonical = removal.slice();
  nonCanonical[nonCanonical.length - 1] = 1; // a removal carries role 0
  const cases: [Uint8Array, ErrorCode][] = [
    [randomBytes(200), 'MALFORMED'],
    [entry.subarray(0, entry.length - 1), 'MALFORMED'],
    [new Uint8Array([...entry, 0]), 'MALFORMED'],
    [unknownType, 'UNSUPPORTED_VERSION'],
    [otherVersion, 'UNSUPPORTED_VERSION'],
    [nonCanonical, 'NON_CANONICAL'],
  ];
  for (const [bytes, code] of cases) {
    await refused(t, s, () => s.acceptor.append(s.vaultId, s.admin.hex, withEntries(request, [bytes])), code);
  }
  await refused(t, s, () => s.acceptor.append(s.vaultId, s.admin.hex, withEntries(request, [])), 'MALFORMED');
});

test('an entry that claims another vault, device or index is INTEGRITY, though the device signed it', async (t) => {
  const s = await setup();
  await s.acceptor.append(s.vaultId, s.admin.hex, await s.admin.nextAppend(s.vaultId));
  const other = await TestDevice.create();
  const moves: [string, (at: { vaultId: Uint8Array; device: Uint8Array; index: bigint }) => Uint8Array][] = [
    ['index 2', (at) => dataEntry({ ...at, index: at.index + 1n })],
    ['index 0', (at) => dataEntry({ ...at, index: 0n })],
    [`device ${other.hex}`, (at) => dataEntry({ ...at, device: other.publicKey })],
    ['vault', (at) => dataEntry({ ...at, vaultId: randomBytes(32) })],
  ];
  for (const [claim, make] of moves) {
    const request = await s.admin.writeRaw(s.vaultId, make);
    const error = await refused(t, s, () => s.acceptor.append(s.vaultId, s.admin.hex, request), 'INTEGRITY');
    t.regex(error.message, new RegExp(`entry 0 of the append claims ${claim}`));
    s.admin.rewind(s.vaultId, 1);
  }
  // The same device can then append honestly.
  t.is((await s.acceptor.append(s.vaultId, s.admin.hex, await s.admin.nextAppend(s.vaultId))).size, 2);
});

test('a membership entry naming a key that cannot be enrolled is BAD_KEY', async (t) => {
  const s = await setup();
  const request = await s.admin.writeRaw(s.vaultId, (at) =>
    membershipEntry(at, { op: 'add', member: SMALL_ORDER_KEY, boxKey: randomBytes(32), role: 'writer' }),
  );
  await refused(t, s, () => s.acceptor.append(s.vaultId, s.admin.hex, request), 'BAD_KEY');
});

test('blob references must match the blobs sent or stored, and every blob sent must be referenced', async (t) => {
  const s = await setup();
  const request = await s.admin.nextAppend(s.vaultId, { values: 2, blobBytes: 300 });
  const [blob0, blob1] = request.blobs as [Uint8Array, Uint8Array];
  const corrupted = blob0.slice();
  corrupted[10]! ^= 1;

  const missing = await refused(
    t,
    s,
    () => s.acceptor.append(s.vaultId, s.admin.hex, { ...request, blobs: [blob1] }),
    'MALFORMED',
  );
  t.regex(missing.message, /missing blob/);
  const mismatch = await refused(
    t,
    s,
    () => s.acceptor.append(s.vaultId, s.admin.hex, { ...request, blobs: [corrupted, blob1] }),
    'INTEGRITY',
  );
  t.regex(mismatch.message, /blob hash mismatch/);
  const extra = await refused(
    t,
    s,
    () => s.acceptor.append(s.vaultId, s.admin.hex, { ...request, blobs: [...request.blobs, randomBytes(200)] }),
    'MALFORMED',
  );
  t.regex(extra.message, /not referenced/);
  await refused(
    t,
    s,
    () => s.acceptor.append(s.vaultId, s.admin.hex, { ...request, blobs: [blob0, blob1, blob0] }),
    'MALFORMED',
  );
  await s.acceptor.append(s.vaultId, s.admin.hex, request);

  // A reference with the right hash and the wrong length, to a blob sent and to one stored.
  for (const sent of [[blob0], []]) {
    const wrongLength = await s.admin.writeRaw(
      s.vaultId,
      (at) =>
        dataEntry(at, [
          { blindedKey: randomBytes(32), value: { kind: 'blob', hash: sha256(blob0), length: blob0.length + 1 } },
        ]),
      sent,
    );
    const error = await refused(t, s, () => s.acceptor.append(s.vaultId, s.admin.hex, wrongLength), 'INTEGRITY');
    t.regex(error.message, /blob hash mismatch/);
    s.admin.rewind(s.vaultId, 2);
  }
});

test('the checkpoint must be the device’s own, for the new size', async (t) => {
  const s = await setup();
  const request = await s.admin.nextAppend(s.vaultId, { values: 2 });
  // Signed by another key under the log's name.
  const other = await TestDevice.create();
  const otherSigner = await deviceCheckpointSigner(other.seed, fromHex(s.vaultId));
  const byOther = await signDeviceCheckpoint(otherSigner, { size: 2n, root: s.admin.tree(s.vaultId).root() });
  await refused(
    t,
    s,
    () => s.acceptor.append(s.vaultId, s.admin.hex, { ...request, checkpoint: byOther }),
    'UNKNOWN_KEY',
  );
  // The device's signature over another text.
  const text = parseNote(request.checkpoint).text;
  const forged = request.checkpoint.replace(text, text.replace(/\n2\n/, '\n3\n'));
  await refused(
    t,
    s,
    () => s.acceptor.append(s.vaultId, s.admin.hex, { ...request, checkpoint: forged }),
    'BAD_SIGNATURE',
  );
  await refused(
    t,
    s,
    () => s.acceptor.append(s.vaultId, s.admin.hex, { ...request, checkpoint: 'not a note' }),
    'MALFORMED',
  );
  // A checkpoint the device did sign, of another size.
  const shorter = await s.admin.appendFrom(s.vaultId, 0);
  const sizeOne = withEntries(shorter, shorter.entries.slice(0, 1));
  const error = await refused(t, s, () => s.acceptor.append(s.vaultId, s.admin.hex, sizeOne), 'MALFORMED');
  t.regex(error.message, /size 2/);
  await s.acceptor.append(s.vaultId, s.admin.hex, request);
});

test('a checkpoint root that does not match the entries is INTEGRITY, with no evidence', async (t) => {
  const s = await setup();
  // First append: there is no stored head, only the root.
  const first = await s.admin.nextAppend(s.vaultId, { values: 2 });
  const swapped = await s.admin.writeRaw(s.vaultId, (at) => dataEntry({ ...at, index: 1n }));
  s.admin.rewind(s.vaultId, 2);
  const error = await refused(
    t,
    s,
    () => s.acceptor.append(s.vaultId, s.admin.hex, withEntries(first, [first.entries[0]!, swapped.entries[0]!])),
    'INTEGRITY',
  );
  t.regex(error.message, /the checkpoint root does not match the entries/);
  await s.acceptor.append(s.vaultId, s.admin.hex, first);

  // Later appends: the proof connects the checkpoints, but the entries are not the ones signed.
  const next = await s.admin.nextAppend(s.vaultId, { values: 2 });
  const other = dataEntry({ vaultId: fromHex(s.vaultId), device: s.admin.publicKey, index: 3n });
  await refused(
    t,
    s,
    () => s.acceptor.append(s.vaultId, s.admin.hex, withEntries(next, [next.entries[0]!, other])),
    'INTEGRITY',
  );
  t.is((await s.acceptor.append(s.vaultId, s.admin.hex, next)).size, 4);
});

test('a wrong consistency proof for the right entries is BAD_PROOF, not equivocation', async (t) => {
  const s = await setup();
  await s.acceptor.append(s.vaultId, s.admin.hex, await s.admin.nextAppend(s.vaultId, { values: 3 }));
  const next = await s.admin.nextAppend(s.vaultId, { values: 2 });
  const bad = next.consistencyProof.map((h, i) => (i === 0 ? sha256(h) : h));
  await refused(t, s, () => s.acceptor.append(s.vaultId, s.admin.hex, { ...next, consistencyProof: bad }), 'BAD_PROOF');
  await refused(t, s, () => s.acceptor.append(s.vaultId, s.admin.hex, { ...next, consistencyProof: [] }), 'BAD_PROOF');
  t.is((await s.acceptor.append(s.vaultId, s.admin.hex, next)).size, 5);
});

test('a device that forks its log is refused with EQUIVOCATION, and both notes are kept', async (t) => {
  const s = await setup();
  await s.acceptor.append(s.vaultId, s.admin.hex, await s.admin.nextAppend(s.vaultId, { values: 3 }));
  const storedNote = (await s.storage.getHead(s.vaultId, s.admin.hex))!.note;
  // The device forgets entry 2 and writes two others in its place: a log of 4 that does not extend the 3 stored.
  s.admin.rewind(s.vaultId, 2);
  await s.admin.nextAppend(s.vaultId, { values: 2 });
  const fork = await s.admin.appendFrom(s.vaultId, 3);
  t.is(fork.entries.length, 1);
  const error = await refused(t, s, () => s.acceptor.append(s.vaultId, s.admin.hex, fork), 'EQUIVOCATION', 1);
  t.regex(error.message, /evidence/);

  const [evidence] = await s.storage.listEvidence(s.vaultId);
  t.is(evidence!.device, s.admin.hex);
  t.is(evidence!.first, storedNote);
  t.is(evidence!.second, fork.checkpoint);
  t.is(evidence!.recordedAtMs, T0);
  const first = await verifyDeviceCheckpoint(evidence!.first, fromHex(s.vaultId), s.admin.publicKey);
  const second = await verifyDeviceCheckpoint(evidence!.second, fromHex(s.vaultId), s.admin.publicKey);
  t.deepEqual([first.checkpoint.size, second.checkpoint.size], [3n, 4n]);

  // Sent again, the same pair is not recorded twice.
  await refused(t, s, () => s.acceptor.append(s.vaultId, s.admin.hex, fork), 'EQUIVOCATION', 0);

  // The stored log is intact: the honest continuation of the stored history is still accepted.
  const honest = await TestDevice.create(s.admin.seed);
  const storedEntries = await s.storage.getEntries(s.vaultId, s.admin.hex, 0, 3);
  for (const entry of storedEntries) await honest.writeRaw(s.vaultId, () => entry.bytes);
  await honest.nextAppend(s.vaultId);
  t.is((await s.acceptor.append(s.vaultId, honest.hex, await honest.appendFrom(s.vaultId, 3))).size, 4);
});

test('concurrent appends to one log: one wins, the other is a CONFLICT; other logs go on', async (t) => {
  // Storage that takes its time, so that both appends are in flight together.
  const s = await setup(
    {},
    (memory) =>
      new Proxy(memory, {
        get(target, property) {
          const value: unknown = Reflect.get(target, property, target);
          if (typeof value !== 'function') return value;
          return async (...args: unknown[]) => {
            await new Promise((resolve) => setTimeout(resolve, 5));
            return (value as (...a: unknown[]) => unknown).apply(target, args);
          };
        },
      }),
  );
  const writer = await TestDevice.create();
  await s.enrol(writer, 'writer');
  const a = await s.admin.nextAppend(s.vaultId, { values: 2 });
  s.admin.rewind(s.vaultId, 1); // a second version of this log's next batch
  const b = await s.admin.nextAppend(s.vaultId, { values: 1 });
  t.deepEqual([a.start, b.start], [1, 1]);
  const results = await Promise.allSettled([
    s.acceptor.append(s.vaultId, s.admin.hex, a),
    s.acceptor.append(s.vaultId, s.admin.hex, b),
    s.acceptor.append(s.vaultId, writer.hex, await writer.nextAppend(s.vaultId, { values: 2 })),
  ]);
  t.is(results[0].status, 'fulfilled');
  t.is(results[2].status, 'fulfilled');
  const loser = results[1].status === 'rejected' ? (results[1].reason as E2ekvError) : undefined;
  t.is(loser?.code, 'CONFLICT', loser?.message);
  t.is(loser?.details['expected'], 3);
  t.deepEqual(
    (await s.storage.getEntries(s.vaultId, s.admin.hex, 0, 10)).map((e) => e.bytes),
    [(await s.storage.getEntries(s.vaultId, s.admin.hex, 0, 1))[0]!.bytes, ...a.entries],
  );
  t.is((await s.storage.getHead(s.vaultId, writer.hex))!.size, 2);
});

test('many concurrent appends of one batch: exactly one is stored', async (t) => {
  const s = await setup();
  const request = await s.admin.nextAppend(s.vaultId, { values: 2 });
  const results = await Promise.allSettled(
    Array.from({ length: 5 }, () => s.acceptor.append(s.vaultId, s.admin.hex, request)),
  );
  t.is(results.filter((r) => r.status === 'fulfilled').length, 1);
  for (const r of results) if (r.status === 'rejected') t.is((r.reason as E2ekvError).code, 'CONFLICT');
  t.is((await s.storage.getHead(s.vaultId, s.admin.hex))!.size, 2);
  t.is((await s.storage.getEntries(s.vaultId, s.admin.hex, 0, 10)).length, 2);
});

// --- reads --------------------------------------------------------------------------------------

test('cosignedHead cosigns the stored checkpoint afresh', async (t) => {
  const s = await setup();
  t.is(await s.acceptor.cosignedHead(s.vaultId, s.admin.hex), undefined);
  await s.acceptor.append(s.vaultId, s.admin.hex, await s.admin.nextAppend(s.vaultId, { values: 2 }));
  s.clock.now += 90_000;
  const head = (await s.acceptor.cosignedHead(s.vaultId, s.admin.hex))!;
  t.is(head.size, 2);
  const verified = await verifyDeviceCheckpoint(head.note, fromHex(s.vaultId), s.admin.publicKey, s.cosigners);
  t.deepEqual(
    verified.cosignatures.map((c) => c.timestamp),
    [BigInt((T0 + 90_000) / 1000)],
  );
  const other = await TestDevice.create();
  const { vaultId } = await other.genesis();
  const error = await t.throwsAsync(s.acceptor.cosignedHead(vaultId, other.hex), { instanceOf: E2ekvError });
  t.is(error?.code, 'NOT_FOUND');
});

test('entries come with inclusion proofs and a consistency proof that verify', async (t) => {
  const s = await setup({ maxBatchEntries: 4 });
  await s.acceptor.append(s.vaultId, s.admin.hex, await s.admin.nextAppend(s.vaultId, { values: 3 }));
  await s.acceptor.append(s.vaultId, s.admin.hex, await s.admin.nextAppend(s.vaultId, { values: 4 }));
  const all = s.admin.entries(s.vaultId);

  const response = await s.acceptor.entries(s.vaultId, s.admin.hex, 2, 100, 3);
  const verified = await verifyDeviceCheckpoint(
    response.checkpoint,
    fromHex(s.vaultId),
    s.admin.publicKey,
    s.cosigners,
  );
  const { size, root } = verified.checkpoint;
  t.is(size, 7n);
  t.is(verified.cosignatures.length, 1);
  t.is(response.start, 2);
  t.deepEqual(response.entries, all.slice(2, 6)); // bounded by maxBatchEntries
  response.entries.forEach((entry, i) => {
    t.notThrows(() => verifyInclusion(BigInt(2 + i), size, leafHash(entry), response.inclusionProofs[i]!, root));
  });
  t.notThrows(() => verifyConsistency(3n, size, response.consistencyProof, s.admin.tree(s.vaultId).root(3), root));

  const tail = await s.acceptor.entries(s.vaultId, s.admin.hex, 5, 7, 7);
  t.deepEqual(tail.entries, all.slice(5, 7));
  t.deepEqual(tail.consistencyProof, []);
  const none = await s.acceptor.entries(s.vaultId, s.admin.hex, 7, 20);
  t.deepEqual([none.entries, none.inclusionProofs, none.consistencyProof], [[], [], []]);

  const codes = async (run: () => Promise<unknown>) =>
    ((await t.throwsAsync(run, { instanceOf: E2ekvError })) as E2ekvError).code;
  t.is(await codes(() => s.acceptor.entries(s.vaultId, s.admin.hex, 0, 2, 8)), 'INVALID_ARGUMENT');
  t.is(await codes(() => s.acceptor.entries(s.vaultId, s.admin.hex, 0, 2, 0)), 'INVALID_ARGUMENT');
  t.is(await codes(() => s.acceptor.entries(s.vaultId, s.admin.hex, 3, 2)), 'INVALID_ARGUMENT');
  t.is(await codes(() => s.acceptor.entries(s.vaultId, s.admin.hex, -1, 2)), 'INVALID_ARGUMENT');
  t.is(await codes(() => s.acceptor.entries(s.vaultId, 'ab'.repeat(32), 0, 2)), 'NOT_FOUND');
  t.is(await codes(() => s.acceptor.entries('ab'.repeat(32), s.admin.hex, 0, 2)), 'NOT_FOUND');
  t.is(await codes(() => s.acceptor.entries('AB'.repeat(32), s.admin.hex, 0, 2)), 'INVALID_ARGUMENT');
});

test('proofs stay right for a tree rebuilt from storage after a refused append', async (t) => {
  const s = await setup();
  await s.acceptor.append(s.vaultId, s.admin.hex, await s.admin.nextAppend(s.vaultId, { values: 5 }));
  const next = await s.admin.nextAppend(s.vaultId, { values: 2 });
  // Refused after the candidate leaves went into the cached tree.
  await refused(t, s, () => s.acceptor.append(s.vaultId, s.admin.hex, { ...next, consistencyProof: [] }), 'BAD_PROOF');
  const response = await s.acceptor.entries(s.vaultId, s.admin.hex, 0, 5);
  const { checkpoint } = await verifyDeviceCheckpoint(response.checkpoint, fromHex(s.vaultId), s.admin.publicKey);
  t.is(checkpoint.size, 5n);
  response.entries.forEach((entry, i) => {
    t.notThrows(() =>
      verifyInclusion(BigInt(i), checkpoint.size, leafHash(entry), response.inclusionProofs[i]!, checkpoint.root),
    );
  });
  t.is((await s.acceptor.append(s.vaultId, s.admin.hex, next)).size, 7);
});

// --- sharing: epoch records and removals (SPEC.md 21.3 and 21.5) -----------------------------------

type At = { vaultId: Uint8Array; device: Uint8Array; index: bigint };

/** An epoch record of `epoch` wrapping a fresh secret for `recipients`. */
function epochRecord(at: At, epoch: number, recipients: TestDevice[], context: CausalContext = []): Uint8Array {
  return encodeEntry(
    sealEpochRecord({
      ...at,
      epoch,
      clock: { wallMs: 2n, counter: 0 },
      context,
      secret: randomBytes(32),
      recipients: recipients.map((d) => ({ signingKey: d.publicKey, boxKey: d.boxKey })),
    }),
  );
}

/** A removal of `member` by a writer that had verified `seen` entries of the member's log. */
function removal(at: At, member: TestDevice, seen: number): Uint8Array {
  const context = seen > 0 ? [{ device: member.publicKey, size: BigInt(seen) }] : [];
  return encodeEntry({
    type: 'membership',
    ...at,
    epoch: 0,
    clock: { wallMs: 3n, counter: 0 },
    context,
    change: { op: 'remove', member: member.publicKey },
  });
}

test("an admin's epoch record is stored and changes no role", async (t) => {
  const s = await setup();
  const writer = await TestDevice.create();
  await s.enrol(writer, 'writer');
  const members = await s.membership.members(s.vaultId);
  const request = await s.admin.writeRaw(s.vaultId, (at) => epochRecord(at, 1, [s.admin, writer]));
  t.is((await s.acceptor.append(s.vaultId, s.admin.hex, request)).size, 2);
  t.deepEqual(await s.membership.members(s.vaultId), members);
  t.deepEqual(await new MembershipCache(s.storage).members(s.vaultId), members, 'the same after a replay');
  t.is((await s.storage.listMembership(s.vaultId)).length, 1, 'epoch records are not replayed as membership');
  t.deepEqual((await s.storage.getEntries(s.vaultId, s.admin.hex, 1, 2))[0]!.bytes, request.entries[0]);
});

test('epoch records by writers, readers, strangers and removed admins are PERMISSION_DENIED', async (t) => {
  const s = await setup();
  const [writer, reader, stranger, formerAdmin] = await Promise.all(
    Array.from({ length: 4 }, () => TestDevice.create()),
  );
  await s.enrol(writer!, 'writer');
  await s.enrol(reader!, 'reader');
  await s.enrol(formerAdmin!, 'admin');
  const record = (d: TestDevice) => d.writeRaw(s.vaultId, (at) => epochRecord(at, 1, [s.admin, d]));
  const byWriter = await record(writer!);
  const e1 = await refused(t, s, () => s.acceptor.append(s.vaultId, writer!.hex, byWriter), 'PERMISSION_DENIED');
  t.regex(e1.message, /starts key epoch 1, which only an admin may do/);
  const byReader = await record(reader!);
  await refused(t, s, () => s.acceptor.append(s.vaultId, reader!.hex, byReader), 'PERMISSION_DENIED');
  const byStranger = await record(stranger!);
  await refused(t, s, () => s.acceptor.append(s.vaultId, stranger!.hex, byStranger), 'PERMISSION_DENIED');
  await s.acceptor.append(
    s.vaultId,
    s.admin.hex,
    await s.admin.writeRaw(s.vaultId, (at) => removal(at, formerAdmin!, 0)),
  );
  const byFormer = await record(formerAdmin!);
  const e4 = await refused(t, s, () => s.acceptor.append(s.vaultId, formerAdmin!.hex, byFormer), 'PERMISSION_DENIED');
  t.regex(e4.message, /was removed/);
});

test('epoch records that break the layout rules are refused with the decoder codes', async (t) => {
  const s = await setup();
  const request = await s.admin.writeRaw(s.vaultId, (at) => epochRecord(at, 1, [s.admin]));
  const good = request.entries[0]!;
  const header = 15 + 1 + 32 + 32 + 8;
  const epochZero = good.slice();
  epochZero.fill(0, header, header + 4);
  const zeroE = good.slice();
  zeroE.fill(0, header + 4 + 14 + 32, header + 4 + 14 + 64);
  const tooMany = good.slice();
  tooMany.set([0x04, 0x01], header + 4 + 14 + 64);
  const cases: [Uint8Array, ErrorCode][] = [
    [epochZero, 'MALFORMED'],
    [zeroE, 'MALFORMED'],
    [tooMany, 'TOO_LARGE'],
    [good.subarray(0, good.length - 1), 'MALFORMED'],
  ];
  for (const [bytes, code] of cases) {
    await refused(t, s, () => s.acceptor.append(s.vaultId, s.admin.hex, withEntries(request, [bytes])), code);
  }
  t.is((await s.acceptor.append(s.vaultId, s.admin.hex, request)).size, 1);
});

test('a removed device is refused from the moment its removal is accepted', async (t) => {
  const s = await setup();
  const writer = await TestDevice.create();
  const staying = await TestDevice.create();
  await s.enrol(writer, 'writer');
  await s.enrol(staying, 'writer');
  t.is((await s.acceptor.append(s.vaultId, writer.hex, await writer.nextAppend(s.vaultId))).size, 1);
  const pending = await writer.nextAppend(s.vaultId); // written before, pushed after the removal
  // Rule 5: the removal and the next epoch, for the remaining members, in one push.
  await s.admin.writeRaw(s.vaultId, (at) => removal(at, writer, 1));
  await s.admin.writeRaw(s.vaultId, (at) => epochRecord(at, 1, [s.admin, staying]));
  const push = await s.admin.appendFrom(s.vaultId, 2);
  t.is(push.entries.length, 2);
  t.is((await s.acceptor.append(s.vaultId, s.admin.hex, push)).size, 4);
  t.is(await s.membership.roleOf(s.vaultId, writer.hex), undefined);
  const error = await refused(t, s, () => s.acceptor.append(s.vaultId, writer.hex, pending), 'PERMISSION_DENIED');
  t.regex(error.message, /was removed from this vault/);
  t.is((await s.acceptor.append(s.vaultId, staying.hex, await staying.nextAppend(s.vaultId))).size, 1);
});

test('a removed device may still bring the entries its remover had seen, and none after', async (t) => {
  const s = await setup();
  const [one, two] = [await TestDevice.create(), await TestDevice.create()];
  await s.enrol(one, 'writer');
  await s.enrol(two, 'writer');
  // The admin verified two entries of each log on another replica; this one has none yet.
  const oneBelow = await one.nextAppend(s.vaultId, { values: 2 });
  const twoAcross = await two.nextAppend(s.vaultId, { values: 2 });
  await s.acceptor.append(s.vaultId, s.admin.hex, await s.admin.writeRaw(s.vaultId, (at) => removal(at, one, 2)));
  await s.acceptor.append(s.vaultId, s.admin.hex, await s.admin.writeRaw(s.vaultId, (at) => removal(at, two, 1)));
  t.is((await s.acceptor.append(s.vaultId, one.hex, oneBelow)).size, 2, "both entries are in the removal's past");
  const after = await one.nextAppend(s.vaultId);
  await refused(t, s, () => s.acceptor.append(s.vaultId, one.hex, after), 'PERMISSION_DENIED');
  const error = await refused(t, s, () => s.acceptor.append(s.vaultId, two.hex, twoAcross), 'PERMISSION_DENIED');
  t.regex(error.message, /entry 1 writes data/);
  t.is(await s.membership.roleOf(s.vaultId, one.hex), undefined, 'still no reads');
});

test("a removal voids the removed admin's membership changes it had not seen", async (t) => {
  const s = await setup();
  const [deputy, seenAdd, unseenAdd] = [
    await TestDevice.create(),
    await TestDevice.create(),
    await TestDevice.create(),
  ];
  await s.enrol(deputy, 'admin');
  await s.acceptor.append(s.vaultId, deputy.hex, await deputy.membershipAppend(s.vaultId, seenAdd.addChange('writer')));
  await s.acceptor.append(
    s.vaultId,
    deputy.hex,
    await deputy.membershipAppend(s.vaultId, unseenAdd.addChange('writer')),
  );
  t.is(await s.membership.roleOf(s.vaultId, unseenAdd.hex), 'writer');
  // The admin had seen the deputy's first entry only: the second is concurrent with the removal.
  await s.acceptor.append(s.vaultId, s.admin.hex, await s.admin.writeRaw(s.vaultId, (at) => removal(at, deputy, 1)));
  t.is(await s.membership.roleOf(s.vaultId, seenAdd.hex), 'writer');
  t.is(await s.membership.roleOf(s.vaultId, unseenAdd.hex), undefined);
  await refused(
    t,
    s,
    async () => s.acceptor.append(s.vaultId, unseenAdd.hex, await unseenAdd.nextAppend(s.vaultId)),
    'PERMISSION_DENIED',
  );
  t.deepEqual(await new MembershipCache(s.storage).members(s.vaultId), await s.membership.members(s.vaultId));
});

test('no data append checked before a removal is stored after it', async (t) => {
  for (let round = 0; round < 3; round++) {
    // Storage records the order of appends and takes its time, so that the two race.
    const order: string[] = [];
    const s = await setup(
      {},
      (memory) =>
        new Proxy(memory, {
          get(target, property) {
            const value: unknown = Reflect.get(target, property, target);
            if (typeof value !== 'function') return value;
            return async (...args: unknown[]) => {
              await new Promise((resolve) => setTimeout(resolve, 2 + round));
              if (property === 'append') order.push((args[0] as { device: string }).device);
              return (value as (...a: unknown[]) => unknown).apply(target, args);
            };
          },
        }),
    );
    const writer = await TestDevice.create();
    await s.enrol(writer, 'writer');
    const writes = await writer.nextAppend(s.vaultId);
    const remove = await s.admin.writeRaw(s.vaultId, (at) => removal(at, writer, 0));
    order.length = 0;
    const [written, removed] = await Promise.allSettled([
      s.acceptor.append(s.vaultId, writer.hex, writes),
      s.acceptor.append(s.vaultId, s.admin.hex, remove),
    ]);
    t.is(removed.status, 'fulfilled');
    // Either the write was stored before the removal, or it was refused: never stored after it.
    if (written.status === 'fulfilled') t.deepEqual(order, [writer.hex, s.admin.hex]);
    else {
      t.is((written.reason as E2ekvError).code, 'PERMISSION_DENIED');
      t.deepEqual(order, [s.admin.hex]);
    }
  }
});
