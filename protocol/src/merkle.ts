/**
 * RFC 6962 Merkle trees (SPEC.md, "Merkle trees and proofs"): the tree hash,
 * building inclusion and consistency proofs, and verifying them as RFC 9162
 * sections 2.1.3.2 and 2.1.4.2 describe.
 *
 * Two sides with different inputs:
 * - Building (MerkleTree) works on trees held in memory, so sizes and indices
 *   are numbers, and caller mistakes are INVALID_ARGUMENT.
 * - Verifying takes sizes from the wire, which may be up to 2^63 - 1, so they
 *   are bigints, and every rejection is BAD_PROOF: whoever sent the proof, not
 *   the caller, is at fault.
 */
import { MAX_I64, bytesEqual } from './bytes.js';
import { E2ekvError } from './errors.js';
import { sha256, sha256Parts } from './crypto/sha256.js';

export const HASH_LENGTH = 32;

// Distinct prefixes keep a leaf from ever hashing like an interior node
// (RFC 6962 section 2.1, second-preimage resistance).
const LEAF_PREFIX = Uint8Array.of(0x00);
const NODE_PREFIX = Uint8Array.of(0x01);

/** MTH({}) = SHA-256(""). */
export const EMPTY_ROOT: Uint8Array = emptyRoot();

// Typed arrays cannot be frozen: a fresh value keeps this module's answers
// right even if someone writes to EMPTY_ROOT.
function emptyRoot(): Uint8Array {
  return sha256(new Uint8Array(0));
}

export function leafHash(data: Uint8Array): Uint8Array {
  return sha256Parts(LEAF_PREFIX, data);
}

export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  checkHash(left, 'left child hash', 'MALFORMED');
  checkHash(right, 'right child hash', 'MALFORMED');
  return sha256Parts(NODE_PREFIX, left, right);
}

/** RFC 6962 section 2.1 MTH over leaves that are already hashed with `leafHash`. */
export function rootFromLeafHashes(leafHashes: readonly Uint8Array[]): Uint8Array {
  leafHashes.forEach((hash, i) => checkHash(hash, `leaf hash ${i}`, 'MALFORMED'));
  if (leafHashes.length === 0) return emptyRoot();
  return treeHash(leafHashes, 0, leafHashes.length);
}

// The definition itself, kept separate from MerkleTree so that tests can check
// one against the other.
function treeHash(leafHashes: readonly Uint8Array[], start: number, end: number): Uint8Array {
  if (end - start === 1) return leafHashes[start]!.slice();
  const k = splitPoint(end - start);
  return nodeHash(treeHash(leafHashes, start, start + k), treeHash(leafHashes, start + k, end));
}

// 32 KiB chunks. FIRST_CHUNK_HASHES times a power of two must be CHUNK_HASHES,
// so that doubling lands exactly on a full chunk (HashRow.push).
const CHUNK_HASHES = 1024;
const FIRST_CHUNK_HASHES = 2;

/**
 * One level of a MerkleTree: its hashes packed end to end, 32 bytes each, in
 * chunks of CHUNK_HASHES hashes. One Uint8Array per hash would cost about ten
 * times the 32 bytes in object headers, and as much work for the garbage
 * collector (docs/performance.md, "Memory").
 *
 * Hash i is at byte (i % CHUNK_HASHES) * 32 of chunks[floor(i / CHUNK_HASHES)].
 * Every chunk but the last is full. The last one starts at FIRST_CHUNK_HASHES
 * and doubles when full up to CHUNK_HASHES, so that small trees (most logs)
 * stay small, large ones waste less than a chunk per level, and growing never
 * copies more than one chunk.
 *
 * Hashes are written once, by push, and never change: reads return views into
 * the chunks, which MerkleTree only reads and never hands out.
 */
class HashRow {
  private readonly chunks: Uint8Array[] = [];
  private count = 0;

  get length(): number {
    return this.count;
  }

  /** Stores a copy of `hash` (32 bytes, checked by the caller) as hash number `length`. */
  push(hash: Uint8Array): void {
    const slot = this.count % CHUNK_HASHES;
    if (slot === 0) this.chunks.push(new Uint8Array(FIRST_CHUNK_HASHES * HASH_LENGTH));
    const last = this.chunks.length - 1;
    let chunk = this.chunks[last]!;
    if (slot * HASH_LENGTH === chunk.length) {
      // Full, and below CHUNK_HASHES since slot is: double it.
      const grown = new Uint8Array(chunk.length * 2);
      grown.set(chunk);
      this.chunks[last] = chunk = grown;
    }
    chunk.set(hash, slot * HASH_LENGTH);
    this.count++;
  }

