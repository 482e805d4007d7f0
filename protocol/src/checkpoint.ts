/**
 * C2SP checkpoints (c2sp.org/tlog-checkpoint@v1.0.0), the origins of our
 * per-device logs, and Ed25519 cosignatures (c2sp.org/tlog-cosignature, v1,
 * signature type 0x04), as profiled in SPEC.md, "Device checkpoints" and
 * "Replica cosignatures".
 *
 * A checkpoint body is
 *
 *     <origin>
 *     <tree size, decimal>
 *     <root hash, base64>
 *     [extension lines]
 */
import {
  ByteReader,
  ByteWriter,
  MAX_I64,
  bytesEqual,
  fromBase64,
  fromHex,
  fromUtf8,
  isWellFormedString,
  parseDecimal,
  toBase64,
  toHex,
  utf8,
} from './bytes.js';
import { ED25519_SIGNATURE_LENGTH, ed25519PublicKeyFromSeed, ed25519Signer, ed25519Verify } from './crypto/ed25519.js';
import type { Ed25519Backend } from './crypto/ed25519.js';
import { E2ekvError } from './errors.js';
import { verifyConsistency } from './merkle.js';
import {
  MAX_NOTE_BYTES,
  NOTE_SIG_COSIGNATURE_V1,
  assertEd25519PublicKey,
  assertValidKeyName,
  ed25519NoteSigner,
  ed25519NoteVerifier,
  formatVerifierKey,
  noteKeyId,
  parseVerifierKey,
  signNote,
  verifyNote,
  verifyParsedNote,
} from './note.js';
import type { Note, NoteSigner, NoteVerifier } from './note.js';

export const CHECKPOINT_ROOT_LENGTH = 32;
/** u64 timestamp || 64-byte Ed25519 signature. */
export const COSIGNATURE_V1_LENGTH = 8 + ED25519_SIGNATURE_LENGTH;

export interface Checkpoint {
  origin: string;
  size: bigint;
  root: Uint8Array;
  extensions: readonly string[];
}

/** The note text of a checkpoint. */
export function formatCheckpoint(checkpoint: Checkpoint): string {
  const { origin, size, root, extensions } = checkpoint;
  assertValidKeyName(origin, 'checkpoint origin');
  if (size < 0n || size > MAX_I64) throw new E2ekvError('INVALID_ARGUMENT', `tree size ${size} is out of range`);
  if (root.length !== CHECKPOINT_ROOT_LENGTH) {
    throw new E2ekvError('INVALID_ARGUMENT', `root hash must be 32 bytes, got ${root.length}`);
  }
  let out = `${origin}\n${size}\n${toBase64(root)}\n`;
  for (const line of extensions) {
    assertExtensionLine(line);
    out += line + '\n';
  }
  return out;
}

/**
 * Parses a checkpoint body strictly. The body must come from a verified note:
 * parsing proves nothing about who wrote it.
 */
export function parseCheckpoint(text: string): Checkpoint {
  if (text.length > MAX_NOTE_BYTES || utf8(text).length > MAX_NOTE_BYTES) {
    throw new E2ekvError('TOO_LARGE', 'checkpoint is larger than a signed note may be');
  }
  if (!text.endsWith('\n')) throw new E2ekvError('MALFORMED', 'checkpoint does not end with a newline');
  const lines = text.slice(0, -1).split('\n');
  if (lines.length < 3) throw new E2ekvError('MALFORMED', 'checkpoint has fewer than three lines');
  const [origin, sizeLine, rootLine, ...extensions] = lines as [string, string, string, ...string[]];
  // C2SP only recommends this for origins; we require it, because the origin is also the log's key name.
  assertValidKeyName(origin, 'checkpoint origin');
  const size = parseDecimal(sizeLine, MAX_I64, 'checkpoint tree size');
  const root = fromBase64(rootLine, 'checkpoint root hash');
  if (root.length !== CHECKPOINT_ROOT_LENGTH) {
    throw new E2ekvError('MALFORMED', `checkpoint root hash is ${root.length} bytes, not 32`);
  }
  extensions.forEach(assertExtensionLine);
  return { origin, size, root, extensions };
}

const ORIGIN_PREFIX = 'e2ekv/v1/';
const originPattern = /^e2ekv\/v1\/([0-9a-f]{64})\/([0-9a-f]{64})$/;

/** The origin (and note key name) of a device's log in a vault. */
export function logOrigin(vaultId: Uint8Array, deviceKey: Uint8Array): string {
  if (vaultId.length !== 32)
    throw new E2ekvError('INVALID_ARGUMENT', `vault ID must be 32 bytes, got ${vaultId.length}`);
  assertEd25519PublicKey(deviceKey);
  return `${ORIGIN_PREFIX}${toHex(vaultId)}/${toHex(deviceKey)}`;
}

