/**
 * The keystore: a device's identity and the vaults it can open, sealed under a
 * passphrase so that it can rest in a file (the CLI) or in browser storage.
 * Crypto only; reading and writing files is in node/keystore-file.ts.
 *
 * Format, version 1: one JSON text
 *
 *   {"e2ekv-keystore":1,
 *    "kdf":{"name":"scrypt","logN":16,"r":8,"p":1,"salt":<base64, 16 bytes>},
 *    "nonce":<base64, 24 bytes>,"ciphertext":<base64>}
 *
 *   key        = scrypt(UTF-8(NFKC(passphrase)), salt, N = 2^logN, r, p, 32 bytes)
 *   ciphertext = secretbox(canonical JSON of the contents, nonce, key)
 *
 * The contents (protocol/SPEC.md section 20) list, per vault, its name, id,
 * epoch-0 secret, replicas and, when the device holds any, the secrets of
 * later key epochs. Backups (backup.ts) use the same sealing under another
 * version field ("e2ekv-backup"), so that neither is taken for the other.
 *
 * Secretbox has no associated data, and the header needs none: the salt and the
 * parameters change the key and the nonce feeds the MAC, so any edit of them
 * fails exactly like a wrong passphrase. The one edit that could do harm is a
 * cheaper parameter set, which is why parameters below SCRYPT_MINIMUM are
 * refused before any derivation: no keystore this client accepts (and re-seals
 * with the parameters it read) costs a guesser less than the minimum.
 *
 * What someone holding the file can do: guess passphrases offline, as fast as
 * their hardware runs scrypt at the file's parameters (128 MiB and about 0.8 s
 * of one core here per guess at the default; a GPU farm or an ASIC runs
 * many guesses in parallel). Nothing else is learnt without the passphrase
 * except the parameters and, from the ciphertext length, roughly how many vaults
 * and servers it lists. So the passphrase must be long and not chosen by a
 * person: six or more random words. A short or common passphrase falls to a
 * dictionary whatever the parameters.
 */
import { scryptAsync } from '@noble/hashes/scrypt.js';
import nacl from 'tweetnacl';
import {
  E2ekvError,
  compareBytes,
  fromBase64,
  fromUtf8,
  isE2ekvError,
  randomBytes,
  toBase64,
  utf8,
  wipe,
} from '@e2ekv/protocol';
import type { Identity } from './identity.js';

/** What a keystore holds. Every byte field is secret. */
export interface KeystoreContents {
  identity: Identity;
  vaults: StoredVaultAccess[];
}

/** A vault this device can open, under a name the user chose, with the replicas to reach it. */
export interface StoredVaultAccess {
  /** Unique within a keystore. */
  name: string;
  /** 64 lowercase hex digits. */
  vaultId: string;
  /** The 32-byte vault secret. */
  secret: Uint8Array;
  /** Replica URLs. */
  servers: string[];
  /**
   * Secrets of key epochs after the first (epoch >= 1, ascending) that this
   * device holds: given by an invitation, or learnt from the vault's epoch
   * records and kept here so that they outlive the local replica.
   */
  epochs?: { epoch: number; secret: Uint8Array }[];
}

/** scrypt cost: N = 2^logN, block size r, parallelism p. Memory is 128 * r * N bytes. */
export interface ScryptParams {
  logN: number;
  r: number;
  p: number;
}

/**
 * The least a keystore may ask for: 32 MiB. Measured on our 2-core machine with
 * noble's scryptAsync on Node 20: 0.2 s (0.3 s while other jobs loaded it).
 */
export const SCRYPT_MINIMUM: Readonly<ScryptParams> = Object.freeze({ logN: 15, r: 8, p: 1 });

/**
 * What sealKeystore uses: 128 MiB. Measured on the same machine: 0.78 s
 * (0.64 s with the synchronous scrypt), and 1.1 to 1.3 s under a load average
 * of 4. Under a second when the machine is idle, which is what a person
 * unlocking a device will wait; logN 16 (0.4 s) would halve a guesser's cost.
 */
