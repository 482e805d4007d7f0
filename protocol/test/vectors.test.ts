/**
 * Checks protocol/vectors/*.json two ways: the committed files are exactly what
 * protocol/scripts/vectors.ts builds (so an edited vector fails), and every case
 * passes through the public decoders and verifiers, with the derivations redone
 * independently through node:crypto where Node has the primitive.
 */
import { createHash, createHmac, createPrivateKey, createPublicKey, diffieHellman, hkdfSync } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import nacl from 'tweetnacl';
import { buildVectors, serializeVectors } from '../scripts/vectors.js';
import { fromHex, toHex, utf8 } from '../src/bytes.js';
import { KeyNameBlinder } from '../src/crypto/blind.js';
import { padme } from '../src/crypto/pad.js';
import { decodeEntry, decodeEntryMeta, decodeItemPayload } from '../src/entry.js';
import { openEnvelope, type EnvelopeBinding, type EnvelopePurpose } from '../src/envelope.js';
import { asyncCodeOf } from '../../test/support/errors.js';
import { verifyGenesis } from '../src/genesis.js';
import {
  logOrigin,
  parseCosignerVkey,
  verifyDeviceCheckpoint,
  verifyParsedDeviceCheckpoint,
} from '../src/checkpoint.js';
import { verifyConsistency, verifyInclusion } from '../src/merkle.js';
import { parseNote, parseVerifierKey } from '../src/note.js';
import { formatAuthorization, parseAuthorization, requestSignatureInput } from '../src/request.js';
import { protocolVectorsDir } from '../../test/support/paths.js';
import { unwrapSecret } from '../src/crypto/wrap.js';
import { openEpochRecord } from '../src/epoch.js';
import { formatIdentityString, identityFingerprint, parseIdentityString } from '../src/identity-string.js';
import { openInvitation, readInvitation } from '../src/invitation.js';

type Json = Record<string, unknown> & { valid: Json[]; invalid: Json[] };
const load = (name: string) => JSON.parse(readFileSync(path.join(protocolVectorsDir, name), 'utf8')) as Json;
const str = (v: unknown) => v as string;
const hex = (v: unknown) => fromHex(v as string);
/** A vector field as an expectation: JSON gives strings and numbers. */
const expected = (v: unknown) => v as string & number;

const sha256 = (...parts: Uint8Array[]) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
};

test('the committed vector files are exactly what the generator builds', async (t) => {
  const built = await buildVectors();
  const committed = readdirSync(protocolVectorsDir)
    .filter((f) => f.endsWith('.json'))
    .sort();
  t.deepEqual(committed, Object.keys(built).sort(), 'a vector file was added or removed without the generator');
  for (const [name, content] of Object.entries(built)) {
    t.is(
      readFileSync(path.join(protocolVectorsDir, name), 'utf8'),
      serializeVectors(content),
      `${name} differs: run npm run vectors`,
    );
  }
});

test('genesis vectors', async (t) => {
  const v = load('genesis.json');
  t.is(v.valid.length, 1);
  for (const c of v.valid) {
    const { vaultId, genesis } = await verifyGenesis(hex(c['signed']));
    t.is(toHex(vaultId), expected(c['vault_id']));
    t.is(toHex(sha256(hex(c['body']))), expected(c['vault_id']), 'vault id = SHA-256(body), computed by node:crypto');
    t.is(genesis.createdAtMs.toString(), expected(c['created_at_ms']));
    t.is(toHex(genesis.creator), expected(c['creator']));
    t.is(toHex(nacl.sign.keyPair.fromSeed(hex(c['creator_seed'])).publicKey), expected(c['creator']));
  }
  t.is(v.invalid.length, 5);
  for (const c of v.invalid)
    t.is(await asyncCodeOf(() => verifyGenesis(hex(c['signed']))), expected(c['error']), str(c['description']));
});