export function parseLogOrigin(origin: string): { vaultId: Uint8Array; deviceKey: Uint8Array } {
  const match = originPattern.exec(origin);
  if (match === null) {
    throw new E2ekvError(
      'MALFORMED',
      `${JSON.stringify(origin)} is not an e2ekv/v1/<vault ID>/<device key> log origin`,
    );
  }
  return { vaultId: fromHex(match[1]!), deviceKey: fromHex(match[2]!) };
}

/** "cosignature/v1\ntime <timestamp>\n" || checkpoint body: what a v1 Ed25519 cosigner signs. */
export function cosignatureMessage(body: string, timestamp: bigint): Uint8Array {
  return messageFor(utf8(body), timestamp);
}

export function cosignerKeyId(name: string, publicKey: Uint8Array): number {
  assertEd25519PublicKey(publicKey);
  return noteKeyId(name, NOTE_SIG_COSIGNATURE_V1, publicKey);
}

/** Splits a type 0x04 signature (without its key ID) into its timestamp and Ed25519 signature. */
export function parseTimestampedSignature(blob: Uint8Array): { timestamp: bigint; signature: Uint8Array } {
  if (blob.length !== COSIGNATURE_V1_LENGTH) {
    throw new E2ekvError('MALFORMED', `a cosignature is ${COSIGNATURE_V1_LENGTH} bytes, got ${blob.length}`);
  }
  const reader = new ByteReader(blob, 'cosignature');
  const timestamp = reader.u64('timestamp');
  if (timestamp > MAX_I64) throw new E2ekvError('MALFORMED', `cosignature timestamp ${timestamp} exceeds 2^63 - 1`);
  return { timestamp, signature: reader.rest() };
}

export function secondsSinceEpoch(): bigint {
  return BigInt(Math.floor(Date.now() / 1000));
}

/**
 * A tlog-cosignature/v1 Ed25519 cosigner. It refuses to sign a text that is not
 * a checkpoint, since a cosignature is a statement about a checkpoint; checking
 * that the checkpoint is consistent with what it saw before is the caller's job.
 */
export async function cosignatureSigner(
  name: string,
  seed: Uint8Array,
  now: () => bigint = secondsSinceEpoch,
  backend?: Ed25519Backend,
): Promise<NoteSigner & { readonly publicKey: Uint8Array }> {
  assertValidKeyName(name, 'cosigner name');
  const signer = backend === undefined ? await ed25519Signer(seed) : await backend.signer(seed);
  return {
    name,
    keyId: cosignerKeyId(name, signer.publicKey),
    publicKey: signer.publicKey,
    async sign(text) {
      parseCheckpoint(fromUtf8(text, 'checkpoint'));
      const timestamp = now();
      const signature = await signer.sign(messageFor(text, timestamp));
      return new ByteWriter().u64(timestamp).fixed(signature, ED25519_SIGNATURE_LENGTH, 'signature').finish();
    },
  };
}

export interface CosignatureVerifier extends NoteVerifier {
  readonly publicKey: Uint8Array;
  /** The timestamp of one of this key's cosignatures (MALFORMED if it is not one). Verify it first. */
  timestamp(signature: Uint8Array): bigint;
}

export function cosignatureVerifier(
  name: string,
  publicKey: Uint8Array,
  backend?: Ed25519Backend,
): CosignatureVerifier {
  assertValidKeyName(name, 'cosigner name');
  const key = publicKey.slice();
  return {
    name,
    keyId: cosignerKeyId(name, key),
    publicKey: key,
    verify(text, blob) {
      const { timestamp, signature } = parseTimestampedSignature(blob);
      const message = messageFor(text, timestamp);
      return backend === undefined ? ed25519Verify(key, message, signature) : backend.verify(key, message, signature);
    },
    timestamp: (blob) => parseTimestampedSignature(blob).timestamp,
  };
}

export interface Cosigner {
  readonly name: string;
  readonly publicKey: Uint8Array;
}

export interface VerifiedCheckpoint {
  checkpoint: Checkpoint;
  /** The known cosigners whose cosignatures verified, in note order. */
  cosignatures: { name: string; publicKey: Uint8Array; timestamp: bigint }[];
}

/**
 * Verifies a checkpoint note: the log's signature is required (UNKNOWN_KEY
 * without it) and its key name must be the origin; each cosignature from a
 * known cosigner must verify (BAD_SIGNATURE); other signatures are ignored.
 * Whether enough cosigners signed, and whether timestamps are plausible, is the
 * caller's policy.
 */
