/**
 * `e2ekv backup export | import`: an encrypted copy of what it takes to get
 * every vault back on a new machine (protocol/SPEC.md section 20.1).
 *
 * Never the device's own key: a restored device must not resume its log. The
 * export enrols a fresh recovery device as an admin of every vault this
 * device administers and keeps that device's keys in the backup; the import
 * makes a brand-new device for its home and has the recovery device add it.
 */
import {
  E2ekvError,
  formatIdentityString,
  identityFingerprint,
  isE2ekvError,
  parseIdentityString,
  toHex,
  type ErrorCode,
  type Role,
} from '@e2ekv/protocol';
import {
  BACKUP_SCRYPT_DEFAULT,
  BACKUP_SCRYPT_MINIMUM,
  backupParams,
  openBackup,
  sealBackup,
  type BackupContents,
  type BackupVault,
} from '../../backup.js';
import { createClient } from '../../client.js';
import { createIdentity, deviceSigner, publicIdentity, type Identity, type PublicIdentity } from '../../identity.js';
import { SCRYPT_DEFAULT, type StoredVaultAccess } from '../../keystore.js';
import { openFileLocalStore } from '../../local/file.js';
import { MemoryLocalStore } from '../../local/memory.js';
import type { LocalStore } from '../../local/adapter.js';
import { ReplicaTransport } from '../../transport.js';
import type { AckLevel, Vault } from '../../vault.js';
import { mergeEpochs, vaultAccessOf, withGainedSecrets } from '../access.js';
import { checkBackupTarget, readBackupFile, writeBackupFile } from '../backup-file.js';
import { type Command, type CommandContext, print } from '../command.js';
import { createKeystore, hasKeystore, type Unlocked, unlock, withHomeLock } from '../home.js';
import { UsageError, write } from '../io.js';
import { readPassphrase } from '../passphrase.js';

const MAX_LOG_N = 20;
const BACKUP_ENV = 'E2EKV_BACKUP_PASSPHRASE';

/** Backups change membership that a restore depends on: a level that leaves the change on one replica is refused. */
function backupAckOf(ctx: CommandContext): AckLevel {
  const value = ctx.values['ack'];
  if (value === undefined) return 'all';
  if (value !== 'quorum' && value !== 'all') {
    throw new UsageError('--ack must be quorum or all: a restore must find the recovery change on the replicas');
  }
  return value;
}

function logNOf(ctx: CommandContext, fallback: number): number {
  const raw = ctx.values['scrypt-log-n'];
  if (raw === undefined) return fallback;
  const logN = Number(raw);
  if (typeof raw !== 'string' || !Number.isInteger(logN) || logN < BACKUP_SCRYPT_MINIMUM.logN || logN > MAX_LOG_N) {
    throw new UsageError(`--scrypt-log-n must be a whole number from ${BACKUP_SCRYPT_MINIMUM.logN} to ${MAX_LOG_N}`);
  }
  return logN;
}

function needed(ack: AckLevel, replicas: number): number {
  return ack === 'all' ? replicas : Math.floor(replicas / 2) + 1;
}

function errorText(error: unknown): { code: ErrorCode; message: string } {
  return isE2ekvError(error)
    ? { code: error.code, message: error.message }
    : { code: 'INTERNAL', message: error instanceof Error ? error.message : String(error) };
}

/**
 * Asks every replica of the vault for its state, as `identity`; fails unless
 * `enough` answer. Returns each answering replica's size of `identity`'s log.
 */
async function askReplicas(
  identity: Identity,
  vaultId: string,
  servers: readonly string[],
  enough: number,
  why: string,
): Promise<Map<string, number>> {
  const signer = await deviceSigner(identity);
  const device = toHex(signer.publicKey);
  const sizes = new Map<string, number>();
  const failures: string[] = [];
  await Promise.all(
    servers.map(async (url) => {
      try {
        const state = await new ReplicaTransport({ url, signer }).vaultState(vaultId);
        sizes.set(url, state.logs.find((l) => l.device === device)?.size ?? 0);
      } catch (error) {
        if (!isE2ekvError(error, 'UNAVAILABLE')) throw error;
        failures.push(`${url}: ${error.message}`);
      }
    }),
  );
  if (sizes.size < enough) {
    throw new E2ekvError(
      'UNAVAILABLE',
      `${why}, and ${sizes.size} of ${servers.length} replicas answered (${enough} needed): ${failures.join('; ')}`,
    );
  }
  return sizes;
}

