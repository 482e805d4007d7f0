/**
 * The keystore on disk (Node only). The text is already sealed (keystore.ts);
 * these helpers keep it private to its owner and never leave a half-written
 * file where a keystore was, since losing it loses the device's identity.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { E2ekvError } from '@e2ekv/protocol';

// Windows has no POSIX permission bits: fs reports 0o666 for every writable file.
const posix = process.platform !== 'win32';

/** The sealed keystore text, or undefined if there is no file. */
export async function readKeystoreFile(file: string): Promise<string | undefined> {
  let handle: FileHandle;
  try {
    handle = await open(file, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    // fstat on the open handle, so the file checked is the file read.
    const stat = await handle.stat();
    if (!stat.isFile()) {
      throw new E2ekvError('INVALID_ARGUMENT', `the keystore path ${file} is not a regular file`);
    }
    if (posix && (stat.mode & 0o077) !== 0) {
      // Sealed or not, a copy others can read is one they can guess passphrases against offline.
      throw new E2ekvError('PERMISSION_DENIED', `the keystore file ${file} is readable by other users: chmod 600 it`);
    }
    return await handle.readFile({ encoding: 'utf8' });
  } finally {
    await handle.close();
  }
}

/**
 * Replaces the keystore atomically: a crash leaves either the old file or the
 * new one. The directory is created 0700 if missing; an existing directory's
 * mode is left alone (it may be the user's home).
 */
export async function writeKeystoreFile(file: string, text: string): Promise<void> {
  const dir = path.dirname(path.resolve(file));
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // Same directory, so the rename cannot cross file systems; a random name, so writers do not collide.
  const temp = path.join(dir, `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  // 'wx': never follow or reuse something already at the temporary name.
  const handle = await open(temp, 'wx', 0o600);
  let renamed = false;
  try {
    try {
      // The umask can only clear bits; chmod makes the mode exactly 0600 whatever it is.
      if (posix) await handle.chmod(0o600);
      await handle.writeFile(text, { encoding: 'utf8' });
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, file);
    renamed = true;
  } finally {
    if (!renamed) await unlink(temp).catch(() => undefined);
  }
  // The rename is durable only once the directory entry is: fsync the directory (not possible on Windows).
  if (posix) {
    const dirHandle = await open(dir, 'r');
    try {
      await dirHandle.sync();
    } finally {
      await dirHandle.close();
    }
  }
}
