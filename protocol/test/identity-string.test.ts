import { createHash } from 'node:crypto';
import test from 'ava';
import fc from 'fast-check';
import nacl from 'tweetnacl';
import { toHex } from '../src/bytes.js';
import { ed25519PublicKeyFromSeed } from '../src/crypto/ed25519.js';
import {
  formatIdentityString,
  IDENTITY_STRING_LENGTH,
  identityFingerprint,
  parseIdentityString,
  type PublicDeviceKeys,
} from '../src/identity-string.js';
import { codeOf } from '../../test/support/errors.js';

const seed32 = fc.uint8Array({ minLength: 32, maxLength: 32 });
const identity: fc.Arbitrary<PublicDeviceKeys> = fc.tuple(seed32, seed32).map(([signingSeed, boxSecret]) => ({
  signingKey: ed25519PublicKeyFromSeed(signingSeed),
  boxKey: nacl.scalarMult.base(boxSecret),
}));

const sample: PublicDeviceKeys = {
  signingKey: ed25519PublicKeyFromSeed(new Uint8Array(32).fill(1)),
  boxKey: nacl.scalarMult.base(new Uint8Array(32).fill(2)),
};

/** An identity string with any 32 + 32 bytes and their correct checksum, as SPEC 21.1 spells it. */
function handMade(signingKey: Uint8Array, boxKey: Uint8Array): string {
  const sum = createHash('sha256').update('e2ekv/v1/identity\0').update(signingKey).update(boxKey).digest();
  return 'e2ekv-id1-' + Buffer.concat([signingKey, boxKey, sum.subarray(0, 4)]).toString('base64url');
}

test('identity strings round-trip, are 101 characters and match the SPEC layout', (t) => {
  fc.assert(
    fc.property(identity, (keys) => {
      const text = formatIdentityString(keys);
      t.is(text.length, IDENTITY_STRING_LENGTH);
      t.is(text.length, 101);
      t.regex(text, /^e2ekv-id1-[A-Za-z0-9_-]{91}$/);
      t.is(text, handMade(keys.signingKey, keys.boxKey));
      const parsed = parseIdentityString(text);
      t.is(toHex(parsed.signingKey), toHex(keys.signingKey));
      t.is(toHex(parsed.boxKey), toHex(keys.boxKey));
    }),
    { numRuns: 50 },
  );
});

test('a wrong prefix is MALFORMED, another version UNSUPPORTED_VERSION', (t) => {
  const text = formatIdentityString(sample);
  const rest = text.slice('e2ekv-id1-'.length);
  t.is(
    codeOf(() => parseIdentityString('e2ekv-id2-' + rest)),
    'UNSUPPORTED_VERSION',
  );
  t.is(
    codeOf(() => parseIdentityString('e2ekv-id10-' + rest)),
    'UNSUPPORTED_VERSION',
  );
  t.is(
    codeOf(() => parseIdentityString('e2ekv-ID1-' + rest)),
    'MALFORMED',
  );
  t.is(
    codeOf(() => parseIdentityString('e2ekv-invite1-' + rest)),
    'MALFORMED',
  );
  t.is(
    codeOf(() => parseIdentityString(rest)),
    'MALFORMED',
  );
  t.is(
    codeOf(() => parseIdentityString('')),
    'MALFORMED',
  );
});

