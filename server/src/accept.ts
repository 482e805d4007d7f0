/**
 * The acceptor: what this replica verifies, without any key to the data, before
 * it stores and cosigns an append (SPEC.md sections 8, 9, 11 and 12; API.md
 * "append"). Every check runs before the first write, so a refused append
 * leaves storage as it was; the one exception is equivocation, whose evidence
 * is the point of refusing.
 *
 * Who may append what is membership.ts's state, checked entry by entry (a
 * batch may change its own writer's role): data needs a writer or admin,
 * membership entries and epoch records (SPEC.md 21.3) an admin.
 */
import {
  E2ekvError,
  NOTE_SIG_ED25519,
  addNoteSignatures,
  addParsedNoteSignatures,
  assertEnrollableEd25519Key,
  bytesEqual,
  checkCheckpointProgress,
  decodeEntry,
  formatNote,
  fromHex,
  isE2ekvError,
  leafHash,
  logOrigin,
  noteKeyId,
  parseNote,
  sha256,
  toHex,
  verifyGenesis,
  verifyParsedDeviceCheckpoint,
} from '@e2ekv/protocol';
import type { AppendRequest, EntriesResponse, Entry, MembershipEntry, Note, NoteSigner } from '@e2ekv/protocol';
import type { ServerLimits } from './limits.js';
import type { MembershipCache } from './membership.js';
import type { AppendBatch, LogHead, StorageAdapter, StoredEntry } from './storage/adapter.js';
import { TreeCache } from './tree-cache.js';

export interface AcceptorOptions {
  storage: StorageAdapter;
  membership: MembershipCache;
  limits: ServerLimits;
  /** This replica's cosigner (cosignatureSigner(name, seed)). */
  cosigner: NoteSigner;
  /** Milliseconds since the epoch, for rate limits and evidence records. */
  now?: () => number;
  /** Merkle trees kept in memory at most (least recently used are dropped); default 4096. */
  maxCachedTrees?: number;
  /** Bytes of Merkle trees kept in memory at most, estimated (tree-cache.ts); default 256 MiB. */
  maxTreeCacheBytes?: number;
}

export interface AppendResult {
  /** The device's checkpoint with this replica's cosignature appended. */
  cosignedCheckpoint: string;
  size: number;
}

const HEX_KEY = /^[0-9a-f]{64}$/;

export class Acceptor {
  readonly #storage: StorageAdapter;
  readonly #membership: MembershipCache;
  readonly #limits: ServerLimits;
  readonly #cosigner: NoteSigner;
  readonly #now: () => number;
  readonly #trees: TreeCache;
  readonly #rate: TokenBuckets;
  // One append at a time per log, so that two cannot both pass the start check.
  readonly #logLocks = new KeyedLock();
  // Per vault: appends with membership entries or epoch records hold it
  // exclusively, so that the membership cache sees changes in the order storage
  // accepted them; data appends hold it shared from their permission check to
  // their write, so that none checked before a removal is stored after it.
  readonly #vaultLocks = new KeyedRwLock();

