/**
 * This replica's relationship with one peer (SPEC.md section 22): learning
 * and checking the peer's key, pushing what devices append here, and the
 * periodic anti-entropy round that pulls what the peer holds and this replica
 * lacks. Everything pulled goes through the acceptor exactly as a device's
 * append would, so a lying peer can make this replica refuse, never store.
 *
 * Backpressure: a round fetches one bounded shipment at a time per log, from
 * at most `vaultConcurrency` vaults at once, so memory is bounded whatever the
 * distance between the replicas; pushes wait in a queue bounded in bytes, and
 * what does not fit is left to the peer's own round.
 */
import {
  E2ekvError,
  NOTE_SIG_ED25519,
  bytesEqual,
  checkCheckpointProgress,
  errorCategory,
  formatNote,
  fromHex,
  isE2ekvError,
  logOrigin,
  noteKeyId,
  parseCheckpoint,
  parseNote,
  toHex,
  verifyConsistency,
  verifyDeviceCheckpoint,
  verifyGenesis,
} from '@e2ekv/protocol';
import type { AppendRequest, Ed25519Signer } from '@e2ekv/protocol';
import type { Acceptor } from './accept.js';
import type { EventHub } from './events.js';
import type { ServerLimits } from './limits.js';
import type { Logger } from './log.js';
import type { MembershipCache } from './membership.js';
import type { ServerMetrics } from './metrics.js';
import { PeerClient, fetchPeerInfo, type PeerInfo } from './peer-client.js';
import type { PeerPins } from './peer-config.js';
import { vectorDigest, type Shipment } from './peer-messages.js';
import { PushQueue } from './push-queue.js';
import type { LogHead, StorageAdapter } from './storage/adapter.js';

export interface ReplicationOptions {
  /** Mean time between full anti-entropy rounds with each peer (jittered ±20%). */
  antiEntropyIntervalMs: number;
  /**
   * Longest wait before retrying a peer that failed: the backoff doubles from
   * 250 ms up to this, and never beyond the interval (or 1 s, if longer).
   */
  maxBackoffMs: number;
  /** Timeout of one request to a peer. */
  requestTimeoutMs: number;
  /** Bytes of entries and blobs a shipment asks for (a device's single batch may exceed it). */
  shipmentBytes: number;
  /** Bytes of appends waiting to be pushed to one peer; more are dropped (the peer pulls them). */
  pushQueueBytes: number;
  /** Pushes in flight to one peer (at most one per log). */
  pushConcurrency: number;
  /** Vaults pulled from one peer at once. */
  vaultConcurrency: number;
}

export const DEFAULT_REPLICATION_OPTIONS: ReplicationOptions = {
  antiEntropyIntervalMs: 30_000,
  maxBackoffMs: 60_000,
  requestTimeoutMs: 30_000,
  shipmentBytes: 4 * 1024 * 1024,
  pushQueueBytes: 16 * 1024 * 1024,
  pushConcurrency: 4,
  vaultConcurrency: 2,
};

/** What a link needs from the replica around it. */
export interface LinkContext {
  storage: StorageAdapter;
  acceptor: Acceptor;
  membership: MembershipCache;
  events: EventHub;
  metrics: ServerMetrics;
  logger: Logger;
  limits: ServerLimits;
  options: ReplicationOptions;
  signer: Ed25519Signer;
  pins: PeerPins;
  /** Aborted on shutdown. */
  signal: AbortSignal;
  now: () => number;
}

export type LinkState = 'connecting' | 'ok' | 'unreachable' | 'key-mismatch' | 'self' | 'stopped';

export interface LinkStatus {
  url: string;
  key: string | null;
  keySource: 'explicit' | 'pinned' | null;
  state: LinkState;
  lastError: string | null;
  failures: number;
  lastRoundAt: string | null;
  lastSuccessAt: string | null;
  rounds: number;
  missingEntries: number;
  entriesReceived: number;
  entriesSent: number;
  bytesReceived: number;
  bytesSent: number;
  requestsSent: number;
  refused: number;
  evidence: number;
  pushes: { ok: number; skipped: number; failed: number; dropped: number; queuedItems: number; queuedBytes: number };
}

interface PushJob {
  key: string;
  bytes: number;
  vaultId: string;
  device: string;
  entries: number;
  body: Uint8Array;
  acceptedAt: number;
  /** The peer lacked the vault and its genesis was sent: do not do it twice. */
  genesisSent?: boolean;
}

