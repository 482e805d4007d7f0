import test from 'ava';
import { fromHex, utf8 } from '../src/bytes.js';
import {
  assertEnrollableEd25519Key,
  defaultEd25519,
  ed25519PublicKeyFromSeed,
  needsReferenceVerifier,
  nodeCryptoEd25519,
  tweetnaclEd25519,
  webCryptoEd25519,
  type Ed25519Backend,
} from '../src/crypto/ed25519.js';
import { E2ekvError } from '../src/errors.js';
import { ed25519EdgeCases } from '../../test/support/paths.js';

const cases = ed25519EdgeCases();

test('the edge-case file has all 914 vectors, 208 of them valid', (t) => {
  t.is(cases.length, 914);
  t.is(cases.filter((c) => c.expected_valid).length, 208);
});

for (const backend of [nodeCryptoEd25519, webCryptoEd25519, tweetnaclEd25519] as Ed25519Backend[]) {
  test(`${backend.name} gives Go's verdict on every Ed25519 edge case`, async (t) => {
    const disagreements: number[] = [];
    for (const c of cases) {
      const verdict = await backend.verify(fromHex(c.key), utf8(c.msg), fromHex(c.sig));
      if (verdict !== c.expected_valid) disagreements.push(c.number);
    }
    t.deepEqual(disagreements, []);
  });

  test(`${backend.name} signs RFC 8032 test 2 and rejects a tampered message`, async (t) => {
    const seed = fromHex('4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb');
    const signer = await backend.signer(seed);
    t.is(
      Buffer.from(signer.publicKey).toString('hex'),
      '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c',
    );
    const signature = await signer.sign(Uint8Array.of(0x72));
    t.is(
      Buffer.from(signature).toString('hex'),
      '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00',
    );
    t.true(await backend.verify(signer.publicKey, Uint8Array.of(0x72), signature));
    t.false(await backend.verify(signer.publicKey, Uint8Array.of(0x73), signature));
    t.false(await backend.verify(signer.publicKey, Uint8Array.of(0x72), signature.subarray(0, 63)));
  });
}

test('Node 20.16 and later select the node:crypto backend', async (t) => {
  t.is((await defaultEd25519()).name, 'node');
});

test('the node:crypto backend signs exactly as the others and verifies their signatures', async (t) => {
  for (let i = 0; i < 16; i++) {
    const seed = new Uint8Array(32).fill(i * 11 + 3);
    const message = utf8(`message ${i}`.repeat(i));
    const node = await nodeCryptoEd25519.signer(seed);
    const web = await webCryptoEd25519.signer(seed);
    const nacl = await tweetnaclEd25519.signer(seed);
    t.deepEqual(node.publicKey, nacl.publicKey);
    t.deepEqual(web.publicKey, nacl.publicKey);
    const signature = await node.sign(message);
    t.deepEqual(signature, await nacl.sign(message));
    t.deepEqual(signature, await web.sign(message));
    // A plain Uint8Array of its own, not a view into a shared Buffer pool.
    t.is(signature.constructor, Uint8Array);
    t.is(signature.byteLength, signature.buffer.byteLength);
    for (const backend of [nodeCryptoEd25519, webCryptoEd25519, tweetnaclEd25519]) {
      t.true(await backend.verify(node.publicKey, message, signature), backend.name);
      const tampered = signature.slice();
      tampered[40]! ^= 1;
      t.false(await backend.verify(node.publicKey, message, tampered), backend.name);
    }
  }
  await t.throwsAsync(() => nodeCryptoEd25519.signer(new Uint8Array(31)), { instanceOf: E2ekvError });
});

test('enrolment rejects every small-order, mixed-order and non-canonical key among the edge cases', (t) => {
  const flagsByKey = new Map<string, Set<string>>();
  for (const c of cases) {
    const flags = flagsByKey.get(c.key) ?? new Set<string>();
    for (const f of c.flags ?? []) flags.add(f);
    flagsByKey.set(c.key, flags);
  }
  let rejected = 0;
  let accepted = 0;
  for (const [key, flags] of flagsByKey) {
    const suspicious = [...flags].some((f) => f.endsWith('_A'));
    if (suspicious) {
      const error = t.throws(() => assertEnrollableEd25519Key(fromHex(key)), { instanceOf: E2ekvError });
      t.is(error?.code, 'BAD_KEY', key);
      rejected++;
    } else {
      t.notThrows(() => assertEnrollableEd25519Key(fromHex(key)), key);
      accepted++;
    }
  }
  t.is(rejected, 21);
  t.is(accepted, 1);
});

test('enrolment accepts keys made from seeds and rejects wrong lengths', (t) => {
  for (let i = 0; i < 32; i++) {
    const seed = new Uint8Array(32).fill(i * 7 + 1);
    t.notThrows(() => assertEnrollableEd25519Key(ed25519PublicKeyFromSeed(seed)));
  }
  t.is(t.throws(() => assertEnrollableEd25519Key(new Uint8Array(31)), { instanceOf: E2ekvError })?.code, 'BAD_KEY');
  // y = p (2^255 - 19) is the non-canonical spelling of y = 0.
  const yEqualsP = fromHex('edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f');
  t.is(t.throws(() => assertEnrollableEd25519Key(yEqualsP), { instanceOf: E2ekvError })?.code, 'BAD_KEY');
});

// Runtimes' native Ed25519 is allowed to differ from Go only where our verifiers
// route to the reference verifier. On Node 20 raw WebCrypto agrees everywhere;
// Node 24's OpenSSL rejects 165 of Go's accepted vectors, all of them routed.
test('wherever raw WebCrypto or node:crypto differ from Go, the reference path is taken', async (t) => {
  const { createPublicKey, verify } = await import('node:crypto');
  const spki = (key: Uint8Array) =>
    createPublicKey({
      key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), key]),
      format: 'der',
      type: 'spki',
    });
  const unrouted: string[] = [];
  let differing = 0;
  for (const c of cases) {
    // Fresh ArrayBuffer-backed copies, as WebCrypto's types ask.
    const key = new Uint8Array(fromHex(c.key));
    const signature = new Uint8Array(fromHex(c.sig));
    const message = new Uint8Array(utf8(c.msg));
    let raw: boolean;
    try {
      const imported = await crypto.subtle.importKey('raw', key, { name: 'Ed25519' }, false, ['verify']);
      raw = await crypto.subtle.verify({ name: 'Ed25519' }, imported, signature, message);
    } catch {
      raw = false;
    }
    let native: boolean;
    try {
      native = verify(null, message, spki(key), signature);
    } catch {
      native = false;
    }
    if (raw !== c.expected_valid || native !== c.expected_valid) {
      differing++;
      if (!needsReferenceVerifier(key, signature)) unrouted.push(`${c.number} (${(c.flags ?? []).join(',')})`);
    }
  }
  t.deepEqual(unrouted, []);
  t.log(`${process.version}: raw native Ed25519 differs from Go on ${differing} of ${cases.length} vectors`);
});

test('ordinary signatures under enrolled keys take the native path', async (t) => {
  for (let i = 0; i < 16; i++) {
    const signer = await webCryptoEd25519.signer(new Uint8Array(32).fill(i + 1));
    const signature = await signer.sign(Uint8Array.of(i));
    t.false(needsReferenceVerifier(signer.publicKey, signature));
  }
  const identityR = new Uint8Array(64);
  identityR[0] = 1;
  t.true(needsReferenceVerifier(ed25519PublicKeyFromSeed(new Uint8Array(32).fill(1)), identityR));
});
