import test from 'ava';
import fc from 'fast-check';
import { checkCheckpointProgress } from '../src/checkpoint.js';
import { codeOf } from '../../test/support/errors.js';
import { leafHash, MerkleTree } from '../src/merkle.js';

function tree(n: number, salt = 0): MerkleTree {
  return new MerkleTree(Array.from({ length: n }, (_, i) => leafHash(Uint8Array.of(i & 255, i >> 8, salt))));
}

test('a consistent larger checkpoint is newer, the same one is same', (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 200 }), fc.integer({ min: 0, max: 200 }), (m, extra) => {
      const log = tree(m + extra);
      const pinned = { size: BigInt(m), root: log.root(m) };
      const next = { size: BigInt(m + extra), root: log.root() };
      const proof = extra === 0 ? [] : log.consistencyProof(m);
      t.is(checkCheckpointProgress(pinned, next, proof), extra === 0 ? 'same' : 'newer');
    }),
  );
});

test('rollback, same-size fork and inconsistent growth are named', (t) => {
  const log = tree(10);
  const fork = tree(10, 1);
  const pinned = { size: 6n, root: log.root(6) };
  t.is(
    codeOf(() => checkCheckpointProgress(pinned, { size: 5n, root: log.root(5) }, [])),
    'ROLLBACK',
  );
  t.is(
    codeOf(() => checkCheckpointProgress(pinned, { size: 6n, root: fork.root(6) }, [])),
    'EQUIVOCATION',
  );
  // A fork that grew: its own proof does not connect it to our pin.
  t.is(
    codeOf(() => checkCheckpointProgress(pinned, { size: 10n, root: fork.root() }, fork.consistencyProof(6))),
    'EQUIVOCATION',
  );
  // The right tree with a missing proof hash.
  t.is(
    codeOf(() => checkCheckpointProgress(pinned, { size: 10n, root: log.root() }, log.consistencyProof(6).slice(1))),
    'EQUIVOCATION',
  );
  t.is(
    codeOf(() => checkCheckpointProgress({ size: 0n, root: log.root(0) }, { size: 1n, root: log.root(1) }, [])),
    'INVALID_ARGUMENT',
  );
});
