import { createPrivateKey, createPublicKey, diffieHellman, hkdfSync } from 'node:crypto';
import test from 'ava';
import fc from 'fast-check';
import nacl from 'tweetnacl';
import { fromHex, toHex } from '../src/bytes.js';
import {
  newEphemeralKeyPair,
  unwrapSecret,
  WRAP_OVERHEAD,
  wrapSecret,
  wrapSecretWithNonce,
  x25519PublicKey,
  type WrapContext,
} from '../src/crypto/wrap.js';
import { codeOf } from '../../test/support/errors.js';

const key32 = fc.uint8Array({ minLength: 32, maxLength: 32 });
const context: WrapContext = {
  vaultId: new Uint8Array(32).fill(9),
  label: 'e2ekv/v1 test-wrap',
  extra: Uint8Array.of(1, 2),
};

function device(fill: number) {
  const boxSecret = new Uint8Array(32).fill(fill);
  return { boxSecret, boxKey: x25519PublicKey(boxSecret) };
}

/** X25519 by node:crypto (OpenSSL), independent of @noble/curves. */
function nodeX25519(secret: Uint8Array, publicKey: Uint8Array): Uint8Array {
  const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64url');
  const privateKey = createPrivateKey({
    key: { kty: 'OKP', crv: 'X25519', d: b64(secret), x: b64(nacl.scalarMult.base(secret)) },
    format: 'jwk',
  });
  const peer = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: b64(publicKey) }, format: 'jwk' });
  return new Uint8Array(diffieHellman({ privateKey, publicKey: peer }));
}

