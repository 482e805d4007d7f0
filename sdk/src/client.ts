/**
 * The entry point of the SDK: a client for one device identity and a set of
 * replicas, which creates and opens vaults.
 */
import {
  E2ekvError,
  bytesEqual,
  deviceCheckpointSigner,
  formatIdentityString,
  identityFingerprint,
  openInvitation,
  fromHex,
  randomBytes,
  signGenesis,
  toHex,
  vaultIdOf,
  verifyGenesis,
  type Ed25519Signer,
  type Role,
} from '@e2ekv/protocol';
import { HybridLogicalClock } from './clock.js';
import { deviceSigner, publicIdentity, type Identity } from './identity.js';
import { ReplicaTransport } from './transport.js';
import type { LocalStore } from './local/adapter.js';
import { Vault, type VaultSecrets } from './vault.js';

export interface ClientOptions {
  identity: Identity;
  /** Replica base URLs, e.g. http://127.0.0.1:7400. */
  servers: readonly string[];
  /**
   * How requests are sent. Default: in Node, node:http / node:https with
   * keep-alive connections (watch streams use the global fetch); elsewhere, the
   * global fetch.
   */
  fetch?: typeof fetch;
  timeoutMs?: number;
  /** The local replica (memory, file, IndexedDB). Without one, vault state lives in memory and is re-synced. */
  store?: LocalStore;
  /**
   * k of the k-of-n cosigner policy (default 1): another device's entries are
   * applied only once k of this client's replicas have each proved them with a
   * checkpoint they cosigned, and every pull reaches at least k replicas. With
   * k = 2, one lying or compromised replica alone can no longer show this
   * device entries the others never accepted, nor hide a fork from it. Own
   * writes are governed by the ack level instead.
   */
  cosignerQuorum?: number;
}

/**
 * What a device needs to open a vault: its id, the secret of its first key
 * epoch, and the secrets of later epochs it was given by an invitation (those
 * started after it joined it finds in the vault's log, wrapped for it).
 * Secret: whoever holds it reads the vault. Keep `vault.access()` after a
 * sync, which holds every secret the device has learnt.
 */
export type VaultAccess = VaultSecrets;

/** What joining a vault by invitation gives. */
export interface JoinedVault {
  vault: Vault;
  /** Keep it (a keystore does): it opens the vault again. */
  access: VaultAccess;
  /** The inviting admin's device id (hex). */
  inviter: string;
  /** The inviter's fingerprint, to compare with the one the inviter reads out. */
  inviterFingerprint: string;
  /** The role the invitation names, which the vault's own membership entries confirmed. */
  role: Role;
  /** The replica URLs the invitation suggested (a hint). */
  servers: string[];
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
  readonly #cosignerQuorum: number;

  constructor(
    identity: Identity,
    signer: Ed25519Signer,
    replicas: ReplicaTransport[],
    store?: LocalStore,
    cosignerQuorum = 1,
  ) {
    this.#identity = identity;
    this.#signer = signer;
    this.#replicas = replicas;
    this.#store = store;
    this.#cosignerQuorum = cosignerQuorum;
  }

