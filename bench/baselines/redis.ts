/**
 * Redis as a baseline: Debian's `redis-server` (7.0) on 127.0.0.1, a free
 * port and a temp dir, with the append-only file fsynced before every reply
 * (`--appendonly yes --appendfsync always`; Redis still groups the writes of
 * many clients into one fsync) and no RDB snapshots (`--save ''`). Driven
 * through the `redis` npm client by the same load generator as e2ekv.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createClient } from 'redis';
import { freePort, startService, type Service } from '../services.js';

export const REDIS_BINARY = '/usr/bin/redis-server';

export type RedisClient = ReturnType<typeof createClient>;

export interface RedisServer {
  service: Service;
  pid: number;
  url: string;
  client: RedisClient;
  version: string;
  stop(): Promise<void>;
}

export async function startRedis(log: (line: string) => void): Promise<RedisServer> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'e2ekv-bench-redis-'));
  const port = await freePort();
  let service: Service | undefined;
  let client: RedisClient | undefined;
  const stop = async () => {
    if (client?.isOpen === true) await client.close().catch(() => undefined);
    await service?.stop(10_000);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    service = await startService({
      name: 'redis-server',
      command: REDIS_BINARY,
      args: [
        '--bind',
        '127.0.0.1',
        '--port',
        String(port),
        '--dir',
        dir,
        '--appendonly',
        'yes',
        '--appendfsync',
        'always',
        '--save',
        '',
        '--daemonize',
        'no',
        '--protected-mode',
        'yes',
        '--logfile',
        '',
      ],
      logFile: path.join(dir, 'redis.log'),
      ready: (output) => /Ready to accept connections/.test(output),
    });
    const url = `redis://127.0.0.1:${port}`;
    // No reconnecting: a Redis that went away fails the workload instead of being retried quietly.
    client = createClient({ url, socket: { reconnectStrategy: false } });
    client.on('error', (error: unknown) => log(`redis client: ${String(error)}`));
    await client.connect();
    const config = (await client.configGet('appendfsync')) as Record<string, string>;
    if (config['appendfsync'] !== 'always') throw new Error(`redis runs with appendfsync ${config['appendfsync']}`);
    const info = await client.info('server');
    const version = /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown';
    log(`redis ${version} at ${url} (appendonly yes, appendfsync always)`);
    return { service, pid: service.pid, url, client, version, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