export const SCRYPT_DEFAULT: Readonly<ScryptParams> = Object.freeze({ logN: 17, r: 8, p: 1 });

// Beyond these a file is not a keystore but an attempt to make us allocate
// gigabytes or spin for hours. The memory bound is the tighter one for r >= 8:
// logN 20 with r 8 is the largest derivation we will run.
const SCRYPT_MAXIMUM: Readonly<ScryptParams> = Object.freeze({ logN: 22, r: 32, p: 16 });
const SCRYPT_MAX_MEMORY = 2 ** 30;

const VERSION = 1;
const SALT_LENGTH = 16;
const KEY_LENGTH = 32;

export interface KeystoreOptions {
  /** Called with the fraction of the key derivation done, from 0 to 1: for a progress bar. */
  onProgress?: (fraction: number) => void;
}

export async function sealKeystore(
  contents: KeystoreContents,
  passphrase: string,
  params: Readonly<ScryptParams> = SCRYPT_DEFAULT,
  options: KeystoreOptions = {},
): Promise<string> {
  const body = utf8(JSON.stringify(encodeContents(contents)));
  try {
    return await sealUnderPassphrase(KEYSTORE_FORMAT, body, passphrase, params, options);
  } finally {
    wipe(body);
  }
}

export async function openKeystore(
  text: string,
  passphrase: string,
  options: KeystoreOptions = {},
): Promise<KeystoreContents> {
  const body = await openUnderPassphrase(KEYSTORE_FORMAT, text, passphrase, options);
  try {
    let json: unknown;
    try {
      json = JSON.parse(fromUtf8(body, 'the keystore contents'));
    } catch (cause) {
      throw malformedContents('they are not JSON', cause);
    }
    return decodeContents(json);
  } finally {
    wipe(body);
  }
}

/**
 * A file sealed under a passphrase: the keystore's layout, shared with backup
 * files (backup.ts), which differ only in their version field and what the
 * plaintext holds. `tag` names the version field; `what` is how messages call
 * the file; `others` are the tags of the other formats, so that one handed the
 * wrong file says which it is instead of "malformed".
 */
export interface SealedFormat {
  tag: string;
  what: string;
  others: readonly { tag: string; hint: string }[];
}

export const KEYSTORE_FORMAT: SealedFormat = Object.freeze({
  tag: 'e2ekv-keystore',
  what: 'keystore',
  others: [
    { tag: 'e2ekv-backup', hint: 'this is an e2ekv backup, not a keystore: restore it with e2ekv backup import' },
  ],
});

/** Seals `body` (the canonical plaintext) under the passphrase: the JSON text of SPEC.md section 20. */
export async function sealUnderPassphrase(
  format: SealedFormat,
  body: Uint8Array,
  passphrase: string,
  params: Readonly<ScryptParams>,
  options: KeystoreOptions = {},
): Promise<string> {
  const problem = paramsProblem(params);
  if (problem !== undefined) {
    throw new E2ekvError('INVALID_ARGUMENT', `cannot seal a ${format.what} with these scrypt parameters: ${problem}`);
  }
  if (passphrase.length === 0) {
    throw new E2ekvError('INVALID_ARGUMENT', `a ${format.what} needs a passphrase: use six or more random words`);
  }
  const salt = randomBytes(SALT_LENGTH);
  const nonce = randomBytes(nacl.secretbox.nonceLength);
  const key = await deriveKey(passphrase, salt, params, options);
  let ciphertext: Uint8Array;
  try {
    ciphertext = nacl.secretbox(body, nonce, key);
  } finally {
    wipe(key);
  }
  const { logN, r, p } = params;
  const sealed = {
    [format.tag]: VERSION,
    kdf: { name: 'scrypt', logN, r, p, salt: toBase64(salt) },
    nonce: toBase64(nonce),
    ciphertext: toBase64(ciphertext),
  };
  return JSON.stringify(sealed) + '\n';
}