test('length, padding, alphabet and whitespace are MALFORMED; unused bits NON_CANONICAL', (t) => {
  const text = formatIdentityString(sample);
  t.is(
    codeOf(() => parseIdentityString(text.slice(0, -1))),
    'MALFORMED',
    'one character short',
  );
  t.is(
    codeOf(() => parseIdentityString(text + 'A')),
    'MALFORMED',
    'one character long',
  );
  t.is(
    codeOf(() => parseIdentityString(text + '=')),
    'MALFORMED',
    'padded',
  );
  t.is(
    codeOf(() => parseIdentityString(text + '\n')),
    'MALFORMED',
    'trailing newline (callers trim)',
  );
  t.is(
    codeOf(() => parseIdentityString(' ' + text.slice(1))),
    'MALFORMED',
  );
  t.is(
    codeOf(() => parseIdentityString(text.slice(0, -1) + '=')),
    'MALFORMED',
    'padding in place of a character',
  );
  for (const c of ['+', '/', '.', 'é']) {
    t.is(
      codeOf(() => parseIdentityString(text.slice(0, 30) + c + text.slice(31))),
      'MALFORMED',
      `contains ${c}`,
    );
  }
  // 68 bytes leave two unused bits in the last character.
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const last = alphabet.indexOf(text[text.length - 1]!);
  t.is(last & 3, 0);
  t.is(
    codeOf(() => parseIdentityString(text.slice(0, -1) + alphabet[last | 1]!)),
    'NON_CANONICAL',
  );
});

test('any one mistyped character is caught (checksum or canonical bits)', (t) => {
  const text = formatIdentityString(sample);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  fc.assert(
    fc.property(fc.integer({ min: 10, max: 100 }), fc.integer({ min: 1, max: 63 }), (at, shift) => {
      const replaced = alphabet[(alphabet.indexOf(text[at]!) + shift) % 64]!;
      const code = codeOf(() => parseIdentityString(text.slice(0, at) + replaced + text.slice(at + 1)));
      t.true(code === 'MALFORMED' || code === 'NON_CANONICAL', code);
    }),
    { numRuns: 300 },
  );
  const swapped = text.slice(0, 20) + text[21] + text[20] + text.slice(22);
  if (swapped !== text)
    t.is(
      codeOf(() => parseIdentityString(swapped)),
      'MALFORMED',
      'two characters swapped',
    );
});

test('keys that fail the enrolment checks are BAD_KEY, even with a correct checksum', (t) => {
  const identityPoint = Uint8Array.of(1, ...new Uint8Array(31));
  t.is(
    codeOf(() => parseIdentityString(handMade(identityPoint, sample.boxKey))),
    'BAD_KEY',
    'small-order signing key',
  );
  // y = p (2^255 - 19): not a canonical encoding.
  const yIsP = Uint8Array.of(0xed, ...new Uint8Array(30).fill(0xff), 0x7f);
  t.is(
    codeOf(() => parseIdentityString(handMade(yIsP, sample.boxKey))),
    'BAD_KEY',
    'non-canonical signing key',
  );
  // A prime-order point plus a point of order 8 (from the C2SP edge cases): mixed order.
  const orderEight = Buffer.from('c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a', 'hex');
  t.is(
    codeOf(() => parseIdentityString(handMade(orderEight, sample.boxKey))),
    'BAD_KEY',
    'order-8 signing key',
  );
  t.is(
    codeOf(() => parseIdentityString(handMade(sample.signingKey, new Uint8Array(32)))),
    'BAD_KEY',
    'zero box key',
  );
  t.is(
    codeOf(() => formatIdentityString({ ...sample, boxKey: new Uint8Array(31) })),
    'INVALID_ARGUMENT',
  );
});

test('fingerprints: five groups of four hex digits of SHA-256 over the tag and both keys', (t) => {
  fc.assert(
    fc.property(identity, (keys) => {
      const fingerprint = identityFingerprint(keys);
      t.regex(fingerprint, /^[0-9a-f]{4}( [0-9a-f]{4}){4}$/);
      const digest = createHash('sha256')
        .update('e2ekv/v1/fingerprint\0')
        .update(keys.signingKey)
        .update(keys.boxKey)
        .digest('hex');
      t.is(fingerprint.replaceAll(' ', ''), digest.slice(0, 20));
    }),
    { numRuns: 50 },
  );
  const other = { ...sample, boxKey: nacl.scalarMult.base(new Uint8Array(32).fill(3)) };
  t.not(identityFingerprint(sample), identityFingerprint(other), 'the box key is part of the fingerprint');
});
