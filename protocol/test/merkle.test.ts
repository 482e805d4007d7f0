/**
 * The Merkle module against data it did not produce: the transparency-dev
 * proof vectors, the RFC 6962 reference tree, and the worked example of
 * RFC 6962 section 2.1.3.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { fromHex, toHex } from '../src/bytes.js';
import { E2ekvError } from '../src/errors.js';
import {
  EMPTY_ROOT,
  HASH_LENGTH,
  MerkleTree,
  consistencyProofLength,
  inclusionProofLength,
  leafHash,
  nodeHash,
  rootFromInclusionProof,
  rootFromLeafHashes,
  verifyConsistency,
  verifyInclusion,
} from '../src/merkle.js';

// In CI the shared vectors sit next to the repository, not inside it.
const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const merkleDir = path.resolve(repoRoot, '../shared/vectors/merkle');

/**
 * SHA-256 over every file under shared/vectors/merkle, sorted by relative path
 * (code-unit order, '/' separators), each contributing
 * `path NUL byteLength NUL content`. Any edit, addition or removal changes it.
 * To update after a deliberate change to the vectors: review the diff of the
 * vector files, run this test, and copy the digest its failure message prints.
 * The same digest, computed without this code, from shared/vectors/merkle:
 *   python3 -c "import os,hashlib;h=hashlib.sha256()
 *   for f in sorted(os.path.relpath(os.path.join(r,n)) for r,_,fs in os.walk('.') for n in fs):
 *     c=open(f,'rb').read();h.update(f.encode()+b'\0'+str(len(c)).encode()+b'\0'+c)
 *   print(h.hexdigest())"
 */
const VECTORS_DIGEST = '4047c6abcd4ce659e115c1cc1c2229ffcc304eb357bf5331b2a1094e71c4e4c8';
const CASE_COUNT = 196;

/**
 * Cases where this implementation deliberately disagrees with the vector,
 * with the reason. Each entry is checked: the vector must still say what is
 * written here, and the implementation must still give the other verdict.
 */

function listFiles(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const relative = prefix + entry.name;
    if (entry.isDirectory()) out.push(...listFiles(path.join(dir, entry.name), relative + '/'));
    else out.push(relative);
  }
  return out.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

const allFiles = listFiles(merkleDir);
const caseFiles = allFiles.filter((f) => f.startsWith('inclusion/') || f.startsWith('consistency/'));

// Lenient on purpose: some vectors hold garbage base64, and the verifier, not
// the test's decoder, must be the one to reject what it decodes to.
function bytes(base64: string): Uint8Array {
  return Uint8Array.from(Buffer.from(base64, 'base64'));
}

// JSON.parse rounds integers above 2^53, so the digits come from the source text;
// the parsed number is used only to check that the right field was found.
function bigField(raw: string, parsed: Record<string, unknown>, name: string): bigint {
  const matches = [...raw.matchAll(new RegExp(`"${name}"\\s*:\\s*(\\d+)\\s*[,}]`, 'g'))];
  if (matches.length !== 1) throw new Error(`field ${name}: found ${matches.length} unsigned integers, expected 1`);
  const value = BigInt(matches[0]![1]!);
  if (Number(value) !== parsed[name]) throw new Error(`field ${name}: source text and parsed value disagree`);
  return value;
}

function hashList(value: unknown): Uint8Array[] {
  // Go's test data writes an empty proof as null.
  if (value === null) return [];
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw new Error('proof is not a list');
  return value.map(bytes);
}

function readCase(relative: string): { raw: string; json: Record<string, unknown>; wantErr: boolean } {
  const raw = readFileSync(path.join(merkleDir, relative), 'utf8');
  const json = JSON.parse(raw) as Record<string, unknown>;
  if (typeof json['wantErr'] !== 'boolean') throw new Error('wantErr is not a boolean');
  return { raw, json, wantErr: json['wantErr'] };
}

