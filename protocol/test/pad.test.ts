import test from 'ava';
import fc from 'fast-check';
import { padme } from '../src/crypto/pad.js';

// Values computed with the paper's reference algorithm (Listing 1 of the PURBs paper).
const known: [number, number][] = [
  [1, 1],
  [2, 2],
  [3, 3],
  [4, 4],
  [5, 5],
  [8, 8],
  [9, 10],
  [36, 36],
  [37, 40],
  [100, 104],
  [1000, 1024],
  [1025, 1088],
  [4096, 4096],
  [4097, 4352],
  [65535, 65536],
  [1_000_000, 1_015_808],
  [2 ** 31 + 1, 2_214_592_512],
  [2 ** 32 - 1, 2 ** 32],
];

test('Padmé matches the reference values', (t) => {
  for (const [length, padded] of known) t.is(padme(length), padded, `padme(${length})`);
});

test('Padmé never shrinks, is idempotent and monotone, and costs at most 12%', (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 2 ** 32 - 2 }), (length) => {
      const padded = padme(length);
      t.true(padded >= length);
      // Padded lengths can reach 2^32, just outside the domain.
      if (padded <= 2 ** 32 - 1) t.is(padme(padded), padded);
      t.true(padme(length + 1) >= padded);
      t.true((padded - length) / length <= 0.12);
    }),
  );
});

test('Padmé rejects lengths outside 1 to 2^32-1', (t) => {
  for (const bad of [0, -1, 1.5, 2 ** 32, Number.NaN]) t.is(t.throws(() => padme(bad))?.name, 'E2ekvError');
});
