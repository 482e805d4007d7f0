/**
 * Builds the test vectors in protocol/vectors/ from fixed inputs. Pure: the same
 * code always yields the same JSON, so `npm run vectors` is reproducible and the
 * vectors test can check that the committed files are exactly what this builds.
 *
 * Conventions in the JSON: byte strings are lowercase hex; 64-bit integers are
 * decimal strings (JSON numbers lose precision past 2^53); errors are the stable
 * codes of protocol/src/errors.ts.
 */
import { toHex, utf8 } from '../src/bytes.js';
import { KeyNameBlinder, encodeKeyName } from '../src/crypto/blind.js';
import { ed25519Signer } from '../src/crypto/ed25519.js';
import { deriveBlindingKey, deriveEpochCheck, deriveValueKey } from '../src/crypto/kdf.js';
import { padme } from '../src/crypto/pad.js';
import { sha256 } from '../src/crypto/sha256.js';
import {
  envelopeBindingHash,
  EnvelopePurpose,
  NO_BLINDED_KEY,
  sealEnvelopeWithNonce,
  type EnvelopeBinding,
} from '../src/envelope.js';
import {
  encodeEntry,
  encodeEntryMeta,
  encodeItemPayload,
  ValueKind,
  type DataEntry,
  type EntryItem,
} from '../src/entry.js';
import { encodeGenesisBody, signGenesis, type Genesis } from '../src/genesis.js';
import { leafHash, MerkleTree } from '../src/merkle.js';
import {
  cosignatureSigner,
  deviceCheckpointSigner,
  formatCosignerVkey,
  logOrigin,
  signDeviceCheckpoint,
} from '../src/checkpoint.js';
import { addNoteSignatures, formatVerifierKey, NOTE_SIG_ED25519, signNote } from '../src/note.js';
import { formatAuthorization, requestSignatureInput } from '../src/request.js';
import { ByteWriter, concatBytes, toBase64, toBase64Url } from '../src/bytes.js';
import { hkdfSha256 } from '../src/crypto/kdf.js';
import { wrapInfo, wrapSecretWithNonce, x25519PublicKey, type WrapContext } from '../src/crypto/wrap.js';
import { epochWrapContext, sealEpochRecordDeterministic } from '../src/epoch.js';
import { formatIdentityString, identityFingerprint } from '../src/identity-string.js';
import { createInvitationDeterministic } from '../src/invitation.js';
import { x25519 } from '@noble/curves/ed25519.js';
import nacl from 'tweetnacl';

export type VectorFiles = Record<string, unknown>;

/** Fixed, recognisable inputs: byte i of seed n is n*32 + i (mod 256). */
export function patternBytes(n: number, length = 32): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (n * 32 + i) & 0xff);
}

function nonceFor(label: string): Uint8Array {
  return sha256(utf8(`e2ekv test vector nonce ${label}`)).subarray(0, 24);
}

export function bindingJson(b: EnvelopeBinding) {
  return {
    purpose: b.purpose,
    vault_id: toHex(b.vaultId),
    device: toHex(b.device),
    log_index: b.logIndex.toString(),
    epoch: b.epoch,
    item: b.item,
    blinded_key: toHex(b.blindedKey),
  };
}

/** The shared fixture: a vault created by device 1 at a fixed time. */
export async function fixture() {
  const creatorSeed = patternBytes(1);
  const creator = await ed25519Signer(creatorSeed);
  const genesis: Genesis = {
    createdAtMs: 1_767_225_600_000n, // 2026-01-01T00:00:00Z
    nonce: patternBytes(2, 16),
    creator: creator.publicKey,
    creatorBoxKey: nacl.box.keyPair.fromSecretKey(patternBytes(3)).publicKey,
  };
  const signedGenesis = await signGenesis(genesis, creator);
  const vaultId = sha256(encodeGenesisBody(genesis));
  const epochSecret = patternBytes(4);
  return {
    creatorSeed,
    creator,
    genesis,
    signedGenesis,
    vaultId,
    epochSecret,
    valueKey: deriveValueKey(epochSecret, vaultId, 0),
    blindingKey: deriveBlindingKey(epochSecret, vaultId),
  };
}

