/**
 * The baseline for bench/server-ingest.ts: the least an HTTP service can do to
 * durably accept an append. Same route shape and JSON bodies as e2ekv-server,
 * same stack (express 5, sqlite3), same durability (WAL, synchronous=FULL, one
 * transaction per request, the same multi-row INSERTs), but no authentication,
 * no verification, no Merkle tree and no cosignature. The gap between the two
 * is what e2ekv's checks cost.
 *
 *   node --import=tsx/esm bench/baseline-server.ts --port 0 --data DIR
 *
 * Prints one line, "baseline-server listening on http://HOST:PORT", and stops
 * cleanly on SIGTERM or SIGINT.
 */
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { parseArgs } from 'node:util';
import express, { type NextFunction, type Request, type Response } from 'express';
import sqlite3 from 'sqlite3';

const { values: flags } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '0' },
    data: { type: 'string' },
  },
});
if (flags.data === undefined) {
  console.error('baseline-server: --data DIR is required');
  process.exit(2);
}

type SqlValue = string | number | Buffer;

const db = new sqlite3.Database(path.join(flags.data, 'baseline.sqlite3'));

function exec(sql: string): Promise<void> {
  return new Promise((resolve, reject) => db.exec(sql, (error) => (error === null ? resolve() : reject(error))));
}

function run(sql: string, params: readonly SqlValue[]): Promise<void> {
  return new Promise((resolve, reject) => db.run(sql, params, (error) => (error === null ? resolve() : reject(error))));
}

// The pragmas e2ekv-server's storage sets, so both pay the same fsync per commit.
await exec('PRAGMA journal_mode = WAL');
await exec('PRAGMA synchronous = FULL');
await exec('PRAGMA foreign_keys = ON');
await exec(`
  CREATE TABLE IF NOT EXISTS entries (
    vault_id TEXT NOT NULL,
    device TEXT NOT NULL,
    entry_index INTEGER NOT NULL,
    bytes BLOB NOT NULL,
    PRIMARY KEY (vault_id, device, entry_index)
  ) STRICT`);

// One connection, one transaction at a time, as in e2ekv-server: statements of
// two requests must not interleave inside one transaction.
let queue: Promise<unknown> = Promise.resolve();
function serialized<T>(work: () => Promise<T>): Promise<T> {
  const result = queue.then(work);
  queue = result.catch(() => undefined);
  return result;
}

// e2ekv-server's chunking, so both issue the same number of statements per batch.
const MAX_PARAMS_PER_STATEMENT = 999;
const COLUMNS = 4;

async function storeEntries(rows: SqlValue[][]): Promise<void> {
  await exec('BEGIN IMMEDIATE');
  try {
    const rowsPerStatement = Math.floor(MAX_PARAMS_PER_STATEMENT / COLUMNS);
    for (let start = 0; start < rows.length; start += rowsPerStatement) {
      const chunk = rows.slice(start, start + rowsPerStatement);
      await run(
        `INSERT INTO entries (vault_id, device, entry_index, bytes) VALUES ${chunk.map(() => '(?, ?, ?, ?)').join(', ')}`,
        chunk.flat(),
      );
    }
    await exec('COMMIT');
  } catch (error) {
    await exec('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

const app = express();
app.disable('x-powered-by');
app.set('etag', false);
app.use(express.json({ limit: 16 * 1024 * 1024 }));

app.post('/v1/vaults/:vault/logs/:device/append', async (req: Request, res: Response, next: NextFunction) => {
  try {
    const { vault, device } = req.params as { vault: string; device: string };
    const body = req.body as { start: number; entries: string[] };
    const rows = body.entries.map((entry, i): SqlValue[] => [
      vault,
      device,
      body.start + i,
      Buffer.from(entry, 'base64'),
    ]);
    await serialized(() => storeEntries(rows));
    res.json({ ok: true });
  } catch (error) {
    next(error);
  }
});

app.use((error: unknown, _req: Request, res: Response, next: NextFunction) => {
  void next;
  res.status(500).json({ error: { code: 'INTERNAL', message: String(error) } });
});

const server = app.listen(Number(flags.port), flags.host);
await new Promise<void>((resolve, reject) => {
  server.once('listening', resolve);
  server.once('error', reject);
});
const address = server.address() as AddressInfo;
console.log(`baseline-server listening on http://${address.address}:${address.port}`);

function stop(): void {
  server.close(() => db.close(() => process.exit(0)));
  server.closeIdleConnections();
}
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