interface ExportedVault {
  name: string;
  vaultId: string;
  role: Role | null;
  /** added: the recovery device is an admin; pending: added here but not acknowledged; skipped: not exported. */
  recovery: 'added' | 'pending' | 'not-admin' | 'skipped';
  note: string | null;
}

export const backupExport: Command = {
  name: 'backup export',
  args: 'FILE',
  summary: 'write an encrypted backup that restores every vault onto a new device',
  details: [
    'The backup is sealed under its own passphrase (asked twice on a terminal, or taken from',
    '$E2EKV_BACKUP_PASSPHRASE), with scrypt at 256 MiB by default.',
    "It does not hold this device's key: a restored device never continues this device's log.",
    'Instead export makes a new "recovery device", adds it as an admin of every vault where this',
    'device is an admin (written with --ack all by default: every replica must answer), and puts',
    "its keys in the backup, with every vault's secrets and replicas. backup import then uses it to",
    'add the new machine. Vaults where this device is not an admin are exported too, but on the new',
    'machine they need an invitation from one of their admins.',
    'WARNING: the file and its passphrase give full admin access to those vaults. Keep it offline.',
    'Making a new backup does not revoke older ones: each has its own recovery device, which',
    'e2ekv vault remove NAME IDENTITY revokes (the identity is printed here and by backup import).',
  ],
  examples: [
    'e2ekv backup export ~/e2ekv-backup.json',
    'E2EKV_BACKUP_PASSPHRASE="$(pass e2ekv/backup)" e2ekv backup export /media/usb/e2ekv.backup --json',
  ],
  options: { force: { type: 'boolean' }, ack: { type: 'string' }, 'scrypt-log-n': { type: 'string' } },
  optionHelp: [
    ['--force', 'replace FILE if it exists'],
    ['--ack LEVEL', 'all (default) or quorum: how many replicas of each vault must have the recovery device'],
    [
      '--scrypt-log-n N',
      `scrypt cost 2^N (default ${BACKUP_SCRYPT_DEFAULT.logN}, at least ${BACKUP_SCRYPT_MINIMUM.logN}, at most ${MAX_LOG_N})`,
    ],
  ],
  positionals: { min: 1, max: 1 },
  async run(ctx) {
    const file = ctx.positionals[0]!;
    const force = ctx.values['force'] === true;
    const ack = backupAckOf(ctx);
    const params = { ...BACKUP_SCRYPT_DEFAULT, logN: logNOf(ctx, BACKUP_SCRYPT_DEFAULT.logN) };
    await checkBackupTarget(file, force);
    const result = await withHomeLock(ctx.home, async () => {
      const keystore = await unlock(ctx.home, ctx.io);
      // Asked before anything changes, so that a mistyped confirmation leaves the vaults alone.
      const passphrase = await readPassphrase(
        ctx.io,
        "Backup passphrase (six or more random words, not the keystore's): ",
        {
          confirm: true,
          env: BACKUP_ENV,
          what: 'the backup',
        },
      );
      // Checked now, not when sealing: by then the recovery device is enrolled and its key would be lost.
      if (/\p{Cs}/u.test(passphrase)) {
        throw new E2ekvError('INVALID_ARGUMENT', 'the backup passphrase is not valid Unicode text (a lone surrogate)');
      }
      const store = await openFileLocalStore(ctx.home.replicasDir);
      try {
        return await exportVaults(keystore, store, { file, force, ack, params, passphrase });
      } finally {
        await store.close();
      }
    });
    await print(ctx, result, () => exportText(result, file));
    const pending = result.vaults.filter((v) => v.recovery === 'pending');
    if (pending.length > 0) {
      throw new E2ekvError(
        'UNAVAILABLE',
        `the backup is written, but ${pending.map((v) => v.name).join(', ')} did not reach ${ack} of its replicas: ` +
          `run e2ekv sync ${pending[0]!.name} (the change is saved on this device) before relying on the backup for ${pending.length === 1 ? 'that vault' : 'those vaults'}`,
      );
    }
    return 0;
  },
};

