import { readFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { rejectsCode, throwsCode } from '../../test/support/errors.js';
import { MAX_I64, concatBytes, fromBase64, fromHex, toBase64, toHex, utf8 } from '../src/bytes.js';
import { ed25519Verify, nodeCryptoEd25519, tweetnaclEd25519, webCryptoEd25519 } from '../src/crypto/ed25519.js';
import type { Ed25519Backend } from '../src/crypto/ed25519.js';
import type { ErrorCode } from '../src/errors.js';
import {
  COSIGNATURE_V1_LENGTH,
  cosignatureMessage,
  cosignatureSigner,
  cosignatureVerifier,
  cosignatureVerifierFromVkey,
  cosignerKeyId,
  formatCheckpoint,
  formatCosignerVkey,
  logOrigin,
  parseCheckpoint,
  parseCosignerVkey,
  parseLogOrigin,
  parseTimestampedSignature,
  verifyCosignedCheckpoint,
  verifyParsedCosignedCheckpoint,
} from '../src/checkpoint.js';
import {
  addNoteSignatures,
  ed25519NoteSigner,
  ed25519NoteVerifier,
  formatVerifierKey,
  isValidKeyName,
  parseNote,
  signNote,
  verifierFromVkey,
  verifyNote,
} from '../src/note.js';
import { c2spVector, c2spVkey, sharedVectorsDir } from '../../test/support/paths.js';

const vector = c2spVector;
const vkey = c2spVkey;

const cpNote = vector('cp.note');
const logVkey = vkey('log.vkey');
const witVkey = vkey('wit.vkey');
const body = cpNote.slice(0, cpNote.lastIndexOf('\n\n') + 1);
const [logLine, witLine] = cpNote.slice(body.length + 1).split(/(?<=\n)/) as [string, string];
const LOG_NAME = 'vault.example/v/abc123';
const WITNESS_NAME = 'replica1.example/w';
const TIME = 1700000000n;
const backends: readonly Ed25519Backend[] = [nodeCryptoEd25519, webCryptoEd25519, tweetnaclEd25519];

function seed(first: number): Uint8Array {
  return Uint8Array.from({ length: 32 }, (_, i) => first + i);
}

/** cp.note with the witness blob (after its key ID) replaced by `edit(blob)`. */
function editWitnessBlob(edit: (blob: Uint8Array) => Uint8Array): string {
  const start = witLine.lastIndexOf(' ') + 1;
  const full = fromBase64(witLine.slice(start, -1));
  const edited = concatBytes(full.subarray(0, 4), edit(full.subarray(4)));
  return body + '\n' + logLine + witLine.slice(0, start) + toBase64(edited) + '\n';
}

function withTimestamp(blob: Uint8Array, timestamp: bigint): Uint8Array {
  const out = blob.slice();
  new DataView(out.buffer).setBigUint64(0, timestamp);
  return out;
}

const witness = () => [parseCosignerVkey(witVkey)];

test('the cp.note vector has the expected shape', (t) => {
  t.is(body, `${LOG_NAME}\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n`);
  t.true(logLine.startsWith(`\u2014 ${LOG_NAME} `));
  t.true(witLine.startsWith(`\u2014 ${WITNESS_NAME} `));
  t.is(cpNote, `${body}\n${logLine}${witLine}`);
});

test('parseCheckpoint reads cp.note: origin, size 8, and the reference root of size 8', (t) => {
  const checkpoint = parseCheckpoint(body);
  t.is(checkpoint.origin, LOG_NAME);
  t.is(checkpoint.size, 8n);
  t.deepEqual(checkpoint.root, fromBase64('XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg='));
  t.deepEqual(checkpoint.extensions, []);
  const reference = JSON.parse(readFileSync(path.join(sharedVectorsDir, 'merkle/reference-tree.json'), 'utf8')) as {
    roots_hex: Record<string, string>;
  };
  t.is(toHex(checkpoint.root), reference.roots_hex['8'] ?? 'missing');
  t.is(formatCheckpoint(checkpoint), body);
});

test('the cosigned message is the header, the time line and the body', (t) => {
  t.deepEqual(cosignatureMessage(body, TIME), utf8(`cosignature/v1\ntime 1700000000\n${body}`));
  t.deepEqual(cosignatureMessage(body, 0n), utf8(`cosignature/v1\ntime 0\n${body}`));
  throwsCode(t, () => cosignatureMessage(body, MAX_I64 + 1n), 'INVALID_ARGUMENT');
  throwsCode(t, () => cosignatureMessage(body, -1n), 'INVALID_ARGUMENT');
});

test('the witness cosignature in cp.note is an Ed25519 signature of that message', async (t) => {
  // Checked with the bare primitive, independently of the note and cosignature code.
  const { publicKey } = parseCosignerVkey(witVkey);
  const blob = fromBase64(witLine.slice(witLine.lastIndexOf(' ') + 1, -1)).subarray(4);
  t.is(blob.length, COSIGNATURE_V1_LENGTH);
  t.is(new DataView(blob.buffer, blob.byteOffset).getBigUint64(0), TIME);
  t.true(await ed25519Verify(publicKey, utf8(`cosignature/v1\ntime 1700000000\n${body}`), blob.subarray(8)));
});

for (const backend of backends) {
  test(`${backend.name}: cp.note verifies under log.vkey and wit.vkey`, async (t) => {
    const result = await verifyCosignedCheckpoint(cpNote, verifierFromVkey(logVkey, backend), witness(), backend);
    t.is(result.checkpoint.origin, LOG_NAME);
    t.is(result.checkpoint.size, 8n);
    t.is(toBase64(result.checkpoint.root), 'XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=');
    t.is(result.cosignatures.length, 1);
    t.is(result.cosignatures[0]!.name, WITNESS_NAME);
    t.is(result.cosignatures[0]!.timestamp, TIME);
    t.deepEqual(result.cosignatures[0]!.publicKey, parseCosignerVkey(witVkey).publicKey);
  });

  test(`${backend.name}: each signature of cp.note verifies through verifyNote`, async (t) => {
    const log = verifierFromVkey(logVkey, backend);
    t.deepEqual((await verifyNote(cpNote, [log])).verifiedBy, [log]);
    const wit = cosignatureVerifierFromVkey(witVkey, backend);
    const { note, verifiedBy } = await verifyNote(cpNote, [wit]);
    t.deepEqual(verifiedBy, [wit]);
    t.is(wit.timestamp(note.signatures[1]!.signature), TIME);
  });

  test(`${backend.name}: signing the cp.note body with the vector seeds reproduces cp.note`, async (t) => {
    const log = await ed25519NoteSigner(LOG_NAME, seed(0x00), backend);
    const wit = await cosignatureSigner(WITNESS_NAME, seed(0x20), () => TIME, backend);
    t.is(formatVerifierKey(LOG_NAME, 0x01, log.publicKey), logVkey);
    t.is(formatCosignerVkey(WITNESS_NAME, wit.publicKey), witVkey);
    const logOnly = await signNote(body, [log]);
    t.is(logOnly, `${body}\n${logLine}`);
    t.is(await signNote(body, [wit]), `${body}\n${witLine}`);
    t.is(await signNote(body, [log, wit]), cpNote);
    // The way a replica cosigns: append to the log-signed note.
    t.is(await addNoteSignatures(logOnly, [wit]), cpNote);
  });

  test(`${backend.name}: a cosignature timestamp not the signed one is BAD_SIGNATURE`, async (t) => {
    const changed = editWitnessBlob((blob) => withTimestamp(blob, TIME + 1n));
    const log = verifierFromVkey(logVkey, backend);
    await rejectsCode(t, () => verifyCosignedCheckpoint(changed, log, witness(), backend), 'BAD_SIGNATURE');
  });
}

test('a cosignature over another time line is BAD_SIGNATURE', async (t) => {
  // Signed over "time 1700000001" but labelled 1700000000.
  const wit = await webCryptoEd25519.signer(seed(0x20));
  const signature = await wit.sign(cosignatureMessage(body, TIME + 1n));
  const forged = editWitnessBlob(() => concatBytes(withTimestamp(new Uint8Array(8), TIME), signature));
  await rejectsCode(t, () => verifyCosignedCheckpoint(forged, verifierFromVkey(logVkey), witness()), 'BAD_SIGNATURE');
  // Labelled with the time it was signed at, it verifies: the test above fails for the right reason.
  const honest = editWitnessBlob(() => concatBytes(withTimestamp(new Uint8Array(8), TIME + 1n), signature));
  const result = await verifyCosignedCheckpoint(honest, verifierFromVkey(logVkey), witness());
  t.is(result.cosignatures[0]!.timestamp, TIME + 1n);
});

test('a cosignature blob of the wrong length is MALFORMED', async (t) => {
  for (const edit of [
    (blob: Uint8Array) => blob.subarray(0, 71),
    (blob: Uint8Array) => concatBytes(blob, Uint8Array.of(0)),
    (blob: Uint8Array) => blob.subarray(8),
  ]) {
    const note = editWitnessBlob(edit);
    await rejectsCode(t, () => verifyCosignedCheckpoint(note, verifierFromVkey(logVkey), witness()), 'MALFORMED');
  }
  throwsCode(t, () => parseTimestampedSignature(new Uint8Array(71)), 'MALFORMED');
});

test('a cosignature timestamp over 2^63 - 1 is MALFORMED', async (t) => {
  const note = editWitnessBlob((blob) => withTimestamp(blob, MAX_I64 + 1n));
  await rejectsCode(t, () => verifyCosignedCheckpoint(note, verifierFromVkey(logVkey), witness()), 'MALFORMED');
  throwsCode(t, () => parseTimestampedSignature(withTimestamp(new Uint8Array(72), 2n ** 64n - 1n)), 'MALFORMED');
  t.is(parseTimestampedSignature(withTimestamp(new Uint8Array(72), MAX_I64)).timestamp, MAX_I64);
});

test('a malformed blob from an unknown cosigner is ignored', async (t) => {
  const note = editWitnessBlob((blob) => blob.subarray(0, 10));
  const result = await verifyCosignedCheckpoint(note, verifierFromVkey(logVkey), []);
  t.deepEqual(result.cosignatures, []);
});

test('unknown cosigners are ignored; known ones are reported', async (t) => {
  const stranger = await cosignatureSigner('other.example/w', seed(0x40), () => 5n);
  const note = await addNoteSignatures(cpNote, [stranger]);
  const log = verifierFromVkey(logVkey);
  t.deepEqual((await verifyCosignedCheckpoint(note, log, [])).cosignatures, []);
  const both = await verifyCosignedCheckpoint(note, log, [
    { name: stranger.name, publicKey: stranger.publicKey },
    ...witness(),
  ]);
  t.deepEqual(
    both.cosignatures.map((c) => [c.name, c.timestamp]),
    [
      [WITNESS_NAME, TIME],
      ['other.example/w', 5n],
    ],
  );
});

test('the log signature is required', async (t) => {
  const cosignedOnly = `${body}\n${witLine}`;
  await rejectsCode(
    t,
    () => verifyCosignedCheckpoint(cosignedOnly, verifierFromVkey(logVkey), witness()),
    'UNKNOWN_KEY',
  );
  // A witness key is not a log key, even under the log's name.
  const impostor = await ed25519NoteSigner(LOG_NAME, seed(0x20));
  const byImpostor = await signNote(body, [impostor]);
  await rejectsCode(t, () => verifyCosignedCheckpoint(byImpostor, verifierFromVkey(logVkey), []), 'UNKNOWN_KEY');
});

test('a corrupted log signature is BAD_SIGNATURE', async (t) => {
  const start = logLine.lastIndexOf(' ') + 1;
  const blob = fromBase64(logLine.slice(start, -1));
  blob[20]! ^= 0x80;
  const note = `${body}\n${logLine.slice(0, start)}${toBase64(blob)}\n${witLine}`;
  await rejectsCode(t, () => verifyCosignedCheckpoint(note, verifierFromVkey(logVkey), witness()), 'BAD_SIGNATURE');
});

test('a log key signing another origin is INTEGRITY', async (t) => {
  const log = await ed25519NoteSigner('other.example/log', seed(0));
  const note = await signNote(body, [log]);
  const verifier = ed25519NoteVerifier(log.name, log.publicKey);
  await rejectsCode(t, () => verifyCosignedCheckpoint(note, verifier, []), 'INTEGRITY');
});

test('cosigner vkeys are type 0x04 and carry the cosigner key ID', (t) => {
  const { name, publicKey } = parseCosignerVkey(witVkey);
  t.is(name, WITNESS_NAME);
  t.is(cosignerKeyId(name, publicKey), 0xe9490332);
  t.is(cosignatureVerifier(name, publicKey).keyId, 0xe9490332);
  throwsCode(t, () => parseCosignerVkey(logVkey), 'BAD_KEY');
  throwsCode(t, () => verifierFromVkey(witVkey), 'BAD_KEY');
  throwsCode(t, () => cosignatureVerifier(name, publicKey.subarray(1)), 'BAD_KEY');
  throwsCode(t, () => cosignatureVerifier('bad name', publicKey), 'MALFORMED');
});

test('the cosigner signs only checkpoints, at a timestamp in range', async (t) => {
  const tooLate = await cosignatureSigner(WITNESS_NAME, seed(0x20), () => MAX_I64 + 1n);
  await rejectsCode(t, () => signNote(body, [tooLate]), 'INVALID_ARGUMENT');
  const wit = await cosignatureSigner(WITNESS_NAME, seed(0x20), () => TIME);
  await rejectsCode(t, () => signNote('not a checkpoint\n', [wit]), 'MALFORMED');
  const signature = await wit.sign(utf8(body));
  t.is(signature.length, COSIGNATURE_V1_LENGTH);
  const clock = await cosignatureSigner(WITNESS_NAME, seed(0x20));
  const now = BigInt(Math.floor(Date.now() / 1000));
  const stamped = parseTimestampedSignature(await clock.sign(utf8(body))).timestamp;
  t.true(stamped >= now && stamped <= now + 5n);
});

const goodLines = ['example.com/log', '8', 'XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg='];
const checkpointText = (lines: readonly string[]): string => lines.map((l) => l + '\n').join('');
const withLine = (index: number, value: string): string =>
  checkpointText(goodLines.map((l, i) => (i === index ? value : l)));

test('tree sizes: decimal, no leading zeros, at most 2^63 - 1', (t) => {
  t.is(parseCheckpoint(withLine(1, '0')).size, 0n);
  t.is(parseCheckpoint(withLine(1, '9223372036854775807')).size, MAX_I64);
  throwsCode(t, () => parseCheckpoint(withLine(1, '08')), 'NON_CANONICAL');
  throwsCode(t, () => parseCheckpoint(withLine(1, '00')), 'NON_CANONICAL');
  throwsCode(t, () => parseCheckpoint(withLine(1, '9223372036854775808')), 'MALFORMED');
  throwsCode(t, () => parseCheckpoint(withLine(1, '18446744073709551616')), 'MALFORMED');
  throwsCode(t, () => parseCheckpoint(withLine(1, '1'.repeat(40))), 'MALFORMED');
  for (const bad of ['', '-1', '+8', ' 8', '8 ', '0x8', '8.0', '１']) {
    throwsCode(t, () => parseCheckpoint(withLine(1, bad)), 'MALFORMED');
  }
  throwsCode(
    t,
    () => formatCheckpoint({ ...parseCheckpoint(withLine(1, '0')), size: MAX_I64 + 1n }),
    'INVALID_ARGUMENT',
  );
  throwsCode(t, () => formatCheckpoint({ ...parseCheckpoint(withLine(1, '0')), size: -1n }), 'INVALID_ARGUMENT');
});

test('root hashes: exactly 32 bytes of canonical base64', (t) => {
  throwsCode(t, () => parseCheckpoint(withLine(2, toBase64(new Uint8Array(31)))), 'MALFORMED');
  throwsCode(t, () => parseCheckpoint(withLine(2, toBase64(new Uint8Array(33)))), 'MALFORMED');
  throwsCode(t, () => parseCheckpoint(withLine(2, '')), 'MALFORMED');
  throwsCode(t, () => parseCheckpoint(withLine(2, goodLines[2]!.replace('yg=', 'yh='))), 'NON_CANONICAL');
  throwsCode(t, () => parseCheckpoint(withLine(2, goodLines[2]!.replace('=', ''))), 'MALFORMED');
  const cp = parseCheckpoint(checkpointText(goodLines));
  throwsCode(t, () => formatCheckpoint({ ...cp, root: new Uint8Array(31) }), 'INVALID_ARGUMENT');
});

test('origins: non-empty, no spaces, no +', (t) => {
  for (const bad of ['', 'example.com log', 'example.com+log', 'example.com\u00a0log']) {
    throwsCode(t, () => parseCheckpoint(withLine(0, bad)), 'MALFORMED');
    throwsCode(t, () => formatCheckpoint({ ...parseCheckpoint(checkpointText(goodLines)), origin: bad }), 'MALFORMED');
  }
});

test('checkpoint structure and extension lines', (t) => {
  const withExtensions = checkpointText([...goodLines, 'ext one', 'ext two']);
  const cp = parseCheckpoint(withExtensions);
  t.deepEqual(cp.extensions, ['ext one', 'ext two']);
  t.is(formatCheckpoint(cp), withExtensions);
  throwsCode(t, () => parseCheckpoint(checkpointText([...goodLines, ''])), 'MALFORMED');
  throwsCode(t, () => parseCheckpoint(checkpointText([...goodLines, '', 'ext'])), 'MALFORMED');
  throwsCode(t, () => parseCheckpoint(checkpointText(goodLines.slice(0, 2))), 'MALFORMED');
  throwsCode(t, () => parseCheckpoint(checkpointText(goodLines).slice(0, -1)), 'MALFORMED');
  throwsCode(t, () => parseCheckpoint(checkpointText(goodLines).replaceAll('\n', '\r\n')), 'MALFORMED');
  throwsCode(t, () => parseCheckpoint(checkpointText([...goodLines, 'tab\there'])), 'MALFORMED');
  throwsCode(t, () => formatCheckpoint({ ...cp, extensions: [''] }), 'MALFORMED');
  throwsCode(t, () => formatCheckpoint({ ...cp, extensions: ['two\nlines'] }), 'MALFORMED');
});

test('log origins name the vault and the device key in lowercase hex', (t) => {
  const vaultId = fromHex('00'.repeat(31) + 'ff');
  const deviceKey = parseCosignerVkey(witVkey).publicKey;
  const origin = logOrigin(vaultId, deviceKey);
  t.is(origin, `e2ekv/v1/${'00'.repeat(31)}ff/${toHex(deviceKey)}`);
  t.true(isValidKeyName(origin));
  const parsed = parseLogOrigin(origin);
  t.deepEqual(parsed.vaultId, vaultId);
  t.deepEqual(parsed.deviceKey, deviceKey);
  for (const bad of [
    origin.toUpperCase(),
    origin.replace('e2ekv/v1/', 'e2ekv/v2/'),
    origin + '/',
    origin.slice(0, -2),
    origin.replace(/\/(?=[^/]*$)/, '//'),
    LOG_NAME,
  ]) {
    throwsCode(t, () => parseLogOrigin(bad), 'MALFORMED');
  }
  throwsCode(t, () => logOrigin(vaultId.subarray(1), deviceKey), 'INVALID_ARGUMENT');
  throwsCode(t, () => logOrigin(vaultId, deviceKey.subarray(1)), 'BAD_KEY');
});

test('a device checkpoint signed by its device and cosigned by a replica verifies', async (t) => {
  const device = await ed25519NoteSigner('placeholder', seed(0x60));
  const origin = logOrigin(new Uint8Array(32).fill(7), device.publicKey);
  const signer = await ed25519NoteSigner(origin, seed(0x60));
  const replica = await cosignatureSigner('replica1.example/w', seed(0x20), () => TIME);
  const text = formatCheckpoint({ origin, size: 3n, root: new Uint8Array(32).fill(1), extensions: [] });
  const note = await addNoteSignatures(await signNote(text, [signer]), [replica]);
  const deviceVerifier = verifierFromVkey(formatVerifierKey(origin, 1, signer.publicKey));
  const result = await verifyCosignedCheckpoint(note, deviceVerifier, witness());
  t.is(result.checkpoint.origin, origin);
  t.deepEqual(parseLogOrigin(result.checkpoint.origin).deviceKey, device.publicKey);
  t.is(result.cosignatures[0]!.timestamp, TIME);
  t.is(parseNote(note).signatures.length, 2);
});

test('verifyParsedCosignedCheckpoint answers and refuses as verifyCosignedCheckpoint does', async (t) => {
  const logVerifier = verifierFromVkey(logVkey);
  t.deepEqual(
    await verifyParsedCosignedCheckpoint(parseNote(cpNote), logVerifier, witness()),
    await verifyCosignedCheckpoint(cpNote, logVerifier, witness()),
  );
  const start = logLine.lastIndexOf(' ') + 1;
  const blob = fromBase64(logLine.slice(start, -1));
  blob[20]! ^= 0x80;
  const corrupted = `${body}\n${logLine.slice(0, start)}${toBase64(blob)}\n${witLine}`;
  const other = await ed25519NoteSigner('other.example/log', seed(0));
  const cases: [string, ReturnType<typeof verifierFromVkey>, ErrorCode][] = [
    [`${body}\n${witLine}`, logVerifier, 'UNKNOWN_KEY'],
    [corrupted, logVerifier, 'BAD_SIGNATURE'],
    [await signNote(body, [other]), ed25519NoteVerifier(other.name, other.publicKey), 'INTEGRITY'],
    [editWitnessBlob((b) => withTimestamp(b, TIME + 1n)), logVerifier, 'BAD_SIGNATURE'],
  ];
  for (const [note, verifier, code] of cases) {
    await rejectsCode(t, () => verifyCosignedCheckpoint(note, verifier, witness()), code);
    await rejectsCode(t, () => verifyParsedCosignedCheckpoint(parseNote(note), verifier, witness()), code);
  }
});