test('derivation vectors match HKDF-SHA-256 computed by node:crypto', (t) => {
  const v = load('derivation.json');
  t.is(v.valid.length, 3);
  for (const c of v.valid) {
    const secret = hex(c['epoch_secret']);
    const salt = hex(c['vault_id']);
    const epoch = Buffer.alloc(4);
    epoch.writeUInt32BE(c['epoch'] as number);
    const derive = (label: string, withEpoch: boolean) =>
      toHex(
        new Uint8Array(
          hkdfSync('sha256', secret, salt, withEpoch ? Buffer.concat([utf8(label), epoch]) : utf8(label), 32),
        ),
      );
    t.is(derive('e2ekv/v1 value-encryption', true), expected(c['value_key']));
    t.is(derive('e2ekv/v1 epoch-check', true), expected(c['epoch_check']));
    t.is(derive('e2ekv/v1 key-name-blinding', false), expected(c['blinding_key']));
  }
});

test('blinding vectors match HMAC-SHA-256 computed by node:crypto', async (t) => {
  const v = load('blinding.json');
  const key = hex(v['blinding_key']);
  const blinder = new KeyNameBlinder(key);
  t.is(v.valid.length, 9);
  for (const c of v.valid) {
    t.is(toHex(utf8(str(c['name']))), expected(c['name_utf8']));
    t.is(
      toHex(new Uint8Array(createHmac('sha256', key).update(hex(c['name_utf8'])).digest())),
      expected(c['blinded_key']),
    );
    t.is(toHex(blinder.blind(str(c['name']))), expected(c['blinded_key']));
  }
  // "é" precomposed and decomposed are different keys: names are not normalized.
  const blinded = new Map(v.valid.map((c) => [c['name'], c['blinded_key']]));
  t.not(blinded.get('e\u0301'), blinded.get('\u00e9'));
  t.is(v.invalid.length, 3);
  for (const c of v.invalid)
    t.is(await asyncCodeOf(() => blinder.blind(str(c['name']))), expected(c['error']), str(c['description']));
});

test('padding vectors match an independent BigInt Padmé', async (t) => {
  const reference = (length: bigint) => {
    const e = BigInt(length.toString(2).length - 1);
    const s = e === 0n ? 0n : BigInt(e.toString(2).length); // bit length of E
    const mask = (1n << (e - s)) - 1n;
    return (length + mask) & ~mask;
  };
  const v = load('padding.json');
  for (const c of v.valid) {
    t.is(BigInt(c['padded'] as number), reference(BigInt(c['length'] as number)));
    t.is(padme(c['length'] as number), expected(c['padded']));
  }
  for (const c of v.invalid) t.is(await asyncCodeOf(() => padme(c['length'] as number)), expected(c['error']));
});

function binding(j: unknown): EnvelopeBinding {
  const b = j as Record<string, unknown>;
  return {
    purpose: b['purpose'] as EnvelopePurpose,
    vaultId: hex(b['vault_id']),
    device: hex(b['device']),
    logIndex: BigInt(str(b['log_index'])),
    epoch: b['epoch'] as number,
    item: b['item'] as number,
    blindedKey: hex(b['blinded_key']),
  };
}

/** The binding hash as SPEC.md spells it, computed with node:crypto. */
function specBindingHash(b: EnvelopeBinding): string {
  const fields = Buffer.alloc(1 + 32 + 32 + 8 + 4 + 2 + 32);
  fields.writeUInt8(b.purpose, 0);
  fields.set(b.vaultId, 1);
  fields.set(b.device, 33);
  fields.writeBigUInt64BE(b.logIndex, 65);
  fields.writeUInt32BE(b.epoch, 73);
  fields.writeUInt16BE(b.item, 77);
  fields.set(b.blindedKey, 79);
  return toHex(sha256(utf8('e2ekv/v1/binding\0'), fields));
}

test('envelope vectors', async (t) => {
  const v = load('envelope.json');
  const key = hex(v['value_key']);
  t.is(v.valid.length, 3);
  for (const c of v.valid) {
    const b = binding(c['binding']);
    t.is(specBindingHash(b), expected(c['binding_hash']));
    const envelope = hex(c['envelope']);
    t.is(toHex(openEnvelope(key, b, envelope)), expected(c['payload']));
    // Open with tweetnacl directly and read the layout by hand.
    const plain = nacl.secretbox.open(envelope.subarray(25), envelope.subarray(1, 25), key)!;
    t.is(envelope[0], 1);
    t.is(toHex(envelope.subarray(1, 25)), expected(c['nonce']));
    t.is(toHex(plain.subarray(0, 32)), expected(c['binding_hash']));
    const length = Buffer.from(plain).readUInt32BE(32);
    t.is(toHex(plain.subarray(36, 36 + length)), expected(c['payload']));
    t.is(plain.length, padme(36 + length));
  }
  t.is(v.invalid.length, 14);
  for (const c of v.invalid) {
    t.is(
      await asyncCodeOf(() => openEnvelope(key, binding(c['binding']), hex(c['envelope']))),
      expected(c['error']),
      str(c['description']),
    );
  }
});

