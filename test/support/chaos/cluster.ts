// A cluster of real e2ekv-server processes for chaos tests: N replicas on
// 127.0.0.1 with data directories in one temporary directory, and a LinkProxy
// for every directed link (each client to each replica, each replica to each
// peer), so that partitions cut replica-to-replica traffic too. Replicas can be
// killed with SIGKILL, paused with SIGSTOP, resumed, and restarted on their
// data directory, on the same port or a new one (the proxies are re-targeted,
// so callers keep their URLs). stop() ends every process and proxy; call it
// from t.teardown so that it runs even when the test fails.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { startServerProcess, tempDir, type ServerProcess } from '../../../server/test/support/process.js';
import { repoRoot } from '../paths.js';
import { LinkProxy, type LinkFaults } from './link-proxy.js';
import type { Random } from './random.js';

export type ReplicaState = 'running' | 'paused' | 'killed';

export interface Replica {
  readonly index: number;
  /** "r0", "r1", ...: the replica's node name in partitions and link names. */
  readonly name: string;
  readonly dataDir: string;
  state: ReplicaState;
  /** The process's own URL (changes when it restarts on a new port). */
  url: string;
  port: number;
  process: ServerProcess;
  /** Standard error of earlier incarnations (before kills and restarts). */
  readonly pastLogs: string[];
}

export interface ClusterOptions {
  replicas: number;
  /** Client node names ("c0", ...): each gets one link to every replica. */
  clients: readonly string[];
  random: Random;
  /** Start replicas with --peer URLs through the peer links (default true). */
  peers?: boolean;
  /** More server flags, e.g. a short anti-entropy interval where the server has one. */
  serverArgs?: readonly string[];
  /** Server log level (default 'warn': a long run at 'info' logs every request). */
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
}

export interface RestartOptions {
  /** Listen on the port it had (default true); falls back to a new port when that one is taken. */
  samePort?: boolean;
  /**
   * Runs after the process listens and before any link carries traffic to or
   * from it again, with its direct URL: e.g. to read what it holds before
   * clients or peers can send it anything.
   */
  beforeReconnect?: (url: string) => Promise<void>;
}

export function linkName(from: string, to: string): string {
  return `${from}->${to}`;
}

export class Cluster {
  readonly dir: string;
  readonly replicas: Replica[] = [];
  readonly clients: readonly string[];
  readonly #links = new Map<string, LinkProxy>();
  readonly #args: readonly string[];
  readonly #removeDir: () => Promise<void>;
  #stopped = false;

  private constructor(dir: string, removeDir: () => Promise<void>, options: ClusterOptions) {
    this.dir = dir;
    this.#removeDir = removeDir;
    this.clients = options.clients;
    this.#args = ['--log-level', options.logLevel ?? 'warn', ...(options.serverArgs ?? [])];
  }

