/**
 * Invitations (SPEC.md section 21.4): the token an admin hands a new member,
 * carrying the vault's epoch secrets wrapped for the invitee's box key and
 * signed by the inviter.
 *
 * The token only delivers keys. Whether the invitee is a member is decided by
 * the vault's log (the admin's `add` entry), which the invitee replays itself;
 * the role and servers here are what the inviter says, shown to the person
 * before joining.
 */
import {
  ByteReader,
  ByteWriter,
  bytesEqual,
  compareBytes,
  fromBase64Url,
  fromUtf8,
  toBase64Url,
  utf8,
  wipe,
} from './bytes.js';
import {
  assertEnrollableEd25519Key,
  ED25519_PUBLIC_KEY_LENGTH,
  ED25519_SIGNATURE_LENGTH,
  ed25519Verify,
  type Ed25519Signer,
} from './crypto/ed25519.js';
import { EPOCH_SECRET_LENGTH, VAULT_ID_LENGTH } from './crypto/kdf.js';
import {
  newEphemeralKeyPair,
  unwrapSecret,
  WRAP_OVERHEAD,
  wrapSecret,
  wrapSecretWithNonce,
  x25519PublicKey,
  X25519_KEY_LENGTH,
  type WrapContext,
  type X25519KeyPair,
} from './crypto/wrap.js';
import { ROLE_CODES, roleFromCode, type Role } from './entry.js';
import { E2ekvError } from './errors.js';
import type { PublicDeviceKeys } from './identity-string.js';
import { LIMITS } from './limits.js';

export const INVITATION_TOKEN_PREFIX = 'e2ekv-invite1-';
/** The HKDF label of the secrets an invitation wraps (SPEC.md 21.4). */
export const INVITATION_WRAP_LABEL = 'e2ekv/v1 invitation';

const INVITATION_TAG = utf8('e2ekv/v1/invitation\0');
const SECRET_RECORD_LENGTH = 4 + EPOCH_SECRET_LENGTH;
/** The most (epoch, secret) pairs whose wrap fits the vec16 `sealed` field. */
export const MAX_INVITATION_SECRETS = Math.floor((0xffff - WRAP_OVERHEAD - 2) / SECRET_RECORD_LENGTH);
// The longest body the limits allow, so a token is length-checked before decoding.
const MAX_INVITATION_BYTES =
  INVITATION_TAG.length +
  VAULT_ID_LENGTH +
  3 * ED25519_PUBLIC_KEY_LENGTH +
  1 +
  X25519_KEY_LENGTH +
  2 +
  0xffff +
  1 +
  LIMITS.maxInvitationServers * (2 + LIMITS.maxInvitationServerBytes) +
  ED25519_SIGNATURE_LENGTH;
const MAX_TOKEN_LENGTH = INVITATION_TOKEN_PREFIX.length + Math.ceil((MAX_INVITATION_BYTES * 8) / 6);

export interface EpochSecret {
  epoch: number;
  secret: Uint8Array;
}

export interface CreateInvitationOptions {
  vaultId: Uint8Array;
  /** The inviting admin's signer; its public key is the `inviter`. */
  inviter: Ed25519Signer;
  invitee: PublicDeviceKeys;
  /** The role of the admin's `add` entry for the invitee. */
  role: Role;
  /** Every epoch secret the inviter holds, epoch 0 included; sorted here. */
  secrets: readonly EpochSecret[];
  /** Replica URLs: a hint for where to sync from. */
  servers: readonly string[];
}

/** What an invitation says, its signature verified; no secrets. */
export interface InvitationInfo {
  vaultId: Uint8Array;
  inviter: Uint8Array;
  invitee: PublicDeviceKeys;
  role: Role;
  servers: string[];
}

export interface OpenedInvitation {
  vaultId: Uint8Array;
  inviter: Uint8Array;
  role: Role;
  servers: string[];
  /** Ascending by (epoch, secret); one epoch may have several (SPEC.md 21.3). */
  secrets: EpochSecret[];
}

/** The wrap context of an invitation: extra = the invitee's Ed25519 key. */
function invitationWrapContext(vaultId: Uint8Array, invitee: Uint8Array): WrapContext {
  return { vaultId, label: INVITATION_WRAP_LABEL, extra: invitee };
}

