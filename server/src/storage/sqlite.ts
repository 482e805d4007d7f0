/**
 * The replica's durable storage: one SQLite database in WAL mode with
 * synchronous=FULL, so that a write whose promise resolved is in the fsynced
 * log and survives the process being killed or the machine losing power.
 *
 * One connection, and one operation on it at a time: a transaction spans
 * several awaited statements, and another caller's statement must never land
 * inside it. Readers therefore queue behind writers; a separate read connection
 * is the way out if that ever shows up in profiles.
 *
 * Appends are committed in groups: every append that arrives while the queue is
 * busy joins one group, and the whole group is one transaction and one fsync
 * (see AppendGroup). Each append keeps its own checks, outcome and error, as if
 * it had been committed alone in the order it was called.
 */
import { E2ekvError } from '@e2ekv/protocol';
import sqlite3 from 'sqlite3';
import type { AppendBatch, CheckpointRecord, Evidence, LogHead, StorageAdapter, StoredEntry } from './adapter.js';
import {
  checkAppendBatch,
  checkEntryRange,
  checkEvidence,
  checkVaultId,
  sizeConflict,
  storageClosed,
  vaultNotFound,
} from './validate.js';

export interface SqliteStorageOptions {
  /** How long a write waits for another connection's lock before failing with UNAVAILABLE (default 5000). */
  busyTimeoutMs?: number;
}

/** The connection settings durability depends on, as SQLite reports them. */
export interface SqliteSettings {
  journalMode: string;
  /** 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA. */
  synchronous: number;
  foreignKeys: boolean;
}

/** How well appends share transactions, counted since the adapter was opened. */
export interface SqliteAppendStats {
  /** Appends that resolved (committed). */
  appends: number;
  /** Transactions committed for appends: each is one fsync. */
  commits: number;
}

export interface SqliteStorage extends StorageAdapter {
  /** The schema version of the open database (SCHEMA_VERSION once open succeeded). */
  readonly schemaVersion: number;
  /** For startup logs and tests: what SQLite says the durability settings are. */
  settings(): Promise<SqliteSettings>;
  /** For metrics and tests: appends and the commits (fsyncs) they took. */
  appendStats(): SqliteAppendStats;
}

// ---------------------------------------------------------------------------
// A promise face for the callback API of the sqlite3 package. Errors leave it
// raw; the adapter wraps them, because only it knows what was being attempted.

type SqlValue = string | number | Buffer | null;

// Prepared statements kept per connection, least recently used dropped first.
// Enough for every fixed statement and the multi-row INSERTs of common group sizes.
const MAX_CACHED_STATEMENTS = 128;
// A kept statement holds a copy of the values last bound to it until its next
// use: statements bound to more than this run once and are finalized instead,
// so that kept statements hold at most MAX_CACHED_STATEMENTS times this.
const MAX_KEPT_PARAM_BYTES = 64 * 1024;

function paramBytes(params: readonly SqlValue[]): number {
  let bytes = 0;
  for (const value of params) if (typeof value === 'string' || value instanceof Buffer) bytes += value.length;
  return bytes;
}

class Connection {
  // Prepared statements by SQL text, in order of last use. db.run and db.all
  // prepare, step and finalize a statement: three trips to node-sqlite3's worker
  // thread. A kept statement costs one per use.
  readonly #statements = new Map<string, sqlite3.Statement>();

  private constructor(private readonly db: sqlite3.Database) {}