  constructor(options: AcceptorOptions) {
    this.#storage = options.storage;
    this.#membership = options.membership;
    this.#limits = options.limits;
    this.#cosigner = options.cosigner;
    this.#now = options.now ?? Date.now;
    this.#trees = new TreeCache(options.storage, {
      maxTrees: options.maxCachedTrees,
      maxBytes: options.maxTreeCacheBytes,
    });
    this.#rate = new TokenBuckets(options.limits.appendsPerMinutePerDevice, 60_000);
  }

  /** Verifies a signed genesis and creates its vault; `created` is false when it existed already. */
  async createVault(signedGenesis: Uint8Array): Promise<{ vaultId: string; created: boolean }> {
    const { vaultId } = await verifyGenesis(signedGenesis);
    const hex = toHex(vaultId);
    // The id is the hash of the genesis body, so an existing vault has this very genesis.
    const outcome = await this.#storage.createVault(hex, signedGenesis);
    return { vaultId: hex, created: outcome === 'created' };
  }

  /**
   * Verifies and stores a batch of the device's own log, then cosigns its
   * checkpoint. `deviceHex` is the authenticated device, which is also the log.
   * `fromPeer`: the batch comes from a replication peer (peers.ts); it is
   * verified exactly the same, but not counted against the device's append
   * rate, which the replica that accepted it from the device already applied.
   */
  async append(
    vaultIdHex: string,
    deviceHex: string,
    request: AppendRequest,
    options: { fromPeer?: boolean } = {},
  ): Promise<AppendResult> {
    const vaultId = parseKey(vaultIdHex, 'vault id');
    const device = parseKey(deviceHex, 'device key');
    await this.#requireVault(vaultIdHex);
    if (options.fromPeer !== true && !this.#rate.take(deviceHex, this.#now())) {
      throw new E2ekvError(
        'RATE_LIMITED',
        `device ${deviceHex} sent more than ${this.#limits.appendsPerMinutePerDevice} appends a minute: wait and retry, or send larger batches`,
      );
    }
    return this.#logLocks.run(logKey(vaultIdHex, deviceHex), () =>
      this.#appendToLog({ vaultId, vaultIdHex, device, deviceHex, request }),
    );
  }

  /**
   * For replication (peers.ts): the log's root at size `from` and the
   * consistency proof from `from` to `to` (empty when they are equal), for
   * 0 < from <= to <= the stored size.
   */
  async rangeProof(
    vaultIdHex: string,
    deviceHex: string,
    from: number,
    to: number,
  ): Promise<{ fromRoot: Uint8Array; proof: Uint8Array[] }> {
    parseKey(vaultIdHex, 'vault id');
    parseKey(deviceHex, 'device key');
    checkIndex(from, 'from');
    checkIndex(to, 'to');
    const head = await this.#storage.getHead(vaultIdHex, deviceHex);
    if (from === 0 || from > to || to > (head?.size ?? 0)) {
      throw new E2ekvError('INVALID_ARGUMENT', `no proof from size ${from} to ${to} of a log of ${head?.size ?? 0}`);
    }
    const tree = await this.#trees.get(vaultIdHex, deviceHex, head!.size, false);
    return { fromRoot: tree.root(from), proof: from < to ? tree.consistencyProof(from, to) : [] };
  }

  /** The log's head checkpoint with a fresh cosignature by this replica; undefined for an empty log. */
  async cosignedHead(vaultIdHex: string, deviceHex: string): Promise<{ note: string; size: number } | undefined> {
    parseKey(vaultIdHex, 'vault id');
    parseKey(deviceHex, 'device key');
    await this.#requireVault(vaultIdHex);
    const head = await this.#storage.getHead(vaultIdHex, deviceHex);
    if (head === undefined) return undefined;
    return { note: await addNoteSignatures(head.note, [this.#cosigner]), size: head.size };
  }

  /**
   * Entries [start, min(end, size)) of a log (at most maxBatchEntries of them),
   * each with an inclusion proof against the returned cosigned checkpoint, and a
   * consistency proof from `proofFrom` to the checkpoint's size when
   * 0 < proofFrom < size. NOT_FOUND when the vault or the log does not exist.
   * Whether the caller may read the vault is the HTTP layer's check.
   */
  async entries(
    vaultIdHex: string,
    deviceHex: string,
    start: number,
    end: number,
    proofFrom?: number,
  ): Promise<EntriesResponse> {
    parseKey(vaultIdHex, 'vault id');
    parseKey(deviceHex, 'device key');
    checkIndex(start, 'start');
    checkIndex(end, 'end');
    if (end < start) throw new E2ekvError('INVALID_ARGUMENT', `end ${end} is before start ${start}`);
    if (proofFrom !== undefined) {
      checkIndex(proofFrom, 'proofFrom');
      if (proofFrom === 0) {
        throw new E2ekvError(
          'INVALID_ARGUMENT',
          'a consistency proof from size 0 proves nothing: verify the first checkpoint from all its entries',
        );
      }
    }
    await this.#requireVault(vaultIdHex);
    // The head first, then the tree: the tree is never smaller than a head read before it.
    const head = await this.#storage.getHead(vaultIdHex, deviceHex);
    if (head === undefined) {
      throw new E2ekvError('NOT_FOUND', `this server holds no entries of device ${deviceHex} in this vault`);
    }
    if (proofFrom !== undefined && proofFrom > head.size) {
      throw new E2ekvError(
        'INVALID_ARGUMENT',
        `proofFrom ${proofFrom} is larger than the log (size ${head.size} on this server)`,
        { details: { size: head.size } },
      );
    }
    const tree = await this.#trees.get(vaultIdHex, deviceHex, head.size, false);
    const last = Math.min(end, head.size, start + this.#limits.maxBatchEntries);
    const stored = last > start ? await this.#storage.getEntries(vaultIdHex, deviceHex, start, last) : [];
    if (stored.length !== Math.max(0, last - start)) {
      throw new E2ekvError('INTERNAL', `storage returned ${stored.length} entries for [${start}, ${last})`);
    }
    return {
      checkpoint: await addNoteSignatures(head.note, [this.#cosigner]),
      start,
      entries: stored.map((e) => e.bytes),
      inclusionProofs: stored.map((e) => tree.inclusionProof(e.index, head.size)),
      consistencyProof:
        proofFrom !== undefined && proofFrom < head.size ? tree.consistencyProof(proofFrom, head.size) : [],
    };
  }

  async #requireVault(vaultIdHex: string): Promise<void> {
    if ((await this.#storage.getGenesis(vaultIdHex)) === undefined) {
      throw new E2ekvError('NOT_FOUND', `this server holds no vault ${vaultIdHex}: create it first`, {
        details: { vaultId: vaultIdHex },
      });
    }
  }

  // Runs with the log's lock held.
  async #appendToLog(a: PendingAppend): Promise<AppendResult> {
    const { vaultIdHex, deviceHex, request } = a;
    const state = await this.#membership.state(vaultIdHex);
    const role = state?.roleAt(deviceHex, BigInt(request.start));
    if (role === undefined || role === 'reader') {
      throw new E2ekvError(
        'PERMISSION_DENIED',
        role === 'reader'
          ? `device ${deviceHex} is a reader of this vault: readers cannot write`
          : state?.isRemoved(deviceHex) === true
            ? `device ${deviceHex} was removed from this vault: it may not append entries at or after the point of its removal`
            : `device ${deviceHex} is not a member of this vault: an admin must add it first`,
      );
    }
    const head = await this.#storage.getHead(vaultIdHex, deviceHex);
    const storedSize = head?.size ?? 0;
    if (request.start !== storedSize) {
      throw new E2ekvError(
        'CONFLICT',
        `the append starts at ${request.start} but this log has ${storedSize} entries here: append from ${storedSize}`,
        { details: { expected: storedSize } },
      );
    }
    const entries = this.#decodeBatch(a);
    const membershipEntries = entries.filter((e): e is MembershipEntry => e.type === 'membership');
    const exclusive = entries.some((e) => e.type !== 'data');
    return this.#vaultLocks.run(vaultIdHex, exclusive, () => this.#checkAndStore(a, head, entries, membershipEntries));
  }

  #decodeBatch({ vaultId, device, request }: PendingAppend): Entry[] {
    const count = request.entries.length;
    if (count === 0) throw new E2ekvError('MALFORMED', 'an append carries at least one entry');
    if (count > this.#limits.maxBatchEntries) {
      throw new E2ekvError(
        'TOO_LARGE',
        `the append has ${count} entries, this server takes at most ${this.#limits.maxBatchEntries}: split it`,
        { details: { entries: count, max: this.#limits.maxBatchEntries } },
      );
    }
    return request.entries.map((bytes, i) => {
      const index = request.start + i;
      if (bytes.length > this.#limits.maxEntryBytes) {
        throw new E2ekvError(
          'TOO_LARGE',
          `entry ${index} is ${bytes.length} bytes, this server takes at most ${this.#limits.maxEntryBytes}`,
          { details: { index, bytes: bytes.length, max: this.#limits.maxEntryBytes } },
        );
      }
      const entry = decodeEntry(bytes);
      // SPEC.md 8.1: an entry names where it belongs, so that it cannot be moved.
      const misplaced: string[] = [];
      if (toHex(entry.vaultId) !== toHex(vaultId)) misplaced.push(`vault ${toHex(entry.vaultId)}`);
      if (toHex(entry.device) !== toHex(device)) misplaced.push(`device ${toHex(entry.device)}`);
      if (entry.index !== BigInt(index)) misplaced.push(`index ${entry.index}`);
      if (misplaced.length > 0) {
        throw new E2ekvError(
          'INTEGRITY',
          `entry ${i} of the append claims ${misplaced.join(', ')}, but it is appended as index ${index} of device ${toHex(device)} in vault ${toHex(vaultId)}`,
          { details: { entry: i, index } },
        );
      }
      return entry;
    });
  }

  async #checkAndStore(
    a: PendingAppend,
    head: LogHead | undefined,
    entries: readonly Entry[],
    membershipEntries: readonly MembershipEntry[],
  ): Promise<AppendResult> {
    const { vaultId, vaultIdHex, device, deviceHex, request } = a;
    await this.#checkPermissions(vaultIdHex, deviceHex, entries);
    const blobs = await this.#checkBlobs(vaultIdHex, entries, request.blobs);

    const entryBytes = request.entries.reduce((n, e) => n + e.length, 0);
    const newBytes = entryBytes + blobs.reduce((n, b) => n + (b.stored ? 0 : b.bytes.length), 0);
    const usedBytes = await this.#storage.vaultBytes(vaultIdHex);
    if (usedBytes + newBytes > this.#limits.maxVaultBytes) {
      throw new E2ekvError(
        'TOO_LARGE',
        `the vault would hold ${usedBytes + newBytes} bytes, over this server's quota of ${this.#limits.maxVaultBytes} bytes per vault`,
        { details: { used: usedBytes, adding: newBytes, quota: this.#limits.maxVaultBytes } },
      );
    }

    // Parsed once: verified, reduced to the device's signature, and cosigned as parsed.
    const parsed = parseNote(request.checkpoint);
    const verified = await verifyParsedDeviceCheckpoint(parsed, vaultId, device);
    const newSize = request.start + entries.length;
    if (verified.checkpoint.size !== BigInt(newSize)) {
      throw new E2ekvError(
        'MALFORMED',
        `the checkpoint is for size ${verified.checkpoint.size}, but the log would have ${newSize} entries after this append`,
        { details: { expected: newSize } },
      );
    }
    const newRoot = verified.checkpoint.root;
    // Keep only the device's signature: other lines are claims we did not
    // check, and a forged one would make clients that trust its key reject the note.
    const deviceSigned = deviceSignedNote(parsed, logOrigin(vaultId, device), device);
    const note = formatNote(deviceSigned);
    const leaves = request.entries.map((bytes) => leafHash(bytes));

    const tree = await this.#trees.get(vaultIdHex, deviceHex, request.start, true);
    // The cached tree takes the candidate leaves now; any failure below drops
    // it, so the next use rebuilds it from storage.
    let stored = false;
    try {
      for (const leaf of leaves) tree.append(leaf);
      const rootMatches = bytesEqual(tree.root(), newRoot);
      if (head !== undefined) {
        try {
          checkCheckpointProgress(
            { size: BigInt(head.size), root: head.root },
            verified.checkpoint,
            request.consistencyProof,
          );
        } catch (error) {
          if (!isE2ekvError(error) || (error.code !== 'EQUIVOCATION' && error.code !== 'ROLLBACK')) throw error;
          // The entries extend what is stored and hash to the new root, so the
          // two checkpoints are consistent and only the proof is wrong: no evidence.
          if (rootMatches) {
            throw new E2ekvError(
              'BAD_PROOF',
              `the consistency proof from size ${head.size} to ${newSize} does not verify, though the entries match the checkpoint: send PROOF(${head.size}, ${newSize}) of the log`,
              { cause: error },
            );
          }
          // The same pair sent again is kept once: a retrying device must not fill storage.
          const known = await this.#storage.listEvidence(vaultIdHex);
          if (!known.some((e) => e.device === deviceHex && e.first === head.note && e.second === note)) {
            await this.#storage.addEvidence(vaultIdHex, {
              device: deviceHex,
              first: head.note,
              second: note,
              recordedAtMs: this.#now(),
            });
          }
          throw new E2ekvError(
            'EQUIVOCATION',
            `device ${deviceHex} signed a checkpoint of size ${newSize} that is not consistent with its checkpoint of size ${head.size} stored here; both are kept as evidence`,
            { cause: error, details: { storedSize: head.size, newSize } },
          );
        }
      }
      if (!rootMatches) {
        throw new E2ekvError(
          'INTEGRITY',
          `the checkpoint root does not match the entries: the Merkle root of the ${newSize} entries differs from the one the device signed`,
        );
      }

      // What addNoteSignatures(note, ...) gives: `note` is deviceSigned formatted.
      const cosigned = await addParsedNoteSignatures(deviceSigned, [this.#cosigner]);
      const batch: AppendBatch = {
        vaultId: vaultIdHex,
        device: deviceHex,
        expectedSize: request.start,
        entries: request.entries.map((bytes, i): StoredEntry => ({
          index: request.start + i,
          bytes,
          leafHash: leaves[i]!,
        })),
        blobs: blobs.filter((b) => !b.stored).map((b) => ({ hash: b.hash, bytes: b.bytes })),
        head: { device: deviceHex, size: newSize, root: newRoot, note },
        membership: membershipEntries.map((e) => ({
          device: deviceHex,
          index: Number(e.index),
          bytes: request.entries[Number(e.index) - request.start]!,
        })),
      };
      await this.#storage.append(batch);
      stored = true;
      await this.#membership.applyAccepted(vaultIdHex, membershipEntries);
      return { cosignedCheckpoint: cosigned, size: newSize };
    } finally {
      if (!stored) this.#trees.drop(vaultIdHex, deviceHex, tree);
    }
  }

  // The writer's role entry by entry: a batch may change its own writer's role.
  async #checkPermissions(vaultIdHex: string, deviceHex: string, entries: readonly Entry[]): Promise<void> {
    const current = await this.#membership.state(vaultIdHex);
    if (current === undefined) throw new E2ekvError('NOT_FOUND', `this server holds no vault ${vaultIdHex}`);
    // Copied before the batch's first membership change is tried on it: a batch of
    // data entries only reads roles (copying a large vault's state cost 1.5% of a
    // single-entry append's CPU), and nothing here awaits.
    let state = current;
    for (const entry of entries) {
      const role = state.roleAt(deviceHex, entry.index);
      const index = Number(entry.index);
      if (entry.type === 'data') {
        if (role !== 'writer' && role !== 'admin') {
          throw new E2ekvError(
            'PERMISSION_DENIED',
            `entry ${index} writes data, but device ${deviceHex} is ${role === undefined ? 'no longer a member' : `a ${role}`} at that point`,
            { details: { index } },
          );
        }
        continue;
      }
      if (role !== 'admin') {
        const what = entry.type === 'epoch' ? `starts key epoch ${entry.epoch}` : 'changes membership';
        throw new E2ekvError(
          'PERMISSION_DENIED',
          `entry ${index} ${what}, which only an admin may do; device ${deviceHex} is ${role === undefined ? 'not a member' : `a ${role}`} at that point`,
          { details: { index } },
        );
      }
      // An epoch record changes no role; its wraps are for members to check (SPEC.md 21.3).
      if (entry.type === 'epoch') continue;
      try {
        assertEnrollableEd25519Key(entry.change.member);
      } catch (cause) {
        throw new E2ekvError(
          'BAD_KEY',
          `entry ${index} names member ${toHex(entry.change.member)}: ${messageOf(cause)}`,
          {
            cause,
            details: { index },
          },
        );
      }
      if (state === current) state = current.clone();
      state.apply(entry);
    }
  }

  /**
   * Pairs every blob reference of the batch with a blob sent along or already
   * stored, and checks every blob sent is referenced.
   */
  async #checkBlobs(
    vaultIdHex: string,
    entries: readonly Entry[],
    sent: readonly Uint8Array[],
  ): Promise<{ hash: string; bytes: Uint8Array; stored: boolean }[]> {
    const byHash = new Map<string, { bytes: Uint8Array; position: number; referenced: boolean }>();
    sent.forEach((bytes, position) => {
      if (bytes.length > this.#limits.maxBlobBytes) {
        throw new E2ekvError(
          'TOO_LARGE',
          `blob ${position} is ${bytes.length} bytes, this server takes at most ${this.#limits.maxBlobBytes}`,
          { details: { blob: position, bytes: bytes.length, max: this.#limits.maxBlobBytes } },
        );
      }
      const hash = toHex(sha256(bytes));
      if (byHash.has(hash)) throw new E2ekvError('MALFORMED', `blob ${position} is sent twice: send each blob once`);
      byHash.set(hash, { bytes, position, referenced: false });
    });

    const missing: string[] = [];
    for (const entry of entries) {
      if (entry.type !== 'data') continue;
      for (const [item, { value }] of entry.items.entries()) {
        if (value.kind !== 'blob') continue;
        const hash = toHex(value.hash);
        const where = `entry ${entry.index} item ${item}`;
        const provided = byHash.get(hash);
        let length: number;
        if (provided !== undefined) {
          provided.referenced = true;
          length = provided.bytes.length;
        } else {
          const existing = await this.#storage.getBlob(vaultIdHex, hash);
          if (existing === undefined) {
            missing.push(`${where} references blob ${hash}`);
            continue;
          }
          length = existing.length;
        }
        if (length !== value.length) {
          throw new E2ekvError(
            'INTEGRITY',
            `blob hash mismatch: ${where} references blob ${hash} of ${value.length} bytes, but that blob is ${length} bytes`,
            { details: { index: Number(entry.index), item } },
          );
        }
      }
    }
    const unreferenced = [...byHash].filter(([, b]) => !b.referenced);
    if (missing.length > 0 && unreferenced.length > 0) {
      // A blob sent in place of a referenced one: its bytes are not what the entry names.
      throw new E2ekvError(
        'INTEGRITY',
        `blob hash mismatch: ${missing[0]}, but blob ${unreferenced[0]![1].position} sent has SHA-256 ${unreferenced[0]![0]}`,
      );
    }
    if (missing.length > 0) {
      throw new E2ekvError('MALFORMED', `missing blob: ${missing[0]}, which is neither sent nor stored here`);
    }
    if (unreferenced.length > 0) {
      throw new E2ekvError(
        'MALFORMED',
        `blob ${unreferenced[0]![1].position} (SHA-256 ${unreferenced[0]![0]}) is not referenced by any entry of the append`,
      );
    }

    const result = [];
    for (const [hash, { bytes }] of byHash) {
      // Already stored blobs count neither against the quota nor are written again.
      const stored = (await this.#storage.getBlob(vaultIdHex, hash)) !== undefined;
      result.push({ hash, bytes, stored });
    }
    return result;
  }
}

interface PendingAppend {
  vaultId: Uint8Array;
  vaultIdHex: string;
  device: Uint8Array;
  deviceHex: string;
  request: AppendRequest;
}

// The log key's note key ID per log origin: a hash, the same for every append to the log.
const logKeyIds = new Map<string, number>();
const LOG_KEY_ID_CACHE_LIMIT = 4096;

function logKeyId(origin: string, device: Uint8Array): number {
  let keyId = logKeyIds.get(origin);
  if (keyId === undefined) {
    keyId = noteKeyId(origin, NOTE_SIG_ED25519, device);
    if (logKeyIds.size >= LOG_KEY_ID_CACHE_LIMIT) logKeyIds.delete(logKeyIds.keys().next().value!);
    logKeyIds.set(origin, keyId);
  }
  return keyId;
}

/** The note reduced to its text and the log key's own signature line (verified by the caller). */
function deviceSignedNote(note: Note, origin: string, device: Uint8Array): Note {
  // The origin names the device key (logOrigin), so it determines the key ID.
  const keyId = logKeyId(origin, device);
  return {
    text: note.text,
    signatures: note.signatures.filter((s) => s.name === origin && s.keyId === keyId),
  };
}

function parseKey(hex: string, what: string): Uint8Array {
  if (!HEX_KEY.test(hex)) throw new E2ekvError('INVALID_ARGUMENT', `${what} must be 64 lowercase hex digits`);
  return fromHex(hex);
}

function checkIndex(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new E2ekvError('INVALID_ARGUMENT', `${what} must be a non-negative integer`);
  }
}

function logKey(vaultIdHex: string, deviceHex: string): string {
  return `${vaultIdHex}/${deviceHex}`;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * A readers-writer lock per key, first come first served: shared tasks run
 * together, an exclusive task runs alone, and a waiting exclusive task holds
 * back shared tasks that arrive after it (so a stream of data appends cannot
 * starve a removal).
 */
class KeyedRwLock {
  readonly #locks = new Map<
    string,
    { readers: number; writer: boolean; waiting: { exclusive: boolean; resume: () => void }[] }
  >();

  async run<T>(key: string, exclusive: boolean, task: () => Promise<T>): Promise<T> {
    let lock = this.#locks.get(key);
    if (lock === undefined) {
      lock = { readers: 0, writer: false, waiting: [] };
      this.#locks.set(key, lock);
    }
    const held = lock;
    if (held.writer || held.waiting.length > 0 || (exclusive && held.readers > 0)) {
      // #release counts this task in before resuming it.
      await new Promise<void>((resume) => held.waiting.push({ exclusive, resume }));
    } else if (exclusive) {
      held.writer = true;
    } else {
      held.readers++;
    }
    try {
      return await task();
    } finally {
      if (exclusive) held.writer = false;
      else held.readers--;
      this.#release(key, held);
    }
  }

  #release(
    key: string,
    lock: { readers: number; writer: boolean; waiting: { exclusive: boolean; resume: () => void }[] },
  ): void {
    while (lock.waiting.length > 0 && !lock.writer) {
      const next = lock.waiting[0]!;
      if (next.exclusive) {
        if (lock.readers > 0) break;
        lock.waiting.shift();
        lock.writer = true;
        next.resume();
        break;
      }
      lock.waiting.shift();
      lock.readers++;
      next.resume();
    }
    if (!lock.writer && lock.readers === 0 && lock.waiting.length === 0 && this.#locks.get(key) === lock) {
      this.#locks.delete(key);
    }
  }
}

/** Runs tasks one after another per key; tasks of different keys run concurrently. */
class KeyedLock {
  readonly #tails = new Map<string, Promise<void>>();

  async run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const done = new Promise<void>((resolve) => (release = resolve));
    const tail = previous.then(() => done);
    this.#tails.set(key, tail);
    await previous;
    try {
      return await task();
    } finally {
      release();
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }
}

/** Token buckets per key: `capacity` tokens, refilled at capacity per `periodMs`. */
class TokenBuckets {
  readonly #capacity: number;
  readonly #perMs: number;
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  constructor(capacity: number, periodMs: number) {
    this.#capacity = capacity;
    this.#perMs = capacity / periodMs;
  }

  take(key: string, now: number): boolean {
    const bucket = this.#buckets.get(key);
    const tokens =
      bucket === undefined
        ? this.#capacity
        : Math.min(this.#capacity, bucket.tokens + Math.max(0, now - bucket.at) * this.#perMs);
    if (tokens < 1) {
      if (bucket !== undefined) Object.assign(bucket, { tokens, at: now });
      return false;
    }
    this.#buckets.set(key, { tokens: tokens - 1, at: now });
    if (this.#buckets.size > 10_000) this.#forgetFull(now);
    return true;
  }

  // A full bucket is the same as none: forgetting those bounds memory by the
  // devices active within the last period.
  #forgetFull(now: number): void {
    for (const [key, bucket] of this.#buckets) {
      if (bucket.tokens + (now - bucket.at) * this.#perMs >= this.#capacity) this.#buckets.delete(key);
    }
  }
}
