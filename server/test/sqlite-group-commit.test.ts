/**
 * Group commit in the SQLite adapter: appends that wait in the queue together
 * are committed in one transaction (one fsync), yet each keeps the outcome,
 * error and order it would have had alone. The conformance suite checks the
 * adapter one awaited call at a time; these tests issue appends without
 * awaiting, so that they share groups.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { E2ekvError, leafHash, randomBytes, sha256, toHex } from '@e2ekv/protocol';
import test from 'ava';
import type { ExecutionContext } from 'ava';
import fc from 'fast-check';
import sqlite3 from 'sqlite3';
import type { AppendBatch, StorageAdapter } from '../src/storage/adapter.js';
import { MemoryStorage } from '../src/storage/memory.js';
import { openSqliteStorage, type SqliteStorage } from '../src/storage/sqlite.js';
import { repoRoot } from '../../test/support/paths.js';
import { makeBatch, makeBlob, newDevice, newVaultId, snapshot } from './storage-conformance.js';

async function tempFile(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'e2ekv-group-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return path.join(dir, 'replica.db');
}

async function open(t: ExecutionContext, file: string): Promise<SqliteStorage> {
  const storage = await openSqliteStorage(file);
  t.teardown(() => storage.close());
  return storage;
}

type Outcome = 'ok' | { code: string; details: Record<string, unknown> };

async function outcomeOf(promise: Promise<unknown>): Promise<Outcome> {
  try {
    await promise;
    return 'ok';
  } catch (error) {
    if (!(error instanceof E2ekvError)) throw error;
    return { code: error.code, details: { ...error.details } };
  }
}

/** Issues every append at once (one group, as nothing else is queued) and waits for all their outcomes. */
function appendAll(storage: StorageAdapter, batches: readonly AppendBatch[]): Promise<Outcome[]> {
  return Promise.all(batches.map((batch) => outcomeOf(storage.append(batch))));
}

/** How many commits a piece of work took, and how many appends it committed. */
async function counted<T>(storage: SqliteStorage, work: () => Promise<T>) {
  const before = storage.appendStats();
  const result = await work();
  const after = storage.appendStats();
  return { result, commits: after.commits - before.commits, appends: after.appends - before.appends };
}

// A raw connection, to damage a database behind the adapter's back.
function rawExec(file: string, sql: string, params: unknown[] = []): Promise<void> {
  return new Promise((resolve, reject) => {
    const db = new sqlite3.Database(file, (openError) => {
      if (openError !== null) return reject(openError);
      db.run(sql, params, (error: Error | null) => {
        db.close(() => (error === null ? resolve() : reject(error)));
      });
    });
  });
}

test('many concurrent appends to different vaults and logs land in one commit and survive reopening', async (t) => {
  const file = await tempFile(t);
  const storage = await openSqliteStorage(file);
  const vaults = [newVaultId(), newVaultId(), newVaultId()];
  const devices = Array.from({ length: 6 }, newDevice);
  for (const vaultId of vaults) await storage.createVault(vaultId, randomBytes(20));

  // Three chained appends per log, all issued before any of them ran.
  const batches: AppendBatch[] = [];
  for (let round = 0; round < 3; round++) {
    for (const vaultId of vaults) {
      for (const device of devices) batches.push(makeBatch(vaultId, device, round * 2, { count: 2 }));
    }
  }
  const { result, commits, appends } = await counted(storage, () => appendAll(storage, batches));
  t.true(
    result.every((outcome) => outcome === 'ok'),
    JSON.stringify(result.filter((o) => o !== 'ok')),
  );
  t.is(appends, batches.length);
  t.is(commits, 1, `${batches.length} appends issued together share one transaction`);
  const before = await Promise.all(vaults.map((vaultId) => snapshot(storage, vaultId)));
  await storage.close();

  const reopened = await open(t, file);
  const after = await Promise.all(vaults.map((vaultId) => snapshot(reopened, vaultId)));
  t.deepEqual(after, before);
  for (const [v, vaultId] of vaults.entries()) {
    t.is(after[v]!.heads.length, devices.length);
    for (const device of devices) {
      const mine = batches.filter((batch) => batch.vaultId === vaultId && batch.device === device);
      t.deepEqual(await reopened.getHead(vaultId, device), mine.at(-1)!.head);
      t.deepEqual(
        await reopened.getEntries(vaultId, device, 0, 100),
        mine.flatMap((batch) => batch.entries),
      );
      t.deepEqual(
        (await reopened.listCheckpoints(vaultId, device, 0, 100)).map((c) => c.size),
        [2, 4, 6],
      );
    }
    const entryBytes = batches
      .filter((batch) => batch.vaultId === vaultId)
      .flatMap((batch) => batch.entries)
      .reduce((sum, entry) => sum + entry.bytes.length, 0);
    t.is(await reopened.vaultBytes(vaultId), entryBytes);
  }
});

