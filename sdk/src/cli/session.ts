/**
 * What the data commands share: unlock the home, find the named vault, and
 * open it over the file-backed local replica with the vault's replicas (or the
 * ones given with --server for this call).
 */
import { E2ekvError } from '@e2ekv/protocol';
import { createClient, type Client } from '../client.js';
import type { StoredVaultAccess } from '../keystore.js';
import type { LocalStore } from '../local/adapter.js';
import { openFileLocalStore } from '../local/file.js';
import type { Vault } from '../vault.js';
import { type Home, type Unlocked, unlock, withHomeLock } from './home.js';
import type { CliIo } from './io.js';

export interface Session {
  home: Home;
  keystore: Unlocked;
  client: Client;
  store: LocalStore;
  access: StoredVaultAccess;
  servers: string[];
}

export function findVault(keystore: Unlocked, name: string): StoredVaultAccess {
  const access = keystore.contents.vaults.find((v) => v.name === name);
  if (access === undefined) {
    const known = keystore.contents.vaults.map((v) => v.name);
    throw new E2ekvError(
      'NOT_FOUND',
      `there is no vault named "${name}" in this keystore${known.length > 0 ? ` (there is ${known.join(', ')})` : ''}: see e2ekv vault list`,
    );
  }
  return access;
}

export function checkServerUrls(urls: readonly string[]): string[] {
  return urls.map((url) => {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new E2ekvError('INVALID_ARGUMENT', `--server ${url} is not a URL: give one like http://127.0.0.1:7400`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw new E2ekvError('INVALID_ARGUMENT', `--server ${url} is not an http or https URL`);
    }
    return url.replace(/\/+$/, '');
  });
}

/** Runs `work` with the home locked and unlocked and the vault's client ready; closes the store after. */
export async function withVaultSession<T>(
  io: CliIo,
  home: Home,
  vaultName: string,
  serverOverride: readonly string[],
  work: (session: Session) => Promise<T>,
): Promise<T> {
  return withHomeLock(home, async () => {
    const keystore = await unlock(home, io);
    const access = findVault(keystore, vaultName);
    const servers = serverOverride.length > 0 ? checkServerUrls(serverOverride) : access.servers;
    const store = await openFileLocalStore(home.replicasDir);
    try {
      const client = await createClient({ identity: keystore.contents.identity, servers, store });
      return await work({ home, keystore, client, store, access, servers });
    } finally {
      await store.close();
    }
  });
}

/** Opens the session's vault: syncing first, or (sync false) from the local replica alone. */
export function openSessionVault(session: Session, sync: boolean): Promise<Vault> {
  return session.client.openVault({ vaultId: session.access.vaultId, secret: session.access.secret }, { sync });
}