export async function buildVectors(): Promise<VectorFiles> {
  const f = await fixture();
  const files: VectorFiles = {};

  files['genesis.json'] = {
    description: 'Vault genesis records and vault ids (SPEC.md section "Vault genesis").',
    valid: [
      {
        description: 'genesis signed by the creator (Ed25519 seed bytes 0x20..0x3f; X25519 secret bytes 0x60..0x7f)',
        creator_seed: toHex(f.creatorSeed),
        created_at_ms: f.genesis.createdAtMs.toString(),
        nonce: toHex(f.genesis.nonce),
        creator: toHex(f.genesis.creator),
        creator_box_key: toHex(f.genesis.creatorBoxKey),
        body: toHex(encodeGenesisBody(f.genesis)),
        signed: toHex(f.signedGenesis),
        vault_id: toHex(f.vaultId),
      },
    ],
    invalid: [
      {
        description: 'signature altered',
        signed: toHex(flip(f.signedGenesis, f.signedGenesis.length - 1)),
        error: 'BAD_SIGNATURE',
      },
      {
        description: 'creation time altered after signing',
        signed: toHex(flip(f.signedGenesis, 20)),
        error: 'BAD_SIGNATURE',
      },
      { description: 'one byte short', signed: toHex(f.signedGenesis.subarray(1)), error: 'MALFORMED' },
      {
        description: 'unknown tag (v2)',
        signed: toHex(replaceAt(f.signedGenesis, 7, 0x32)),
        error: 'UNSUPPORTED_VERSION',
      },
      {
        description: 'creator key of small order (the identity point)',
        signed: toHex(replaceRange(f.signedGenesis, 17 + 8 + 16, Uint8Array.of(1, ...new Uint8Array(31)))),
        error: 'BAD_KEY',
      },
    ],
  };

  const epochs = [0, 1, 4_294_967_295];
  files['derivation.json'] = {
    description: 'HKDF-SHA-256 subkeys of an epoch secret (SPEC.md section "Key derivation").',
    valid: epochs.map((epoch) => ({
      epoch_secret: toHex(f.epochSecret),
      vault_id: toHex(f.vaultId),
      epoch,
      value_key: toHex(deriveValueKey(f.epochSecret, f.vaultId, epoch)),
      epoch_check: toHex(deriveEpochCheck(f.epochSecret, f.vaultId, epoch)),
      blinding_key: toHex(deriveBlindingKey(f.epochSecret, f.vaultId)),
    })),
    invalid: [],
  };

  const blinder = new KeyNameBlinder(f.blindingKey);
  const names = ['a', 'notes/2026/todo', 'pässwörd', '鍵', '😀', ' ', 'e\u0301', '\u00e9', 'x'.repeat(1024)];
  files['blinding.json'] = {
    description:
      'Key-name blinding: HMAC-SHA-256(K_blind, UTF-8 name), no normalization (SPEC.md section "Key names").',
    blinding_key: toHex(f.blindingKey),
    valid: names.map((name) => ({
      name,
      name_utf8: toHex(encodeKeyName(name)),
      blinded_key: toHex(blinder.blind(name)),
    })),
    invalid: [
      { description: 'empty name', name: '', error: 'INVALID_ARGUMENT' },
      { description: 'lone surrogate', name: 'a\ud800', error: 'INVALID_ARGUMENT' },
      { description: '1025 bytes', name: 'x'.repeat(1025), error: 'TOO_LARGE' },
    ],
  };

  const lengths = [1, 2, 9, 36, 37, 100, 1000, 1025, 4097, 65535, 1_000_000, 4_294_967_295];
  files['padding.json'] = {
    description: 'Padmé padded lengths (SPEC.md section "Envelopes").',
    valid: lengths.map((length) => ({ length, padded: padme(length) })),
    invalid: [0, 4_294_967_296].map((length) => ({ length, error: 'INVALID_ARGUMENT' })),
  };

  const itemBinding: EnvelopeBinding = {
    purpose: EnvelopePurpose.itemValue,
    vaultId: f.vaultId,
    device: f.creator.publicKey,
    logIndex: 7n,
    epoch: 0,
    item: 1,
    blindedKey: blinder.blind('notes/2026/todo'),
  };
  const envelopes = [new Uint8Array(0), utf8('hello'), patternBytes(5, 200)].map((payload, i) => {
    const nonce = nonceFor(`envelope ${i}`);
    return { payload, nonce, envelope: sealEnvelopeWithNonce(f.valueKey, itemBinding, payload, nonce) };
  });
  const first = envelopes[1]!.envelope;
  const moved = (change: Partial<EnvelopeBinding>) => ({ ...itemBinding, ...change });
  const handMade = (plaintext: Uint8Array) => {
    const nonce = nonceFor('hand-made');
    return Uint8Array.of(1, ...nonce, ...nacl.secretbox(plaintext, nonce, f.valueKey));
  };
  const bindingHash = envelopeBindingHash(itemBinding);
  const withPrefix = (length: number, declared: number, tail: number[] = []) => {
    const p = new Uint8Array(length);
    p.set(bindingHash, 0);
    new DataView(p.buffer).setUint32(32, declared);
    p.set(tail, length - tail.length);
    return p;
  };
  files['envelope.json'] = {
    description:
      'Value envelopes: version 0x01 || nonce || XSalsa20-Poly1305(K_enc, binding hash || u32 length || payload || zero padding) (SPEC.md section "Envelopes").',
    value_key: toHex(f.valueKey),
    valid: envelopes.map((e) => ({
      binding: bindingJson(itemBinding),
      binding_hash: toHex(bindingHash),
      nonce: toHex(e.nonce),
      payload: toHex(e.payload),
      envelope: toHex(e.envelope),
    })),
    invalid: [
      {
        description: 'ciphertext bit flipped',
        envelope: flip(first, 40),
        binding: itemBinding,
        error: 'DECRYPT_FAILED',
      },
      {
        description: 'tag bit flipped',
        envelope: flip(first, first.length - 1),
        binding: itemBinding,
        error: 'DECRYPT_FAILED',
      },
      {
        description: 'unknown version',
        envelope: replaceAt(first, 0, 2),
        binding: itemBinding,
        error: 'UNSUPPORTED_VERSION',
      },
      { description: 'truncated', envelope: first.subarray(0, 60), binding: itemBinding, error: 'MALFORMED' },
      {
        description: 'moved to another vault',
        envelope: first,
        binding: moved({ vaultId: patternBytes(9) }),
        error: 'BINDING_MISMATCH',
      },
      {
        description: 'moved to another device',
        envelope: first,
        binding: moved({ device: patternBytes(9) }),
        error: 'BINDING_MISMATCH',
      },
      {
        description: 'moved to another log index',
        envelope: first,
        binding: moved({ logIndex: 8n }),
        error: 'BINDING_MISMATCH',
      },
      {
        description: 'moved to another epoch',
        envelope: first,
        binding: moved({ epoch: 1 }),
        error: 'BINDING_MISMATCH',
      },
      { description: 'moved to another item', envelope: first, binding: moved({ item: 0 }), error: 'BINDING_MISMATCH' },
      {
        description: 'moved to another key',
        envelope: first,
        binding: moved({ blindedKey: patternBytes(9) }),
        error: 'BINDING_MISMATCH',
      },
      {
        description: 'used as entry metadata',
        envelope: first,
        binding: moved({ purpose: EnvelopePurpose.entryMeta }),
        error: 'BINDING_MISMATCH',
      },
      {
        description: 'length field beyond plaintext',
        envelope: handMade(withPrefix(40, 5)),
        binding: itemBinding,
        error: 'MALFORMED',
      },
      {
        description: 'not padded to the Padmé length',
        envelope: handMade(withPrefix(41, 5)),
        binding: itemBinding,
        error: 'NON_CANONICAL',
      },
      {
        description: 'non-zero padding',
        envelope: handMade(withPrefix(40, 1, [1])),
        binding: itemBinding,
        error: 'NON_CANONICAL',
      },
    ].map((c) => ({
      description: c.description,
      binding: bindingJson(c.binding),
      envelope: toHex(c.envelope),
      error: c.error,
    })),
  };

  // An end-to-end data entry: two keys written at log index 0 in epoch 0.
  const device = f.creator.publicKey;
  const otherDevice = (await ed25519Signer(patternBytes(6))).publicKey;
  const meta = { clock: { wallMs: 1_767_225_600_123n, counter: 2 }, context: [{ device: otherDevice, size: 3n }] };
  const metaPlain = encodeEntryMeta(meta, device);
  const metaBinding: EnvelopeBinding = {
    purpose: EnvelopePurpose.entryMeta,
    vaultId: f.vaultId,
    device,
    logIndex: 0n,
    epoch: 0,
    item: 0,
    blindedKey: NO_BLINDED_KEY,
  };
  const writes = [
    { name: 'notes/2026/todo', kind: ValueKind.json, value: utf8('{"done":false}') },
    { name: 'a', kind: ValueKind.tombstone, value: new Uint8Array(0) },
  ]
    .map((w) => ({ ...w, blindedKey: blinder.blind(w.name) }))
    .sort((a, b) => (toHex(a.blindedKey) < toHex(b.blindedKey) ? -1 : 1));
  const items: EntryItem[] = [];
  const itemJson = writes.map((w, i) => {
    const payload = encodeItemPayload({ name: encodeKeyName(w.name), kind: w.kind, value: w.value });
    const binding: EnvelopeBinding = {
      ...metaBinding,
      purpose: EnvelopePurpose.itemValue,
      item: i,
      blindedKey: w.blindedKey,
    };
    const nonce = nonceFor(`entry item ${i}`);
    const envelope = sealEnvelopeWithNonce(f.valueKey, binding, payload, nonce);
    items.push({ blindedKey: w.blindedKey, value: { kind: 'inline', envelope } });
    return {
      name: w.name,
      kind: w.kind,
      value: toHex(w.value),
      payload: toHex(payload),
      nonce: toHex(nonce),
      envelope: toHex(envelope),
    };
  });
  const metaNonce = nonceFor('entry meta');
  const entry: DataEntry = {
    type: 'data',
    vaultId: f.vaultId,
    device,
    index: 0n,
    epoch: 0,
    meta: sealEnvelopeWithNonce(f.valueKey, metaBinding, metaPlain, metaNonce),
    items,
  };
  const entryBytes = encodeEntry(entry);
  const blobEnvelope = sealEnvelopeWithNonce(
    f.valueKey,
    { ...metaBinding, logIndex: 1n, purpose: EnvelopePurpose.itemValue, item: 0, blindedKey: blinder.blind('big') },
    encodeItemPayload({ name: utf8('big'), kind: ValueKind.bytes, value: patternBytes(7, 5000) }),
    nonceFor('blob'),
  );
  const blobEntry: DataEntry = {
    ...entry,
    index: 1n,
    meta: sealEnvelopeWithNonce(f.valueKey, { ...metaBinding, logIndex: 1n }, metaPlain, nonceFor('entry meta 1')),
    items: [
      {
        blindedKey: blinder.blind('big'),
        value: { kind: 'blob', hash: sha256(blobEnvelope), length: blobEnvelope.length },
      },
    ],
  };
  const blobEntryBytes = encodeEntry(blobEntry);
  const membershipBytes = encodeEntry({
    type: 'membership',
    vaultId: f.vaultId,
    device,
    index: 2n,
    epoch: 0,
    clock: { wallMs: 1_767_225_601_000n, counter: 0 },
    context: [{ device: otherDevice, size: 3n }],
    change: {
      op: 'add',
      member: otherDevice,
      boxKey: nacl.box.keyPair.fromSecretKey(patternBytes(8)).publicKey,
      role: 'writer',
    },
  });
  const dataHeaderLength = 15 + 1 + 32 + 32 + 8 + 4;
  files['entry.json'] = {
    description:
      'Log entries and the plaintexts sealed in them (SPEC.md section "Log entries"), using the genesis.json vault, the derivation.json keys for epoch 0, and blinding.json K_blind.',
    value_key: toHex(f.valueKey),
    blinding_key: toHex(f.blindingKey),
    valid: [
      {
        description: 'data entry: two inline items (a JSON value and a tombstone), index 0',
        meta: {
          wall_ms: meta.clock.wallMs.toString(),
          counter: meta.clock.counter,
          context: meta.context.map((c) => ({ device: toHex(c.device), size: c.size.toString() })),
          plaintext: toHex(metaPlain),
          nonce: toHex(metaNonce),
          envelope: toHex(entry.meta),
        },
        items: itemJson,
        entry: toHex(entryBytes),
        leaf_hash: toHex(leafHash(entryBytes)),
      },
      {
        description: 'data entry: one item stored as a blob (5000-byte value), index 1',
        blob: toHex(blobEnvelope),
        blob_hash: toHex(sha256(blobEnvelope)),
        entry: toHex(blobEntryBytes),
        leaf_hash: toHex(leafHash(blobEntryBytes)),
      },
      {
        description: 'membership entry: add a writer, index 2',
        entry: toHex(membershipBytes),
        leaf_hash: toHex(leafHash(membershipBytes)),
      },
    ],
    invalid: [
      { description: 'trailing byte', entry: toHex(Uint8Array.of(...entryBytes, 0)), error: 'MALFORMED' },
      {
        description: 'truncated by one byte',
        entry: toHex(entryBytes.subarray(0, entryBytes.length - 1)),
        error: 'MALFORMED',
      },
      { description: 'unknown entry type 9', entry: toHex(replaceAt(entryBytes, 15, 9)), error: 'UNSUPPORTED_VERSION' },
      { description: 'tag of version 2', entry: toHex(replaceAt(entryBytes, 7, 0x32)), error: 'UNSUPPORTED_VERSION' },
      { description: 'not an entry', entry: toHex(replaceAt(entryBytes, 0, 0x45)), error: 'MALFORMED' },
      {
        description: 'items out of order (same two items swapped)',
        entry: toHex(encodeUnchecked(entryBytes, dataHeaderLength, entry)),
        error: 'MALFORMED',
      },
      {
        description: 'unknown value reference kind',
        entry: toHex(replaceAt(entryBytes, dataHeaderLength + 4 + entry.meta.length + 2 + 32, 2)),
        error: 'MALFORMED',
      },
      {
        description: 'zero items',
        entry: toHex(Uint8Array.of(...entryBytes.subarray(0, dataHeaderLength + 4 + entry.meta.length), 0, 0)),
        error: 'MALFORMED',
      },
      {
        description: 'membership removal that still carries a box key and a role',
        entry: toHex(
          replaceAt(membershipBytes, membershipBytes.length - 1, 1).map((b, i, a) => (i === a.length - 66 ? 3 : b)),
        ),
        error: 'NON_CANONICAL',
      },
    ],
  };
  files['checkpoint.json'] = await checkpointVectors(f, [entryBytes, blobEntryBytes, membershipBytes]);
  files['request.json'] = await requestVectors(f);
  files['identity.json'] = identityVectors(f);
  files['wrap.json'] = wrapVectors(f);
  files['epoch.json'] = epochVectors(f);
  files['invitation.json'] = await invitationVectors(f);
  return files;
}

