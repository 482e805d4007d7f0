import test from 'ava';
import { rejectsCode, throwsCode } from '../../test/support/errors.js';
import { concatBytes, fromBase64, toBase64, utf8 } from '../src/bytes.js';
import { nodeCryptoEd25519, tweetnaclEd25519, webCryptoEd25519 } from '../src/crypto/ed25519.js';
import type { Ed25519Backend } from '../src/crypto/ed25519.js';
import { E2ekvError } from '../src/errors.js';
import {
  MAX_NOTE_BYTES,
  MAX_NOTE_SIGNATURES,
  addNoteSignatures,
  addParsedNoteSignatures,
  ed25519NoteSigner,
  ed25519NoteVerifier,
  formatNote,
  formatVerifierKey,
  isValidKeyName,
  noteKeyId,
  parseNote,
  parseVerifierKey,
  signNote,
  verifierFromVkey,
  verifyNote,
  verifyParsedNote,
} from '../src/note.js';
import type { NoteSigner } from '../src/note.js';
import { c2spVector, c2spVkey } from '../../test/support/paths.js';

const vector = c2spVector;
const vkey = c2spVkey;

const fooNote = vector('foo.note');
const fooVkey = vkey('foo.vkey');
const backends: readonly Ed25519Backend[] = [nodeCryptoEd25519, webCryptoEd25519, tweetnaclEd25519];

function seed(first: number): Uint8Array {
  return Uint8Array.from({ length: 32 }, (_, i) => first + i);
}

/** A signature line whose blob is `keyId || signature`, encoded canonically. */
function line(name: string, keyId: number, signature: Uint8Array): string {
  const id = new Uint8Array(4);
  new DataView(id.buffer).setUint32(0, keyId);
  return `\u2014 ${name} ${toBase64(concatBytes(id, signature))}\n`;
}

/** foo.note with its one signature line's blob changed by `edit`. */
function editFooBlob(edit: (blob: Uint8Array) => Uint8Array): string {
  const start = fooNote.lastIndexOf(' ') + 1;
  return fooNote.slice(0, start) + toBase64(edit(fromBase64(fooNote.slice(start, -1)))) + '\n';
}

for (const backend of backends) {
  test(`${backend.name}: foo.note verifies under foo.vkey`, async (t) => {
    const verifier = verifierFromVkey(fooVkey, backend);
    const { text, verifiedBy } = await verifyNote(fooNote, [verifier]);
    t.is(text, 'This is an example message.\n');
    t.deepEqual(verifiedBy, [verifier]);
    // The same bytes, as they would arrive from the network.
    t.is((await verifyNote(utf8(fooNote), [verifier])).text, text);
  });

  test(`${backend.name}: foo-bad.note is rejected`, async (t) => {
    const bad = vector('foo-bad.note');
    const verifier = verifierFromVkey(fooVkey, backend);
    // foo-bad.note changes the key name too ("Example.com/foo"), and names are
    // case-sensitive: that signature is from an unknown key, so none is known.
    t.is(parseNote(bad).signatures[0]!.name, 'Example.com/foo');
    await rejectsCode(t, () => verifyNote(bad, [verifier]), 'UNKNOWN_KEY');
    // Its altered text under the real key name fails the known key's signature.
    const badText = bad.replace('\u2014 Example.com/foo ', '\u2014 example.com/foo ');
    t.is(parseNote(badText).text, 'This is an Example message.\n');
    await rejectsCode(t, () => verifyNote(badText, [verifier]), 'BAD_SIGNATURE');
  });

  test(`${backend.name}: pn.note verifies under pn.vkey`, async (t) => {
    const { text } = await verifyNote(vector('pn.note'), [verifierFromVkey(vkey('pn.vkey'), backend)]);
    t.is(text, "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n");
  });

  test(`${backend.name}: a corrupted signature from a known key is BAD_SIGNATURE`, async (t) => {
    const corrupted = editFooBlob((blob) => {
      const out = blob.slice();
      out[10]! ^= 0x01;
      return out;
    });
    await rejectsCode(t, () => verifyNote(corrupted, [verifierFromVkey(fooVkey, backend)]), 'BAD_SIGNATURE');
  });

  test(`${backend.name}: signing is deterministic and verifies`, async (t) => {
    const signer = await ed25519NoteSigner('example.com/test', seed(7), backend);
    const note = await signNote('hello\n', [signer]);
    const otherBackend = backend === webCryptoEd25519 ? tweetnaclEd25519 : webCryptoEd25519;
    const other = await ed25519NoteSigner('example.com/test', seed(7), otherBackend);
    t.is(await signNote('hello\n', [other]), note);
    const verifier = ed25519NoteVerifier(signer.name, signer.publicKey, backend);
    t.is(verifier.keyId, signer.keyId);
    t.is((await verifyNote(note, [verifier])).text, 'hello\n');
  });
}