test('a group of large appends (statements too large to keep prepared) commits and reads back', async (t) => {
  const storage = await open(t, await tempFile(t));
  const vaultId = newVaultId();
  await storage.createVault(vaultId, randomBytes(20));
  const big = (length: number) => {
    const bytes = randomBytes(length);
    return { index: 0, bytes, leafHash: leafHash(bytes) };
  };
  const batches = [newDevice(), newDevice(), newDevice()].map((device) =>
    makeBatch(vaultId, device, 0, { entries: [big(50_000)], blobs: [makeBlob(100_000)], membership: [0] }),
  );
  for (let round = 0; round < 2; round++) {
    const group = round === 0 ? batches : batches.map((batch) => makeBatch(vaultId, batch.device, 1));
    const { result, commits } = await counted(storage, () => appendAll(storage, group));
    t.deepEqual(result, ['ok', 'ok', 'ok']);
    t.is(commits, 1);
  }
  for (const batch of batches) {
    t.deepEqual((await storage.getEntries(vaultId, batch.device, 0, 1))[0], batch.entries[0]);
    t.deepEqual(await storage.getBlob(vaultId, batch.blobs[0]!.hash), batch.blobs[0]!.bytes);
  }
  t.is((await storage.listMembership(vaultId)).length, 3);
});

test('writers that each wait for their last append share commits', async (t) => {
  const storage = await open(t, await tempFile(t));
  const vaultId = newVaultId();
  await storage.createVault(vaultId, randomBytes(20));
  const writers = 16;
  const perWriter = 20;
  const { commits, appends } = await counted(storage, () =>
    Promise.all(
      Array.from({ length: writers }, async () => {
        const device = newDevice();
        for (let size = 0; size < perWriter; size++) await storage.append(makeBatch(vaultId, device, size));
      }),
    ),
  );
  t.is(appends, writers * perWriter);
  t.log(`${appends} appends in ${commits} commits`);
  // One at a time this would be one commit per append; with grouping, about one per round of the writers.
  t.true(commits * 4 <= appends, `${commits} commits for ${appends} appends`);
});

test('chained appends to one log in one group each see the size the previous one left', async (t) => {
  const storage = await open(t, await tempFile(t));
  const vaultId = newVaultId();
  const device = newDevice();
  await storage.createVault(vaultId, randomBytes(20));
  const batches = [
    makeBatch(vaultId, device, 0, { count: 2 }),
    makeBatch(vaultId, device, 2, { count: 1 }),
    makeBatch(vaultId, device, 3, { count: 3 }),
  ];
  const { result, commits } = await counted(storage, () => appendAll(storage, batches));
  t.deepEqual(result, ['ok', 'ok', 'ok']);
  t.is(commits, 1);
  t.deepEqual(await storage.getHead(vaultId, device), batches[2]!.head);
  t.deepEqual(
    await storage.getEntries(vaultId, device, 0, 10),
    batches.flatMap((batch) => batch.entries),
  );
  t.deepEqual(
    (await storage.listCheckpoints(vaultId, device, 0, 10)).map((c) => c.size),
    [2, 3, 6],
  );
});