  /** Hash `index` as a read-only view (copy it before it leaves the tree). */
  view(index: number): Uint8Array {
    // Unwritten bytes read as zeros: a wrong hash, where an error is wanted.
    if (!(index >= 0 && index < this.count)) {
      throw new E2ekvError('INTERNAL', `Merkle tree level has ${this.count} hashes, not ${index + 1}`);
    }
    const offset = (index % CHUNK_HASHES) * HASH_LENGTH;
    return this.chunks[Math.floor(index / CHUNK_HASHES)]!.subarray(offset, offset + HASH_LENGTH);
  }
}

/**
 * An append-only tree that answers roots and proofs for any of its past sizes.
 *
 * levels[k] hash i is MTH of the perfect subtree D[i*2^k : (i+1)*2^k], stored
 * once when its last leaf arrives (about 2n hashes in all, so about 64 bytes a
 * leaf). In RFC 6962's recursions every subtree is either such a perfect
 * subtree or ends at the requested size, and at most one of the latter is
 * needed per root or proof: O(log n) hashes.
 *
 * Every hash returned is a fresh copy, and every hash taken is copied in, so
 * that no caller can rewrite the tree's history.
 */
export class MerkleTree {
  private readonly levels: HashRow[] = [new HashRow()];

  constructor(leafHashes: Iterable<Uint8Array> = []) {
    for (const hash of leafHashes) this.append(hash);
  }

  get size(): number {
    return this.levels[0]!.length;
  }

  append(leafHash: Uint8Array): void {
    checkHash(leafHash, `leaf hash ${this.size}`, 'MALFORMED');
    // push copies, so that the caller reusing its buffer cannot rewrite history.
    let hash = leafHash;
    for (let level = 0; ; level++) {
      const row = (this.levels[level] ??= new HashRow());
      row.push(hash);
      if (row.length % 2 !== 0) return;
      // Its two children as stored: a perfect subtree is complete, one level up.
      hash = nodeHash(row.view(row.length - 2), row.view(row.length - 1));
    }
  }

  root(size: number = this.size): Uint8Array {
    this.checkSize(size, 'size');
    if (size === 0) return emptyRoot();
    return this.subtreeHash(0, size).slice();
  }

  leafHash(index: number): Uint8Array {
    this.checkIndex(index, this.size);
    return this.levels[0]!.view(index).slice();
  }

  /** RFC 6962 section 2.1.1 PATH(index, D[0:size]), from the leaf's sibling up. */
  inclusionProof(index: number, size: number = this.size): Uint8Array[] {
    this.checkSize(size, 'size');
    this.checkIndex(index, size);
    const proof: Uint8Array[] = [];
    this.path(index, 0, size, proof);
    return proof.map((hash) => hash.slice());
  }

  /** RFC 6962 section 2.1.2 PROOF(oldSize, D[0:newSize]). */
  consistencyProof(oldSize: number, newSize: number = this.size): Uint8Array[] {
    this.checkSize(newSize, 'new size');
    this.checkSize(oldSize, 'old size');
    // The protocol never proves consistency with the empty tree (SPEC.md): the
    // verifier rejects it, so building one is a caller mistake.
    if (oldSize === 0 || oldSize > newSize) {
      throw new E2ekvError('INVALID_ARGUMENT', `no consistency proof from size ${oldSize} to size ${newSize}`, {
        details: { oldSize, newSize },
      });
    }
    const proof: Uint8Array[] = [];
    if (oldSize < newSize) this.subproof(oldSize, 0, newSize, true, proof);
    return proof.map((hash) => hash.slice());
  }

  // MTH(D[start:end]); the result may be a view into the tree, so public methods copy it.
  private subtreeHash(start: number, end: number): Uint8Array {
    const width = end - start;
    if (isPowerOfTwo(width) && start % width === 0) return this.levels[log2(width)]!.view(start / width);
    const k = splitPoint(width);
    return nodeHash(this.subtreeHash(start, start + k), this.subtreeHash(start + k, end));
  }

  private path(index: number, start: number, end: number, out: Uint8Array[]): void {
    if (end - start === 1) return;
    const mid = start + splitPoint(end - start);
    if (index < mid) {
      this.path(index, start, mid, out);
      out.push(this.subtreeHash(mid, end));
    } else {
      this.path(index, mid, end, out);
      out.push(this.subtreeHash(start, mid));
    }
  }

  // SUBPROOF(m, D[start:end], b) with m given as the absolute old size.
  private subproof(oldSize: number, start: number, end: number, isWholeOldTree: boolean, out: Uint8Array[]): void {
    if (oldSize === end) {
      // The verifier already holds the old root, so it is left out.
      if (!isWholeOldTree) out.push(this.subtreeHash(start, end));
      return;
    }
    const mid = start + splitPoint(end - start);
    if (oldSize <= mid) {
      this.subproof(oldSize, start, mid, isWholeOldTree, out);
      out.push(this.subtreeHash(mid, end));
    } else {
      this.subproof(oldSize, mid, end, false, out);
      out.push(this.subtreeHash(start, mid));
    }
  }

