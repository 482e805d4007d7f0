// An honest device for server tests: it keeps its own log and Merkle tree per
// vault, writes data and membership entries the way the SDK will, signs its
// checkpoints and builds append requests with consistency proofs. Values are
// random bytes sealed under a random per-vault secret: the server never sees keys.
import { generateKeyPairSync } from 'node:crypto';
import {
  EnvelopePurpose,
  MerkleTree,
  NO_BLINDED_KEY,
  ValueKind,
  compareBytes,
  deriveValueKey,
  deviceCheckpointSigner,
  ed25519Signer,
  encodeEntry,
  encodeEntryMeta,
  encodeItemPayload,
  fromHex,
  leafHash,
  randomBytes,
  sealEnvelope,
  sha256,
  signDeviceCheckpoint,
  signGenesis,
  signRequest,
  toHex,
  vaultIdOf,
} from '@e2ekv/protocol';
import type {
  AppendRequest,
  Ed25519Signer,
  EntryItem,
  HybridClock,
  MembershipChange,
  NoteSigner,
  Role,
} from '@e2ekv/protocol';

export interface AppendOptions {
  /** Data entries to write (default 1). */
  values?: number;
  /** Keys written by each data entry (default 1). */
  itemsPerEntry?: number;
  /** Store the first item of each data entry as a blob holding this many value bytes. */
  blobBytes?: number;
}

interface LocalLog {
  vaultId: Uint8Array;
  checkpointSigner: NoteSigner;
  valueKey: Uint8Array;
  tree: MerkleTree;
  entries: Uint8Array[];
  /** Blobs referenced by each entry, by index. */
  blobs: Map<number, Uint8Array[]>;
  /** How many entries the server is believed to hold. */
  pushed: number;
  clock: HybridClock;
}

export class TestDevice {
  readonly seed: Uint8Array;
  readonly signer: Ed25519Signer;
  /** X25519 public key, as membership and genesis carry it. */
  readonly boxKey: Uint8Array;
  readonly #logs = new Map<string, LocalLog>();

  private constructor(seed: Uint8Array, signer: Ed25519Signer) {
    this.seed = seed;
    this.signer = signer;
    // A real X25519 key, though nothing here unwraps with it yet.
    const jwk = generateKeyPairSync('x25519').publicKey.export({ format: 'jwk' });
    this.boxKey = new Uint8Array(Buffer.from(jwk.x!, 'base64url'));
  }

  static async create(seed: Uint8Array = randomBytes(32)): Promise<TestDevice> {
    return new TestDevice(seed, await ed25519Signer(seed));
  }

  get publicKey(): Uint8Array {
    return this.signer.publicKey;
  }

  /** The device key in lowercase hex (its log's name). */
  get hex(): string {
    return toHex(this.signer.publicKey);
  }

  /** A new vault with this device as creator (admin). */
  async genesis(): Promise<{ signedGenesis: Uint8Array; vaultId: string }> {
    const signedGenesis = await signGenesis(
      { createdAtMs: BigInt(Date.now()), nonce: randomBytes(16), creator: this.publicKey, creatorBoxKey: this.boxKey },
      this.signer,
    );
    return { signedGenesis, vaultId: toHex(vaultIdOf(signedGenesis.subarray(0, signedGenesis.length - 64))) };
  }

  /** The change that adds this device to a vault with `role`. */
  addChange(role: Role): MembershipChange {
    return { op: 'add', member: this.publicKey, boxKey: this.boxKey, role };
  }

  /** Writes `values` data entries locally and returns the append of everything not yet pushed. */
  async nextAppend(vaultId: string, options: AppendOptions = {}): Promise<AppendRequest> {
    const log = await this.#log(vaultId);
    const values = options.values ?? 1;
    for (let n = 0; n < values; n++) this.#writeData(log, options);
    return this.#appendRequest(log);
  }