test('a stale expectedSize in the middle of a group is a CONFLICT, and appends chained on it too', async (t) => {
  const storage = await open(t, await tempFile(t));
  const vaultId = newVaultId();
  const [alice, bob, carol] = [newDevice(), newDevice(), newDevice()];
  await storage.createVault(vaultId, randomBytes(20));
  await storage.append(makeBatch(vaultId, carol, 0, { count: 2 }));
  const before = await snapshot(storage, vaultId);

  const batches = [
    makeBatch(vaultId, alice, 0, { count: 2 }),
    makeBatch(vaultId, bob, 1, { count: 1 }), // bob's log is empty: CONFLICT
    makeBatch(vaultId, bob, 2, { count: 1 }), // chained on the refused one: CONFLICT too
    makeBatch(vaultId, alice, 3, { count: 1 }), // alice is at 2 once the first commits: CONFLICT
    makeBatch(vaultId, alice, 2, { count: 1 }),
    makeBatch(vaultId, carol, 2, { count: 1 }),
    makeBatch(vaultId, carol, 2, { count: 1 }), // the same position twice: the second loses
  ];
  const { result, commits, appends } = await counted(storage, () => appendAll(storage, batches));
  const conflict = (expectedSize: number, actualSize: number) => ({
    code: 'CONFLICT',
    details: { expectedSize, actualSize },
  });
  t.deepEqual(result, ['ok', conflict(1, 0), conflict(2, 0), conflict(3, 2), 'ok', 'ok', conflict(2, 3)]);
  t.is(commits, 1);
  t.is(appends, 3);

  t.is(await storage.getHead(vaultId, bob), undefined, 'nothing of the refused appends');
  t.deepEqual(await storage.getHead(vaultId, alice), batches[4]!.head);
  t.deepEqual(await storage.getHead(vaultId, carol), batches[5]!.head);
  const after = await snapshot(storage, vaultId);
  const added = [batches[0]!, batches[4]!, batches[5]!].flatMap((batch) => batch.entries);
  t.is(after.bytes, before.bytes + added.reduce((sum, entry) => sum + entry.bytes.length, 0));
  t.deepEqual(after.logs.find((log) => log.device === carol)!.entries, [
    ...before.logs[0]!.entries,
    ...batches[5]!.entries,
  ]);
});

test('an append to a missing vault in a group is NOT_FOUND; the others commit', async (t) => {
  const storage = await open(t, await tempFile(t));
  const [vaultId, missing] = [newVaultId(), newVaultId()];
  const device = newDevice();
  await storage.createVault(vaultId, randomBytes(20));
  const result = await appendAll(storage, [
    makeBatch(vaultId, device, 0),
    makeBatch(missing, device, 0),
    makeBatch(vaultId, device, 1),
  ]);
  t.deepEqual(result, ['ok', { code: 'NOT_FOUND', details: { vaultId: missing } }, 'ok']);
  t.is((await storage.getHead(vaultId, device))?.size, 2);
  t.deepEqual(await storage.listVaults(), [vaultId]);
  t.is(await storage.getHead(missing, device), undefined);
});

test('writes keep call order: an append called after createVault sees the vault, even while a group is open', async (t) => {
  const storage = await open(t, await tempFile(t));
  const [first, second] = [newVaultId(), newVaultId()];
  const device = newDevice();
  await storage.createVault(first, randomBytes(20));
  // The first append opens a group; createVault is queued behind it, and the
  // append after createVault must not slip into the earlier group.
  const results = await Promise.all([
    outcomeOf(storage.append(makeBatch(first, device, 0))),
    storage.createVault(second, randomBytes(20)),
    outcomeOf(storage.append(makeBatch(second, device, 0))),
    outcomeOf(storage.append(makeBatch(first, device, 1))),
  ]);
  t.deepEqual(results, ['ok', 'created', 'ok', 'ok']);
  t.is((await storage.getHead(second, device))?.size, 1);
  t.is((await storage.getHead(first, device))?.size, 2);
});