/** Opens what sealUnderPassphrase made: the plaintext bytes (the caller wipes them). */
export async function openUnderPassphrase(
  format: SealedFormat,
  text: string,
  passphrase: string,
  options: KeystoreOptions = {},
): Promise<Uint8Array> {
  const sealed = parseSealed(format, text);
  const key = await deriveKey(passphrase, sealed.salt, sealed.params, options);
  let body: Uint8Array | null;
  try {
    body = nacl.secretbox.open(sealed.ciphertext, sealed.nonce, key);
  } finally {
    wipe(key);
  }
  // Also what an edited salt, nonce or ciphertext looks like: the MAC cannot tell them apart.
  if (body === null) throw new E2ekvError('PERMISSION_DENIED', `wrong passphrase for this ${format.what}`);
  return body;
}

/** The scrypt parameters a sealed file names, checked like openUnderPassphrase checks them (no derivation). */
export function sealedParams(format: SealedFormat, text: string): ScryptParams {
  return parseSealed(format, text).params;
}

interface Sealed {
  params: ScryptParams;
  salt: Uint8Array;
  nonce: Uint8Array;
  ciphertext: Uint8Array;
}

/** Checks everything a file can say before a single byte of scrypt runs. */
function parseSealed({ tag, what, others }: SealedFormat, text: string): Sealed {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new E2ekvError('MALFORMED', `this is not an e2ekv ${what}: it is not JSON`, { cause });
  }
  if (!isRecord(json) || !(tag in json)) {
    const other = isRecord(json) ? others.find((o) => o.tag in json) : undefined;
    if (other !== undefined) throw new E2ekvError('MALFORMED', other.hint);
    throw new E2ekvError('MALFORMED', `this is not an e2ekv ${what}: it has no "${tag}" version field`);
  }
  const version = json[tag];
  if (version !== VERSION) {
    if (Number.isSafeInteger(version)) {
      throw new E2ekvError(
        'UNSUPPORTED_VERSION',
        `this ${what} has format version ${String(version)}; this e2ekv reads version ${VERSION}: upgrade e2ekv`,
      );
    }
    throw new E2ekvError('MALFORMED', `the ${what} version is not an integer`);
  }
  exactKeys(json, [tag, 'kdf', 'nonce', 'ciphertext'], `the ${what}`);
  const kdf = json['kdf'];
  if (!isRecord(kdf)) throw new E2ekvError('MALFORMED', `the ${what} "kdf" field is not an object`);
  if (kdf['name'] !== 'scrypt') {
    if (typeof kdf['name'] === 'string') {
      throw new E2ekvError(
        'UNSUPPORTED_VERSION',
        `this ${what} uses the key derivation "${kdf['name']}"; this e2ekv knows only scrypt: upgrade e2ekv`,
      );
    }
    throw new E2ekvError('MALFORMED', `the ${what} "kdf" has no name`);
  }
  exactKeys(kdf, ['name', 'logN', 'r', 'p', 'salt'], `the ${what} "kdf"`);
  const [logN, r, p] = (['logN', 'r', 'p'] as const).map((name) => {
    const value = kdf[name];
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
      throw new E2ekvError('MALFORMED', `the ${what} scrypt parameter ${name} is not a positive integer`);
    }
    return value;
  }) as [number, number, number];
  const params = { logN, r, p };
  const problem = tooHigh(params);
  if (problem !== undefined) throw new E2ekvError('MALFORMED', `this ${what} is not usable: ${problem}`);
  if (tooLow(params) !== undefined) {
    throw new E2ekvError(
      'INTEGRITY',
      `the ${what} asks for weaker scrypt parameters than e2ekv allows: it may have been tampered with`,
      { details: { logN, r, p } },
    );
  }
  const salt = base64Field(kdf['salt'], `the ${what} salt`);
  if (salt.length !== SALT_LENGTH) throw new E2ekvError('MALFORMED', `the ${what} salt is not ${SALT_LENGTH} bytes`);
  const nonce = base64Field(json['nonce'], `the ${what} nonce`);
  if (nonce.length !== nacl.secretbox.nonceLength) {
    throw new E2ekvError('MALFORMED', `the ${what} nonce is not ${nacl.secretbox.nonceLength} bytes`);
  }
  const ciphertext = base64Field(json['ciphertext'], `the ${what} ciphertext`);
  if (ciphertext.length < nacl.secretbox.overheadLength) {
    throw new E2ekvError('MALFORMED', `the ${what} ciphertext is too short to hold anything`);
  }
  return { params, salt, nonce, ciphertext };
}