  static open(file: string): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const db = new sqlite3.Database(file, sqlite3.OPEN_READWRITE | sqlite3.OPEN_CREATE, (error) => {
        if (error === null) resolve(new Connection(db));
        else reject(error);
      });
    });
  }

  setBusyTimeout(ms: number): void {
    this.db.configure('busyTimeout', ms);
  }

  #prepare(sql: string): Promise<sqlite3.Statement> {
    return new Promise((resolve, reject) => {
      const prepared = this.db.prepare(sql, (error: Error | null) => {
        if (error === null) resolve(prepared);
        else reject(error);
      });
    });
  }

  /** The kept statement for `sql`, prepared on first use. */
  async #kept(sql: string): Promise<sqlite3.Statement> {
    const kept = this.#statements.get(sql);
    if (kept !== undefined) {
      this.#statements.delete(sql);
      this.#statements.set(sql, kept);
      return kept;
    }
    const statement = await this.#prepare(sql);
    this.#statements.set(sql, statement);
    if (this.#statements.size > MAX_CACHED_STATEMENTS) {
      // The oldest is not in use: the adapter runs one statement at a time.
      const [oldestSql, oldest] = this.#statements.entries().next().value!;
      this.#statements.delete(oldestSql);
      oldest.finalize();
    }
    return statement;
  }

  /** Runs `use` on a statement for `sql`: a kept one, or for large values one finalized right after. */
  async #withStatement<T>(
    sql: string,
    params: readonly SqlValue[],
    use: (statement: sqlite3.Statement) => Promise<T>,
  ): Promise<T> {
    if (paramBytes(params) <= MAX_KEPT_PARAM_BYTES) return use(await this.#kept(sql));
    const statement = await this.#prepare(sql);
    try {
      return await use(statement);
    } finally {
      statement.finalize();
    }
  }

  run(sql: string, params: readonly SqlValue[] = []): Promise<{ changes: number }> {
    return this.#withStatement(
      sql,
      params,
      (statement) =>
        new Promise((resolve, reject) => {
          statement.run(params, function (this: sqlite3.RunResult, error: Error | null) {
            if (error === null) resolve({ changes: this.changes });
            else reject(error);
          });
        }),
    );
  }

  // Through all(), never Statement#get: get stops at the first row and leaves
  // the statement open, holding its read transaction.
  async get<Row>(sql: string, params: readonly SqlValue[] = []): Promise<Row | undefined> {
    return (await this.all<Row>(sql, params))[0];
  }

  all<Row>(sql: string, params: readonly SqlValue[] = []): Promise<Row[]> {
    return this.#withStatement(
      sql,
      params,
      (statement) =>
        new Promise((resolve, reject) => {
          statement.all<Row>(params, (error: Error | null, rows: Row[]) => {
            if (error === null) resolve(rows);
            else reject(error);
          });
        }),
    );
  }

  exec(sql: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.db.exec(sql, (error: Error | null) => {
        if (error === null) resolve();
        else reject(error);
      });
    });
  }

  async close(): Promise<void> {
    // SQLite refuses to close a connection with statements left unfinalized.
    const statements = [...this.#statements.values()];
    this.#statements.clear();
    await Promise.all(
      statements.map((statement) => new Promise<void>((resolve) => statement.finalize(() => resolve()))),
    );
    return new Promise((resolve, reject) => {
      this.db.close((error) => {
        if (error === null) resolve();
        else reject(error);
      });
    });
  }

  /** Runs `work` in a transaction that takes the write lock at once, so checks inside it stay true until COMMIT. */
  async transaction<T>(work: () => Promise<T>): Promise<T> {
    await this.exec('BEGIN IMMEDIATE');
    try {
      const result = await work();
      await this.exec('COMMIT');
      return result;
    } catch (error) {
      // SQLite has already rolled back after some errors (a full disk, for
      // one); the original error is the one worth reporting either way.
      await this.exec('ROLLBACK').catch(() => undefined);
      throw error;
    }
  }
}