test('the vkeys parse and format back to the same strings', (t) => {
  const foo = parseVerifierKey(fooVkey);
  t.is(foo.name, 'example.com/foo');
  t.is(foo.keyId, 0x530d903a);
  t.is(foo.type, 0x01);
  t.is(foo.publicKey.length, 32);
  t.is(noteKeyId(foo.name, foo.type, foo.publicKey), foo.keyId);
  for (const name of ['foo.vkey', 'pn.vkey', 'log.vkey', 'wit.vkey']) {
    const key = parseVerifierKey(vkey(name));
    t.is(formatVerifierKey(key.name, key.type, key.publicKey), vkey(name));
  }
});

test('vkeys with a wrong key ID, type or length are BAD_KEY', (t) => {
  throwsCode(t, () => parseVerifierKey(fooVkey.replace('+530d903a+', '+530d903b+')), 'BAD_KEY');
  // A type 0x04 (cosigner) key is not a note verifier.
  throwsCode(t, () => verifierFromVkey(vkey('wit.vkey')), 'BAD_KEY');
  const { name, publicKey } = parseVerifierKey(fooVkey);
  const short = publicKey.subarray(0, 31);
  const id = noteKeyId(name, 0x01, short).toString(16).padStart(8, '0');
  throwsCode(t, () => parseVerifierKey(`${name}+${id}+${toBase64(concatBytes(Uint8Array.of(1), short))}`), 'BAD_KEY');
  throwsCode(t, () => formatVerifierKey(name, 0x01, short), 'BAD_KEY');
  throwsCode(t, () => ed25519NoteVerifier(name, short), 'BAD_KEY');
});

test('vkeys that do not parse are MALFORMED', (t) => {
  throwsCode(t, () => parseVerifierKey(fooVkey.replace('+530d903a+', '+530D903A+')), 'MALFORMED');
  throwsCode(t, () => parseVerifierKey(fooVkey.replace('+530d903a+', '+530d903+')), 'MALFORMED');
  throwsCode(t, () => parseVerifierKey(fooVkey + '\n'), 'MALFORMED');
  throwsCode(t, () => parseVerifierKey('example.com/foo'), 'MALFORMED');
  throwsCode(t, () => parseVerifierKey(' ' + fooVkey), 'MALFORMED');
});

test('parseNote and formatNote round-trip the vectors byte for byte', (t) => {
  for (const name of ['foo.note', 'foo-bad.note', 'pn.note', 'cp.note']) {
    t.is(formatNote(parseNote(vector(name))), vector(name));
  }
  const note = parseNote(fooNote);
  t.is(note.signatures.length, 1);
  t.is(note.signatures[0]!.name, 'example.com/foo');
  t.is(note.signatures[0]!.keyId, 0x530d903a);
  t.is(note.signatures[0]!.signature.length, 64);
});