  private checkSize(size: number, what: string): void {
    if (!Number.isSafeInteger(size) || size < 0 || size > this.size) {
      throw new E2ekvError('INVALID_ARGUMENT', `${what} ${size} is not between 0 and the tree size ${this.size}`, {
        details: { size, treeSize: this.size },
      });
    }
  }

  private checkIndex(index: number, size: number): void {
    if (!Number.isSafeInteger(index) || index < 0 || index >= size) {
      throw new E2ekvError('INVALID_ARGUMENT', `leaf index ${index} is not below size ${size}`, {
        details: { index, size },
      });
    }
  }
}

/**
 * The number of hashes in a valid inclusion proof, from the shape of the tree:
 * the levels where the paths to leafIndex and to the last leaf differ, plus the
 * left siblings above them. Lets parsers reject over-long proofs early.
 */
export function inclusionProofLength(leafIndex: bigint, treeSize: bigint): number {
  const at = { leafIndex: String(leafIndex), treeSize: String(treeSize) };
  checkWireNumber(leafIndex, 'leaf index', at);
  checkWireNumber(treeSize, 'tree size', at);
  if (leafIndex >= treeSize) throw badProof(`leaf index ${leafIndex} is not less than tree size ${treeSize}`, at);
  const inner = bitLength(leafIndex ^ (treeSize - 1n));
  return inner + popCount(leafIndex >> BigInt(inner));
}

/** The number of hashes in a valid consistency proof from size1 to size2 (SPEC.md rules included). */
export function consistencyProofLength(size1: bigint, size2: bigint): number {
  const at = { size1: String(size1), size2: String(size2) };
  checkWireNumber(size1, 'old tree size', at);
  checkWireNumber(size2, 'new tree size', at);
  if (size1 === 0n) {
    throw badProof(`consistency proof from size 0 to ${size2}: the empty tree is not a valid old tree`, at);
  }
  if (size1 > size2) throw badProof(`old tree size ${size1} is larger than new tree size ${size2}`, at);
  if (size1 === size2) return 0;
  const inner = bitLength((size1 - 1n) ^ (size2 - 1n));
  const border = popCount((size1 - 1n) >> BigInt(inner));
  // The old tree's last perfect subtree is also in the new tree and is where
  // verification starts: its hash is the proof's first entry, unless the old
  // tree is itself perfect and the verifier already holds that hash as root1.
  const seedInProof = isPowerOfTwo(size1) ? 0 : 1;
  return seedInProof + inner - trailingZeros(size1) + border;
}

