/**
 * C2SP signed notes (c2sp.org/signed-note@v1.0.0) and their verifier keys
 * ("vkeys", as in golang.org/x/mod/sumdb/note), with the limits and rejection
 * rules of SPEC.md, "Signed notes".
 *
 * A note is text followed by a blank line and one or more signature lines:
 *
 *     <text, ending in a newline>
 *
 *     — <key name> <base64(4-byte key ID || signature)>
 *
 * Parsing is strict: every note has exactly one spelling, so a note that parses
 * formats back to the same bytes.
 */
import { fromBase64, fromHex, fromUtf8, isWellFormedString, toBase64, toHex, utf8 } from './bytes.js';
import { sha256Parts } from './crypto/sha256.js';
import { ED25519_PUBLIC_KEY_LENGTH, ED25519_SIGNATURE_LENGTH, ed25519Signer, ed25519Verify } from './crypto/ed25519.js';
import type { Ed25519Backend } from './crypto/ed25519.js';
import { E2ekvError } from './errors.js';

/** The largest note we parse, in UTF-8 bytes (SPEC.md, "Signed notes"). */
export const MAX_NOTE_BYTES = 16384;
/** The most signature lines we parse; C2SP requires accepting at least 16. */
export const MAX_NOTE_SIGNATURES = 32;
/** The longest key name we accept, in UTF-8 bytes. */
export const MAX_KEY_NAME_BYTES = 256;

/** Signature type of plain Ed25519 note signatures (signed-note). */
export const NOTE_SIG_ED25519 = 0x01;
/** Signature type of timestamped Ed25519 cosignatures (tlog-cosignature/v1). */
export const NOTE_SIG_COSIGNATURE_V1 = 0x04;

export interface NoteSignature {
  name: string;
  /** The 32-bit key ID, as an unsigned number. */
  keyId: number;
  /** The signature bytes after the 4-byte key ID. */
  signature: Uint8Array;
}

export interface Note {
  /** The signed text, including its final newline. */
  text: string;
  signatures: NoteSignature[];
}

export interface NoteVerifier {
  readonly name: string;
  readonly keyId: number;
  /**
   * Whether `signature` (without the key ID) is a valid signature of `text`.
   * Throws MALFORMED for a signature that cannot be one of this key's type.
   */
  verify(text: Uint8Array, signature: Uint8Array): Promise<boolean>;
}

export interface NoteSigner {
  readonly name: string;
  readonly keyId: number;
  /** The signature of `text`, without the key ID. */
  sign(text: Uint8Array): Promise<Uint8Array>;
}

export interface VerifierKey {
  name: string;
  keyId: number;
  type: number;
  publicKey: Uint8Array;
}

const signaturePrefix = '\u2014 '; // em dash, space
// Go's unicode.IsSpace, which C2SP implementations use for "Unicode spaces".
const forbiddenInKeyName = /[\p{White_Space}+]/u;

// Printable ASCII but '+' (0x2B), at most MAX_KEY_NAME_BYTES: a valid key name
// by every rule below (no space, no control, well formed, one byte a character).
const plainAsciiKeyName = new RegExp(`^[\\x21-\\x2a\\x2c-\\x7e]{1,${MAX_KEY_NAME_BYTES}}$`);

export function isValidKeyName(name: string): boolean {
  // Most names (origins, replica names) are plain ASCII: one native test.
  if (plainAsciiKeyName.test(name)) return true;
  return (
    name !== '' &&
    isWellFormedString(name) &&
    !forbiddenInKeyName.test(name) &&
    firstControlCharacter(name) < 0 &&
    utf8(name).length <= MAX_KEY_NAME_BYTES
  );
}

/** Throws MALFORMED unless `name` is a key name SPEC.md allows. */
export function assertValidKeyName(name: string, what = 'key name'): void {
  if (!isValidKeyName(name)) {
    throw new E2ekvError(
      'MALFORMED',
      `${what} ${JSON.stringify(name)} is not a valid key name (non-empty, at most ${MAX_KEY_NAME_BYTES} bytes, no spaces, no '+', no control characters)`,
    );
  }
}

