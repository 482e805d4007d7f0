/**
 * MerkleTree against a straightforward RFC 6962 implementation: the recursive
 * definitions of MTH, PATH and PROOF (section 2.1), written with node:crypto's
 * SHA-256 and nothing from the module under test but its leaves. Roots and
 * proofs must be byte for byte the reference's, for random trees and for trees
 * large enough that a level of MerkleTree spans several of its storage chunks
 * (1,024 hashes each).
 */
import { createHash } from 'node:crypto';

import test from 'ava';
import fc from 'fast-check';

import { MerkleTree } from '../src/merkle.js';

// --- The reference: RFC 6962 section 2.1, word for word, memoized per tree. ---

function sha256(...parts: Uint8Array[]): Uint8Array {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return new Uint8Array(hash.digest());
}

class ReferenceTree {
  readonly #leaves: readonly Uint8Array[];
  readonly #memo = new Map<string, Uint8Array>();

  constructor(leafData: readonly Uint8Array[]) {
    // MTH({d(0)}) = SHA-256(0x00 || d(0))
    this.#leaves = leafData.map((data) => sha256(Uint8Array.of(0), data));
  }

  leafHashes(): Uint8Array[] {
    return this.#leaves.map((hash) => hash.slice());
  }

  // MTH(D[start:end]); MTH({}) = SHA-256().
  mth(start: number, end: number): Uint8Array {
    const n = end - start;
    if (n === 0) return sha256();
    if (n === 1) return this.#leaves[start]!;
    const key = `${start}:${end}`;
    let hash = this.#memo.get(key);
    if (hash === undefined) {
      const k = largestPowerOfTwoBelow(n);
      hash = sha256(Uint8Array.of(1), this.mth(start, start + k), this.mth(start + k, end));
      this.#memo.set(key, hash);
    }
    return hash;
  }

  // PATH(m, D[start:end]), m relative to start.
  path(m: number, start: number, end: number): Uint8Array[] {
    const n = end - start;
    if (n === 1) return [];
    const k = largestPowerOfTwoBelow(n);
    if (m < k) return [...this.path(m, start, start + k), this.mth(start + k, end)];
    return [...this.path(m - k, start + k, end), this.mth(start, start + k)];
  }

  // PROOF(m, D[0:n]) = SUBPROOF(m, D[0:n], true).
  proof(m: number, n: number): Uint8Array[] {
    return this.subproof(m, 0, n, true);
  }

  // SUBPROOF(m, D[start:end], b), m relative to start.
  subproof(m: number, start: number, end: number, b: boolean): Uint8Array[] {
    const n = end - start;
    if (m === n) return b ? [] : [this.mth(start, end)];
    const k = largestPowerOfTwoBelow(n);
    if (m <= k) return [...this.subproof(m, start, start + k, b), this.mth(start + k, end)];
    return [...this.subproof(m - k, start + k, end, false), this.mth(start, start + k)];
  }
}

