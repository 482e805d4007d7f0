/**
 * The replica's own Ed25519 key, made on first start and kept in the data
 * directory (mode 0600). It cosigns checkpoints and is the audience devices
 * sign requests for; losing it means clients see a new replica.
 */
import { randomBytes } from 'node:crypto';
import { chmod, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { E2ekvError, ed25519PublicKeyFromSeed, fromHex, toHex } from '@e2ekv/protocol';

export interface ServerKey {
  seed: Uint8Array;
  publicKey: Uint8Array;
}

const FILE = 'server-key.json';

export async function loadOrCreateServerKey(dataDir: string): Promise<ServerKey> {
  const file = path.join(dataDir, FILE);
  let text: string | undefined;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  if (text !== undefined) {
    let seed: Uint8Array;
    try {
      seed = fromHex((JSON.parse(text) as { seed: string }).seed);
    } catch (cause) {
      throw new E2ekvError(
        'MALFORMED',
        `${file} is damaged: restore it from a backup, or move it away to start as a new replica`,
        { cause },
      );
    }
    if (seed.length !== 32) throw new E2ekvError('MALFORMED', `${file} does not hold a 32-byte seed`);
    return { seed, publicKey: ed25519PublicKeyFromSeed(seed) };
  }
  const seed = new Uint8Array(randomBytes(32));
  const publicKey = ed25519PublicKeyFromSeed(seed);
  // Write then rename, so a crash never leaves a half-written key.
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, JSON.stringify({ seed: toHex(seed), publicKey: toHex(publicKey) }) + '\n', {
    mode: 0o600,
  });
  await chmod(temporary, 0o600);
  await rename(temporary, file);
  return { seed, publicKey };
}
