/**
 * `e2ekv vault invite | join | members | remove`: sharing a vault with other
 * devices (a colleague's, or another of your own) and taking them out again
 * (protocol/SPEC.md section 21).
 */
import {
  E2ekvError,
  identityFingerprint,
  isE2ekvError,
  parseIdentityString,
  readInvitation,
  toHex,
  type PublicDeviceKeys,
  type Role,
} from '@e2ekv/protocol';
import { createClient } from '../../client.js';
import { openFileLocalStore } from '../../local/file.js';
import type { VaultMember } from '../../vault.js';
import { mergeEpochs, storedAccessOf } from '../access.js';
import { type Command, type CommandContext, ackOf, print, serverHelp, serverOption, serversOf } from '../command.js';
import { unlock, withHomeLock } from '../home.js';
import { UsageError, write } from '../io.js';
import { checkServerUrls, openSessionVault, withVaultSession } from '../session.js';
import { checkVaultName } from './vaults.js';

const ROLES: readonly Role[] = ['reader', 'writer', 'admin'];

const ackHelp: [string, string] = [
  '--ack LEVEL',
  'local, one (default), quorum or all: how many replicas must have the membership change on disk',
];

function roleOf(ctx: CommandContext): Role {
  const value = ctx.values['role'];
  if (value === undefined) return 'writer';
  if (typeof value !== 'string' || !(ROLES as readonly string[]).includes(value)) {
    throw new UsageError('--role must be reader, writer or admin');
  }
  return value as Role;
}

/** An identity string typed or pasted by a person: a mistake in it is a usage error, with the way to get a good one. */
export function identityArgument(text: string, flag: string): PublicDeviceKeys {
  try {
    return parseIdentityString(text.trim());
  } catch (error) {
    if (!isE2ekvError(error)) throw error;
    throw new E2ekvError(
      'INVALID_ARGUMENT',
      `${flag} is not a usable identity string (${error.message}): ask its owner for the identity line that e2ekv whoami prints`,
      { cause: error },
    );
  }
}

export const vaultInvite: Command = {
  name: 'vault invite',
  args: 'NAME --to IDENTITY [--role R]',
  summary: 'add a device to a vault and print the invitation token that carries the vault secrets for it',
  details: [
    'IDENTITY is the identity string the other device shows with e2ekv whoami (e2ekv-id1-...).',
    'This device must be an admin of the vault. The membership change is written to the vault;',
    'the token (printed on stdout, one line) carries the vault secrets wrapped for that device',
    'alone. Send it any way you like; the invitee runs e2ekv vault join TOKEN.',
    'Before sending it, compare the fingerprint printed here with the one the invitee reads out',
    '(by voice, in person): a different one means the identity string you have is not theirs.',
    'Roles: reader reads; writer reads and writes; admin also invites and removes members.',
  ],
  examples: [
    'e2ekv vault invite team --to e2ekv-id1-AbC... --role writer',
    'e2ekv vault invite team --to "$(cat alice.id)" --role reader --ack all > alice.token',
  ],
  options: { ...serverOption, to: { type: 'string' }, role: { type: 'string' }, ack: { type: 'string' } },
  optionHelp: [
    ['--to IDENTITY', "the invitee's identity string (required)"],
    ['--role ROLE', 'reader, writer (default) or admin'],
    ackHelp,
    serverHelp,
  ],
  positionals: { min: 1, max: 1 },
  async run(ctx) {
    const name = ctx.positionals[0]!;
    const to = ctx.values['to'];
    if (typeof to !== 'string')
      throw new UsageError('vault invite needs --to IDENTITY (the invitee runs e2ekv whoami)');
    const invitee = identityArgument(to, '--to');
    const role = roleOf(ctx);
    const ack = ackOf(ctx);
    const result = await withVaultSession(ctx.io, ctx.home, name, serversOf(ctx), async (session) => {
      const vault = await openSessionVault(session, true);
      // The vault's own replicas go in the token, even when --server chose others for this call.
      const token = await vault.invite(invitee, role, { ack, servers: session.access.servers });
      return { token, vaultId: vault.id, inviter: session.client.fingerprint };
    });
    const device = toHex(invitee.signingKey);
    const fingerprint = identityFingerprint(invitee);
    await print(
      ctx,
      {
        vault: name,
        vaultId: result.vaultId,
        role,
        token: result.token,
        invitee: { device, fingerprint },
        inviterFingerprint: result.inviter,
      },
      () => `${result.token}\n`,
    );
    if (!ctx.json) {
      await write(
        ctx.io.stderr,
        [
          `Added device ${device} to vault ${name} as ${role}. Its fingerprint:`,
          `  ${fingerprint}`,
          'Check it with the invitee before you send the token above (they run e2ekv whoami). They join with:',
          `  e2ekv vault join TOKEN --name ${name}`,
          `and should check that join shows your fingerprint: ${result.inviter}`,
          '',
        ].join('\n'),
      );
    }
    return 0;
  },
};