function runCase(relative: string): void {
  const { raw, json } = readCase(relative);
  const str = (name: string): string => {
    const v = json[name];
    if (typeof v !== 'string') throw new Error(`field ${name} is not a string`);
    return v;
  };
  if (relative.startsWith('inclusion/')) {
    verifyInclusion(
      bigField(raw, json, 'leafIdx'),
      bigField(raw, json, 'treeSize'),
      bytes(str('leafHash')),
      hashList(json['proof']),
      bytes(str('root')),
    );
  } else {
    verifyConsistency(
      bigField(raw, json, 'size1'),
      bigField(raw, json, 'size2'),
      hashList(json['proof']),
      bytes(str('root1')),
      bytes(str('root2')),
    );
  }
}

function throwsBadProof(fn: () => void): boolean {
  try {
    fn();
  } catch (error) {
    return error instanceof E2ekvError && error.code === 'BAD_PROOF';
  }
  return false;
}

test(`the shared Merkle vectors are the expected ${CASE_COUNT} case files, unaltered`, (t) => {
  t.is(caseFiles.length, CASE_COUNT, `found ${caseFiles.length} case files under ${merkleDir}`);
  t.true(allFiles.includes('reference-tree.json'));
  const digest = createHash('sha256');
  for (const relative of allFiles) {
    const content = readFileSync(path.join(merkleDir, relative));
    digest.update(`${relative}\0${content.length}\0`).update(content);
  }
  t.is(digest.digest('hex'), VECTORS_DIGEST, 'a vector file changed: see VECTORS_DIGEST');
});

test('every shared inclusion and consistency vector gets the verdict it expects', (t) => {
  const failures: string[] = [];
  let ran = 0;
  let accepted = 0;
  for (const relative of caseFiles) {
    ran++;
    let wantErr: boolean;
    try {
      wantErr = readCase(relative).wantErr;
    } catch (error) {
      failures.push(`${relative}: unreadable case: ${String(error)}`);
      continue;
    }
    let outcome: unknown = 'accepted';
    try {
      runCase(relative);
      accepted++;
    } catch (error) {
      outcome = error;
    }
    if (!wantErr && outcome !== 'accepted') {
      failures.push(`${relative}: expected success, got ${String(outcome)}`);
    }
    if (wantErr && !(outcome instanceof E2ekvError && outcome.code === 'BAD_PROOF')) {
      failures.push(`${relative}: expected BAD_PROOF, got ${outcome === 'accepted' ? 'success' : String(outcome)}`);
    }
  }
  t.deepEqual(failures, []);
  t.is(ran, CASE_COUNT);
  // 12 of the 196 vectors expect success.
  t.is(accepted, 12);
});

// ---- The RFC 6962 reference tree ----

interface ReferenceTree {
  leaves_hex: string[];
  roots_hex: Record<string, string>;
}
const reference = JSON.parse(readFileSync(path.join(merkleDir, 'reference-tree.json'), 'utf8')) as ReferenceTree;
const referenceLeaves = reference.leaves_hex.map((hex) => leafHash(fromHex(hex)));
const referenceRoot = (n: number): Uint8Array => fromHex(reference.roots_hex[String(n)]!);
const referenceTree = new MerkleTree(referenceLeaves);

test('MTH of every prefix of the reference tree equals the independently computed root', (t) => {
  t.is(referenceLeaves.length, 8);
  t.deepEqual(Object.keys(reference.roots_hex), ['0', '1', '2', '3', '4', '5', '6', '7', '8']);
  for (let n = 0; n <= 8; n++) {
    const expected = reference.roots_hex[String(n)]!;
    t.is(toHex(rootFromLeafHashes(referenceLeaves.slice(0, n))), expected, `rootFromLeafHashes, size ${n}`);
    t.is(toHex(referenceTree.root(n)), expected, `MerkleTree.root(${n})`);
    t.is(toHex(new MerkleTree(referenceLeaves.slice(0, n)).root()), expected, `tree of ${n} leaves`);
  }
  t.is(toHex(EMPTY_ROOT), reference.roots_hex['0']!);
});

