/**
 * Verified fetching of one device's log from one replica: every entry, root,
 * size and signature that comes back is checked before the caller sees it
 * (protocol/SPEC.md sections 8.1, 9.3, 11, 11.1 and 12).
 *
 * Paging. A replica sends at most its maxBatchEntries entries per request, and
 * its log may grow while we page through it. The first page's checkpoint (size
 * N) is the target: later pages are requested with `end <= N`, so the entries
 * collected are exactly [pin.size, N) and the new pin is that first checkpoint.
 * A later page may carry a newer checkpoint N' (the log grew): it must verify
 * and be consistent with N (a proof from N to N'), else ROLLBACK or
 * EQUIVOCATION; its entries beyond N are left for the next pull. Inclusion proofs
 * are not used: rebuilding the signed root from every leaf checks more than they do.
 */
import {
  E2ekvError,
  EMPTY_ROOT,
  MAX_BATCH_ITEMS,
  NOTE_SIG_ED25519,
  MerkleTree,
  bytesEqual,
  checkCheckpointProgress,
  decodeEntry,
  formatNote,
  isE2ekvError,
  leafHash,
  logOrigin,
  nodeHash,
  noteKeyId,
  parseNote,
  sha256,
  toHex,
  verifyDeviceCheckpoint,
  type Cosigner,
  type EntriesResponse,
} from '@e2ekv/protocol';
import type { Key32, ReplicaTransport } from './transport.js';

/** What a verifier keeps per log (SPEC.md 11.1): its largest verified checkpoint. */
export interface LogPin {
  size: number;
  root: Uint8Array;
  /**
   * The checkpoint note, evidence anyone can check: pullLog returns it with the
   * device's signature only; the Vault keeps the replica's verified cosignature
   * too (see Vault.auditInfo).
   */
  note: string;
}

export interface PulledLog {
  /** The new entries, in order, from the old pin's size to the new pin's size. */
  entries: Uint8Array[];
  /** The new pin. */
  pin: LogPin;
  /** The checkpoint note as the replica sent it, with its cosignature. */
  cosignedNote: string;
  /** When the replica cosigned it (POSIX seconds, the replica's claim). */
  cosignatureTime: bigint;
}

export interface PullLogOptions {
  vaultId: Uint8Array;
  /** The device whose log is pulled. */
  device: Uint8Array;
  /** The log's pin, or undefined when nothing of it was verified yet. */
  pin: LogPin | undefined;
  /**
   * Leaf hashes of entries [0, pin.size), already verified; owned by the caller.
   * On success the new leaves are appended to it; on failure it is untouched.
   * Do not pull the same log twice at once with one tree.
   */
  tree: MerkleTree;
  /** This replica's pinned cosigner key: its cosignature is required. */
  cosigner: Cosigner;
  /** Refuse (TOO_LARGE) to fetch more new entries than this in one pull. */
  maxEntries?: number;
}

interface Evidence {
  /** The note verified first (the pin, or the first page's checkpoint). */
  first: string;
  /** The note presented later that contradicts it. */
  second: string;
}

/** A failure that comes with two device-signed checkpoints as evidence: keep `evidence`. */
abstract class EvidenceError extends E2ekvError {
  readonly evidence: Evidence;

  constructor(code: 'EQUIVOCATION' | 'ROLLBACK', message: string, evidence: Evidence, cause?: unknown) {
    super(code, message, {
      cause,
      details: { pinned: evidence.first, presented: evidence.second },
    });
    this.evidence = { ...evidence };
  }
}

/** Two device-signed checkpoints of one log that cannot both be true. Keep `evidence`. */
export class EquivocationError extends EvidenceError {
  constructor(message: string, evidence: Evidence, cause?: unknown) {
    super('EQUIVOCATION', message, evidence, cause);
    this.name = 'EquivocationError';
  }
}

/** A replica presented a checkpoint smaller than one already verified. Both notes are kept. */
export class RollbackError extends EvidenceError {
  constructor(message: string, evidence: Evidence, cause?: unknown) {
    super('ROLLBACK', message, evidence, cause);
    this.name = 'RollbackError';
  }
}

/** A checkpoint that verified: device signature, this replica's cosignature, origin. */
interface Presented {
  note: string;
  size: number;
  root: Uint8Array;
  cosignatureTime: bigint;
}

