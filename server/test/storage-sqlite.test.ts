import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { E2ekvError, leafHash } from '@e2ekv/protocol';
import test from 'ava';
import type { ExecutionContext } from 'ava';
import sqlite3 from 'sqlite3';
import type { StorageAdapter } from '../src/storage/adapter.js';
import { SCHEMA_VERSION, openSqliteStorage, type SqliteStorage } from '../src/storage/sqlite.js';
import { repoRoot } from '../../test/support/paths.js';
import { rejectsCode } from '../../test/support/errors.js';
import { makeBatch, newDevice, newVaultId, snapshot, storageConformance } from './storage-conformance.js';
import {
  CRASH_DEVICE,
  CRASH_GENESIS,
  CRASH_VAULT,
  batchLengthAt,
  blobOfBatchAt,
  entryBytes,
  noteAt,
  rootAt,
} from './fixtures/sqlite-writer.js';

async function tempDir(t?: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'e2ekv-sqlite-'));
  t?.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

storageConformance(
  'sqlite',
  async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'replica.db');
    const opened: StorageAdapter[] = [await openSqliteStorage(file)];
    return {
      storage: opened[0]!,
      reopen: async () => {
        const storage = await openSqliteStorage(file);
        opened.push(storage);
        return storage;
      },
      cleanup: async () => {
        await Promise.all(opened.map((storage) => storage.close()));
        await rm(dir, { recursive: true, force: true });
      },
    };
  },
  { persistent: true },
);

// A raw connection, to look at and tamper with a database behind the adapter's back.
class Raw {
  private constructor(private readonly db: sqlite3.Database) {}

  static open(file: string): Promise<Raw> {
    return new Promise((resolve, reject) => {
      const db = new sqlite3.Database(file, (error) => (error === null ? resolve(new Raw(db)) : reject(error)));
    });
  }

  get<Row>(sql: string): Promise<Row> {
    return new Promise((resolve, reject) => {
      this.db.get<Row>(sql, (error: Error | null, row: Row) => (error === null ? resolve(row) : reject(error)));
    });
  }

  exec(sql: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.db.exec(sql, (error: Error | null) => (error === null ? resolve() : reject(error)));
    });
  }

  close(): Promise<void> {
    return new Promise((resolve, reject) => this.db.close((error) => (error === null ? resolve() : reject(error))));
  }
}

async function withStorage<T>(file: string, work: (storage: SqliteStorage) => Promise<T>): Promise<T> {
  const storage = await openSqliteStorage(file);
  try {
    return await work(storage);
  } finally {
    await storage.close();
  }
}

test('sqlite: a fresh database is migrated to SCHEMA_VERSION', async (t) => {
  const file = path.join(await tempDir(t), 'fresh.db');
  t.true(SCHEMA_VERSION >= 1);
  await withStorage(file, async (storage) => t.is(storage.schemaVersion, SCHEMA_VERSION));
  const raw = await Raw.open(file);
  t.is((await raw.get<{ user_version: number }>('PRAGMA user_version')).user_version, SCHEMA_VERSION);
  await raw.close();
});

test('sqlite: reopening a database applies no migration twice and keeps its data', async (t) => {
  const file = path.join(await tempDir(t), 'reopen.db');
  const vaultId = newVaultId();
  const device = newDevice();
  const before = await withStorage(file, async (storage) => {
    await storage.createVault(vaultId, new Uint8Array([1, 2, 3]));
    await storage.append(makeBatch(vaultId, device, 0, { count: 3, membership: [0] }));
    return snapshot(storage, vaultId);
  });
  const schemaOf = async () => {
    const raw = await Raw.open(file);
    const row = await raw.get<{ schema: string }>("SELECT group_concat(sql, ';') AS schema FROM sqlite_master");
    await raw.close();
    return row.schema;
  };
  const schema = await schemaOf();
  for (let i = 0; i < 3; i++) {
    await withStorage(file, async (storage) => {
      t.is(storage.schemaVersion, SCHEMA_VERSION);
      t.deepEqual(await snapshot(storage, vaultId), before);
    });
  }
  t.is(await schemaOf(), schema);
});