interface ExportResult {
  file: string;
  device: { identity: string; fingerprint: string };
  recovery: { device: string; identity: string; fingerprint: string };
  vaults: ExportedVault[];
}

async function exportVaults(
  keystore: Unlocked,
  store: LocalStore,
  options: { file: string; force: boolean; ack: AckLevel; params: typeof SCRYPT_DEFAULT; passphrase: string },
): Promise<ExportResult> {
  const { identity } = keystore.contents;
  const me = publicIdentity(identity);
  const recovery = createIdentity();
  const recoveryPublic = publicIdentity(recovery);
  const report: ExportedVault[] = [];
  const opened: { stored: StoredVaultAccess; vault: Vault; role: Role }[] = [];

  // 1. Open every vault and check the replicas of those to change answer; nothing is written yet.
  for (const stored of keystore.contents.vaults) {
    let vault: Vault;
    try {
      const client = await createClient({ identity, servers: stored.servers, store });
      vault = await client.openVault(vaultAccessOf(stored), { sync: true });
    } catch (error) {
      if (!isE2ekvError(error, 'PERMISSION_DENIED') && !isE2ekvError(error, 'NOT_FOUND')) throw error;
      report.push({ ...skipped(stored), note: `not exported: ${error.message}` });
      continue;
    }
    const role = vault.role;
    if (role === undefined) {
      report.push({ ...skipped(stored), note: 'not exported: this device is no longer a member' });
      continue;
    }
    if (role === 'admin') {
      await askReplicas(
        identity,
        stored.vaultId,
        stored.servers,
        needed(options.ack, stored.servers.length),
        `backup export adds a recovery device to vault ${stored.name}, which needs --ack ${options.ack}; nothing was changed`,
      );
    }
    opened.push({ stored, vault, role });
  }

  // 2. Enrol the recovery device where this device is an admin.
  const vaults: BackupVault[] = [];
  for (const { stored, vault, role } of opened) {
    let recoveryState: ExportedVault['recovery'] = role === 'admin' ? 'added' : 'not-admin';
    let note: string | null = null;
    if (role === 'admin') {
      try {
        await vault.addMember(recoveryPublic, 'admin', { ack: options.ack });
      } catch (error) {
        // Saved on this device, not acknowledged: the backup still works once a sync sends it.
        if (!isE2ekvError(error, 'UNAVAILABLE')) throw error;
        recoveryState = 'pending';
        note = error.message;
      }
    }
    const access = vault.access();
    const epochs = mergeEpochs(stored.epochs, access.epochs);
    vaults.push({
      name: stored.name,
      vaultId: stored.vaultId,
      secret: stored.secret,
      servers: [...stored.servers],
      ...(epochs.length === 0 ? {} : { epochs }),
      role,
      recoverable: role === 'admin',
    });
    report.push({ name: stored.name, vaultId: stored.vaultId, role, recovery: recoveryState, note });
    // The keystore keeps what the vault taught this device, as after any command.
    const gained = withGainedSecrets(stored, access);
    if (gained !== undefined) {
      await keystore.save({
        ...keystore.contents,
        vaults: keystore.contents.vaults.map((v) => (v.vaultId === stored.vaultId ? gained : v)),
      });
    }
  }

  // 3. Seal and write. The recovery keys exist nowhere else: a failure here is reported with what to undo.
  const contents: BackupContents = {
    createdAtMs: Date.now(),
    device: formatIdentityString(me),
    recovery,
    vaults,
  };
  const recoveryIdentity = formatIdentityString(recoveryPublic);
  try {
    await writeBackupFile(options.file, await sealBackup(contents, options.passphrase, options.params), options.force);
  } catch (error) {
    const added = report.filter((v) => v.recovery === 'added' || v.recovery === 'pending').map((v) => v.name);
    if (added.length > 0 && error instanceof Error) {
      error.message +=
        `. The recovery device was already added to ${added.join(', ')} and its key is lost with this failure: ` +
        `remove it (e2ekv vault remove NAME ${recoveryIdentity}) and export again`;
    }
    throw error;
  }
  return {
    file: options.file,
    device: { identity: contents.device, fingerprint: identityFingerprint(me) },
    recovery: {
      device: toHex(recoveryPublic.signingKey),
      identity: recoveryIdentity,
      fingerprint: identityFingerprint(recoveryPublic),
    },
    vaults: report,
  };
}

