/**
 * What every StorageAdapter must do, as ava tests registered once per adapter
 * (storage-memory.test.ts, storage-sqlite.test.ts). The acceptor relies on
 * exactly these behaviours, whichever adapter a replica runs with.
 */
import { E2ekvError, leafHash, randomBytes, sha256, toHex } from '@e2ekv/protocol';
import { conformanceChecker } from '../../test/support/conformance.js';
import type { ExecutionContext } from 'ava';
import type { AppendBatch, Evidence, StorageAdapter, StoredEntry } from '../src/storage/adapter.js';
import { rejectsCode } from '../../test/support/errors.js';

export interface StorageFixture {
  /** A fresh adapter holding nothing. */
  storage: StorageAdapter;
  /** Closes every adapter the fixture opened and removes what it stored. */
  cleanup: () => Promise<void>;
  /** Persistent adapters: a new adapter over the same data, to call after `storage` was closed. */
  reopen?: () => Promise<StorageAdapter>;
}

export interface ConformanceOptions {
  /** Also check that data survives close and reopen (the fixture must then provide `reopen`). */
  persistent?: boolean;
}

// ---------------------------------------------------------------------------
// Building batches. Entries are random bytes of varied lengths: the adapter
// checks nothing cryptographic, but real leaf hashes keep the data realistic.

export function newDevice(): string {
  return toHex(randomBytes(32));
}

export function newVaultId(): string {
  return `vault-${toHex(randomBytes(8))}`;
}

export function makeEntries(start: number, count: number): StoredEntry[] {
  return Array.from({ length: count }, (_, i) => {
    const bytes = randomBytes(1 + ((start + i) % 5) * 37);
    return { index: start + i, bytes, leafHash: leafHash(bytes) };
  });
}

export function makeBlob(length = 100): { hash: string; bytes: Uint8Array } {
  const bytes = randomBytes(length);
  return { hash: toHex(sha256(bytes)), bytes };
}

interface BatchOptions {
  entries?: StoredEntry[];
  count?: number;
  blobs?: { hash: string; bytes: Uint8Array }[];
  /** Indices among the batch entries to record as membership entries, in acceptance order. */
  membership?: number[];
}

export function makeBatch(
  vaultId: string,
  device: string,
  expectedSize: number,
  options: BatchOptions = {},
): AppendBatch {
  const entries = options.entries ?? makeEntries(expectedSize, options.count ?? 1);
  const size = expectedSize + entries.length;
  return {
    vaultId,
    device,
    expectedSize,
    entries,
    blobs: options.blobs ?? [],
    head: {
      device,
      size,
      root: sha256(new TextEncoder().encode(`root ${size}`)),
      note: `note for ${device} at ${size}\n`,
    },
    membership: (options.membership ?? []).map((index) => {
      const entry = entries[index - expectedSize];
      if (entry === undefined) throw new Error(`membership index ${index} is not in the batch`);
      return { device, index, bytes: entry.bytes };
    }),
  };
}

function evidenceFor(device: string, n: number): Evidence {
  return { device, first: `first note ${n}\n`, second: `second note ${n}\n`, recordedAtMs: 1_700_000_000_000 + n };
}

/** Everything readable about a vault, to prove that a failed write changed none of it. */
export async function snapshot(storage: StorageAdapter, vaultId: string, blobHashes: readonly string[] = []) {
  const heads = await storage.listHeads(vaultId);
  const logs = await Promise.all(
    heads.map(async (head) => ({
      device: head.device,
      entries: await storage.getEntries(vaultId, head.device, 0, head.size + 10),
      leafHashes: await storage.getLeafHashes(vaultId, head.device),
      checkpoints: await storage.listCheckpoints(vaultId, head.device, 0, Number.MAX_SAFE_INTEGER),
    })),
  );
  return {
    genesis: await storage.getGenesis(vaultId),
    heads,
    logs,
    blobs: await Promise.all(blobHashes.map((hash) => storage.getBlob(vaultId, hash))),
    membership: await storage.listMembership(vaultId),
    evidence: await storage.listEvidence(vaultId),
    bytes: await storage.vaultBytes(vaultId),
  };
}