  /**
   * Starts the proxies, then the replicas (each told its peers' proxy URLs),
   * then points the proxies at the replicas. On failure, whatever started is
   * stopped before the error propagates.
   */
  static async start(options: ClusterOptions): Promise<Cluster> {
    const { dir, remove } = await tempDir('e2ekv-chaos-');
    const cluster = new Cluster(dir, remove, options);
    try {
      const names = Array.from({ length: options.replicas }, (_, i) => `r${i}`);
      const sources = [...options.clients, ...(options.peers === false ? [] : names)];
      for (const from of sources) {
        for (const to of names) {
          if (from === to) continue;
          const name = linkName(from, to);
          cluster.#links.set(name, await LinkProxy.start({ name, random: options.random.fork(`link ${name}`) }));
        }
      }
      const started = await Promise.allSettled(
        names.map((name) => startServerProcess(path.join(dir, name), cluster.#serverArgs(name))),
      );
      // Every process that started is in the cluster before any failure is thrown, so stop() ends it.
      for (const [index, result] of started.entries()) {
        if (result.status === 'rejected') continue;
        const process = result.value;
        const name = names[index]!;
        const url = process.url;
        const dataDir = path.join(dir, name);
        cluster.replicas.push({
          index,
          name,
          dataDir,
          state: 'running',
          url,
          port: portOf(url),
          process,
          pastLogs: [],
        });
        for (const link of cluster.inbound(index)) link.retarget(url);
      }
      const failed = started.find((r) => r.status === 'rejected');
      if (failed !== undefined) throw failed.reason;
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  #serverArgs(name: string): string[] {
    const peers = [...this.#links.values()].filter((l) => l.name.startsWith(`${name}->`));
    return [...this.#args, ...peers.flatMap((l) => ['--peer', l.url])];
  }

  /** Every node name: clients, then replicas. */
  nodes(): string[] {
    return [...this.clients, ...this.replicas.map((r) => r.name)];
  }

  links(): LinkProxy[] {
    return [...this.#links.values()];
  }

  link(from: string, to: string): LinkProxy {
    const link = this.#links.get(linkName(from, to));
    if (link === undefined) throw new Error(`no link ${linkName(from, to)}`);
    return link;
  }

  /** The links that lead to replica `index`. */
  inbound(index: number): LinkProxy[] {
    return this.links().filter((l) => l.name.endsWith(`->r${index}`));
  }

  /** The URLs a client node uses: its links to each replica, in replica order. */
  urlsFor(client: string): string[] {
    return this.replicas.map((r) => this.link(client, r.name).url);
  }

  replica(index: number): Replica {
    const replica = this.replicas[index];
    if (replica === undefined) throw new Error(`no replica ${index}`);
    return replica;
  }

  /** SIGKILL: no shutdown, no flush beyond what the replica fsynced. */
  async kill9(index: number): Promise<void> {
    const replica = this.replica(index);
    if (replica.state === 'killed') throw new Error(`${replica.name} is already killed`);
    await replica.process.kill9();
    replica.state = 'killed';
  }

  /** SIGSTOP: the process keeps its sockets (the kernel still accepts connections) but answers nothing. */
  pause(index: number): void {
    const replica = this.replica(index);
    if (replica.state !== 'running') throw new Error(`${replica.name} is ${replica.state}, not running`);
    replica.process.child.kill('SIGSTOP');
    replica.state = 'paused';
  }

  resume(index: number): void {
    const replica = this.replica(index);
    if (replica.state !== 'paused') throw new Error(`${replica.name} is ${replica.state}, not paused`);
    replica.process.child.kill('SIGCONT');
    replica.state = 'running';
  }

  /**
   * Starts a killed replica again on its data directory. Its links, both ways,
   * reset every connection until it listens and `beforeReconnect` is done.
   */
  async restart(index: number, options: RestartOptions = {}): Promise<void> {
    const replica = this.replica(index);
    if (replica.state !== 'killed') throw new Error(`${replica.name} is ${replica.state}, not killed`);
    const inbound = this.inbound(index);
    // Nor may it reach its peers before the hook is done: it could pull back from them what it lost.
    const outbound = this.links().filter((l) => l.name.startsWith(`${replica.name}->`));
    for (const link of inbound) link.retarget(undefined);
    for (const link of outbound) link.block(true);
    try {
      replica.pastLogs.push(replica.process.stderr());
      const args = this.#serverArgs(replica.name);
      let process: ServerProcess | undefined;
      if (options.samePort !== false) {
        try {
          process = await startServerProcess(replica.dataDir, [...args, '--port', String(replica.port)]);
        } catch (error) {
          // Someone took the port while the replica was down: a new port, and the links follow.
          if (!/EADDRINUSE|address already in use/i.test(String(error))) throw error;
        }
      }
      process ??= await startServerProcess(replica.dataDir, args);
      replica.process = process;
      replica.url = process.url;
      replica.port = portOf(process.url);
      replica.state = 'running';
      await options.beforeReconnect?.(process.url);
    } finally {
      for (const link of outbound) link.block(false);
      if (replica.state === 'running') for (const link of inbound) link.retarget(replica.url);
    }
  }

  /**
   * Cuts every link between nodes of different groups and heals every other
   * link; a node in no group is cut off from all. Replaces any earlier partition.
   */
  partition(groups: readonly (readonly string[])[], cut: 'refuse' | 'blackhole' = 'refuse'): void {
    const groupOf = new Map<string, number>();
    groups.forEach((group, i) => group.forEach((node) => groupOf.set(node, i)));
    for (const link of this.links()) {
      const [from, to] = link.name.split('->') as [string, string];
      const a = groupOf.get(from);
      const b = groupOf.get(to);
      link.setCut(a !== undefined && a === b ? undefined : cut);
    }
  }

  /** Heals every cut (delays, duplication and reordering stay). */
  heal(): void {
    for (const link of this.links()) link.setCut(undefined);
  }

  /** Sets a link's delay, duplication and reordering, keeping its cut. */
  impair(from: string, to: string, faults: Omit<LinkFaults, 'cut'>): void {
    const link = this.link(from, to);
    const cut = link.faults.cut;
    link.setFaults(cut === undefined ? { ...faults } : { ...faults, cut });
  }

  /** Every server's standard error, all incarnations, by replica name. */
  logs(): Record<string, string> {
    return Object.fromEntries(this.replicas.map((r) => [r.name, [...r.pastLogs, r.process.stderr()].join('\n')]));
  }

  /**
   * Ends every process (a paused one is continued first, so that it can die)
   * and every proxy, and removes the data unless `keepData`. Safe to call twice.
   */
  async stop(options: { keepData?: boolean } = {}): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    await Promise.allSettled(
      this.replicas.map(async (replica) => {
        if (replica.state === 'killed') return;
        if (replica.state === 'paused') replica.process.child.kill('SIGCONT');
        await replica.process.kill9();
        replica.state = 'killed';
      }),
    );
    await Promise.allSettled(this.links().map((link) => link.close()));
    if (options.keepData !== true) await this.#removeDir();
  }
}

function portOf(url: string): number {
  return Number(new URL(url).port);
}

/** `e2ekv-server --help`: how a test learns which flags this server version has. */
export async function serverHelp(): Promise<string> {
  const bin = path.join(repoRoot, 'server/src/bin.ts');
  const child = spawn(process.execPath, ['--import=tsx/esm', '--conditions=e2ekv-source', bin, '--help'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  await new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', () => resolve());
  });
  return out;
}