export const vaultJoin: Command = {
  name: 'vault join',
  args: 'TOKEN [--name NAME]',
  summary: 'join a vault with an invitation token an admin made for this device',
  details: [
    'Checks that the token was signed by an admin of the vault and made for this device, opens',
    'the vault secrets it carries, syncs the vault and checks, by its own replay of the membership',
    'entries, that the inviter is an admin and added this device with the role the token names.',
    'Then it keeps the vault in the keystore under NAME (default: "shared-" and the start of the',
    "vault id) with the token's replicas (or --server). Until the admin's change reaches a",
    'replica the vault is not found (exit code 3): run the same command again a moment later.',
    "Compare the inviter's fingerprint it prints with the one the inviter reads out.",
  ],
  examples: ['e2ekv vault join e2ekv-invite1-AbC... --name team', 'e2ekv vault join "$(cat alice.token)" --json'],
  options: { ...serverOption, name: { type: 'string' } },
  optionHelp: [
    ['--name NAME', 'the name to keep the vault under in this keystore'],
    ['--server URL', 'use these replicas instead of the ones the token names (repeatable; they are kept)'],
  ],
  positionals: { min: 1, max: 1 },
  async run(ctx) {
    const token = ctx.positionals[0]!.trim();
    const info = await readInvitation(token).catch((error: unknown) => {
      // An altered signature is an integrity failure; a garbled paste is a usage mistake.
      if (!isE2ekvError(error) || error.category === 'integrity') throw error;
      throw new E2ekvError(
        'INVALID_ARGUMENT',
        `this is not a usable invitation token (${error.message}): copy the whole line e2ekv vault invite printed`,
        { cause: error },
      );
    });
    const vaultId = toHex(info.vaultId);
    const wanted = ctx.values['name'];
    if (typeof wanted === 'string') checkVaultName(wanted);
    const override = checkServerUrls(serversOf(ctx));
    const servers = override.length > 0 ? override : checkServerUrls(info.servers);
    if (servers.length === 0) {
      throw new UsageError("the token names no replica: give the vault's replicas with --server URL");
    }
    const joined = await withHomeLock(ctx.home, async () => {
      const keystore = await unlock(ctx.home, ctx.io);
      const existing = keystore.contents.vaults.find((v) => v.vaultId === vaultId);
      const name = existing?.name ?? (typeof wanted === 'string' ? wanted : `shared-${vaultId.slice(0, 8)}`);
      if (existing === undefined && keystore.contents.vaults.some((v) => v.name === name)) {
        throw new E2ekvError(
          'CONFLICT',
          `this keystore already has another vault named "${name}": choose a name with --name`,
        );
      }
      const store = await openFileLocalStore(ctx.home.replicasDir);
      try {
        const client = await createClient({ identity: keystore.contents.identity, servers, store });
        const result = await client.joinVault(token);
        const access = storedAccessOf(name, result.access, servers);
        const epochs = mergeEpochs(existing?.epochs, access.epochs, result.vault.access().epochs);
        const record = { ...access, ...(epochs.length === 0 ? {} : { epochs }) };
        const vaults =
          existing === undefined
            ? [...keystore.contents.vaults, record]
            : keystore.contents.vaults.map((v) => (v === existing ? record : v));
        await keystore.save({ ...keystore.contents, vaults });
        return {
          name,
          vaultId,
          role: result.role,
          inviter: result.inviter,
          inviterFingerprint: result.inviterFingerprint,
          servers,
          already: existing !== undefined,
        };
      } finally {
        await store.close();
      }
    });
    await print(ctx, joined, () =>
      [
        `Joined vault ${joined.name} (${joined.vaultId}) as ${joined.role}${joined.already ? ' (it was in this keystore already: its access is updated)' : ''}.`,
        `Invited by device ${joined.inviter}, whose fingerprint is:`,
        `  ${joined.inviterFingerprint}`,
        'Compare it with the fingerprint the inviter reads out to you: if they differ, the token is not theirs;',
        'tell them, and do not write anything secret to this vault.',
        `Replicas: ${joined.servers.join(', ')}`,
        `Next: e2ekv ls ${joined.name}`,
        '',
      ].join('\n'),
    );
    return 0;
  },
};

