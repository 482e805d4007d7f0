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
import { toBase64 } from '../src/bytes.js';
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
  return files;
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
