/**
 * Starts a replica: data directory, server key, storage, the trust logic and
 * the HTTP(S) listener; and stops it gracefully (stop accepting, drain, close
 * storage).
 */
import { mkdir, readFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { cosignatureSigner, sha256, toHex } from '@e2ekv/protocol';
import { Acceptor } from './accept.js';
import { createApp } from './app.js';
import { RequestAuthenticator } from './auth.js';
import { EventHub } from './events.js';
import { DEFAULT_LIMITS, type ServerLimits } from './limits.js';
import { jsonLogger, type Logger } from './log.js';
import { MembershipCache } from './membership.js';
import { serverMetrics } from './metrics.js';
import { loadOrCreateServerKey } from './server-key.js';
import type { StorageAdapter } from './storage/adapter.js';
import { MemoryStorage } from './storage/memory.js';
import { openSqliteStorage } from './storage/sqlite.js';
import { Replicator, type ReplicationOptions, type ReplicationStatus } from './peers.js';

export interface ServerOptions {
  host: string;
  port: number;
  dataDir: string;
  /** Other replicas to replicate with: `URL` or `URL#KEY` (the peer's cosigner vkey or key). */
  peers?: readonly string[];
  /** Replication timing and bounds (peers.ts); tests and chaos runs shorten the interval. */
  replication?: Partial<ReplicationOptions>;
  tls?: { certFile: string; keyFile: string };
  /** Cosigner key name; default e2ekv-replica/<first 8 bytes of SHA-256(public key), hex>. */
  name?: string;
  limits?: Partial<ServerLimits>;
  logger?: Logger;
  /** 'memory' keeps nothing across restarts: for tests only. */
  storage?: 'sqlite' | 'memory';
  version?: string;
}

export interface RunningServer {
  url: string;
  cosigner: { name: string; publicKey: Uint8Array };
  /** What /v1/replication shows. */
  replication(): ReplicationStatus;
  close(): Promise<void>;
}

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const logger = options.logger ?? jsonLogger();
  const limits: ServerLimits = { ...DEFAULT_LIMITS, ...options.limits };
  await mkdir(options.dataDir, { recursive: true, mode: 0o700 });
  const key = await loadOrCreateServerKey(options.dataDir);
  const name = options.name ?? `e2ekv-replica/${toHex(sha256(key.publicKey).subarray(0, 8))}`;
  const storage: StorageAdapter =
    options.storage === 'memory'
      ? new MemoryStorage()
      : await openSqliteStorage(path.join(options.dataDir, 'e2ekv.sqlite3'));
  const cosigner = await cosignatureSigner(name, key.seed);
  const membership = new MembershipCache(storage);
  const acceptor = new Acceptor({ storage, membership, limits, cosigner });
  const authenticator = new RequestAuthenticator({ audience: key.publicKey, windowMs: limits.requestWindowMs });
  const events = new EventHub();
  const metrics = serverMetrics();
  let replicator: Replicator;
  try {
    replicator = await Replicator.create({
      storage,
      acceptor,
      membership,
      events,
      metrics,
      logger,
      limits,
      serverKey: key,
      dataDir: options.dataDir,
      peers: options.peers ?? [],
      ...(options.replication === undefined ? {} : { options: options.replication }),
    });
  } catch (error) {
    await storage.close();
    throw error;
  }
  let ready = false;
  const app = createApp({
    version: options.version ?? '0.0.0',
    storage,
    acceptor,
    authenticator,
    membership,
    events,
    metrics,
    logger,
    limits,
    cosigner: { name, publicKey: key.publicKey },
    isReady: () => ready,
    replicator,
  });

  const server =
    options.tls === undefined
      ? http.createServer(app)
      : https.createServer(
          { cert: await readFile(options.tls.certFile), key: await readFile(options.tls.keyFile) },
          app,
        );
  server.headersTimeout = 30_000;
  server.requestTimeout = 60_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  ready = true;
  replicator.start();
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `${options.tls === undefined ? 'http' : 'https'}://${host}:${address.port}`;

  let closing: Promise<void> | undefined;
  return {
    url,
    cosigner: { name, publicKey: key.publicKey },
    replication: () => replicator.status(),
    close() {
      closing ??= (async () => {
        ready = false;
        // Rounds and pushes write to storage: they end before it closes.
        await replicator.stop();
        events.closeAll();
        const drained = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        const timeout = setTimeout(() => server.closeAllConnections(), 10_000);
        await drained;
        clearTimeout(timeout);
        await storage.close();
        logger.log('info', 'stopped');
      })();
      return closing;
    },
  };
}