type Fixture = Awaited<ReturnType<typeof fixture>>;

/** The devices of the sharing vectors: seeds and box secrets of fixed patterns. */
function sharingDevices(f: Fixture) {
  const device = (signingSeed: Uint8Array, boxSecret: Uint8Array) => ({
    signingSeed,
    boxSecret,
    signingKey: nacl.sign.keyPair.fromSeed(signingSeed).publicKey,
    boxKey: x25519PublicKey(boxSecret),
  });
  return {
    // The genesis creator and the writer entry.json adds, with the box keys the vault knows them by.
    creator: device(f.creatorSeed, patternBytes(3)),
    writer: device(patternBytes(6), patternBytes(8)),
    // A device that is not a member yet: the invitee.
    invitee: device(patternBytes(20), patternBytes(21)),
  };
}

function u32(n: number): Uint8Array {
  return new ByteWriter().u32(n).finish();
}

/** SHA-256 of the tag and both keys, first four bytes: for hand-made identity strings. */
function identityWith(signingKey: Uint8Array, boxKey: Uint8Array): string {
  const checksum = sha256(concatBytes(utf8('e2ekv/v1/identity\0'), signingKey, boxKey)).subarray(0, 4);
  return 'e2ekv-id1-' + toBase64Url(concatBytes(signingKey, boxKey, checksum));
}

