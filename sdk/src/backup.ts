/**
 * Backup files: what `e2ekv backup export` writes and `e2ekv backup import`
 * reads (protocol/SPEC.md section 20.1). Crypto and format only; the CLI does
 * the membership work and the file I/O.
 *
 * A backup is sealed exactly like a keystore (scrypt, then secretbox, with the
 * same minimum parameters refused as tampering before any derivation) under
 * its own version field, "e2ekv-backup", so that a backup is never opened as a
 * keystore nor a keystore as a backup.
 *
 * What it holds is not the exporting device's private key. A device that lost
 * its state must never resume its log (SPEC.md section 11.1: the old
 * installation may have written entries no replica saw, and writing again at
 * those indices forks the log). Instead the export enrols a fresh *recovery
 * device* as an admin of every vault the exporting device administers and
 * stores that device's keys: an import signs, as the recovery device, the
 * addition of the new installation's own new key. The backup also lists every
 * vault's secrets and replicas, and the exporting device's public identity
 * (to show, and to revoke it with `e2ekv vault remove`).
 *
 * Whoever holds the file and its passphrase is an admin of those vaults:
 * protect it like the vaults themselves.
 */
import {
  E2ekvError,
  fromUtf8,
  isE2ekvError,
  parseIdentityString,
  toBase64,
  utf8,
  wipe,
  type Role,
} from '@e2ekv/protocol';
import type { Identity } from './identity.js';
import {
  SCRYPT_MINIMUM,
  base64Field,
  decodeVaultRecord,
  encodeVaultRecord,
  openUnderPassphrase,
  sealUnderPassphrase,
  sealedParams,
  vaultProblem,
  type KeystoreOptions,
  type ScryptParams,
  type SealedFormat,
  type StoredVaultAccess,
} from './keystore.js';

/** One vault in a backup: its access, and what the exporting device could do there. */
export interface BackupVault extends StoredVaultAccess {
  /** The exporting device's role in the vault when the backup was made. */
  role: Role;
  /**
   * Whether the export added the recovery device to the vault (it does where
   * the exporting device is an admin): then an import restores it by itself;
   * otherwise an admin has to invite the new installation.
   */
  recoverable: boolean;
}

/** What a backup holds. `recovery` and every secret are secret. */
export interface BackupContents {
  /** When the backup was made, ms since the Unix epoch (informational). */
  createdAtMs: number;
  /** The identity string (SPEC.md 21.1) of the device that made the backup. */
  device: string;
  /** The recovery device's keys: an admin of every vault marked recoverable. */
  recovery: Identity;
  vaults: BackupVault[];
}

/**
 * What sealBackup uses: 256 MiB, about 1.5 s on our 2-core machine. Twice the
 * keystore's cost: a backup rests in places a keystore does not (a USB stick,
 * cloud storage), holds an admin key that no passphrase change revokes, and is
 * opened once, not at every command.
 */
export const BACKUP_SCRYPT_DEFAULT: Readonly<ScryptParams> = Object.freeze({ logN: 18, r: 8, p: 1 });

/** The least a backup may ask for; lower is refused as tampering (INTEGRITY), as for keystores. */
export const BACKUP_SCRYPT_MINIMUM: Readonly<ScryptParams> = SCRYPT_MINIMUM;

/** A backup larger than this is not one (each vault takes well under 1 KiB). */
export const MAX_BACKUP_BYTES = 16 * 2 ** 20;

export const BACKUP_FORMAT: SealedFormat = Object.freeze({
  tag: 'e2ekv-backup',
  what: 'backup',
  others: [
    {
      tag: 'e2ekv-keystore',
      hint: 'this is an e2ekv keystore, not a backup: a keystore is restored by copying it to $E2EKV_HOME/keystore.json (see sdk/CLI.md), a backup with e2ekv backup import',
    },
  ],
});

const ROLES: readonly Role[] = ['reader', 'writer', 'admin'];

export async function sealBackup(
  contents: BackupContents,
  passphrase: string,
  params: Readonly<ScryptParams> = BACKUP_SCRYPT_DEFAULT,
  options: KeystoreOptions = {},
): Promise<string> {
  const problem = contentsProblem(contents);
  if (problem !== undefined) throw new E2ekvError('INVALID_ARGUMENT', `cannot seal this backup: ${problem}`);
  const body = utf8(JSON.stringify(encode(contents)));
  try {
    return await sealUnderPassphrase(BACKUP_FORMAT, body, passphrase, params, options);
  } finally {
    wipe(body);
  }
}

export async function openBackup(
  text: string,
  passphrase: string,
  options: KeystoreOptions = {},
): Promise<BackupContents> {
  if (text.length > MAX_BACKUP_BYTES) {
    throw new E2ekvError('MALFORMED', `this is not an e2ekv backup: it is larger than ${MAX_BACKUP_BYTES} bytes`);
  }
  const body = await openUnderPassphrase(BACKUP_FORMAT, text, passphrase, options);
  try {
    let json: unknown;
    try {
      json = JSON.parse(fromUtf8(body, 'the backup contents'));
    } catch (cause) {
      throw malformed('they are not JSON', cause);
    }
    return decode(json);
  } finally {
    wipe(body);
  }
}