/** key ID = SHA-256(key name || 0x0A || signature type || public key)[:4], big-endian. */
export function noteKeyId(name: string, type: number, publicKey: Uint8Array): number {
  checkType(type);
  const hash = sha256Parts(utf8(name), Uint8Array.of(0x0a, type), publicKey);
  return new DataView(hash.buffer, hash.byteOffset, 4).getUint32(0);
}

/** Parses a note without verifying it: its text MUST NOT be trusted yet. */
export function parseNote(input: string | Uint8Array): Note {
  const note = decodeNote(input);
  assertNoControlCharacters(note, 'signed note');
  // The signatures never contain an empty line, so the last one ends the text.
  const split = note.lastIndexOf('\n\n');
  if (split < 0) throw new E2ekvError('MALFORMED', 'signed note has no blank line before its signatures');
  const text = note.slice(0, split + 1);
  const block = note.slice(split + 2);
  if (block === '') throw new E2ekvError('MALFORMED', 'signed note has no signature lines');
  if (!block.endsWith('\n')) throw new E2ekvError('MALFORMED', 'signed note does not end with a newline');
  const lines = block.slice(0, -1).split('\n');
  if (lines.length > MAX_NOTE_SIGNATURES) {
    throw new E2ekvError('TOO_LARGE', `signed note has ${lines.length} signatures, more than ${MAX_NOTE_SIGNATURES}`, {
      details: { signatures: lines.length, limit: MAX_NOTE_SIGNATURES },
    });
  }
  const signatures = lines.map(parseSignatureLine);
  assertDistinctKeys(signatures);
  return { text, signatures };
}

/** The inverse of parseNote, rejecting any note that parseNote would reject. */
export function formatNote(note: Note): string {
  assertValidText(note.text);
  if (note.signatures.length === 0) throw new E2ekvError('MALFORMED', 'a signed note needs at least one signature');
  if (note.signatures.length > MAX_NOTE_SIGNATURES) {
    throw new E2ekvError('TOO_LARGE', `more than ${MAX_NOTE_SIGNATURES} signatures`);
  }
  assertDistinctKeys(note.signatures);
  let out = note.text + '\n';
  for (const { name, keyId, signature } of note.signatures) {
    assertValidKeyName(name);
    if (!Number.isInteger(keyId) || keyId < 0 || keyId > 0xffffffff) {
      throw new E2ekvError('INVALID_ARGUMENT', `key ID ${keyId} is not a 32-bit unsigned integer`);
    }
    if (signature.length === 0) throw new E2ekvError('MALFORMED', `the signature of ${name} is empty`);
    const blob = new Uint8Array(4 + signature.length);
    new DataView(blob.buffer).setUint32(0, keyId);
    blob.set(signature, 4);
    out += `${signaturePrefix}${name} ${toBase64(blob)}\n`;
  }
  const size = utf8(out).length;
  if (size > MAX_NOTE_BYTES) {
    throw new E2ekvError('TOO_LARGE', `signed note is ${size} bytes, more than ${MAX_NOTE_BYTES}`);
  }
  return out;
}

/** Signs `text` (which must end in a newline) with each signer, in order. */
export async function signNote(text: string, signers: readonly NoteSigner[]): Promise<string> {
  return formatNote({ text, signatures: await signatures(text, signers) });
}

/**
 * Adds signatures to a note, as a cosigner does. Existing signature lines are
 * kept as they are, except one from the same key (name and key ID) as a signer,
 * which the new signature replaces. The existing signatures are not verified:
 * verify the note first if the new signatures vouch for it.
 */
export async function addNoteSignatures(note: string | Uint8Array, signers: readonly NoteSigner[]): Promise<string> {
  return addParsedNoteSignatures(parseNote(note), signers);
}

/**
 * addNoteSignatures for a note parsed already (by parseNote, or a Note that
 * formatNote takes): the same result as addNoteSignatures(formatNote(note), signers),
 * without parsing the note again. The note is checked as formatNote checks it.
 */