interface Context {
  transport: ReplicaTransport;
  vaultId: Uint8Array;
  device: Uint8Array;
  cosigner: Cosigner;
  /** For messages: "device <first 16 hex digits>". */
  who: string;
}

/**
 * Fetches and verifies the entries of one device's log that follow `pin`.
 * Throws, without touching `tree`: UNKNOWN_KEY or BAD_SIGNATURE (checkpoint
 * signatures), ROLLBACK (RollbackError), EQUIVOCATION (EquivocationError),
 * BAD_PROOF (a wrong proof for entries that are right), INTEGRITY (entries that
 * are missing, altered, moved or malformed), UNSUPPORTED_VERSION (an entry type
 * this SDK does not know), and the transport's errors.
 */
export async function pullLog(transport: ReplicaTransport, options: PullLogOptions): Promise<PulledLog> {
  const { vaultId, device, pin, tree, cosigner } = options;
  logOrigin(vaultId, device); // INVALID_ARGUMENT for keys of the wrong length, before any request
  const from = pin?.size ?? 0;
  checkCallerState(pin, tree);
  const maxEntries = options.maxEntries ?? Number.MAX_SAFE_INTEGER;
  if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) {
    throw new E2ekvError('INVALID_ARGUMENT', 'maxEntries must be a positive whole number');
  }
  const ctx: Context = { transport, vaultId, device, cosigner, who: `device ${toHex(device).slice(0, 16)}` };
  const info = await transport.info();
  const batch = Math.min(info.limits.maxBatchEntries, MAX_BATCH_ITEMS);

  // Page 1 fixes the target: its checkpoint.
  const first = await fetchPage(ctx, from, from + batch, from > 0 ? from : undefined);
  const target = await verifyPresented(ctx, first.response.checkpoint);

  // SPEC.md 11.1. A failed consistency proof is judged once the entries are in:
  // if they rebuild the signed root on top of the pinned leaves, the checkpoint
  // is consistent after all and only the proof was wrong (BAD_PROOF, the device
  // is honest), as the server judges appends (server/API.md).
  let badProof: E2ekvError | undefined;
  if (pin !== undefined && from > 0) {
    badProof = checkProgress(ctx, pin, target, first.response.consistencyProof, 'defer');
  }
  const evidence = { first: pin?.note ?? '', second: target.note };
  // A consistency proof that fails was written by the replica, not the device:
  // it proves nothing against the device. The device forked only if the replica
  // can show a whole log that rebuilds the new signed root and whose first
  // pin.size entries do not rebuild the pinned one; otherwise the replica lied.
  const judgeBadProof = async (cause: unknown): Promise<E2ekvError> => {
    if (pin !== undefined && (await forkShown(ctx, pin, target, batch))) {
      return new EquivocationError(
        `replica ${transport.url} presented a checkpoint of ${ctx.who} (size ${target.size}) that is not consistent with the pinned one (size ${from}): the device forked its log (the replica showed both histories). Keep the evidence and stop trusting that device`,
        evidence,
        cause,
      );
    }
    return new E2ekvError(
      'INTEGRITY',
      `replica ${transport.url} sent a consistency proof for ${ctx.who} that does not verify and could not show a log that contradicts the pinned one: the replica altered what it sent (the device is not blamed). Use another replica`,
      { cause },
    );
  };

  const wanted = target.size - from;
  if (wanted > maxEntries) {
    if (badProof !== undefined) throw await judgeBadProof(badProof);
    throw new E2ekvError(
      'TOO_LARGE',
      `replica ${transport.url} holds ${wanted} new entries of ${ctx.who}, more than maxEntries (${maxEntries}): raise maxEntries to pull them`,
      { details: { available: wanted, maxEntries } },
    );
  }

  let entries: Uint8Array[];
  try {
    entries = await collectEntries(ctx, first, target, from, batch);
  } catch (error) {
    // Without the entries a failed proof cannot be cleared: the protocol's verdict stands.
    if (badProof !== undefined && isE2ekvError(error) && error.category === 'integrity') {
      throw await judgeBadProof(error);
    }
    throw error;
  }

  const leaves = entries.map((entry) => leafHash(entry));
  const range = compactRange(tree);
  for (const leaf of leaves) pushSubtree(range, 1, leaf);
  if (!bytesEqual(rangeRoot(range), target.root)) {
    if (badProof !== undefined) throw await judgeBadProof(badProof);
    throw new E2ekvError(
      'INTEGRITY',
      `replica ${transport.url}: the entries do not rebuild the signed root of ${ctx.who} (size ${target.size}): it altered, reordered or replaced them. Use another replica`,
      { details: { size: target.size, from } },
    );
  }
  if (badProof !== undefined) {
    throw new E2ekvError(
      'BAD_PROOF',
      `replica ${transport.url} sent a wrong consistency proof for ${ctx.who}, though the entries it sent are right: the replica is faulty, the device is not. Use another replica`,
      { cause: badProof },
    );
  }
  entries.forEach((entry, i) => checkPlace(ctx, entry, from + i));

  for (const leaf of leaves) tree.append(leaf);
  return {
    entries,
    pin: { size: target.size, root: target.root, note: deviceSignedNote(target.note, vaultId, device) },
    cosignedNote: target.note,
    cosignatureTime: target.cosignatureTime,
  };
}