test('a read queued after an append was called sees it', async (t) => {
  const storage = await open(t, await tempFile(t));
  const vaultId = newVaultId();
  const device = newDevice();
  await storage.createVault(vaultId, randomBytes(20));
  const appended = storage.append(makeBatch(vaultId, device, 0, { count: 3 }));
  const head = storage.getHead(vaultId, device);
  const bytes = storage.vaultBytes(vaultId);
  await appended;
  t.is((await head)?.size, 3);
  t.true((await bytes) > 0);
});

test('membership keeps acceptance order within and across groups, without refused appends', async (t) => {
  const storage = await open(t, await tempFile(t));
  const vaultId = newVaultId();
  const [alice, bob] = [newDevice(), newDevice()];
  await storage.createVault(vaultId, randomBytes(20));
  const groupOne = [
    makeBatch(vaultId, bob, 0, { count: 2, membership: [1, 0] }),
    makeBatch(vaultId, alice, 0, { count: 1, membership: [0] }),
    makeBatch(vaultId, alice, 5, { count: 1, membership: [5] }), // CONFLICT: not recorded
    makeBatch(vaultId, bob, 2, { count: 2, membership: [3] }),
  ];
  const groupTwo = [
    makeBatch(vaultId, alice, 1, { count: 2, membership: [2, 1] }),
    makeBatch(vaultId, bob, 4, { count: 1, membership: [4] }),
  ];
  const { result, commits } = await counted(storage, async () => {
    const first = appendAll(storage, groupOne);
    // By the next turn of the event loop the first group is committing: the
    // second group is issued while it runs, and waits for it.
    await new Promise((resolve) => setImmediate(resolve));
    return Promise.all([first, appendAll(storage, groupTwo)]);
  });
  const [one, two] = result;
  t.is(commits, 2);
  t.deepEqual(
    one.map((outcome) => (outcome === 'ok' ? 'ok' : outcome.code)),
    ['ok', 'ok', 'CONFLICT', 'ok'],
  );
  t.deepEqual(two, ['ok', 'ok']);
  const membership = await storage.listMembership(vaultId);
  t.deepEqual(
    membership.map((member) => [member.device === alice ? 'alice' : 'bob', member.index]),
    [
      ['bob', 1],
      ['bob', 0],
      ['alice', 0],
      ['bob', 3],
      ['alice', 2],
      ['alice', 1],
      ['bob', 4],
    ],
  );
  const expected = [...groupOne, ...groupTwo].flatMap((batch) => batch.membership);
  t.deepEqual(
    membership,
    expected.filter((member) => !(member.device === alice && member.index === 5)),
  );
});

