/**
 * A vault as one device sees it: its own log, the verified logs of the other
 * devices, and the state they add up to. Writes land in the own log first and
 * reach replicas by push; reads come from verified, decrypted entries, applied
 * in causal order (an entry waits until everything it depends on is here).
 */
import {
  E2ekvError,
  LIMITS,
  MAX_NOTE_SIGNATURES,
  MerkleTree,
  NOTE_SIG_ED25519,
  bytesEqual,
  cosignerKeyId,
  decodeEntry,
  encodeEntry,
  formatCosignerVkey,
  formatNote,
  formatVerifierKey,
  fromHex,
  fromUtf8,
  leafHash,
  logOrigin,
  noteKeyId,
  parseCosignerVkey,
  parseNote,
  parseIdentityString,
  formatIdentityString,
  identityFingerprint,
  createInvitation,
  sealEpochRecord,
  openEpochRecord,
  deriveEpochCheck,
  randomBytes,
  sha256,
  toBase64,
  toHex,
  utf8,
  verifyDeviceCheckpoint,
  signDeviceCheckpoint,
  type Cosigner,
  type Ed25519Signer,
  type MembershipChange,
  type NoteSigner,
  type Role,
} from '@e2ekv/protocol';
import { HybridLogicalClock } from './clock.js';
import {
  MissingEpochKeyError,
  openDataEntry,
  sealDataEntry,
  type OpenedEntry,
  type Value,
  type Write,
} from './entries.js';
import { EpochKeyRing } from './keyring.js';
import { EquivocationError, RollbackError, pullBlob, pullLog, type LogPin } from './log-sync.js';
import { MembershipView, pastOf, type ViewChange } from './membership.js';
import type { PublicIdentity } from './identity.js';
import { MultiValueRegister, type VersionedWrite } from './resolve.js';
import type { LocalStore } from './local/adapter.js';
import type { ReplicaTransport } from './transport.js';

/** Retries of a push to an unreachable replica before leaving it to the next sync. */
const PUSH_RETRIES = 2;

/** The local replica failed a check: it was damaged or altered on disk. */
function damaged(what: string, cause?: unknown): E2ekvError {
  return new E2ekvError(
    'INTEGRITY',
    `the local replica is damaged: ${what}. Delete this vault's local data and sync again from the replicas.`,
    cause === undefined ? {} : { cause },
  );
}

export type AckLevel = 'local' | 'one' | 'quorum' | 'all';

/** What `set` accepts: bytes, or anything JSON can represent. */
export type Settable =
  Uint8Array | string | number | boolean | null | readonly unknown[] | { readonly [key: string]: unknown };

/**
 * Where a read looks (DESIGN section 8): 'local' answers from what this device
 * already verified; 'one' first pulls from one replica that answers; 'quorum'
 * from a majority of the vault's replicas. Every pulled byte is verified either
 * way, so a higher level buys freshness, not trust.
 */
export type ReadLevel = 'local' | 'one' | 'quorum';

export interface ReadOptions {
  /** Default 'local'. */
  read?: ReadLevel;
}

export interface WriteOptions {
  /** How many replicas must have the write on disk before the promise resolves (default 'one'). */
  ack?: AckLevel;
}

export interface Sibling {
  value: unknown;
  /** How the value was written: 'automerge' values are saved Automerge documents (see 'e2ekv/automerge'). */
  kind: 'bytes' | 'json' | 'automerge' | 'tombstone';
  device: string;
  index: number;
  deleted: boolean;
}

/** One write of a batch. `automerge` holds a saved Automerge document; 'e2ekv/automerge' writes these. */
export type BatchOperation =
  | { name: string; value: Settable }
  | { name: string; delete: true }
  | {
      name: string;
      automerge: Uint8Array;
      /**
       * The versions (device, index) of the key this document merged. The
       * write is refused with CONFLICT, writing nothing, unless they are still
       * exactly the key's siblings when the write takes its place: otherwise it
       * would supersede a version it never merged.
       */
      supersedes?: readonly { device: string; index: number }[];
    };

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
  waiting: Map<number, QueuedEntry>;
  /** Entries in the local store (may exceed `entries` after a crash, see restore). */
  stored: number;
  /** Stored entries past the pin, not yet proven again by a replica. */
  unpinned: Uint8Array[];
  /**
   * Verified entries sealed in an epoch whose secret this device does not hold
   * yet (the record that gives it may come later in the same sync), by index,
   * with the replica to fetch their blobs from. The log applies up to the first.
   */
  parked: Map<number, { bytes: Uint8Array; replica: ReplicaTransport | undefined }>;
}

/**
 * An entry opened and waiting for causal delivery. Membership entries and
 * epoch records carry their change; an epoch record for this device carries
 * the secret it unwrapped.
 */
type QueuedEntry = OpenedEntry & { change?: ViewChange; epochSecret?: Uint8Array };

interface OpenedWithBlobs {
  opened: QueuedEntry;
  /** The blobs the entry references, in order. */
  blobs: Uint8Array[];
}

/** An entry whose writes were ignored: its writer was not a writer or admin in the entry's causal past. */
export interface RejectedEntry {
  device: string;
  index: number;
  /** 'removed': the writer was removed and this entry is past the cut (rule "removal wins"). */
  reason: 'not-a-writer' | 'removed';
  /** The writer's role in that past, or undefined when it was not a member. */
  role: Role | undefined;
}

/** One key changed by an applied entry; `conflict` when it now has concurrent siblings. */
export interface VaultChange {
  key: string;
  device: string;
  conflict: boolean;
}

/** What this device holds of a vault, from memory: no request is made. */
export interface VaultStatus {
  logs: { device: string; entries: number; verified: number; applied: number }[];
  /** Own-log size each replica acknowledged, by URL. */
  acked: Record<string, number>;
  /** Own entries no replica has acknowledged yet. */
  unpushed: number;
  evidence: number;
  keys: number;
  /** Entries whose writes were ignored (their writer could not write then, or was removed). */
  rejected: RejectedEntry[];
  /**
   * Verified entries this device cannot open: sealed in a key epoch it holds
   * no secret for (started after it was removed, or wrapped without it). Their
   * logs are applied up to the first of them.
   */
  unreadable: number;
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

/** A checkpoint this device verified, as a signed note anyone can check again. */
export interface VaultCheckpoint {
  size: number;
  /** The root hash, base64 as in the note. */
  root: string;
  /**
   * The C2SP signed note: the device's signature and the cosignatures of the
   * replicas it was verified with (any other signature line is dropped).
   */
  note: string;
}

/** What an audit of this device's view of the vault needs (e2ekv vault info). Local: no request. */
export interface VaultAuditInfo {
  logs: {
    device: string;
    /** The C2SP verifier key (type 0x01) of the device's checkpoints, named by the log origin (SPEC.md 11). */
    vkey: string;
    entries: number;
    /** Entries verified: all of this device's own log; of another log, up to its pin. */
    verified: number;
    /** The root hash of the first `verified` entries, base64. */
    root: string;
    /** The latest checkpoint verified with a replica's cosignature; undefined before one was. */
    checkpoint: VaultCheckpoint | undefined;
  }[];
  /**
   * The replicas this vault is opened with, then any other that acknowledged
   * this device's writes or that this Vault reached since it was opened, each
   * with the cosigner key (type 0x04 vkey) it presented last; undefined when
   * none was recorded.
   */
  replicas: { url: string; vkey: string | undefined }[];
  evidence: VaultEvidence[];
}

/** What the store holds of the cosigners one replica URL presented: the last one, and how many records. */
interface CosignerRecord {
  vkey: string | undefined;
  records: number;
}

/** What a device needs to open a vault: its id, the secret of epoch 0, and any later epoch secrets it was given. */
export interface VaultSecrets {
  vaultId: string;
  secret: Uint8Array;
  epochs?: readonly { epoch: number; secret: Uint8Array }[];
}

/** A current member of the vault, as this device's own replay of the membership entries says. */
export interface VaultMember {
  /** Ed25519 public key, lowercase hex. */
  device: string;
  role: Role;
  /** The identity string (SPEC.md 21.1) of the keys the member was added with. */
  identity: string;
  /** The fingerprint to compare out of band. */
  fingerprint: string;
  /** Whether the member is this device. */
  self: boolean;
}

export interface VaultOptions {
  vaultId: Uint8Array;
  /** The genesis creator's Ed25519 key: the first admin, where membership replay starts. */
  creator: Uint8Array;
  /** The genesis creator's X25519 key, to wrap epoch secrets for it. */
  creatorBoxKey: Uint8Array;
  /** The secrets this device was given (its keystore's copy). */
  access: VaultSecrets;
  /** This device's keys: the box secret unwraps the epoch secrets wrapped for it. */
  me: { signingKey: Uint8Array; boxKey: Uint8Array; boxSecret: Uint8Array };
  /** Signs invitations. */
  signer: Ed25519Signer;
  device: Uint8Array;
  checkpointSigner: NoteSigner;
  replicas: readonly ReplicaTransport[];
  /**
   * How many replicas must have proved (cosigned) a checkpoint of another
   * device's log before its entries are applied; default 1. See
   * ClientOptions.cosignerQuorum.
   */
  cosignerQuorum?: number;
  clock?: HybridLogicalClock;
  /** Where the local replica is kept between runs; without one, state lives in memory only. */
  store?: LocalStore;
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
  #keys: EpochKeyRing;
  readonly #access: VaultSecrets;
  readonly #me: VaultOptions['me'];
  readonly #signer: Ed25519Signer;
  readonly #creator: string;
  readonly #creatorBoxKey: Uint8Array;
  /** The check(e) values of the epoch records seen, to check the secrets an invitation gave. */
  readonly #epochChecks = new Map<number, Uint8Array[]>();
  /** A removal voided entries already applied: the state is rebuilt at the next safe point. */
  #needsRebuild = false;
  #rebuilding = false;
  /** During a rebuild: the rejected entries (device/index) already reported before it. */
  #reportedBeforeRebuild: Set<string> | undefined;
  /** By replica URL and device: the largest checkpoint size the replica proved (see #provedBy). */
  readonly #proved = new Map<string, Map<string, number>>();
  readonly #device: Uint8Array;
  readonly #deviceHex: string;
  readonly #checkpointSigner: NoteSigner;
  readonly #replicas: readonly ReplicaTransport[];
  readonly #cosignerQuorum: number;
  /** By device: a pin size the local store shows enough replicas cosigned (see restore). */
  readonly #restoredProof = new Map<string, number>();
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
  /** Pulls waiting for their turn, by `needed/enough`: callers until it starts share it. */
  readonly #queuedPulls = new Map<string, Promise<void>>();
  /** Signature lines #keptNote keeps, by signer set. */
  readonly #keptLinesCache = new Map<string, ReadonlySet<string>>();
  /** Cosigner vkeys by cosigner object (objects a transport hands out; never changed). */
  readonly #vkeys = new WeakMap<Cosigner, string>();
  #syncing: Promise<void> | undefined;
  #syncAgain = false;
  #writing: Promise<unknown> = Promise.resolve();
  #pulling: Promise<unknown> = Promise.resolve();
  readonly #pushing = new Map<string, Promise<unknown>>();
  readonly #store: LocalStore | undefined;
  #membership: MembershipView;
  #rejected: RejectedEntry[] = [];
  /** The own log's latest checkpoint, with the cosignatures replicas returned for it (vault info). */
  #ownCheckpoint: LogPin | undefined;
  /** By replica URL, loaded from the store when first needed. */
  readonly #cosigners = new Map<string, Promise<CosignerRecord>>();