test('entry vectors decode, open and hash as specified', async (t) => {
  const v = load('entry.json');
  const key = hex(v['value_key']);
  const blinder = new KeyNameBlinder(hex(v['blinding_key']));
  t.is(v.valid.length, 3);
  const [data, blob, membership] = v.valid as [Json, Json, Json];
  for (const c of v.valid) {
    t.is(
      toHex(sha256(Uint8Array.of(0), hex(c['entry']))),
      expected(c['leaf_hash']),
      'leaf hash = SHA-256(0x00 || entry)',
    );
  }

  const entry = decodeEntry(hex(data['entry']));
  if (entry.type !== 'data') return t.fail('expected a data entry');
  const base = { vaultId: entry.vaultId, device: entry.device, logIndex: entry.index, epoch: entry.epoch };
  const meta = data['meta'] as Json;
  const metaPlain = openEnvelope(key, { ...base, purpose: 1, item: 0, blindedKey: new Uint8Array(32) }, entry.meta);
  t.is(toHex(metaPlain), expected(meta['plaintext']));
  const decodedMeta = decodeEntryMeta(metaPlain, entry.device);
  t.is(decodedMeta.clock.wallMs.toString(), expected(meta['wall_ms']));
  t.is(decodedMeta.clock.counter, expected(meta['counter']));
  const items = data['items'] as Json[];
  t.is(entry.items.length, items.length);
  entry.items.forEach((item, i) => {
    if (item.value.kind !== 'inline') return t.fail('expected inline items');
    const payload = openEnvelope(
      key,
      { ...base, purpose: 2, item: i, blindedKey: item.blindedKey },
      item.value.envelope,
    );
    const decoded = decodeItemPayload(payload);
    t.is(new TextDecoder().decode(decoded.name), expected(items[i]!['name']));
    t.is(toHex(blinder.blindEncoded(decoded.name)), toHex(item.blindedKey), 'the sealed name blinds to the item key');
    t.is(decoded.kind, expected(items[i]!['kind']));
    t.is(toHex(decoded.value), expected(items[i]!['value']));
  });

  const blobEntry = decodeEntry(hex(blob['entry']));
  if (blobEntry.type !== 'data' || blobEntry.items[0]?.value.kind !== 'blob') return t.fail('expected a blob item');
  t.is(toHex(blobEntry.items[0].value.hash), toHex(sha256(hex(blob['blob']))));
  t.is(blobEntry.items[0].value.length, hex(blob['blob']).length);

  const m = decodeEntry(hex(membership['entry']));
  t.is(m.type, 'membership');
  if (m.type === 'membership')
    t.deepEqual([m.change.op, m.change.op === 'add' ? m.change.role : ''], ['add', 'writer']);

  t.is(v.invalid.length, 9);
  for (const c of v.invalid)
    t.is(await asyncCodeOf(() => decodeEntry(hex(c['entry']))), expected(c['error']), str(c['description']));
});