  /**
   * Releases the connections to the replicas (Node's keep-alive sockets) and
   * ends the vaults' watch streams. Requests made after close() fail with
   * UNAVAILABLE (a write with ack 'local' still lands in the local store).
   * Not needed for a Node process to exit: idle connections never hold it.
   */
  close(): void {
    for (const replica of this.#replicas) replica.close();
  }

  /** This device's id (Ed25519 public key, hex). */
  get deviceId(): string {
    return toHex(this.#signer.publicKey);
  }

  get publicIdentity() {
    return publicIdentity(this.#identity);
  }

  /** This device's identity string (SPEC.md 21.1): what another admin pastes to invite it. */
  get identityString(): string {
    return formatIdentityString(this.publicIdentity);
  }

  /** This device's fingerprint, to compare out of band. */
  get fingerprint(): string {
    return identityFingerprint(this.publicIdentity);
  }

  /**
   * Joins a vault by an invitation token: opens the secrets wrapped for this
   * device, syncs, and checks by this device's own replay of the vault's
   * membership that the inviter is an admin who added this device with the
   * role the token names. NOT_FOUND while the add has not reached a replica
   * (try again later); PERMISSION_DENIED for a token made for another device.
   */
  async joinVault(token: string, options: OpenVaultOptions = {}): Promise<JoinedVault> {
    const mine = publicIdentity(this.#identity);
    const opened = await openInvitation(token, { ...mine, boxSecret: this.#identity.boxSecret });
    const first = opened.secrets[0];
    if (first === undefined || first.epoch !== 0) {
      throw new E2ekvError('MALFORMED', 'the invitation carries no secret for epoch 0: ask for a new one');
    }
    const access: VaultAccess = {
      vaultId: toHex(opened.vaultId),
      secret: first.secret,
      epochs: opened.secrets.slice(1),
    };
    let vault: Vault;
    try {
      vault = await this.openVault(access, options);
    } catch (error) {
      if (error instanceof E2ekvError && error.code === 'PERMISSION_DENIED') {
        throw new E2ekvError(
          'NOT_FOUND',
          `the replicas do not let this device in yet: the invitation's membership entry has not reached them, or the invitation was revoked. Try again in a moment (${error.message})`,
          { cause: error },
        );
      }
      throw error;
    }
    const members = vault.members();
    const me = members.find((m) => m.self);
    const inviter = members.find((m) => m.device === toHex(opened.inviter));
    // The inviter first: an add relayed from a device that is no admin must not read as "try again".
    if (inviter === undefined || inviter.role !== 'admin') {
      throw new E2ekvError(
        'PERMISSION_DENIED',
        `the invitation was signed by device ${toHex(opened.inviter)}, which is not an admin of the vault: do not trust it`,
      );
    }
    if (me === undefined) {
      throw new E2ekvError(
        'NOT_FOUND',
        "this device is not a member of the vault yet by the vault's own membership entries: the invitation's add has not reached the replicas, or was revoked. Try again in a moment",
      );
    }
    vault.checkAccessSecrets();
    return {
      vault,
      access: vault.access(),
      inviter: inviter.device,
      inviterFingerprint: inviter.fingerprint,
      role: me.role,
      servers: opened.servers,
    };
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
    const { creator, creatorBoxKey } = await this.#creatorOf(access.vaultId, checkReplicas, knownGenesis);
    const mine = publicIdentity(this.#identity);
    const vault = new Vault({
      vaultId,
      creator,
      creatorBoxKey,
      access,
      me: { ...mine, boxSecret: this.#identity.boxSecret },
      signer: this.#signer,
      device: this.#signer.publicKey,
      checkpointSigner: await deviceCheckpointSigner(this.#identity.signingSeed, vaultId),
      replicas: this.#replicas,
      cosignerQuorum: this.#cosignerQuorum,
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
  async #creatorOf(
    vaultIdHex: string,
    askReplicas: boolean,
    known?: Uint8Array,
  ): Promise<{ creator: Uint8Array; creatorBoxKey: Uint8Array }> {
    // The vault id hashes the whole genesis body, so one id names one creator and one box key.
    const check = async (signed: Uint8Array, source: string) => {
      const verified = await verifyGenesis(signed);
      if (toHex(verified.vaultId) !== vaultIdHex) {
        throw new E2ekvError('INTEGRITY', `${source} holds the genesis of another vault`);
      }
      return { creator: verified.genesis.creator, creatorBoxKey: verified.genesis.creatorBoxKey };
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
        if (creator !== undefined && !bytesEqual(served.creator, creator.creator)) {
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
  const quorum = options.cosignerQuorum ?? 1;
  if (!Number.isInteger(quorum) || quorum < 1 || quorum > replicas.length) {
    throw new E2ekvError(
      'INVALID_ARGUMENT',
      `cosignerQuorum must be a whole number from 1 to the number of replicas (${replicas.length}), got ${String(options.cosignerQuorum)}`,
    );
  }
  return new Client(options.identity, signer, replicas, options.store, quorum);
}