  constructor(options: VaultOptions) {
    this.#creator = toHex(options.creator);
    this.#creatorBoxKey = options.creatorBoxKey;
    this.#membership = new MembershipView(this.#creator, this.#creatorBoxKey);
    this.#vaultId = options.vaultId;
    this.id = toHex(options.vaultId);
    this.#access = options.access;
    this.#me = options.me;
    this.#signer = options.signer;
    this.#keys = new EpochKeyRing(options.vaultId, options.access.secret, options.access.epochs);
    this.#device = options.device;
    this.#deviceHex = toHex(options.device);
    this.#checkpointSigner = options.checkpointSigner;
    this.#replicas = options.replicas;
    this.#cosignerQuorum = options.cosignerQuorum ?? 1;
    if (!Number.isInteger(this.#cosignerQuorum) || this.#cosignerQuorum < 1) {
      throw new E2ekvError('INVALID_ARGUMENT', `cosignerQuorum is a whole number of replicas, at least 1`);
    }
    if (this.#cosignerQuorum > this.#replicas.length) {
      throw new E2ekvError(
        'INVALID_ARGUMENT',
        `cosignerQuorum ${this.#cosignerQuorum} needs at least that many replicas; this client has ${this.#replicas.length}`,
      );
    }
    this.#clock = options.clock ?? new HybridLogicalClock();
    this.#store = options.store;
    this.#log(this.#deviceHex);
  }

  /**
   * Loads the local replica from the store and checks it: every pin must be a
   * checkpoint signed by its device whose root the stored entries rebuild.
   * Called once, before first use.
   */
  async restore(): Promise<void> {
    const stored = await this.#store?.loadVault(this.id);
    if (stored === undefined) return;
    for (const storedLog of stored.logs) {
      const log = this.#log(storedLog.device);
      const own = storedLog.device === this.#deviceHex;
      // Entries past the pin were verified before a crash cut the pin's write:
      // they wait until a replica's checkpoint covers them again.
      const trusted = own ? storedLog.entries.length : (storedLog.pin?.size ?? 0);
      log.stored = storedLog.entries.length;
      log.unpinned = storedLog.entries.slice(trusted);
      for (const bytes of storedLog.entries.slice(0, trusted)) {
        log.entries.push(bytes);
        log.tree.append(leafHash(bytes));
      }
      if (storedLog.pin !== undefined && !own) {
        const pin = storedLog.pin;
        const verified = await verifyDeviceCheckpoint(pin.note, this.#vaultId, log.device).catch((cause: unknown) => {
          throw damaged(`the pin of device ${storedLog.device} does not verify`, cause);
        });
        if (
          verified.checkpoint.size !== BigInt(pin.size) ||
          !bytesEqual(verified.checkpoint.root, pin.root) ||
          !bytesEqual(log.tree.root(pin.size), pin.root)
        ) {
          throw damaged(`the stored entries of device ${storedLog.device} do not rebuild its pinned checkpoint`);
        }
        log.pin = pin;
        // The pin's note keeps the cosignatures verified when it was kept: with enough of them, the quorum held.
        const cosignatures = parseNote(pin.note).signatures.length - 1;
        if (cosignatures >= this.#cosignerQuorum) this.#restoredProof.set(storedLog.device, pin.size);
      }
      if (storedLog.pin !== undefined && own) this.#ownCheckpoint = await this.#checkOwnCheckpoint(storedLog.pin, log);
      for (const [index, bytes] of log.entries.entries()) await this.#queue(log, index, bytes, undefined);
    }
    for (const [replica, size] of Object.entries(stored.acked)) this.#acked.set(replica, size);
    this.#evidence.push(...stored.evidence);
    await this.#unpark();
    this.#applyReady();
    await this.#rebuildIfNeeded();
  }

  /**
   * Opens one verified entry and queues it for causal delivery; one sealed in
   * an epoch this device holds no secret for is parked until it does.
   */
  async #queue(log: LogState, index: number, bytes: Uint8Array, replica: ReplicaTransport | undefined): Promise<void> {
    let result: OpenedWithBlobs;
    try {
      result = await this.#openEntry(index, bytes, replica);
    } catch (error) {
      if (!(error instanceof MissingEpochKeyError)) throw error;
      log.parked.set(index, { bytes, replica });
      return;
    }
    const { opened, blobs } = result;
    if (blobs.length > 0 && opened.device === this.#deviceHex) this.#blobs.set(index, blobs);
    this.#clock.observe(opened.clock);
    log.waiting.set(index, opened);
  }

  /** Opens parked entries whose epoch secret arrived since; the others stay parked. */
  async #unpark(): Promise<void> {
    for (let progress = true; progress;) {
      progress = false;
      for (const log of this.#logs.values()) {
        for (const [index, { bytes, replica }] of [...log.parked].sort(([a], [b]) => a - b)) {
          log.parked.delete(index);
          await this.#queue(log, index, bytes, replica);
          if (!log.parked.has(index)) progress = true;
        }
      }
    }
  }

