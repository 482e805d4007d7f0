/**
 * Replication among replicas (SPEC.md section 22, DESIGN.md section 9): the
 * set of configured peers, each a PeerLink that pushes what devices append
 * here and runs periodic anti-entropy; the authentication of requests peers
 * send here; and the status the operator sees at /v1/replication.
 *
 * Trust: a peer is trusted to spend this replica's resources and to read
 * every vault's ciphertext (it is a replica of them all), never for the
 * data's truth: everything a peer sends is verified as a device's append is.
 */
import { E2ekvError, ed25519Signer, toHex } from '@e2ekv/protocol';
import type { Acceptor } from './accept.js';
import type { EventHub } from './events.js';
import type { ServerLimits } from './limits.js';
import type { Logger } from './log.js';
import type { MembershipCache } from './membership.js';
import type { ServerMetrics } from './metrics.js';
import { PeerRequestVerifier, type PeerRequestToVerify } from './peer-auth.js';
import { PeerPins, parsePeerSpec, type PeerSpec } from './peer-config.js';
import { DEFAULT_REPLICATION_OPTIONS, PeerLink, type LinkStatus, type ReplicationOptions } from './peer-link.js';
import type { StorageAdapter } from './storage/adapter.js';

export { DEFAULT_REPLICATION_OPTIONS, type ReplicationOptions } from './peer-link.js';

export interface ReplicatorOptions {
  storage: StorageAdapter;
  acceptor: Acceptor;
  membership: MembershipCache;
  events: EventHub;
  metrics: ServerMetrics;
  logger: Logger;
  limits: ServerLimits;
  /** This replica's server key: it signs peer requests and is their audience here. */
  serverKey: { seed: Uint8Array; publicKey: Uint8Array };
  dataDir: string;
  /** `URL` or `URL#KEY` per peer (peer-config.ts). */
  peers: readonly string[];
  options?: Partial<ReplicationOptions>;
  now?: () => number;
}

export interface ReplicationStatus {
  replica: string;
  options: ReplicationOptions;
  peers: LinkStatus[];
}

// Inbound requests from an unknown key make links that have no key yet try to learn it, this often at most.
const KEY_REFRESH_MS = 2_000;

export class Replicator {
  readonly #links: PeerLink[];
  readonly #verifier: PeerRequestVerifier;
  readonly #abort: AbortController;
  readonly #options: ReplicationOptions;
  readonly #publicKey: Uint8Array;
  readonly #now: () => number;
  #lastKeyRefresh = 0;

  private constructor(
    links: PeerLink[],
    verifier: PeerRequestVerifier,
    abort: AbortController,
    options: ReplicationOptions,
    publicKey: Uint8Array,
    now: () => number,
  ) {
    this.#links = links;
    this.#verifier = verifier;
    this.#abort = abort;
    this.#options = options;
    this.#publicKey = publicKey;
    this.#now = now;
  }

  static async create(o: ReplicatorOptions): Promise<Replicator> {
    const options = { ...DEFAULT_REPLICATION_OPTIONS, ...o.options };
    for (const [name, value] of Object.entries(options)) {
      if (!Number.isSafeInteger(value) || value <= 0) {
        throw new E2ekvError('INVALID_ARGUMENT', `replication option ${name} must be a positive whole number`);
      }
    }
    const specs = new Map<string, PeerSpec>();
    for (const text of o.peers) {
      const spec = parsePeerSpec(text);
      const known = specs.get(spec.url);
      if (known?.key !== undefined && spec.key !== undefined && toHex(known.key) !== toHex(spec.key)) {
        throw new E2ekvError('INVALID_ARGUMENT', `peer ${spec.url} is given twice with different keys`);
      }
      specs.set(spec.url, { ...known, ...spec });
    }
    const pins = await PeerPins.load(o.dataDir);
    const abort = new AbortController();
    const now = o.now ?? Date.now;
    const signer = await ed25519Signer(o.serverKey.seed);
    const links = [...specs.values()].map(
      (spec) =>
        new PeerLink(
          {
            storage: o.storage,
            acceptor: o.acceptor,
            membership: o.membership,
            events: o.events,
            metrics: o.metrics,
            logger: o.logger,
            limits: o.limits,
            options,
            signer,
            pins,
            signal: abort.signal,
            now,
          },
          spec,
        ),
    );
    const verifier = new PeerRequestVerifier({
      audience: o.serverKey.publicKey,
      windowMs: o.limits.requestWindowMs,
      now,
    });
    o.metrics.peers.set(links.length);
    return new Replicator(links, verifier, abort, options, o.serverKey.publicKey, now);
  }

  start(): void {
    for (const link of this.#links) link.start();
  }

  /** Stops every round and push, and waits for those in flight to end (before storage closes). */
  async stop(): Promise<void> {
    this.#abort.abort();
    await Promise.all(this.#links.map((link) => link.stop()));
  }

  /**
   * The link of the configured peer that signed `request` (peer-auth.ts);
   * UNAUTHENTICATED or PERMISSION_DENIED otherwise.
   */
  async authenticate(request: PeerRequestToVerify): Promise<PeerLink> {
    const link = await this.#verifier.verify(request, async (senderHex) => {
      const found = this.#links.find((l) => l.keyHex === senderHex && l.state !== 'key-mismatch');
      if (found === undefined && this.#now() - this.#lastKeyRefresh > KEY_REFRESH_MS) {
        // Perhaps a peer whose key this replica has not learned yet: ask them now, for its next try.
        this.#lastKeyRefresh = this.#now();
        for (const l of this.#links) if (l.keyHex === undefined) l.poke();
      }
      return found;
    });
    link.heardFrom();
    return link;
  }

  /** A device's append was accepted here: push it (the request body as received) to every peer. */
  accepted(vaultId: string, device: string, entries: number, body: Uint8Array): void {
    for (const link of this.#links) link.offer(vaultId, device, entries, body);
  }

  status(): ReplicationStatus {
    return {
      replica: toHex(this.#publicKey),
      options: { ...this.#options },
      peers: this.#links.map((link) => link.status()),
    };
  }
}
