/**
 * The vault browser's dev server: builds the page, starts an e2ekv replica on a
 * free port, and serves the page with a /v1 proxy to the replica, both on
 * 127.0.0.1 (a secure context for WebCrypto without TLS).
 *
 *   npm run example:web                                  # http://127.0.0.1:8080/
 *   npm run example:web -- --port 9000 --data /tmp/web-vault
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startServer, type ServerOptions } from 'e2ekv-server';
import { buildPage, startPageServer, type PageServer } from './page-server.js';

const usage = `Usage: npm run example:web -- [--port P] [--data DIR] [--verbose]

  --port P     port of the page on 127.0.0.1 (default 8080; 0 picks a free one)
  --data DIR   the replica's data directory (default ./e2ekv-web-data); keep it to keep
               the vault between runs: the browser keeps only this device's sealed keys
  --verbose    print the replica's request log`;

function fail(message: string): never {
  console.error(`example:web: ${message}\n\n${usage}`);
  process.exit(2);
}

let args;
try {
  args = parseArgs({
    options: {
      port: { type: 'string', default: '8080' },
      data: { type: 'string', default: 'e2ekv-web-data' },
      verbose: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  }).values;
} catch (error) {
  fail((error as Error).message);
}
if (args.help) {
  console.log(usage);
  process.exit(0);
}
const port = /^[0-9]{1,5}$/.test(args.port) ? Number(args.port) : NaN;
if (!(port >= 0 && port <= 65535)) fail(`--port ${args.port}: a whole number from 0 to 65535`);
const dataDir = path.resolve(args.data);

// The replica's JSON log lines are for operators; here only trouble is worth a line unless asked.
const verbose = args.verbose;
const logger: NonNullable<ServerOptions['logger']> = {
  log(level, message, fields = {}) {
    if (verbose || level === 'warn' || level === 'error')
      console.error(JSON.stringify({ level, msg: message, ...fields }));
  },
};

const page = await buildPage();
const replica = await startServer({ host: '127.0.0.1', port: 0, dataDir, logger });
let pageServer: PageServer;
try {
  pageServer = await startPageServer({ page, replicaUrl: replica.url, port });
} catch (error) {
  await replica.close();
  fail(`cannot serve the page on 127.0.0.1:${port}: ${(error as Error).message}`);
}
console.log(`e2ekv web example: ${pageServer.url}`);
console.log(`  replica ${replica.url}, data in ${dataDir}`);
console.log('  the page is built once at start: restart after editing examples/web. Ctrl-C stops.');

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  await pageServer.close();
  await replica.close();
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void stop().then(() => process.exit(0));
  });
}
