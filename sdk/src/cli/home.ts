/**
 * The CLI's home ($E2EKV_HOME, default ~/.e2ekv): the sealed keystore
 * (keystore.json) and the local replicas (replicas/, ciphertext only). One
 * command at a time uses a home: the local store allows one process per folder
 * and the keystore is rewritten whole, so commands take a lock file first.
 */
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { E2ekvError } from '@e2ekv/protocol';
import { SCRYPT_DEFAULT, openKeystore, sealKeystore, type KeystoreContents, type ScryptParams } from '../keystore.js';
import { readKeystoreFile, writeKeystoreFile } from '../node/keystore-file.js';
import type { CliIo } from './io.js';
import { readPassphrase } from './passphrase.js';

export interface Home {
  dir: string;
  keystoreFile: string;
  replicasDir: string;
}

export function homeOf(io: CliIo): Home {
  const configured = io.env['E2EKV_HOME'];
  const dir = path.resolve(
    configured !== undefined && configured !== '' ? configured : path.join(os.homedir(), '.e2ekv'),
  );
  return { dir, keystoreFile: path.join(dir, 'keystore.json'), replicasDir: path.join(dir, 'replicas') };
}

const LOCK_WAIT_MS = 10_000;

/**
 * Runs `work` holding the home's lock. A lock left by a process that no longer
 * runs (kill -9, power loss) is taken over; a live holder is waited for, then
 * reported.
 */
export async function withHomeLock<T>(home: Home, work: () => Promise<T>): Promise<T> {
  await mkdir(home.dir, { recursive: true, mode: 0o700 });
  const lock = path.join(home.dir, 'lock');
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      const handle = await open(lock, 'wx', 0o600);
      await handle.writeFile(String(process.pid));
      await handle.close();
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = Number.parseInt(await readFile(lock, 'utf8').catch(() => ''), 10);
      if (!Number.isSafeInteger(holder) || holder <= 0 || !alive(holder)) {
        // Removing and re-creating races with another process doing the same; 'wx' lets only one win.
        await rm(lock, { force: true });
        continue;
      }
      if (Date.now() > deadline) {
        throw new E2ekvError(
          'CONFLICT',
          `another e2ekv command (process ${holder}) is using ${home.dir}: wait for it to finish, or stop it`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  try {
    return await work();
  } finally {
    await rm(lock, { force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it runs, as another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * An unlocked keystore and how to save changes to it (re-sealed with the same
 * passphrase); `contents` is what was last read or saved.
 */
export interface Unlocked {
  contents: KeystoreContents;
  save(contents: KeystoreContents): Promise<void>;
}

export async function unlock(home: Home, io: CliIo): Promise<Unlocked> {
  const text = await readKeystoreFile(home.keystoreFile);
  if (text === undefined) {
    throw new E2ekvError('NOT_FOUND', `there is no keystore in ${home.dir}: run e2ekv init first (or set $E2EKV_HOME)`);
  }
  const params = scryptParamsOf(text);
  const passphrase = await readPassphrase(io, `Passphrase for ${home.keystoreFile}: `);
  const unlocked: Unlocked = {
    contents: await openKeystore(text, passphrase),
    save: async (next) => {
      await writeKeystoreFile(home.keystoreFile, await sealKeystore(next, passphrase, params));
      unlocked.contents = next;
    },
  };
  return unlocked;
}

export async function createKeystore(
  home: Home,
  io: CliIo,
  contents: KeystoreContents,
  params: ScryptParams = SCRYPT_DEFAULT,
): Promise<Unlocked> {
  if ((await readKeystoreFile(home.keystoreFile)) !== undefined) {
    throw new E2ekvError(
      'CONFLICT',
      `${home.keystoreFile} already exists: this home has an identity. Use another $E2EKV_HOME, or delete the file if you really mean to lose that identity`,
    );
  }
  const passphrase = await readPassphrase(io, 'New keystore passphrase (six or more random words): ', {
    confirm: true,
  });
  await writeKeystoreFile(home.keystoreFile, await sealKeystore(contents, passphrase, params));
  const unlocked: Unlocked = {
    contents,
    save: async (next) => {
      await writeKeystoreFile(home.keystoreFile, await sealKeystore(next, passphrase, params));
      unlocked.contents = next;
    },
  };
  return unlocked;
}

/** Whether the home has a keystore (checked like unlock reads it: owner-only, a regular file). */
export async function hasKeystore(home: Home): Promise<boolean> {
  return (await readKeystoreFile(home.keystoreFile)) !== undefined;
}

// Re-sealing keeps the parameters the file had (openKeystore refused any below the minimum).
function scryptParamsOf(text: string): ScryptParams {
  try {
    const { kdf } = JSON.parse(text) as { kdf: ScryptParams };
    return { logN: kdf.logN, r: kdf.r, p: kdf.p };
  } catch {
    return SCRYPT_DEFAULT;
  }
}