test('x25519PublicKey matches RFC 7748 section 6.1', (t) => {
  const alice = fromHex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
  const bob = fromHex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb');
  t.is(toHex(x25519PublicKey(alice)), '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
  t.is(toHex(x25519PublicKey(bob)), 'de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
  t.is(
    toHex(nodeX25519(alice, x25519PublicKey(bob))),
    '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742',
  );
  t.is(
    codeOf(() => x25519PublicKey(new Uint8Array(31))),
    'INVALID_ARGUMENT',
  );
});

test('new ephemeral key pairs are fresh and consistent', (t) => {
  const a = newEphemeralKeyPair();
  const b = newEphemeralKeyPair();
  t.not(toHex(a.secretKey), toHex(b.secretKey));
  t.is(toHex(a.publicKey), toHex(x25519PublicKey(a.secretKey)));
});

test('wraps round-trip and are nonce || secretbox under the HKDF key of SPEC 21.2', (t) => {
  fc.assert(
    fc.property(
      key32,
      key32,
      fc.uint8Array({ maxLength: 200 }),
      key32,
      (recipientSecret, eSecret, plaintext, vaultId) => {
        const me = { boxSecret: recipientSecret, boxKey: x25519PublicKey(recipientSecret) };
        const ephemeral = { secretKey: eSecret, publicKey: x25519PublicKey(eSecret) };
        const ctx = { ...context, vaultId };
        const wrapped = wrapSecret(plaintext, me.boxKey, ephemeral, ctx);
        t.is(wrapped.length, plaintext.length + WRAP_OVERHEAD);
        t.is(toHex(unwrapSecret(wrapped, ephemeral.publicKey, me, ctx)), toHex(plaintext));
        // Independently: node:crypto X25519 and HKDF, tweetnacl secretbox.
        const shared = nodeX25519(eSecret, me.boxKey);
        const info = Buffer.concat([Buffer.from(ctx.label), ephemeral.publicKey, me.boxKey, ctx.extra]);
        const key = new Uint8Array(hkdfSync('sha256', shared, vaultId, info, 32));
        const opened = nacl.secretbox.open(wrapped.subarray(24), wrapped.subarray(0, 24), key);
        t.is(opened === null ? 'null' : toHex(opened), toHex(plaintext));
      },
    ),
    { numRuns: 40 },
  );
});

test('a wrap opens only for its recipient, context and bytes (DECRYPT_FAILED otherwise)', (t) => {
  const me = device(1);
  const other = device(2);
  const ephemeral = newEphemeralKeyPair();
  const wrapped = wrapSecret(new Uint8Array(32).fill(7), me.boxKey, ephemeral, context);
  t.is(
    codeOf(() => unwrapSecret(wrapped, ephemeral.publicKey, me, context)),
    'ok',
  );
  t.is(
    codeOf(() => unwrapSecret(wrapped, ephemeral.publicKey, other, context)),
    'DECRYPT_FAILED',
    'another device',
  );
  t.is(
    codeOf(() => unwrapSecret(wrapped, ephemeral.publicKey, { ...me, boxKey: other.boxKey }, context)),
    'DECRYPT_FAILED',
    'the recipient key is part of the HKDF info',
  );
  t.is(
    codeOf(() => unwrapSecret(wrapped, newEphemeralKeyPair().publicKey, me, context)),
    'DECRYPT_FAILED',
    'another E',
  );
  for (const moved of [
    { ...context, label: 'e2ekv/v1 other' },
    { ...context, extra: Uint8Array.of(1, 3) },
    { ...context, extra: new Uint8Array(0) },
    { ...context, vaultId: new Uint8Array(32).fill(8) },
  ]) {
    t.is(
      codeOf(() => unwrapSecret(wrapped, ephemeral.publicKey, me, moved)),
      'DECRYPT_FAILED',
    );
  }
  for (const at of [0, 23, 24, 39, 40, wrapped.length - 1]) {
    const flipped = wrapped.slice();
    flipped[at]! ^= 1;
    t.is(
      codeOf(() => unwrapSecret(flipped, ephemeral.publicKey, me, context)),
      'DECRYPT_FAILED',
      `byte ${at}`,
    );
  }
  t.is(
    codeOf(() => unwrapSecret(wrapped.subarray(0, 39), ephemeral.publicKey, me, context)),
    'MALFORMED',
  );
});

test('all-zero and small-order keys are BAD_KEY on both sides', (t) => {
  const me = device(1);
  const ephemeral = newEphemeralKeyPair();
  const secret = new Uint8Array(32);
  // u = 0 and u = 1 are of small order: X25519 with them is all zero.
  const zero = new Uint8Array(32);
  const one = Uint8Array.of(1, ...new Uint8Array(31));
  t.is(
    codeOf(() => wrapSecret(secret, zero, ephemeral, context)),
    'BAD_KEY',
  );
  t.is(
    codeOf(() => wrapSecret(secret, one, ephemeral, context)),
    'BAD_KEY',
  );
  const wrapped = wrapSecret(secret, me.boxKey, ephemeral, context);
  t.is(
    codeOf(() => unwrapSecret(wrapped, zero, me, context)),
    'BAD_KEY',
  );
  t.is(
    codeOf(() => unwrapSecret(wrapped, one, me, context)),
    'BAD_KEY',
  );
  // A point of order 8 (from RFC 7748's list of small-order u-coordinates).
  const order8 = fromHex('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800');
  t.is(
    codeOf(() => unwrapSecret(wrapped, order8, me, context)),
    'BAD_KEY',
  );
  t.is(
    codeOf(() => wrapSecret(secret, new Uint8Array(31), ephemeral, context)),
    'INVALID_ARGUMENT',
  );
  t.is(
    codeOf(() => wrapSecret(secret, me.boxKey, ephemeral, { ...context, vaultId: new Uint8Array(31) })),
    'INVALID_ARGUMENT',
  );
  t.is(
    codeOf(() => wrapSecretWithNonce(secret, me.boxKey, ephemeral, context, new Uint8Array(23))),
    'INVALID_ARGUMENT',
  );
});

test('one ephemeral key wraps for many recipients, each opening only its own', (t) => {
  const ephemeral = newEphemeralKeyPair();
  const devices = [device(1), device(2), device(3)];
  const wraps = devices.map((d, i) => wrapSecret(Uint8Array.of(i), d.boxKey, ephemeral, context));
  devices.forEach((d, i) => {
    t.deepEqual([...unwrapSecret(wraps[i]!, ephemeral.publicKey, d, context)], [i]);
    t.is(
      codeOf(() => unwrapSecret(wraps[(i + 1) % 3]!, ephemeral.publicKey, d, context)),
      'DECRYPT_FAILED',
    );
  });
});