function skipped(stored: StoredVaultAccess): ExportedVault {
  return { name: stored.name, vaultId: stored.vaultId, role: null, recovery: 'skipped', note: null };
}

function exportText(result: ExportResult, file: string): string {
  const recoverable = result.vaults.filter((v) => v.recovery === 'added' || v.recovery === 'pending');
  const lines = [`Wrote the backup ${file} (mode 0600).`];
  if (result.vaults.length === 0) lines.push('This keystore has no vaults: the backup restores none.');
  for (const v of result.vaults) {
    const what = {
      added: 'restorable: the recovery device is an admin',
      pending: 'restorable after e2ekv sync: the recovery device is added here but no replica acknowledged it yet',
      'not-admin': `exported (secrets and replicas); this device is a ${v.role ?? 'member'}, so a new device needs an admin's invite`,
      skipped: 'NOT exported',
    }[v.recovery];
    lines.push(`  ${v.name}: ${what}${v.note === null ? '' : ` (${v.note})`}`);
  }
  lines.push(
    '',
    `Recovery device of this backup: fingerprint ${result.recovery.fingerprint}`,
    `  ${result.recovery.identity}`,
    'WARNING: this file with its passphrase is an admin key to the vaults above. Keep it offline and',
    'apart from the passphrase. A new backup does not revoke this one; to revoke it, remove its',
    'recovery device from each vault:',
    ...recoverable.map((v) => `  e2ekv vault remove ${v.name} ${result.recovery.identity}`),
    'To restore on a new machine: E2EKV_HOME=... e2ekv backup import FILE',
    '',
  );
  return lines.join('\n');
}

interface ImportedVault {
  name: string;
  vaultId: string;
  status: 'restored' | 'already-member' | 'needs-invite' | 'failed';
  role: Role | null;
  keys: number | null;
  /** Whether the device that made the backup is still a member (then the remove command is printed). */
  oldDeviceMember: boolean | null;
  error: { code: ErrorCode; message: string } | null;
}

interface ImportResult {
  home: string;
  device: { device: string; identity: string; fingerprint: string };
  oldDevice: { device: string; identity: string; fingerprint: string };
  recovery: { device: string; identity: string; fingerprint: string };
  createdAtMs: number;
  vaults: ImportedVault[];
}