interface LaggingLog {
  device: string;
  size: number;
  checkpoint: string;
}

// Refused logs are not pulled again from the same peer head for this many intervals.
const REFUSAL_MEMORY_INTERVALS = 10;
const MAX_REMEMBERED = 10_000;
const POKE_DELAY_MS = 50;
const FIRST_BACKOFF_MS = 250;
const SUFFIX_RETRIES = 5;

export class PeerLink {
  readonly url: string;
  readonly #ctx: LinkContext;
  readonly #explicitKey: Uint8Array | undefined;
  #key: Uint8Array | undefined;
  #state: LinkState = 'connecting';
  #info: PeerInfo | undefined;
  #client: PeerClient | undefined;
  readonly #push: PushQueue<PushJob>;

  #timer: NodeJS.Timeout | undefined;
  #timerDueAt = Infinity;
  #running: Promise<void> | undefined;
  #again = false;
  #nextFullAt = 0;
  #failures = 0;
  // Vaults to sync soon (a push the peer could not take, or one this replica could not).
  readonly #pendingVaults = new Set<string>();
  // "vault/device" -> the peer checkpoint refused, and until when not to try it again.
  readonly #refused = new Map<string, { checkpoint: string; until: number }>();

  readonly #stats = {
    lastError: null as string | null,
    lastRoundAt: null as number | null,
    lastSuccessAt: null as number | null,
    rounds: 0,
    missingEntries: 0,
    entriesReceived: 0,
    entriesSent: 0,
    bytesReceived: 0,
    bytesSent: 0,
    requestsSent: 0,
    refused: 0,
    evidence: 0,
    pushes: { ok: 0, skipped: 0, failed: 0, dropped: 0 },
  };

  constructor(ctx: LinkContext, spec: { url: string; key?: Uint8Array }) {
    this.url = spec.url;
    this.#ctx = ctx;
    this.#explicitKey = spec.key;
    this.#key = spec.key ?? ctx.pins.get(spec.url);
    this.#push = new PushQueue<PushJob>({
      maxBytes: ctx.options.pushQueueBytes,
      concurrency: ctx.options.pushConcurrency,
      send: (job) => this.#sendPush(job),
    });
  }

  /** The peer's server key once known (given, pinned or learned). */
  get keyHex(): string | undefined {
    return this.#key === undefined || this.#state === 'self' ? undefined : toHex(this.#key);
  }

  get state(): LinkState {
    return this.#state;
  }

  start(): void {
    // Soon, but not all links at the same instant: a restarted replica catches up at once.
    this.#schedule(Math.random() * Math.min(250, this.#ctx.options.antiEntropyIntervalMs / 4));
  }

  async stop(): Promise<void> {
    this.#state = 'stopped';
    clearTimeout(this.#timer);
    this.#push.clear();
    await Promise.allSettled([this.#running, this.#push.idle()]);
  }

  /** Called for each append a device made here: queue it for the peer. */
  offer(vaultId: string, device: string, entries: number, body: Uint8Array): void {
    if (this.#state !== 'ok') return; // an unreachable peer pulls it when it is back
    const job: PushJob = {
      key: `${vaultId}/${device}`,
      bytes: body.length,
      vaultId,
      device,
      entries,
      body,
      acceptedAt: this.#ctx.now(),
    };
    if (!this.#push.offer(job)) {
      this.#stats.pushes.dropped++;
      this.#ctx.metrics.peerPushes.inc({ peer: this.url, outcome: 'dropped' });
    }
    this.#ctx.metrics.peerPushQueueBytes.set(this.#push.bytes, { peer: this.url });
  }

  /**
   * Syncs `vaultId` with this peer soon: the peer pushed something this
   * replica could not take yet (it lacks an earlier part, or the membership
   * entry that lets the writer write). While the peer is failing, the vault
   * waits for the next retry. Without a vault: a full round now, backoff or not.
   */
  poke(vaultId?: string): void {
    if (this.#state === 'stopped' || this.#state === 'self') return;
    if (vaultId !== undefined) {
      if (this.#pendingVaults.size >= MAX_REMEMBERED) {
        this.#pendingVaults.clear();
        this.#nextFullAt = 0;
      }
      this.#pendingVaults.add(vaultId);
      if (this.#failures > 0) return;
    } else {
      this.#nextFullAt = 0;
    }
    if (this.#running !== undefined) this.#again = true;
    else this.#schedule(POKE_DELAY_MS, true);
  }

  /** The peer talked to us: if we thought it was down, try it again now. */
  heardFrom(): void {
    if (this.#state === 'unreachable' || this.#state === 'connecting') this.poke();
  }

  /** Counts bytes and entries this replica served the peer on a peer route. */
  served(entries: number, bytesIn: number, bytesOut: number): void {
    this.#countBytes(bytesOut, bytesIn);
    if (entries > 0) {
      this.#stats.entriesSent += entries;
      this.#ctx.metrics.peerEntries.inc({ peer: this.url, direction: 'sent' }, entries);
    }
  }

  /**
   * Verifies and stores an append the peer pushed, as a device's would be.
   * Refusals are logged; those that syncing can cure (this replica lacks an
   * earlier part, the vault, or the membership that lets the writer write)
   * schedule a sync of the vault with this peer.
   */
  async receive(vaultId: string, device: string, request: AppendRequest): Promise<string> {
    try {
      await this.#screen(vaultId, device, request, undefined);
      const result = await this.#ctx.acceptor.append(vaultId, device, request, { fromPeer: true });
      await this.#received(vaultId, device, request.entries.length, result.size);
      return result.cosignedCheckpoint;
    } catch (error) {
      if (!isE2ekvError(error)) throw error;
      if (error.code === 'NOT_FOUND' || error.code === 'PERMISSION_DENIED') this.poke(vaultId);
      else if (error.code === 'CONFLICT') {
        const head = await this.#ctx.storage.getHead(vaultId, device).catch(() => undefined);
        if ((head?.size ?? 0) < request.start + request.entries.length) this.poke(vaultId);
      } else if (error.code === 'BAD_PROOF')
        this.poke(vaultId); // the pull brings the root to judge by
      else if (errorCategory(error.code) === 'integrity' || errorCategory(error.code) === 'invalid-input') {
        this.#refuse(vaultId, device, undefined, error);
      }
      throw error;
    }
  }

  status(): LinkStatus {
    const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
    const s = this.#stats;
    return {
      url: this.url,
      key: this.keyHex ?? null,
      keySource: this.#explicitKey !== undefined ? 'explicit' : this.#key !== undefined ? 'pinned' : null,
      state: this.#state,
      lastError: s.lastError,
      failures: this.#failures,
      lastRoundAt: iso(s.lastRoundAt),
      lastSuccessAt: iso(s.lastSuccessAt),
      rounds: s.rounds,
      missingEntries: s.missingEntries,
      entriesReceived: s.entriesReceived,
      entriesSent: s.entriesSent,
      bytesReceived: s.bytesReceived,
      bytesSent: s.bytesSent,
      requestsSent: s.requestsSent,
      refused: s.refused,
      evidence: s.evidence,
      pushes: { ...s.pushes, queuedItems: this.#push.items, queuedBytes: this.#push.bytes },
    };
  }

  // ---------------------------------------------------------------------------
  // Scheduling

  /** Sets the next round; `sooner`: only if that is earlier than the one already set (pokes must not delay it). */
  #schedule(delayMs: number, sooner = false): void {
    if (this.#state === 'stopped' || this.#state === 'self') return;
    const dueAt = this.#ctx.now() + Math.max(0, delayMs);
    if (sooner && this.#timer !== undefined && this.#timerDueAt <= dueAt) return;
    clearTimeout(this.#timer);
    this.#timerDueAt = dueAt;
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        this.#timerDueAt = Infinity;
        this.#run();
      },
      Math.max(0, delayMs),
    );
    this.#timer.unref();
  }

  #run(): void {
    if (this.#running !== undefined) {
      this.#again = true;
      return;
    }
    this.#running = this.#round().finally(() => {
      this.#running = undefined;
      if (this.#state === 'stopped' || this.#state === 'self') return;
      const now = this.#ctx.now();
      const soon = this.#again || this.#pendingVaults.size > 0;
      this.#again = false;
      this.#schedule(soon && this.#failures === 0 ? POKE_DELAY_MS : this.#nextFullAt - now);
    });
  }

  async #round(): Promise<void> {
    const ctx = this.#ctx;
    const started = ctx.now();
    // Timers may fire a little early: with no vault pending, a round is a full one.
    const full = started >= this.#nextFullAt || this.#pendingVaults.size === 0;
    const outcome = full ? 'full' : 'vaults';
    this.#stats.lastRoundAt = started;
    try {
      const client = await this.#connect();
      if (full) {
        this.#pendingVaults.clear();
        await this.#fullRound(client);
      } else {
        const vaults = [...this.#pendingVaults];
        this.#pendingVaults.clear();
        await this.#syncVaults(client, vaults, false);
      }
      if (this.#failures > 0) {
        ctx.logger.log('info', 'peer reachable again', { peer: this.url, after: this.#failures });
      }
      this.#failures = 0;
      this.#stats.rounds++;
      this.#stats.lastSuccessAt = ctx.now();
      this.#stats.lastError = null;
      if (full) this.#nextFullAt = ctx.now() + jitter(ctx.options.antiEntropyIntervalMs);
      ctx.metrics.peerRounds.inc({ peer: this.url, outcome });
      ctx.metrics.peerUp.set(1, { peer: this.url });
      ctx.metrics.peerLastSuccess.set(Math.floor(ctx.now() / 1000), { peer: this.url });
    } catch (error) {
      if (this.#state === 'stopped' || this.#state === 'self') return;
      this.#failures++;
      const message = error instanceof Error ? error.message : String(error);
      this.#stats.lastError = message;
      const cap = Math.min(ctx.options.maxBackoffMs, Math.max(ctx.options.antiEntropyIntervalMs, 1000));
      const delay = Math.min(cap, FIRST_BACKOFF_MS * 2 ** Math.min(this.#failures - 1, 30));
      this.#nextFullAt = ctx.now() + jitter(delay);
      ctx.metrics.peerRounds.inc({ peer: this.url, outcome: 'failed' });
      ctx.metrics.peerUp.set(0, { peer: this.url });
      if (this.#state === 'ok') {
        this.#state = 'unreachable';
        this.#push.clear();
      }
      if (this.#state !== 'key-mismatch' && (this.#failures === 1 || this.#failures % 10 === 0)) {
        const refused =
          isE2ekvError(error) &&
          error.details['remote'] === true &&
          (error.code === 'UNAUTHENTICATED' || error.code === 'PERMISSION_DENIED');
        ctx.logger.log('warn', refused ? 'peer refuses requests from this replica' : 'peer unreachable', {
          peer: this.url,
          failures: this.#failures,
          error: message,
          ...(refused ? { fix: 'list this replica with --peer on the peer too (each replica lists every other)' } : {}),
        });
      }
    }
  }

  /**
   * Reads the peer's /v1/info (every round: it is also the liveness check),
   * pins its key on first contact and refuses a changed one.
   */
  async #connect(): Promise<PeerClient> {
    const ctx = this.#ctx;
    const info = await fetchPeerInfo(this.url, ctx.options.requestTimeoutMs, ctx.signal);
    if (bytesEqual(info.publicKey, ctx.signer.publicKey)) {
      this.#state = 'self';
      clearTimeout(this.#timer);
      ctx.logger.log('info', 'a configured peer is this replica itself: skipping it', { peer: this.url });
      throw new E2ekvError('INVALID_ARGUMENT', 'this peer is this replica itself');
    }
    if (this.#key === undefined) {
      this.#key = info.publicKey;
      await ctx.pins.set(this.url, info.publicKey);
      ctx.logger.log('info', 'pinned peer key on first contact', { peer: this.url, key: toHex(info.publicKey) });
    } else if (!bytesEqual(this.#key, info.publicKey)) {
      if (this.#state !== 'key-mismatch') {
        ctx.logger.log('error', 'peer key changed: refusing to replicate with it', {
          peer: this.url,
          expected: toHex(this.#key),
          found: toHex(info.publicKey),
          fix:
            this.#explicitKey !== undefined
              ? 'check the key given with --peer URL#KEY'
              : 'if the peer was really re-installed, remove its pin from peers.json in the data directory (or give the new key with --peer URL#KEY) and restart',
        });
      }
      this.#state = 'key-mismatch';
      this.#push.clear();
      throw new E2ekvError(
        'PERMISSION_DENIED',
        `peer ${this.url} presents key ${toHex(info.publicKey)}, not the pinned ${toHex(this.#key)}`,
      );
    }
    this.#state = 'ok';
    if (this.#client === undefined || this.#info?.maxBodyBytes !== info.maxBodyBytes) {
      this.#client = new PeerClient({
        url: this.url,
        signer: ctx.signer,
        audience: this.#key,
        timeoutMs: ctx.options.requestTimeoutMs,
        // A shipment is at most the peer's body limit in bytes, base64 in JSON.
        maxResponseBytes: Math.ceil((Math.max(info.maxBodyBytes, ctx.options.shipmentBytes) * 4) / 3) + (1 << 20),
        signal: ctx.signal,
        onBytes: (sent, received) => this.#countBytes(sent, received, true),
      });
    }
    this.#info = info;
    return this.#client;
  }

  // ---------------------------------------------------------------------------
  // Anti-entropy: compare one digest per vault, then the heads of vaults that differ.

  async #fullRound(client: PeerClient): Promise<void> {
    const differing: string[] = [];
    let after: string | undefined;
    do {
      const page = await client.listVaults(after);
      for (const { vaultId, vector } of page.vaults) {
        if ((await this.#localDigest(vaultId)) !== vector) differing.push(vaultId);
      }
      after = page.next;
    } while (after !== undefined && this.#state === 'ok');
    await this.#syncVaults(client, differing, true);
  }

  async #localDigest(vaultId: string): Promise<string | undefined> {
    if ((await this.#ctx.storage.getGenesis(vaultId)) === undefined) return undefined;
    return vectorDigest(await this.#ctx.storage.listHeads(vaultId));
  }

  async #syncVaults(client: PeerClient, vaults: readonly string[], full: boolean): Promise<void> {
    let missing = 0;
    let next = 0;
    const worker = async () => {
      while (next < vaults.length && this.#state === 'ok') {
        missing += await this.#syncVault(client, vaults[next++]!);
      }
    };
    // allSettled: a worker must not outlive the round when the other one fails.
    const results = await Promise.allSettled(Array.from({ length: this.#ctx.options.vaultConcurrency }, worker));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    // A push that failed meanwhile took the link down: the round did not finish.
    if (this.#state !== 'ok') throw new E2ekvError('UNAVAILABLE', `the link to ${this.url} went down during the round`);
    if (!full) return;
    this.#stats.missingEntries = missing;
    this.#ctx.metrics.peerMissing.set(missing, { peer: this.url });
  }

  /** Pulls what the peer holds of one vault and this replica lacks; returns how many entries that was. */
  async #syncVault(client: PeerClient, vaultId: string): Promise<number> {
    const ctx = this.#ctx;
    const state = await client.vaultState(vaultId);
    if (state === undefined) return 0;
    let genesis = await ctx.storage.getGenesis(vaultId);
    if (genesis === undefined) {
      try {
        const verified = await verifyGenesis(state.genesis);
        if (toHex(verified.vaultId) !== vaultId) {
          throw new E2ekvError(
            'INTEGRITY',
            `the genesis sent for vault ${vaultId} is that of vault ${toHex(verified.vaultId)}`,
          );
        }
        await ctx.acceptor.createVault(state.genesis);
      } catch (error) {
        if (!isE2ekvError(error) || error.code === 'UNAVAILABLE') throw error;
        this.#refuse(vaultId, undefined, undefined, error);
        return 0;
      }
      genesis = state.genesis;
    }
    // The creator's log first: it holds the membership entries that let the others write.
    const creator = toHex(genesis.subarray(41, 73));
    const heads = new Map((await ctx.storage.listHeads(vaultId)).map((h) => [h.device, h]));
    const lagging: LaggingLog[] = [];
    let missing = 0;
    for (const log of state.logs) {
      let size: number;
      let root: Uint8Array;
      try {
        const checkpoint = parseCheckpoint(parseNote(log.checkpoint).text);
        if (checkpoint.origin !== logOrigin(fromHex(vaultId), fromHex(log.device))) {
          throw new E2ekvError('INTEGRITY', 'the checkpoint is not of this log');
        }
        size = Number(checkpoint.size);
        root = checkpoint.root;
      } catch (error) {
        if (!isE2ekvError(error)) throw error;
        this.#refuse(vaultId, log.device, log.checkpoint, error);
        continue;
      }
      const mine = heads.get(log.device);
      const mySize = mine?.size ?? 0;
      if (mine !== undefined && size === mySize && !bytesEqual(root, mine.root)) {
        await this.#sameSizeFork(vaultId, mine, log.checkpoint);
      } else if (size > mySize) {
        missing += size - mySize;
        if (!this.#isRefused(vaultId, log.device, log.checkpoint)) lagging.push({ ...log, size });
      }
    }
    lagging.sort((a, b) => (a.device === creator ? -1 : b.device === creator ? 1 : 0));
    // Logs refused for want of membership may pass once another log is in: retry while any moves.
    let pending = lagging;
    while (pending.length > 0 && this.#state === 'ok') {
      const blocked: { log: LaggingLog; error: E2ekvError }[] = [];
      let moved = false;
      for (const log of pending) {
        const outcome = await this.#pullLog(client, vaultId, log);
        moved ||= outcome.moved;
        if (outcome.blocked !== undefined) blocked.push({ log, error: outcome.blocked });
      }
      if (!moved) {
        // Until the next full round: the membership that cures it may come from elsewhere.
        for (const { log, error } of blocked) this.#refuse(vaultId, log.device, log.checkpoint, error, 1);
        break;
      }
      pending = blocked.map((b) => b.log);
    }
    return missing;
  }

  /**
   * Pulls one log from this replica's size up to `log.size`, one shipment at
   * a time. `blocked` is the refusal that a later pass may cure (membership).
   */
  async #pullLog(
    client: PeerClient,
    vaultId: string,
    log: LaggingLog,
  ): Promise<{ moved: boolean; blocked?: E2ekvError }> {
    const ctx = this.#ctx;
    let moved = false;
    let conflicts = 0;
    let busy = 0;
    const maxEntries = Math.min(ctx.limits.maxBatchEntries, 4096);
    const maxBytes = Math.min(ctx.options.shipmentBytes, Math.floor((ctx.limits.maxBodyBytes * 3) / 4));
    for (;;) {
      if (this.#state !== 'ok') throw new E2ekvError('UNAVAILABLE', 'the link went down');
      const size = (await ctx.storage.getHead(vaultId, log.device))?.size ?? 0;
      if (size >= log.size) return { moved };
      let shipment: Shipment;
      try {
        shipment = await client.suffix(vaultId, log.device, size, { maxEntries, maxBytes });
      } catch (error) {
        if (!isE2ekvError(error) || error.details['remote'] !== true) throw error;
        if (error.code === 'RATE_LIMITED' && busy < SUFFIX_RETRIES) {
          await sleep(100 * 2 ** busy++ * (0.5 + Math.random()), ctx.signal);
          continue;
        }
        if (error.code === 'NOT_FOUND' || error.code === 'INVALID_ARGUMENT') {
          // The peer advertised more than it serves.
          this.#refuse(vaultId, log.device, log.checkpoint, error);
          return { moved };
        }
        throw error;
      }
      try {
        if (shipment.start !== size) {
          throw new E2ekvError('INTEGRITY', `asked for the log from ${size}, the peer sent it from ${shipment.start}`);
        }
        await this.#screen(vaultId, log.device, shipment, shipment.startRoot);
        const result = await ctx.acceptor.append(vaultId, log.device, shipment, { fromPeer: true });
        await this.#received(vaultId, log.device, shipment.entries.length, result.size);
        moved = true;
      } catch (error) {
        if (!isE2ekvError(error)) throw error;
        if (error.code === 'CONFLICT' && ++conflicts <= 3) continue; // a device or another peer got there first
        if (error.code === 'PERMISSION_DENIED') return { moved, blocked: error };
        if (error.code === 'UNAVAILABLE' || error.code === 'INTERNAL') throw error;
        this.#refuse(vaultId, log.device, log.checkpoint, error);
        return { moved };
      }
    }
  }

  /**
   * Checks a batch from the peer against this replica's head before the
   * acceptor sees it, so that a peer's wrong proof can never be taken for
   * the device's equivocation (the acceptor keeps evidence when proof and
   * root both fail, which from a device proves it lied, and from a peer
   * proves nothing). Proven equivocation is kept as evidence here.
   */
  async #screen(
    vaultId: string,
    device: string,
    request: AppendRequest,
    startRoot: Uint8Array | undefined,
  ): Promise<void> {
    const head = await this.#ctx.storage.getHead(vaultId, device);
    if (head === undefined || head.size !== request.start) return; // the acceptor refuses or rebuilds the root
    const verified = await verifyDeviceCheckpoint(request.checkpoint, fromHex(vaultId), fromHex(device));
    const next = verified.checkpoint;
    if (next.size <= BigInt(head.size)) return; // the acceptor refuses it
    try {
      checkCheckpointProgress({ size: BigInt(head.size), root: head.root }, next, request.consistencyProof);
      return;
    } catch (error) {
      if (!isE2ekvError(error, 'EQUIVOCATION')) throw error;
    }
    if (startRoot !== undefined && !bytesEqual(startRoot, head.root)) {
      try {
        verifyConsistency(BigInt(head.size), next.size, request.consistencyProof, startRoot, next.root);
      } catch (cause) {
        throw new E2ekvError(
          'BAD_PROOF',
          `the peer's consistency proof from ${head.size} to ${next.size} does not verify`,
          {
            cause,
          },
        );
      }
      // The device signed a tree of size next.size whose first head.size
      // leaves are not the ones it signed before: two histories.
      await this.#keepEvidence(vaultId, head, request.checkpoint, {
        startRoot: toHex(startRoot),
        proofHashes: request.consistencyProof.length,
      });
      throw new E2ekvError(
        'EQUIVOCATION',
        `device ${device} signed a checkpoint of size ${next.size} that is not consistent with its checkpoint of size ${head.size} held here; both are kept as evidence`,
      );
    }
    throw new E2ekvError(
      'BAD_PROOF',
      `the peer's consistency proof from ${head.size} to ${next.size} does not verify against this replica's checkpoint`,
    );
  }

  /** Two device-signed checkpoints of one size with different roots: evidence, if the peer's is genuine. */
  async #sameSizeFork(vaultId: string, mine: LogHead, theirs: string): Promise<void> {
    try {
      await verifyDeviceCheckpoint(theirs, fromHex(vaultId), fromHex(mine.device));
    } catch (error) {
      if (!isE2ekvError(error)) throw error;
      this.#refuse(vaultId, mine.device, theirs, error);
      return;
    }
    await this.#keepEvidence(vaultId, mine, theirs, {});
  }

  async #keepEvidence(
    vaultId: string,
    mine: LogHead,
    theirs: string,
    facts: Record<string, string | number>,
  ): Promise<void> {
    const ctx = this.#ctx;
    const second = deviceSignedNote(theirs, vaultId, mine.device);
    const known = await ctx.storage.listEvidence(vaultId);
    if (known.some((e) => e.device === mine.device && e.first === mine.note && e.second === second)) return;
    await ctx.storage.addEvidence(vaultId, { device: mine.device, first: mine.note, second, recordedAtMs: ctx.now() });
    this.#stats.evidence++;
    ctx.metrics.peerRefused.inc({ peer: this.url, code: 'EQUIVOCATION' });
    ctx.logger.log('warn', 'equivocation: a device signed two inconsistent checkpoints; both are kept as evidence', {
      peer: this.url,
      vaultId,
      device: mine.device,
      ...facts,
    });
  }

  #refuse(
    vaultId: string,
    device: string | undefined,
    checkpoint: string | undefined,
    error: E2ekvError,
    intervals = REFUSAL_MEMORY_INTERVALS,
  ): void {
    const ctx = this.#ctx;
    this.#stats.refused++;
    ctx.metrics.peerRefused.inc({ peer: this.url, code: error.code });
    ctx.logger.log('warn', 'refused data from a peer', {
      peer: this.url,
      vaultId,
      ...(device === undefined ? {} : { device }),
      code: error.code,
      error: error.message,
    });
    if (device !== undefined && checkpoint !== undefined) {
      if (this.#refused.size >= MAX_REMEMBERED) this.#refused.clear();
      this.#refused.set(`${vaultId}/${device}`, {
        checkpoint,
        until: ctx.now() + intervals * ctx.options.antiEntropyIntervalMs,
      });
    }
  }

  #isRefused(vaultId: string, device: string, checkpoint: string): boolean {
    const key = `${vaultId}/${device}`;
    const refused = this.#refused.get(key);
    if (refused === undefined) return false;
    if (refused.checkpoint === checkpoint && refused.until > this.#ctx.now()) return true;
    this.#refused.delete(key);
    return false;
  }

  async #received(vaultId: string, device: string, entries: number, size: number): Promise<void> {
    const ctx = this.#ctx;
    this.#stats.entriesReceived += entries;
    ctx.metrics.peerEntries.inc({ peer: this.url, direction: 'received' }, entries);
    // As for a device's append (app.ts): only current members hear of it.
    const state = await ctx.membership.state(vaultId);
    ctx.events.publish(vaultId, { device, size }, (reader) => state?.roleOf(reader) !== undefined);
  }

  #countBytes(sent: number, received: number, request = false): void {
    const s = this.#stats;
    s.bytesSent += sent;
    s.bytesReceived += received;
    if (request) s.requestsSent++;
    this.#ctx.metrics.peerBytes.inc({ peer: this.url, direction: 'sent' }, sent);
    this.#ctx.metrics.peerBytes.inc({ peer: this.url, direction: 'received' }, received);
  }

  // ---------------------------------------------------------------------------
  // Pushes

  async #sendPush(job: PushJob): Promise<void> {
    const ctx = this.#ctx;
    const client = this.#client;
    if (client === undefined || this.#state !== 'ok') return;
    try {
      await client.push(job.vaultId, job.device, job.body);
      this.#stats.pushes.ok++;
      this.#stats.entriesSent += job.entries;
      ctx.metrics.peerPushes.inc({ peer: this.url, outcome: 'ok' });
      ctx.metrics.peerEntries.inc({ peer: this.url, direction: 'sent' }, job.entries);
      ctx.metrics.peerPushSeconds.observe((ctx.now() - job.acceptedAt) / 1000, { peer: this.url });
    } catch (error) {
      const e = isE2ekvError(error) ? error : new E2ekvError('INTERNAL', String(error));
      const remote = e.details['remote'] === true;
      if (remote && e.code === 'NOT_FOUND' && e.details['peer.vaultId'] === job.vaultId && job.genesisSent !== true) {
        // The peer does not hold the vault yet: give it the genesis, then the batch again.
        const genesis = await ctx.storage.getGenesis(job.vaultId);
        if (genesis !== undefined) {
          try {
            await client.createVault(genesis);
            return await this.#sendPush({ ...job, genesisSent: true });
          } catch {
            // counted below
          }
        }
      }
      if (remote && ['CONFLICT', 'PERMISSION_DENIED', 'NOT_FOUND', 'BAD_PROOF'].includes(e.code)) {
        // The peer is behind or lacks membership: it syncs the vault with us itself.
        this.#stats.pushes.skipped++;
        ctx.metrics.peerPushes.inc({ peer: this.url, outcome: 'skipped' });
        return;
      }
      this.#stats.pushes.failed++;
      ctx.metrics.peerPushes.inc({ peer: this.url, outcome: 'failed' });
      if (!remote || e.code === 'UNAVAILABLE' || e.code === 'UNAUTHENTICATED') {
        // Down, or not recognising us: stop pushing until a round succeeds.
        if (this.#state === 'ok') {
          this.#state = 'unreachable';
          this.#push.clear();
          this.#stats.lastError = e.message;
          this.#nextFullAt = ctx.now() + FIRST_BACKOFF_MS;
          this.#schedule(FIRST_BACKOFF_MS, true);
          ctx.logger.log('warn', 'push to peer failed; pushes wait for the next anti-entropy round', {
            peer: this.url,
            error: e.message,
          });
        }
      } else {
        ctx.logger.log('warn', 'peer refused a pushed append', {
          peer: this.url,
          vaultId: job.vaultId,
          device: job.device,
          code: e.code,
          error: e.message,
        });
      }
    } finally {
      ctx.metrics.peerPushQueueBytes.set(this.#push.bytes, { peer: this.url });
    }
  }
}

/** The note reduced to its text and the log key's own signature line. */
function deviceSignedNote(note: string, vaultId: string, device: string): string {
  const parsed = parseNote(note);
  const origin = logOrigin(fromHex(vaultId), fromHex(device));
  const keyId = noteKeyId(origin, NOTE_SIG_ED25519, fromHex(device));
  return formatNote({
    text: parsed.text,
    signatures: parsed.signatures.filter((s) => s.name === origin && s.keyId === keyId),
  });
}

function jitter(ms: number): number {
  return ms * (0.8 + 0.4 * Math.random());
}

/** Waits `ms`, or less if `signal` aborts (shutdown). */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
