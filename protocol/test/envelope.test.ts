import test from 'ava';
import fc from 'fast-check';
import nacl from 'tweetnacl';
import { deriveValueKey } from '../src/crypto/kdf.js';
import {
  envelopeBindingHash,
  envelopeLength,
  EnvelopePurpose,
  NO_BLINDED_KEY,
  openEnvelope,
  sealEnvelope,
  type EnvelopeBinding,
} from '../src/envelope.js';
import { codeOf } from '../../test/support/errors.js';

const key = deriveValueKey(new Uint8Array(32).fill(7), new Uint8Array(32).fill(1), 0);

function binding(overrides: Partial<EnvelopeBinding> = {}): EnvelopeBinding {
  return {
    purpose: EnvelopePurpose.itemValue,
    vaultId: new Uint8Array(32).fill(1),
    device: new Uint8Array(32).fill(2),
    logIndex: 5n,
    epoch: 0,
    item: 3,
    blindedKey: new Uint8Array(32).fill(9),
    ...overrides,
  };
}

test('seal then open returns the payload, at the Padmé length', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 5000 }), (payload) => {
      const envelope = sealEnvelope(key, binding(), payload);
      t.is(envelope.length, envelopeLength(payload.length));
      t.deepEqual(openEnvelope(key, binding(), envelope), payload);
    }),
    { numRuns: 200 },
  );
});

test('two seals of one payload differ (fresh nonces)', (t) => {
  const payload = new Uint8Array(10);
  t.notDeepEqual(sealEnvelope(key, binding(), payload), sealEnvelope(key, binding(), payload));
});

test('any flipped bit is DECRYPT_FAILED or, in the version byte, UNSUPPORTED_VERSION', (t) => {
  const envelope = sealEnvelope(key, binding(), new Uint8Array(40).fill(0x41));
  fc.assert(
    fc.property(fc.nat(envelope.length * 8 - 1), (bit) => {
      const copy = envelope.slice();
      copy[bit >> 3]! ^= 1 << (bit & 7);
      const expected = bit < 8 ? 'UNSUPPORTED_VERSION' : 'DECRYPT_FAILED';
      t.is(
        codeOf(() => openEnvelope(key, binding(), copy)),
        expected,
      );
    }),
    { numRuns: 300 },
  );
});

test('a ciphertext moved to any other place is BINDING_MISMATCH', (t) => {
  const envelope = sealEnvelope(key, binding(), Uint8Array.of(1, 2, 3));
  const moved: Partial<EnvelopeBinding>[] = [
    { purpose: EnvelopePurpose.entryMeta },
    { vaultId: new Uint8Array(32).fill(3) },
    { device: new Uint8Array(32).fill(4) },
    { logIndex: 6n },
    { epoch: 1 },
    { item: 4 },
    { blindedKey: NO_BLINDED_KEY },
  ];
  for (const change of moved) {
    t.is(
      codeOf(() => openEnvelope(key, binding(change), envelope)),
      'BINDING_MISMATCH',
      Object.keys(change)[0],
    );
  }
});

test('another key (another epoch) is DECRYPT_FAILED; truncation is MALFORMED', (t) => {
  const envelope = sealEnvelope(key, binding(), Uint8Array.of(1, 2, 3));
  const otherEpochKey = deriveValueKey(new Uint8Array(32).fill(7), new Uint8Array(32).fill(1), 1);
  t.is(
    codeOf(() => openEnvelope(otherEpochKey, binding(), envelope)),
    'DECRYPT_FAILED',
  );
  t.is(
    codeOf(() => openEnvelope(key, binding(), envelope.subarray(0, 50))),
    'MALFORMED',
  );
  t.is(
    codeOf(() => openEnvelope(key, binding(), new Uint8Array(0))),
    'MALFORMED',
  );
});

test('a key holder who seals a bad layout is caught after decryption', (t) => {
  // Build plaintexts by hand, as a buggy or malicious member could.
  const nonce = new Uint8Array(24);
  const sealRaw = (plaintext: Uint8Array) => Uint8Array.of(1, ...nonce, ...nacl.secretbox(plaintext, nonce, key));
  const good = openEnvelope;
  const bindingHash = envelopeBindingHash(binding());
  const plaintext = (length: number, declared: number, fill = 0) => {
    const p = new Uint8Array(length).fill(fill);
    p.set(bindingHash, 0);
    new DataView(p.buffer).setUint32(32, declared);
    return p;
  };
  t.is(
    codeOf(() => good(key, binding(), sealRaw(plaintext(36, 0)))),
    'ok',
  );
  t.is(
    codeOf(() => good(key, binding(), sealRaw(plaintext(40, 100)))),
    'MALFORMED',
  );
  t.is(
    codeOf(() => good(key, binding(), sealRaw(plaintext(41, 1)))),
    'NON_CANONICAL',
  );
  const dirtyPadding = plaintext(40, 1);
  dirtyPadding[39] = 1;
  t.is(
    codeOf(() => good(key, binding(), sealRaw(dirtyPadding))),
    'NON_CANONICAL',
  );
});