export const backupImport: Command = {
  name: 'backup import',
  args: 'FILE',
  summary: 'restore the vaults of a backup onto this home, as a new device',
  details: [
    "Makes a new device identity and keystore for this home (its passphrase asked like init's),",
    'opens the backup (its passphrase from a terminal or $E2EKV_BACKUP_PASSPHRASE), and for every',
    "vault the backup can restore: syncs it as the backup's recovery device, which then adds this new",
    'device as an admin (--ack all by default), and keeps the vault in the new keystore. The device',
    'that made the backup keeps its own key and log, untouched: remove it if it is lost (the exact',
    'commands are printed). Vaults where that device was not an admin are kept in the keystore but',
    'need an invitation from one of their admins (e2ekv vault join TOKEN updates them).',
    "Refuses a home that has a keystore, unless --merge: then the home's own device is added.",
    'Do not run two imports of one backup at the same time: the recovery device would write two',
    'different entries at one place of its log, which every replica and member reports as',
    'equivocation (the backup is then unusable: make a new one).',
  ],
  examples: [
    'e2ekv backup import /media/usb/e2ekv.backup',
    'E2EKV_HOME=~/restored E2EKV_BACKUP_PASSPHRASE="$(pass e2ekv/backup)" e2ekv backup import backup.json --json',
    'e2ekv backup import backup.json --merge',
  ],
  options: { merge: { type: 'boolean' }, ack: { type: 'string' }, 'scrypt-log-n': { type: 'string' } },
  optionHelp: [
    ['--merge', "add the backup's vaults to this home's existing keystore and device"],
    ['--ack LEVEL', 'all (default) or quorum: how many replicas must have the new device before it is used'],
    ['--scrypt-log-n N', `scrypt cost of the new keystore (default ${SCRYPT_DEFAULT.logN}, as e2ekv init)`],
  ],
  positionals: { min: 1, max: 1 },
  async run(ctx) {
    const file = ctx.positionals[0]!;
    const merge = ctx.values['merge'] === true;
    const ack = backupAckOf(ctx);
    const keystoreLogN = logNOf(ctx, SCRYPT_DEFAULT.logN);
    const result = await withHomeLock(ctx.home, async () => {
      const existing = await hasKeystore(ctx.home);
      if (existing && !merge) {
        throw new E2ekvError(
          'CONFLICT',
          `${ctx.home.keystoreFile} already exists: restore into a new home (set $E2EKV_HOME to an empty folder), or add --merge to add the backup's vaults to this home's device`,
        );
      }
      const text = await readBackupFile(file);
      backupParams(text); // a damaged or downgraded file is refused before any passphrase is asked
      const passphrase = await readPassphrase(ctx.io, `Passphrase of the backup ${file}: `, {
        env: BACKUP_ENV,
        what: 'the backup',
      });
      const backup = await openBackup(text, passphrase);
      const keystore = existing
        ? await unlock(ctx.home, ctx.io)
        : await createKeystore(
            ctx.home,
            ctx.io,
            { identity: createIdentity(), vaults: [] },
            {
              ...SCRYPT_DEFAULT,
              logN: keystoreLogN,
            },
          );
      const store = await openFileLocalStore(ctx.home.replicasDir);
      try {
        return await importVaults(ctx, keystore, store, backup, ack);
      } finally {
        await store.close();
      }
    });
    await print(ctx, result, () => importText(result));
    const failed = result.vaults.find((v) => v.error !== null);
    if (failed?.error) {
      throw new E2ekvError(failed.error.code, `vault ${failed.name} was not restored: ${failed.error.message}`);
    }
    return 0;
  },
};