test('non-canonical base64 in a signature line is NON_CANONICAL', (t) => {
  // 68 bytes leave 2 unused bits in the last character: "M" has them zero, "N" does not.
  t.true(fooNote.endsWith('M=\n'));
  throwsCode(t, () => parseNote(fooNote.replace(/M=\n$/, 'N=\n')), 'NON_CANONICAL');
});

test('a wrong key ID with the right name is UNKNOWN_KEY', async (t) => {
  const wrongId = editFooBlob((blob) => {
    const out = blob.slice();
    out[3]! ^= 0x01;
    return out;
  });
  t.is(parseNote(wrongId).signatures[0]!.name, 'example.com/foo');
  await rejectsCode(t, () => verifyNote(wrongId, [verifierFromVkey(fooVkey)]), 'UNKNOWN_KEY');
});

test('a note with only unknown keys is UNKNOWN_KEY', async (t) => {
  await rejectsCode(t, () => verifyNote(fooNote, [verifierFromVkey(vkey('pn.vkey'))]), 'UNKNOWN_KEY');
  await rejectsCode(t, () => verifyNote(fooNote, []), 'UNKNOWN_KEY');
});

test('signatures from unknown keys are ignored, even sharing a name or ID', async (t) => {
  const foo = parseNote(fooNote).signatures[0]!;
  const sameName = line(foo.name, foo.keyId ^ 1, new Uint8Array(64));
  const sameId = line('example.com/bar', foo.keyId, new Uint8Array(64));
  const note = fooNote + sameName + sameId;
  const { verifiedBy } = await verifyNote(note, [verifierFromVkey(fooVkey)]);
  t.is(verifiedBy.length, 1);
});

test('a failing known signature rejects the note even if another known one verifies', async (t) => {
  const signer = await ed25519NoteSigner('example.com/other', seed(1));
  const verifier = ed25519NoteVerifier(signer.name, signer.publicKey);
  const bad = fooNote + line(signer.name, signer.keyId, new Uint8Array(64));
  await rejectsCode(t, () => verifyNote(bad, [verifierFromVkey(fooVkey), verifier]), 'BAD_SIGNATURE');
  // The failing key alone is still BAD_SIGNATURE, not UNKNOWN_KEY.
  await rejectsCode(t, () => verifyNote(bad, [verifier]), 'BAD_SIGNATURE');
});

test('an Ed25519 signature of the wrong length from a known key is MALFORMED', async (t) => {
  const shortened = editFooBlob((blob) => blob.subarray(0, 4 + 63));
  await rejectsCode(t, () => verifyNote(shortened, [verifierFromVkey(fooVkey)]), 'MALFORMED');
});

function noteOfSize(bytes: number): string {
  const sig = line('example.com/foo', 1, new Uint8Array(64));
  const text = 'a'.repeat(bytes - utf8(sig).length - 2) + '\n';
  return `${text}\n${sig}`;
}

test('a note over 16384 bytes is TOO_LARGE', (t) => {
  t.is(utf8(noteOfSize(MAX_NOTE_BYTES)).length, MAX_NOTE_BYTES);
  t.notThrows(() => parseNote(noteOfSize(MAX_NOTE_BYTES)));
  throwsCode(t, () => parseNote(noteOfSize(MAX_NOTE_BYTES + 1)), 'TOO_LARGE');
  throwsCode(t, () => parseNote(utf8(noteOfSize(MAX_NOTE_BYTES + 1))), 'TOO_LARGE');
  // Counted in UTF-8 bytes, not UTF-16 units: 'é' is two bytes.
  const accented = noteOfSize(MAX_NOTE_BYTES).replace('aa', 'é');
  t.true(accented.length < MAX_NOTE_BYTES);
  t.notThrows(() => parseNote(accented));
  throwsCode(t, () => parseNote(accented.replace('a', 'é')), 'TOO_LARGE');
  // Oversized is TOO_LARGE even when it is malformed too.
  throwsCode(t, () => parseNote('\r'.repeat(MAX_NOTE_BYTES + 1)), 'TOO_LARGE');
});

