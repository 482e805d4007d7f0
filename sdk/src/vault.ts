/**
 * A vault as one device sees it: its own log, the verified logs of the other
 * devices, and the state they add up to. Writes land in the own log first and
 * reach replicas by push; reads come from verified, decrypted entries, applied
 * in causal order (an entry waits until everything it depends on is here).
 */
import {
  E2ekvError,
  MerkleTree,
  bytesEqual,
  decodeEntry,
  encodeEntry,
  fromHex,
  leafHash,
  sha256,
  toHex,
  verifyDeviceCheckpoint,
  signDeviceCheckpoint,
  type NoteSigner,
  type Role,
} from '@e2ekv/protocol';
import { HybridLogicalClock } from './clock.js';
import { openDataEntry, sealDataEntry, type OpenedEntry, type Value, type VaultKeys, type Write } from './entries.js';
import { pullBlob, pullLog, type LogPin } from './log-sync.js';
import { MultiValueRegister, type VersionedWrite } from './resolve.js';
import type { ReplicaTransport } from './transport.js';

export type AckLevel = 'local' | 'one' | 'quorum' | 'all';

/** What `set` accepts: bytes, or anything JSON can represent. */
export type Settable =
  Uint8Array | string | number | boolean | null | readonly unknown[] | { readonly [key: string]: unknown };

export interface WriteOptions {
  /** How many replicas must have the write on disk before the promise resolves (default 'one'). */
  ack?: AckLevel;
}

export interface Sibling {
  value: unknown;
  device: string;
  index: number;
  deleted: boolean;
}

interface ItemState {
  name: string;
  value: Value;
}

interface LogState {
  device: Uint8Array;
  tree: MerkleTree;
  entries: Uint8Array[];
  /** The verified pin of this log (the largest checkpoint checked so far). */
  pin: LogPin | undefined;
  /** How many entries have been applied to the registers (causal delivery). */
  applied: number;
  /** Opened entries waiting for their causal past, by index. */
  waiting: Map<number, OpenedEntry>;
}

/** One key changed by an applied entry; `conflict` when it now has concurrent siblings. */
export interface VaultChange {
  key: string;
  device: string;
  conflict: boolean;
}

export interface VerifyReport {
  replicas: { url: string; logs: { device: string; size: number }[] }[];
}

export interface VaultEvidence {
  replica: string;
  device: string;
  first: string;
  second: string;
}

export interface VaultOptions {
  vaultId: Uint8Array;
  keys: VaultKeys;
  device: Uint8Array;
  checkpointSigner: NoteSigner;
  replicas: readonly ReplicaTransport[];
  clock?: HybridLogicalClock;
}

function toValue(value: Settable): Value {
  if (value instanceof Uint8Array) return { kind: 'bytes', bytes: value };
  return { kind: 'json', json: value };
}

function fromValue(value: Value): unknown {
  switch (value.kind) {
    case 'bytes':
      return value.bytes;
    case 'json':
      return value.json;
    case 'automerge':
      return value.document;
    case 'tombstone':
      return undefined;
  }
}

export class Vault {
  readonly id: string;
  readonly #vaultId: Uint8Array;
  readonly #keys: VaultKeys;
  readonly #device: Uint8Array;
  readonly #deviceHex: string;
  readonly #checkpointSigner: NoteSigner;
  readonly #replicas: readonly ReplicaTransport[];
  readonly #clock: HybridLogicalClock;
  readonly #logs = new Map<string, LogState>();
  readonly #registers = new Map<string, MultiValueRegister<ItemState>>();
  /** Own-log blobs by entry index, to send with the entry. */
  readonly #blobs = new Map<number, Uint8Array[]>();
  /** Own-log size each replica acknowledged. */
  readonly #acked = new Map<string, number>();
  readonly #evidence: VaultEvidence[] = [];
  readonly #listeners = new Set<(change: VaultChange) => void>();
  readonly #errorListeners = new Set<(error: unknown) => void>();
  #watchAbort: AbortController | undefined;
  #syncing: Promise<void> | undefined;
  #syncAgain = false;
  #writing: Promise<unknown> = Promise.resolve();

  constructor(options: VaultOptions) {
    this.#vaultId = options.vaultId;
    this.id = toHex(options.vaultId);
    this.#keys = options.keys;
    this.#device = options.device;
    this.#deviceHex = toHex(options.device);
    this.#checkpointSigner = options.checkpointSigner;
    this.#replicas = options.replicas;
    this.#clock = options.clock ?? new HybridLogicalClock();
    this.#log(this.#deviceHex);
  }

