/**
 * A diagnostic e2ekv-server for bench/compare.ts: the real server (startServer,
 * every check, the cosignature, the same HTTP stack and request log) on the
 * in-memory storage adapter instead of SQLite. It is NOT durable: nothing is
 * fsynced or kept. The bench uses it only to show how much of an append's cost
 * is storage, never as a comparison with durable systems.
 *
 *   node --import=tsx/esm bench/memory-server.ts --port 0 --data DIR --config FILE
 *
 * Prints "e2ekv-server listening on URL" and stops on SIGTERM or SIGINT.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { startServer } from '../server/src/server.js';

const { values: flags } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '0' },
    data: { type: 'string' },
    config: { type: 'string' },
  },
});
if (flags.data === undefined) {
  console.error('memory-server: --data DIR is required');
  process.exit(2);
}
const config =
  flags.config === undefined ? {} : (JSON.parse(readFileSync(flags.config, 'utf8')) as { limits?: object });
const server = await startServer({
  host: flags.host,
  port: Number(flags.port),
  dataDir: flags.data,
  storage: 'memory',
  ...(config.limits === undefined ? {} : { limits: config.limits }),
});
console.log(`e2ekv-server listening on ${server.url}`);
const stop = () => void server.close().then(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
