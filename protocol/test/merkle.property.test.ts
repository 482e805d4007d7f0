/**
 * Properties of the Merkle module over random trees of 1 to 300 leaves: what
 * is built verifies, and any change to what is verified is rejected.
 */
import test from 'ava';
import fc from 'fast-check';

import { bytesEqual } from '../src/bytes.js';
import { E2ekvError } from '../src/errors.js';
import { MerkleTree, leafHash, rootFromLeafHashes, verifyConsistency, verifyInclusion } from '../src/merkle.js';

// Leaf contents are short and may repeat: equal leaves in different places
// must not confuse proofs either.
const leafLists = fc
  .array(fc.uint8Array({ maxLength: 4 }), { minLength: 1, maxLength: 300, size: 'max' })
  .map((leaves) => leaves.map(leafHash));

// A tree, plus a size and a position within that size picked by the generator
// so that shrinking keeps them valid.
const treesWithPosition = fc.tuple(leafLists, fc.nat(), fc.nat(), fc.nat()).map(([leaves, s, i, o]) => {
  const size = 1 + (s % leaves.length);
  return { leaves, size, index: i % size, otherSize: 1 + (o % leaves.length) };
});

function rejects(fn: () => void): boolean {
  try {
    fn();
  } catch (error) {
    if (error instanceof E2ekvError && error.code === 'BAD_PROOF') return true;
    throw error;
  }
  return false;
}

function check(condition: boolean, what: string): void {
  if (!condition) throw new Error(`failed: ${what}`);
}

function sameHashes(a: readonly Uint8Array[], b: readonly Uint8Array[]): boolean {
  return a.length === b.length && a.every((hash, i) => bytesEqual(hash, b[i]!));
}

function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const out = bytes.slice();
  out[(bit >> 3) % out.length]! ^= 1 << (bit & 7);
  return out;
}

test('the incremental root equals MTH for every prefix', (t) => {
  fc.assert(
    fc.property(leafLists, (leaves) => {
      const tree = new MerkleTree();
      leaves.forEach((leaf, n) => {
        tree.append(leaf);
        if (!bytesEqual(tree.root(), rootFromLeafHashes(leaves.slice(0, n + 1)))) throw new Error(`size ${n + 1}`);
      });
      // Past sizes are answered from the full tree too.
      const n = Math.ceil(leaves.length / 3);
      return bytesEqual(tree.root(n), rootFromLeafHashes(leaves.slice(0, n)));
    }),
    { numRuns: 12 },
  );
  t.pass();
});

test('every inclusion proof of the full tree and of one earlier size verifies', (t) => {
  fc.assert(
    fc.property(treesWithPosition, ({ leaves, size }) => {
      const tree = new MerkleTree(leaves);
      for (const n of [leaves.length, size]) {
        const root = rootFromLeafHashes(leaves.slice(0, n));
        for (let i = 0; i < n; i++) {
          verifyInclusion(BigInt(i), BigInt(n), leaves[i]!, tree.inclusionProof(i, n), root);
        }
      }
    }),
    { numRuns: 30 },
  );
  t.pass();
});

test('every consistency proof into the full tree and from one earlier size verifies', (t) => {
  fc.assert(
    fc.property(treesWithPosition, ({ leaves, size }) => {
      const tree = new MerkleTree(leaves);
      const roots = leaves.map((_, n) => tree.root(n + 1));
      const rootOf = (n: number): Uint8Array => roots[n - 1]!;
      const last = leaves.length;
      for (let m = 1; m <= last; m++) {
        verifyConsistency(BigInt(m), BigInt(last), tree.consistencyProof(m, last), rootOf(m), rootOf(last));
      }
      for (let n = size; n <= last; n++) {
        verifyConsistency(BigInt(size), BigInt(n), tree.consistencyProof(size, n), rootOf(size), rootOf(n));
      }
      // Roots computed by the tree are the independently computed ones.
      return bytesEqual(rootOf(size), rootFromLeafHashes(leaves.slice(0, size)));
    }),
    { numRuns: 30 },
  );
  t.pass();
});