/** Fetches a blob and checks it is the one an entry references (SPEC.md 8.2). */
export async function pullBlob(
  transport: ReplicaTransport,
  vaultId: Key32,
  expected: { hash: Uint8Array; length: number },
): Promise<Uint8Array> {
  if (expected.hash.length !== 32) {
    throw new E2ekvError('INVALID_ARGUMENT', `a blob hash is 32 bytes, got ${expected.hash.length}`);
  }
  let blob: Uint8Array;
  try {
    blob = await transport.blob(vaultId, toHex(expected.hash));
  } catch (error) {
    // A verified entry proves the blob exists: the device sent it with the entry,
    // and replicas refuse entries whose blobs are missing. "Not found" is withholding.
    if (isE2ekvError(error, 'NOT_FOUND')) {
      throw new E2ekvError(
        'WITHHELD',
        `replica ${transport.url} says it has no blob ${toHex(expected.hash)}, which a verified entry references: it is withholding it. Use another replica`,
        { cause: error, details: { blob: toHex(expected.hash) } },
      );
    }
    throw error;
  }
  if (blob.length !== expected.length || !bytesEqual(sha256(blob), expected.hash)) {
    throw new E2ekvError(
      'INTEGRITY',
      `replica ${transport.url} sent a blob that is not the one the entry references (expected ${expected.length} bytes with SHA-256 ${toHex(expected.hash)}): use another replica`,
      { details: { expectedLength: expected.length, receivedLength: blob.length } },
    );
  }
  return blob;
}

function checkCallerState(pin: LogPin | undefined, tree: MerkleTree): void {
  const size = pin?.size ?? 0;
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new E2ekvError('INVALID_ARGUMENT', `pin size ${size} is not a non-negative whole number`);
  }
  if (tree.size !== size) {
    throw new E2ekvError('INVALID_ARGUMENT', `the tree holds ${tree.size} leaves but the pin is at size ${size}`);
  }
  if (pin !== undefined && size > 0 && !bytesEqual(tree.root(), pin.root)) {
    throw new E2ekvError(
      'INVALID_ARGUMENT',
      'the tree does not have the pinned root: pass the tree the pin was made from',
    );
  }
}

interface Page {
  response: EntriesResponse;
  /** The `end` asked for. */
  end: number;
}

async function fetchPage(ctx: Context, start: number, end: number, proofFrom: number | undefined): Promise<Page> {
  const { transport, vaultId, device } = ctx;
  try {
    return { response: await transport.entries(vaultId, device, start, end, proofFrom), end };
  } catch (error) {
    // A replica holding fewer entries than proofFrom refuses to prove from it.
    // Ask for no entries and no proof instead: its checkpoint, once verified,
    // turns the refusal into a verified ROLLBACK (or shows the refusal was false).
    const size = isE2ekvError(error, 'INVALID_ARGUMENT') ? error.details['size'] : undefined;
    if (proofFrom !== undefined && typeof size === 'number' && size < proofFrom) {
      return { response: await transport.entries(vaultId, device, start, start), end: start };
    }
    throw error;
  }
}