export const vaultMembers: Command = {
  name: 'vault members',
  args: 'NAME',
  summary: "list a vault's members with their roles, fingerprints and identity strings",
  details: [
    "The list is this device's own replay of the vault's membership entries (synced first, unless",
    "--read local), never a replica's word. Each member is a device: one person with two computers",
    'is two members.',
  ],
  examples: ['e2ekv vault members team', 'e2ekv vault members team --json', 'e2ekv vault members team --read local'],
  options: { ...serverOption, read: { type: 'string' } },
  optionHelp: [['--read LEVEL', 'local: from this device alone, without a request; default: sync first'], serverHelp],
  positionals: { min: 1, max: 1 },
  async run(ctx) {
    const name = ctx.positionals[0]!;
    const read = ctx.values['read'];
    if (read !== undefined && read !== 'local' && read !== 'one') throw new UsageError('--read must be local or one');
    const { members, vaultId, epoch } = await withVaultSession(
      ctx.io,
      ctx.home,
      name,
      serversOf(ctx),
      async (session) => {
        const vault = await openSessionVault(session, read !== 'local');
        // This device first, then by role (admins first) and device id: the order people scan for.
        const rank = (m: VaultMember) => (m.self ? 0 : 4 - ROLES.indexOf(m.role));
        const members = vault
          .members()
          .sort((a, b) => rank(a) - rank(b) || (a.device < b.device ? -1 : a.device > b.device ? 1 : 0));
        return { members, vaultId: vault.id, epoch: vault.epoch };
      },
    );
    await print(ctx, { vault: name, vaultId, epoch, members }, () =>
      [
        `vault ${name} (${vaultId}), key epoch ${epoch}, ${members.length} member${members.length === 1 ? '' : 's'}:`,
        ...members.flatMap((m) => [
          `${m.role.padEnd(6)}  ${m.fingerprint}${m.self ? '  (this device)' : ''}`,
          `        device   ${m.device}`,
          `        identity ${m.identity}`,
        ]),
        '',
      ].join('\n'),
    );
    return 0;
  },
};

/** The member a person named: an identity string, a device id, or a device id's first 8 or more hex digits. */
function findMember(members: readonly VaultMember[], text: string): VaultMember {
  const wanted = text.trim();
  let device: string;
  if (/^[0-9a-f]{8,64}$/.test(wanted)) {
    const matches = members.filter((m) => m.device.startsWith(wanted));
    if (matches.length > 1) {
      throw new E2ekvError(
        'INVALID_ARGUMENT',
        `${wanted} is the start of ${matches.length} members' device ids: give more of it`,
      );
    }
    device = matches[0]?.device ?? wanted;
  } else if (/^[0-9A-Fa-f]+$/.test(wanted)) {
    throw new UsageError(
      'give the member as its identity string, its device id, or the first 8 or more lowercase hex digits of it',
    );
  } else {
    device = toHex(identityArgument(wanted, 'the member').signingKey);
  }
  const member = members.find((m) => m.device === device);
  if (member === undefined) {
    throw new E2ekvError(
      'NOT_FOUND',
      `${wanted} is not a member of this vault as far as this device has synced: see e2ekv vault members`,
    );
  }
  return member;
}

export const vaultRemove: Command = {
  name: 'vault remove',
  args: 'NAME MEMBER',
  summary: 'remove a device from a vault for good and start a new key epoch for the remaining members',
  details: [
    'MEMBER is an identity string, a device id (hex), or its first 8 or more hex digits, as',
    'e2ekv vault members shows them. This device must be an admin, and cannot remove itself.',
    'The removal and a new key epoch, wrapped for every remaining member, are written together:',
    'the removed device can read nothing written from now on and can write nothing; it keeps what',
    'it could read before (every earlier value stays readable to it) and the key-name blinding key.',
    'A removal is for good: to come back, that device enrols a new identity and is invited again.',
    'Use --ack all so that every replica refuses the device at once (a replica that has not heard',
    'of the removal still serves it the old entries).',
  ],
  examples: ['e2ekv vault remove team e2ekv-id1-AbC...', 'e2ekv vault remove team 3f2a9c1b --ack all'],
  options: { ...serverOption, ack: { type: 'string' } },
  optionHelp: [ackHelp, serverHelp],
  positionals: { min: 2, max: 2 },
  async run(ctx) {
    const [name, memberText] = ctx.positionals as [string, string];
    const ack = ackOf(ctx);
    const removed = await withVaultSession(ctx.io, ctx.home, name, serversOf(ctx), async (session) => {
      const vault = await openSessionVault(session, true);
      const member = findMember(vault.members(), memberText);
      if (member.self) {
        throw new E2ekvError(
          'INVALID_ARGUMENT',
          'that is this device: a device cannot remove itself. Remove it from another admin device of the vault',
        );
      }
      await vault.removeMember(member.device, { ack });
      return { member, epoch: vault.epoch, remaining: vault.members().length };
    });
    const { member } = removed;
    await print(
      ctx,
      {
        vault: name,
        removed: { device: member.device, role: member.role, fingerprint: member.fingerprint },
        epoch: removed.epoch,
        ack,
      },
      () =>
        [
          `Removed device ${member.device} (${member.role}, fingerprint ${member.fingerprint}) from vault ${name}.`,
          `Started key epoch ${removed.epoch}, wrapped for the ${removed.remaining} remaining member${removed.remaining === 1 ? '' : 's'}:`,
          'the removed device cannot read what is written from now on, nor write; it keeps what it could read before.',
          '',
        ].join('\n'),
    );
    return 0;
  },
};