test('every inclusion and consistency proof of the reference tree verifies against the reference roots', (t) => {
  let inclusion = 0;
  let consistency = 0;
  for (let n = 1; n <= 8; n++) {
    for (let i = 0; i < n; i++) {
      const proof = referenceTree.inclusionProof(i, n);
      t.is(proof.length, inclusionProofLength(BigInt(i), BigInt(n)));
      t.notThrows(() => verifyInclusion(BigInt(i), BigInt(n), referenceLeaves[i]!, proof, referenceRoot(n)));
      inclusion++;
    }
    for (let m = 1; m <= n; m++) {
      const proof = referenceTree.consistencyProof(m, n);
      t.is(proof.length, consistencyProofLength(BigInt(m), BigInt(n)));
      t.notThrows(() => verifyConsistency(BigInt(m), BigInt(n), proof, referenceRoot(m), referenceRoot(n)));
      consistency++;
    }
  }
  t.is(inclusion, 36);
  t.is(consistency, 36);
});

test('proofs built from the reference tree equal the happy-path proofs of the vectors', (t) => {
  let compared = 0;
  for (const relative of caseFiles.filter((f) => f.endsWith('/happy-path.json'))) {
    const { raw, json } = readCase(relative);
    const proof = hashList(json['proof']).map(toHex);
    if (relative.startsWith('inclusion/')) {
      const index = Number(bigField(raw, json, 'leafIdx'));
      const size = Number(bigField(raw, json, 'treeSize'));
      if (size > 8) continue;
      // Same tree, or the comparison would mean nothing.
      t.is(toHex(bytes(json['root'] as string)), toHex(referenceRoot(size)), relative);
      t.is(toHex(bytes(json['leafHash'] as string)), toHex(referenceLeaves[index]!), relative);
      t.deepEqual(referenceTree.inclusionProof(index, size).map(toHex), proof, relative);
    } else {
      const size1 = Number(bigField(raw, json, 'size1'));
      const size2 = Number(bigField(raw, json, 'size2'));
      if (size2 > 8) continue;
      t.is(toHex(bytes(json['root1'] as string)), toHex(referenceRoot(size1)), relative);
      t.is(toHex(bytes(json['root2'] as string)), toHex(referenceRoot(size2)), relative);
      t.deepEqual(referenceTree.consistencyProof(size1, size2).map(toHex), proof, relative);
    }
    compared++;
  }
  t.is(compared, 10);
});

test('proofs match the worked example of RFC 6962 section 2.1.3', (t) => {
  // The 7-leaf tree of the RFC, with its node names; each node is computed
  // from its definition, not from MerkleTree.
  const d = referenceLeaves.slice(0, 7);
  const mth = (start: number, end: number): string => toHex(rootFromLeafHashes(d.slice(start, end)));
  const [, b, c, dd, , f, j] = d.map(toHex);
  const g = mth(0, 2);
  const h = mth(2, 4);
  const i = mth(4, 6);
  const k = mth(0, 4);
  const l = mth(4, 7);
  const tree = new MerkleTree(d);
  const path = (index: number): string[] => tree.inclusionProof(index, 7).map(toHex);
  const proof = (m: number): string[] => tree.consistencyProof(m, 7).map(toHex);
  t.deepEqual(path(0), [b, h, l]);
  t.deepEqual(path(3), [c, g, l]);
  t.deepEqual(path(4), [f, j, k]);
  t.deepEqual(path(6), [i, k]);
  t.deepEqual(proof(3), [c, dd, g, l]);
  t.deepEqual(proof(4), [l]);
  t.deepEqual(proof(6), [i, j, k]);
  t.is(toHex(tree.root()), toHex(nodeHash(fromHex(k), fromHex(l))));
});

// ---- The size-0 rule and other rejections ----