function tooHigh({ logN, r, p }: ScryptParams): string | undefined {
  const max = SCRYPT_MAXIMUM;
  if (logN > max.logN || r > max.r || p > max.p) {
    return `scrypt logN ${logN}, r ${r}, p ${p} exceed the maximum logN ${max.logN}, r ${max.r}, p ${max.p}`;
  }
  if (128 * r * 2 ** logN > SCRYPT_MAX_MEMORY) {
    return `scrypt logN ${logN} with r ${r} would need more than ${SCRYPT_MAX_MEMORY / 2 ** 20} MiB`;
  }
  return undefined;
}

function tooLow({ logN, r, p }: ScryptParams): string | undefined {
  const min = SCRYPT_MINIMUM;
  if (logN < min.logN || r < min.r || p < min.p) {
    return `scrypt logN ${logN}, r ${r}, p ${p} are below the minimum logN ${min.logN}, r ${min.r}, p ${min.p}`;
  }
  return undefined;
}

function paramsProblem(params: Readonly<ScryptParams>): string | undefined {
  const { logN, r, p } = params;
  if (![logN, r, p].every((v) => Number.isSafeInteger(v) && v >= 1)) return 'logN, r and p must be positive integers';
  return tooLow(params) ?? tooHigh(params);
}

async function deriveKey(
  passphrase: string,
  salt: Uint8Array,
  { logN, r, p }: ScryptParams,
  { onProgress }: KeystoreOptions,
): Promise<Uint8Array> {
  // A lone surrogate would encode as U+FFFD, so two different passphrases would share a key.
  if (/\p{Cs}/u.test(passphrase)) {
    throw new E2ekvError('INVALID_ARGUMENT', 'the passphrase is not valid Unicode text (it has a lone surrogate)');
  }
  // NFKC: the same passphrase typed on another keyboard or OS may arrive composed differently.
  const secret = utf8(passphrase.normalize('NFKC'));
  try {
    // The async variant yields to the event loop every few milliseconds, so a page stays responsive.
    return await scryptAsync(secret, salt, {
      N: 2 ** logN,
      r,
      p,
      dkLen: KEY_LENGTH,
      // Our own bound (checked before) is tighter; this only keeps noble's default out of the way.
      maxmem: 2 * SCRYPT_MAX_MEMORY,
      ...(onProgress === undefined ? {} : { onProgress }),
    });
  } finally {
    wipe(secret);
  }
}

// Canonical JSON of the contents: keys in sorted order, no whitespace, bytes in base64.
function encodeContents(contents: KeystoreContents): unknown {
  const problem = contentsProblem(contents);
  if (problem !== undefined) throw new E2ekvError('INVALID_ARGUMENT', `cannot seal this keystore: ${problem}`);
  return {
    identity: {
      boxSecret: toBase64(contents.identity.boxSecret),
      signingSeed: toBase64(contents.identity.signingSeed),
    },
    vaults: contents.vaults.map(encodeVaultRecord),
  };
}