async function verifyPresented(ctx: Context, note: string): Promise<Presented> {
  const { transport, vaultId, device, cosigner } = ctx;
  let verified;
  try {
    verified = await verifyDeviceCheckpoint(note, vaultId, device, [cosigner]);
  } catch (error) {
    if (!isE2ekvError(error)) throw error;
    // Signature verdicts keep their code; a note that does not even parse is a broken answer.
    const code = error.category === 'integrity' ? error.code : 'INTEGRITY';
    throw new E2ekvError(
      code,
      `replica ${transport.url} sent a checkpoint of ${ctx.who} that does not verify (${error.message}): use another replica`,
      { cause: error, details: error.details },
    );
  }
  const cosignature = verified.cosignatures.find(
    (c) => c.name === cosigner.name && bytesEqual(c.publicKey, cosigner.publicKey),
  );
  if (cosignature === undefined) {
    throw new E2ekvError(
      'UNKNOWN_KEY',
      `replica ${transport.url} did not cosign the checkpoint of ${ctx.who} it sent (no signature by its pinned key ${cosigner.name}): use another replica, or re-pin it if its key really changed`,
    );
  }
  const { size, root } = verified.checkpoint;
  if (size > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new E2ekvError(
      'INTEGRITY',
      `the checkpoint of ${ctx.who} claims ${size} entries, more than a client can hold`,
    );
  }
  return { note, size: Number(size), root, cosignatureTime: cosignature.timestamp };
}

/**
 * checkCheckpointProgress with evidence. ROLLBACK always throws; EQUIVOCATION
 * throws at equal sizes (two roots for one size need no entries to judge), and
 * for a failed consistency proof either throws ('throw') or is returned for
 * the caller to judge with the entries ('defer').
 */
function checkProgress(
  ctx: Context,
  pinned: { size: number; root: Uint8Array; note: string },
  presented: Presented,
  proof: readonly Uint8Array[],
  onBadProof: 'throw' | 'defer',
): E2ekvError | undefined {
  try {
    checkCheckpointProgress(
      { size: BigInt(pinned.size), root: pinned.root },
      { size: BigInt(presented.size), root: presented.root },
      proof,
    );
    return undefined;
  } catch (error) {
    if (!isE2ekvError(error)) throw error;
    const evidence = { first: pinned.note, second: presented.note };
    const url = ctx.transport.url;
    if (error.code === 'ROLLBACK') {
      throw new RollbackError(
        `replica ${url} presented a checkpoint of ${ctx.who} of size ${presented.size}, smaller than the ${pinned.size} already verified: it lost or hides entries. Use another replica`,
        evidence,
        error,
      );
    }
    if (error.code === 'EQUIVOCATION' && (presented.size === pinned.size || onBadProof === 'throw')) {
      throw new EquivocationError(
        `replica ${url} presented a checkpoint of ${ctx.who} (size ${presented.size}) that is not consistent with the verified one (size ${pinned.size}): keep the evidence and stop trusting that device`,
        evidence,
        error,
      );
    }
    if (error.code === 'EQUIVOCATION') return error;
    throw error;
  }
}

/** Entries [from, target.size) from the first page and as many more pages as needed. */
/**
 * Whether the replica can show the device's fork: all `target.size` entries,
 * rebuilding the device-signed target root, whose first `pin.size` do not
 * rebuild the device-signed pinned root. Only on the failure path, where the
 * whole log is worth fetching to tell a forking device from a lying replica.
 */
async function forkShown(ctx: Context, pin: LogPin, target: Presented, batch: number): Promise<boolean> {
  try {
    const leaves: Uint8Array[] = [];
    while (leaves.length < target.size) {
      const start = leaves.length;
      const page = await fetchPage(ctx, start, Math.min(target.size, start + batch), undefined);
      checkPageShape(ctx, page, start, target.size);
      if (page.response.entries.length === 0) return false;
      for (const entry of page.response.entries) leaves.push(leafHash(entry));
    }
    const tree = new MerkleTree(leaves);
    return bytesEqual(tree.root(target.size), target.root) && !bytesEqual(tree.root(pin.size), pin.root);
  } catch {
    return false;
  }
}

async function collectEntries(
  ctx: Context,
  first: Page,
  target: Presented,
  from: number,
  batch: number,
): Promise<Uint8Array[]> {
  const entries: Uint8Array[] = [];
  let next = from;
  let page = first;
  for (;;) {
    checkPageShape(ctx, page, next, target.size);
    entries.push(...page.response.entries);
    next += page.response.entries.length;
    if (next >= target.size) return entries;
    const end = Math.min(target.size, next + batch);
    // proofFrom = the target, so that a grown checkpoint proves it extends the target.
    page = await fetchPage(ctx, next, end, target.size);
    const later = await verifyPresented(ctx, page.response.checkpoint);
    checkProgress(ctx, target, later, page.response.consistencyProof, 'throw');
  }
}

