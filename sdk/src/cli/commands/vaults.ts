/** `e2ekv vault create | list | info`: the vaults this keystore can open. */
import { E2ekvError } from '@e2ekv/protocol';
import { createClient } from '../../client.js';
import { openFileLocalStore } from '../../local/file.js';
import { type Command, print, serversOf } from '../command.js';
import { unlock, withHomeLock } from '../home.js';
import { UsageError } from '../io.js';
import { checkServerUrls, openSessionVault, withVaultSession } from '../session.js';

// Names are typed on command lines and shown in lists: keep them plain.
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export const vaultCreate: Command = {
  name: 'vault create',
  args: 'NAME --server URL...',
  summary: 'create a vault on one or more replicas, with this device as its admin',
  details: ['NAME is yours alone (replicas only ever see the vault id): letters, digits, ".", "_", "-".'],
  examples: [
    'e2ekv vault create notes --server http://127.0.0.1:7400',
    'e2ekv vault create team --server https://a.example:7400 --server https://b.example:7400',
  ],
  options: { server: { type: 'string', multiple: true } },
  optionHelp: [['--server URL', 'a replica to keep the vault on (repeatable, at least one)']],
  positionals: { min: 1, max: 1 },
  async run(ctx) {
    const name = ctx.positionals[0]!;
    if (!NAME.test(name)) {
      throw new UsageError(`vault names are 1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit`);
    }
    const servers = checkServerUrls(serversOf(ctx));
    if (servers.length === 0) throw new UsageError('vault create needs at least one --server URL');
    const created = await withHomeLock(ctx.home, async () => {
      const keystore = await unlock(ctx.home, ctx.io);
      if (keystore.contents.vaults.some((v) => v.name === name)) {
        throw new E2ekvError('CONFLICT', `this keystore already has a vault named "${name}": choose another name`);
      }
      const store = await openFileLocalStore(ctx.home.replicasDir);
      try {
        const client = await createClient({ identity: keystore.contents.identity, servers, store });
        const { access } = await client.createVault();
        const entry = { name, vaultId: access.vaultId, secret: access.secret, servers };
        await keystore.save({ ...keystore.contents, vaults: [...keystore.contents.vaults, entry] });
        return entry;
      } finally {
        await store.close();
      }
    });
    await print(
      ctx,
      { name, vaultId: created.vaultId, servers },
      () => `Created vault ${name} (${created.vaultId})\non ${servers.join(', ')}\nNext: e2ekv set ${name} KEY VALUE\n`,
    );
    return 0;
  },
};

export const vaultList: Command = {
  name: 'vault list',
  args: '',
  summary: 'list the vaults this keystore can open',
  examples: ['e2ekv vault list', 'e2ekv vault list --json'],
  options: {},
  optionHelp: [],
  positionals: { min: 0, max: 0 },
  async run(ctx) {
    const keystore = await withHomeLock(ctx.home, () => unlock(ctx.home, ctx.io));
    const vaults = keystore.contents.vaults.map((v) => ({ name: v.name, vaultId: v.vaultId, servers: v.servers }));
    await print(ctx, vaults, () =>
      vaults.length === 0
        ? 'No vaults yet: e2ekv vault create NAME --server URL\n'
        : vaults.map((v) => `${v.name}\t${v.vaultId}\t${v.servers.join(' ')}\n`).join(''),
    );
    return 0;
  },
};

export const vaultInfo: Command = {
  name: 'vault info',
  args: 'NAME',
  summary: 'show what this device holds of a vault (from the local replica; no request is made)',
  examples: ['e2ekv vault info notes', 'e2ekv vault info notes --json'],
  options: {},
  optionHelp: [],
  positionals: { min: 1, max: 1 },
  async run(ctx) {
    const name = ctx.positionals[0]!;
    const info = await withVaultSession(ctx.io, ctx.home, name, [], async (session) => {
      const vault = await openSessionVault(session, false);
      return {
        name,
        vaultId: session.access.vaultId,
        device: session.client.deviceId,
        servers: session.servers,
        ...vault.status(),
      };
    });
    await print(ctx, info, () => {
      const lines = [
        `vault    ${info.name} (${info.vaultId})`,
        `device   ${info.device}`,
        `servers  ${info.servers.join(', ')}`,
        `keys     ${info.keys}`,
        `unpushed ${info.unpushed} entries of this device not yet acknowledged by a replica`,
        `evidence ${info.evidence === 0 ? 'none' : `${info.evidence} record(s) of a replica or device contradicting itself: run e2ekv verify`}`,
        ...(info.rejected.length === 0
          ? []
          : [
              `ignored  ${info.rejected.length} entries written by devices that could not write then (a replica accepted them): run e2ekv verify`,
            ]),
        'logs:',
        ...info.logs.map(
          (l) =>
            `  ${l.device}${l.device === info.device ? ' (this device)' : ''}: ${l.entries} entries, ${l.verified} verified`,
        ),
        'acknowledged by:',
        ...Object.entries(info.acked).map(([url, size]) => `  ${url}: ${size} entries of this device`),
      ];
      return lines.join('\n') + '\n';
    });
    return 0;
  },
};
