// One-statement access to a replica's SQLite file, for tests that edit what a
// (stopped) replica stores.
import sqlite3 from 'sqlite3';

/** Runs one statement; resolves with the number of rows it changed. */
export function runSql(file: string, sql: string, params: unknown[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const db = new sqlite3.Database(file, (openError) => {
      if (openError) return reject(openError);
      db.run(sql, params, function (this: sqlite3.RunResult, error: Error | null) {
        const changes = this.changes;
        db.close(() => (error ? reject(error) : resolve(changes)));
      });
    });
  });
}

/** The first column of the first row of a query. */
export function querySql<T>(file: string, sql: string, params: unknown[]): Promise<T> {
  return new Promise((resolve, reject) => {
    const db = new sqlite3.Database(file, (openError) => {
      if (openError) return reject(openError);
      db.get(sql, params, (error: Error | null, row: Record<string, T> | undefined) => {
        db.close(() =>
          error || row === undefined ? reject(error ?? new Error('no row')) : resolve(Object.values(row)[0]!),
        );
      });
    });
  });
}