test('checkpoint vectors: device notes, cosignatures and proofs', async (t) => {
  const v = load('checkpoint.json');
  const vaultId = hex(v['vault_id']);
  const device = hex(v['device']);
  const cosigner = parseCosignerVkey(str(v['cosigner_vkey']));
  t.is(cosigner.name, str(v['cosigner_name']));
  t.is(toHex(cosigner.publicKey), toHex(nacl.sign.keyPair.fromSeed(hex(v['cosigner_seed'])).publicKey));
  const deviceVkey = parseVerifierKey(str(v['device_vkey']));
  t.is(deviceVkey.name, logOrigin(vaultId, device));
  t.is(toHex(deviceVkey.publicKey), toHex(device));

  const leaves = (v['leaf_hashes'] as string[]).map((h) => fromHex(h));
  const entries = load('entry.json').valid.map((c) => hex(c['entry']));
  t.deepEqual(
    leaves.map(toHex),
    entries.map((e) => toHex(sha256(Uint8Array.of(0), e))),
    'the log is the entry vectors',
  );
  const latest = v.valid[v.valid.length - 1]!;
  const latestRoot = hex(latest['root']);
  (v['inclusion_proofs'] as string[][]).forEach((proof, i) => {
    t.notThrows(() =>
      verifyInclusion(
        BigInt(i),
        BigInt(leaves.length),
        leaves[i]!,
        proof.map((h) => fromHex(h)),
        latestRoot,
      ),
    );
  });

  t.is(v.valid.length, 3);
  for (const c of v.valid) {
    for (const note of [str(c['note']), str(c['cosigned'])]) {
      const { checkpoint, cosignatures } = await verifyDeviceCheckpoint(note, vaultId, device, [cosigner]);
      t.is(checkpoint.size, BigInt(c['size'] as number));
      t.is(toHex(checkpoint.root), c['root'] as string);
      t.is(cosignatures.length, note === c['cosigned'] ? 1 : 0);
      if (cosignatures[0] !== undefined) t.is(cosignatures[0].timestamp.toString(), v['cosignature_time'] as string);
    }
    const size = BigInt(c['size'] as number);
    if (size < BigInt(leaves.length)) {
      const proof = (c['consistency_to_latest'] as string[]).map((h) => fromHex(h));
      t.notThrows(() => verifyConsistency(size, BigInt(leaves.length), proof, hex(c['root']), latestRoot));
    }
  }
  t.is(v.invalid.length, 12);
  for (const c of v.invalid) {
    t.is(
      await asyncCodeOf(() => verifyDeviceCheckpoint(str(c['note']), vaultId, device, [cosigner])),
      expected(c['error']),
      str(c['description']),
    );
    // Parsed first (as a replica does, to keep and cosign the note): the same verdict.
    t.is(
      await asyncCodeOf(() => verifyParsedDeviceCheckpoint(parseNote(str(c['note'])), vaultId, device, [cosigner])),
      expected(c['error']),
      `parsed first: ${str(c['description'])}`,
    );
  }
  for (const c of v.valid) {
    for (const note of [str(c['note']), str(c['cosigned'])]) {
      t.deepEqual(
        await verifyParsedDeviceCheckpoint(parseNote(note), vaultId, device, [cosigner]),
        await verifyDeviceCheckpoint(note, vaultId, device, [cosigner]),
      );
    }
  }
});

test('request vectors: signature inputs, signatures and Authorization headers', async (t) => {
  const v = load('request.json');
  t.is(v.valid.length, 2);
  for (const c of v.valid) {
    const request = {
      audience: hex(c['audience']),
      device: hex(c['device']),
      timestampMs: BigInt(str(c['timestamp_ms'])),
      nonce: hex(c['nonce']),
      method: str(c['method']),
      path: str(c['path']),
      body: hex(c['body']),
    };
    const input = requestSignatureInput(request);
    t.is(toHex(input), str(c['input']));
    // The layout by hand, with node:crypto's SHA-256 of the body.
    const tag = utf8('e2ekv/v1/request\0');
    const u16 = (n: number) => Uint8Array.of(n >> 8, n & 255);
    const ts = Buffer.alloc(8);
    ts.writeBigUInt64BE(request.timestampMs);
    const method = utf8(request.method);
    const path = utf8(request.path);
    const manual = Buffer.concat([
      tag,
      request.audience,
      request.device,
      ts,
      request.nonce,
      u16(method.length),
      method,
      u16(path.length),
      path,
      sha256(request.body),
    ]);
    t.is(toHex(manual), str(c['input']));
    t.true(nacl.sign.detached.verify(input, hex(c['signature']), request.device));
    const parsed = parseAuthorization(str(c['authorization']));
    t.is(toHex(parsed.signature), str(c['signature']));
    t.is(parsed.timestampMs, request.timestampMs);
    t.is(formatAuthorization(parsed), str(c['authorization']));
  }
  t.is(v.invalid.length, 6);
  for (const c of v.invalid)
    t.is(
      await asyncCodeOf(() => parseAuthorization(str(c['authorization']))),
      expected(c['error']),
      str(c['description']),
    );
});

