// Replicas for replication tests: in-process servers on 127.0.0.1:0, each
// behind a relay whose URL its peers are configured with (so a replica can be
// stopped, restarted on a new port, or cut off, and keep its URL), with their
// JSON logs captured. cleanup() stops every server and relay it started.
import { encodeAppendRequest, parseVaultStateResponse, toBase64 } from '@e2ekv/protocol';
import type { AppendRequest } from '@e2ekv/protocol';
import { jsonLogger } from '../../src/log.js';
import { startServer, type RunningServer } from '../../src/server.js';
import type { ReplicationOptions, ReplicationStatus } from '../../src/peers.js';
import { request } from './client.js';
import { tempDir } from './process.js';
import { startRelay, type Relay } from './relay.js';
import type { TestDevice } from './writer.js';

export interface Replica {
  index: number;
  dataDir: string;
  /** The relay URL its peers use: cut the relay to cut the replica off from them. */
  url: string;
  relay: Relay;
  server: RunningServer | undefined;
  audience: Uint8Array;
  logs: Record<string, unknown>[];
  /** Peer URLs (or URL#KEY) it was started with. */
  peers: string[];
}

/** The replica's own URL, for clients: not through the relay, so that cutting it cuts peers only. */
export function direct(replica: Replica): string {
  if (replica.server === undefined) throw new Error(`replica ${replica.index} is not running`);
  return replica.server.url;
}

export interface ReplicaSetOptions {
  /** Replication options of every replica (tests shorten the interval). */
  replication?: Partial<ReplicationOptions>;
  /** Peers of replica i; default every other replica's relay URL. */
  peersOf?: (i: number, urls: readonly string[]) => string[];
  storage?: 'sqlite' | 'memory';
}

export class ReplicaSet {
  readonly replicas: Replica[] = [];
  readonly #options: ReplicaSetOptions;
  readonly #cleanups: (() => Promise<void>)[] = [];

  private constructor(options: ReplicaSetOptions) {
    this.#options = options;
  }

  /** Starts `n` replicas; `start: false` leaves some stopped (start them later with start(i)). */
  static async create(
    n: number,
    options: ReplicaSetOptions = {},
    started: readonly boolean[] = [],
  ): Promise<ReplicaSet> {
    const set = new ReplicaSet(options);
    try {
      const relays: Relay[] = [];
      for (let i = 0; i < n; i++) {
        const relay = await startRelay();
        set.#cleanups.push(() => relay.close());
        relays.push(relay);
      }
      const urls = relays.map((r) => r.url);
      for (let i = 0; i < n; i++) {
        const { dir, remove } = await tempDir('e2ekv-peers-');
        set.#cleanups.push(remove);
        set.replicas.push({
          index: i,
          dataDir: dir,
          url: urls[i]!,
          relay: relays[i]!,
          server: undefined,
          audience: new Uint8Array(32),
          logs: [],
          peers: options.peersOf?.(i, urls) ?? urls.filter((_, j) => j !== i),
        });
      }
      for (let i = 0; i < n; i++) if (started[i] !== false) await set.start(i);
    } catch (error) {
      await set.cleanup();
      throw error;
    }
    return set;
  }

  async start(i: number, peers?: string[]): Promise<Replica> {
    const replica = this.replicas[i]!;
    if (peers !== undefined) replica.peers = peers;
    const server = await startServer({
      host: '127.0.0.1',
      port: 0,
      dataDir: replica.dataDir,
      peers: replica.peers,
      storage: this.#options.storage ?? 'sqlite',
      logger: jsonLogger('debug', (line) => replica.logs.push(JSON.parse(line) as Record<string, unknown>)),
      ...(this.#options.replication === undefined ? {} : { replication: this.#options.replication }),
    });
    replica.server = server;
    replica.audience = server.cosigner.publicKey;
    replica.relay.retarget(server.url);
    return replica;
  }

  async stop(i: number): Promise<void> {
    const replica = this.replicas[i]!;
    const server = replica.server;
    replica.server = undefined;
    await server?.close();
  }

  status(i: number): ReplicationStatus {
    const server = this.replicas[i]!.server;
    if (server === undefined) throw new Error(`replica ${i} is not running`);
    return server.replication();
  }

  /** Log lines of replica i whose msg matches. */
  logged(i: number, msg: string | RegExp): Record<string, unknown>[] {
    return this.replicas[i]!.logs.filter((l) =>
      typeof msg === 'string' ? l['msg'] === msg : msg.test(String(l['msg'])),
    );
  }

  async cleanup(): Promise<void> {
    await Promise.allSettled(this.replicas.map((_, i) => this.stop(i)));
    for (const cleanup of this.#cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  }
}

/** Creates a vault with `device` as its creator on the replica; returns its id. */
export async function createVault(replica: Replica, device: TestDevice): Promise<string> {
  const { signedGenesis, vaultId } = await device.genesis();
  const res = await request(direct(replica), 'POST', '/v1/vaults', {
    signer: device.signer,
    audience: replica.audience,
    body: { genesis: toBase64(signedGenesis) },
  });
  if (res.status !== 201 && res.status !== 200) throw new Error(`create vault: ${res.status} ${res.text}`);
  return vaultId;
}

/** Sends an append of `device`'s log to the replica; throws unless it is accepted. */
export async function append(
  replica: Replica,
  vaultId: string,
  device: TestDevice,
  body: AppendRequest,
): Promise<void> {
  const res = await request(direct(replica), 'POST', `/v1/vaults/${vaultId}/logs/${device.hex}/append`, {
    signer: device.signer,
    audience: replica.audience,
    body: encodeAppendRequest(body),
  });
  if (res.status !== 200) throw new Error(`append: ${res.status} ${res.text}`);
}

/** Writes `count` data entries to `device`'s log on the replica, in appends of `batch`. */
export async function write(
  replica: Replica,
  vaultId: string,
  device: TestDevice,
  count: number,
  batch = 250,
): Promise<void> {
  for (let done = 0; done < count; done += batch) {
    await append(replica, vaultId, device, await device.nextAppend(vaultId, { values: Math.min(batch, count - done) }));
  }
}

/** The vault's vector on the replica as `device` (a member) reads it: device -> size. */
export async function vector(replica: Replica, vaultId: string, device: TestDevice): Promise<Record<string, number>> {
  const res = await request(direct(replica), 'GET', `/v1/vaults/${vaultId}`, {
    signer: device.signer,
    audience: replica.audience,
  });
  if (res.status === 404) return {};
  if (res.status !== 200) throw new Error(`vault state: ${res.status} ${res.text}`);
  const state = parseVaultStateResponse(res.body);
  return Object.fromEntries(state.logs.map((l) => [l.device, l.size]));
}

/** Polls `check` until it returns true; throws with `what` after `timeoutMs`. */
export async function eventually(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
