/**
 * etcd as a baseline: Debian's `etcd-server` (3.4) on 127.0.0.1, a single
 * node or an n-member cluster on the same machine, each member with its own
 * temp data dir and free ports. Durability is etcd's default: every write is
 * in the fsynced WAL of a majority before it is acknowledged
 * (`--unsafe-no-fsync` is not set). Driven through the `etcd3` npm client
 * (gRPC), by the same load generator as e2ekv.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Etcd3 } from 'etcd3';
import { freePort, startService, type Service } from '../services.js';

export const ETCD_BINARY = '/usr/bin/etcd';

export interface EtcdCluster {
  members: Service[];
  pids: number[];
  /** Client URLs, one per member. */
  endpoints: string[];
  /** A client of the whole cluster (requests are balanced over the members). */
  client: Etcd3;
  version: string;
  stop(): Promise<void>;
}

/** Starts `size` members and waits until the cluster has a leader and takes a write. */
export async function startEtcd(size: number, log: (line: string) => void): Promise<EtcdCluster> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'e2ekv-bench-etcd-'));
  const names = Array.from({ length: size }, (_, i) => `m${i}`);
  const peerPorts: number[] = [];
  const clientPorts: number[] = [];
  for (let i = 0; i < size; i++) {
    peerPorts.push(await freePort());
    clientPorts.push(await freePort());
  }
  const initialCluster = names.map((n, i) => `${n}=http://127.0.0.1:${peerPorts[i]}`).join(',');
  const token = `bench-${process.pid}-${Date.now()}`;
  const members: Service[] = [];
  const endpoints = clientPorts.map((p) => `http://127.0.0.1:${p}`);
  let client: Etcd3 | undefined;
  const stop = async () => {
    client?.close();
    await Promise.all(members.map((m) => m.stop(10_000)));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    // Members start together: each waits for the others to form the cluster.
    const started = await Promise.allSettled(
      names.map((name, i) =>
        startService({
          name: `etcd ${name}`,
          command: ETCD_BINARY,
          args: [
            '--name',
            name,
            '--data-dir',
            path.join(dir, name),
            '--listen-client-urls',
            endpoints[i]!,
            '--advertise-client-urls',
            endpoints[i]!,
            '--listen-peer-urls',
            `http://127.0.0.1:${peerPorts[i]}`,
            '--initial-advertise-peer-urls',
            `http://127.0.0.1:${peerPorts[i]}`,
            '--initial-cluster',
            initialCluster,
            '--initial-cluster-state',
            'new',
            '--initial-cluster-token',
            token,
            '--logger',
            'zap',
            '--log-level',
            'warn',
          ],
          logFile: path.join(dir, `${name}.log`),
          ready: () => false,
          probe: async () => {
            const response = await fetch(`${endpoints[i]}/health`, { signal: AbortSignal.timeout(1000) });
            const body = (await response.json()) as { health?: string };
            return body.health === 'true';
          },
          timeoutMs: 60_000,
        }).then((service) => {
          members.push(service);
          return service;
        }),
      ),
    );
    const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    client = new Etcd3({ hosts: endpoints });
    await client.put('bench/ready').value('1');
    const status = await client.maintenance.status();
    log(`etcd ${status.version}, ${size} member${size === 1 ? '' : 's'} at ${endpoints.join(', ')}`);
    return {
      members,
      pids: members.map((m) => m.pid),
      endpoints,
      client,
      version: status.version,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