/** X25519 by node:crypto (OpenSSL), independent of the @noble/curves the package uses. */
function nodeX25519(secret: Uint8Array, publicKey: Uint8Array): Uint8Array {
  const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64url');
  const privateKey = createPrivateKey({
    key: { kty: 'OKP', crv: 'X25519', d: b64(secret), x: b64(nacl.scalarMult.base(secret)) },
    format: 'jwk',
  });
  const peer = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: b64(publicKey) }, format: 'jwk' });
  return new Uint8Array(diffieHellman({ privateKey, publicKey: peer }));
}

test('identity vectors: strings, checksums and fingerprints', async (t) => {
  const v = load('identity.json');
  t.is(v.valid.length, 3);
  for (const c of v.valid) {
    const signingKey = nacl.sign.keyPair.fromSeed(hex(c['signing_seed'])).publicKey;
    const boxKey = nacl.scalarMult.base(hex(c['box_secret']));
    t.is(toHex(signingKey), expected(c['signing_key']));
    t.is(toHex(boxKey), expected(c['box_key']));
    t.is(toHex(sha256(utf8('e2ekv/v1/identity\0'), signingKey, boxKey).subarray(0, 4)), expected(c['checksum']));
    const text = 'e2ekv-id1-' + Buffer.concat([signingKey, boxKey, hex(c['checksum'])]).toString('base64url');
    t.is(text, expected(c['identity_string']));
    const parsed = parseIdentityString(text);
    t.is(toHex(parsed.signingKey), expected(c['signing_key']));
    t.is(formatIdentityString(parsed), text);
    const fingerprint = toHex(sha256(utf8('e2ekv/v1/fingerprint\0'), signingKey, boxKey).subarray(0, 10));
    t.is(fingerprint.match(/.{4}/g)!.join(' '), expected(c['fingerprint']));
    t.is(identityFingerprint(parsed), expected(c['fingerprint']));
  }
  t.is(v.invalid.length, 13);
  for (const c of v.invalid)
    t.is(await asyncCodeOf(() => parseIdentityString(str(c['text']))), expected(c['error']), str(c['description']));
});

test('wrap vectors: X25519 and HKDF by node:crypto, secretbox by tweetnacl', async (t) => {
  const v = load('wrap.json');
  t.is(v.valid.length, 2);
  for (const c of v.valid) {
    const boxSecret = hex(c['recipient_box_secret']);
    const ephemeralSecret = hex(c['ephemeral_secret']);
    t.is(toHex(nacl.scalarMult.base(boxSecret)), expected(c['recipient_box_key']));
    t.is(toHex(nacl.scalarMult.base(ephemeralSecret)), expected(c['ephemeral']));
    const shared = nodeX25519(ephemeralSecret, hex(c['recipient_box_key']));
    t.is(toHex(shared), expected(c['shared']));
    t.is(toHex(nodeX25519(boxSecret, hex(c['ephemeral']))), expected(c['shared']), 'both sides agree');
    const info = Buffer.concat([
      utf8(str(c['label'])),
      hex(c['ephemeral']),
      hex(c['recipient_box_key']),
      hex(c['extra']),
    ]);
    t.is(toHex(info), expected(c['info']));
    const key = new Uint8Array(hkdfSync('sha256', shared, hex(c['vault_id']), info, 32));
    t.is(toHex(key), expected(c['wrap_key']));
    const wrapped = hex(c['wrapped']);
    t.is(toHex(wrapped.subarray(0, 24)), expected(c['nonce']));
    t.is(toHex(nacl.secretbox.open(wrapped.subarray(24), wrapped.subarray(0, 24), key)!), expected(c['plaintext']));
    const me = { boxKey: hex(c['recipient_box_key']), boxSecret };
    const context = { vaultId: hex(c['vault_id']), label: str(c['label']), extra: hex(c['extra']) };
    t.is(toHex(unwrapSecret(wrapped, hex(c['ephemeral']), me, context)), expected(c['plaintext']));
  }
  t.is(v.invalid.length, 9);
  for (const c of v.invalid) {
    const boxSecret = hex(c['recipient_box_secret']);
    const me = { boxKey: nacl.scalarMult.base(boxSecret), boxSecret };
    const context = { vaultId: hex(c['vault_id']), label: str(c['label']), extra: hex(c['extra']) };
    t.is(
      await asyncCodeOf(() => unwrapSecret(hex(c['wrapped']), hex(c['ephemeral']), me, context)),
      expected(c['error']),
      str(c['description']),
    );
  }
});