  /** Writes one membership entry locally and returns the append of everything not yet pushed. */
  async membershipAppend(vaultId: string, change: MembershipChange): Promise<AppendRequest> {
    const log = await this.#log(vaultId);
    this.#add(
      log,
      encodeEntry({
        type: 'membership',
        vaultId: log.vaultId,
        device: this.publicKey,
        index: BigInt(log.entries.length),
        epoch: 0,
        clock: this.#tick(log),
        context: [],
        change,
      }),
      [],
    );
    return this.#appendRequest(log);
  }

  /**
   * Writes entry bytes of the test's making at the next index (they may lie
   * about their place: the device signs whatever its log holds), with the
   * blobs to send along, and returns the append of everything not yet pushed.
   */
  async writeRaw(
    vaultId: string,
    make: (at: { vaultId: Uint8Array; device: Uint8Array; index: bigint }) => Uint8Array,
    blobs: Uint8Array[] = [],
  ): Promise<AppendRequest> {
    const log = await this.#log(vaultId);
    this.#add(log, make({ vaultId: log.vaultId, device: this.publicKey, index: BigInt(log.entries.length) }), blobs);
    return this.#appendRequest(log);
  }

  /** The append of entries [from, size) of the local log, as if the server held `from` of them. */
  async appendFrom(vaultId: string, from: number): Promise<AppendRequest> {
    const log = await this.#log(vaultId);
    log.pushed = from;
    return this.#appendRequest(log);
  }

  /** Local log size. */
  size(vaultId: string): number {
    return this.#logs.get(vaultId)?.entries.length ?? 0;
  }

  /** Entry bytes of the local log. */
  entries(vaultId: string): readonly Uint8Array[] {
    return this.#logs.get(vaultId)?.entries ?? [];
  }

  /** The local Merkle tree (read it, do not append to it). */
  tree(vaultId: string): MerkleTree {
    return this.#logs.get(vaultId)?.tree ?? new MerkleTree();
  }

  /**
   * Forgets local entries from `size` on, as a device that lost its state (or
   * lies) would; writing again then forks the log. Also marks the server as
   * holding at most `size` entries.
   */
  rewind(vaultId: string, size: number): void {
    const log = this.#logs.get(vaultId);
    if (log === undefined) return;
    log.entries.length = size;
    for (const index of [...log.blobs.keys()]) if (index >= size) log.blobs.delete(index);
    log.tree = new MerkleTree(log.entries.map((e) => leafHash(e)));
    log.pushed = Math.min(log.pushed, size);
  }

  /** The device's signed checkpoint of its local log. */
  async checkpoint(vaultId: string): Promise<string> {
    const log = await this.#log(vaultId);
    return signDeviceCheckpoint(log.checkpointSigner, { size: BigInt(log.tree.size), root: log.tree.root() });
  }

  /** The Authorization header for one request to a server whose cosigner key is `audience`. */
  async authorize(
    request: { audience: Uint8Array; method: string; path: string; body?: Uint8Array },
    now?: () => number,
  ): Promise<string> {
    return signRequest(
      this.signer,
      {
        audience: request.audience,
        method: request.method,
        path: request.path,
        body: request.body ?? new Uint8Array(),
      },
      now,
    );
  }

  async #log(vaultId: string): Promise<LocalLog> {
    let log = this.#logs.get(vaultId);
    if (log === undefined) {
      const id = fromHex(vaultId);
      log = {
        vaultId: id,
        checkpointSigner: await deviceCheckpointSigner(this.seed, id),
        valueKey: deriveValueKey(randomBytes(32), id, 0),
        tree: new MerkleTree(),
        entries: [],
        blobs: new Map(),
        pushed: 0,
        clock: { wallMs: 0n, counter: 0 },
      };
      this.#logs.set(vaultId, log);
    }
    return log;
  }

  #tick(log: LocalLog): HybridClock {
    const wallMs = BigInt(Date.now());
    log.clock =
      wallMs > log.clock.wallMs ? { wallMs, counter: 0 } : { wallMs: log.clock.wallMs, counter: log.clock.counter + 1 };
    return log.clock;
  }

  #writeData(log: LocalLog, options: AppendOptions): void {
    const index = BigInt(log.entries.length);
    const bind = { vaultId: log.vaultId, device: this.publicKey, logIndex: index, epoch: 0 };
    const meta = sealEnvelope(
      log.valueKey,
      { ...bind, purpose: EnvelopePurpose.entryMeta, item: 0, blindedKey: NO_BLINDED_KEY },
      encodeEntryMeta({ clock: this.#tick(log), context: [] }, this.publicKey),
    );
    const keys = Array.from({ length: options.itemsPerEntry ?? 1 }, () => randomBytes(32)).sort(compareBytes);
    const blobs: Uint8Array[] = [];
    const items: EntryItem[] = keys.map((blindedKey, item) => {
      const asBlob = item === 0 && options.blobBytes !== undefined;
      const value = randomBytes(asBlob ? options.blobBytes! : 16);
      const envelope = sealEnvelope(
        log.valueKey,
        { ...bind, purpose: EnvelopePurpose.itemValue, item, blindedKey },
        encodeItemPayload({ name: new TextEncoder().encode(`key-${index}-${item}`), kind: ValueKind.bytes, value }),
      );
      if (!asBlob) return { blindedKey, value: { kind: 'inline', envelope } };
      blobs.push(envelope);
      return { blindedKey, value: { kind: 'blob', hash: sha256(envelope), length: envelope.length } };
    });
    this.#add(
      log,
      encodeEntry({ type: 'data', vaultId: log.vaultId, device: this.publicKey, index, epoch: 0, meta, items }),
      blobs,
    );
  }

  #add(log: LocalLog, entry: Uint8Array, blobs: Uint8Array[]): void {
    if (blobs.length > 0) log.blobs.set(log.entries.length, blobs);
    log.entries.push(entry);
    log.tree.append(leafHash(entry));
  }

  // Everything after what the server holds; the server is then believed to hold it all.
  async #appendRequest(log: LocalLog): Promise<AppendRequest> {
    const start = log.pushed;
    const size = log.entries.length;
    const request: AppendRequest = {
      start,
      entries: log.entries.slice(start),
      blobs: Array.from({ length: size - start }, (_, i) => log.blobs.get(start + i) ?? []).flat(),
      checkpoint: await signDeviceCheckpoint(log.checkpointSigner, { size: BigInt(size), root: log.tree.root() }),
      consistencyProof: start > 0 ? log.tree.consistencyProof(start, size) : [],
    };
    log.pushed = size;
    return request;
  }
}