/** Identity strings and fingerprints (SPEC.md 21.1). */
function identityVectors(f: Fixture) {
  const devices = Object.values(sharingDevices(f));
  const good = formatIdentityString(devices[0]!);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const lastBits = alphabet[alphabet.indexOf(good[good.length - 1]!) | 1]!;
  const mistyped = good.slice(0, 40) + (good[40] === 'A' ? 'B' : 'A') + good.slice(41);
  const identityPoint = Uint8Array.of(1, ...new Uint8Array(31));
  const yIsP = Uint8Array.of(0xed, ...new Uint8Array(30).fill(0xff), 0x7f);
  const orderEight = fromHexString('c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a');
  const box = devices[0]!.boxKey;
  return {
    description:
      'Identity strings ("e2ekv-id1-" || base64url(signing key || box key || checksum)) and fingerprints (SPEC.md section 21.1).',
    valid: devices.map((d) => ({
      signing_seed: toHex(d.signingSeed),
      box_secret: toHex(d.boxSecret),
      signing_key: toHex(d.signingKey),
      box_key: toHex(d.boxKey),
      checksum: toHex(sha256(concatBytes(utf8('e2ekv/v1/identity\0'), d.signingKey, d.boxKey)).subarray(0, 4)),
      identity_string: formatIdentityString(d),
      fingerprint: identityFingerprint(d),
    })),
    invalid: [
      { description: 'another prefix', text: good.replace('e2ekv-id1-', 'e2ekv-ID1-'), error: 'MALFORMED' },
      { description: 'another version', text: good.replace('e2ekv-id1-', 'e2ekv-id2-'), error: 'UNSUPPORTED_VERSION' },
      { description: 'one character short', text: good.slice(0, -1), error: 'MALFORMED' },
      { description: 'one character long', text: good + 'A', error: 'MALFORMED' },
      { description: 'padded', text: good + '=', error: 'MALFORMED' },
      { description: 'trailing newline', text: good + '\n', error: 'MALFORMED' },
      { description: "standard base64's '+'", text: good.slice(0, 30) + '+' + good.slice(31), error: 'MALFORMED' },
      {
        description: 'non-zero unused bits in the last character',
        text: good.slice(0, -1) + lastBits,
        error: 'NON_CANONICAL',
      },
      { description: 'one character mistyped (checksum)', text: mistyped, error: 'MALFORMED' },
      { description: 'signing key of small order', text: identityWith(identityPoint, box), error: 'BAD_KEY' },
      { description: 'signing key not canonical (y = p)', text: identityWith(yIsP, box), error: 'BAD_KEY' },
      { description: 'signing key of order 8', text: identityWith(orderEight, box), error: 'BAD_KEY' },
      {
        description: 'box key all zero',
        text: identityWith(devices[0]!.signingKey, new Uint8Array(32)),
        error: 'BAD_KEY',
      },
    ],
  };
}

function wrapCase(
  context: WrapContext,
  boxSecret: Uint8Array,
  ephemeralSecret: Uint8Array,
  plaintext: Uint8Array,
  label: string,
) {
  const boxKey = x25519PublicKey(boxSecret);
  const ephemeral = { publicKey: x25519PublicKey(ephemeralSecret), secretKey: ephemeralSecret };
  const shared = x25519.getSharedSecret(ephemeralSecret, boxKey);
  const info = wrapInfo(context, ephemeral.publicKey, boxKey);
  const nonce = nonceFor(`wrap ${label}`);
  return {
    description: label,
    vault_id: toHex(context.vaultId),
    label: context.label,
    extra: toHex(context.extra),
    recipient_box_secret: toHex(boxSecret),
    recipient_box_key: toHex(boxKey),
    ephemeral_secret: toHex(ephemeralSecret),
    ephemeral: toHex(ephemeral.publicKey),
    shared: toHex(shared),
    info: toHex(info),
    wrap_key: toHex(hkdfSha256(shared, context.vaultId, info)),
    nonce: toHex(nonce),
    plaintext: toHex(plaintext),
    wrapped: toHex(wrapSecretWithNonce(plaintext, boxKey, ephemeral, context, nonce)),
  };
}