/** Seals the epoch secrets for the invitee, signs the invitation and returns its token. */
export async function createInvitation(options: CreateInvitationOptions): Promise<string> {
  const ephemeral = newEphemeralKeyPair();
  try {
    return await buildInvitation(options, ephemeral, (plaintext, boxKey, context) =>
      wrapSecret(plaintext, boxKey, ephemeral, context),
    );
  } finally {
    wipe(ephemeral.secretKey);
  }
}

/**
 * createInvitation with a given ephemeral secret and nonce. Only for
 * reproducible test vectors. Not exported from the package.
 */
export async function createInvitationDeterministic(
  options: CreateInvitationOptions,
  ephemeralSecret: Uint8Array,
  nonce: Uint8Array,
): Promise<string> {
  const ephemeral: X25519KeyPair = { publicKey: x25519PublicKey(ephemeralSecret), secretKey: ephemeralSecret };
  return buildInvitation(options, ephemeral, (plaintext, boxKey, context) =>
    wrapSecretWithNonce(plaintext, boxKey, ephemeral, context, nonce),
  );
}

async function buildInvitation(
  options: CreateInvitationOptions,
  ephemeral: X25519KeyPair,
  wrap: (plaintext: Uint8Array, boxKey: Uint8Array, context: WrapContext) => Uint8Array,
): Promise<string> {
  const { vaultId, inviter, invitee } = options;
  if (vaultId.length !== VAULT_ID_LENGTH) throw new E2ekvError('INVALID_ARGUMENT', 'a vault id is 32 bytes');
  if (invitee.boxKey.length !== X25519_KEY_LENGTH) {
    throw new E2ekvError('INVALID_ARGUMENT', "the invitee's X25519 key is 32 bytes");
  }
  assertEnrollableEd25519Key(invitee.signingKey);
  if (invitee.boxKey.every((b) => b === 0)) throw new E2ekvError('BAD_KEY', "the invitee's X25519 key is all zero");
  const servers = options.servers.map((s) => utf8(s));
  checkServers(servers, 'INVALID_ARGUMENT');
  const secrets = [...options.secrets].sort(compareSecrets);
  const plaintext = encodeSecrets(secrets);
  let sealed: Uint8Array;
  try {
    sealed = wrap(plaintext, invitee.boxKey, invitationWrapContext(vaultId, invitee.signingKey));
  } finally {
    wipe(plaintext);
  }
  const w = new ByteWriter()
    .bytes(INVITATION_TAG)
    .fixed(vaultId, VAULT_ID_LENGTH, 'vault id')
    .fixed(inviter.publicKey, ED25519_PUBLIC_KEY_LENGTH, 'inviter key')
    .fixed(invitee.signingKey, ED25519_PUBLIC_KEY_LENGTH, 'invitee key')
    .fixed(invitee.boxKey, X25519_KEY_LENGTH, 'invitee box key')
    .u8(ROLE_CODES[options.role])
    .fixed(ephemeral.publicKey, X25519_KEY_LENGTH, 'ephemeral key')
    .vec16(sealed, 'sealed secrets')
    .u8(servers.length);
  for (const server of servers) w.vec16(server, 'server URL');
  const body = w.finish();
  const signature = await inviter.sign(body);
  return INVITATION_TOKEN_PREFIX + toBase64Url(new ByteWriter().bytes(body).bytes(signature).finish());
}

/** Parses a token and verifies its signature, for showing who invites to what. */
export async function readInvitation(token: string): Promise<InvitationInfo> {
  const parsed = await parseInvitation(token);
  return {
    vaultId: parsed.vaultId,
    inviter: parsed.inviter,
    invitee: parsed.invitee,
    role: parsed.role,
    servers: parsed.servers,
  };
}

/**
 * Verifies a token and opens the secrets it carries for `me`. PERMISSION_DENIED
 * when it was made for another device. The caller still has to check, by
 * replaying the vault, that the inviter is an admin, that `me` was added with
 * this role, and each secret of epoch >= 1 against check(e) (SPEC.md 21.4).
 */