test('size 0: no consistency proof from the empty tree; a first checkpoint is checked from its entries', (t) => {
  // The vectors' rule, which SPEC.md adopts: old size 0 is an error whatever
  // the proof, even between two empty trees with equal roots. C2SP
  // tlog-witness would accept (0, n, [], EMPTY_ROOT, anything) as trivially
  // consistent; here that is BAD_PROOF.
  for (let n = 0; n <= 8; n++) {
    const error = t.throws(() => verifyConsistency(0n, BigInt(n), [], EMPTY_ROOT, referenceRoot(n)), {
      instanceOf: E2ekvError,
    });
    t.is(error.code, 'BAD_PROOF');
    t.regex(error.message, /size 0/);
    t.deepEqual(error.details, { size1: '0', size2: String(n) });
  }
  t.is(t.throws(() => referenceTree.consistencyProof(0, 8), { instanceOf: E2ekvError }).code, 'INVALID_ARGUMENT');
  // What the protocol does instead: recompute the first checkpoint's root from all of its entries.
  t.is(toHex(rootFromLeafHashes(referenceLeaves)), toHex(referenceRoot(8)));
  t.is(toHex(rootFromLeafHashes([])), toHex(EMPTY_ROOT));
  t.is(toHex(new MerkleTree().root()), toHex(EMPTY_ROOT));
  // Nothing is included in the empty tree.
  t.true(throwsBadProof(() => verifyInclusion(0n, 0n, referenceLeaves[0]!, [], EMPTY_ROOT)));
});

test('failures are BAD_PROOF with a message and details that say what failed', (t) => {
  const proof = referenceTree.inclusionProof(5, 8);
  const wrongRoot = t.throws(() => verifyInclusion(5n, 8n, referenceLeaves[5]!, proof, referenceRoot(7)), {
    instanceOf: E2ekvError,
  });
  t.is(wrongRoot.code, 'BAD_PROOF');
  t.is(wrongRoot.message, 'inclusion proof for leaf 5 in tree of size 8 does not lead to the expected root');
  t.deepEqual(wrongRoot.details, { leafIndex: '5', treeSize: '8' });

  const short = t.throws(
    () => verifyConsistency(3n, 7n, referenceTree.consistencyProof(3, 7).slice(1), referenceRoot(3), referenceRoot(7)),
    { instanceOf: E2ekvError },
  );
  t.is(short.code, 'BAD_PROOF');
  t.is(short.message, 'consistency proof has 3 hashes, expected 4');
  t.deepEqual(short.details, { size1: '3', size2: '7', proofLength: 3, expectedLength: 4 });
});

test('every hash must be 32 bytes: BAD_PROOF when verifying, MALFORMED when building', (t) => {
  const proof = referenceTree.inclusionProof(2, 5);
  const leaf = referenceLeaves[2]!;
  const root = referenceRoot(5);
  t.notThrows(() => verifyInclusion(2n, 5n, leaf, proof, root));
  for (const length of [0, 31, 33, 64]) {
    const odd = new Uint8Array(length);
    t.true(
      throwsBadProof(() => verifyInclusion(2n, 5n, odd, proof, root)),
      `leaf of ${length} bytes`,
    );
    t.true(
      throwsBadProof(() => verifyInclusion(2n, 5n, leaf, proof, odd)),
      `root of ${length} bytes`,
    );
    const badProof = [proof[0]!, odd, ...proof.slice(2)];
    t.true(
      throwsBadProof(() => verifyInclusion(2n, 5n, leaf, badProof, root)),
      `proof hash of ${length} bytes`,
    );
    const cProof = referenceTree.consistencyProof(3, 5);
    t.true(throwsBadProof(() => verifyConsistency(3n, 5n, [odd, ...cProof.slice(1)], referenceRoot(3), root)));
    t.true(throwsBadProof(() => verifyConsistency(3n, 5n, cProof, odd, root)));
    t.true(throwsBadProof(() => verifyConsistency(3n, 5n, cProof, referenceRoot(3), odd)));
    // Equal sizes are plain root equality, as in RFC 9162 and the vectors
    // (consistency/additional/sizes-are-equal-one-and-proof-is-empty.json).
    t.notThrows(() => verifyConsistency(5n, 5n, [], odd, odd.slice()));
    t.true(throwsBadProof(() => verifyConsistency(5n, 5n, [], odd, root)));
    for (const build of [
      () => new MerkleTree().append(odd),
      () => rootFromLeafHashes([leaf, odd]),
      () => nodeHash(leaf, odd),
    ]) {
      t.is(t.throws(build, { instanceOf: E2ekvError }).code, 'MALFORMED');
    }
  }
  t.is(HASH_LENGTH, 32);
});