test('more than 32 signatures is TOO_LARGE; 32 are accepted', async (t) => {
  const others = (n: number) =>
    Array.from({ length: n }, (_, i) => line(`example.com/w${i}`, i, new Uint8Array(64))).join('');
  const full = fooNote + others(MAX_NOTE_SIGNATURES - 1);
  t.is(parseNote(full).signatures.length, MAX_NOTE_SIGNATURES);
  t.is((await verifyNote(full, [verifierFromVkey(fooVkey)])).text, 'This is an example message.\n');
  throwsCode(t, () => parseNote(fooNote + others(MAX_NOTE_SIGNATURES)), 'TOO_LARGE');
});

test('CRLF line endings are MALFORMED', (t) => {
  throwsCode(t, () => parseNote(fooNote.replaceAll('\n', '\r\n')), 'MALFORMED');
  throwsCode(t, () => parseNote(fooNote.replace('message.\n', 'message.\r\n')), 'MALFORMED');
});

test('control characters other than newline are MALFORMED', (t) => {
  for (const control of ['\t', '\0', '\x1b', '\v', '\f', '\x1f']) {
    throwsCode(t, () => parseNote(fooNote.replace('This is', `This${control}is`)), 'MALFORMED');
  }
  // C2SP forbids only controls below U+0020, so DEL parses (and fails only the signature).
  t.notThrows(() => parseNote(fooNote.replace('This is', 'This\x7fis')));
});

test('invalid UTF-8 is MALFORMED', (t) => {
  const bytes = utf8(fooNote);
  for (const bad of [[0xff], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xe2, 0x80]]) {
    const corrupted = concatBytes(bytes.subarray(0, 4), Uint8Array.from(bad), bytes.subarray(4));
    throwsCode(t, () => parseNote(corrupted), 'MALFORMED');
  }
  throwsCode(t, () => parseNote(fooNote.replace('This', 'Th\ud800is')), 'MALFORMED');
});

test('duplicate signature lines are MALFORMED', (t) => {
  const sig = fooNote.slice(fooNote.lastIndexOf('\n\n') + 2);
  throwsCode(t, () => parseNote(fooNote + sig), 'MALFORMED');
  // Same name and key ID with a different signature is the same key twice.
  throwsCode(t, () => parseNote(fooNote + line('example.com/foo', 0x530d903a, new Uint8Array(64))), 'MALFORMED');
});

test('structural errors are MALFORMED', (t) => {
  const text = 'This is an example message.\n';
  const sig = fooNote.slice(text.length + 1);
  const cases: Record<string, string> = {
    'missing blank line': text + sig,
    'no signature lines': text + '\n',
    'blank line after the signatures': fooNote + '\n',
    'missing final newline': fooNote.slice(0, -1),
    'hyphen instead of em dash': text + '\n' + sig.replace('\u2014', '-'),
    'en dash instead of em dash': text + '\n' + sig.replace('\u2014', '\u2013'),
    'no space after the dash': text + '\n' + sig.replace('\u2014 ', '\u2014'),
    'two spaces after the dash': text + '\n' + sig.replace('\u2014 ', '\u2014  '),
    'two spaces before the signature': text + '\n' + sig.replace(' Uw2Q', '  Uw2Q'),
    'trailing space': text + '\n' + sig.replace('=\n', '= \n'),
    'no signature': text + '\n\u2014 example.com/foo\n',
    'empty signature': text + '\n\u2014 example.com/foo \n',
    'signature of only a key ID': text + '\n' + line('example.com/foo', 1, new Uint8Array(0)),
    'key name with +': text + '\n' + sig.replace('example.com/foo', 'example.com+foo'),
    'key name with a no-break space': text + '\n' + sig.replace('example.com/foo', 'example.com\u00a0foo'),
    'key name with an ideographic space': text + '\n' + sig.replace('example.com/foo', 'example.com\u3000foo'),
    'key name of 257 bytes': text + '\n' + line('k'.repeat(257), 1, new Uint8Array(64)),
    'a non-signature line among the signatures': fooNote + 'hello\n',
    'empty text': '\n' + sig,
    'empty note': '',
  };
  for (const [what, note] of Object.entries(cases)) {
    const error = t.throws(() => parseNote(note), { instanceOf: E2ekvError }, what);
    t.is(error?.code, 'MALFORMED', `${what}: ${error?.message}`);
  }
  t.notThrows(() => parseNote(text + '\n' + line('k'.repeat(256), 1, new Uint8Array(64))));
});