/** Wrapping a secret for a box key (SPEC.md 21.2). */
function wrapVectors(f: Fixture) {
  const d = sharingDevices(f);
  const epochCase = wrapCase(
    epochWrapContext(f.vaultId, 1),
    d.creator.boxSecret,
    patternBytes(22),
    patternBytes(23),
    'epoch secret',
  );
  const inviteCase = wrapCase(
    { vaultId: f.vaultId, label: 'e2ekv/v1 invitation', extra: d.invitee.signingKey },
    d.invitee.boxSecret,
    patternBytes(24),
    patternBytes(25, 74),
    'invitation secrets',
  );
  const wrapped = fromHexString(epochCase.wrapped);
  const invalid = (description: string, change: Record<string, string>, error: string) => ({
    description,
    ...pick(epochCase, ['vault_id', 'label', 'extra', 'recipient_box_secret', 'ephemeral', 'wrapped']),
    ...change,
    error,
  });
  return {
    description:
      'X25519 + HKDF-SHA-256 + secretbox wraps (SPEC.md section 21.2): shared = X25519(e, recipient), wrap key = HKDF(shared, salt = vault id, info = label || E || recipient || extra), wrapped = nonce || secretbox.',
    valid: [epochCase, inviteCase],
    invalid: [
      invalid('tag bit flipped', { wrapped: toHex(flip(wrapped, wrapped.length - 1)) }, 'DECRYPT_FAILED'),
      invalid('nonce bit flipped', { wrapped: toHex(flip(wrapped, 0)) }, 'DECRYPT_FAILED'),
      invalid('another label', { label: 'e2ekv/v1 invitation' }, 'DECRYPT_FAILED'),
      invalid('another extra (epoch 2)', { extra: toHex(u32(2)) }, 'DECRYPT_FAILED'),
      invalid('another vault', { vault_id: toHex(patternBytes(9)) }, 'DECRYPT_FAILED'),
      invalid('another recipient', { recipient_box_secret: toHex(d.writer.boxSecret) }, 'DECRYPT_FAILED'),
      invalid('E all zero', { ephemeral: toHex(new Uint8Array(32)) }, 'BAD_KEY'),
      invalid(
        'E of small order (u = 1): shared secret all zero',
        { ephemeral: toHex(Uint8Array.of(1, ...new Uint8Array(31))) },
        'BAD_KEY',
      ),
      invalid('shorter than nonce and tag', { wrapped: toHex(wrapped.subarray(0, 39)) }, 'MALFORMED'),
    ],
  };
}

/** An epoch record (entry type 3) and its wraps (SPEC.md 21.3). */
function epochVectors(f: Fixture) {
  const d = sharingDevices(f);
  const secret = patternBytes(23);
  const ephemeralSecret = patternBytes(22);
  const record = sealEpochRecordDeterministic(
    {
      vaultId: f.vaultId,
      device: d.creator.signingKey,
      index: 3n,
      epoch: 1,
      clock: { wallMs: 1_767_225_602_000n, counter: 0 },
      context: [{ device: d.writer.signingKey, size: 3n }],
      secret,
      recipients: [d.writer, d.creator],
    },
    ephemeralSecret,
    (position) => nonceFor(`epoch record wrap ${position}`),
  );
  const bytes = encodeEntry(record);
  const byMember = new Map([d.creator, d.writer].map((m) => [toHex(m.signingKey), m]));
  const body = 15 + 1 + 32 + 32 + 8 + 4;
  const checkAt = body + 8 + 4 + 2 + 40;
  const countAt = checkAt + 64;
  const first = countAt + 2;
  const second = first + 104;
  const swap = bytes.slice();
  swap.set(bytes.subarray(first + 32, first + 104), second + 32);
  swap.set(bytes.subarray(second + 32, second + 104), first + 32);
  return {
    description:
      'An epoch record (entry type 3, SPEC.md section 21.3) starting epoch 1 in the genesis.json vault, written by the creator at index 3 of its log, wrapping S_1 for the creator and the writer entry.json adds.',
    valid: [
      {
        epoch: 1,
        epoch_secret: toHex(secret),
        check: toHex(record.check),
        ephemeral_secret: toHex(ephemeralSecret),
        ephemeral: toHex(record.ephemeral),
        recipients: record.recipients.map((r, i) => ({
          member: toHex(r.member),
          box_secret: toHex(byMember.get(toHex(r.member))!.boxSecret),
          box_key: toHex(byMember.get(toHex(r.member))!.boxKey),
          nonce: toHex(nonceFor(`epoch record wrap ${i}`)),
          wrapped: toHex(r.wrapped),
        })),
        entry: toHex(bytes),
        leaf_hash: toHex(leafHash(bytes)),
      },
    ],
    invalid: [
      { description: 'epoch 0', entry: toHex(replaceRange(bytes, body - 4, u32(0))), error: 'MALFORMED' },
      {
        description: 'E all zero',
        entry: toHex(replaceRange(bytes, checkAt + 32, new Uint8Array(32))),
        error: 'MALFORMED',
      },
      {
        description: 'no recipients',
        entry: toHex(concatBytes(bytes.subarray(0, countAt), Uint8Array.of(0, 0))),
        error: 'MALFORMED',
      },
      {
        description: 'count 1025',
        entry: toHex(replaceRange(bytes, countAt, Uint8Array.of(4, 1))),
        error: 'TOO_LARGE',
      },
      {
        description: 'recipients out of order',
        entry: toHex(concatBytes(bytes.subarray(0, first), bytes.subarray(second), bytes.subarray(first, second))),
        error: 'MALFORMED',
      },
      {
        description: 'one member twice',
        entry: toHex(replaceRange(bytes, second, bytes.subarray(first, first + 32))),
        error: 'MALFORMED',
      },
      { description: 'a wrap of 71 bytes', entry: toHex(bytes.subarray(0, bytes.length - 1)), error: 'MALFORMED' },
      { description: 'trailing byte', entry: toHex(concatBytes(bytes, Uint8Array.of(0))), error: 'MALFORMED' },
      {
        description: 'context lists the writer',
        entry: toHex(replaceRange(bytes, body + 14, d.creator.signingKey)),
        error: 'MALFORMED',
      },
    ],
    invalid_open: [
      {
        description: 'check(e) altered: the wrapped secret does not match it',
        entry: toHex(flip(bytes, checkAt)),
        member: toHex(d.creator.signingKey),
        box_secret: toHex(d.creator.boxSecret),
        error: 'INTEGRITY',
      },
      {
        description: 'the two wraps swapped',
        entry: toHex(swap),
        member: toHex(d.creator.signingKey),
        box_secret: toHex(d.creator.boxSecret),
        error: 'DECRYPT_FAILED',
      },
      {
        description: 'the record replayed as epoch 2',
        entry: toHex(replaceRange(bytes, body - 4, u32(2))),
        member: toHex(d.writer.signingKey),
        box_secret: toHex(d.writer.boxSecret),
        error: 'DECRYPT_FAILED',
      },
    ],
  };
}