export async function openInvitation(
  token: string,
  me: { signingKey: Uint8Array; boxKey: Uint8Array; boxSecret: Uint8Array },
): Promise<OpenedInvitation> {
  const parsed = await parseInvitation(token);
  if (!bytesEqual(parsed.invitee.signingKey, me.signingKey) || !bytesEqual(parsed.invitee.boxKey, me.boxKey)) {
    throw new E2ekvError(
      'PERMISSION_DENIED',
      'this invitation is for another device: ask the inviter for one made out to your identity string',
    );
  }
  const plaintext = unwrapSecret(
    parsed.sealed,
    parsed.ephemeral,
    me,
    invitationWrapContext(parsed.vaultId, me.signingKey),
  );
  try {
    return {
      vaultId: parsed.vaultId,
      inviter: parsed.inviter,
      role: parsed.role,
      servers: parsed.servers,
      secrets: decodeSecrets(plaintext),
    };
  } finally {
    wipe(plaintext);
  }
}

interface ParsedInvitation extends InvitationInfo {
  ephemeral: Uint8Array;
  sealed: Uint8Array;
}

async function parseInvitation(token: string): Promise<ParsedInvitation> {
  if (!token.startsWith(INVITATION_TOKEN_PREFIX)) {
    if (/^e2ekv-invite[0-9]+-/.test(token)) {
      throw new E2ekvError('UNSUPPORTED_VERSION', 'this invitation is for another version of e2ekv');
    }
    throw new E2ekvError('MALFORMED', `an invitation token starts with ${INVITATION_TOKEN_PREFIX}`);
  }
  if (token.length > MAX_TOKEN_LENGTH) {
    throw new E2ekvError('TOO_LARGE', `an invitation token is at most ${MAX_TOKEN_LENGTH} characters`);
  }
  const bytes = fromBase64Url(token.slice(INVITATION_TOKEN_PREFIX.length), 'the invitation token');
  const r = new ByteReader(bytes, 'invitation');
  const tag = r.bytes(INVITATION_TAG.length, 'tag');
  if (!bytesEqual(tag, INVITATION_TAG)) {
    const looksVersioned = bytesEqual(tag.subarray(0, 7), INVITATION_TAG.subarray(0, 7));
    throw new E2ekvError(looksVersioned ? 'UNSUPPORTED_VERSION' : 'MALFORMED', 'not an e2ekv v1 invitation');
  }
  const vaultId = r.bytes(VAULT_ID_LENGTH, 'vault id');
  const inviter = r.bytes(ED25519_PUBLIC_KEY_LENGTH, 'inviter key');
  const invitee: PublicDeviceKeys = {
    signingKey: r.bytes(ED25519_PUBLIC_KEY_LENGTH, 'invitee key'),
    boxKey: r.bytes(X25519_KEY_LENGTH, 'invitee box key'),
  };
  const role = roleFromCode(r.u8('role'));
  const ephemeral = r.bytes(X25519_KEY_LENGTH, 'ephemeral key');
  const sealed = r.vec16('sealed secrets');
  const serverCount = r.u8('server count');
  if (serverCount > LIMITS.maxInvitationServers) {
    throw new E2ekvError('TOO_LARGE', `an invitation names at most ${LIMITS.maxInvitationServers} servers`);
  }
  const serverBytes: Uint8Array[] = [];
  for (let i = 0; i < serverCount; i++) serverBytes.push(r.vec16('server URL'));
  const bodyLength = bytes.length - r.remaining;
  const signature = r.bytes(ED25519_SIGNATURE_LENGTH, 'signature');
  r.end();
  checkServers(serverBytes, 'MALFORMED');
  const servers = serverBytes.map((s) => fromUtf8(s, 'a server URL'));
  if (ephemeral.every((b) => b === 0))
    throw new E2ekvError('MALFORMED', "an invitation's ephemeral key is not all zero");
  if (sealed.length < WRAP_OVERHEAD + 2 + SECRET_RECORD_LENGTH) {
    throw new E2ekvError('MALFORMED', 'the sealed secrets are too short to hold one epoch secret');
  }
  assertEnrollableEd25519Key(inviter);
  assertEnrollableEd25519Key(invitee.signingKey);
  if (invitee.boxKey.every((b) => b === 0)) throw new E2ekvError('BAD_KEY', "the invitee's X25519 key is all zero");
  if (!(await ed25519Verify(inviter, bytes.subarray(0, bodyLength), signature))) {
    throw new E2ekvError('BAD_SIGNATURE', 'the invitation signature does not verify under its inviter key');
  }
  return { vaultId, inviter, invitee, role, servers, ephemeral, sealed };
}