export async function addParsedNoteSignatures(note: Note, signers: readonly NoteSigner[]): Promise<string> {
  const { text, signatures: existing } = note;
  const added = await signatures(text, signers);
  const kept = existing.filter((s) => !added.some((a) => a.name === s.name && a.keyId === s.keyId));
  return formatNote({ text, signatures: [...kept, ...added] });
}

/**
 * Parses a note and checks it against the keys the caller trusts, following
 * signed-note: signatures from unknown keys (name and key ID not both known) are
 * ignored; each signature from a known key is verified, and one that fails
 * rejects the note (BAD_SIGNATURE); a note with no signature from a known key is
 * rejected (UNKNOWN_KEY). Only the returned text may be trusted.
 */
export async function verifyNote(
  input: string | Uint8Array,
  verifiers: readonly NoteVerifier[],
): Promise<{ text: string; note: Note; verifiedBy: NoteVerifier[] }> {
  const known = knownVerifiers(verifiers);
  return verifyAgainst(parseNote(input), known);
}

/**
 * verifyNote for a note parsed already by parseNote (pass parseNote's result,
 * not a Note built otherwise): the same checks and answer, without parsing the
 * note again. For callers that need the parsed note for more than verifying it.
 */
export async function verifyParsedNote(
  note: Note,
  verifiers: readonly NoteVerifier[],
): Promise<{ text: string; note: Note; verifiedBy: NoteVerifier[] }> {
  return verifyAgainst(note, knownVerifiers(verifiers));
}

function knownVerifiers(verifiers: readonly NoteVerifier[]): Map<string, NoteVerifier> {
  const known = new Map<string, NoteVerifier>();
  for (const verifier of verifiers) {
    const key = keyOf(verifier);
    if (known.has(key)) {
      throw new E2ekvError('INVALID_ARGUMENT', `two verifiers share the key name ${verifier.name} and key ID`);
    }
    known.set(key, verifier);
  }
  return known;
}

async function verifyAgainst(
  note: Note,
  known: ReadonlyMap<string, NoteVerifier>,
): Promise<{ text: string; note: Note; verifiedBy: NoteVerifier[] }> {
  const text = utf8(note.text);
  const verifiedBy: NoteVerifier[] = [];
  for (const signature of note.signatures) {
    const verifier = known.get(keyOf(signature));
    if (verifier === undefined) continue;
    if (!(await verifier.verify(text, signature.signature))) {
      throw new E2ekvError('BAD_SIGNATURE', `the signature of ${signature.name} on the note does not verify`, {
        details: { name: signature.name, keyId: signature.keyId },
      });
    }
    verifiedBy.push(verifier);
  }
  if (verifiedBy.length === 0) {
    throw new E2ekvError('UNKNOWN_KEY', 'the note has no signature from a known key', {
      details: { signatures: note.signatures.length },
    });
  }
  return { text: note.text, note, verifiedBy };
}

/** An Ed25519 (type 0x01) note verifier. `backend` defaults to WebCrypto where available. */
export function ed25519NoteVerifier(name: string, publicKey: Uint8Array, backend?: Ed25519Backend): NoteVerifier {
  assertValidKeyName(name);
  assertEd25519PublicKey(publicKey);
  const key = publicKey.slice();
  return {
    name,
    keyId: noteKeyId(name, NOTE_SIG_ED25519, key),
    async verify(text, signature) {
      if (signature.length !== ED25519_SIGNATURE_LENGTH) {
        throw new E2ekvError('MALFORMED', `the Ed25519 signature of ${name} is ${signature.length} bytes, not 64`);
      }
      return backend === undefined ? ed25519Verify(key, text, signature) : backend.verify(key, text, signature);
    },
  };
}

/** An Ed25519 (type 0x01) note signer from a 32-byte seed. */
export async function ed25519NoteSigner(
  name: string,
  seed: Uint8Array,
  backend?: Ed25519Backend,
): Promise<NoteSigner & { readonly publicKey: Uint8Array }> {
  assertValidKeyName(name);
  const signer = backend === undefined ? await ed25519Signer(seed) : await backend.signer(seed);
  return {
    name,
    keyId: noteKeyId(name, NOTE_SIG_ED25519, signer.publicKey),
    publicKey: signer.publicKey,
    sign: (text) => signer.sign(text),
  };
}