// The largest power of two smaller than n (n > 1).
function largestPowerOfTwoBelow(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

function hex(hash: Uint8Array): string {
  return Buffer.from(hash).toString('hex');
}

function hexes(hashes: readonly Uint8Array[]): string[] {
  return hashes.map(hex);
}

function check(actual: string | string[], expected: string | string[], what: string): void {
  if (JSON.stringify(actual) !== JSON.stringify(expected)) throw new Error(`differs from the reference: ${what}`);
}

/** Every root, and the proofs at `sizes` (all of them when omitted), compared with the reference. */
function compare(tree: MerkleTree, reference: ReferenceTree, n: number, sizes?: readonly number[]): void {
  check(String(tree.size), String(n), 'size');
  for (let size = 0; size <= n; size++) check(hex(tree.root(size)), hex(reference.mth(0, size)), `root(${size})`);
  for (let i = 0; i < n; i++) check(hex(tree.leafHash(i)), hex(reference.mth(i, i + 1)), `leafHash(${i})`);
  for (const size of sizes ?? Array.from({ length: n }, (_, i) => i + 1)) {
    for (let i = 0; i < size; i++) {
      check(hexes(tree.inclusionProof(i, size)), hexes(reference.path(i, 0, size)), `inclusionProof(${i}, ${size})`);
    }
    for (let m = 1; m <= size; m++) {
      check(hexes(tree.consistencyProof(m, size)), hexes(reference.proof(m, size)), `consistencyProof(${m}, ${size})`);
    }
  }
}

const leafData = fc.array(fc.uint8Array({ maxLength: 4 }), { minLength: 0, maxLength: 160, size: 'max' });

test('roots, leaves and every proof of every size equal the reference, for random trees', (t) => {
  fc.assert(
    fc.property(leafData, (data) => {
      const reference = new ReferenceTree(data);
      compare(new MerkleTree(reference.leafHashes()), reference, data.length);
    }),
    { numRuns: 25 },
  );
  t.pass();
});

test('a tree answers the same while it grows, for every size it has had', (t) => {
  fc.assert(
    fc.property(leafData, fc.array(fc.nat(), { minLength: 1, maxLength: 5 }), (data, stops) => {
      const reference = new ReferenceTree(data);
      const leaves = reference.leafHashes();
      const tree = new MerkleTree();
      // Queries between appends must not disturb what later appends store.
      const checkpoints = new Set(stops.map((stop) => stop % (data.length + 1)));
      for (let n = 0; n <= data.length; n++) {
        if (checkpoints.has(n)) compare(tree, reference, n, n === 0 ? [] : [n, Math.ceil(n / 2)]);
        if (n < data.length) tree.append(leaves[n]!);
      }
      compare(tree, reference, data.length, data.length === 0 ? [] : [data.length]);
    }),
    { numRuns: 25 },
  );
  t.pass();
});

test('trees whose levels span several storage chunks equal the reference around every chunk boundary', (t) => {
  // 2,053 leaves: level 0 fills two chunks of 1,024 and starts a third, level 1
  // fills one and starts another.
  const count = 2 * 1024 + 5;
  const data = Array.from({ length: count }, (_, i) => Uint8Array.of(i & 0xff, i >> 8, i % 7));
  const reference = new ReferenceTree(data);
  const leaves = reference.leafHashes();
  const tree = new MerkleTree();
  const boundaries = [1, 2, 3, 4, 5, 511, 512, 513, 1023, 1024, 1025, 1026, 2047, 2048, 2049, count];
  for (let n = 1; n <= count; n++) {
    tree.append(leaves[n - 1]!);
    check(hex(tree.root()), hex(reference.mth(0, n)), `root after ${n} appends`);
  }
  for (let i = 0; i < count; i++) check(hex(tree.leafHash(i)), hex(leaves[i]!), `leafHash(${i})`);
  for (const size of boundaries) {
    check(hex(tree.root(size)), hex(reference.mth(0, size)), `root(${size})`);
    for (const i of boundaries.filter((b) => b <= size).flatMap((b) => [b - 1, size - b])) {
      check(hexes(tree.inclusionProof(i, size)), hexes(reference.path(i, 0, size)), `inclusionProof(${i}, ${size})`);
    }
    for (const m of boundaries.filter((b) => b <= size)) {
      check(hexes(tree.consistencyProof(m, size)), hexes(reference.proof(m, size)), `consistencyProof(${m}, ${size})`);
    }
  }
  t.pass();
});

test('hashes handed out are copies: writing to them, or to the leaves given, changes nothing', (t) => {
  const count = 1024 + 3;
  const reference = new ReferenceTree(Array.from({ length: count }, (_, i) => Uint8Array.of(i & 0xff, i >> 8)));
  const input = reference.leafHashes();
  const tree = new MerkleTree(input);
  for (const hash of input) hash.fill(0xaa);
  const handedOut = [
    tree.root(),
    tree.root(1000),
    tree.leafHash(0),
    tree.leafHash(count - 1),
    ...tree.inclusionProof(1024, count),
    ...tree.inclusionProof(3, 1025),
    ...tree.consistencyProof(1000, count),
    ...tree.consistencyProof(3, 1024),
  ];
  for (const hash of handedOut) {
    t.is(hash.length, 32);
    t.is(hash.buffer.byteLength, 32, 'a copy of its own, not a view into the tree');
    hash.fill(0x55);
  }
  tree.append(reference.mth(0, 1)); // and growing the tree after all that
  const grown = new ReferenceTree([
    ...Array.from({ length: count }, (_, i) => Uint8Array.of(i & 0xff, i >> 8)),
    Uint8Array.of(0, 0),
  ]);
  t.notThrows(() => compare(tree, grown, count + 1, [count + 1, 1024, 1000]));
});