test('epoch record vectors decode, open for each recipient and check against check(e)', async (t) => {
  const v = load('epoch.json');
  const genesis = load('genesis.json').valid[0]!;
  t.is(v.valid.length, 1);
  for (const c of v.valid) {
    const bytes = hex(c['entry']);
    t.is(toHex(sha256(Uint8Array.of(0), bytes)), expected(c['leaf_hash']));
    const entry = decodeEntry(bytes);
    if (entry.type !== 'epoch') return t.fail('expected an epoch record');
    t.is(bytes[15], 3);
    t.is(toHex(entry.vaultId), str(genesis['vault_id']));
    t.is(entry.epoch, expected(c['epoch']));
    t.is(toHex(entry.ephemeral), toHex(nacl.scalarMult.base(hex(c['ephemeral_secret']))));
    const epoch = Buffer.alloc(4);
    epoch.writeUInt32BE(entry.epoch);
    const check = hkdfSync(
      'sha256',
      hex(c['epoch_secret']),
      entry.vaultId,
      Buffer.concat([utf8('e2ekv/v1 epoch-check'), epoch]),
      32,
    );
    t.is(toHex(new Uint8Array(check)), expected(c['check']));
    t.is(toHex(entry.check), expected(c['check']));
    const recipients = c['recipients'] as Json[];
    t.is(entry.recipients.length, recipients.length);
    for (const [i, r] of recipients.entries()) {
      t.is(toHex(entry.recipients[i]!.member), expected(r['member']));
      t.is(toHex(entry.recipients[i]!.wrapped), expected(r['wrapped']));
      const me = { signingKey: hex(r['member']), boxKey: hex(r['box_key']), boxSecret: hex(r['box_secret']) };
      t.is(toHex(openEpochRecord(entry, me)!), expected(c['epoch_secret']));
      // By hand: X25519 and HKDF by node:crypto, secretbox by tweetnacl.
      const shared = nodeX25519(me.boxSecret, entry.ephemeral);
      const info = Buffer.concat([utf8('e2ekv/v1 epoch-wrap'), entry.ephemeral, me.boxKey, epoch]);
      const key = new Uint8Array(hkdfSync('sha256', shared, entry.vaultId, info, 32));
      const wrapped = hex(r['wrapped']);
      t.is(toHex(wrapped.subarray(0, 24)), expected(r['nonce']));
      t.is(
        toHex(nacl.secretbox.open(wrapped.subarray(24), wrapped.subarray(0, 24), key)!),
        expected(c['epoch_secret']),
      );
    }
  }
  t.is(v.invalid.length, 9);
  for (const c of v.invalid)
    t.is(await asyncCodeOf(() => decodeEntry(hex(c['entry']))), expected(c['error']), str(c['description']));
  const invalidOpen = v['invalid_open'] as Json[];
  t.is(invalidOpen.length, 3);
  for (const c of invalidOpen) {
    const entry = decodeEntry(hex(c['entry']));
    if (entry.type !== 'epoch') return t.fail('expected an epoch record');
    const boxSecret = hex(c['box_secret']);
    const me = { signingKey: hex(c['member']), boxKey: nacl.scalarMult.base(boxSecret), boxSecret };
    t.is(await asyncCodeOf(() => openEpochRecord(entry, me)), expected(c['error']), str(c['description']));
  }
});