// sqlite3 binds Buffers as BLOBs; wrapping shares the caller's memory instead of copying it.
function blob(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

// Rows come back as Buffers; callers get plain Uint8Arrays, like from every other adapter.
function bytesOf(value: Buffer): Uint8Array {
  return new Uint8Array(value);
}

// Errors that mean "not now" rather than "something is wrong": a caller may retry later.
const TRANSIENT_SQLITE_CODES = new Set([
  'SQLITE_BUSY',
  'SQLITE_LOCKED',
  'SQLITE_FULL',
  'SQLITE_IOERR',
  'SQLITE_CANTOPEN',
]);

function wrapError(error: unknown, action: string): E2ekvError {
  if (error instanceof E2ekvError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  const sqliteCode = typeof code === 'string' ? code : 'unknown';
  const reason = error instanceof Error ? error.message : String(error);
  if (sqliteCode === 'SQLITE_BUSY') {
    return new E2ekvError('UNAVAILABLE', `storage busy: could not ${action} before the busy timeout (${reason})`, {
      cause: error,
      details: { sqliteCode },
    });
  }
  const errorCode = TRANSIENT_SQLITE_CODES.has(sqliteCode) ? 'UNAVAILABLE' : 'INTERNAL';
  return new E2ekvError(errorCode, `storage failed to ${action}: ${reason}`, { cause: error, details: { sqliteCode } });
}

// ---------------------------------------------------------------------------
// Schema. Migration N takes the database from user_version N to N + 1, each in
// its own transaction; they are append-only once released. No IF NOT EXISTS:
// running one twice must fail loudly rather than half-succeed.

type Migration = (connection: Connection) => Promise<void>;

const migrations: readonly Migration[] = [
  async (connection) => {
    await connection.exec(`
      CREATE TABLE vaults (
        vault_id TEXT PRIMARY KEY,
        genesis BLOB NOT NULL,
        -- Entry and blob bytes, kept up to date by append so quotas need no SUM over the vault.
        stored_bytes INTEGER NOT NULL DEFAULT 0
      ) STRICT;

      CREATE TABLE heads (
        vault_id TEXT NOT NULL REFERENCES vaults (vault_id),
        device TEXT NOT NULL,
        size INTEGER NOT NULL,
        root BLOB NOT NULL,
        note TEXT NOT NULL,
        PRIMARY KEY (vault_id, device)
      ) STRICT;

      -- The primary key's index serves range reads. leaf_hash comes before bytes
      -- so that reading hashes can stop before a large entry's overflow pages.
      CREATE TABLE entries (
        vault_id TEXT NOT NULL REFERENCES vaults (vault_id),
        device TEXT NOT NULL,
        entry_index INTEGER NOT NULL,
        leaf_hash BLOB NOT NULL,
        bytes BLOB NOT NULL,
        PRIMARY KEY (vault_id, device, entry_index)
      ) STRICT;

      CREATE TABLE blobs (
        vault_id TEXT NOT NULL REFERENCES vaults (vault_id),
        hash TEXT NOT NULL,
        bytes BLOB NOT NULL,
        PRIMARY KEY (vault_id, hash)
      ) STRICT;

      -- AUTOINCREMENT: sequence numbers are never reused, so they keep giving
      -- acceptance order even if rows are ever deleted.
      CREATE TABLE membership (
        sequence INTEGER PRIMARY KEY AUTOINCREMENT,
        vault_id TEXT NOT NULL,
        device TEXT NOT NULL,
        entry_index INTEGER NOT NULL,
        bytes BLOB NOT NULL,
        UNIQUE (vault_id, device, entry_index),
        FOREIGN KEY (vault_id, device, entry_index) REFERENCES entries (vault_id, device, entry_index)
      ) STRICT;
      CREATE INDEX membership_by_vault ON membership (vault_id, sequence);

      CREATE TABLE evidence (
        sequence INTEGER PRIMARY KEY AUTOINCREMENT,
        vault_id TEXT NOT NULL REFERENCES vaults (vault_id),
        device TEXT NOT NULL,
        first_note TEXT NOT NULL,
        second_note TEXT NOT NULL,
        recorded_at_ms INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX evidence_by_vault ON evidence (vault_id, sequence);
    `);
  },
  // 1 -> 2: every head's note, so that replication can ship a log's suffix in
  // batches that end at checkpoints the device signed. Logs accepted before
  // this version keep only their current head's note.
  async (connection) => {
    await connection.exec(`
      CREATE TABLE checkpoints (
        vault_id TEXT NOT NULL REFERENCES vaults (vault_id),
        device TEXT NOT NULL,
        size INTEGER NOT NULL,
        note TEXT NOT NULL,
        PRIMARY KEY (vault_id, device, size)
      ) STRICT;
      INSERT INTO checkpoints (vault_id, device, size, note) SELECT vault_id, device, size, note FROM heads;
    `);
  },
];

/** The schema version this code creates and understands. */
export const SCHEMA_VERSION = migrations.length;

async function readSchemaVersion(connection: Connection): Promise<number> {
  const row = await connection.get<{ user_version: number }>('PRAGMA user_version');
  return row?.user_version ?? 0;
}

function tooNew(file: string, version: number): E2ekvError {
  return new E2ekvError(
    'UNSUPPORTED_VERSION',
    `the database ${file} has schema version ${version}, but this e2ekv-server only knows versions up to ` +
      `${SCHEMA_VERSION}: it was written by a newer release. Upgrade e2ekv-server to open it.`,
    { details: { schemaVersion: version, supportedVersion: SCHEMA_VERSION } },
  );
}

async function migrate(connection: Connection, file: string): Promise<number> {
  for (;;) {
    // The version is read inside the transaction, so two servers opening the
    // same new file at once cannot both apply a migration.
    const done = await connection.transaction(async () => {
      const version = await readSchemaVersion(connection);
      if (version > SCHEMA_VERSION) throw tooNew(file, version);
      if (version === SCHEMA_VERSION) return true;
      await migrations[version]!(connection);
      await connection.exec(`PRAGMA user_version = ${version + 1}`);
      return false;
    });
    if (done) return SCHEMA_VERSION;
  }
}

// ---------------------------------------------------------------------------

// Stays well under SQLite's limit on bound parameters per statement.
const MAX_PARAMS_PER_STATEMENT = 999;

/**
 * Inserts rows with as few statements as the parameter limit allows. `suffix`
 * follows the VALUES list (an ON CONFLICT clause).
 */
async function insertRows(
  connection: Connection,
  table: string,
  columns: readonly string[],
  rows: SqlValue[][],
  suffix = '',
) {
  const rowsPerStatement = Math.floor(MAX_PARAMS_PER_STATEMENT / columns.length);
  const placeholder = `(${columns.map(() => '?').join(', ')})`;
  for (let start = 0; start < rows.length; start += rowsPerStatement) {
    const chunk = rows.slice(start, start + rowsPerStatement);
    await connection.run(
      `INSERT INTO ${table} (${columns.join(', ')}) VALUES ${chunk.map(() => placeholder).join(', ')}${suffix}`,
      chunk.flat(),
    );
  }
}

const ENTRY_COLUMNS = ['vault_id', 'device', 'entry_index', 'leaf_hash', 'bytes'] as const;
const MEMBERSHIP_COLUMNS = ['vault_id', 'device', 'entry_index', 'bytes'] as const;
const HEAD_COLUMNS = ['vault_id', 'device', 'size', 'root', 'note'] as const;
const CHECKPOINT_COLUMNS = ['vault_id', 'device', 'size', 'note'] as const;
const HEAD_UPSERT =
  ' ON CONFLICT (vault_id, device) DO UPDATE SET size = excluded.size, root = excluded.root, note = excluded.note';
const INSERT_BLOB = 'INSERT OR IGNORE INTO blobs (vault_id, hash, bytes) VALUES (?, ?, ?)';

/**
 * One append in its own transaction: the checks, then every write. A group
 * falls back to this, append by append, when its shared transaction failed.
 */
async function appendAlone(db: Connection, batch: AppendBatch): Promise<void> {
  const { vaultId, device, expectedSize } = batch;
  await db.transaction(async () => {
    const vault = await db.get<{ one: number }>('SELECT 1 AS one FROM vaults WHERE vault_id = ?', [vaultId]);
    if (vault === undefined) throw vaultNotFound(vaultId);
    const head = await db.get<{ size: number }>('SELECT size FROM heads WHERE vault_id = ? AND device = ?', [
      vaultId,
      device,
    ]);
    const actualSize = head?.size ?? 0;
    if (actualSize !== expectedSize) throw sizeConflict(expectedSize, actualSize);

    let addedBytes = 0;
    await insertRows(
      db,
      'entries',
      ENTRY_COLUMNS,
      batch.entries.map((entry) => {
        addedBytes += entry.bytes.length;
        return [vaultId, device, entry.index, blob(entry.leafHash), blob(entry.bytes)];
      }),
    );
    for (const { hash, bytes } of batch.blobs) {
      const { changes } = await db.run(INSERT_BLOB, [vaultId, hash, blob(bytes)]);
      if (changes === 1) addedBytes += bytes.length;
    }
    // One multi-row INSERT numbers its rows in the order listed: acceptance order.
    await insertRows(
      db,
      'membership',
      MEMBERSHIP_COLUMNS,
      batch.membership.map((member) => [vaultId, member.device, member.index, blob(member.bytes)]),
    );
    await insertRows(db, 'heads', HEAD_COLUMNS, [headRow(vaultId, batch.head)], HEAD_UPSERT);
    await insertRows(db, 'checkpoints', CHECKPOINT_COLUMNS, [[vaultId, device, batch.head.size, batch.head.note]]);
    await db.run('UPDATE vaults SET stored_bytes = stored_bytes + ? WHERE vault_id = ?', [addedBytes, vaultId]);
  });
}

function headRow(vaultId: string, head: LogHead): SqlValue[] {
  return [vaultId, head.device, head.size, blob(head.root), head.note];
}

// A device key is 64 hex digits, so no vault id can make two pairs collide.
function logKey(vaultId: string, device: string): string {
  return `${device}/${vaultId}`;
}

/**
 * Does the work of a group of appends, in call order, inside the transaction
 * the caller opened, and returns each append's outcome: undefined if it is
 * written, or the error it fails with (NOT_FOUND, CONFLICT) exactly as if it had
 * run alone after the appends before it. Throws if any statement fails: the
 * caller must then roll everything back.
 *
 * Few statements whatever the size of the group: one read for every check,
 * then multi-row INSERTs. Each statement is a round trip to node-sqlite3's
 * worker thread; doing this per append is what group commit saves.
 */
async function writeGroup(db: Connection, batches: readonly AppendBatch[]): Promise<(E2ekvError | undefined)[]> {
  // What the checks need: does each vault exist, and each log's stored size.
  const logs = new Map<string, [string, string]>();
  for (const { vaultId, device } of batches) logs.set(logKey(vaultId, device), [vaultId, device]);
  const pairs = [...logs.values()];
  const found: { vault_id: string; device: string; vault_exists: number; size: number | null }[] = [];
  const pairsPerStatement = Math.floor(MAX_PARAMS_PER_STATEMENT / 2);
  for (let start = 0; start < pairs.length; start += pairsPerStatement) {
    const chunk = pairs.slice(start, start + pairsPerStatement);
    found.push(
      ...(await db.all<{ vault_id: string; device: string; vault_exists: number; size: number | null }>(
        `WITH wanted (vault_id, device) AS (VALUES ${chunk.map(() => '(?, ?)').join(', ')})
         SELECT wanted.vault_id, wanted.device, vaults.vault_id IS NOT NULL AS vault_exists, heads.size
         FROM wanted
         LEFT JOIN vaults ON vaults.vault_id = wanted.vault_id
         LEFT JOIN heads ON heads.vault_id = wanted.vault_id AND heads.device = wanted.device`,
        chunk.flat(),
      )),
    );
  }
  const vaults = new Set<string>();
  const sizes = new Map<string, number>();
  for (const row of found) {
    if (row.vault_exists === 1) vaults.add(row.vault_id);
    sizes.set(logKey(row.vault_id, row.device), row.size ?? 0);
  }

  // The checks, in call order: an accepted append moves its log's size on, so
  // the next append to the same log in this group is checked against it (and
  // one that follows a refused append still sees the size before it).
  const outcomes: (E2ekvError | undefined)[] = [];
  const accepted: AppendBatch[] = [];
  for (const batch of batches) {
    const { vaultId, device, expectedSize } = batch;
    if (!vaults.has(vaultId)) {
      outcomes.push(vaultNotFound(vaultId));
      continue;
    }
    const key = logKey(vaultId, device);
    const actualSize = sizes.get(key) ?? 0;
    if (actualSize !== expectedSize) {
      outcomes.push(sizeConflict(expectedSize, actualSize));
      continue;
    }
    sizes.set(key, batch.head.size);
    outcomes.push(undefined);
    accepted.push(batch);
  }
  if (accepted.length === 0) return outcomes;

  const addedBytes = new Map<string, number>();
  const add = (vaultId: string, bytes: number) => addedBytes.set(vaultId, (addedBytes.get(vaultId) ?? 0) + bytes);
  await insertRows(
    db,
    'entries',
    ENTRY_COLUMNS,
    accepted.flatMap(({ vaultId, device, entries }) =>
      entries.map((entry) => {
        add(vaultId, entry.bytes.length);
        return [vaultId, device, entry.index, blob(entry.leafHash), blob(entry.bytes)];
      }),
    ),
  );
  // Blobs are rare, and two appends of a group may carry the same one: one
  // statement each, so that `changes` says which of them stored it.
  for (const { vaultId, blobs } of accepted) {
    for (const { hash, bytes } of blobs) {
      const { changes } = await db.run(INSERT_BLOB, [vaultId, hash, blob(bytes)]);
      if (changes === 1) add(vaultId, bytes.length);
    }
  }
  // A multi-row INSERT numbers its rows in the order listed: acceptance order,
  // which is call order, within the group as across groups.
  await insertRows(
    db,
    'membership',
    MEMBERSHIP_COLUMNS,
    accepted.flatMap(({ vaultId, membership }) =>
      membership.map((member) => [vaultId, member.device, member.index, blob(member.bytes)]),
    ),
  );
  // Only the last head of each log: one upsert row per key.
  const heads = new Map<string, SqlValue[]>();
  for (const { vaultId, device, head } of accepted) heads.set(logKey(vaultId, device), headRow(vaultId, head));
  await insertRows(db, 'heads', HEAD_COLUMNS, [...heads.values()], HEAD_UPSERT);
  await insertRows(
    db,
    'checkpoints',
    CHECKPOINT_COLUMNS,
    accepted.map(({ vaultId, device, head }) => [vaultId, device, head.size, head.note]),
  );
  const counted = [...addedBytes];
  const vaultsPerStatement = Math.floor(MAX_PARAMS_PER_STATEMENT / 3);
  for (let start = 0; start < counted.length; start += vaultsPerStatement) {
    const chunk = counted.slice(start, start + vaultsPerStatement);
    await db.run(
      `UPDATE vaults SET stored_bytes = stored_bytes + CASE vault_id ${chunk.map(() => 'WHEN ? THEN ?').join(' ')} END
       WHERE vault_id IN (${chunk.map(() => '?').join(', ')})`,
      [...chunk.flat(), ...chunk.map(([vaultId]) => vaultId)],
    );
  }
  return outcomes;
}

// A group is bounded so that one commit never holds a huge transaction (nor
// makes the readers queued behind it wait long): a full group is closed and
// the next append opens another.
const MAX_GROUP_APPENDS = 256;
const MAX_GROUP_BYTES = 8 * 1024 * 1024;

/** What an append stores, roughly: to bound a group's transaction. */
function batchBytes(batch: AppendBatch): number {
  let bytes = batch.head.note.length + batch.head.root.length;
  for (const entry of batch.entries) bytes += entry.bytes.length + entry.leafHash.length;
  for (const { bytes: blobBytes } of batch.blobs) bytes += blobBytes.length;
  for (const member of batch.membership) bytes += member.bytes.length;
  return bytes;
}

interface PendingAppend {
  batch: AppendBatch;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * Appends committed together: one item in the connection's queue, one
 * transaction, one fsync. A group is open (takes new appends) from when it is
 * queued until the queue reaches it, it is full, or another write is queued
 * after it: writes stay in call order, and a read queued after an append was
 * called still runs after the group that holds it.
 */
interface AppendGroup {
  appends: PendingAppend[];
  bytes: number;
}

const APPEND_ACTION = 'append to a log';

interface HeadRow {
  device: string;
  size: number;
  root: Buffer;
  note: string;
}

function headOf(row: HeadRow): LogHead {
  return { device: row.device, size: row.size, root: bytesOf(row.root), note: row.note };
}

class SqliteStorageAdapter implements SqliteStorage {
  // The tail of the queue every operation joins; it never rejects.
  #queue: Promise<unknown> = Promise.resolve();
  #closing: Promise<void> | undefined;
  // The group new appends join, while it is open (see AppendGroup).
  #openGroup: AppendGroup | undefined;
  #stats: SqliteAppendStats = { appends: 0, commits: 0 };

  constructor(
    private readonly connection: Connection,
    readonly schemaVersion: number,
  ) {}

  /** Runs `work` after everything queued before it, and turns any failure into an E2ekvError. */
  #enqueue<T>(action: string, work: (connection: Connection) => Promise<T>): Promise<T> {
    if (this.#closing !== undefined) return Promise.reject(storageClosed());
    const result = this.#queue
      .then(() => work(this.connection))
      .catch((error: unknown) => {
        throw wrapError(error, action);
      });
    this.#queue = result.catch(() => undefined);
    return result;
  }

  /** #enqueue for writes other than appends: they close the open group, so that writes keep call order. */
  #enqueueWrite<T>(action: string, work: (connection: Connection) => Promise<T>): Promise<T> {
    this.#openGroup = undefined;
    return this.#enqueue(action, work);
  }

  appendStats(): SqliteAppendStats {
    return { ...this.#stats };
  }

  settings(): Promise<SqliteSettings> {
    return this.#enqueue('read settings', async (db) => {
      const journal = await db.get<{ journal_mode: string }>('PRAGMA journal_mode');
      const synchronous = await db.get<{ synchronous: number }>('PRAGMA synchronous');
      const foreignKeys = await db.get<{ foreign_keys: number }>('PRAGMA foreign_keys');
      return {
        journalMode: journal?.journal_mode ?? '',
        synchronous: synchronous?.synchronous ?? -1,
        foreignKeys: foreignKeys?.foreign_keys === 1,
      };
    });
  }

  async createVault(vaultId: string, genesis: Uint8Array): Promise<'created' | 'exists'> {
    checkVaultId(vaultId);
    if (!(genesis instanceof Uint8Array)) throw new E2ekvError('INVALID_ARGUMENT', 'the genesis must be a Uint8Array');
    return this.#enqueueWrite('create a vault', async (db) => {
      const { changes } = await db.run('INSERT OR IGNORE INTO vaults (vault_id, genesis) VALUES (?, ?)', [
        vaultId,
        blob(genesis),
      ]);
      return changes === 1 ? 'created' : 'exists';
    });
  }

  getGenesis(vaultId: string): Promise<Uint8Array | undefined> {
    return this.#enqueue('read a genesis', async (db) => {
      const row = await db.get<{ genesis: Buffer }>('SELECT genesis FROM vaults WHERE vault_id = ?', [vaultId]);
      return row === undefined ? undefined : bytesOf(row.genesis);
    });
  }

  listVaults(): Promise<string[]> {
    return this.#enqueue('list vaults', async (db) => {
      const rows = await db.all<{ vault_id: string }>('SELECT vault_id FROM vaults ORDER BY vault_id');
      return rows.map((row) => row.vault_id);
    });
  }

  getHead(vaultId: string, device: string): Promise<LogHead | undefined> {
    return this.#enqueue('read a log head', async (db) => {
      const row = await db.get<HeadRow>(
        'SELECT device, size, root, note FROM heads WHERE vault_id = ? AND device = ?',
        [vaultId, device],
      );
      return row === undefined ? undefined : headOf(row);
    });
  }

  listHeads(vaultId: string): Promise<LogHead[]> {
    return this.#enqueue('list log heads', async (db) => {
      const rows = await db.all<HeadRow>(
        'SELECT device, size, root, note FROM heads WHERE vault_id = ? ORDER BY device',
        [vaultId],
      );
      return rows.map(headOf);
    });
  }

  async listCheckpoints(vaultId: string, device: string, above: number, limit: number): Promise<CheckpointRecord[]> {
    checkEntryRange(above, limit);
    return this.#enqueue('list checkpoints', async (db) => {
      const rows = await db.all<{ size: number; note: string }>(
        `SELECT size, note FROM checkpoints WHERE vault_id = ? AND device = ? AND size > ? ORDER BY size LIMIT ?`,
        [vaultId, device, above, limit],
      );
      return rows.map((row) => ({ size: row.size, note: row.note }));
    });
  }

  async append(batch: AppendBatch): Promise<void> {
    checkAppendBatch(batch);
    if (this.#closing !== undefined) throw storageClosed();
    const bytes = batchBytes(batch);
    return new Promise<void>((resolve, reject) => {
      let group = this.#openGroup;
      if (group === undefined || group.appends.length >= MAX_GROUP_APPENDS || group.bytes + bytes > MAX_GROUP_BYTES) {
        const opened: AppendGroup = { appends: [], bytes: 0 };
        this.#openGroup = group = opened;
        // #commitGroup settles every append of the group itself; this catch is
        // only a guard that none is left pending should it ever throw.
        this.#enqueue(APPEND_ACTION, (db) => this.#commitGroup(db, opened)).catch((error: unknown) => {
          for (const append of opened.appends) append.reject(error);
        });
      }
      group.appends.push({ batch, resolve, reject });
      group.bytes += bytes;
    });
  }

  /**
   * Commits a group: one transaction for all of it when every statement
   * succeeds; otherwise each append again alone, so that one append that SQLite
   * refuses costs its neighbours nothing but time, and gets its own error.
   * Nothing resolves before the COMMIT that holds it returned.
   */
  async #commitGroup(db: Connection, group: AppendGroup): Promise<void> {
    if (this.#openGroup === group) this.#openGroup = undefined;
    const { appends } = group;
    const fail = (append: PendingAppend, error: unknown) => append.reject(wrapError(error, APPEND_ACTION));
    try {
      await db.exec('BEGIN IMMEDIATE');
    } catch (error) {
      // Nothing was attempted yet, typically because another connection held
      // the write lock past the busy timeout: alone, each append would wait as
      // long again for the same answer.
      for (const append of appends) fail(append, error);
      return;
    }
    let outcomes: (E2ekvError | undefined)[] | undefined;
    try {
      outcomes = await writeGroup(
        db,
        appends.map((append) => append.batch),
      );
      await db.exec('COMMIT');
    } catch (error) {
      // SQLite has already rolled back after some errors (a full disk, for one).
      await db.exec('ROLLBACK').catch(() => undefined);
      // A failed COMMIT leaves the group's fate to SQLite's rollback; it
      // acknowledges nothing, and neither does the error of a lone append.
      if (outcomes !== undefined || appends.length === 1) {
        for (const append of appends) fail(append, error);
        return;
      }
      for (const append of appends) {
        try {
          await appendAlone(db, append.batch);
        } catch (aloneError) {
          fail(append, aloneError);
          continue;
        }
        this.#stats.commits++;
        this.#stats.appends++;
        append.resolve();
      }
      return;
    }
    // Committed and fsynced: now, and only now, the outcomes stand.
    this.#stats.commits++;
    appends.forEach((append, i) => {
      const error = outcomes[i];
      if (error === undefined) {
        this.#stats.appends++;
        append.resolve();
      } else {
        append.reject(error);
      }
    });
  }

  async getEntries(vaultId: string, device: string, start: number, end: number): Promise<StoredEntry[]> {
    checkEntryRange(start, end);
    if (start >= end) return this.#enqueue('read entries', async () => []);
    return this.#enqueue('read entries', async (db) => {
      const rows = await db.all<{ entry_index: number; bytes: Buffer; leaf_hash: Buffer }>(
        `SELECT entry_index, bytes, leaf_hash FROM entries
         WHERE vault_id = ? AND device = ? AND entry_index >= ? AND entry_index < ? ORDER BY entry_index`,
        [vaultId, device, start, end],
      );
      return rows.map((row) => ({
        index: row.entry_index,
        bytes: bytesOf(row.bytes),
        leafHash: bytesOf(row.leaf_hash),
      }));
    });
  }

  getLeafHashes(vaultId: string, device: string): Promise<Uint8Array[]> {
    return this.#enqueue('read leaf hashes', async (db) => {
      const rows = await db.all<{ leaf_hash: Buffer }>(
        'SELECT leaf_hash FROM entries WHERE vault_id = ? AND device = ? ORDER BY entry_index',
        [vaultId, device],
      );
      return rows.map((row) => bytesOf(row.leaf_hash));
    });
  }

  getBlob(vaultId: string, hash: string): Promise<Uint8Array | undefined> {
    return this.#enqueue('read a blob', async (db) => {
      const row = await db.get<{ bytes: Buffer }>('SELECT bytes FROM blobs WHERE vault_id = ? AND hash = ?', [
        vaultId,
        hash,
      ]);
      return row === undefined ? undefined : bytesOf(row.bytes);
    });
  }

  listMembership(vaultId: string): Promise<{ device: string; index: number; bytes: Uint8Array }[]> {
    return this.#enqueue('list membership', async (db) => {
      const rows = await db.all<{ device: string; entry_index: number; bytes: Buffer }>(
        'SELECT device, entry_index, bytes FROM membership WHERE vault_id = ? ORDER BY sequence',
        [vaultId],
      );
      return rows.map((row) => ({ device: row.device, index: row.entry_index, bytes: bytesOf(row.bytes) }));
    });
  }

  async addEvidence(vaultId: string, evidence: Evidence): Promise<void> {
    checkEvidence(evidence);
    return this.#enqueueWrite('record evidence', (db) =>
      db.transaction(async () => {
        const vault = await db.get<{ one: number }>('SELECT 1 AS one FROM vaults WHERE vault_id = ?', [vaultId]);
        if (vault === undefined) throw vaultNotFound(vaultId);
        await db.run(
          'INSERT INTO evidence (vault_id, device, first_note, second_note, recorded_at_ms) VALUES (?, ?, ?, ?, ?)',
          [vaultId, evidence.device, evidence.first, evidence.second, evidence.recordedAtMs],
        );
      }),
    );
  }

  listEvidence(vaultId: string): Promise<Evidence[]> {
    return this.#enqueue('list evidence', async (db) => {
      const rows = await db.all<{ device: string; first_note: string; second_note: string; recorded_at_ms: number }>(
        'SELECT device, first_note, second_note, recorded_at_ms FROM evidence WHERE vault_id = ? ORDER BY sequence',
        [vaultId],
      );
      return rows.map((row) => ({
        device: row.device,
        first: row.first_note,
        second: row.second_note,
        recordedAtMs: row.recorded_at_ms,
      }));
    });
  }

  vaultBytes(vaultId: string): Promise<number> {
    return this.#enqueue('read vault size', async (db) => {
      const row = await db.get<{ stored_bytes: number }>('SELECT stored_bytes FROM vaults WHERE vault_id = ?', [
        vaultId,
      ]);
      return row?.stored_bytes ?? 0;
    });
  }

  /** Waits for queued operations, then closes. Idempotent; every other method rejects with UNAVAILABLE afterwards. */
  close(): Promise<void> {
    this.#closing ??= this.#queue.then(() =>
      this.connection.close().catch((error: unknown) => {
        throw wrapError(error, 'close the database');
      }),
    );
    return this.#closing;
  }
}

