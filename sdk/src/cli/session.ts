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
import { vaultAccessOf, withGainedSecrets } from './access.js';
import { type Home, type Unlocked, unlock, withHomeLock } from './home.js';
import type { CliIo } from './io.js';

export interface Session {
  home: Home;
  keystore: Unlocked;
  client: Client;
  store: LocalStore;
  access: StoredVaultAccess;
  servers: string[];
  /** Vaults opened in this session: the secrets they learnt are kept when it ends (keepSecrets). */
  opened: Vault[];
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

/**
 * Runs `work` with the home locked and unlocked and the vault's client ready;
 * then keeps in the keystore any key-epoch secret an opened vault learnt; closes
 * the store.
 */
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
      const session: Session = { home, keystore, client, store, access, servers, opened: [] };
      let result: T;
      try {
        result = await work(session);
      } catch (error) {
        // Secrets learnt from verified epoch records are worth keeping even when the command failed later.
        await keepSecrets(session).catch(() => undefined);
        throw error;
      }
      await keepSecrets(session);
      return result;
    } finally {
      await store.close();
    }
  });
}

/** Opens the session's vault: syncing first, or (sync false) from the local replica alone. */
export async function openSessionVault(session: Session, sync: boolean): Promise<Vault> {
  const vault = await session.client.openVault(vaultAccessOf(session.access), { sync });
  session.opened.push(vault);
  return vault;
}

/**
 * Saves into the keystore the key-epoch secrets the session's vaults hold and
 * the keystore does not: a new epoch this device started (vault remove), or
 * one it unwrapped from another admin's epoch record in the log.
 *
 * The local replica keeps those records, so this is not needed to read again
 * tomorrow; it makes the keystore (and so a backup made from it) hold every
 * secret by itself. The local replica is a cache the CLI tells people to delete
 * when it is damaged, and a device removed since can no longer fetch the
 * records again; logs may also be compacted one day (SPEC.md open question 8).
 * It costs one scrypt derivation, only when a secret was gained.
 */
export async function keepSecrets(session: Session): Promise<void> {
  for (const vault of session.opened) {
    const current = session.keystore.contents.vaults.find(
      (v) => v.name === session.access.name && v.vaultId === vault.id,
    );
    if (current === undefined) continue;
    const gained = withGainedSecrets(current, vault.access());
    if (gained === undefined) continue;
    const contents = session.keystore.contents;
    await session.keystore.save({
      ...contents,
      vaults: contents.vaults.map((v) => (v === current ? gained : v)),
    });
    session.access = gained;
  }
}