export async function verifyCosignedCheckpoint(
  note: string | Uint8Array,
  logVerifier: NoteVerifier,
  cosigners: readonly Cosigner[],
  backend?: Ed25519Backend,
): Promise<VerifiedCheckpoint> {
  return verifyCosigned({ raw: note }, logVerifier, cosigners, backend);
}

/**
 * verifyCosignedCheckpoint for a note parsed already by parseNote: the same
 * checks and answer, without parsing the note again.
 */
export async function verifyParsedCosignedCheckpoint(
  note: Note,
  logVerifier: NoteVerifier,
  cosigners: readonly Cosigner[],
  backend?: Ed25519Backend,
): Promise<VerifiedCheckpoint> {
  return verifyCosigned({ parsed: note }, logVerifier, cosigners, backend);
}

/** A note as given: its text (parsed when verified), or parseNote's result. */
type NoteInput = { raw: string | Uint8Array } | { parsed: Note };

async function verifyCosigned(
  note: NoteInput,
  logVerifier: NoteVerifier,
  cosigners: readonly Cosigner[],
  backend?: Ed25519Backend,
): Promise<VerifiedCheckpoint> {
  const verifiers = cosigners.map((c) => cosignatureVerifier(c.name, c.publicKey, backend));
  const all = [logVerifier, ...verifiers];
  const verified = await ('parsed' in note ? verifyParsedNote(note.parsed, all) : verifyNote(note.raw, all));
  if (!verified.verifiedBy.includes(logVerifier)) {
    throw new E2ekvError('UNKNOWN_KEY', `the checkpoint has no signature from the log key ${logVerifier.name}`);
  }
  const checkpoint = parseCheckpoint(verified.text);
  if (checkpoint.origin !== logVerifier.name) {
    throw new E2ekvError(
      'INTEGRITY',
      `the log key ${logVerifier.name} signed a checkpoint of another origin, ${checkpoint.origin}`,
    );
  }
  const cosignatures = [];
  for (const { name, keyId, signature } of verified.note.signatures) {
    const verifier = verifiers.find((v) => v.name === name && v.keyId === keyId);
    if (verifier === undefined || !verified.verifiedBy.includes(verifier)) continue;
    cosignatures.push({ name, publicKey: verifier.publicKey, timestamp: verifier.timestamp(signature) });
  }
  return { checkpoint, cosignatures };
}

/** A type 0x04 vkey: "<name>+<key ID>+<base64(0x04 || public key)>". */
export function formatCosignerVkey(name: string, publicKey: Uint8Array): string {
  return formatVerifierKey(name, NOTE_SIG_COSIGNATURE_V1, publicKey);
}

export function parseCosignerVkey(vkey: string): Cosigner {
  const { name, type, publicKey } = parseVerifierKey(vkey);
  if (type !== NOTE_SIG_COSIGNATURE_V1) {
    throw new E2ekvError('BAD_KEY', `verifier key ${name} has signature type ${type}, not a v1 cosignature (4)`);
  }
  return { name, publicKey };
}

export function cosignatureVerifierFromVkey(vkey: string, backend?: Ed25519Backend): CosignatureVerifier {
  const { name, publicKey } = parseCosignerVkey(vkey);
  return cosignatureVerifier(name, publicKey, backend);
}

function messageFor(body: Uint8Array, timestamp: bigint): Uint8Array {
  if (timestamp < 0n || timestamp > MAX_I64) {
    throw new E2ekvError('INVALID_ARGUMENT', `cosignature timestamp ${timestamp} is out of range`);
  }
  return new ByteWriter()
    .bytes(utf8(`cosignature/v1\ntime ${timestamp}\n`))
    .bytes(body)
    .finish();
}

function assertExtensionLine(line: string): void {
  if (line === '') throw new E2ekvError('MALFORMED', 'checkpoint extension lines must be non-empty');
  if (!isWellFormedString(line))
    throw new E2ekvError('MALFORMED', 'checkpoint extension line has an unpaired surrogate');
  for (let i = 0; i < line.length; i++) {
    if (line.charCodeAt(i) < 0x20)
      throw new E2ekvError('MALFORMED', 'checkpoint extension line has a control character');
  }
}

/**
 * The signer of one device's checkpoints in one vault: Ed25519 (type 0x01) with
 * the log origin as key name (SPEC.md, "Device checkpoints").
 */
export async function deviceCheckpointSigner(
  seed: Uint8Array,
  vaultId: Uint8Array,
  backend?: Ed25519Backend,
): Promise<NoteSigner & { readonly publicKey: Uint8Array }> {
  return ed25519NoteSigner(logOrigin(vaultId, ed25519PublicKeyFromSeed(seed)), seed, backend);
}

