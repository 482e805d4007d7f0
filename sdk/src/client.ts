/**
 * The entry point of the SDK: a client for one device identity and a set of
 * replicas, which creates and opens vaults.
 */
import {
  E2ekvError,
  KeyNameBlinder,
  deriveBlindingKey,
  deriveValueKey,
  deviceCheckpointSigner,
  fromHex,
  randomBytes,
  signGenesis,
  toHex,
  vaultIdOf,
  verifyGenesis,
  type Ed25519Signer,
} from '@e2ekv/protocol';
import { HybridLogicalClock } from './clock.js';
import { deviceSigner, publicIdentity, type Identity } from './identity.js';
import { ReplicaTransport } from './transport.js';
import type { LocalStore } from './local/adapter.js';
import { Vault } from './vault.js';

export interface ClientOptions {
  identity: Identity;
  /** Replica base URLs, e.g. http://127.0.0.1:7400. */
  servers: readonly string[];
  fetch?: typeof fetch;
  timeoutMs?: number;
  /** The local replica (memory, file, IndexedDB). Without one, vault state lives in memory and is re-synced. */
  store?: LocalStore;
}

/**
 * What a device needs to open a vault: its id and the secret of its first key
 * epoch. Secret: whoever holds it reads the vault. Until invitations exist
 * (sharing), an application moves it between a user's devices itself.
 */
export interface VaultAccess {
  vaultId: string;
  secret: Uint8Array;
}

export interface OpenVaultOptions {
  /**
   * false: open from the local store alone, without a request (reads at level
   * 'local' see what this device verified before). Default true: sync first.
   */
  sync?: boolean;
}

export class Client {
  readonly #identity: Identity;
  readonly #signer: Ed25519Signer;
  readonly #replicas: ReplicaTransport[];
  readonly #store: LocalStore | undefined;

  constructor(identity: Identity, signer: Ed25519Signer, replicas: ReplicaTransport[], store?: LocalStore) {
    this.#identity = identity;
    this.#signer = signer;
    this.#replicas = replicas;
    this.#store = store;
  }

  /** This device's id (Ed25519 public key, hex). */
  get deviceId(): string {
    return toHex(this.#signer.publicKey);
  }

  get publicIdentity() {
    return publicIdentity(this.#identity);
  }

  /** Creates a vault with this device as its admin, on every replica. */
  async createVault(): Promise<{ vault: Vault; access: VaultAccess }> {
    const signedGenesis = await signGenesis(
      {
        createdAtMs: BigInt(Date.now()),
        nonce: randomBytes(16),
        creator: this.#signer.publicKey,
        creatorBoxKey: this.publicIdentity.boxKey,
      },
      this.#signer,
    );
    const vaultId = vaultIdOf(signedGenesis.subarray(0, signedGenesis.length - 64));
    const results = await Promise.allSettled(this.#replicas.map((r) => r.createVault(signedGenesis)));
    if (!results.some((r) => r.status === 'fulfilled')) {
      const reasons = results
        .map((r) => (r.status === 'rejected' ? String((r.reason as Error).message) : ''))
        .join('; ');
      throw new E2ekvError('UNAVAILABLE', `no replica accepted the new vault: ${reasons}`);
    }
    const access = { vaultId: toHex(vaultId), secret: randomBytes(32) };
    return { vault: await this.#open(access), access };
  }

  /**
   * Opens a vault this device can read and syncs it. With a local store, a vault
   * opens from it even when no replica answers (local-first); without one, an
   * unreachable set of replicas is an error.
   */
  async openVault(access: VaultAccess, options: OpenVaultOptions = {}): Promise<Vault> {
    if (options.sync === false) {
      if (this.#store === undefined) {
        throw new E2ekvError('INVALID_ARGUMENT', 'opening a vault without sync needs a local store to open it from');
      }
      return this.#open(access, false);
    }
    const vault = await this.#open(access);
    try {
      await vault.sync();
    } catch (error) {
      const offline = error instanceof E2ekvError && error.code === 'UNAVAILABLE';
      if (!offline || this.#store === undefined || !(await this.#store.listVaults()).includes(access.vaultId))
        throw error;
    }
    return vault;
  }

  async #open(access: VaultAccess, checkReplicas = true): Promise<Vault> {
    if (!/^[0-9a-f]{64}$/.test(access.vaultId) || access.secret.length !== 32) {
      throw new E2ekvError('INVALID_ARGUMENT', 'vault access needs a 64-hex-digit vault id and a 32-byte secret');
    }
    const vaultId = fromHex(access.vaultId);
    // The genesis names the vault: check it before trusting anything about the vault.
    const states = checkReplicas
      ? await Promise.allSettled(this.#replicas.map((r) => r.vaultState(access.vaultId)))
      : [];
    for (const state of states) {
      if (state.status !== 'fulfilled') continue;
      const verified = await verifyGenesis(state.value.genesis);
      if (toHex(verified.vaultId) !== access.vaultId) {
        throw new E2ekvError('INTEGRITY', 'a replica served the genesis of another vault');
      }
    }
    const keys = {
      vaultId,
      epoch: 0,
      valueKeys: new Map([[0, deriveValueKey(access.secret, vaultId, 0)]]),
      blinder: new KeyNameBlinder(deriveBlindingKey(access.secret, vaultId)),
    };
    const vault = new Vault({
      vaultId,
      keys,
      device: this.#signer.publicKey,
      checkpointSigner: await deviceCheckpointSigner(this.#identity.signingSeed, vaultId),
      replicas: this.#replicas,
      clock: new HybridLogicalClock(),
      ...(this.#store === undefined ? {} : { store: this.#store }),
    });
    await vault.restore();
    return vault;
  }
}

export async function createClient(options: ClientOptions): Promise<Client> {
  if (options.servers.length === 0) throw new E2ekvError('INVALID_ARGUMENT', 'a client needs at least one replica URL');
  const signer = await deviceSigner(options.identity);
  const replicas = options.servers.map(
    (url) =>
      new ReplicaTransport({
        url,
        signer,
        ...(options.fetch === undefined ? {} : { fetch: options.fetch }),
        ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
      }),
  );
  return new Client(options.identity, signer, replicas, options.store);
}