// A proof may pass for a claim other than the one it was built for only if
// that claim is true and the tree builds the very same proof for it: with
// repeated leaves, different positions and sizes can share a proof.
test('an inclusion proof fails with any bit flipped, and for any false claim', (t) => {
  fc.assert(
    fc.property(treesWithPosition, fc.nat(), ({ leaves, size, index, otherSize }, bit) => {
      const tree = new MerkleTree(leaves);
      const proof = tree.inclusionProof(index, size);
      const root = tree.root(size);
      const leaf = leaves[index]!;
      const passes = (i: number, n: number, l: Uint8Array, p: Uint8Array[], r: Uint8Array): boolean =>
        !rejects(() => verifyInclusion(BigInt(i), BigInt(n), l, p, r));

      check(passes(index, size, leaf, proof, root), 'the built proof verifies');
      proof.forEach((_, k) => {
        const tampered = proof.map((hash, j) => (j === k ? flipBit(hash, bit) : hash));
        check(!passes(index, size, leaf, tampered, root), `proof hash ${k} flipped`);
      });
      check(!passes(index, size, leaf, proof, flipBit(root, bit)), 'root flipped');
      check(!passes(index, size, flipBit(leaf, bit), proof, root), 'leaf flipped');
      for (let i = 0; i < size; i++) {
        const sameLeaf = bytesEqual(leaves[i]!, leaf);
        if (passes(index, size, leaves[i]!, proof, root)) check(sameLeaf, `leaf ${i} in place of leaf ${index}`);
        if (passes(i, size, leaf, proof, root)) {
          check(sameLeaf && sameHashes(proof, tree.inclusionProof(i, size)), `index ${i} in place of ${index}`);
        }
      }
      // With that size's own root; against this size's root a proof can pass
      // for a smaller size (see merkle.test.ts), which is why sizes come from
      // checkpoints.
      if (index < otherSize && passes(index, otherSize, leaf, proof, tree.root(otherSize))) {
        check(sameHashes(proof, tree.inclusionProof(index, otherSize)), `size ${otherSize} in place of ${size}`);
      }
    }),
    { numRuns: 150 },
  );
  t.pass();
});

test('a consistency proof fails with any bit flipped, and for any false claim', (t) => {
  fc.assert(
    fc.property(treesWithPosition, fc.nat(), ({ leaves, size, otherSize }, bit) => {
      const tree = new MerkleTree(leaves);
      const m = Math.min(size, otherSize);
      const n = Math.max(size, otherSize);
      const proof = tree.consistencyProof(m, n);
      const root1 = tree.root(m);
      const root2 = tree.root(n);
      const passes = (s1: number, s2: number, p: Uint8Array[], r1: Uint8Array, r2: Uint8Array): boolean =>
        !rejects(() => verifyConsistency(BigInt(s1), BigInt(s2), p, r1, r2));

      check(passes(m, n, proof, root1, root2), 'the built proof verifies');
      proof.forEach((_, k) => {
        const tampered = proof.map((hash, j) => (j === k ? flipBit(hash, bit) : hash));
        check(!passes(m, n, tampered, root1, root2), `proof hash ${k} flipped`);
      });
      check(!passes(m, n, proof, flipBit(root1, bit), root2), 'old root flipped');
      check(!passes(m, n, proof, root1, flipBit(root2, bit)), 'new root flipped');
      if (m !== n) check(!passes(m, n, proof, root2, root1), 'roots swapped');
      // Other sizes, each with its own true root: only a proof the tree would
      // build for them may pass.
      for (let other = 1; other <= leaves.length; other++) {
        if (other !== m && other <= n && passes(other, n, proof, tree.root(other), root2)) {
          check(sameHashes(proof, tree.consistencyProof(other, n)), `old size ${other} in place of ${m}`);
        }
        if (other !== n && other >= m && passes(m, other, proof, root1, tree.root(other))) {
          check(sameHashes(proof, tree.consistencyProof(m, other)), `new size ${other} in place of ${n}`);
        }
      }
    }),
    { numRuns: 150 },
  );
  t.pass();
});