function checkServers(servers: readonly Uint8Array[], code: 'MALFORMED' | 'INVALID_ARGUMENT'): void {
  if (servers.length > LIMITS.maxInvitationServers) {
    throw new E2ekvError('TOO_LARGE', `an invitation names at most ${LIMITS.maxInvitationServers} servers`);
  }
  for (const server of servers) {
    if (server.length === 0) throw new E2ekvError(code, 'a server URL in an invitation is not empty');
    if (server.length > LIMITS.maxInvitationServerBytes) {
      throw new E2ekvError(
        'TOO_LARGE',
        `a server URL in an invitation is at most ${LIMITS.maxInvitationServerBytes} bytes`,
      );
    }
  }
}

// Epoch, then secret bytes: two admins may have started one epoch concurrently,
// and the invitee needs every secret its inviter holds.
function compareSecrets(a: EpochSecret, b: EpochSecret): number {
  return a.epoch !== b.epoch ? a.epoch - b.epoch : compareBytes(a.secret, b.secret);
}

// secrets_plaintext = count u16 || (epoch u32 || secret [32]) * count
function encodeSecrets(secrets: readonly EpochSecret[]): Uint8Array {
  checkSecrets(secrets, 'INVALID_ARGUMENT');
  const w = new ByteWriter().u16(secrets.length);
  for (const s of secrets) w.u32(s.epoch).fixed(s.secret, EPOCH_SECRET_LENGTH, 'epoch secret');
  return w.finish();
}

function decodeSecrets(plaintext: Uint8Array): EpochSecret[] {
  const r = new ByteReader(plaintext, 'invitation secrets');
  const count = r.u16('secret count');
  if (count > MAX_INVITATION_SECRETS) {
    throw new E2ekvError('TOO_LARGE', `an invitation carries at most ${MAX_INVITATION_SECRETS} secrets`);
  }
  const secrets: EpochSecret[] = [];
  for (let i = 0; i < count; i++) {
    // Copies: the plaintext they come from is wiped.
    secrets.push({ epoch: r.u32('epoch'), secret: r.bytes(EPOCH_SECRET_LENGTH, 'epoch secret').slice() });
  }
  r.end();
  try {
    checkSecrets(secrets, 'MALFORMED');
  } catch (error) {
    for (const s of secrets) wipe(s.secret);
    throw error;
  }
  return secrets;
}

function checkSecrets(secrets: readonly EpochSecret[], code: 'MALFORMED' | 'INVALID_ARGUMENT'): void {
  if (secrets.length === 0) throw new E2ekvError(code, 'an invitation carries at least the secret of epoch 0');
  if (secrets.length > MAX_INVITATION_SECRETS) {
    throw new E2ekvError('TOO_LARGE', `an invitation carries at most ${MAX_INVITATION_SECRETS} secrets`);
  }
  if (secrets[0]!.epoch !== 0) {
    throw new E2ekvError(code, 'an invitation carries the secret of epoch 0 (K_blind comes from it)');
  }
  for (const [i, s] of secrets.entries()) {
    if (!Number.isInteger(s.epoch) || s.epoch < 0 || s.epoch > 0xffffffff) {
      throw new E2ekvError(code, `epoch ${s.epoch} is not a u32`);
    }
    if (s.secret.length !== EPOCH_SECRET_LENGTH) {
      throw new E2ekvError(code, `an epoch secret is ${EPOCH_SECRET_LENGTH} bytes`);
    }
    if (i > 0 && compareSecrets(secrets[i - 1]!, s) >= 0) {
      throw new E2ekvError(code, 'invitation secrets must be strictly ascending by epoch, then by secret');
    }
  }
}