interface RawInvitation {
  tag?: string;
  inviter: Uint8Array;
  invitee: Uint8Array;
  inviteeBoxKey: Uint8Array;
  role: number;
  ephemeral: Uint8Array;
  sealed: Uint8Array;
  servers: string[];
}

/** An invitation body laid out by hand from SPEC.md 21.4, whatever its fields say. */
function rawInvitationBody(vaultId: Uint8Array, i: RawInvitation): Uint8Array {
  const w = new ByteWriter()
    .bytes(utf8(i.tag ?? 'e2ekv/v1/invitation\0'))
    .bytes(vaultId)
    .bytes(i.inviter)
    .bytes(i.invitee)
    .bytes(i.inviteeBoxKey)
    .u8(i.role)
    .bytes(i.ephemeral)
    .vec16(i.sealed, 'sealed')
    .u8(i.servers.length);
  for (const server of i.servers) w.vec16(utf8(server), 'server');
  return w.finish();
}

function secretsPlaintext(secrets: { epoch: number; secret: Uint8Array }[]): Uint8Array {
  const w = new ByteWriter().u16(secrets.length);
  for (const s of secrets) w.u32(s.epoch).bytes(s.secret);
  return w.finish();
}

/** Invitation tokens (SPEC.md 21.4). */
async function invitationVectors(f: Fixture) {
  const d = sharingDevices(f);
  const ephemeralSecret = patternBytes(24);
  const ephemeral = { publicKey: x25519PublicKey(ephemeralSecret), secretKey: ephemeralSecret };
  const nonce = nonceFor('invitation');
  const cases = [
    {
      role: 'writer' as const,
      servers: ['https://replica1.e2ekv.test', 'https://replica2.e2ekv.test:7400'],
      secrets: [
        { epoch: 0, secret: f.epochSecret },
        { epoch: 1, secret: patternBytes(23) },
      ],
    },
    { role: 'admin' as const, servers: [], secrets: [{ epoch: 0, secret: f.epochSecret }] },
  ];
  const valid = [];
  for (const c of cases) {
    const token = await createInvitationDeterministic(
      {
        vaultId: f.vaultId,
        inviter: f.creator,
        invitee: d.invitee,
        role: c.role,
        secrets: c.secrets,
        servers: c.servers,
      },
      ephemeralSecret,
      nonce,
    );
    const invitation = fromBase64UrlString(token.slice('e2ekv-invite1-'.length));
    const plaintext = secretsPlaintext(c.secrets);
    valid.push({
      vault_id: toHex(f.vaultId),
      inviter_seed: toHex(f.creatorSeed),
      inviter: toHex(f.creator.publicKey),
      invitee_seed: toHex(d.invitee.signingSeed),
      invitee: toHex(d.invitee.signingKey),
      invitee_box_secret: toHex(d.invitee.boxSecret),
      invitee_box_key: toHex(d.invitee.boxKey),
      role: c.role,
      servers: c.servers,
      secrets: c.secrets.map((s) => ({ epoch: s.epoch, secret: toHex(s.secret) })),
      secrets_plaintext: toHex(plaintext),
      ephemeral_secret: toHex(ephemeralSecret),
      ephemeral: toHex(ephemeral.publicKey),
      nonce: toHex(nonce),
      body: toHex(invitation.subarray(0, invitation.length - 64)),
      signature: toHex(invitation.subarray(invitation.length - 64)),
      token,
    });
  }
  const token = valid[0]!.token;
  const invitation = fromBase64UrlString(token.slice('e2ekv-invite1-'.length));
  const retoken = (bytes: Uint8Array) => 'e2ekv-invite1-' + toBase64Url(bytes);
  const raw = (change: Partial<RawInvitation>, plaintext = secretsPlaintext(cases[0]!.secrets)): RawInvitation => ({
    inviter: f.creator.publicKey,
    invitee: d.invitee.signingKey,
    inviteeBoxKey: d.invitee.boxKey,
    role: 2,
    ephemeral: ephemeral.publicKey,
    sealed: wrapSecretWithNonce(
      plaintext,
      d.invitee.boxKey,
      ephemeral,
      { vaultId: f.vaultId, label: 'e2ekv/v1 invitation', extra: d.invitee.signingKey },
      nonce,
    ),
    servers: [],
    ...change,
  });
  const signed = async (i: RawInvitation, signer = f.creator) => {
    const body = rawInvitationBody(f.vaultId, i);
    return retoken(concatBytes(body, await signer.sign(body)));
  };
  const smallOrder = Uint8Array.of(1, ...new Uint8Array(31));
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const withUnusedBits = valid.find((v) => fromBase64UrlString(v.token.slice(14)).length % 3 !== 0)!.token;
  const roleAt = 20 + 32 * 4;
  const sealedElsewhere = wrapSecretWithNonce(
    secretsPlaintext(cases[0]!.secrets),
    d.invitee.boxKey,
    ephemeral,
    { vaultId: patternBytes(9), label: 'e2ekv/v1 invitation', extra: d.invitee.signingKey },
    nonce,
  );
  return {
    description:
      'Invitation tokens (SPEC.md section 21.4): the genesis.json creator invites a new device to the genesis.json vault. "open" cases are opened by the device named in "opener" (invitee or writer, as in epoch.json); the others are only read (parsed and signature-checked).',
    valid,
    invalid: [
      {
        description: 'signature altered',
        token: retoken(flip(invitation, invitation.length - 1)),
        error: 'BAD_SIGNATURE',
      },
      {
        description: 'role changed after signing',
        token: retoken(replaceAt(invitation, roleAt, 1)),
        error: 'BAD_SIGNATURE',
      },
      { description: 'vault id changed after signing', token: retoken(flip(invitation, 20)), error: 'BAD_SIGNATURE' },
      { description: 'opened by another device', token, open: true, opener: 'writer', error: 'PERMISSION_DENIED' },
      {
        description: 'another version',
        token: token.replace('e2ekv-invite1-', 'e2ekv-invite2-'),
        error: 'UNSUPPORTED_VERSION',
      },
      { description: 'another prefix', token: token.replace('e2ekv-invite1-', 'e2ekv-invite-'), error: 'MALFORMED' },
      { description: 'padded', token: token + '=', error: 'MALFORMED' },
      {
        description: 'non-zero unused bits in the last character',
        token:
          withUnusedBits.slice(0, -1) + alphabet[alphabet.indexOf(withUnusedBits[withUnusedBits.length - 1]!) | 1]!,
        error: 'NON_CANONICAL',
      },
      { description: 'truncated', token: retoken(invitation.subarray(0, invitation.length - 1)), error: 'MALFORMED' },
      {
        description: 'tag of version 2 (signed)',
        token: await signed(raw({ tag: 'e2ekv/v2/invitation\0' })),
        error: 'UNSUPPORTED_VERSION',
      },
      { description: 'unknown role 4 (signed)', token: await signed(raw({ role: 4 })), error: 'MALFORMED' },
      {
        description: '17 servers (signed)',
        token: await signed(raw({ servers: Array.from({ length: 17 }, (_, i) => `https://r${i}.e2ekv.test`) })),
        error: 'TOO_LARGE',
      },
      { description: 'an empty server URL (signed)', token: await signed(raw({ servers: [''] })), error: 'MALFORMED' },
      {
        description: 'inviter key of small order',
        token: await signed(raw({ inviter: smallOrder })),
        error: 'BAD_KEY',
      },
      {
        description: 'invitee box key all zero',
        token: await signed(raw({ inviteeBoxKey: new Uint8Array(32), sealed: new Uint8Array(78) })),
        error: 'BAD_KEY',
      },
      {
        description: 'signed by a key other than the inviter it names',
        token: await signed(raw({}), await ed25519Signer(patternBytes(6))),
        error: 'BAD_SIGNATURE',
      },
      {
        description: 'secrets sealed for another vault (signed)',
        token: await signed(raw({ sealed: sealedElsewhere })),
        open: true,
        opener: 'invitee',
        error: 'DECRYPT_FAILED',
      },
      {
        description: 'secrets without epoch 0 (signed)',
        token: await signed(raw({}, secretsPlaintext([{ epoch: 1, secret: patternBytes(23) }]))),
        open: true,
        opener: 'invitee',
        error: 'MALFORMED',
      },
      {
        description: 'secrets out of order (signed)',
        token: await signed(raw({}, secretsPlaintext([...cases[0]!.secrets].reverse()))),
        open: true,
        opener: 'invitee',
        error: 'MALFORMED',
      },
    ],
  };
}