test('a group that SQLite refuses is redone append by append: the good ones commit, the bad one gets its own error', async (t) => {
  const file = await tempFile(t);
  const storage = await open(t, file);
  const vaultId = newVaultId();
  const [alice, bob, carol] = [newDevice(), newDevice(), newDevice()];
  await storage.createVault(vaultId, randomBytes(20));
  // Damage: an entry for bob with no head, so that storing bob's entry 0 hits
  // the primary key, which no check in JavaScript can foresee.
  const stray = randomBytes(10);
  await rawExec(file, 'INSERT INTO entries (vault_id, device, entry_index, leaf_hash, bytes) VALUES (?, ?, ?, ?, ?)', [
    vaultId,
    bob,
    0,
    Buffer.from(leafHash(stray)),
    Buffer.from(stray),
  ]);

  const blob = makeBlob(200);
  const batches = [
    makeBatch(vaultId, alice, 0, { count: 2, membership: [0], blobs: [blob] }),
    makeBatch(vaultId, bob, 0, { count: 1, membership: [0], blobs: [makeBlob(50)] }),
    makeBatch(vaultId, carol, 0, { count: 1, blobs: [blob] }),
    makeBatch(vaultId, alice, 2, { count: 1, membership: [2] }),
  ];
  const { result, commits, appends } = await counted(storage, () => appendAll(storage, batches));
  t.deepEqual(result[0], 'ok');
  t.deepEqual(result[2], 'ok');
  t.deepEqual(result[3], 'ok');
  const refused = result[1];
  t.true(refused !== 'ok' && refused?.code === 'INTERNAL', JSON.stringify(refused));
  t.is(refused !== 'ok' ? refused?.details['sqliteCode'] : undefined, 'SQLITE_CONSTRAINT');
  t.is(appends, 3);
  t.is(commits, 3, 'each good append alone');

  t.is(await storage.getHead(vaultId, bob), undefined);
  t.deepEqual(await storage.getHead(vaultId, alice), batches[3]!.head);
  t.deepEqual(await storage.getHead(vaultId, carol), batches[2]!.head);
  t.deepEqual(
    (await storage.listMembership(vaultId)).map((member) => member.index),
    [0, 2],
  );
  t.deepEqual(await storage.getBlob(vaultId, blob.hash), blob.bytes);
  // Counted once, and nothing of the rolled-back attempt.
  const entryBytes = [batches[0]!, batches[2]!, batches[3]!]
    .flatMap((batch) => batch.entries)
    .reduce((sum, entry) => sum + entry.bytes.length, 0);
  t.is(await storage.vaultBytes(vaultId), entryBytes + blob.bytes.length);

  // The next group is back on the shared path.
  const next = await counted(storage, () =>
    appendAll(storage, [makeBatch(vaultId, alice, 3), makeBatch(vaultId, carol, 1)]),
  );
  t.deepEqual(next.result, ['ok', 'ok']);
  t.is(next.commits, 1);
});

test('a group that cannot start (write lock held elsewhere) fails every append with UNAVAILABLE', async (t) => {
  const file = await tempFile(t);
  const storage = await openSqliteStorage(file, { busyTimeoutMs: 100 });
  t.teardown(() => storage.close());
  const vaultId = newVaultId();
  const device = newDevice();
  await storage.createVault(vaultId, randomBytes(20));
  const other = await new Promise<sqlite3.Database>((resolve, reject) => {
    const db = new sqlite3.Database(file, (error) => (error === null ? resolve(db) : reject(error)));
  });
  const exec = (sql: string) =>
    new Promise<void>((resolve, reject) => other.exec(sql, (error) => (error === null ? resolve() : reject(error))));
  await exec('BEGIN IMMEDIATE');
  const result = await appendAll(storage, [makeBatch(vaultId, device, 0), makeBatch(vaultId, device, 1)]);
  await exec('COMMIT');
  await new Promise<void>((resolve) => other.close(() => resolve()));
  t.deepEqual(
    result.map((outcome) => (outcome === 'ok' ? 'ok' : [outcome.code, outcome.details['sqliteCode']])),
    [
      ['UNAVAILABLE', 'SQLITE_BUSY'],
      ['UNAVAILABLE', 'SQLITE_BUSY'],
    ],
  );
  t.is(await storage.getHead(vaultId, device), undefined);
  await storage.append(makeBatch(vaultId, device, 0));
  t.is((await storage.getHead(vaultId, device))?.size, 1);
});

// ---------------------------------------------------------------------------
// Property: appends issued in concurrent bursts (so that they share groups)
// end exactly as the same appends applied one by one, awaited, to the memory
// adapter: the same outcome for each, and the same data.

interface Step {
  vault: number; // 2 is a vault that does not exist
  device: number;
  // Added to the log's size to make expectedSize: 0 is right, anything else a CONFLICT.
  skew: number;
  count: number;
  membership: boolean;
  blob: number; // 0 none, 1 a blob shared by every step that picks it, 2 a blob of its own
  // Wait for everything issued so far before issuing this step.
  awaitBefore: boolean;
}

const stepArbitrary: fc.Arbitrary<Step> = fc.record({
  vault: fc.integer({ min: 0, max: 2 }),
  device: fc.integer({ min: 0, max: 2 }),
  skew: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: -2, max: 2 }) }),
  count: fc.integer({ min: 1, max: 3 }),
  membership: fc.boolean(),
  blob: fc.integer({ min: 0, max: 2 }),
  awaitBefore: fc.integer({ min: 0, max: 6 }).map((n) => n === 0),
});