/**
 * Parses "<name>+<8 lowercase hex key ID>+<base64(type || public key)>" and
 * checks that the key ID is the hash of the rest (else BAD_KEY).
 */
export function parseVerifierKey(vkey: string): VerifierKey {
  // The name cannot contain '+', the hex ID neither; base64 can.
  const first = vkey.indexOf('+');
  const second = first < 0 ? -1 : vkey.indexOf('+', first + 1);
  if (second < 0) throw new E2ekvError('MALFORMED', 'verifier key is not <name>+<key ID>+<key>');
  const name = vkey.slice(0, first);
  const hexId = vkey.slice(first + 1, second);
  assertValidKeyName(name, 'verifier key name');
  if (hexId.length !== 8) throw new E2ekvError('MALFORMED', 'verifier key ID is not 8 hex digits');
  const keyId = new DataView(fromHex(hexId, 'verifier key ID').buffer).getUint32(0);
  const material = fromBase64(vkey.slice(second + 1), 'verifier key');
  if (material.length === 0) throw new E2ekvError('BAD_KEY', 'verifier key has no signature type byte');
  const type = material[0]!;
  const publicKey = material.slice(1);
  if (isEd25519Type(type)) assertEd25519PublicKey(publicKey);
  if (noteKeyId(name, type, publicKey) !== keyId) {
    throw new E2ekvError('BAD_KEY', `verifier key ID ${hexId} is not the hash of the name and key`);
  }
  return { name, keyId, type, publicKey };
}

export function formatVerifierKey(name: string, type: number, publicKey: Uint8Array): string {
  assertValidKeyName(name);
  checkType(type);
  if (isEd25519Type(type)) assertEd25519PublicKey(publicKey);
  const id = toHex(u32(noteKeyId(name, type, publicKey)));
  const material = new Uint8Array(1 + publicKey.length);
  material[0] = type;
  material.set(publicKey, 1);
  return `${name}+${id}+${toBase64(material)}`;
}

/** A verifier from a type 0x01 vkey; cosigner (type 0x04) vkeys are for checkpoint.ts. */
export function verifierFromVkey(vkey: string, backend?: Ed25519Backend): NoteVerifier {
  const { name, type, publicKey } = parseVerifierKey(vkey);
  if (type !== NOTE_SIG_ED25519) {
    throw new E2ekvError('BAD_KEY', `verifier key ${name} has signature type ${type}, not Ed25519 (1)`);
  }
  return ed25519NoteVerifier(name, publicKey, backend);
}

/** Throws BAD_KEY unless `publicKey` has the length of an Ed25519 public key. */
export function assertEd25519PublicKey(publicKey: Uint8Array): void {
  if (publicKey.length !== ED25519_PUBLIC_KEY_LENGTH) {
    throw new E2ekvError('BAD_KEY', `an Ed25519 public key is 32 bytes, got ${publicKey.length}`);
  }
}

async function signatures(text: string, signers: readonly NoteSigner[]): Promise<NoteSignature[]> {
  assertValidText(text);
  if (signers.length === 0) throw new E2ekvError('INVALID_ARGUMENT', 'signing a note needs at least one signer');
  const bytes = utf8(text);
  const out: NoteSignature[] = [];
  for (const signer of signers) {
    assertValidKeyName(signer.name);
    if (out.some((s) => s.name === signer.name && s.keyId === signer.keyId)) {
      throw new E2ekvError('INVALID_ARGUMENT', `two signers share the key name ${signer.name} and key ID`);
    }
    out.push({ name: signer.name, keyId: signer.keyId, signature: await signer.sign(bytes) });
  }
  return out;
}