function byteCount(entries: readonly StoredEntry[]): number {
  return entries.reduce((sum, entry) => sum + entry.bytes.length, 0);
}

async function conflictOf(promise: Promise<unknown>): Promise<'ok' | E2ekvError> {
  try {
    await promise;
    return 'ok';
  } catch (error) {
    if (error instanceof E2ekvError) return error;
    throw error;
  }
}

// ---------------------------------------------------------------------------

export function storageConformance(
  name: string,
  open: () => Promise<StorageFixture>,
  options: ConformanceOptions = {},
): void {
  const check = conformanceChecker(name, open);

  check('createVault creates once, then reports exists and keeps the first genesis', async (t, { storage }) => {
    const genesis = randomBytes(80);
    t.is(await storage.createVault('v1', genesis), 'created');
    t.is(await storage.createVault('v1', randomBytes(80)), 'exists');
    t.is(await storage.createVault('v1', genesis), 'exists');
    t.deepEqual(await storage.getGenesis('v1'), genesis);
    t.is(await storage.createVault('v2', randomBytes(3)), 'created');
    t.deepEqual([...(await storage.listVaults())].sort(), ['v1', 'v2']);
  });

  check('unknown vaults and logs read as empty', async (t, { storage }) => {
    t.deepEqual(await storage.listVaults(), []);
    const device = newDevice();
    for (const vaultId of ['missing', 'known']) {
      if (vaultId === 'known') await storage.createVault(vaultId, randomBytes(10));
      else t.is(await storage.getGenesis(vaultId), undefined);
      t.is(await storage.getHead(vaultId, device), undefined);
      t.deepEqual(await storage.listHeads(vaultId), []);
      t.deepEqual(await storage.getEntries(vaultId, device, 0, 10), []);
      t.deepEqual(await storage.getLeafHashes(vaultId, device), []);
      t.is(await storage.getBlob(vaultId, makeBlob().hash), undefined);
      t.deepEqual(await storage.listMembership(vaultId), []);
      t.deepEqual(await storage.listEvidence(vaultId), []);
      t.is(await storage.vaultBytes(vaultId), 0);
    }
  });

  check('append stores entries, head, blobs and size; reads return them', async (t, { storage }) => {
    const vaultId = newVaultId();
    const [alice, bob] = [newDevice(), newDevice()];
    await storage.createVault(vaultId, randomBytes(50));
    const blob = makeBlob(300);
    const first = makeBatch(vaultId, alice, 0, { count: 3, blobs: [blob] });
    const second = makeBatch(vaultId, alice, 3, { count: 2 });
    const other = makeBatch(vaultId, bob, 0, { count: 4 });
    await storage.append(first);
    await storage.append(second);
    await storage.append(other);

    t.deepEqual(await storage.getHead(vaultId, alice), second.head);
    t.deepEqual(await storage.getHead(vaultId, bob), other.head);
    const heads = await storage.listHeads(vaultId);
    t.deepEqual(
      heads.sort((a, b) => (a.device < b.device ? -1 : 1)),
      [second.head, other.head].sort((a, b) => (a.device < b.device ? -1 : 1)),
    );

    const aliceEntries = [...first.entries, ...second.entries];
    t.deepEqual(await storage.getEntries(vaultId, alice, 0, 5), aliceEntries);
    t.deepEqual(await storage.getEntries(vaultId, alice, 1, 4), aliceEntries.slice(1, 4));
    t.deepEqual(await storage.getEntries(vaultId, alice, 3, 1000), aliceEntries.slice(3), 'clipped to the log end');
    t.deepEqual(await storage.getEntries(vaultId, alice, 5, 9), [], 'start at the size');
    t.deepEqual(await storage.getEntries(vaultId, alice, 7, 9), [], 'start past the size');
    t.deepEqual(await storage.getEntries(vaultId, alice, 2, 2), [], 'empty range');
    t.deepEqual(await storage.getEntries(vaultId, alice, 4, 2), [], 'inverted range');
    t.deepEqual(await storage.getEntries(vaultId, bob, 0, 4), other.entries);
    t.deepEqual(
      await storage.getLeafHashes(vaultId, alice),
      aliceEntries.map((entry) => entry.leafHash),
    );
    t.deepEqual(await storage.getBlob(vaultId, blob.hash), blob.bytes);
    t.is(await storage.getBlob(newVaultId(), blob.hash), undefined, 'blobs belong to their vault');
    t.is(await storage.vaultBytes(vaultId), byteCount(aliceEntries) + byteCount(other.entries) + blob.bytes.length);
  });

  check('logs of the same device in different vaults are separate', async (t, { storage }) => {
    const device = newDevice();
    const [v1, v2] = [newVaultId(), newVaultId()];
    await storage.createVault(v1, randomBytes(5));
    await storage.createVault(v2, randomBytes(5));
    const inV1 = makeBatch(v1, device, 0, { count: 2 });
    await storage.append(inV1);
    await storage.append(makeBatch(v2, device, 0, { count: 1 }));
    await rejectsCode(t, () => storage.append(makeBatch(v2, device, 2)), 'CONFLICT');
    t.is((await storage.getHead(v1, device))?.size, 2);
    t.is((await storage.getHead(v2, device))?.size, 1);
    t.deepEqual(await storage.getEntries(v1, device, 0, 10), inV1.entries);
  });

  check('membership is listed in acceptance order across devices and batches', async (t, { storage }) => {
    const vaultId = newVaultId();
    const [alice, bob] = [newDevice(), newDevice()];
    await storage.createVault(vaultId, randomBytes(5));
    const batches = [
      makeBatch(vaultId, bob, 0, { count: 3, membership: [2, 0] }),
      makeBatch(vaultId, alice, 0, { count: 2, membership: [1] }),
      makeBatch(vaultId, alice, 2, { count: 1 }),
      makeBatch(vaultId, bob, 3, { count: 2, membership: [3] }),
      makeBatch(vaultId, alice, 3, { count: 2, membership: [3, 4] }),
    ];
    for (const batch of batches) await storage.append(batch);
    t.deepEqual(
      await storage.listMembership(vaultId),
      batches.flatMap((batch) => batch.membership),
    );
  });

  check('a stale expectedSize is a CONFLICT and leaves nothing of the batch behind', async (t, { storage }) => {
    const vaultId = newVaultId();
    const device = newDevice();
    await storage.createVault(vaultId, randomBytes(5));
    await storage.append(makeBatch(vaultId, device, 0, { count: 3, membership: [1] }));
    const blob = makeBlob();
    const before = await snapshot(storage, vaultId, [blob.hash]);

    for (const [expectedSize, firstIndex] of [
      [1, 1],
      [0, 0],
      [5, 5],
    ] as const) {
      const stale = makeBatch(vaultId, device, expectedSize, {
        entries: makeEntries(firstIndex, 2),
        blobs: [blob],
        membership: [firstIndex],
      });
      const error = await t.throwsAsync(() => storage.append(stale), { instanceOf: E2ekvError });
      t.is(error?.code, 'CONFLICT');
      t.deepEqual(error?.details, { expectedSize, actualSize: 3 });
    }
    // A new log (no head yet) has size 0.
    await rejectsCode(t, () => storage.append(makeBatch(vaultId, newDevice(), 1, { blobs: [blob] })), 'CONFLICT');
    t.deepEqual(await snapshot(storage, vaultId, [blob.hash]), before);
  });

  check('append to a vault that does not exist is NOT_FOUND and creates nothing', async (t, { storage }) => {
    const device = newDevice();
    await rejectsCode(t, () => storage.append(makeBatch('nowhere', device, 0, { blobs: [makeBlob()] })), 'NOT_FOUND');
    t.deepEqual(await storage.listVaults(), []);
    t.is(await storage.getHead('nowhere', device), undefined);
    t.is(await storage.vaultBytes('nowhere'), 0);
  });

  check('an inconsistent batch is INVALID_ARGUMENT and writes nothing', async (t, { storage }) => {
    const vaultId = newVaultId();
    const device = newDevice();
    await storage.createVault(vaultId, randomBytes(5));
    await storage.append(makeBatch(vaultId, device, 0, { count: 2 }));
    const blob = makeBlob();
    const before = await snapshot(storage, vaultId, [blob.hash]);
    const valid = () => makeBatch(vaultId, device, 2, { count: 4, blobs: [blob], membership: [3] });

    const broken: [string, (batch: AppendBatch) => AppendBatch][] = [
      // The first entries are fine: an adapter writing as it goes would leave them behind.
      [
        'an entry numbered out of sequence',
        (b) => ({ ...b, entries: b.entries.map((e, i) => (i === 2 ? { ...e, index: 7 } : e)) }),
      ],
      [
        'a repeated entry index',
        (b) => ({ ...b, entries: b.entries.map((e, i) => (i === 3 ? { ...e, index: 4 } : e)) }),
      ],
      [
        'entries not starting at expectedSize',
        (b) => ({ ...b, entries: b.entries.map((e) => ({ ...e, index: e.index + 1 })) }),
      ],
      ['a head size that does not match', (b) => ({ ...b, head: { ...b.head, size: b.head.size + 1 } })],
      ['a head of another device', (b) => ({ ...b, head: { ...b.head, device: newDevice() } })],
      [
        'a membership entry of another device',
        (b) => ({ ...b, membership: [{ ...b.membership[0]!, device: newDevice() }] }),
      ],
      ['a membership entry outside the batch', (b) => ({ ...b, membership: [{ ...b.membership[0]!, index: 1 }] })],
      ['a membership entry listed twice', (b) => ({ ...b, membership: [b.membership[0]!, b.membership[0]!] })],
      ['a blob hash that is not lowercase hex', (b) => ({ ...b, blobs: [{ ...blob, hash: blob.hash.toUpperCase() }] })],
      [
        'a leaf hash of the wrong length',
        (b) => ({ ...b, entries: b.entries.map((e, i) => (i === 3 ? { ...e, leafHash: new Uint8Array(31) } : e)) }),
      ],
      [
        'a device that is not a public key in hex',
        (b) => ({ ...b, device: 'alice', head: { ...b.head, device: 'alice' } }),
      ],
      ['a negative expectedSize', (b) => ({ ...b, expectedSize: -1 })],
    ];
    for (const [what, breakIt] of broken) {
      const error = await t.throwsAsync(() => storage.append(breakIt(valid())), { instanceOf: E2ekvError }, what);
      t.is(error?.code, 'INVALID_ARGUMENT', what);
    }
    t.deepEqual(await snapshot(storage, vaultId, [blob.hash]), before);
    // The log is still usable and its size still 2.
    await storage.append(valid());
    t.is((await storage.getHead(vaultId, device))?.size, 6);
  });

  check('an empty range reads nothing and a malformed one is INVALID_ARGUMENT', async (t, { storage }) => {
    const vaultId = newVaultId();
    const device = newDevice();
    await storage.createVault(vaultId, randomBytes(5));
    await storage.append(makeBatch(vaultId, device, 0, { count: 3 }));
    await rejectsCode(t, () => storage.getEntries(vaultId, device, -1, 2), 'INVALID_ARGUMENT');
    await rejectsCode(t, () => storage.getEntries(vaultId, device, 0.5, 2), 'INVALID_ARGUMENT');
    await rejectsCode(t, () => storage.getEntries(vaultId, device, 0, Number.NaN), 'INVALID_ARGUMENT');
  });

  check('blobs are stored once per vault and counted once', async (t, { storage }) => {
    const vaultId = newVaultId();
    const device = newDevice();
    await storage.createVault(vaultId, randomBytes(5));
    const blob = makeBlob(1000);
    const first = makeBatch(vaultId, device, 0, { blobs: [blob, blob] });
    const second = makeBatch(vaultId, device, 1, { blobs: [{ hash: blob.hash, bytes: blob.bytes }] });
    await storage.append(first);
    await storage.append(second);
    t.deepEqual(await storage.getBlob(vaultId, blob.hash), blob.bytes);
    t.is(await storage.vaultBytes(vaultId), byteCount(first.entries) + byteCount(second.entries) + 1000);

    const otherVault = newVaultId();
    await storage.createVault(otherVault, randomBytes(5));
    const third = makeBatch(otherVault, device, 0, { blobs: [blob] });
    await storage.append(third);
    t.is(await storage.vaultBytes(otherVault), byteCount(third.entries) + 1000, 'counted again in another vault');
  });

  check('evidence is recorded per vault in order', async (t, { storage }) => {
    const [v1, v2] = [newVaultId(), newVaultId()];
    const device = newDevice();
    await storage.createVault(v1, randomBytes(5));
    await storage.createVault(v2, randomBytes(5));
    const evidence = [evidenceFor(device, 1), evidenceFor(newDevice(), 2), evidenceFor(device, 3)];
    for (const item of evidence) await storage.addEvidence(v1, item);
    await storage.addEvidence(v2, evidenceFor(device, 4));
    t.deepEqual(await storage.listEvidence(v1), evidence);
    t.deepEqual(await storage.listEvidence(v2), [evidenceFor(device, 4)]);
    await rejectsCode(t, () => storage.addEvidence('nowhere', evidenceFor(device, 5)), 'NOT_FOUND');
    await rejectsCode(
      t,
      () => storage.addEvidence(v1, { ...evidenceFor(device, 6), recordedAtMs: 1.5 }),
      'INVALID_ARGUMENT',
    );
    t.is(await storage.vaultBytes(v1), 0, 'evidence is not vault data');
  });

  check('stored data is a copy: changing arrays given or returned changes nothing', async (t, { storage }) => {
    const vaultId = newVaultId();
    const device = newDevice();
    const genesis = randomBytes(40);
    await storage.createVault(vaultId, genesis);
    const blob = makeBlob(64);
    const batch = makeBatch(vaultId, device, 0, { count: 2, blobs: [blob], membership: [1] });
    const expected = structuredClone(batch);
    const expectedGenesis = genesis.slice();
    await storage.append(batch);
    // Mutate every array handed in...
    genesis.fill(1);
    blob.bytes.fill(1);
    batch.head.root.fill(1);
    for (const entry of batch.entries) {
      entry.bytes.fill(1);
      entry.leafHash.fill(1);
    }
    // ...and every array and object handed out.
    (await storage.getGenesis(vaultId))!.fill(2);
    const head = (await storage.getHead(vaultId, device))!;
    head.root.fill(2);
    head.size = 99;
    (await storage.listHeads(vaultId))[0]!.root.fill(2);
    for (const entry of await storage.getEntries(vaultId, device, 0, 2)) {
      entry.bytes.fill(2);
      entry.leafHash.fill(2);
    }
    for (const hash of await storage.getLeafHashes(vaultId, device)) hash.fill(2);
    (await storage.getBlob(vaultId, blob.hash))!.fill(2);
    (await storage.listMembership(vaultId))[0]!.bytes.fill(2);

    t.deepEqual(await storage.getGenesis(vaultId), expectedGenesis);
    t.deepEqual(await storage.getHead(vaultId, device), expected.head);
    t.deepEqual(await storage.listHeads(vaultId), [expected.head]);
    t.deepEqual(await storage.getEntries(vaultId, device, 0, 2), expected.entries);
    t.deepEqual(
      await storage.getLeafHashes(vaultId, device),
      expected.entries.map((entry) => entry.leafHash),
    );
    t.deepEqual(await storage.getBlob(vaultId, blob.hash), expected.blobs[0]!.bytes);
    t.deepEqual(await storage.listMembership(vaultId), expected.membership);
  });

  check('only the bytes of a view are stored, not its whole buffer', async (t, { storage }) => {
    const vaultId = newVaultId();
    const device = newDevice();
    const backing = randomBytes(200);
    const genesis = backing.subarray(10, 20);
    await storage.createVault(vaultId, genesis);
    const bytes = backing.subarray(50, 90);
    const entry = { index: 0, bytes, leafHash: backing.subarray(100, 132) };
    const blob = { hash: toHex(sha256(backing.subarray(140, 150))), bytes: backing.subarray(140, 150) };
    await storage.append(makeBatch(vaultId, device, 0, { entries: [entry], blobs: [blob], membership: [0] }));
    t.deepEqual(await storage.getGenesis(vaultId), genesis.slice());
    t.deepEqual(await storage.getEntries(vaultId, device, 0, 1), [
      { index: 0, bytes: bytes.slice(), leafHash: entry.leafHash.slice() },
    ]);
    t.deepEqual(await storage.getBlob(vaultId, blob.hash), blob.bytes.slice());
    t.deepEqual((await storage.listMembership(vaultId))[0]?.bytes, bytes.slice());
    t.is(await storage.vaultBytes(vaultId), 50);
  });

  check('concurrent appends with the same expectedSize: exactly one wins', async (t, { storage }) => {
    const vaultId = newVaultId();
    await storage.createVault(vaultId, randomBytes(5));
    for (const contenders of [2, 3, 8]) {
      const device = newDevice();
      await storage.append(makeBatch(vaultId, device, 0, { count: 2 }));
      const batches = Array.from({ length: contenders }, () =>
        makeBatch(vaultId, device, 2, { count: 3, blobs: [makeBlob()], membership: [3] }),
      );
      const results = await Promise.all(batches.map((batch) => conflictOf(storage.append(batch))));
      const winners = results.flatMap((result, i) => (result === 'ok' ? [batches[i]!] : []));
      t.is(winners.length, 1, `${contenders} contenders`);
      for (const result of results) if (result !== 'ok') t.is(result.code, 'CONFLICT');
      const winner = winners[0]!;
      t.deepEqual(await storage.getHead(vaultId, device), winner.head);
      t.deepEqual(await storage.getEntries(vaultId, device, 2, 10), winner.entries);
      for (const batch of batches) {
        const stored = await storage.getBlob(vaultId, batch.blobs[0]!.hash);
        t.is(stored === undefined, batch !== winner, 'only the winner stored its blob');
      }
    }
  });

  check('many concurrent appends to different logs all succeed', async (t, { storage }) => {
    const vaultId = newVaultId();
    await storage.createVault(vaultId, randomBytes(5));
    const devices = Array.from({ length: 16 }, newDevice);
    const batchesPerDevice = 6;
    const written = await Promise.all(
      devices.map(async (device) => {
        const entries: StoredEntry[] = [];
        for (let i = 0; i < batchesPerDevice; i++) {
          const batch = makeBatch(vaultId, device, entries.length, {
            count: 1 + (i % 3),
            membership: [entries.length],
          });
          await storage.append(batch);
          entries.push(...batch.entries);
        }
        return { device, entries };
      }),
    );
    let total = 0;
    for (const { device, entries } of written) {
      t.is((await storage.getHead(vaultId, device))?.size, entries.length);
      t.deepEqual(await storage.getEntries(vaultId, device, 0, entries.length), entries);
      total += byteCount(entries);
    }
    t.is(await storage.vaultBytes(vaultId), total);
    const membership = await storage.listMembership(vaultId);
    t.is(membership.length, devices.length * batchesPerDevice);
    // Within one log, acceptance order is log order.
    for (const device of devices) {
      const indices = membership.filter((member) => member.device === device).map((member) => member.index);
      t.deepEqual(
        indices,
        [...indices].sort((a, b) => a - b),
      );
    }
  });

  check('every head note is kept, and listCheckpoints pages them by size', async (t, { storage }) => {
    const vaultId = newVaultId();
    const [alice, bob] = [newDevice(), newDevice()];
    await storage.createVault(vaultId, randomBytes(5));
    t.deepEqual(await storage.listCheckpoints(vaultId, alice, 0, 10), [], 'an empty log has none');
    const sizes: number[] = [];
    for (const count of [1, 3, 2, 5]) {
      const expectedSize = sizes.at(-1) ?? 0;
      await storage.append(makeBatch(vaultId, alice, expectedSize, { count }));
      sizes.push(expectedSize + count);
    }
    await storage.append(makeBatch(vaultId, bob, 0, { count: 4 }));
    const noteAt = (device: string, size: number) => `note for ${device} at ${size}\n`;
    t.deepEqual(
      await storage.listCheckpoints(vaultId, alice, 0, 100),
      sizes.map((size) => ({ size, note: noteAt(alice, size) })),
    );
    t.deepEqual(await storage.listCheckpoints(vaultId, alice, 4, 100), [
      { size: 6, note: noteAt(alice, 6) },
      { size: 11, note: noteAt(alice, 11) },
    ]);
    t.deepEqual(await storage.listCheckpoints(vaultId, alice, 1, 1), [{ size: 4, note: noteAt(alice, 4) }]);
    t.deepEqual(await storage.listCheckpoints(vaultId, alice, 3, 0), []);
    t.deepEqual(await storage.listCheckpoints(vaultId, alice, 11, 10), []);
    t.deepEqual(await storage.listCheckpoints(vaultId, bob, 0, 10), [{ size: 4, note: noteAt(bob, 4) }]);
    t.deepEqual(await storage.listCheckpoints(newVaultId(), alice, 0, 10), [], 'another vault has none');
    await rejectsCode(t, () => storage.listCheckpoints(vaultId, alice, -1, 10), 'INVALID_ARGUMENT');
  });

  check('close waits for queued work, is idempotent, and later calls are UNAVAILABLE', async (t, { storage }) => {
    const vaultId = newVaultId();
    const device = newDevice();
    await storage.createVault(vaultId, randomBytes(5));
    const pending = storage.append(makeBatch(vaultId, device, 0));
    const closed = storage.close();
    await t.notThrowsAsync(pending, 'work started before close completes');
    await closed;
    await storage.close();
    await rejectsCode(t, () => storage.getHead(vaultId, device), 'UNAVAILABLE');
    await rejectsCode(t, () => storage.append(makeBatch(vaultId, device, 1)), 'UNAVAILABLE');
    await rejectsCode(t, () => storage.createVault(newVaultId(), randomBytes(5)), 'UNAVAILABLE');
    await rejectsCode(t, () => storage.listVaults(), 'UNAVAILABLE');
  });

  if (!options.persistent) return;

  async function reopened(t: ExecutionContext, fixture: StorageFixture): Promise<StorageAdapter> {
    await fixture.storage.close();
    if (fixture.reopen === undefined) throw new Error('a persistent adapter fixture must provide reopen');
    const storage = await fixture.reopen();
    t.teardown(() => storage.close());
    return storage;
  }

  check('everything written is there after close and reopen', async (t, fixture) => {
    const { storage } = fixture;
    const vaultId = newVaultId();
    const [alice, bob] = [newDevice(), newDevice()];
    await storage.createVault(vaultId, randomBytes(30));
    await storage.createVault(newVaultId(), randomBytes(30));
    const blob = makeBlob(500);
    await storage.append(makeBatch(vaultId, alice, 0, { count: 3, blobs: [blob], membership: [0] }));
    await storage.append(makeBatch(vaultId, bob, 0, { count: 2, membership: [1] }));
    await storage.append(makeBatch(vaultId, alice, 3, { count: 2, membership: [4] }));
    await storage.addEvidence(vaultId, evidenceFor(bob, 1));
    const before = await snapshot(storage, vaultId, [blob.hash]);
    const vaults = await storage.listVaults();

    const again = await reopened(t, fixture);
    t.deepEqual(await snapshot(again, vaultId, [blob.hash]), before);
    t.deepEqual(await again.listVaults(), vaults);
    // And the logs carry on where they stopped.
    await rejectsCode(t, () => again.append(makeBatch(vaultId, alice, 3)), 'CONFLICT');
    await again.append(makeBatch(vaultId, alice, 5, { membership: [5] }));
    t.is((await again.getHead(vaultId, alice))?.size, 6);
    t.is((await again.listMembership(vaultId)).length, 4);
  });

  check('failed appends leave nothing behind, even after reopen', async (t, fixture) => {
    const { storage } = fixture;
    const vaultId = newVaultId();
    const device = newDevice();
    await storage.createVault(vaultId, randomBytes(30));
    await storage.append(makeBatch(vaultId, device, 0, { count: 2 }));
    const blob = makeBlob();
    const before = await snapshot(storage, vaultId, [blob.hash]);
    const midwayBroken = makeBatch(vaultId, device, 2, { count: 5, blobs: [blob], membership: [3] });
    const entries = midwayBroken.entries.map((entry, i) => (i === 3 ? { ...entry, index: 42 } : entry));
    await rejectsCode(t, () => storage.append({ ...midwayBroken, entries }), 'INVALID_ARGUMENT');
    await rejectsCode(t, () => storage.append(makeBatch(vaultId, device, 1, { blobs: [blob] })), 'CONFLICT');

    const again = await reopened(t, fixture);
    t.deepEqual(await snapshot(again, vaultId, [blob.hash]), before);
  });
}