test('property: appends in concurrent groups end as the same appends applied one by one', async (t) => {
  const storage = await open(t, await tempFile(t));
  let runs = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(stepArbitrary, { minLength: 1, maxLength: 40 }), async (steps) => {
      runs++;
      const memory = new MemoryStorage();
      const vaults = [newVaultId(), newVaultId(), newVaultId()];
      const devices = [newDevice(), newDevice(), newDevice()];
      const genesis = randomBytes(10);
      for (const vaultId of vaults.slice(0, 2)) {
        await storage.createVault(vaultId, genesis);
        await memory.createVault(vaultId, genesis);
      }
      const shared = makeBlob(64);
      const blobHashes = [shared.hash];

      // The batches, with the sizes the logs will have if every right-sized append succeeds.
      const sizes = new Map<string, number>();
      const batches = steps.map((step) => {
        const [vaultId, device] = [vaults[step.vault]!, devices[step.device]!];
        const key = `${step.vault}/${step.device}`;
        const size = sizes.get(key) ?? 0;
        const expectedSize = Math.max(0, size + step.skew);
        const own = makeBlob(32);
        if (step.blob === 2) blobHashes.push(own.hash);
        const batch = makeBatch(vaultId, device, expectedSize, {
          count: step.count,
          membership: step.membership ? [expectedSize + step.count - 1] : [],
          blobs: step.blob === 0 ? [] : [step.blob === 1 ? shared : own],
        });
        if (step.vault !== 2 && expectedSize === size) sizes.set(key, batch.head.size);
        return batch;
      });

      const expected: Outcome[] = [];
      for (const batch of batches) expected.push(await outcomeOf(memory.append(batch)));

      const issued: Promise<Outcome>[] = [];
      for (const [i, batch] of batches.entries()) {
        if (steps[i]!.awaitBefore) await Promise.all(issued);
        issued.push(outcomeOf(storage.append(batch)));
      }
      const actual = await Promise.all(issued);
      if (JSON.stringify(actual) !== JSON.stringify(expected)) {
        t.deepEqual(actual, expected);
        return false;
      }
      for (const vaultId of vaults) {
        const [got, want] = [await snapshot(storage, vaultId, blobHashes), await snapshot(memory, vaultId, blobHashes)];
        if (JSON.stringify(got) !== JSON.stringify(want)) {
          t.deepEqual(got, want);
          return false;
        }
      }
      await memory.close();
      return true;
    }),
    { numRuns: 40 },
  );
  t.log(`${runs} runs`);
  t.pass();
});

// ---------------------------------------------------------------------------
// kill -9 while groups commit: writers on several logs append concurrently
// (so that their appends share transactions) and print each size once its
// append resolved. Every acknowledged size must survive, with whole batches.

const WRITERS = 8;
const sqliteModule = path.join(path.dirname(fileURLToPath(import.meta.url)), '../src/storage/sqlite.ts');

// The child: every byte it writes is a function of (device, index), so the
// parent can tell intact entries and whole batches from damage.
const writerCode = `
import { leafHash, sha256, toHex } from '@e2ekv/protocol';
import { openSqliteStorage } from ${JSON.stringify(pathToFileURL(sqliteModule).href)};
const storage = await openSqliteStorage(process.env.GROUP_CRASH_DB);
await storage.createVault('crash', new Uint8Array([1]));
const text = new TextEncoder();
await Promise.all(Array.from({ length: ${WRITERS} }, async (_, d) => {
  const device = toHex(sha256(text.encode('device ' + d)));
  let size = (await storage.getHead('crash', device))?.size ?? 0;
  for (;;) {
    const count = 1 + (size % 3);
    const entries = Array.from({ length: count }, (_, i) => {
      const bytes = text.encode(('entry ' + device + ' ' + (size + i) + ' ').padEnd(40 + ((size + i) % 7) * 30, '.'));
      return { index: size + i, bytes, leafHash: leafHash(bytes) };
    });
    const head = { device, size: size + count, root: sha256(text.encode('root ' + (size + count))), note: 'n' + (size + count) };
    await storage.append({ vaultId: 'crash', device, expectedSize: size, entries, blobs: [], head,
      membership: [{ device, index: size, bytes: entries[0].bytes }] });
    size += count;
    process.stdout.write(d + ' ' + size + '\\n');
  }
}));
`;

