/**
 * The e2ekv-server command line (DESIGN section 10): flags, an optional JSON
 * config file (flags win), the one "listening" line on stdout, and graceful
 * shutdown on SIGTERM and SIGINT.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isE2ekvError } from '@e2ekv/protocol';
import { DEFAULT_LIMITS, type ServerLimits } from './limits.js';
import { jsonLogger, type LogLevel } from './log.js';
import { parsePeerSpec } from './peer-config.js';
import { DEFAULT_REPLICATION_OPTIONS, type ReplicationOptions } from './peers.js';
import { startServer, type ServerOptions } from './server.js';

const require = createRequire(import.meta.url);
const { version } = require('../package.json') as { version: string };

export const usage = `Usage: e2ekv-server [--host H] [--port P] [--data DIR] [--peer URL[#KEY]]...
                    [--tls-cert FILE --tls-key FILE] [--name NAME] [--config FILE]
                    [--anti-entropy-interval MS] [--peer-timeout MS] [--log-level L]

The e2ekv replica server. It stores only ciphertext, verifies what it can
without keys (device signatures, append-only logs, membership), cosigns device
checkpoints, and holds no key that could decrypt anything.

Options:
  --host H          address to listen on (default 127.0.0.1)
  --port P          port (default 7400; 0 picks a free port)
  --data DIR        data directory: database and this server's key (default ./e2ekv-data)
  --peer URL[#KEY]  another replica to replicate every vault with (repeatable; list
                    each replica on every other one). Its key is learned from its
                    /v1/info on first contact and pinned in DATA/peers.json, or
                    given as #KEY: its cosigner vkey, or its key in base64 or hex.
                    A peer reads every vault's ciphertext; it cannot forge data.
  --anti-entropy-interval MS
                    mean time between full comparisons with each peer (default
                    ${DEFAULT_REPLICATION_OPTIONS.antiEntropyIntervalMs}); pushes reach peers at once in between
  --peer-timeout MS timeout of one request to a peer (default ${DEFAULT_REPLICATION_OPTIONS.requestTimeoutMs})
  --tls-cert FILE   PEM certificate: serve HTTPS (needs --tls-key)
  --tls-key FILE    PEM private key for --tls-cert
  --name NAME       this replica's cosigner name (default e2ekv-replica/<key hash>)
  --config FILE     JSON file with any of: host, port, data, peers, tlsCert, tlsKey,
                    name, logLevel, limits ({ ${Object.keys(DEFAULT_LIMITS).join(', ')} }),
                    replication ({ ${Object.keys(DEFAULT_REPLICATION_OPTIONS).join(', ')} })
  --log-level L     debug, info, warn or error (default info); logs are JSON on stderr
  --help            show this help
  --version         print the version

Examples:
  npx e2ekv-server --port 7400 --data /var/lib/e2ekv
  npx e2ekv-server --host 0.0.0.0 --peer https://r2.example:7400 --peer https://r3.example:7400

On start it prints one line: e2ekv-server listening on http://HOST:PORT`;

export class UsageError extends Error {}

interface Parsed extends ServerOptions {
  logLevel: LogLevel;
}

const configKeys = ['host', 'port', 'data', 'peers', 'tlsCert', 'tlsKey', 'name', 'logLevel', 'limits', 'replication'];

function parsePort(value: unknown, from: string): number {
  const n = typeof value === 'string' && /^[0-9]{1,5}$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 65535) {
    throw new UsageError(`${from}: the port must be a whole number from 0 to 65535`);
  }
  return n;
}

function parseLogLevel(value: unknown, from: string): LogLevel {
  if (value === 'debug' || value === 'info' || value === 'warn' || value === 'error') return value;
  throw new UsageError(`${from}: the log level must be debug, info, warn or error`);
}

function readConfig(file: string): Record<string, unknown> {
  let config: unknown;
  try {
    config = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new UsageError(`--config ${file}: cannot read it as JSON (${(error as Error).message})`);
  }
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new UsageError(`--config ${file}: the file must hold a JSON object`);
  }
  for (const key of Object.keys(config)) {
    if (!configKeys.includes(key)) throw new UsageError(`--config ${file}: unknown setting "${key}"`);
  }
  return config as Record<string, unknown>;
}

function parseLimits(value: unknown, from: string): Partial<ServerLimits> {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new UsageError(`${from}: limits must be an object`);
  const out: Record<string, number> = {};
  for (const [key, v] of Object.entries(value)) {
    if (!(key in DEFAULT_LIMITS)) throw new UsageError(`${from}: unknown limit "${key}"`);
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
      throw new UsageError(`${from}: limit ${key} must be a positive whole number`);
    }
    out[key] = v;
  }
  return out as Partial<ServerLimits>;
}

function parseReplication(value: unknown, from: string): Partial<ReplicationOptions> {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new UsageError(`${from}: replication must be an object`);
  const out: Record<string, number> = {};
  for (const [key, v] of Object.entries(value)) {
    if (!(key in DEFAULT_REPLICATION_OPTIONS)) throw new UsageError(`${from}: unknown replication setting "${key}"`);
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
      throw new UsageError(`${from}: replication setting ${key} must be a positive whole number`);
    }
    out[key] = v;
  }
  return out as Partial<ReplicationOptions>;
}

function stringOf(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length === 0) throw new UsageError(`${what} must be a non-empty string`);
  return value;
}

export function parseArgs(argv: readonly string[]): Parsed | 'help' | 'version' {
  const flags: Record<string, string> = {};
  const peers: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') return 'help';
    if (arg === '--version') return 'version';
    const match =
      /^--(host|port|data|peer|tls-cert|tls-key|name|config|log-level|anti-entropy-interval|peer-timeout)(?:=(.*))?$/.exec(
        arg,
      );
    if (match === null) throw new UsageError(`unknown argument "${arg}"`);
    const value = match[2] ?? argv[++i];
    if (value === undefined) throw new UsageError(`--${match[1]} needs a value`);
    if (match[1] === 'peer') peers.push(value);
    else flags[match[1]!] = value;
  }
  const config = flags['config'] === undefined ? {} : readConfig(flags['config']);
  const from = flags['config'] === undefined ? 'flags' : `--config ${flags['config']}`;
  const pick = (flag: string, key: string) => flags[flag] ?? config[key];

  const options: Parsed = {
    host: stringOf(pick('host', 'host') ?? '127.0.0.1', 'host'),
    port: parsePort(pick('port', 'port') ?? 7400, flags['port'] !== undefined ? '--port' : from),
    dataDir: stringOf(pick('data', 'data') ?? './e2ekv-data', 'data'),
    peers: [
      ...(Array.isArray(config['peers']) ? (config['peers'] as unknown[]).map((p) => stringOf(p, 'peers[]')) : []),
      ...peers,
    ],
    limits: parseLimits(config['limits'], from),
    replication: parseReplication(config['replication'], from),
    logLevel: parseLogLevel(pick('log-level', 'logLevel') ?? 'info', from),
    version,
  };
  for (const peer of options.peers ?? []) {
    try {
      parsePeerSpec(peer);
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
  }
  for (const [flag, key] of [
    ['anti-entropy-interval', 'antiEntropyIntervalMs'],
    ['peer-timeout', 'requestTimeoutMs'],
  ] as const) {
    const value = flags[flag];
    if (value === undefined) continue;
    if (!/^[1-9][0-9]{0,9}$/.test(value))
      throw new UsageError(`--${flag}: give a positive whole number of milliseconds`);
    options.replication = { ...options.replication, [key]: Number(value) };
  }
  const name = pick('name', 'name');
  if (name !== undefined) options.name = stringOf(name, 'name');
  const cert = pick('tls-cert', 'tlsCert');
  const key = pick('tls-key', 'tlsKey');
  if ((cert === undefined) !== (key === undefined)) throw new UsageError('--tls-cert and --tls-key go together');
  if (cert !== undefined && key !== undefined)
    options.tls = { certFile: stringOf(cert, 'tls-cert'), keyFile: stringOf(key, 'tls-key') };
  return options;
}

/** Runs the command; resolves with the exit code once the server has stopped (or failed to start). */
export async function main(argv: readonly string[]): Promise<number> {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs(argv);
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`e2ekv-server: ${error.message}\nRun e2ekv-server --help for usage.`);
      return 2;
    }
    throw error;
  }
  if (parsed === 'help') {
    console.log(usage);
    return 0;
  }
  if (parsed === 'version') {
    console.log(version);
    return 0;
  }
  const logger = jsonLogger(parsed.logLevel);
  let server;
  try {
    server = await startServer({ ...parsed, logger });
  } catch (error) {
    const message = isE2ekvError(error) ? error.message : (error as Error).message;
    console.error(`e2ekv-server: could not start: ${message}`);
    return 1;
  }
  console.log(`e2ekv-server listening on ${server.url}`);
  logger.log('info', 'listening', { url: server.url, cosigner: server.cosigner.name, dataDir: parsed.dataDir });
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.log('info', 'shutting down', { signal });
      server.close().then(resolve, (error: unknown) => {
        logger.log('error', 'shutdown failed', { error: String(error) });
        resolve();
      });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  return 0;
}