test('invitation vectors: layout, signature by tweetnacl, secrets opened', async (t) => {
  const v = load('invitation.json');
  const devices: Record<string, { signingKey: Uint8Array; boxKey: Uint8Array; boxSecret: Uint8Array }> = {};
  t.is(v.valid.length, 2);
  for (const c of v.valid) {
    const body = hex(c['body']);
    const signature = hex(c['signature']);
    t.is(str(c['token']), 'e2ekv-invite1-' + Buffer.concat([body, signature]).toString('base64url'));
    t.true(nacl.sign.detached.verify(body, signature, hex(c['inviter'])));
    t.is(toHex(nacl.sign.keyPair.fromSeed(hex(c['inviter_seed'])).publicKey), expected(c['inviter']));
    t.is(toHex(nacl.sign.keyPair.fromSeed(hex(c['invitee_seed'])).publicKey), expected(c['invitee']));
    // The body field by field (SPEC.md 21.4).
    const role = { reader: 1, writer: 2, admin: 3 }[str(c['role'])]!;
    const u16 = (n: number) => Buffer.from([n >> 8, n & 255]);
    const servers = (c['servers'] as string[]).map((s) => utf8(s));
    const sealed = body.subarray(
      20 + 32 * 4 + 1 + 32 + 2,
      20 + 32 * 4 + 1 + 32 + 2 + body[20 + 32 * 4 + 1 + 32]! * 256 + body[20 + 32 * 4 + 1 + 32 + 1]!,
    );
    const manual = Buffer.concat([
      utf8('e2ekv/v1/invitation\0'),
      hex(c['vault_id']),
      hex(c['inviter']),
      hex(c['invitee']),
      hex(c['invitee_box_key']),
      Buffer.from([role]),
      hex(c['ephemeral']),
      u16(sealed.length),
      sealed,
      Buffer.from([servers.length]),
      ...servers.flatMap((s) => [u16(s.length), s]),
    ]);
    t.is(toHex(manual), toHex(body));
    t.is(toHex(sealed.subarray(0, 24)), expected(c['nonce']));
    const shared = nodeX25519(hex(c['invitee_box_secret']), hex(c['ephemeral']));
    const info = Buffer.concat([
      utf8('e2ekv/v1 invitation'),
      hex(c['ephemeral']),
      hex(c['invitee_box_key']),
      hex(c['invitee']),
    ]);
    const key = new Uint8Array(hkdfSync('sha256', shared, hex(c['vault_id']), info, 32));
    t.is(
      toHex(nacl.secretbox.open(sealed.subarray(24), sealed.subarray(0, 24), key)!),
      expected(c['secrets_plaintext']),
    );

    const info2 = await readInvitation(str(c['token']));
    t.is(info2.role, expected(c['role']));
    t.deepEqual(info2.servers, c['servers']);
    const invitee = {
      signingKey: hex(c['invitee']),
      boxKey: hex(c['invitee_box_key']),
      boxSecret: hex(c['invitee_box_secret']),
    };
    devices['invitee'] = invitee;
    const opened = await openInvitation(str(c['token']), invitee);
    t.deepEqual(
      opened.secrets.map((s) => ({ epoch: s.epoch, secret: toHex(s.secret) })),
      c['secrets'] as unknown[],
    );
  }
  // The writer of epoch.json, as a device the token is not for.
  const writer = (load('epoch.json').valid[0]!['recipients'] as Json[]).find(
    (r) => str(r['member']) === toHex(decodeWriter()),
  )!;
  devices['writer'] = {
    signingKey: hex(writer['member']),
    boxKey: hex(writer['box_key']),
    boxSecret: hex(writer['box_secret']),
  };
  t.is(v.invalid.length, 19);
  for (const c of v.invalid) {
    const token = str(c['token']);
    const code =
      c['open'] === true
        ? await asyncCodeOf(() => openInvitation(token, devices[str(c['opener'])]!))
        : await asyncCodeOf(() => readInvitation(token));
    t.is(code, expected(c['error']), str(c['description']));
  }
});

/** The member that entry.json's membership entry adds (the writer of the sharing vectors). */
function decodeWriter(): Uint8Array {
  const entry = decodeEntry(hex(load('entry.json').valid[2]!['entry']));
  if (entry.type !== 'membership') throw new Error('expected a membership entry');
  return entry.change.member;
}