function decodeNote(input: string | Uint8Array): string {
  // Size first, so that an oversized note costs nothing more. A UTF-16 code
  // unit never encodes to fewer bytes than one, so the first test is sound.
  if (typeof input === 'string') {
    if (input.length > MAX_NOTE_BYTES || utf8(input).length > MAX_NOTE_BYTES) throw tooLarge();
    if (!isWellFormedString(input)) throw new E2ekvError('MALFORMED', 'signed note has an unpaired surrogate');
    return input;
  }
  if (input.length > MAX_NOTE_BYTES) throw tooLarge();
  return fromUtf8(input, 'signed note');
}

function tooLarge(): E2ekvError {
  return new E2ekvError('TOO_LARGE', `signed note is larger than ${MAX_NOTE_BYTES} bytes`, {
    details: { limit: MAX_NOTE_BYTES },
  });
}

function parseSignatureLine(line: string, index: number): NoteSignature {
  if (!line.startsWith(signaturePrefix)) {
    throw new E2ekvError(
      'MALFORMED',
      `signature line ${index + 1} does not start with an em dash (U+2014) and a space`,
    );
  }
  const rest = line.slice(signaturePrefix.length);
  const space = rest.indexOf(' ');
  if (space < 0) throw new E2ekvError('MALFORMED', `signature line ${index + 1} has no space before the signature`);
  const name = rest.slice(0, space);
  assertValidKeyName(name, `signature line ${index + 1}: key name`);
  // Strict base64 also rejects a second space or trailing characters.
  const blob = fromBase64(rest.slice(space + 1), `signature of ${name}`);
  if (blob.length < 5) throw new E2ekvError('MALFORMED', `signature of ${name} is shorter than a key ID and one byte`);
  return {
    name,
    keyId: new DataView(blob.buffer, blob.byteOffset, 4).getUint32(0),
    signature: blob.slice(4),
  };
}

/** A text that can be signed: non-empty, newline-terminated, no other controls. */
function assertValidText(text: string): void {
  if (!text.endsWith('\n')) throw new E2ekvError('MALFORMED', 'note text must be non-empty and end with a newline');
  if (!isWellFormedString(text)) throw new E2ekvError('MALFORMED', 'note text has an unpaired surrogate');
  assertNoControlCharacters(text, 'note text');
}

function assertNoControlCharacters(text: string, what: string): void {
  const at = firstControlCharacter(text);
  if (at >= 0) {
    const code = text.charCodeAt(at);
    const hint = code === 0x0d ? ' (a CR: lines end with LF only)' : '';
    throw new E2ekvError('MALFORMED', `${what} has control character U+${hex4(code)} at offset ${at}${hint}`, {
      details: { offset: at },
    });
  }
}

/** The index of the first character below U+0020 other than newline, or -1. */
function firstControlCharacter(text: string): number {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 && c !== 0x0a) return i;
  }
  return -1;
}

// Both name and key ID identify a key; a shared name or ID alone does not.
function assertDistinctKeys(signatures: readonly NoteSignature[]): void {
  const seen = new Set<string>();
  for (const signature of signatures) {
    const key = keyOf(signature);
    if (seen.has(key)) {
      throw new E2ekvError(
        'MALFORMED',
        `two signatures by the same key (${signature.name}, ${hexId(signature.keyId)})`,
      );
    }
    seen.add(key);
  }
}

function keyOf(key: { readonly name: string; readonly keyId: number }): string {
  // Key names never contain a newline, so this cannot be ambiguous.
  return `${key.name}\n${key.keyId}`;
}

function isEd25519Type(type: number): boolean {
  return type === NOTE_SIG_ED25519 || type === NOTE_SIG_COSIGNATURE_V1;
}

function checkType(type: number): void {
  if (!Number.isInteger(type) || type < 0 || type > 0xff) {
    throw new E2ekvError('INVALID_ARGUMENT', `signature type ${type} is not a byte`);
  }
}

function u32(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value);
  return out;
}

function hexId(keyId: number): string {
  return toHex(u32(keyId));
}

function hex4(code: number): string {
  return code.toString(16).toUpperCase().padStart(4, '0');
}