test('sizes and indices: up to 2^63 - 1 on the wire, BAD_PROOF beyond; builders reject out-of-range arguments', (t) => {
  const max = (1n << 63n) - 1n;
  t.is(inclusionProofLength(0n, max), 63);
  t.is(inclusionProofLength(max - 1n, max), 62);
  t.is(consistencyProofLength(1n, max), 63);
  for (const [index, size] of [
    [0n, max + 1n],
    [max + 1n, max + 1n],
    [-1n, 8n],
    [8n, 8n],
    [9n, 8n],
    [(1n << 64n) - 1n, 1n],
  ] as const) {
    t.true(
      throwsBadProof(() => inclusionProofLength(index, size)),
      `${index} in ${size}`,
    );
  }
  t.true(throwsBadProof(() => verifyConsistency(1n, max + 1n, [], EMPTY_ROOT, EMPTY_ROOT)));
  t.true(throwsBadProof(() => verifyConsistency(-1n, 1n, [], EMPTY_ROOT, EMPTY_ROOT)));
  t.true(throwsBadProof(() => verifyConsistency(5n, 4n, [], referenceRoot(5), referenceRoot(4))));

  const tree = new MerkleTree(referenceLeaves.slice(0, 5));
  for (const build of [
    () => tree.inclusionProof(5),
    () => tree.inclusionProof(0, 0),
    () => tree.inclusionProof(0, 6),
    () => tree.inclusionProof(-1),
    () => tree.inclusionProof(0.5),
    () => tree.consistencyProof(4, 3),
    () => tree.consistencyProof(1, 6),
    () => tree.root(6),
    () => tree.leafHash(5),
  ]) {
    t.is(t.throws(build, { instanceOf: E2ekvError }).code, 'INVALID_ARGUMENT');
  }
});

test('verification works beyond 2^53 with proofs whose shape is known', (t) => {
  // The last leaf of a tree of 2^62 + 1 leaves hangs directly under the root,
  // next to the perfect subtree of the first 2^62 leaves.
  const first = leafHash(Uint8Array.of(1)); // stands for MTH(D[0:2^62])
  const last = leafHash(Uint8Array.of(2));
  const big = 1n << 62n;
  const root = nodeHash(first, last);
  t.notThrows(() => verifyInclusion(big, big + 1n, last, [first], root));
  t.is(toHex(rootFromInclusionProof(big, big + 1n, last, [first])), toHex(root));
  t.true(throwsBadProof(() => verifyInclusion(big - 1n, big + 1n, last, [first], root)));
  // The old tree of 2^62 leaves is perfect, so its root is not repeated in the proof.
  t.notThrows(() => verifyConsistency(big, big + 1n, [last], first, root));
  t.true(throwsBadProof(() => verifyConsistency(big, big + 1n, [first], last, root)));
  t.true(throwsBadProof(() => verifyConsistency(big + 1n, big + 1n, [], root, first)));
});

test('an inclusion proof alone does not bind the tree size: only the checkpoint does', (t) => {
  // Leaf 0 takes the same path, with the same siblings, in trees of 3 and 4
  // leaves, so RFC 9162 verification accepts the size-4 proof for either size
  // against the size-4 root. The size is authenticated by the signed
  // checkpoint that carries the root, never by the proof (SPEC.md).
  const proof = referenceTree.inclusionProof(0, 4);
  t.notThrows(() => verifyInclusion(0n, 4n, referenceLeaves[0]!, proof, referenceRoot(4)));
  t.notThrows(() => verifyInclusion(0n, 3n, referenceLeaves[0]!, proof, referenceRoot(4)));
  t.true(throwsBadProof(() => verifyInclusion(0n, 3n, referenceLeaves[0]!, proof, referenceRoot(3))));
});

test('the tree keeps its own copies of hashes', (t) => {
  const input = referenceLeaves[0]!.slice();
  const tree = new MerkleTree([input, referenceLeaves[1]!]);
  input.fill(0);
  tree.root().fill(0);
  tree.leafHash(0).fill(0);
  for (const hash of tree.inclusionProof(0)) hash.fill(0);
  t.is(toHex(tree.root()), toHex(referenceRoot(2)));
  t.is(toHex(tree.leafHash(0)), toHex(referenceLeaves[0]!));
});
