/**
 * Backup files on disk: written whole or not at all, readable by their owner
 * only, and never over an existing file unless asked (an older backup may be
 * the only one that still works).
 */
import { randomBytes } from 'node:crypto';
import { link, lstat, open, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { E2ekvError } from '@e2ekv/protocol';
import { MAX_BACKUP_BYTES } from '../backup.js';

const posix = process.platform !== 'win32';

/** Refuses early, before anything is changed, what writeBackupFile would refuse at the end. */
export async function checkBackupTarget(file: string, force: boolean): Promise<void> {
  const dir = path.dirname(path.resolve(file));
  const dirStat = await stat(dir).catch(() => undefined);
  if (dirStat === undefined || !dirStat.isDirectory()) {
    throw new E2ekvError('NOT_FOUND', `the folder ${dir} does not exist: create it, or write the backup elsewhere`);
  }
  const existing = await lstat(file).catch(() => undefined);
  if (existing === undefined) return;
  if (!force) {
    throw new E2ekvError(
      'CONFLICT',
      `${file} already exists: choose another file name, or add --force to replace it (an older backup stays valid until you remove its recovery device)`,
    );
  }
  if (!existing.isFile()) throw new E2ekvError('INVALID_ARGUMENT', `${file} is not a regular file`);
}

/**
 * Writes the file atomically with mode 0600: a temporary file in the same
 * folder, flushed, then linked to its name (which fails if the name exists:
 * no check-then-write race) or, with `force`, renamed over it.
 */
export async function writeBackupFile(file: string, text: string, force: boolean): Promise<void> {
  const target = path.resolve(file);
  const dir = path.dirname(target);
  const temp = path.join(dir, `.${path.basename(target)}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(temp, 'wx', 0o600);
  try {
    try {
      if (posix) await handle.chmod(0o600);
      await handle.writeFile(text, { encoding: 'utf8' });
      await handle.sync();
    } finally {
      await handle.close();
    }
    if (force) {
      await rename(temp, target);
    } else {
      try {
        await link(temp, target);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'EEXIST') {
          throw new E2ekvError('CONFLICT', `${file} already exists: choose another file name, or add --force`);
        }
        // Some file systems (FAT on a USB stick) have no hard links: check, then rename.
        if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'ENOSYS' && code !== 'EOPNOTSUPP') throw error;
        if ((await lstat(target).catch(() => undefined)) !== undefined) {
          throw new E2ekvError('CONFLICT', `${file} already exists: choose another file name, or add --force`);
        }
        await rename(temp, target);
      }
    }
  } finally {
    await unlink(temp).catch(() => undefined);
  }
  if (posix) {
    const dirHandle = await open(dir, 'r');
    try {
      await dirHandle.sync();
    } finally {
      await dirHandle.close();
    }
  }
}

export async function readBackupFile(file: string): Promise<string> {
  let handle;
  try {
    handle = await open(file, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new E2ekvError('NOT_FOUND', `there is no file ${file}`);
    }
    throw error;
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new E2ekvError('INVALID_ARGUMENT', `${file} is not a regular file`);
    if (info.size > MAX_BACKUP_BYTES) {
      throw new E2ekvError('MALFORMED', `${file} is not an e2ekv backup: it is larger than ${MAX_BACKUP_BYTES} bytes`);
    }
    return await handle.readFile({ encoding: 'utf8' });
  } finally {
    await handle.close();
  }
}
