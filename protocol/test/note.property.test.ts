import test from 'ava';
import fc from 'fast-check';
import { MAX_I64, utf8 } from '../src/bytes.js';
import { webCryptoEd25519 } from '../src/crypto/ed25519.js';
import { E2ekvError } from '../src/errors.js';
import type { ErrorCode } from '../src/errors.js';
import { formatCheckpoint, parseCheckpoint } from '../src/checkpoint.js';
import {
  MAX_NOTE_SIGNATURES,
  ed25519NoteSigner,
  ed25519NoteVerifier,
  formatNote,
  isValidKeyName,
  parseNote,
  signNote,
  verifyNote,
} from '../src/note.js';
import type { Note } from '../src/note.js';

const numRuns = 100;

// Any Unicode scalar value except the ASCII controls, weighted towards ASCII
// and towards the characters the format gives meaning to.
const character = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)) },
  { weight: 1, arbitrary: fc.constantFrom('\u2014', ' ', '+', '=', '\u00a0', '\u3000', '\x7f', '\u0085') },
  {
    weight: 2,
    arbitrary: fc
      .integer({ min: 0x80, max: 0x10ffff })
      .filter((c) => c < 0xd800 || c > 0xdfff)
      .map((c) => String.fromCodePoint(c)),
  },
);
const textLine = fc.oneof(
  { weight: 5, arbitrary: fc.string({ unit: character, maxLength: 30 }) },
  { weight: 1, arbitrary: fc.constantFrom('', '\u2014 example.com/foo AAAAAAA=') },
);
const noteText = fc.array(textLine, { minLength: 1, maxLength: 8 }).map((lines) => lines.join('\n') + '\n');
const keyName = fc.string({ unit: character, minLength: 1, maxLength: 20 }).filter(isValidKeyName);
const signatures = fc.uniqueArray(
  fc.record({
    name: keyName,
    keyId: fc.integer({ min: 0, max: 0xffffffff }),
    signature: fc.uint8Array({ minLength: 1, maxLength: 80 }),
  }),
  { minLength: 1, maxLength: MAX_NOTE_SIGNATURES, selector: (s) => `${s.name}\n${s.keyId}` },
);

test('formatNote and parseNote are inverse', (t) => {
  fc.assert(
    fc.property(noteText, signatures, (text, sigs) => {
      const note: Note = { text, signatures: sigs };
      const formatted = formatNote(note);
      t.deepEqual(parseNote(formatted), note);
      t.deepEqual(parseNote(utf8(formatted)), note);
      t.is(formatNote(parseNote(formatted)), formatted);
    }),
    { numRuns },
  );
});

test('formatCheckpoint and parseCheckpoint are inverse', (t) => {
  const extension = fc.string({ unit: character, minLength: 1, maxLength: 20 });
  fc.assert(
    fc.property(
      keyName,
      fc.bigInt({ min: 0n, max: MAX_I64 }),
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.array(extension, { maxLength: 3 }),
      (origin, size, root, extensions) => {
        const text = formatCheckpoint({ origin, size, root, extensions });
        t.deepEqual(parseCheckpoint(text), { origin, size, root, extensions });
        t.is(formatCheckpoint(parseCheckpoint(text)), text);
      },
    ),
    { numRuns },
  );
});

const seed = fc.uint8Array({ minLength: 32, maxLength: 32 });

test('a signed note verifies, and flipping any byte of its text makes it fail', async (t) => {
  await fc.assert(
    fc.asyncProperty(
      seed,
      keyName,
      noteText,
      fc.nat(),
      fc.integer({ min: 1, max: 255 }),
      async (s, name, text, at, mask) => {
        const signer = await ed25519NoteSigner(name, s, webCryptoEd25519);
        const verifier = ed25519NoteVerifier(name, signer.publicKey, webCryptoEd25519);
        const note = utf8(await signNote(text, [signer]));
        t.is((await verifyNote(note, [verifier])).text, text);

        const flipped = note.slice();
        flipped[at % utf8(text).length]! ^= mask;
        // A flip that still parses changes the signed text; one that does not is
        // rejected before any signature is checked.
        let expected: ErrorCode = 'BAD_SIGNATURE';
        try {
          parseNote(flipped);
        } catch (error) {
          expected = (error as E2ekvError).code;
        }
        t.true(expected === 'BAD_SIGNATURE' || expected === 'MALFORMED', expected);
        const error = await t.throwsAsync(() => verifyNote(flipped, [verifier]), { instanceOf: E2ekvError });
        t.is(error?.code, expected);
      },
    ),
    { numRuns },
  );
});

test('flipping any byte of a signed note makes verification fail', async (t) => {
  await fc.assert(
    fc.asyncProperty(
      seed,
      keyName,
      noteText,
      fc.nat(),
      fc.integer({ min: 1, max: 255 }),
      async (s, name, text, at, mask) => {
        const signer = await ed25519NoteSigner(name, s, webCryptoEd25519);
        const verifier = ed25519NoteVerifier(name, signer.publicKey, webCryptoEd25519);
        const note = utf8(await signNote(text, [signer]));
        const flipped = note.slice();
        flipped[at % note.length]! ^= mask;
        await t.throwsAsync(() => verifyNote(flipped, [verifier]), { instanceOf: E2ekvError });
      },
    ),
    { numRuns },
  );
});