  /** Evidence of equivocation found so far: pairs of signed checkpoints that cannot both be true. */
  get evidence(): readonly VaultEvidence[] {
    return this.#evidence;
  }

  async set(name: string, value: Settable, options: WriteOptions = {}): Promise<void> {
    await this.batch([{ name, value }], options);
  }

  async delete(name: string, options: WriteOptions = {}): Promise<void> {
    await this.batch([{ name, delete: true }], options);
  }

  /** Writes several keys atomically: one log entry. */
  async batch(
    operations: readonly ({ name: string; value: Settable } | { name: string; delete: true })[],
    options: WriteOptions = {},
  ): Promise<void> {
    const writes: Write[] = operations.map((op) =>
      'delete' in op ? { name: op.name, value: { kind: 'tombstone' } } : { name: op.name, value: toValue(op.value) },
    );
    // One writer at a time per device: entries take consecutive indices.
    const done = this.#writing.then(() => this.#writeLocal(writes));
    this.#writing = done.catch(() => undefined);
    await done;
    await this.#push(options.ack ?? 'one');
  }

  /**
   * Adds a device to the vault with a role (this device must be an admin). The
   * new member still needs the vault secret: invitations come with sharing.
   */
  async addMember(
    member: { signingKey: Uint8Array; boxKey: Uint8Array },
    role: Role,
    options: WriteOptions = {},
  ): Promise<void> {
    const done = this.#writing.then(() => {
      const own = this.#log(this.#deviceHex);
      const index = own.entries.length;
      const clock = this.#clock.tick();
      const context = this.#context();
      const bytes = encodeEntry({
        type: 'membership',
        vaultId: this.#vaultId,
        device: this.#device,
        index: BigInt(index),
        epoch: this.#keys.epoch,
        clock,
        context,
        change: { op: 'add', member: member.signingKey, boxKey: member.boxKey, role },
      });
      own.entries.push(bytes);
      own.tree.append(leafHash(bytes));
      own.waiting.set(index, {
        device: this.#deviceHex,
        index,
        epoch: this.#keys.epoch,
        clock,
        context: new Map(context.map((c) => [toHex(c.device), Number(c.size)])),
        items: [],
      });
      this.#applyReady();
    });
    this.#writing = done.catch(() => undefined);
    await done;
    await this.#push(options.ack ?? 'one');
  }

  /** What this device has applied of every other device's log: the causal context of its next entry. */
  #context(): { device: Uint8Array; size: bigint }[] {
    return [...this.#logs.entries()]
      .filter(([hex, log]) => hex !== this.#deviceHex && log.applied > 0)
      .map(([, log]) => ({ device: log.device, size: BigInt(log.applied) }))
      .sort((a, b) => (toHex(a.device) < toHex(b.device) ? -1 : 1));
  }

  async #writeLocal(writes: readonly Write[]): Promise<void> {
    const own = this.#log(this.#deviceHex);
    const context = this.#context();
    const index = own.entries.length;
    const sealed = sealDataEntry({
      keys: this.#keys,
      device: this.#device,
      index,
      clock: this.#clock.tick(),
      context,
      writes,
    });
    const opened = await openDataEntry(sealed.entry, this.#keys, (hash) => {
      const blob = sealed.blobs.find((b) => bytesEqual(sha256(b), hash));
      if (blob === undefined) throw new E2ekvError('INTERNAL', 'a blob of our own entry is missing');
      return Promise.resolve(blob);
    });
    own.entries.push(sealed.bytes);
    own.tree.append(leafHash(sealed.bytes));
    if (sealed.blobs.length > 0) this.#blobs.set(index, sealed.blobs);
    own.waiting.set(index, opened);
    this.#applyReady();
  }

  /** Pushes the own log's unacknowledged entries; resolves when `ack` replicas have them. */
  async #push(ack: AckLevel): Promise<void> {
    if (ack === 'local') return;
    const needed =
      ack === 'one' ? 1 : ack === 'all' ? this.#replicas.length : Math.floor(this.#replicas.length / 2) + 1;
    const results = await Promise.allSettled(this.#replicas.map((r) => this.#pushTo(r)));
    const acknowledged = results.filter((r) => r.status === 'fulfilled').length;
    if (acknowledged < needed) {
      const reasons = results
        .filter((r): r is PromiseRejectedResult => r.status === 'rejected')
        .map((r) => (r.reason instanceof Error ? r.reason.message : String(r.reason)));
      const integrity = results.find(
        (r): r is PromiseRejectedResult =>
          r.status === 'rejected' && r.reason instanceof E2ekvError && r.reason.category === 'integrity',
      );
      if (integrity !== undefined) throw integrity.reason;
      throw new E2ekvError(
        'UNAVAILABLE',
        `the write is saved on this device but only ${acknowledged} of ${this.#replicas.length} replicas acknowledged it (${ack} needs ${needed}): ${reasons.join('; ')}. It will be sent again by sync().`,
      );
    }
  }

  async #pushTo(replica: ReplicaTransport): Promise<void> {
    const own = this.#log(this.#deviceHex);
    const size = own.entries.length;
    let start = this.#acked.get(replica.url);
    if (start === undefined) {
      const state = await replica.vaultState(this.id);
      start = state.logs.find((l) => l.device === this.#deviceHex)?.size ?? 0;
      if (start > size) {
        throw new E2ekvError(
          'INTEGRITY',
          `replica ${replica.url} claims ${start} entries of this device's log, which has ${size}`,
        );
      }
    }
    if (start >= size) return;
    const blobs: Uint8Array[] = [];
    for (let i = start; i < size; i++) blobs.push(...(this.#blobs.get(i) ?? []));
    const checkpoint = await signDeviceCheckpoint(this.#checkpointSigner, {
      size: BigInt(size),
      root: own.tree.root(size),
    });
    const cosigned = await replica.append(this.id, {
      start,
      entries: own.entries.slice(start, size),
      blobs,
      checkpoint,
      consistencyProof: start > 0 ? own.tree.consistencyProof(start, size) : [],
    });
    const info = await replica.info();
    const verified = await verifyDeviceCheckpoint(cosigned, this.#vaultId, this.#device, [info.cosigner]);
    if (verified.checkpoint.size !== BigInt(size) || verified.cosignatures.length === 0) {
      throw new E2ekvError(
        'INTEGRITY',
        `replica ${replica.url} acknowledged the append with a checkpoint it did not cosign`,
      );
    }
    this.#acked.set(replica.url, Math.max(this.#acked.get(replica.url) ?? 0, size));
  }

  /** Pulls and verifies every log from every replica, then pushes this device's entries. */
  async sync(): Promise<void> {
    const errors: E2ekvError[] = [];
    let reached = 0;
    for (const replica of this.#replicas) {
      try {
        await this.#pullFrom(replica);
        reached++;
      } catch (error) {
        // An unreachable replica is tolerated while another answers; anything
        // else (integrity, permission, unknown vault) is the answer.
        if (!(error instanceof E2ekvError) || error.code !== 'UNAVAILABLE') throw error;
        errors.push(error);
      }
    }
    if (reached === 0 && this.#replicas.length > 0) {
      throw new E2ekvError('UNAVAILABLE', `no replica answered: ${errors.map((e) => e.message).join('; ')}`);
    }
    this.#checkDependencies();
    await this.#push('one').catch((error: unknown) => {
      if (error instanceof E2ekvError && error.code === 'UNAVAILABLE') return;
      throw error;
    });
  }

  async #pullFrom(replica: ReplicaTransport): Promise<void> {
    const info = await replica.info();
    const state = await replica.vaultState(this.id);
    for (const remote of state.logs) {
      const log = this.#log(remote.device);
      if (remote.device === this.#deviceHex) {
        // Our own log: the replica's copy must be a prefix of it.
        if (remote.size > log.entries.length || !bytesEqual(remote.root, log.tree.root(remote.size))) {
          throw new E2ekvError(
            'INTEGRITY',
            `replica ${replica.url} holds a version of this device's log that this device never wrote`,
          );
        }
        this.#acked.set(replica.url, Math.max(this.#acked.get(replica.url) ?? 0, remote.size));
        continue;
      }
      if (remote.size <= log.entries.length) continue;
      let pulled;
      try {
        pulled = await pullLog(replica, {
          vaultId: this.#vaultId,
          device: log.device,
          pin: log.pin,
          tree: log.tree,
          cosigner: info.cosigner,
        });
      } catch (error) {
        const evidence = (error as { evidence?: { first: string; second: string } }).evidence;
        if (evidence !== undefined) this.#evidence.push({ replica: replica.url, device: remote.device, ...evidence });
        throw error;
      }
      for (const bytes of pulled.entries) {
        const index = log.entries.length;
        // pullLog has appended the verified leaves to log.tree.
        log.entries.push(bytes);
        const entry = decodeEntry(bytes);
        if (entry.type === 'data') {
          const opened = await openDataEntry(entry, this.#keys, (hash, length) =>
            pullBlob(replica, this.id, { hash, length }),
          );
          this.#clock.observe(opened.clock);
          log.waiting.set(index, opened);
        } else {
          // Membership entries carry no values here (their replay comes with
          // sharing), but they still take their place in causal order.
          this.#clock.observe(entry.clock);
          log.waiting.set(index, {
            device: remote.device,
            index,
            epoch: entry.epoch,
            clock: entry.clock,
            context: new Map(entry.context.map((c) => [toHex(c.device), Number(c.size)])),
            items: [],
          });
        }
      }
      log.pin = pulled.pin;
    }
    this.#applyReady();
  }

  /** Applies waiting entries whose causal past is fully applied, until nothing moves. */
  #applyReady(): void {
    let progress = true;
    while (progress) {
      progress = false;
      for (const log of this.#logs.values()) {
        for (;;) {
          const next = log.waiting.get(log.applied);
          if (next === undefined || !this.#dependenciesMet(next)) break;
          log.waiting.delete(log.applied);
          this.#apply(next);
          log.applied++;
          progress = true;
        }
      }
    }
  }

  #dependenciesMet(entry: OpenedEntry): boolean {
    for (const [device, size] of entry.context) {
      if ((this.#logs.get(device)?.applied ?? 0) < size) return false;
    }
    return true;
  }

  #checkDependencies(): void {
    for (const [hex, log] of this.#logs) {
      const next = log.waiting.get(log.applied);
      if (next === undefined) continue;
      for (const [device, size] of next.context) {
        const have = this.#logs.get(device)?.entries.length ?? 0;
        if (have < size) {
          throw new E2ekvError(
            'WITHHELD',
            `entry ${next.index} of device ${hex} depends on ${size} entries of device ${device}, but the replicas served only ${have}: a replica is withholding them`,
            { details: { device, needed: size, served: have } },
          );
        }
      }
    }
  }

  #apply(entry: OpenedEntry): void {
    const vector = new Map(entry.context);
    for (const item of entry.items) {
      let register = this.#registers.get(item.blindedKey);
      if (register === undefined)
        this.#registers.set(item.blindedKey, (register = new MultiValueRegister<ItemState>()));
      const write: VersionedWrite<ItemState> = {
        device: entry.device,
        index: entry.index,
        vector,
        clock: entry.clock,
        value: { name: item.name, value: item.value },
      };
      register.add(write);
      const siblings = register.siblings().length;
      for (const listener of this.#listeners)
        listener({ key: item.name, device: entry.device, conflict: siblings > 1 });
    }
  }

  /**
   * Calls `listener` for every change applied to this vault (local writes and
   * entries pulled from replicas), and keeps the vault in sync through the
   * replicas' push channels until the returned function is called.
   */
  watch(listener: (change: VaultChange) => void): () => void {
    this.#listeners.add(listener);
    if (this.#watchAbort === undefined) {
      const abort = new AbortController();
      this.#watchAbort = abort;
      for (const replica of this.#replicas) void this.#follow(replica, abort.signal);
    }
    return () => {
      this.#listeners.delete(listener);
      if (this.#listeners.size === 0) {
        this.#watchAbort?.abort();
        this.#watchAbort = undefined;
      }
    };
  }

  // Follows one replica's push channel, syncing when another device's log grows;
  // reconnects with backoff and jitter until aborted.
  async #follow(replica: ReplicaTransport, signal: AbortSignal): Promise<void> {
    let delay = 250;
    while (!signal.aborted) {
      try {
        await replica.events(
          this.id,
          (event) => {
            if (event.device === this.#deviceHex) return;
            if ((this.#logs.get(event.device)?.entries.length ?? 0) >= event.size) return;
            // One sync at a time; an event that arrives during it asks for one more,
            // since the running sync may have read the vault's state before it.
            if (this.#syncing !== undefined) {
              this.#syncAgain = true;
              return;
            }
            const run = async () => {
              do {
                this.#syncAgain = false;
                await this.sync();
              } while (this.#syncAgain);
            };
            this.#syncing = run()
              .catch((error: unknown) => this.#onWatchError(error))
              .finally(() => {
                this.#syncing = undefined;
              });
          },
          signal,
        );
        delay = 250;
      } catch (error) {
        if (signal.aborted) return;
        this.#onWatchError(error);
      }
      await new Promise((resolve) => setTimeout(resolve, delay * (0.5 + Math.random())));
      delay = Math.min(delay * 2, 30_000);
    }
  }

  #onWatchError(error: unknown): void {
    for (const listener of this.#errorListeners) listener(error);
  }

  /** Errors that happen while watching (a replica failing verification, for one). */
  onError(listener: (error: unknown) => void): () => void {
    this.#errorListeners.add(listener);
    return () => this.#errorListeners.delete(listener);
  }

  /**
   * Audits every replica: each must serve, for every device's log, a checkpoint
   * consistent with what this device verified before, and replicas must agree
   * with each other on every log size they share. Pulls what is new on the way.
   * Throws the first integrity error (evidence is kept in `evidence`); returns
   * what each replica holds.
   */
  async verify(): Promise<VerifyReport> {
    await this.sync();
    const report: VerifyReport = { replicas: [] };
    const rootsBySize = new Map<string, { root: string; replica: string }>();
    for (const replica of this.#replicas) {
      const state = await replica.vaultState(this.id);
      const logs: VerifyReport['replicas'][number]['logs'] = [];
      for (const remote of state.logs) {
        const log = this.#log(remote.device);
        if (remote.size < (log.pin?.size ?? 0) && remote.device !== this.#deviceHex) {
          throw new E2ekvError(
            'ROLLBACK',
            `replica ${replica.url} serves ${remote.size} entries of device ${remote.device}, fewer than the ${log.pin?.size} already verified`,
          );
        }
        if (remote.size <= log.tree.size && !bytesEqual(remote.root, log.tree.root(remote.size))) {
          throw new E2ekvError(
            'EQUIVOCATION',
            `replica ${replica.url} serves a log of device ${remote.device} whose root at size ${remote.size} differs from the verified one`,
          );
        }
        const key = `${remote.device}/${remote.size}`;
        const seen = rootsBySize.get(key);
        const root = toHex(remote.root);
        if (seen !== undefined && seen.root !== root) {
          throw new E2ekvError(
            'EQUIVOCATION',
            `replicas ${seen.replica} and ${replica.url} serve different histories of device ${remote.device} at size ${remote.size}`,
          );
        }
        rootsBySize.set(key, { root, replica: replica.url });
        logs.push({ device: remote.device, size: remote.size });
      }
      report.replicas.push({ url: replica.url, logs });
    }
    return report;
  }

  #log(deviceHex: string): LogState {
    let log = this.#logs.get(deviceHex);
    if (log === undefined) {
      log = {
        device: fromHex(deviceHex),
        tree: new MerkleTree(),
        entries: [],
        pin: undefined,
        applied: 0,
        waiting: new Map(),
      };
      this.#logs.set(deviceHex, log);
    }
    return log;
  }

  #register(name: string): MultiValueRegister<ItemState> | undefined {
    return this.#registers.get(toHex(this.#keys.blinder.blind(name)));
  }

  /** The current value of a key, or undefined if it was never set or was deleted. */
  get(name: string): unknown {
    const winner = this.#register(name)?.winner();
    return winner === undefined ? undefined : fromValue(winner.value.value);
  }

  /** Every concurrent value of a key, the winner first. */
  getAll(name: string): Sibling[] {
    return (this.#register(name)?.siblings() ?? []).map((s) => ({
      value: fromValue(s.value.value),
      device: s.device,
      index: s.index,
      deleted: s.value.value.kind === 'tombstone',
    }));
  }

  /** Keys that currently have a value, sorted, optionally by prefix. */
  list(options: { prefix?: string } = {}): string[] {
    const names: string[] = [];
    for (const register of this.#registers.values()) {
      const winner = register.winner();
      if (winner === undefined || winner.value.value.kind === 'tombstone') continue;
      if (options.prefix === undefined || winner.value.name.startsWith(options.prefix)) names.push(winner.value.name);
    }
    return names.sort();
  }
}