async function importVaults(
  ctx: CommandContext,
  keystore: Unlocked,
  store: LocalStore,
  backup: BackupContents,
  ack: AckLevel,
): Promise<ImportResult> {
  const { identity } = keystore.contents;
  const me = publicIdentity(identity);
  const myDevice = toHex(me.signingKey);
  const old = parseIdentityString(backup.device);
  const oldDevice = toHex(old.signingKey);
  const recoveryPublic = publicIdentity(backup.recovery);
  if (myDevice === oldDevice) {
    throw new E2ekvError(
      'CONFLICT',
      'this home is the device that made the backup: it has its vaults already. Import into a new home',
    );
  }
  // Every name is checked before anything changes.
  for (const v of backup.vaults) {
    if (keystore.contents.vaults.some((k) => k.name === v.name && k.vaultId !== v.vaultId)) {
      throw new E2ekvError(
        'CONFLICT',
        `this keystore has another vault named "${v.name}": import into a new home, or rename neither and restore elsewhere`,
      );
    }
  }
  // The backup's access goes into the keystore first: if the import stops half-way, what it did
  // (this device added somewhere) is never left without the keys to use it; --merge resumes.
  const record = (v: BackupVault, previous: StoredVaultAccess | undefined): StoredVaultAccess => {
    const epochs = mergeEpochs(previous?.epochs, v.epochs);
    return {
      name: v.name,
      vaultId: v.vaultId,
      secret: v.secret,
      servers: previous?.servers ?? [...v.servers],
      ...(epochs.length === 0 ? {} : { epochs }),
    };
  };
  const merged = [
    ...keystore.contents.vaults.map((k) => {
      const v = backup.vaults.find((b) => b.vaultId === k.vaultId);
      return v === undefined ? k : record(v, k);
    }),
    ...backup.vaults
      .filter((v) => !keystore.contents.vaults.some((k) => k.vaultId === v.vaultId))
      .map((v) => record(v, undefined)),
  ];
  await keystore.save({ ...keystore.contents, vaults: merged });

  const results: ImportedVault[] = [];
  for (const v of backup.vaults) {
    const base = { name: v.name, vaultId: v.vaultId, keys: null, oldDeviceMember: null, error: null };
    if (!v.recoverable) {
      results.push({ ...base, status: 'needs-invite', role: v.role });
      continue;
    }
    try {
      results.push({ ...base, ...(await restoreVault(keystore, store, backup.recovery, me, v, oldDevice, ack)) });
    } catch (error) {
      results.push({ ...base, status: 'failed', role: null, error: errorText(error) });
      if (isE2ekvError(error) && error.category === 'integrity') {
        await write(ctx.io.stderr, `e2ekv: INTEGRITY VIOLATION while restoring ${v.name}: ${error.message}\n`);
      }
    }
  }
  return {
    home: ctx.home.dir,
    device: { device: myDevice, identity: formatIdentityString(me), fingerprint: identityFingerprint(me) },
    oldDevice: { device: oldDevice, identity: backup.device, fingerprint: identityFingerprint(old) },
    recovery: {
      device: toHex(recoveryPublic.signingKey),
      identity: formatIdentityString(recoveryPublic),
      fingerprint: identityFingerprint(recoveryPublic),
    },
    createdAtMs: backup.createdAtMs,
    vaults: results,
  };
}

/**
 * One vault: as the recovery device (its log in memory only, adopted from the
 * replicas), sync, check it may still act, add this device; then open the vault
 * as this device, from its own local replica, to show it reads.
 */