/** The scrypt parameters a backup file names, after the checks openBackup makes first (no derivation). */
export function backupParams(text: string): ScryptParams {
  return sealedParams(BACKUP_FORMAT, text);
}

// Canonical JSON: keys in sorted order, no whitespace, bytes in base64.
function encode(contents: BackupContents): unknown {
  return {
    createdAtMs: contents.createdAtMs,
    device: contents.device,
    recovery: {
      boxSecret: toBase64(contents.recovery.boxSecret),
      signingSeed: toBase64(contents.recovery.signingSeed),
    },
    vaults: contents.vaults.map((v) => {
      const { epochs, name, secret, servers, vaultId } = encodeVaultRecord(v);
      return {
        ...(epochs === undefined ? {} : { epochs }),
        name,
        recoverable: v.recoverable,
        role: v.role,
        secret,
        servers,
        vaultId,
      };
    }),
  };
}

function decode(json: unknown): BackupContents {
  try {
    if (!isRecord(json)) throw new E2ekvError('MALFORMED', 'they are not a JSON object');
    exactKeys(json, ['createdAtMs', 'device', 'recovery', 'vaults'], 'the contents');
    const recovery = json['recovery'];
    if (!isRecord(recovery)) throw new E2ekvError('MALFORMED', '"recovery" is not an object');
    exactKeys(recovery, ['boxSecret', 'signingSeed'], '"recovery"');
    const { createdAtMs, device, vaults } = json;
    if (typeof createdAtMs !== 'number' || typeof device !== 'string' || !Array.isArray(vaults)) {
      throw new E2ekvError('MALFORMED', 'a field has the wrong type');
    }
    const contents: BackupContents = {
      createdAtMs,
      device,
      recovery: {
        signingSeed: base64Field(recovery['signingSeed'], 'the recovery signing seed'),
        boxSecret: base64Field(recovery['boxSecret'], 'the recovery box secret'),
      },
      vaults: vaults.map((vault: unknown, i) => {
        const access = decodeVaultRecord(vault, `vault ${i}`, ['recoverable', 'role']);
        const { recoverable, role } = vault as Record<string, unknown>;
        if (typeof recoverable !== 'boolean' || !(ROLES as readonly unknown[]).includes(role)) {
          throw new E2ekvError('MALFORMED', `vault ${i} has a field of the wrong type`);
        }
        return { ...access, recoverable, role: role as Role };
      }),
    };
    const problem = contentsProblem(contents);
    if (problem !== undefined) throw new E2ekvError('MALFORMED', problem);
    return contents;
  } catch (error) {
    if (!isE2ekvError(error)) throw error;
    throw malformed(error.message, error);
  }
}

/** The rules both directions share, so that we never seal what we would refuse to open. */
function contentsProblem(contents: BackupContents): string | undefined {
  const { createdAtMs, device, recovery, vaults } = contents;
  if (!Number.isSafeInteger(createdAtMs) || createdAtMs < 0) return 'createdAtMs is not a time in milliseconds';
  try {
    parseIdentityString(device);
  } catch (error) {
    return `the device is not an identity string (${error instanceof Error ? error.message : String(error)})`;
  }
  if (recovery.signingSeed.length !== 32 || recovery.boxSecret.length !== 32) {
    return 'the recovery identity holds a 32-byte signing seed and a 32-byte box secret';
  }
  const ids = new Set<string>();
  const names = new Set<string>();
  for (const [i, v] of vaults.entries()) {
    const problem = vaultProblem(v, i);
    if (problem !== undefined) return problem;
    if (!ROLES.includes(v.role)) return `vault "${v.name}" has an unknown role`;
    if (v.recoverable && v.role !== 'admin') {
      return `vault "${v.name}" is marked recoverable but the device that made the backup was not an admin there`;
    }
    // The backup restores one keystore: names and ids unique, as there.
    if (names.has(v.name)) return `two vaults are named "${v.name}"`;
    if (ids.has(v.vaultId)) return `vault ${v.vaultId} is listed twice`;
    names.add(v.name);
    ids.add(v.vaultId);
  }
  return undefined;
}

function malformed(problem: string, cause?: unknown): E2ekvError {
  // The MAC verified, so whoever knew the passphrase wrote this: a bug or another program.
  return new E2ekvError(
    'MALFORMED',
    `the backup opened but its contents are malformed (${problem}): it was not written by this e2ekv`,
    cause === undefined ? {} : { cause },
  );
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function exactKeys(record: Record<string, unknown>, allowed: readonly string[], what: string): void {
  for (const key of allowed) {
    if (!Object.hasOwn(record, key)) throw new E2ekvError('MALFORMED', `${what} has no "${key}" field`);
  }
  for (const key of Object.keys(record)) {
    if (!allowed.includes(key)) throw new E2ekvError('MALFORMED', `${what} has an unknown field "${key}"`);
  }
}