function decodeContents(json: unknown): KeystoreContents {
  if (!isRecord(json)) throw malformedContents('they are not a JSON object');
  exactKeysOfContents(json, ['identity', 'vaults']);
  const identity = json['identity'];
  if (!isRecord(identity)) throw malformedContents('"identity" is not an object');
  exactKeysOfContents(identity, ['boxSecret', 'signingSeed']);
  const vaults = json['vaults'];
  if (!Array.isArray(vaults)) throw malformedContents('"vaults" is not a list');
  const contents: KeystoreContents = {
    identity: {
      signingSeed: contentsBase64(identity['signingSeed'], 'the signing seed'),
      boxSecret: contentsBase64(identity['boxSecret'], 'the box secret'),
    },
    vaults: vaults.map((vault: unknown, i) => {
      try {
        return decodeVaultRecord(vault, `vault ${i}`);
      } catch (error) {
        if (!isE2ekvError(error)) throw error;
        throw malformedContents(error.message, error);
      }
    }),
  };
  const problem = contentsProblem(contents);
  if (problem !== undefined) throw malformedContents(problem);
  return contents;
}

/**
 * One vault record, as the keystore and backups (backup.ts) both write it:
 * `epochs` only when there are some, so that a keystore without later epochs
 * is byte for byte what earlier versions wrote.
 */
export function encodeVaultRecord(v: StoredVaultAccess): Record<string, unknown> {
  return {
    ...(v.epochs === undefined || v.epochs.length === 0
      ? {}
      : { epochs: v.epochs.map((e) => ({ epoch: e.epoch, secret: toBase64(e.secret) })) }),
    name: v.name,
    secret: toBase64(v.secret),
    servers: [...v.servers],
    vaultId: v.vaultId,
  };
}

/**
 * Reads a record encodeVaultRecord wrote, with `extra` fields the caller reads
 * itself; throws MALFORMED naming the record as `what`. The rules of
 * vaultProblem are checked by the caller (they span records: unique names).
 */
export function decodeVaultRecord(vault: unknown, what: string, extra: readonly string[] = []): StoredVaultAccess {
  if (!isRecord(vault)) throw new E2ekvError('MALFORMED', `${what} is not an object`);
  exactKeys(vault, ['name', 'secret', 'servers', 'vaultId', ...extra], what, ['epochs']);
  const { name, vaultId, servers, epochs } = vault;
  if (typeof name !== 'string' || typeof vaultId !== 'string' || !Array.isArray(servers)) {
    throw new E2ekvError('MALFORMED', `${what} has a field of the wrong type`);
  }
  const record: StoredVaultAccess = {
    name,
    vaultId,
    secret: base64Field(vault['secret'], `the secret of ${what}`),
    servers: servers as string[],
  };
  if (epochs !== undefined) {
    // Absent, not empty, when there are none: one encoding per keystore.
    if (!Array.isArray(epochs) || epochs.length === 0) {
      throw new E2ekvError('MALFORMED', `the "epochs" of ${what} is not a non-empty list`);
    }
    record.epochs = epochs.map((e: unknown, j) => {
      const which = `epoch record ${j} of ${what}`;
      if (!isRecord(e)) throw new E2ekvError('MALFORMED', `${which} is not an object`);
      exactKeys(e, ['epoch', 'secret'], which);
      if (typeof e['epoch'] !== 'number') throw new E2ekvError('MALFORMED', `${which} has no numeric epoch`);
      return { epoch: e['epoch'], secret: base64Field(e['secret'], `the secret of ${which}`) };
    });
  }
  return record;
}

/** Key epochs are u32 (SPEC.md section 5); epoch 0's secret is the record's `secret`. */
const MAX_EPOCH = 2 ** 32 - 1;

/** The rules both directions share, so that we never seal what we would refuse to open. */
function contentsProblem({ identity, vaults }: KeystoreContents): string | undefined {
  if (identity.signingSeed.length !== 32 || identity.boxSecret.length !== 32) {
    return 'an identity holds a 32-byte signing seed and a 32-byte box secret';
  }
  const names = new Set<string>();
  for (const [i, v] of vaults.entries()) {
    const problem = vaultProblem(v, i);
    if (problem !== undefined) return problem;
    if (names.has(v.name)) return `two vaults are named "${v.name}"`;
    names.add(v.name);
  }
  return undefined;
}