async function restoreVault(
  keystore: Unlocked,
  store: LocalStore,
  recovery: Identity,
  me: PublicIdentity,
  v: BackupVault,
  oldDevice: string,
  ack: AckLevel,
): Promise<Pick<ImportedVault, 'status' | 'role' | 'keys' | 'oldDeviceMember'>> {
  const myDevice = toHex(me.signingKey);
  const recoveryClient = await createClient({ identity: recovery, servers: v.servers, store: new MemoryLocalStore() });
  const notAdmin = (now: string) =>
    new E2ekvError(
      'PERMISSION_DENIED',
      `this backup's recovery device ${now} (it was removed, or the export's change never reached a replica): ask an admin of the vault for an invitation`,
    );
  const asRecovery = await recoveryClient.openVault(vaultAccessOf(v), { sync: true }).catch((error: unknown) => {
    throw isE2ekvError(error, 'PERMISSION_DENIED') ? notAdmin('is not a member of the vault') : error;
  });
  if (asRecovery.role !== 'admin') {
    throw notAdmin(
      asRecovery.role === undefined ? 'is not a member of the vault' : `is only a ${asRecovery.role} of the vault`,
    );
  }
  const members = asRecovery.members();
  const oldDeviceMember = members.some((m) => m.device === oldDevice);
  let status: ImportedVault['status'] = 'already-member';
  if (!members.some((m) => m.device === myDevice)) {
    // The recovery device writes only right after a full sync, and only when every replica answered
    // and none holds more of its log than it verified: so it never writes at an index a replica
    // it could not reach may already hold (which would fork its log). Two imports at once still can.
    const sizes = await askReplicas(
      recovery,
      v.vaultId,
      v.servers,
      v.servers.length,
      `restoring vault ${v.name} writes as the recovery device, which needs every replica to answer first (so that it never writes over an entry only an unreachable replica holds)`,
    );
    const held =
      asRecovery.status().logs.find((l) => l.device === toHex(publicIdentity(recovery).signingKey))?.entries ?? 0;
    for (const [url, size] of sizes) {
      if (size > held) {
        throw new E2ekvError(
          'CONFLICT',
          `replica ${url} holds ${size} entries of the recovery device's log, more than the ${held} this import verified: another import of this backup is running. Wait for it, then run this one again with --merge`,
        );
      }
    }
    await asRecovery.addMember(me, 'admin', { ack });
    status = 'restored';
  }
  // This device's own view, from its own local replica: the vault reads, and the keystore keeps every secret.
  const stored = keystore.contents.vaults.find((k) => k.vaultId === v.vaultId)!;
  const epochs = mergeEpochs(stored.epochs, asRecovery.access().epochs);
  const client = await createClient({ identity: keystore.contents.identity, servers: stored.servers, store });
  const mine = await client.openVault(vaultAccessOf({ ...stored, ...(epochs.length === 0 ? {} : { epochs }) }), {
    sync: true,
  });
  const gained = withGainedSecrets(stored, {
    vaultId: stored.vaultId,
    secret: stored.secret,
    epochs: mergeEpochs(epochs, mine.access().epochs),
  });
  if (gained !== undefined) {
    await keystore.save({
      ...keystore.contents,
      vaults: keystore.contents.vaults.map((k) => (k === stored ? gained : k)),
    });
  }
  return { status, role: mine.role ?? null, keys: mine.status().keys, oldDeviceMember };
}

function keysText(keys: number | null): string {
  return keys === 1 ? '1 key' : `${keys ?? 0} keys`;
}

function importText(result: ImportResult): string {
  const lines = [
    `Restored into ${result.home} as a new device (the backup was made ${new Date(result.createdAtMs).toISOString()}):`,
    `  device      ${result.device.device}`,
    `  identity    ${result.device.identity}`,
    `  fingerprint ${result.device.fingerprint}`,
    'Vaults:',
  ];
  for (const v of result.vaults) {
    const what = {
      restored: `restored: this device is an admin now (${keysText(v.keys)})`,
      'already-member': `restored: this device was a member already (${keysText(v.keys)})`,
      'needs-invite': `kept, but the device that made the backup was a ${v.role ?? 'member'}: ask an admin to run\n      e2ekv vault invite ${v.name} --to ${result.device.identity}${v.role === null ? '' : ` --role ${v.role}`}\n    then run e2ekv vault join TOKEN`,
      failed: `NOT restored: ${v.error?.message ?? 'unknown error'}`,
    }[v.status];
    lines.push(`  ${v.name}: ${what}`);
  }
  const stillMember = result.vaults.filter((v) => v.oldDeviceMember === true);
  lines.push(
    '',
    `The device that made the backup (fingerprint ${result.oldDevice.fingerprint}):`,
    `  ${result.oldDevice.identity}`,
  );
  if (stillMember.length > 0) {
    lines.push(
      'If that device is lost or was stolen, revoke it (its log is left as it was; this device never writes to it):',
      ...stillMember.map((v) => `  e2ekv vault remove ${v.name} ${result.oldDevice.identity}`),
    );
  }
  const restored = result.vaults.filter((v) => v.status === 'restored' || v.status === 'already-member');
  lines.push(
    '',
    `The backup's recovery device (fingerprint ${result.recovery.fingerprint}) is still an admin: the backup file`,
    'still gives full access. Once this device works, make a new backup (e2ekv backup export) and revoke this one:',
    ...restored.map((v) => `  e2ekv vault remove ${v.name} ${result.recovery.identity}`),
    '',
  );
  return lines.join('\n');
}