/**
 * Opens (creating if needed) the database at `file` and brings its schema up to
 * SCHEMA_VERSION. Refuses, with UNSUPPORTED_VERSION, a database from a newer release.
 */
export async function openSqliteStorage(file: string, options: SqliteStorageOptions = {}): Promise<SqliteStorage> {
  const busyTimeoutMs = options.busyTimeoutMs ?? 5000;
  if (!Number.isSafeInteger(busyTimeoutMs) || busyTimeoutMs < 0) {
    throw new E2ekvError('INVALID_ARGUMENT', 'busyTimeoutMs must be a non-negative whole number');
  }
  let connection: Connection;
  try {
    connection = await Connection.open(file);
  } catch (error) {
    throw wrapError(error, `open the database ${file}`);
  }
  try {
    connection.setBusyTimeout(busyTimeoutMs);
    // Refuse a newer database before changing anything in it, even its journal mode.
    const found = await readSchemaVersion(connection);
    if (found > SCHEMA_VERSION) throw tooNew(file, found);

    const journal = await connection.get<{ journal_mode: string }>('PRAGMA journal_mode = WAL');
    if (journal?.journal_mode !== 'wal') {
      throw new E2ekvError('UNAVAILABLE', `the database ${file} cannot use write-ahead logging`, {
        details: { journalMode: String(journal?.journal_mode) },
      });
    }
    // FULL fsyncs the WAL at every commit: without it a commit survives a crash
    // of the process but not a power cut, and acknowledged writes could vanish.
    await connection.exec('PRAGMA synchronous = FULL');
    await connection.exec('PRAGMA foreign_keys = ON');
    const schemaVersion = await migrate(connection, file);
    return new SqliteStorageAdapter(connection, schemaVersion);
  } catch (error) {
    await connection.close().catch(() => undefined);
    throw wrapError(error, `open the database ${file}`);
  }
}