/** Formats and signs a device checkpoint (no extension lines). */
export async function signDeviceCheckpoint(
  signer: NoteSigner,
  state: { size: bigint; root: Uint8Array },
): Promise<string> {
  parseLogOrigin(signer.name);
  return signNote(formatCheckpoint({ origin: signer.name, size: state.size, root: state.root, extensions: [] }), [
    signer,
  ]);
}

/**
 * Verifies a checkpoint of one device's log in one vault: the device's own
 * signature is required, the origin must name exactly this vault and device,
 * and extension lines are refused. Cosignatures from `cosigners` are verified
 * and reported with their timestamps; others are ignored.
 */
export async function verifyDeviceCheckpoint(
  note: string | Uint8Array,
  vaultId: Uint8Array,
  deviceKey: Uint8Array,
  cosigners: readonly Cosigner[] = [],
  backend?: Ed25519Backend,
): Promise<VerifiedCheckpoint> {
  return verifyDevice({ raw: note }, vaultId, deviceKey, cosigners, backend);
}

/**
 * verifyDeviceCheckpoint for a note parsed already by parseNote (a replica
 * also keeps and cosigns the note it verifies): the same checks and answer,
 * without parsing the note again.
 */
export async function verifyParsedDeviceCheckpoint(
  note: Note,
  vaultId: Uint8Array,
  deviceKey: Uint8Array,
  cosigners: readonly Cosigner[] = [],
  backend?: Ed25519Backend,
): Promise<VerifiedCheckpoint> {
  return verifyDevice({ parsed: note }, vaultId, deviceKey, cosigners, backend);
}

async function verifyDevice(
  note: NoteInput,
  vaultId: Uint8Array,
  deviceKey: Uint8Array,
  cosigners: readonly Cosigner[],
  backend: Ed25519Backend | undefined,
): Promise<VerifiedCheckpoint> {
  const origin = logOrigin(vaultId, deviceKey);
  const verified = await verifyCosigned(note, deviceVerifier(origin, deviceKey, backend), cosigners, backend);
  if (verified.checkpoint.extensions.length > 0) {
    throw new E2ekvError('MALFORMED', 'a device checkpoint must not have extension lines');
  }
  return verified;
}

// Device log verifiers by origin, for the default backend: a replica verifies
// the same few devices' checkpoints on every append, and making a verifier
// hashes its key ID. The origin names the device key (logOrigin), so it
// determines the verifier.
const deviceVerifiers = new Map<string, NoteVerifier>();
const DEVICE_VERIFIER_CACHE_LIMIT = 4096;

function deviceVerifier(origin: string, deviceKey: Uint8Array, backend: Ed25519Backend | undefined): NoteVerifier {
  if (backend !== undefined) return ed25519NoteVerifier(origin, deviceKey, backend);
  let verifier = deviceVerifiers.get(origin);
  if (verifier === undefined) {
    verifier = ed25519NoteVerifier(origin, deviceKey);
    if (deviceVerifiers.size >= DEVICE_VERIFIER_CACHE_LIMIT)
      deviceVerifiers.delete(deviceVerifiers.keys().next().value!);
    deviceVerifiers.set(origin, verifier);
  }
  return verifier;
}

/** A log's largest verified checkpoint, as a verifier pins it. */
export interface PinnedCheckpoint {
  size: bigint;
  root: Uint8Array;
}

/**
 * Applies SPEC.md section 11.1 to a newly verified checkpoint of a pinned log:
 * returns 'same' or 'newer' (the caller then moves its pin), or throws ROLLBACK
 * or EQUIVOCATION. The caller keeps both notes as evidence on EQUIVOCATION.
 */
export function checkCheckpointProgress(
  pinned: PinnedCheckpoint,
  next: PinnedCheckpoint,
  consistencyProof: readonly Uint8Array[],
): 'same' | 'newer' {
  const at = { pinnedSize: String(pinned.size), nextSize: String(next.size) };
  if (pinned.size === 0n) {
    throw new E2ekvError('INVALID_ARGUMENT', 'an empty log is not a pin: verify the first checkpoint from its entries');
  }
  if (next.size < pinned.size) {
    throw new E2ekvError('ROLLBACK', `checkpoint of size ${next.size} is older than the pinned size ${pinned.size}`, {
      details: at,
    });
  }
  if (next.size === pinned.size) {
    if (!bytesEqual(next.root, pinned.root)) {
      throw new E2ekvError('EQUIVOCATION', `two different roots for size ${next.size} of the same log`, {
        details: at,
      });
    }
    return 'same';
  }
  try {
    verifyConsistency(pinned.size, next.size, consistencyProof, pinned.root, next.root);
  } catch (cause) {
    throw new E2ekvError(
      'EQUIVOCATION',
      `checkpoint of size ${next.size} is not consistent with the pinned checkpoint of size ${pinned.size}`,
      { cause, details: at },
    );
  }
  return 'newer';
}