  /** Decrypts and checks one verified entry, fetching (and storing) the blobs it references. */
  async #openEntry(index: number, bytes: Uint8Array, replica: ReplicaTransport | undefined): Promise<OpenedWithBlobs> {
    const entry = decodeEntry(bytes);
    if (entry.type === 'data') {
      const blobs: Uint8Array[] = [];
      const opened = await openDataEntry(entry, this.#keys, async (hash, length) => {
        const blob = await this.#blob(replica, hash, length);
        blobs.push(blob);
        return blob;
      });
      return { opened, blobs };
    }
    // Membership entries and epoch records carry no values, but take their
    // place in causal order: the membership replay judges them there.
    const opened: QueuedEntry = {
      device: toHex(entry.device),
      index,
      epoch: entry.epoch,
      clock: entry.clock,
      context: new Map(entry.context.map((c) => [toHex(c.device), Number(c.size)])),
      items: [],
      change: entry.type === 'membership' ? entry.change : { op: 'epoch', epoch: entry.epoch },
    };
    if (entry.type === 'epoch') {
      const checks = this.#epochChecks.get(entry.epoch) ?? [];
      checks.push(entry.check);
      this.#epochChecks.set(entry.epoch, checks);
      // Unwrapped now, before the record is judged: entries sealed with it may
      // arrive before it applies, and a secret only ever decrypts. Only a record
      // that counts makes it a key to write with (#apply).
      try {
        const secret = openEpochRecord(entry, this.#me);
        if (secret !== undefined) {
          this.#keys.add(entry.epoch, secret);
          opened.epochSecret = secret;
        }
      } catch (error) {
        // A record whose wrap fails for this device gives it nothing; the admin who wrote it can always withhold.
        this.#onWatchError(
          new E2ekvError(
            'INTEGRITY',
            `the epoch record at entry ${index} of device ${opened.device} (epoch ${entry.epoch}) holds a secret for this device that does not open or does not match its check: ${(error as Error).message}`,
            { cause: error },
          ),
        );
      }
    }
    return { opened, blobs: [] };
  }

  /** A blob from the local replica, or else from `replica`, checked against its hash and length. */
  async #blob(replica: ReplicaTransport | undefined, hash: Uint8Array, length: number): Promise<Uint8Array> {
    const hex = toHex(hash);
    const local = await this.#store?.getBlob(this.id, hex);
    if (local !== undefined) {
      if (local.length !== length || !bytesEqual(sha256(local), hash)) throw damaged(`blob ${hex} is altered`);
      return local;
    }
    if (replica === undefined) {
      // Without a store, the own log's blobs live in memory only (a replay of the own log needs them).
      for (const blobs of this.#blobs.values()) {
        const own = blobs.find((b) => b.length === length && bytesEqual(sha256(b), hash));
        if (own !== undefined) return own;
      }
      throw damaged(`blob ${hex} is missing`);
    }
    const blob = await pullBlob(replica, this.id, { hash, length });
    await this.#store?.putBlob(this.id, hex, blob);
    return blob;
  }

  /** Appends to the own log: durable in the local replica first, then in memory. */
  async #appendOwn(bytes: Uint8Array, blobs: readonly Uint8Array[]): Promise<number> {
    const own = this.#log(this.#deviceHex);
    const index = own.entries.length;
    if (this.#store !== undefined) {
      for (const blob of blobs) await this.#store.putBlob(this.id, toHex(sha256(blob)), blob);
      await this.#store.appendEntries(this.id, this.#deviceHex, index, [bytes]);
      own.stored = index + 1;
    }
    own.entries.push(bytes);
    own.tree.append(leafHash(bytes));
    if (blobs.length > 0) this.#blobs.set(index, [...blobs]);
    return index;
  }

  /** What this device holds: logs, acknowledgements, evidence. Local; makes no request. */
  status(): VaultStatus {
    const ownSize = this.#log(this.#deviceHex).entries.length;
    const acked = Object.fromEntries([...this.#acked].sort(([a], [b]) => (a < b ? -1 : 1)));
    return {
      logs: [...this.#logs.entries()]
        .filter(([, log]) => log.entries.length > 0)
        .map(([device, log]) => ({
          device,
          entries: log.entries.length,
          verified: device === this.#deviceHex ? log.entries.length : (log.pin?.size ?? 0),
          applied: log.applied,
        })),
      acked,
      unpushed: ownSize - Math.max(0, ...this.#acked.values()),
      evidence: this.#evidence.length,
      rejected: [...this.#rejected],
      unreadable: [...this.#logs.values()].reduce((n, log) => n + log.parked.size, 0),
      keys: [...this.#registers.values()].filter((r) => {
        const winner = r.winner();
        return winner !== undefined && winner.value.value.kind !== 'tombstone';
      }).length,
    };
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
  async batch(operations: readonly BatchOperation[], options: WriteOptions = {}): Promise<void> {
    const writes: Write[] = operations.map((op) => {
      if ('delete' in op) return { name: op.name, value: { kind: 'tombstone' } };
      if ('automerge' in op) {
        if (!(op.automerge instanceof Uint8Array)) {
          throw new E2ekvError('INVALID_ARGUMENT', `the Automerge document for ${op.name} is not bytes`);
        }
        return { name: op.name, value: { kind: 'automerge', document: op.automerge.slice() } };
      }
      return { name: op.name, value: toValue(op.value) };
    });
    const preconditions = operations.flatMap((op) =>
      'automerge' in op && op.supersedes !== undefined ? [{ name: op.name, supersedes: op.supersedes }] : [],
    );
    // One writer at a time per device: entries take consecutive indices.
    const done = this.#writing.then(() => {
      // Checked when this write's turn comes, right before its causal context is taken.
      for (const { name, supersedes } of preconditions) this.#checkSupersedes(name, supersedes);
      return this.#writeLocal(writes);
    });
    this.#writing = done.catch(() => undefined);
    await done;
    await this.#push(options.ack ?? 'one');
  }

  /**
   * Adds a device to the vault with a role (this device must be an admin).
   * The device still needs the vault's secrets: `invite` adds it and returns
   * the token that carries them.
   */
  async addMember(
    member: { signingKey: Uint8Array; boxKey: Uint8Array },
    role: Role,
    options: WriteOptions = {},
  ): Promise<void> {
    await this.#writeMembership(() => {
      this.#checkCanChangeMembership();
      const device = toHex(member.signingKey);
      if (this.#membership.cutOf(device) !== undefined) {
        throw new E2ekvError(
          'CONFLICT',
          `device ${device} was removed from this vault, and a removal is for good: that device must enrol a new key (a new identity) to be invited again`,
        );
      }
      return [{ op: 'add', member: member.signingKey, boxKey: member.boxKey, role }];
    });
    await this.#push(options.ack ?? 'one');
  }

  /**
   * Invites a device: adds it with `role` (this device must be an admin) and
   * returns an invitation token (SPEC.md 21.4) that carries every epoch secret
   * this device holds, wrapped for the invitee's X25519 key. The invitee joins
   * with `client.joinVault(token)` once the add has reached a replica, which
   * the default acknowledgement ('one') waits for.
   */
  async invite(
    identity: string | PublicIdentity,
    role: Role = 'writer',
    options: WriteOptions & { servers?: readonly string[] } = {},
  ): Promise<string> {
    const invitee = typeof identity === 'string' ? parseIdentityString(identity.trim()) : identity;
    if (!['reader', 'writer', 'admin'].includes(role)) {
      throw new E2ekvError('INVALID_ARGUMENT', `unknown role ${String(role)}: use reader, writer or admin`);
    }
    if (bytesEqual(invitee.signingKey, this.#device)) {
      throw new E2ekvError('INVALID_ARGUMENT', 'a device cannot invite itself');
    }
    const current = this.#currentMembers().find((m) => m.device === toHex(invitee.signingKey));
    if (current === undefined || current.role !== role || !bytesEqual(current.boxKey, invitee.boxKey)) {
      await this.addMember(invitee, role, options);
    } else {
      await this.#push(options.ack ?? 'one'); // already a member with that role: the token alone is new
    }
    return createInvitation({
      vaultId: this.#vaultId,
      inviter: this.#signer,
      invitee,
      role,
      secrets: this.#keys.secrets(),
      servers: options.servers ?? this.#replicas.map((r) => r.url),
    });
  }

  /**
   * Removes a member for good and starts a new key epoch whose secret is
   * wrapped for the remaining members (SPEC.md 21.5): nothing written after
   * this is readable by the removed device, and every member ignores what it
   * writes from its cut on. `member` is a device id (hex), an identity string,
   * or a public identity. This device must be an admin, and cannot remove itself.
   */
  async removeMember(member: string | PublicIdentity, options: WriteOptions = {}): Promise<void> {
    const device = this.#deviceOf(member);
    if (device === this.#deviceHex) {
      throw new E2ekvError(
        'INVALID_ARGUMENT',
        'a device cannot remove itself: ask another admin to remove it (or remove it from another of your devices)',
      );
    }
    await this.#writeMembership(() => {
      this.#checkCanChangeMembership();
      if (!this.#currentMembers().some((m) => m.device === device)) {
        throw new E2ekvError(
          'NOT_FOUND',
          `device ${device} is not a member of this vault as far as this device has synced: check \`members\` (sync first)`,
        );
      }
      return [{ op: 'remove', member: fromHex(device) }, 'new-epoch'];
    });
    await this.#rebuildIfNeeded();
    await this.#push(options.ack ?? 'one');
  }

  /**
   * Changes the role of a current member (this device must be an admin).
   * Lowering a member to reader stops its writes, but it keeps reading: to
   * take reading away, remove it.
   */
  async setRole(member: string | PublicIdentity, role: Role, options: WriteOptions = {}): Promise<void> {
    const device = this.#deviceOf(member);
    if (!['reader', 'writer', 'admin'].includes(role)) {
      throw new E2ekvError('INVALID_ARGUMENT', `unknown role ${String(role)}: use reader, writer or admin`);
    }
    await this.#writeMembership(() => {
      this.#checkCanChangeMembership();
      if (!this.#currentMembers().some((m) => m.device === device)) {
        throw new E2ekvError(
          'NOT_FOUND',
          `device ${device} is not a member of this vault as far as this device has synced`,
        );
      }
      return [{ op: 'set-role', member: fromHex(device), role }];
    });
    await this.#push(options.ack ?? 'one');
  }

  /** A device id from a device id (hex), an identity string or a public identity. */
  #deviceOf(member: string | PublicIdentity): string {
    if (typeof member !== 'string') return toHex(member.signingKey);
    return /^[0-9a-f]{64}$/.test(member) ? member : toHex(parseIdentityString(member.trim()).signingKey);
  }

  /** The current members, by this device's own replay of the vault's membership entries (never a replica's word). */
  members(): VaultMember[] {
    return this.#currentMembers().map((m) => {
      const keys = { signingKey: fromHex(m.device), boxKey: m.boxKey };
      return {
        device: m.device,
        role: m.role,
        identity: formatIdentityString(keys),
        fingerprint: identityFingerprint(keys),
        self: m.device === this.#deviceHex,
      };
    });
  }

  /** This device's role in the vault now (undefined: not a member as far as it has synced). */
  get role(): Role | undefined {
    return this.#currentMembers().find((m) => m.device === this.#deviceHex)?.role;
  }

  /** The epoch this device writes in. */
  get epoch(): number {
    return this.#keys.writing().epoch;
  }

  /**
   * Every secret this device holds for the vault (one per epoch): what a
   * keystore or a backup keeps so the vault opens again. Secret.
   */
  access(): VaultSecrets {
    const secrets = this.#keys.secrets();
    return {
      vaultId: this.id,
      secret: secrets.find((s) => s.epoch === 0)!.secret,
      epochs: secrets.filter((s) => s.epoch > 0),
    };
  }

  /**
   * Checks the epoch secrets the access gave (an invitation's) against the
   * epoch records' public checks: a secret that no record of its epoch
   * commits to was not the one the vault uses.
   */
  checkAccessSecrets(): void {
    for (const { epoch, secret } of this.#access.epochs ?? []) {
      const checks = this.#epochChecks.get(epoch);
      if (checks === undefined) continue; // no record of that epoch seen yet
      const expected = deriveEpochCheck(secret, this.#vaultId, epoch);
      if (!checks.some((c) => bytesEqual(c, expected))) {
        throw new E2ekvError(
          'INTEGRITY',
          `the secret given for epoch ${epoch} matches no epoch record of this vault: the invitation is wrong or was altered. Ask for a new one`,
        );
      }
    }
  }

  #currentMembers() {
    const past = new Map([...this.#logs].map(([device, log]) => [device, log.applied]));
    return this.#membership.membersAt(past);
  }

  #checkCanChangeMembership(): void {
    const own = this.#log(this.#deviceHex);
    const past = pastOf(
      this.#deviceHex,
      own.entries.length,
      new Map(this.#context().map((c) => [toHex(c.device), Number(c.size)])),
    );
    const role = this.#membership.roleAt(this.#deviceHex, past);
    if (role !== 'admin') {
      throw new E2ekvError(
        'PERMISSION_DENIED',
        `this device is ${role === undefined ? 'not a member' : `a ${role}`} of this vault as far as it has synced: only an admin may change membership`,
      );
    }
  }

  /**
   * Appends membership entries (and, for 'new-epoch', an epoch record wrapped
   * for the members that remain) to the own log, one after the other, each
   * applied before the next is written so that the next one's context and
   * member list include it.
   */
  async #writeMembership(plan: () => (MembershipChange | 'new-epoch')[]): Promise<void> {
    const done = this.#writing.then(async () => {
      const steps = plan();
      // Checked before anything is appended: a removal without its new epoch would leave the removed device reading.
      if (steps.includes('new-epoch') && this.#keys.highestStartedEpoch() >= 0xffffffff) {
        throw new E2ekvError(
          'TOO_LARGE',
          'this vault has used every key epoch number: move its data to a new vault to remove a member',
        );
      }
      for (const step of steps) {
        const own = this.#log(this.#deviceHex);
        const index = own.entries.length;
        const clock = this.#clock.tick();
        const context = this.#context();
        let bytes: Uint8Array;
        if (step === 'new-epoch') {
          const epoch = this.#keys.highestStartedEpoch() + 1;
          const secret = randomBytes(32);
          const recipients = this.#currentMembers().map((m) => ({ signingKey: fromHex(m.device), boxKey: m.boxKey }));
          bytes = encodeEntry(
            sealEpochRecord({
              vaultId: this.#vaultId,
              device: this.#device,
              index: BigInt(index),
              epoch,
              clock,
              context,
              secret,
              recipients,
            }),
          );
          secret.fill(0);
        } else {
          bytes = encodeEntry({
            type: 'membership',
            vaultId: this.#vaultId,
            device: this.#device,
            index: BigInt(index),
            epoch: this.#keys.writing().epoch,
            clock,
            context,
            change: step,
          });
        }
        await this.#appendOwn(bytes, []);
        await this.#queue(own, index, bytes, undefined);
        this.#applyReady();
      }
    });
    this.#writing = done.catch(() => undefined);
    await done;
  }

  /**
   * Rebuilds the applied state from the verified entries when a removal voided
   * entries already applied (rule "removal wins"): registers, membership and
   * keys are replayed from scratch, with every removal known from the start.
   * Waits for the write in progress, so no entry is appended meanwhile.
   */
  async #rebuildIfNeeded(): Promise<void> {
    if (!this.#needsRebuild) return;
    const done = this.#writing.then(async () => {
      if (!this.#needsRebuild) return;
      this.#needsRebuild = false;
      this.#rebuilding = true;
      // A replay is not news: listeners hear only of keys whose versions it
      // changed, and onError only of rejections not reported before.
      const before = this.#keyVersions();
      this.#reportedBeforeRebuild = new Set(this.#rejected.map((r) => `${r.device}/${r.index}`));
      try {
        const previous = this.#membership;
        this.#membership = new MembershipView(this.#creator, this.#creatorBoxKey, previous);
        this.#keys = new EpochKeyRing(this.#vaultId, this.#access.secret, this.#access.epochs);
        this.#registers.clear();
        this.#rejected = [];
        this.#epochChecks.clear();
        for (const log of this.#logs.values()) {
          log.applied = 0;
          log.waiting.clear();
          log.parked.clear();
        }
        for (const [device, log] of this.#logs) {
          // Without a local store, other devices' blobs are fetched again.
          const replica = device === this.#deviceHex || this.#store !== undefined ? undefined : this.#replicas[0];
          for (const [index, bytes] of log.entries.entries()) await this.#queue(log, index, bytes, replica);
        }
        await this.#unpark();
        this.#applyReady();
      } finally {
        this.#rebuilding = false;
        this.#reportedBeforeRebuild = undefined;
      }
      const after = this.#keyVersions();
      for (const [blindedKey, was] of before) {
        const now = after.get(blindedKey);
        if (now?.versions === was.versions) continue;
        // The device whose write the key now shows, or (nothing left) one whose write was voided.
        this.#emitChange({ key: was.name, device: now?.device ?? was.device, conflict: (now?.count ?? 0) > 1 });
      }
      for (const [blindedKey, now] of after) {
        if (!before.has(blindedKey)) this.#emitChange({ key: now.name, device: now.device, conflict: now.count > 1 });
      }
    });
    this.#writing = done.catch(() => undefined);
    await done;
  }

  /** Each key's versions (its siblings' device/index), name, winning device and sibling count, by blinded key. */
  #keyVersions(): Map<string, { name: string; versions: string; device: string; count: number }> {
    const versions = new Map<string, { name: string; versions: string; device: string; count: number }>();
    for (const [blindedKey, register] of this.#registers) {
      const siblings = register.siblings();
      const winner = siblings[0];
      if (winner === undefined) continue;
      versions.set(blindedKey, {
        name: winner.value.name,
        versions: siblings
          .map((w) => `${w.device}/${w.index}`)
          .sort()
          .join(' '),
        device: winner.device,
        count: siblings.length,
      });
    }
    return versions;
  }

  #emitChange(change: VaultChange): void {
    for (const listener of this.#listeners) listener(change);
  }

  /** Reports a rejected entry to onError listeners, unless a rebuild is replaying one reported already. */
  #reportRejection(device: string, index: number, error: E2ekvError): void {
    if (this.#reportedBeforeRebuild?.has(`${device}/${index}`) === true) return;
    this.#onWatchError(error);
  }

  #checkSupersedes(name: string, supersedes: readonly { device: string; index: number }[]): void {
    const id = (v: { device: string; index: number }) => `${v.device}/${v.index}`;
    const current = (this.#register(name)?.siblings() ?? []).map(id).sort();
    const expected = supersedes.map(id).sort();
    if (current.join() !== expected.join()) {
      throw new E2ekvError(
        'CONFLICT',
        `key "${name}" changed since its document was read (another version arrived): read it again and redo the change`,
        { details: { key: name, precondition: true } },
      );
    }
  }

  /** Refuses, before anything is written, a write that every other device would ignore. */
  #checkCanWrite(index: number, context: { device: Uint8Array; size: bigint }[]): void {
    const past = new Map(context.map((c) => [toHex(c.device), Number(c.size)]));
    const role = this.#membership.writerRole(this.#deviceHex, index, past);
    if (role !== 'writer' && role !== 'admin') {
      throw new E2ekvError(
        'PERMISSION_DENIED',
        `this device is ${role === undefined ? 'not a member' : `a ${role}`} of this vault as far as it has synced, so it cannot write: ask an admin to make it a writer, then sync`,
      );
    }
  }

  /** What this device has applied of every other device's log: the causal context of its next entry. */
  #context(): { device: Uint8Array; size: bigint }[] {
    return [...this.#logs.entries()]
      .filter(([hex, log]) => hex !== this.#deviceHex && log.applied > 0)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([, log]) => ({ device: log.device, size: BigInt(log.applied) }));
  }

  async #writeLocal(writes: readonly Write[]): Promise<void> {
    const own = this.#log(this.#deviceHex);
    const context = this.#context();
    const index = own.entries.length;
    this.#checkCanWrite(index, context);
    const sealed = sealDataEntry({
      keys: this.#keys,
      device: this.#device,
      index,
      clock: this.#clock.tick(),
      context,
      writes,
    });
    await this.#appendOwn(sealed.bytes, sealed.blobs);
    own.waiting.set(index, sealed.opened);
    this.#applyReady();
  }

  /** Pushes the own log's unacknowledged entries; resolves when `ack` replicas have them. */
  /**
   * Pushes the own log's unacknowledged entries to every replica; resolves as
   * soon as `ack` of them have it (the others carry on in the background, and
   * an integrity failure among them is reported to onError listeners).
   */
  async #push(ack: AckLevel): Promise<void> {
    if (ack === 'local') return;
    const total = this.#replicas.length;
    const needed = ack === 'one' ? 1 : ack === 'all' ? total : Math.floor(total / 2) + 1;
    const failures: unknown[] = [];
    let acknowledged = 0;
    let settled = false;
    await new Promise<void>((resolve, reject) => {
      const fail = () => {
        const integrity = failures.find((e) => e instanceof E2ekvError && e.category === 'integrity');
        if (integrity !== undefined) return reject(integrity);
        // A refusal that is not about reachability (too large, not a writer) is the answer: sync() must not hide it.
        const refusal = failures.find((e) => !(e instanceof E2ekvError && e.code === 'UNAVAILABLE'));
        if (refusal !== undefined) return reject(refusal);
        const reasons = failures.map((e) => (e instanceof Error ? e.message : String(e)));
        reject(
          new E2ekvError(
            'UNAVAILABLE',
            `the write is saved on this device but only ${acknowledged} of ${total} replicas acknowledged it (${ack} needs ${needed}): ${reasons.join('; ')}. It will be sent again by sync().`,
          ),
        );
      };
      for (const replica of this.#replicas) {
        this.#pushSerially(replica).then(
          () => {
            acknowledged++;
            if (!settled && acknowledged >= needed) {
              settled = true;
              resolve();
            }
          },
          (error: unknown) => {
            failures.push(error);
            if (settled) {
              if (error instanceof E2ekvError && error.category === 'integrity') this.#onWatchError(error);
              return;
            }
            if (total - failures.length < needed) {
              settled = true;
              fail();
            }
          },
        );
      }
    });
  }

  /**
   * One push at a time per replica: two at once would both start at the last
   * acknowledged size and the second would be refused. The later one then
   * finds the earlier one's acknowledgement and sends only what is left.
   */
  #pushSerially(replica: ReplicaTransport): Promise<void> {
    const previous = this.#pushing.get(replica.url) ?? Promise.resolve();
    const done = previous.then(() => this.#pushWithRetries(replica));
    this.#pushing.set(
      replica.url,
      done.catch(() => undefined),
    );
    return done;
  }

  /**
   * Retries a push that found the replica unreachable (exponential backoff with
   * jitter, a few times: sync() sends the rest later), and one that the replica
   * refused as not starting where its copy ends (an earlier append landed but
   * its answer was lost): that one starts again from the replica's own count.
   */
  async #pushWithRetries(replica: ReplicaTransport): Promise<void> {
    let resyncs = 0;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#pushTo(replica);
      } catch (error) {
        // The replica's copy moved meanwhile (an earlier answer was lost, or a
        // peer replica delivered these very entries): start again from its count.
        if (error instanceof E2ekvError && error.code === 'CONFLICT' && resyncs < 3) {
          resyncs++;
          this.#acked.delete(replica.url);
          continue;
        }
        const transient = error instanceof E2ekvError && error.code === 'UNAVAILABLE';
        if (!transient || attempt >= PUSH_RETRIES) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100 * 3 ** attempt * (0.5 + Math.random())));
      }
    }
  }

  async #pushTo(replica: ReplicaTransport): Promise<void> {
    const own = this.#log(this.#deviceHex);
    const size = own.entries.length;
    let acked = this.#acked.get(replica.url);
    if (acked === undefined) {
      const state = await replica.vaultState(this.id);
      const remote = state.logs.find((l) => l.device === this.#deviceHex);
      acked = remote?.size ?? 0;
      if (acked > size) {
        throw new E2ekvError(
          'INTEGRITY',
          `replica ${replica.url} claims ${acked} entries of this device's log, which has ${size}`,
        );
      }
      // What it holds already (through a peer, say) counts only if it is this log's prefix.
      if (remote !== undefined && acked > 0 && !bytesEqual(remote.root, own.tree.root(acked))) {
        throw new E2ekvError(
          'INTEGRITY',
          `replica ${replica.url} holds a version of this device's log that this installation never wrote`,
        );
      }
      if (acked > 0) this.#acked.set(replica.url, Math.max(this.#acked.get(replica.url) ?? 0, acked));
    }
    let start: number = acked;
    if (start >= size) return;
    const info = await replica.info();
    await this.#rememberCosigner(replica.url, info.cosigner);
    // Chunks within what the replica announced; base64 in JSON grows bytes by a third.
    const maxEntries = Math.max(1, Math.min(info.limits.maxBatchEntries, 1024));
    const maxBytes = Math.max(
      LIMITS.maxEntryBytes,
      Math.floor(((info.limits['maxBodyBytes'] ?? 16 * 2 ** 20) * 3) / 4) - 2 ** 16,
    );
    while (start < size) {
      let end = start;
      let bytes = 0;
      const blobs: Uint8Array[] = [];
      while (end < size && end - start < maxEntries) {
        const entryBlobs = this.#blobs.get(end) ?? [];
        const more = own.entries[end]!.length + entryBlobs.reduce((n, b) => n + b.length, 0);
        if (end > start && bytes + more > maxBytes) break;
        bytes += more;
        blobs.push(...entryBlobs);
        end++;
      }
      await this.#appendChunk(replica, info.cosigner, start, end, blobs);
      start = end;
    }
  }

  async #appendChunk(
    replica: ReplicaTransport,
    cosigner: Cosigner,
    start: number,
    end: number,
    blobs: Uint8Array[],
  ): Promise<void> {
    const own = this.#log(this.#deviceHex);
    const root = own.tree.root(end);
    const checkpoint = await signDeviceCheckpoint(this.#checkpointSigner, { size: BigInt(end), root });
    const cosigned = await replica.append(this.id, {
      start,
      entries: own.entries.slice(start, end),
      blobs,
      checkpoint,
      consistencyProof: start > 0 ? own.tree.consistencyProof(start, end) : [],
    });
    const verified = await verifyDeviceCheckpoint(cosigned, this.#vaultId, this.#device, [cosigner]);
    if (verified.checkpoint.size !== BigInt(end) || verified.cosignatures.length === 0) {
      throw new E2ekvError(
        'INTEGRITY',
        `replica ${replica.url} acknowledged the append with a checkpoint it did not cosign`,
      );
    }
    this.#acked.set(replica.url, Math.max(this.#acked.get(replica.url) ?? 0, end));
    await this.#store?.setAcked(this.id, replica.url, end);
    await this.#keepOwnCheckpoint(end, root, this.#keptNote(cosigned, this.#device, [cosigner]));
  }

  /** Pulls and verifies every log from every replica, then pushes this device's entries. */
  async sync(): Promise<void> {
    await this.#pullFromReplicas(Math.min(1, this.#replicas.length), this.#replicas.length);
    await this.#push('one').catch((error: unknown) => {
      if (error instanceof E2ekvError && error.code === 'UNAVAILABLE') return;
      throw error;
    });
  }

  /**
   * Pulls from replicas in order until `enough` have answered; fewer than
   * `needed` answering is UNAVAILABLE. An unreachable replica is tolerated
   * while others answer; anything else (integrity, permission, unknown vault)
   * is the answer. One pull at a time: two would both extend the same trees.
   */
  #pullFromReplicas(needed: number, enough: number): Promise<void> {
    // With a cosigner quorum, a pull reaches at least that many replicas: fewer cannot prove anything new.
    needed = Math.max(needed, Math.min(this.#cosignerQuorum, this.#replicas.length));
    enough = Math.max(enough, needed);
    // Concurrent callers share a pull that has not started yet (it waits for the
    // running one): its requests go out after every one of them was called, so
    // each sees all that was acknowledged before it asked. A running pull is
    // never shared: it may have asked before the caller did.
    const key = `${needed}/${enough}`;
    const queued = this.#queuedPulls.get(key);
    if (queued !== undefined) return queued;
    const done: Promise<void> = this.#pulling.then(() => {
      if (this.#queuedPulls.get(key) === done) this.#queuedPulls.delete(key);
      return this.#pullSerially(needed, enough);
    });
    this.#queuedPulls.set(key, done);
    this.#pulling = done.catch(() => undefined);
    return done;
  }

  async #pullSerially(needed: number, enough: number): Promise<void> {
    const errors: E2ekvError[] = [];
    let reached = 0;
    for (const replica of await this.#pullOrder()) {
      // Enough replicas answered, unless an entry depends on more than they
      // served: replicas fill at different paces (a writer's pushes, peers),
      // so an honest replica may lack a dependency another one holds.
      if (reached >= enough && this.#missingDependency() === undefined) break;
      try {
        await this.#pullFrom(replica);
        reached++;
      } catch (error) {
        if (!(error instanceof E2ekvError) || error.code !== 'UNAVAILABLE') throw error;
        errors.push(error);
      }
    }
    await this.#rebuildIfNeeded();
    if (reached < needed) {
      throw new E2ekvError(
        'UNAVAILABLE',
        `${reached} of ${this.#replicas.length} replicas answered, ${needed} needed: ${errors.map((e) => e.message).join('; ')}`,
      );
    }
    // Withholding is proven only when every replica answered and none served
    // the dependency; while one is unreachable, the entry waits for it.
    const missing = this.#missingDependency();
    if (missing !== undefined && errors.length === 0) {
      throw new E2ekvError(
        'WITHHELD',
        `entry ${missing.index} of device ${missing.device} depends on ${missing.needed} entries of device ${missing.on}, but the replicas served only ${missing.served}: a replica is withholding them`,
        { details: { device: missing.on, needed: missing.needed, served: missing.served } },
      );
    }
  }

  /**
   * The order to pull from replicas in: as configured, except that a device
   * that holds none of its own log (a restored identity) adopts it from the
   * replica that serves the most of it. A replica that served a shortened copy
   * would have this device write again at indices it already used: a fork of
   * its own log, signed by itself.
   */
  async #pullOrder(): Promise<readonly ReplicaTransport[]> {
    if (this.#log(this.#deviceHex).entries.length > 0 || this.#replicas.length < 2) return this.#replicas;
    const sizes = await Promise.all(
      this.#replicas.map(async (replica) => {
        try {
          const state = await replica.vaultState(this.id);
          return state.logs.find((l) => l.device === this.#deviceHex)?.size ?? 0;
        } catch {
          return -1; // the pull itself reports what is wrong with this replica
        }
      }),
    );
    return this.#replicas
      .map((replica, i) => ({ replica, size: sizes[i]! }))
      .sort((a, b) => b.size - a.size)
      .map((r) => r.replica);
  }

  /** Brings the vault up to date as a read level asks, before a read. */
  async #refresh(read: ReadLevel = 'local'): Promise<void> {
    if (read === 'local') return;
    const n = this.#replicas.length;
    if (read === 'one') await this.#pullFromReplicas(1, 1);
    else if (read === 'quorum') await this.#pullFromReplicas(Math.floor(n / 2) + 1, Math.floor(n / 2) + 1);
    else throw new E2ekvError('INVALID_ARGUMENT', `unknown read level ${String(read)}: use local, one or quorum`);
  }

  async #pullFrom(replica: ReplicaTransport): Promise<void> {
    const info = await replica.info();
    await this.#rememberCosigner(replica.url, info.cosigner);
    const state = await replica.vaultState(this.id);
    for (const remote of state.logs) {
      const log = this.#log(remote.device);
      const own = remote.device === this.#deviceHex;
      if (own && log.entries.length === 0 && remote.size > 0) {
        // This identity wrote before, but this installation holds none of it (a
        // restored identity, or local data deleted): adopt the log, which must
        // verify under this device's own key like any other. Falls through.
      } else if (own) {
        if (remote.size > log.entries.length) {
          throw new E2ekvError(
            'CONFLICT',
            `replica ${replica.url} holds ${remote.size} entries of this device's log, this installation only ${log.entries.length}: the same identity is writing from another installation. Use one identity per installation; to recover, delete this vault's local data and sync again`,
          );
        }
        // Our own log: the replica's copy must be a prefix of it.
        if (!bytesEqual(remote.root, log.tree.root(remote.size))) {
          throw new E2ekvError(
            'INTEGRITY',
            `replica ${replica.url} holds a version of this device's log that this installation never wrote: either the replica forged it or the same identity writes from another installation`,
          );
        }
        this.#acked.set(replica.url, Math.max(this.#acked.get(replica.url) ?? 0, remote.size));
        continue;
      }
      let pulled;
      try {
        if (remote.size <= log.entries.length) {
          // Nothing new, by the replica's unsigned claim. A claim below what this
          // replica proved before, or of another root at a size held here, is
          // judged on its signed checkpoint; a consistent claim below what
          // another replica proved is a replica that lags, not one that lies.
          const previous = this.#provedBy(replica.url, remote.device, log);
          if (
            remote.size < previous ||
            (remote.size <= log.tree.size && !bytesEqual(remote.root, log.tree.root(remote.size)))
          ) {
            await this.#judgeCheckpoint(replica, info.cosigner, remote.device, log, previous);
          } else if (this.#cosignerQuorum > 1 && remote.size > previous && !own) {
            await this.#collectProof(replica, info.cosigner, remote.device, log);
          }
          continue;
        }
        pulled = await pullLog(replica, {
          vaultId: this.#vaultId,
          device: log.device,
          pin: log.pin,
          tree: log.tree,
          cosigner: info.cosigner,
        });
      } catch (error) {
        const evidence = (error as { evidence?: { first: string; second: string } }).evidence;
        if (evidence !== undefined) {
          const record = { replica: replica.url, device: remote.device, ...evidence };
          // The same contradiction met again (another sync, another verify) is kept once.
          // Compared by the signed bodies: a replica may cosign the same checkpoint anew each time.
          const body = (note: string) => parseNote(note).text;
          const known = this.#evidence.some(
            (e) =>
              e.device === record.device &&
              body(e.first) === body(record.first) &&
              body(e.second) === body(record.second),
          );
          if (!known) {
            this.#evidence.push(record);
            await this.#store?.addEvidence(this.id, record);
          }
        }
        throw error;
      }
      const start = log.entries.length;
      // Open every entry (fetching its blobs) before anything is kept: an entry
      // whose blob a replica withholds or altered must not reach the local
      // replica, which would then refuse to load.
      // An entry sealed in an epoch whose secret has not arrived yet is parked;
      // its blobs are still fetched and checked now, for the same reason.
      let opened: (OpenedWithBlobs | { parked: Uint8Array })[];
      try {
        opened = [];
        for (const [i, bytes] of pulled.entries.entries()) {
          try {
            opened.push(await this.#openEntry(start + i, bytes, replica));
          } catch (error) {
            if (!(error instanceof MissingEpochKeyError)) throw error;
            const entry = decodeEntry(bytes);
            if (entry.type === 'data') {
              for (const item of entry.items) {
                if (item.value.kind === 'blob') await this.#blob(replica, item.value.hash, item.value.length);
              }
            }
            opened.push({ parked: bytes });
          }
        }
      } catch (error) {
        // pullLog appended the new leaves to log.tree: take them back.
        log.tree = new MerkleTree(log.entries.map((bytes) => leafHash(bytes)));
        throw error;
      }
      await this.#persistPulled(log, remote.device, start, pulled.entries);
      log.entries.push(...pulled.entries);
      // The pin keeps the replica's cosignature beside the device's: the note then
      // shows who vouched for the checkpoint (restore verifies the device's alone).
      const pin = { ...pulled.pin, note: this.#keptNote(pulled.cosignedNote, log.device, [info.cosigner]) };
      log.pin = pin;
      this.#recordProved(replica.url, remote.device, pin.size);
      if (own) this.#ownCheckpoint = pin;
      await this.#store?.setPin(this.id, remote.device, pin);
      for (const [i, result] of opened.entries()) {
        if ('parked' in result) {
          log.parked.set(start + i, { bytes: result.parked, replica });
          continue;
        }
        const { opened: entry, blobs } = result;
        if (blobs.length > 0 && own) this.#blobs.set(start + i, blobs);
        this.#clock.observe(entry.clock);
        log.waiting.set(start + i, entry);
      }
    }
    await this.#unpark();
    this.#applyReady();
  }

  /**
   * A replica's vault state (unsigned) contradicted what this device verified
   * of a log: its signed checkpoint decides. Smaller than the pin is ROLLBACK,
   * the same size with another root EQUIVOCATION, both with the two signed
   * notes as evidence; a checkpoint that agrees with this device means only the
   * unsigned claim lied (INTEGRITY).
   */
  async #judgeCheckpoint(
    replica: ReplicaTransport,
    cosigner: Cosigner,
    device: string,
    log: LogState,
    previous: number,
  ): Promise<void> {
    const note = await replica.checkpoint(this.id, device);
    const verified = await verifyDeviceCheckpoint(note, this.#vaultId, log.device, [cosigner]);
    if (verified.cosignatures.length === 0) {
      throw new E2ekvError('UNKNOWN_KEY', `replica ${replica.url} did not cosign the checkpoint of device ${device}`);
    }
    const size = Number(verified.checkpoint.size);
    const pin = log.pin;
    if (pin !== undefined && size < previous) {
      throw new RollbackError(
        `replica ${replica.url} presented a checkpoint of device ${device} of size ${size}, smaller than the ${previous} it proved before: it lost or hides entries. Use another replica`,
        { first: pin.note, second: note },
      );
    }
    if (pin !== undefined && size <= log.tree.size && !bytesEqual(verified.checkpoint.root, log.tree.root(size))) {
      throw new EquivocationError(
        `replica ${replica.url} presented a checkpoint of device ${device} (size ${size}) that is not consistent with the pinned one (size ${pin.size}): the device forked its log. Keep the evidence and stop trusting that device`,
        { first: pin.note, second: note },
      );
    }
    throw new E2ekvError(
      'INTEGRITY',
      `replica ${replica.url} claims a state of device ${device}'s log that its own signed checkpoint (size ${size}) contradicts: the replica is faulty or lying. Use another replica`,
    );
  }

  /**
   * The largest size of `device`'s log that `url` proved to this device (by a
   * checkpoint it cosigned): below that, the replica rolled back. With a single
   * replica every pin came from it, so the pin is that size even after a
   * restart; with several, sizes are remembered for this session only, and a
   * replica below another's proof is taken to lag.
   */
  #provedBy(url: string, device: string, log: LogState): number {
    if (this.#replicas.length === 1) return log.pin?.size ?? 0;
    return this.#proved.get(url)?.get(device) ?? 0;
  }

  /**
   * How much of `device`'s log enough replicas proved to apply it: with a
   * cosigner quorum of k, the k-th largest size the replicas proved this
   * session (the own log, and k = 1, are not held back).
   */
  #provedByQuorum(device: string): number {
    if (this.#cosignerQuorum <= 1 || device === this.#deviceHex) return Infinity;
    const sizes = this.#replicas.map((r) => this.#proved.get(r.url)?.get(device) ?? 0).sort((a, b) => b - a);
    return Math.max(sizes[this.#cosignerQuorum - 1] ?? 0, this.#restoredProof.get(device) ?? 0);
  }

  /**
   * A replica that holds no more of a log than this device verified elsewhere
   * still proves what it holds by its cosigned checkpoint, which must be of a
   * prefix of the verified log. Kept in the pin's note (its cosignatures
   * accumulate) and counted toward the cosigner quorum.
   */
  async #collectProof(replica: ReplicaTransport, cosigner: Cosigner, device: string, log: LogState): Promise<void> {
    const note = await replica.checkpoint(this.id, device);
    const verified = await verifyDeviceCheckpoint(note, this.#vaultId, log.device, [cosigner]);
    if (verified.cosignatures.length === 0) {
      throw new E2ekvError('UNKNOWN_KEY', `replica ${replica.url} did not cosign the checkpoint of device ${device}`);
    }
    const size = Number(verified.checkpoint.size);
    if (size > log.tree.size || !bytesEqual(verified.checkpoint.root, log.tree.root(size))) {
      // Not a prefix of what this device verified: the judgement of a contradiction applies.
      return this.#judgeCheckpoint(replica, cosigner, device, log, this.#provedBy(replica.url, device, log));
    }
    this.#recordProved(replica.url, device, size);
    const pin = log.pin;
    if (pin !== undefined && pin.size === size) {
      const merged = mergeNotes(pin.note, this.#keptNote(note, log.device, [cosigner]));
      if (merged !== pin.note) {
        log.pin = { ...pin, note: merged };
        await this.#store?.setPin(this.id, device, log.pin);
      }
    }
  }

  #recordProved(url: string, device: string, size: number): void {
    let sizes = this.#proved.get(url);
    if (sizes === undefined) this.#proved.set(url, (sizes = new Map()));
    sizes.set(device, Math.max(sizes.get(device) ?? 0, size));
  }

  /**
   * Saves newly verified entries of another device's log. Entries the store
   * already holds past the pin (a crash came between saving entries and pin)
   * must be the same bytes the replica proved now.
   */
  async #persistPulled(log: LogState, device: string, start: number, entries: readonly Uint8Array[]): Promise<void> {
    if (this.#store === undefined) return;
    const already = Math.min(log.unpinned.length, entries.length);
    for (let i = 0; i < already; i++) {
      if (!bytesEqual(log.unpinned[i]!, entries[i]!)) {
        throw damaged(`the stored entry ${start + i} of device ${device} differs from the one the replica proved`);
      }
    }
    log.unpinned = log.unpinned.slice(already);
    const fresh = entries.slice(already);
    if (fresh.length > 0) await this.#store.appendEntries(this.id, device, start + already, fresh);
    log.stored = Math.max(log.stored, start + entries.length);
  }

  /** Applies waiting entries whose causal past is fully applied, until nothing moves. */
  #applyReady(): void {
    let progress = true;
    while (progress) {
      progress = false;
      for (const [device, log] of this.#logs) {
        const visible = this.#provedByQuorum(device);
        for (;;) {
          const next = log.waiting.get(log.applied);
          if (next === undefined || log.applied >= visible || !this.#dependenciesMet(next)) break;
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

  /** The first waiting entry that depends on more of a log than this device holds, if any. */
  #missingDependency(): { device: string; index: number; on: string; needed: number; served: number } | undefined {
    for (const [hex, log] of this.#logs) {
      const next = log.waiting.get(log.applied);
      if (next === undefined) continue;
      for (const [device, size] of next.context) {
        const have = this.#logs.get(device)?.entries.length ?? 0;
        if (have < size) return { device: hex, index: next.index, on: device, needed: size, served: have };
      }
    }
    return undefined;
  }

  #apply(entry: QueuedEntry): void {
    if (entry.change !== undefined) {
      const change = entry.change;
      if (!this.#membership.record({ ...entry, change })) return;
      if (change.op === 'remove') {
        // Removal wins: entries of the removed device past the cut that were
        // already applied (and whatever they made possible, which causal order
        // applied after them) must not count any more. The state is rebuilt.
        const member = toHex(change.member);
        const cut = this.#membership.cutOf(member) ?? Infinity;
        const removed = this.#logs.get(member);
        if (removed !== undefined && removed.applied > cut && !this.#rebuilding) this.#needsRebuild = true;
      } else if (change.op === 'epoch' && entry.epochSecret !== undefined) {
        // Only a record that counts makes its secret one to write with, number new epochs from, or hand on.
        this.#keys.addCounted(change.epoch, entry.epochSecret, [
          entry.clock.wallMs,
          entry.clock.counter,
          entry.device,
          entry.index,
        ]);
      }
      return;
    }
    const role = this.#membership.writerRole(entry.device, entry.index, entry.context);
    const voided = this.#membership.isVoid(entry.device, entry.index);
    if (voided) {
      this.#rejected.push({ device: entry.device, index: entry.index, reason: 'removed', role: undefined });
      this.#reportRejection(
        entry.device,
        entry.index,
        new E2ekvError(
          'PERMISSION_DENIED',
          `entry ${entry.index} of device ${entry.device} was written after that device was removed from this vault (or concurrently with its removal): its writes are ignored`,
          { details: { device: entry.device, index: entry.index } },
        ),
      );
      return;
    }
    if (role !== 'writer' && role !== 'admin') {
      // Verified and in its causal place, but not believed: the replica that
      // accepted it disagrees with the membership this device replayed.
      this.#rejected.push({ device: entry.device, index: entry.index, reason: 'not-a-writer', role });
      this.#reportRejection(
        entry.device,
        entry.index,
        new E2ekvError(
          'PERMISSION_DENIED',
          `entry ${entry.index} of device ${entry.device} was written when that device was ${role === undefined ? 'not a member' : `a ${role}`} of this vault: its writes are ignored. A replica accepted it; run verify and check the vault's membership`,
          { details: { device: entry.device, index: entry.index } },
        ),
      );
      return;
    }
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
      // A rebuild reports what it changed once it is done (#rebuildIfNeeded).
      if (!this.#rebuilding) {
        this.#emitChange({ key: item.name, device: entry.device, conflict: register.siblings().length > 1 });
      }
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
    // An unreachable replica is reported once per outage, not at every retry.
    let down = false;
    // A closed transport (Client.close) ends the watch on it.
    while (!signal.aborted && !replica.closed) {
      try {
        await replica.events(
          this.id,
          (event) => {
            if (event.device === this.#deviceHex) return;
            if ((this.#logs.get(event.device)?.entries.length ?? 0) >= event.size) return;
            this.#scheduleSync();
          },
          signal,
          // Writes made before the stream opened (or while it was down) announce nothing now.
          () => {
            down = false;
            delay = 250;
            this.#scheduleSync();
          },
        );
      } catch (error) {
        if (signal.aborted || replica.closed) return;
        const unavailable = error instanceof E2ekvError && error.code === 'UNAVAILABLE';
        if (!unavailable || !down) this.#onWatchError(error);
        down = unavailable;
      }
      await new Promise((resolve) => setTimeout(resolve, delay * (0.5 + Math.random())));
      delay = Math.min(delay * 2, 30_000);
    }
  }

  /**
   * One sync at a time; a request during it asks for one more, since the
   * running sync may have read the vault's state before the news.
   */
  #scheduleSync(): void {
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
        const previous = this.#provedBy(replica.url, remote.device, log);
        if (remote.size < previous && remote.device !== this.#deviceHex) {
          throw new E2ekvError(
            'ROLLBACK',
            `replica ${replica.url} serves ${remote.size} entries of device ${remote.device}, fewer than the ${previous} it proved before`,
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

  /**
   * What this device verified of every log, as signed notes anyone can check
   * again with the listed keys, the replicas' cosigner keys as last presented,
   * and the evidence kept. Local: makes no request.
   */
  async auditInfo(): Promise<VaultAuditInfo> {
    const urls = new Set([...this.#replicas.map((r) => r.url), ...this.#acked.keys(), ...this.#cosigners.keys()]);
    const replicas: VaultAuditInfo['replicas'] = [];
    for (const url of urls) replicas.push({ url, vkey: (await this.#cosignerRecord(url)).vkey });
    const logs = [...this.#logs.entries()]
      .filter(([, log]) => log.entries.length > 0)
      .map(([device, log]) => {
        const own = device === this.#deviceHex;
        const verified = own ? log.entries.length : (log.pin?.size ?? 0);
        const checkpoint = own ? this.#ownCheckpoint : log.pin;
        return {
          device,
          vkey: formatVerifierKey(logOrigin(this.#vaultId, log.device), NOTE_SIG_ED25519, log.device),
          entries: log.entries.length,
          verified,
          root: toBase64(log.tree.root(verified)),
          checkpoint:
            checkpoint === undefined
              ? undefined
              : { size: checkpoint.size, root: toBase64(checkpoint.root), note: checkpoint.note },
        };
      });
    return { logs, replicas, evidence: this.#evidence.map((e) => ({ ...e })) };
  }

  /** A stored checkpoint of the own log must be signed by this device and cover entries it holds. */
  async #checkOwnCheckpoint(pin: LogPin, log: LogState): Promise<LogPin> {
    const verified = await verifyDeviceCheckpoint(pin.note, this.#vaultId, log.device).catch((cause: unknown) => {
      throw damaged(`the stored checkpoint of this device's log does not verify`, cause);
    });
    if (
      pin.size > log.entries.length ||
      verified.checkpoint.size !== BigInt(pin.size) ||
      !bytesEqual(verified.checkpoint.root, pin.root) ||
      !bytesEqual(log.tree.root(pin.size), pin.root)
    ) {
      throw damaged(`the stored checkpoint of this device's log is not one of its entries`);
    }
    return pin;
  }

  /**
   * Keeps a cosigned checkpoint of the own log if it is the largest yet; one of
   * the same size gains the cosignatures it lacks (each replica cosigns the
   * same device-signed text).
   */
  async #keepOwnCheckpoint(size: number, root: Uint8Array, note: string): Promise<void> {
    const current = this.#ownCheckpoint;
    if (current !== undefined && current.size > size) return;
    const kept = current?.size === size ? mergeNotes(current.note, note) : note;
    if (kept === current?.note) return;
    this.#ownCheckpoint = { size, root, note: kept };
    // The store keeps it as the own log's pin, which restore checks but never trusts entries by.
    await this.#store?.setPin(this.id, this.#deviceHex, this.#ownCheckpoint);
  }

  /** The note with only the lines of the device and of `cosigners`: the signatures that were verified. */
  #keptNote(note: string, device: Uint8Array, cosigners: readonly Cosigner[]): string {
    const keep = this.#keptLines(device, cosigners);
    const parsed = parseNote(note);
    return formatNote({
      text: parsed.text,
      signatures: parsed.signatures.filter((s) => keep.has(`${s.name} ${s.keyId}`)),
    });
  }

  /** "name keyId" of the signature lines #keptNote keeps (key IDs are hashes: computed once per signer set). */
  #keptLines(device: Uint8Array, cosigners: readonly Cosigner[]): ReadonlySet<string> {
    const cacheKey = [toHex(device), ...cosigners.map((c) => `${c.name} ${toHex(c.publicKey)}`)].join('\n');
    let keep = this.#keptLinesCache.get(cacheKey);
    if (keep === undefined) {
      const origin = logOrigin(this.#vaultId, device);
      keep = new Set([
        `${origin} ${noteKeyId(origin, NOTE_SIG_ED25519, device)}`,
        ...cosigners.map((c) => `${c.name} ${cosignerKeyId(c.name, c.publicKey)}`),
      ]);
      if (this.#keptLinesCache.size >= 1024) this.#keptLinesCache.clear();
      this.#keptLinesCache.set(cacheKey, keep);
    }
    return keep;
  }

  #cosignerRecord(url: string): Promise<CosignerRecord> {
    let record = this.#cosigners.get(url);
    if (record === undefined) {
      record = this.#loadCosigner(url);
      this.#cosigners.set(url, record);
    }
    return record;
  }

  async #loadCosigner(url: string): Promise<CosignerRecord> {
    const record: CosignerRecord = { vkey: undefined, records: 0 };
    for (;;) {
      const bytes = await this.#store?.getBlob(this.id, cosignerRecordName(url, record.records));
      if (bytes === undefined) return record;
      record.records++;
      try {
        const vkey = fromUtf8(bytes);
        parseCosignerVkey(vkey);
        record.vkey = vkey;
      } catch {
        // A damaged record only makes vault info show the key as unknown; nothing trusts it.
      }
    }
  }

  /**
   * Records the cosigner a replica presented, for vault info to show offline.
   * The local store has no field for it, and its blobs never change, so each
   * new key is one more blob under a name derived from the URL and a counter:
   * the last one is the key last seen, the others its history.
   */
  async #rememberCosigner(url: string, cosigner: Cosigner): Promise<void> {
    // A transport's info (and so its cosigner object) is fetched once: format its vkey once.
    let vkey = this.#vkeys.get(cosigner);
    if (vkey === undefined) {
      vkey = formatCosignerVkey(cosigner.name, cosigner.publicKey);
      this.#vkeys.set(cosigner, vkey);
    }
    const record = await this.#cosignerRecord(url);
    if (record.vkey === vkey) return;
    const previous = { ...record };
    record.vkey = vkey;
    const index = record.records++;
    try {
      await this.#store?.putBlob(this.id, cosignerRecordName(url, index), utf8(vkey));
    } catch (error) {
      // A gap in the counter would hide every later record from the next load.
      if (record.records === index + 1) Object.assign(record, previous);
      throw error;
    }
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
        stored: 0,
        unpinned: [],
        parked: new Map(),
      };
      this.#logs.set(deviceHex, log);
    }
    return log;
  }

  #register(name: string): MultiValueRegister<ItemState> | undefined {
    return this.#registers.get(toHex(this.#keys.blinder.blind(name)));
  }

  /** The current value of a key, or undefined if it was never set or was deleted. */
  async get(name: string, options: ReadOptions = {}): Promise<unknown> {
    await this.#refresh(options.read);
    const winner = this.#register(name)?.winner();
    return winner === undefined ? undefined : fromValue(winner.value.value);
  }

  /** Every concurrent value of a key, the winner first. */
  async getAll(name: string, options: ReadOptions = {}): Promise<Sibling[]> {
    await this.#refresh(options.read);
    return (this.#register(name)?.siblings() ?? []).map((s) => ({
      value: fromValue(s.value.value),
      kind: s.value.value.kind,
      device: s.device,
      index: s.index,
      deleted: s.value.value.kind === 'tombstone',
    }));
  }

  /** Keys that currently have a value, sorted, optionally by prefix. */
  async list(options: { prefix?: string } & ReadOptions = {}): Promise<string[]> {
    await this.#refresh(options.read);
    const names: string[] = [];
    for (const register of this.#registers.values()) {
      const winner = register.winner();
      if (winner === undefined || winner.value.value.kind === 'tombstone') continue;
      if (options.prefix === undefined || winner.value.name.startsWith(options.prefix)) names.push(winner.value.name);
    }
    return names.sort();
  }
}

/** The blob name of the index-th cosigner record of a replica URL (see Vault#rememberCosigner). */
function cosignerRecordName(url: string, index: number): string {
  return toHex(sha256(utf8(`e2ekv replica cosigner\n${url}\n${index}`)));
}

/** `a` with the signature lines of `b` it lacks, when both sign the same text; else `a`. */
function mergeNotes(a: string, b: string): string {
  const first = parseNote(a);
  const second = parseNote(b);
  if (first.text !== second.text) return a;
  const key = (s: { name: string; keyId: number }) => `${s.name} ${s.keyId}`;
  const have = new Set(first.signatures.map(key));
  const signatures = [...first.signatures, ...second.signatures.filter((s) => !have.has(key(s)))];
  return signatures.length > MAX_NOTE_SIGNATURES ? a : formatNote({ text: first.text, signatures });
}