test('the last blank line separates the text, which may contain blank lines', async (t) => {
  const signer = await ed25519NoteSigner('example.com/blank', seed(3));
  const verifier = ed25519NoteVerifier(signer.name, signer.publicKey);
  for (const text of ['a\n\nb\n', 'a\n\n', '\n', '\n\n\n', ' leading and trailing spaces \n', 'ünïcödé 🔏\n']) {
    const note = await signNote(text, [signer]);
    t.is(parseNote(note).text, text);
    t.is((await verifyNote(note, [verifier])).text, text);
  }
});

test('signNote refuses texts and signer lists that would not make a valid note', async (t) => {
  const signer = await ed25519NoteSigner('example.com/s', seed(4));
  await rejectsCode(t, () => signNote('no newline', [signer]), 'MALFORMED');
  await rejectsCode(t, () => signNote('', [signer]), 'MALFORMED');
  await rejectsCode(t, () => signNote('tab\there\n', [signer]), 'MALFORMED');
  await rejectsCode(t, () => signNote('cr\r\n', [signer]), 'MALFORMED');
  await rejectsCode(t, () => signNote('ok\n', []), 'INVALID_ARGUMENT');
  await rejectsCode(t, () => signNote('ok\n', [signer, signer]), 'INVALID_ARGUMENT');
  await rejectsCode(t, () => signNote('a'.repeat(MAX_NOTE_BYTES) + '\n', [signer]), 'TOO_LARGE');
  await rejectsCode(t, () => ed25519NoteSigner('bad name', seed(4)), 'MALFORMED');
  throwsCode(t, () => ed25519NoteVerifier('bad+name', signer.publicKey), 'MALFORMED');
  const impostor: NoteSigner = { name: 'bad name', keyId: 1, sign: signer.sign };
  await rejectsCode(t, () => signNote('ok\n', [impostor]), 'MALFORMED');
});

test('formatNote refuses what parseNote would refuse', (t) => {
  const { text, signatures } = parseNote(fooNote);
  const sig = signatures[0]!;
  throwsCode(t, () => formatNote({ text, signatures: [] }), 'MALFORMED');
  throwsCode(t, () => formatNote({ text: 'x', signatures }), 'MALFORMED');
  throwsCode(t, () => formatNote({ text, signatures: [sig, sig] }), 'MALFORMED');
  throwsCode(t, () => formatNote({ text, signatures: [{ ...sig, name: 'a\n\nb' }] }), 'MALFORMED');
  throwsCode(t, () => formatNote({ text, signatures: [{ ...sig, signature: new Uint8Array(0) }] }), 'MALFORMED');
  throwsCode(t, () => formatNote({ text, signatures: [{ ...sig, keyId: 2 ** 32 }] }), 'INVALID_ARGUMENT');
});

test('addNoteSignatures keeps existing lines and replaces a same-key signature', async (t) => {
  const signer = await ed25519NoteSigner('example.com/second', seed(5));
  const twice = await addNoteSignatures(fooNote, [signer]);
  t.true(twice.startsWith(fooNote));
  const { verifiedBy } = await verifyNote(twice, [
    verifierFromVkey(fooVkey),
    ed25519NoteVerifier(signer.name, signer.publicKey),
  ]);
  t.is(verifiedBy.length, 2);
  t.is(await addNoteSignatures(twice, [signer]), twice);
  // foo-bad's own signature is not checked: adding a signature does not vouch for the others.
  t.true((await addNoteSignatures(vector('foo-bad.note'), [signer])).startsWith(vector('foo-bad.note')));
});