/** What is wrong with one vault record, if anything. */
export function vaultProblem(v: StoredVaultAccess, i: number): string | undefined {
  if (typeof v.name !== 'string' || v.name.length === 0) return `vault ${i} has no name`;
  if (typeof v.vaultId !== 'string' || !/^[0-9a-f]{64}$/.test(v.vaultId)) {
    return `vault "${v.name}" has a vault id that is not 64 lowercase hex digits`;
  }
  if (!(v.secret instanceof Uint8Array) || v.secret.length !== 32) {
    return `vault "${v.name}" has a secret that is not 32 bytes`;
  }
  if (!Array.isArray(v.servers) || !v.servers.every((s) => typeof s === 'string' && s.length > 0)) {
    return `vault "${v.name}" lists a server that is not a non-empty string`;
  }
  let previous: { epoch: number; secret: Uint8Array } | undefined;
  for (const e of v.epochs ?? []) {
    if (!Number.isSafeInteger(e.epoch) || e.epoch < 1 || e.epoch > MAX_EPOCH) {
      return `vault "${v.name}" lists a key epoch that is not a whole number from 1 to ${MAX_EPOCH}`;
    }
    if (!(e.secret instanceof Uint8Array) || e.secret.length !== 32) {
      return `vault "${v.name}" has a secret of epoch ${e.epoch} that is not 32 bytes`;
    }
    // Two admins may start one epoch concurrently (SPEC.md 21.3): a member can hold two secrets for it.
    if (
      previous !== undefined &&
      (e.epoch < previous.epoch || (e.epoch === previous.epoch && compareBytes(previous.secret, e.secret) >= 0))
    ) {
      return `vault "${v.name}" lists its key epochs out of order or twice (ascending by epoch, then by secret)`;
    }
    previous = e;
  }
  return undefined;
}

function malformedContents(problem: string, cause?: unknown): E2ekvError {
  // The MAC verified, so whoever knew the passphrase wrote this: a bug or another program, not an attacker.
  return new E2ekvError(
    'MALFORMED',
    `the keystore opened but its contents are malformed (${problem}): it was not written by this e2ekv`,
    cause === undefined ? {} : { cause },
  );
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function exactKeys(
  record: Record<string, unknown>,
  required: readonly string[],
  what: string,
  optional: readonly string[] = [],
): void {
  for (const key of required) {
    if (!Object.hasOwn(record, key)) throw new E2ekvError('MALFORMED', `${what} has no "${key}" field`);
  }
  for (const key of Object.keys(record)) {
    if (!required.includes(key) && !optional.includes(key)) {
      throw new E2ekvError('MALFORMED', `${what} has an unknown field "${key}"`);
    }
  }
}

function exactKeysOfContents(record: Record<string, unknown>, allowed: readonly string[]): void {
  try {
    exactKeys(record, allowed, 'an object');
  } catch (error) {
    throw malformedContents(error instanceof Error ? error.message : String(error));
  }
}

// fromBase64 says NON_CANONICAL for spellings that decode; in a keystore any of them is just malformed.
export function base64Field(value: unknown, what: string): Uint8Array {
  if (typeof value !== 'string') throw new E2ekvError('MALFORMED', `${what} is not a base64 string`);
  try {
    return fromBase64(value, what);
  } catch (cause) {
    if (!isE2ekvError(cause)) throw cause;
    throw new E2ekvError('MALFORMED', cause.message, { cause });
  }
}

function contentsBase64(value: unknown, what: string): Uint8Array {
  try {
    return base64Field(value, what);
  } catch (error) {
    if (!isE2ekvError(error)) throw error;
    throw malformedContents(error.message, error);
  }
}