function runWritersUntilKilled(file: string, killAfterFirstAckMs: number): Promise<Map<number, number>> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import=tsx/esm', '--conditions=e2ekv-source', '--input-type=module', '-e', writerCode],
      { cwd: repoRoot, env: { ...process.env, GROUP_CRASH_DB: file }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    let killTimer: NodeJS.Timeout | undefined;
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      killTimer ??= setTimeout(() => child.kill('SIGKILL'), killAfterFirstAckMs);
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(killTimer);
      if (signal !== 'SIGKILL') return reject(new Error(`the writer exited by itself (code ${code}):\n${stderr}`));
      const acknowledged = new Map<number, number>();
      for (const line of stdout.split('\n')) {
        const match = /^(\d+) (\d+)$/.exec(line);
        if (match !== null) acknowledged.set(Number(match[1]), Number(match[2]));
      }
      resolve(acknowledged);
    });
  });
}

test('acknowledged appends of concurrent writers survive kill -9 during group commits', async (t) => {
  const file = await tempFile(t);
  const text = new TextEncoder();
  const devices = Array.from({ length: WRITERS }, (_, d) => toHex(sha256(text.encode(`device ${d}`))));
  let acknowledgedTotal = 0;
  for (let run = 0; run < 5; run++) {
    const acknowledged = await runWritersUntilKilled(file, Math.floor(Math.random() * 300));
    acknowledgedTotal += acknowledged.size;
    const storage = await openSqliteStorage(file);
    try {
      let entryBytes = 0;
      const membership = await storage.listMembership('crash');
      const sizes: number[] = [];
      for (const [d, device] of devices.entries()) {
        const size = (await storage.getHead('crash', device))?.size ?? 0;
        sizes.push(size);
        t.true(
          size >= (acknowledged.get(d) ?? 0),
          `writer ${d}: head ${size} lost acknowledged ${acknowledged.get(d)}`,
        );
        const batchEnds: number[] = [];
        const batchStarts: number[] = [];
        for (let start = 0; start < size; start += 1 + (start % 3)) {
          batchStarts.push(start);
          batchEnds.push(start + 1 + (start % 3));
        }
        t.is(batchEnds.at(-1) ?? 0, size, `writer ${d}: the head is on a batch boundary`);
        const entries = await storage.getEntries('crash', device, 0, size + 10);
        t.is(entries.length, size);
        const damaged = entries.filter((entry, i) => {
          entryBytes += entry.bytes.length;
          return (
            entry.index !== i ||
            !new TextDecoder().decode(entry.bytes).startsWith(`entry ${device} ${i} `) ||
            Buffer.compare(entry.leafHash, leafHash(entry.bytes)) !== 0
          );
        });
        t.deepEqual(
          damaged.map((entry) => entry.index),
          [],
        );
        t.deepEqual(
          (await storage.listCheckpoints('crash', device, 0, 100_000)).map((c) => c.size),
          batchEnds,
        );
        t.deepEqual(
          membership.filter((member) => member.device === device).map((member) => member.index),
          batchStarts,
        );
      }
      t.is(await storage.vaultBytes('crash'), entryBytes, 'the byte counter matches');
      t.log(`run ${run}: acknowledged ${JSON.stringify([...acknowledged.values()])}; heads ${JSON.stringify(sizes)}`);
    } finally {
      await storage.close();
    }
  }
  t.true(acknowledgedTotal >= 5, 'the writers got to append in every run');
});
