/**
 * In Node the protocol hashes with node:crypto and encodes base64 with Buffer
 * (found at run time: crypto/node.ts). These check that the results are those of
 * the portable code browsers run: @stablelib's hashes, and a strict base64
 * written out here as the reference.
 */
import { HMAC, hmac } from '@stablelib/hmac';
import { SHA256, hash } from '@stablelib/sha256';
import test from 'ava';
import fc from 'fast-check';
import { fromBase64, fromHex, isWellFormedString, toBase64, toHex } from '../src/bytes.js';
import { nodeBuffer, nodeCrypto } from '../src/crypto/node.js';
import { HmacSha256, hmacSha256, sha256, sha256Parts } from '../src/crypto/sha256.js';
import { E2ekvError } from '../src/errors.js';

const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

function referenceToBase64(bytes: Uint8Array): string {
  let bits = '';
  for (const b of bytes) bits += b.toString(2).padStart(8, '0');
  while (bits.length % 6 !== 0) bits += '0';
  let out = '';
  for (let i = 0; i < bits.length; i += 6) out += alphabet[parseInt(bits.slice(i, i + 6), 2)];
  while (out.length % 4 !== 0) out += '=';
  return out;
}

/** The strict decoder's verdict: the bytes, or the error code. */
function referenceFromBase64(text: string): Uint8Array | 'MALFORMED' | 'NON_CANONICAL' {
  if (text.length % 4 !== 0) return 'MALFORMED';
  const padding = text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0;
  const body = text.slice(0, text.length - padding);
  if ([...body].some((c) => !alphabet.includes(c))) return 'MALFORMED';
  let bits = '';
  for (const c of body) bits += alphabet.indexOf(c).toString(2).padStart(6, '0');
  const length = (text.length / 4) * 3 - padding;
  if (bits.slice(length * 8).includes('1')) return 'NON_CANONICAL';
  return Uint8Array.from({ length }, (_, i) => parseInt(bits.slice(i * 8, i * 8 + 8), 2));
}

function verdict(text: string): Uint8Array | string {
  try {
    return fromBase64(text);
  } catch (error) {
    return error instanceof E2ekvError ? error.code : 'other';
  }
}

test('Node 20.16 and later have node:crypto and Buffer through process.getBuiltinModule', (t) => {
  t.not(nodeCrypto, undefined);
  t.not(nodeBuffer, undefined);
});

test('SHA-256 and HMAC-SHA-256 equal @stablelib on every size around the block boundaries', (t) => {
  const key = Uint8Array.from({ length: 32 }, (_, i) => i * 7);
  const long = Uint8Array.from({ length: 100 }, (_, i) => i);
  const keyed = new HmacSha256(key);
  const keyedLong = new HmacSha256(long);
  for (let n = 0; n <= 300; n++) {
    const data = Uint8Array.from({ length: n }, (_, i) => (i * 31 + n) & 255);
    t.deepEqual(sha256(data), hash(data));
    t.deepEqual(sha256Parts(data.subarray(0, n >> 1), data.subarray(n >> 1)), hash(data));
    t.deepEqual(hmacSha256(key, data), hmac(SHA256, key, data));
    t.deepEqual(keyed.mac(data), hmac(SHA256, key, data));
    t.deepEqual(keyedLong.mac(data), hmac(SHA256, long, data));
  }
  const big = new Uint8Array(2_000_000).map((_, i) => i % 251);
  t.deepEqual(sha256(big), hash(big));
  const reused = new HMAC(SHA256, key);
  t.deepEqual(keyed.mac(big), reused.update(big).digest());
});

test('hashes are plain Uint8Arrays of their own', (t) => {
  for (const digest of [
    sha256(new Uint8Array(3)),
    sha256Parts(new Uint8Array(3)),
    hmacSha256(new Uint8Array(3), new Uint8Array(3)),
  ]) {
    t.is(digest.constructor, Uint8Array);
    t.is(digest.byteLength, 32);
    t.is(digest.buffer.byteLength, 32);
  }
});

test('toBase64 equals the reference encoding, for views into larger buffers too', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(8), (bytes, offset) => {
      const padded = new Uint8Array(bytes.length + offset + 5).fill(0xff);
      padded.set(bytes, offset);
      const view = padded.subarray(offset, offset + bytes.length);
      t.is(toBase64(bytes), referenceToBase64(bytes));
      t.is(toBase64(view), referenceToBase64(bytes));
    }),
    { numRuns: 2000 },
  );
});

test('fromBase64 gives the reference verdict on valid, mutated and arbitrary text', (t) => {
  const chars = [...alphabet, '=', '-', '_', ' ', '\n', '.', 'é', '\u0000', '\ud800'];
  const mutated = fc
    .tuple(fc.uint8Array({ maxLength: 60 }), fc.array(fc.tuple(fc.nat(), fc.constantFrom(...chars)), { maxLength: 3 }))
    .map(([bytes, edits]) => {
      const text = [...referenceToBase64(bytes)];
      for (const [at, c] of edits) if (text.length > 0) text[at % text.length] = c;
      return text.join('');
    });
  const arbitrary = fc.array(fc.constantFrom(...chars), { maxLength: 16 }).map((a) => a.join(''));
  fc.assert(
    fc.property(fc.oneof(mutated, arbitrary), (text) => {
      const expected = referenceFromBase64(text);
      const got = verdict(text);
      t.deepEqual(got, expected, JSON.stringify(text));
      if (got instanceof Uint8Array) {
        t.is(got.constructor, Uint8Array);
        t.is(got.buffer.byteLength, got.length);
      }
    }),
    { numRuns: 5000 },
  );
  for (const text of ['', 'AA==', 'AB==', 'AAA=', 'AAB=', 'A===', '====', 'AAAA', 'AA=A', 'AA', 'AA AA==']) {
    t.deepEqual(verdict(text), referenceFromBase64(text), text);
  }
});

test('isWellFormedString rejects lone surrogates only', (t) => {
  for (const [text, ok] of [
    ['', true],
    ['abc', true],
    ['\ud83d\ude00', true],
    ['\ud83d', false],
    ['\ude00', false],
    ['a\ude00\ud83d', false],
    ['\ud83d\ud83d\ude00', false],
  ] as const) {
    t.is(isWellFormedString(text), ok, JSON.stringify(text));
  }
});

test('toHex and fromHex equal the reference, and fromHex still takes lowercase hex only', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 80 }), fc.nat(8), (bytes, offset) => {
      const padded = new Uint8Array(bytes.length + offset + 3).fill(0xee);
      padded.set(bytes, offset);
      const reference = [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
      t.is(toHex(padded.subarray(offset, offset + bytes.length)), reference);
      const back = fromHex(reference);
      t.deepEqual(back, bytes);
      t.is(back.constructor, Uint8Array);
      t.is(back.buffer.byteLength, bytes.length);
    }),
  );
  for (const bad of ['0', 'AB', '0g', 'zz', ' 00', '00 ', '0x00']) {
    t.is(t.throws(() => fromHex(bad), { instanceOf: E2ekvError })?.code, 'MALFORMED', bad);
  }
});