test('sqlite: a version 1 database gains the checkpoint history, seeded with each log head', async (t) => {
  const file = path.join(await tempDir(t), 'v1.db');
  const vaultId = newVaultId();
  const [alice, bob] = [newDevice(), newDevice()];
  await withStorage(file, async (storage) => {
    await storage.createVault(vaultId, new Uint8Array([1]));
    await storage.append(makeBatch(vaultId, alice, 0, { count: 2 }));
    await storage.append(makeBatch(vaultId, alice, 2, { count: 3 }));
    await storage.append(makeBatch(vaultId, bob, 0, { count: 1 }));
  });
  // Back to what version 1 had: heads only.
  const raw = await Raw.open(file);
  await raw.exec('DROP TABLE checkpoints; PRAGMA user_version = 1;');
  await raw.close();
  await withStorage(file, async (storage) => {
    t.is(storage.schemaVersion, SCHEMA_VERSION);
    t.deepEqual(await storage.listCheckpoints(vaultId, alice, 0, 10), [{ size: 5, note: `note for ${alice} at 5\n` }]);
    t.deepEqual(await storage.listCheckpoints(vaultId, bob, 0, 10), [{ size: 1, note: `note for ${bob} at 1\n` }]);
    await storage.append(makeBatch(vaultId, alice, 5, { count: 1 }));
    t.deepEqual(
      (await storage.listCheckpoints(vaultId, alice, 0, 10)).map((c) => c.size),
      [5, 6],
    );
  });
});

test('sqlite: a database from a newer release is refused, untouched', async (t) => {
  const file = path.join(await tempDir(t), 'newer.db');
  const raw = await Raw.open(file);
  await raw.exec(`CREATE TABLE future (x INTEGER); PRAGMA user_version = ${SCHEMA_VERSION + 1};`);
  await raw.close();

  const error = await t.throwsAsync(() => openSqliteStorage(file), { instanceOf: E2ekvError });
  t.is(error?.code, 'UNSUPPORTED_VERSION');
  t.regex(error?.message ?? '', /newer release.*[Uu]pgrade e2ekv-server/);
  t.is(error?.details['schemaVersion'], SCHEMA_VERSION + 1);

  const after = await Raw.open(file);
  t.is((await after.get<{ user_version: number }>('PRAGMA user_version')).user_version, SCHEMA_VERSION + 1);
  t.is(
    (await after.get<{ journal_mode: string }>('PRAGMA journal_mode')).journal_mode,
    'delete',
    'not even the journal mode changed',
  );
  t.is((await after.get<{ n: number }>('SELECT count(*) AS n FROM sqlite_master')).n, 1);
  await after.close();
});

test('sqlite: a file that is not a database fails with an E2ekvError, not a raw sqlite error', async (t) => {
  const file = path.join(await tempDir(t), 'not-a.db');
  await writeFile(file, 'this is not a database, just a text file that is long enough to have a header '.repeat(20));
  const error = await t.throwsAsync(() => openSqliteStorage(file), { instanceOf: E2ekvError });
  t.is(error?.code, 'INTERNAL');
  t.is(error?.details['sqliteCode'], 'SQLITE_NOTADB');
});

test('sqlite: WAL, synchronous=FULL and foreign keys are in effect', async (t) => {
  const file = path.join(await tempDir(t), 'pragmas.db');
  await withStorage(file, async (storage) => {
    t.deepEqual(await storage.settings(), { journalMode: 'wal', synchronous: 2, foreignKeys: true });
  });
  const raw = await Raw.open(file);
  t.is((await raw.get<{ journal_mode: string }>('PRAGMA journal_mode')).journal_mode, 'wal', 'WAL is persistent');
  await raw.close();
});

test('sqlite: a write lock held too long elsewhere is UNAVAILABLE, and nothing is half-written', async (t) => {
  const file = path.join(await tempDir(t), 'busy.db');
  const storage = await openSqliteStorage(file, { busyTimeoutMs: 100 });
  t.teardown(() => storage.close());
  const vaultId = newVaultId();
  const device = newDevice();
  await storage.createVault(vaultId, new Uint8Array([1]));
  await storage.append(makeBatch(vaultId, device, 0));
  const before = await snapshot(storage, vaultId);

  const other = await Raw.open(file);
  await other.exec('BEGIN IMMEDIATE');
  const started = Date.now();
  const error = await t.throwsAsync(() => storage.append(makeBatch(vaultId, device, 1)), { instanceOf: E2ekvError });
  t.is(error?.code, 'UNAVAILABLE');
  t.is(error?.details['sqliteCode'], 'SQLITE_BUSY');
  t.true(Date.now() - started >= 90, 'it waited for the busy timeout');
  t.deepEqual(await snapshot(storage, vaultId), before, 'readers are not blocked in WAL mode');
  await other.exec('COMMIT');
  await other.close();

  await storage.append(makeBatch(vaultId, device, 1));
  t.is((await storage.getHead(vaultId, device))?.size, 2);
});

test('sqlite: two adapters on one file still let only one of two racing appends win', async (t) => {
  const file = path.join(await tempDir(t), 'shared.db');
  const [a, b] = [await openSqliteStorage(file), await openSqliteStorage(file)];
  t.teardown(async () => {
    await a.close();
    await b.close();
  });
  const vaultId = newVaultId();
  await a.createVault(vaultId, new Uint8Array([1]));
  for (let round = 0; round < 5; round++) {
    const device = newDevice();
    const results = await Promise.allSettled([
      a.append(makeBatch(vaultId, device, 0, { count: 3 })),
      b.append(makeBatch(vaultId, device, 0, { count: 2 })),
    ]);
    const failures = results.flatMap((result) => (result.status === 'rejected' ? [result.reason as unknown] : []));
    t.is(failures.length, 1);
    t.is((failures[0] as E2ekvError).code, 'CONFLICT');
  }
  await rejectsCode(t, () => b.append(makeBatch(newVaultId(), newDevice(), 0)), 'NOT_FOUND');
});

