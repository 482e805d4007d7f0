/**
 * The entry point of the SDK: a client for one device identity and a set of
 * replicas, which creates and opens vaults.
 */
import {
  E2ekvError,
  KeyNameBlinder,
  bytesEqual,
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
   * false: open from the local store, without a request when it holds the
   * vault (reads at level 'local' see what this device verified before; a
   * vault it never held is found on the replicas, not synced). Default true:
   * sync first.
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
    return { vault: await this.#open(access, true, signedGenesis), access };
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

  async #open(access: VaultAccess, checkReplicas = true, knownGenesis?: Uint8Array): Promise<Vault> {
    if (!/^[0-9a-f]{64}$/.test(access.vaultId) || access.secret.length !== 32) {
      throw new E2ekvError('INVALID_ARGUMENT', 'vault access needs a 64-hex-digit vault id and a 32-byte secret');
    }
    const vaultId = fromHex(access.vaultId);
    const creator = await this.#creatorOf(access.vaultId, checkReplicas, knownGenesis);
    const keys = {
      vaultId,
      epoch: 0,
      valueKeys: new Map([[0, deriveValueKey(access.secret, vaultId, 0)]]),
      blinder: new KeyNameBlinder(deriveBlindingKey(access.secret, vaultId)),
    };
    const vault = new Vault({
      vaultId,
      creator,
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

  /**
   * The vault's creator, where membership replay starts, from its signed
   * genesis: checked against the vault id (the genesis names the vault) before
   * anything else about the vault is trusted. The local store keeps a copy
   * (as the blob named by the vault id) so that a vault opens offline.
   */
  async #creatorOf(vaultIdHex: string, askReplicas: boolean, known?: Uint8Array): Promise<Uint8Array> {
    const check = async (signed: Uint8Array, source: string) => {
      const verified = await verifyGenesis(signed);
      if (toHex(verified.vaultId) !== vaultIdHex) {
        throw new E2ekvError('INTEGRITY', `${source} holds the genesis of another vault`);
      }
      return verified.genesis.creator;
    };
    const stored = await this.#store?.getBlob(vaultIdHex, vaultIdHex);
    let creator = stored === undefined ? undefined : await check(stored, 'the local replica');
    if (known !== undefined) creator ??= await check(known, 'the new vault');
    const failures: unknown[] = [];
    // Without a local copy there is nothing to open offline: ask the replicas for the genesis.
    if (askReplicas || creator === undefined) {
      const states = await Promise.allSettled(this.#replicas.map((r) => r.vaultState(vaultIdHex)));
      for (const [i, state] of states.entries()) {
        if (state.status !== 'fulfilled') {
          failures.push(state.reason);
          continue;
        }
        const served = await check(state.value.genesis, `replica ${this.#replicas[i]!.url}`);
        if (creator !== undefined && !bytesEqual(served, creator)) {
          throw new E2ekvError(
            'INTEGRITY',
            `replica ${this.#replicas[i]!.url} served a genesis that contradicts the vault id`,
          );
        }
        if (creator === undefined) {
          creator = served;
          await this.#store?.putBlob(vaultIdHex, vaultIdHex, state.value.genesis);
        }
      }
    }
    if (known !== undefined && stored === undefined) await this.#store?.putBlob(vaultIdHex, vaultIdHex, known);
    if (creator === undefined) {
      // Unreachable replicas say nothing; any other answer (not found, not a member) is the answer.
      const answer = failures.find((f) => !(f instanceof E2ekvError && f.code === 'UNAVAILABLE'));
      if (answer instanceof E2ekvError && answer.code === 'PERMISSION_DENIED') {
        throw new E2ekvError(
          'PERMISSION_DENIED',
          `this device (${this.deviceId}) is not a member of vault ${vaultIdHex}: an admin must add it first (${answer.message})`,
          { cause: answer },
        );
      }
      if (answer !== undefined) throw answer;
      throw new E2ekvError(
        'UNAVAILABLE',
        `no replica served the genesis of vault ${vaultIdHex}: ${failures.map((f) => String((f as Error).message)).join('; ')}`,
      );
    }
    return creator;
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