function pick<T extends Record<string, unknown>, K extends keyof T>(o: T, keys: K[]): Pick<T, K> {
  return Object.fromEntries(keys.map((k) => [k, o[k]])) as Pick<T, K>;
}

function fromHexString(hex: string): Uint8Array {
  return Uint8Array.from(Buffer.from(hex, 'hex'));
}

function fromBase64UrlString(text: string): Uint8Array {
  return Uint8Array.from(Buffer.from(text, 'base64url'));
}

/** The device log made of the entry vectors, its checkpoints, proofs and a cosignature. */
async function checkpointVectors(f: Awaited<ReturnType<typeof fixture>>, entries: Uint8Array[]) {
  const tree = new MerkleTree(entries.map((e) => leafHash(e)));
  const device = await deviceCheckpointSigner(f.creatorSeed, f.vaultId);
  const cosignerName = 'replica1.e2ekv.test/cosigner';
  const cosignerSeed = patternBytes(10);
  const cosignTime = 1_767_225_700n;
  const cosigner = await cosignatureSigner(cosignerName, cosignerSeed, () => cosignTime);
  const origin = logOrigin(f.vaultId, f.creator.publicKey);
  const checkpoints = [];
  for (let size = 1; size <= tree.size; size++) {
    const signed = await signDeviceCheckpoint(device, { size: BigInt(size), root: tree.root(size) });
    checkpoints.push({
      size,
      root: toHex(tree.root(size)),
      note: signed,
      cosigned: await addNoteSignatures(signed, [cosigner]),
      consistency_to_latest: size < tree.size ? tree.consistencyProof(size).map(toHex) : [],
    });
  }
  const latest = checkpoints[checkpoints.length - 1]!.cosigned;
  const text = (size: string, root = toBase64(tree.root(tree.size))) => `${origin}\n${size}\n${root}\n`;
  const otherDevice = await deviceCheckpointSigner(patternBytes(11), f.vaultId);
  const otherVault = await deviceCheckpointSigner(f.creatorSeed, patternBytes(12));
  const forged = { ...otherDevice, name: origin };
  const invalid: { description: string; note: string; error: string }[] = [
    { description: 'device signature altered', note: flipBase64Line(latest, 0), error: 'BAD_SIGNATURE' },
    { description: 'cosignature altered', note: flipBase64Line(latest, 1), error: 'BAD_SIGNATURE' },
    {
      description: 'body altered (size 3 -> 2) after signing',
      note: latest.replace(`\n3\n`, `\n2\n`),
      error: 'BAD_SIGNATURE',
    },
    {
      description: 'signed by another device under this origin',
      note: await signNote(text('3'), [forged]),
      error: 'UNKNOWN_KEY',
    },
    {
      description: 'a checkpoint of the same device in another vault',
      note: await signDeviceCheckpoint(otherVault, { size: 3n, root: tree.root() }),
      error: 'UNKNOWN_KEY',
    },
    { description: 'size with a leading zero', note: await signNote(text('03'), [device]), error: 'NON_CANONICAL' },
    { description: 'size 2^63', note: await signNote(text('9223372036854775808'), [device]), error: 'MALFORMED' },
    {
      description: 'root of 31 bytes',
      note: await signNote(text('3', toBase64(new Uint8Array(31))), [device]),
      error: 'MALFORMED',
    },
    { description: 'extension line', note: await signNote(text('3') + 'extra\n', [device]), error: 'MALFORMED' },
    { description: 'CRLF line endings', note: latest.replaceAll('\n', '\r\n'), error: 'MALFORMED' },
    { description: 'no blank line before signatures', note: latest.replace('\n\n', '\n'), error: 'MALFORMED' },
    { description: 'over 16384 bytes', note: latest + `— x ${toBase64(new Uint8Array(12300))}\n`, error: 'TOO_LARGE' },
  ];
  return {
    description:
      'A device log of the three entry.json entries: RFC 6962 roots and proofs, device checkpoints (C2SP tlog-checkpoint in a signed note, key name = origin) and a tlog-cosignature/v1 cosignature (SPEC.md sections 9-12). Invalid notes are checked against the same vault, device and cosigner.',
    vault_id: toHex(f.vaultId),
    device: toHex(f.creator.publicKey),
    device_vkey: formatVerifierKey(origin, NOTE_SIG_ED25519, f.creator.publicKey),
    cosigner_name: cosignerName,
    cosigner_seed: toHex(cosignerSeed),
    cosigner_vkey: formatCosignerVkey(cosignerName, cosigner.publicKey),
    cosignature_time: cosignTime.toString(),
    origin,
    leaf_hashes: entries.map((e) => toHex(leafHash(e))),
    inclusion_proofs: entries.map((_, i) => tree.inclusionProof(i).map(toHex)),
    valid: checkpoints,
    invalid,
  };
}