// ---------------------------------------------------------------------------
// Crash test: kill -9 a writer at random moments; every acknowledged append
// must survive, and no batch may be there in part.

const writerScript = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures/sqlite-writer.ts');

interface WriterRun {
  acknowledged: number[];
}

function runWriterUntilKilled(file: string, killAfterFirstAckMs: number): Promise<WriterRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import=tsx/esm', '--conditions=e2ekv-source', writerScript, file], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let killTimer: NodeJS.Timeout | undefined;
    const acknowledged = () =>
      stdout
        .split('\n')
        .filter((line) => /^[0-9]+$/.test(line))
        .map(Number);
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      if (killTimer === undefined && acknowledged().length > 0) {
        killTimer = setTimeout(() => child.kill('SIGKILL'), killAfterFirstAckMs);
      }
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(killTimer);
      if (signal === 'SIGKILL') resolve({ acknowledged: acknowledged() });
      else reject(new Error(`the writer exited by itself (code ${code}):\n${stderr}`));
    });
  });
}

async function checkCrashSurvivor(t: ExecutionContext, file: string, lastAcknowledged: number): Promise<number> {
  return withStorage(file, async (storage) => {
    t.deepEqual(await storage.getGenesis(CRASH_VAULT), CRASH_GENESIS);
    const head = await storage.getHead(CRASH_VAULT, CRASH_DEVICE);
    const size = head?.size ?? 0;
    t.true(size >= lastAcknowledged, `head ${size} lost acknowledged size ${lastAcknowledged}`);
    if (head !== undefined) {
      t.deepEqual(head.root, rootAt(size));
      t.is(head.note, noteAt(size));
    }

    // Whole batches only: walking the deterministic batch sizes must land exactly on the head.
    const batchStarts: number[] = [];
    for (let start = 0; start < size; start += batchLengthAt(start)) batchStarts.push(start);
    const end = batchStarts.length === 0 ? 0 : batchStarts.at(-1)! + batchLengthAt(batchStarts.at(-1)!);
    t.is(end, size, 'the head is on a batch boundary');

    const entries = await storage.getEntries(CRASH_VAULT, CRASH_DEVICE, 0, size + 100);
    t.is(entries.length, size, 'as many entries as the head says, none beyond');
    let entryBytesTotal = 0;
    const damaged = entries.filter((entry, i) => {
      const expected = entryBytes(i);
      entryBytesTotal += entry.bytes.length;
      return (
        entry.index !== i ||
        Buffer.compare(entry.bytes, expected) !== 0 ||
        Buffer.compare(entry.leafHash, leafHash(expected)) !== 0
      );
    });
    t.deepEqual(
      damaged.map((entry) => entry.index),
      [],
      'entries intact',
    );
    const leafHashes = await storage.getLeafHashes(CRASH_VAULT, CRASH_DEVICE);
    t.is(leafHashes.length, size);

    const membership = await storage.listMembership(CRASH_VAULT);
    t.deepEqual(
      membership.map((member) => member.index),
      batchStarts,
      'one membership entry per whole batch',
    );
    let blobBytesTotal = 0;
    for (const start of batchStarts) {
      const blob = blobOfBatchAt(start);
      const stored = await storage.getBlob(CRASH_VAULT, blob.hash);
      t.true(stored !== undefined && Buffer.compare(stored, blob.bytes) === 0, `blob of batch ${start}`);
      blobBytesTotal += blob.bytes.length;
    }
    t.is(await storage.vaultBytes(CRASH_VAULT), entryBytesTotal + blobBytesTotal, 'the byte counter matches');
    return size;
  });
}

test('sqlite: acknowledged appends survive kill -9 and no batch is left in part', async (t) => {
  const file = path.join(await tempDir(t), 'crash.db');
  const runs = 10;
  let acknowledgedTotal = 0;
  for (let run = 0; run < runs; run++) {
    const { acknowledged } = await runWriterUntilKilled(file, Math.floor(Math.random() * 300));
    acknowledgedTotal += acknowledged.length;
    const size = await checkCrashSurvivor(t, file, acknowledged.at(-1) ?? 0);
    t.log(
      `run ${run}: ${acknowledged.length} appends acknowledged, the last at ${acknowledged.at(-1)}; head at ${size}`,
    );
  }
  t.true(acknowledgedTotal >= runs, 'the writer got to append in every run');
});