test('verifyNote refuses two verifiers for the same key', async (t) => {
  const verifier = verifierFromVkey(fooVkey);
  await rejectsCode(t, () => verifyNote(fooNote, [verifier, verifierFromVkey(fooVkey)]), 'INVALID_ARGUMENT');
});

test('key names follow C2SP: non-empty, no Unicode spaces, no +', (t) => {
  for (const good of ['example.com/foo', 'PeterNeumann', 'oid/1.3.6.1.4.1', 'ünï/😀', '—']) {
    t.true(isValidKeyName(good), good);
  }
  for (const bad of ['', 'a b', 'a+b', 'a\tb', 'a\nb', 'a\u0085b', 'a\u2028b', 'a\u200ab', 'a\u0001b', 'a\udc00']) {
    t.false(isValidKeyName(bad), JSON.stringify(bad));
  }
});

test('verifyParsedNote answers and refuses as verifyNote does, for a parsed note', async (t) => {
  const verifier = verifierFromVkey(fooVkey);
  const parsed = parseNote(fooNote);
  const viaText = await verifyNote(fooNote, [verifier]);
  const viaParsed = await verifyParsedNote(parsed, [verifier]);
  t.is(viaParsed.text, viaText.text);
  t.deepEqual(viaParsed.note, viaText.note);
  t.deepEqual(viaParsed.verifiedBy, [verifier]);
  // The same refusals, with the same codes.
  const corrupted = editFooBlob((blob) => {
    const out = blob.slice();
    out[10]! ^= 0x01;
    return out;
  });
  await rejectsCode(t, () => verifyParsedNote(parseNote(corrupted), [verifier]), 'BAD_SIGNATURE');
  await rejectsCode(t, () => verifyParsedNote(parsed, [verifierFromVkey(vkey('pn.vkey'))]), 'UNKNOWN_KEY');
  await rejectsCode(t, () => verifyParsedNote(parsed, [verifier, verifierFromVkey(fooVkey)]), 'INVALID_ARGUMENT');
  const shortened = editFooBlob((blob) => blob.subarray(0, 4 + 63));
  await rejectsCode(t, () => verifyParsedNote(parseNote(shortened), [verifier]), 'MALFORMED');
});

test('addParsedNoteSignatures gives what addNoteSignatures gives for the formatted note', async (t) => {
  const signer = await ed25519NoteSigner('example.com/second', seed(5));
  for (const note of [fooNote, vector('foo-bad.note'), await addNoteSignatures(fooNote, [signer])]) {
    t.is(await addParsedNoteSignatures(parseNote(note), [signer]), await addNoteSignatures(note, [signer]));
  }
  // A note reduced to some of its signatures, as a replica keeps only the log's own.
  const twice = parseNote(await addNoteSignatures(fooNote, [signer]));
  const reduced = { text: twice.text, signatures: twice.signatures.slice(0, 1) };
  t.is(await addParsedNoteSignatures(reduced, [signer]), await addNoteSignatures(formatNote(reduced), [signer]));
  // What formatNote refuses is refused.
  const sig = parseNote(fooNote).signatures[0]!;
  await rejectsCode(t, () => addParsedNoteSignatures({ text: 'x', signatures: [sig] }, [signer]), 'MALFORMED');
  await rejectsCode(
    t,
    () => addParsedNoteSignatures({ text: twice.text, signatures: [sig, sig] }, [signer]),
    'MALFORMED',
  );
  await rejectsCode(t, () => addParsedNoteSignatures(parseNote(fooNote), []), 'INVALID_ARGUMENT');
});