/** Authenticated HTTP requests (SPEC.md section 18). */
async function requestVectors(f: Awaited<ReturnType<typeof fixture>>) {
  const audience = (await ed25519Signer(patternBytes(10))).publicKey;
  const cases = [
    {
      method: 'POST',
      path: `/v1/vaults/${toHex(f.vaultId)}/logs/${toHex(f.creator.publicKey)}/append`,
      body: utf8('{"start":0}'),
    },
    {
      method: 'GET',
      path: `/v1/vaults/${toHex(f.vaultId)}/logs/${toHex(f.creator.publicKey)}/entries?start=0&end=2`,
      body: new Uint8Array(0),
    },
  ];
  const valid = [];
  for (const [i, c] of cases.entries()) {
    const timestampMs = 1_767_225_600_000n + BigInt(i);
    const nonce = patternBytes(13 + i, 16);
    const input = requestSignatureInput({ ...c, audience, device: f.creator.publicKey, timestampMs, nonce });
    const signature = await f.creator.sign(input);
    valid.push({
      audience: toHex(audience),
      device: toHex(f.creator.publicKey),
      timestamp_ms: timestampMs.toString(),
      nonce: toHex(nonce),
      method: c.method,
      path: c.path,
      body: toHex(c.body),
      input: toHex(input),
      signature: toHex(signature),
      authorization: formatAuthorization({ device: f.creator.publicKey, timestampMs, nonce, signature }),
    });
  }
  const good = valid[0]!.authorization;
  return {
    description:
      'Request signatures and Authorization headers (SPEC.md section 18), signed by the genesis.json creator.',
    valid,
    invalid: [
      { description: 'unknown scheme', authorization: good.replace('e2ekv-v1', 'e2ekv-v2'), error: 'MALFORMED' },
      {
        description: 'uppercase hex device',
        authorization: good.replace(/device=([0-9a-f]+)/, (_, d: string) => `device=${d.toUpperCase()}`),
        error: 'MALFORMED',
      },
      { description: 'leading zero in ts', authorization: good.replace('ts=', 'ts=0'), error: 'MALFORMED' },
      { description: 'space after comma', authorization: good.replace(',ts=', ', ts='), error: 'MALFORMED' },
      { description: 'short nonce', authorization: good.replace(/nonce=[0-9a-f]{2}/, 'nonce='), error: 'MALFORMED' },
      {
        description: 'non-canonical base64 signature (non-zero trailing bits)',
        authorization: setLowBitBeforePadding(good),
        error: 'NON_CANONICAL',
      },
    ],
  };
}

/** Sets an unused low bit in the last base64 character before '==': same bytes, non-canonical text. */
function setLowBitBeforePadding(text: string): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  const i = text.length - 3;
  return text.slice(0, i) + alphabet[alphabet.indexOf(text[i]!) + 1]! + '==';
}

/** Flips one bit of the n-th signature line's signature, keeping its base64 canonical. */
function flipBase64Line(note: string, n: number): string {
  const lines = note.split('\n');
  const first = lines.findIndex((l) => l.startsWith('— '));
  const i = first + n;
  const parts = lines[i]!.split(' ');
  const raw = Buffer.from(parts[2]!, 'base64');
  raw[raw.length - 1]! ^= 0x01;
  parts[2] = raw.toString('base64');
  lines[i] = parts.join(' ');
  return lines.join('\n');
}

/** The data entry with its two items written in the wrong order (what an encoder must never emit). */
function encodeUnchecked(bytes: Uint8Array, headerLength: number, entry: DataEntry): Uint8Array {
  const itemsStart = headerLength + 4 + entry.meta.length + 2;
  const itemLength = (item: EntryItem) => 32 + 1 + 4 + (item.value.kind === 'inline' ? item.value.envelope.length : 0);
  const firstLength = itemLength(entry.items[0]!);
  const a = bytes.subarray(itemsStart, itemsStart + firstLength);
  const b = bytes.subarray(itemsStart + firstLength);
  return Uint8Array.of(...bytes.subarray(0, itemsStart), ...b, ...a);
}

function flip(bytes: Uint8Array, index: number): Uint8Array {
  const copy = bytes.slice();
  copy[index]! ^= 0x01;
  return copy;
}

function replaceAt(bytes: Uint8Array, index: number, value: number): Uint8Array {
  const copy = bytes.slice();
  copy[index] = value;
  return copy;
}

function replaceRange(bytes: Uint8Array, offset: number, value: Uint8Array): Uint8Array {
  const copy = bytes.slice();
  copy.set(value, offset);
  return copy;
}

export function serializeVectors(content: unknown): string {
  return JSON.stringify(content, null, 1) + '\n';
}