function checkPageShape(ctx: Context, page: Page, start: number, claimed: number): void {
  const { response } = page;
  const url = ctx.transport.url;
  if (response.start !== start) {
    throw new E2ekvError('INTEGRITY', `replica ${url} sent entries from ${response.start} when asked from ${start}`, {
      details: { asked: start, sent: response.start },
    });
  }
  const expected = Math.max(0, Math.min(page.end, claimed) - start);
  if (response.entries.length !== expected) {
    const sent = start + response.entries.length;
    throw new E2ekvError(
      'INTEGRITY',
      `replica ${url}: the replica's checkpoint claims ${claimed} entries of ${ctx.who} but it sent ${sent}: it withholds or invents entries. Use another replica`,
      { details: { claimed, sent } },
    );
  }
}

/** SPEC.md 8.1: an entry names the vault, device and position where it was found. */
function checkPlace(ctx: Context, bytes: Uint8Array, index: number): void {
  let entry;
  try {
    entry = decodeEntry(bytes);
  } catch (error) {
    // An unknown entry type is a version question, not a fault: keep its code.
    if (isE2ekvError(error, 'UNSUPPORTED_VERSION')) throw error;
    throw new E2ekvError('INTEGRITY', `entry ${index} of ${ctx.who} is signed but does not decode`, {
      cause: error,
      details: { index },
    });
  }
  if (
    !bytesEqual(entry.vaultId, ctx.vaultId) ||
    !bytesEqual(entry.device, ctx.device) ||
    entry.index !== BigInt(index)
  ) {
    throw new E2ekvError(
      'INTEGRITY',
      `entry ${index} of ${ctx.who} names another place (vault ${toHex(entry.vaultId).slice(0, 16)}, device ${toHex(entry.device).slice(0, 16)}, index ${entry.index}): it was moved`,
      { details: { index } },
    );
  }
}

/** The checkpoint note with the device's own signature line only. */
function deviceSignedNote(note: string, vaultId: Uint8Array, device: Uint8Array): string {
  const origin = logOrigin(vaultId, device);
  const keyId = noteKeyId(origin, NOTE_SIG_ED25519, device);
  const parsed = parseNote(note);
  return formatNote({
    text: parsed.text,
    signatures: parsed.signatures.filter((s) => s.name === origin && s.keyId === keyId),
  });
}

/**
 * A compact range: the perfect subtrees covering leaves [0, n), largest first.
 * It lets us compute the root of the caller's tree plus new leaves without
 * copying or touching the tree (RFC 6962 MTH, SPEC.md 9.1).
 */
interface Subtree {
  size: number;
  hash: Uint8Array;
}

function compactRange(tree: MerkleTree): Subtree[] {
  const range: Subtree[] = [];
  const n = tree.size;
  if (n === 0) return range;
  // The last leaf's inclusion path holds, bottom-up, the left siblings met while
  // descending: perfect subtrees whose sizes are the successive RFC 6962 splits.
  const path = tree.inclusionProof(n - 1, n);
  let start = 0;
  for (let i = path.length - 1; i >= 0; i--) {
    const size = largestPowerOfTwoBelow(n - start);
    pushSubtree(range, size, path[i]!);
    start += size;
  }
  pushSubtree(range, 1, tree.leafHash(n - 1));
  return range;
}

/** Adds the next subtree on the right, merging equal neighbours as a binary counter carries. */
function pushSubtree(range: Subtree[], size: number, hash: Uint8Array): void {
  let merged = { size, hash };
  while (range.length > 0 && range[range.length - 1]!.size === merged.size) {
    const left = range.pop()!;
    merged = { size: merged.size * 2, hash: nodeHash(left.hash, merged.hash) };
  }
  range.push(merged);
}

function rangeRoot(range: readonly Subtree[]): Uint8Array {
  if (range.length === 0) return EMPTY_ROOT.slice();
  let hash = range[range.length - 1]!.hash;
  for (let i = range.length - 2; i >= 0; i--) hash = nodeHash(range[i]!.hash, hash);
  return hash;
}

function largestPowerOfTwoBelow(width: number): number {
  let k = 1;
  while (k * 2 < width) k *= 2;
  return k;
}