/** The root that `proof` leads to from `leafHash` (RFC 9162 section 2.1.3.2, steps 1 to 4). */
export function rootFromInclusionProof(
  leafIndex: bigint,
  treeSize: bigint,
  leafHash: Uint8Array,
  proof: readonly Uint8Array[],
): Uint8Array {
  const expected = inclusionProofLength(leafIndex, treeSize);
  const at = { leafIndex: String(leafIndex), treeSize: String(treeSize) };
  checkHash(leafHash, 'leaf hash', 'BAD_PROOF');
  checkProof(proof, expected, 'inclusion', at);

  let fn = leafIndex;
  let sn = treeSize - 1n;
  let r: Uint8Array = leafHash.slice();
  for (const p of proof) {
    // Unreachable after the length check; kept because it is the RFC's own bound.
    if (sn === 0n) throw badProof(`inclusion proof for leaf ${leafIndex} is longer than the tree is deep`, at);
    if ((fn & 1n) === 1n || fn === sn) {
      r = nodeHash(p, r);
      // Levels where our node is the last one and has no sibling take no hash.
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      r = nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw badProof(`inclusion proof for leaf ${leafIndex} is shorter than the tree is deep`, at);
  return r;
}

export function verifyInclusion(
  leafIndex: bigint,
  treeSize: bigint,
  leafHash: Uint8Array,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): void {
  const at = { leafIndex: String(leafIndex), treeSize: String(treeSize) };
  checkHash(root, 'root', 'BAD_PROOF');
  const computed = rootFromInclusionProof(leafIndex, treeSize, leafHash, proof);
  if (!bytesEqual(computed, root)) {
    const message = `inclusion proof for leaf ${leafIndex} in tree of size ${treeSize} does not lead to the expected root`;
    throw badProof(message, at);
  }
}

/**
 * Checks that the tree of size2 with root2 extends the tree of size1 with root1
 * (RFC 9162 section 2.1.4.2). size1 = 0 is rejected (SPEC.md): a log's first
 * checkpoint is checked against all its entries instead.
 */
export function verifyConsistency(
  size1: bigint,
  size2: bigint,
  proof: readonly Uint8Array[],
  root1: Uint8Array,
  root2: Uint8Array,
): void {
  const expected = consistencyProofLength(size1, size2);
  const at = { size1: String(size1), size2: String(size2) };
  checkProof(proof, expected, 'consistency', at);

  // Equal sizes: consistency is root equality, whatever the roots' encoding (as
  // RFC 9162 and the transparency-dev vectors have it). Roots that reach this
  // point from a checkpoint were already checked to be 32 bytes.
  if (size1 === size2) {
    if (!bytesEqual(root1, root2)) throw badProof(`two roots for the same tree size ${size1} differ`, at);
    return;
  }
  checkHash(root1, 'old root', 'BAD_PROOF');
  checkHash(root2, 'new root', 'BAD_PROOF');

  // Steps 2 to 7 of the RFC; step 1 (empty proof) is covered by the length check.
  const path = isPowerOfTwo(size1) ? [root1, ...proof] : proof;
  let fn = size1 - 1n;
  let sn = size2 - 1n;
  while ((fn & 1n) === 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  let fr = path[0]!;
  let sr = fr;
  for (const c of path.slice(1)) {
    if (sn === 0n) throw badProof(`consistency proof from size ${size1} to ${size2} is too long`, at);
    if ((fn & 1n) === 1n || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw badProof(`consistency proof from size ${size1} to ${size2} is too short`, at);
  if (!bytesEqual(fr, root1)) {
    throw badProof(`consistency proof from size ${size1} to ${size2} does not lead to the expected old root`, at);
  }
  if (!bytesEqual(sr, root2)) {
    throw badProof(`consistency proof from size ${size1} to ${size2} does not lead to the expected new root`, at);
  }
}

// Wire sizes and indices are C2SP tree sizes: 0 to 2^63 - 1.
function checkWireNumber(value: bigint, what: string, at: Readonly<Record<string, string>>): void {
  if (typeof value !== 'bigint') {
    throw new E2ekvError('INVALID_ARGUMENT', `${what} must be a bigint, got ${typeof value}`);
  }
  if (value < 0n || value > MAX_I64) throw badProof(`${what} ${value} is outside 0 to 2^63 - 1`, at);
}

function checkProof(
  proof: readonly Uint8Array[],
  expected: number,
  kind: string,
  at: Readonly<Record<string, string>>,
): void {
  // A null from a lenient parser is a bad proof, not a TypeError.
  if (!Array.isArray(proof)) throw badProof(`${kind} proof is not a list of hashes`, at);
  if (proof.length !== expected) {
    throw badProof(`${kind} proof has ${proof.length} hashes, expected ${expected}`, {
      ...at,
      proofLength: proof.length,
      expectedLength: expected,
    });
  }
  proof.forEach((hash, i) => checkHash(hash, `${kind} proof hash ${i}`, 'BAD_PROOF'));
}

function checkHash(hash: Uint8Array, what: string, code: 'BAD_PROOF' | 'MALFORMED'): void {
  if (!(hash instanceof Uint8Array) || hash.length !== HASH_LENGTH) {
    const got = hash instanceof Uint8Array ? `${hash.length} bytes` : 'not bytes';
    throw new E2ekvError(code, `${what} is ${got}, expected ${HASH_LENGTH} bytes`, {
      details: { hashLength: hash instanceof Uint8Array ? hash.length : -1 },
    });
  }
}

function badProof(message: string, details: Readonly<Record<string, string | number>>): E2ekvError {
  return new E2ekvError('BAD_PROOF', message, { details });
}

/** The largest power of two below n (n >= 2): where RFC 6962 splits D[0:n]. */
function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

// Bitwise tricks on numbers would truncate to 32 bits, hence loops for numbers.
function isPowerOfTwo(n: number | bigint): boolean {
  if (typeof n === 'bigint') return n > 0n && (n & (n - 1n)) === 0n;
  let k = 1;
  while (k < n) k *= 2;
  return k === n;
}

function log2(powerOfTwo: number): number {
  let level = 0;
  for (let k = 1; k < powerOfTwo; k *= 2) level++;
  return level;
}

function bitLength(x: bigint): number {
  return x === 0n ? 0 : x.toString(2).length;
}

function popCount(x: bigint): number {
  let count = 0;
  for (; x > 0n; x >>= 1n) count += Number(x & 1n);
  return count;
}

function trailingZeros(x: bigint): number {
  let count = 0;
  for (; x > 0n && (x & 1n) === 0n; x >>= 1n) count++;
  return count;
}
