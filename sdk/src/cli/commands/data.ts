/** `e2ekv set | get | del | ls | sync | verify`: one vault's keys and its replicas. */
import { E2ekvError, fromUtf8, toBase64 } from '@e2ekv/protocol';
import type { Settable, Sibling } from '../../vault.js';
import {
  type Command,
  type CommandContext,
  ackOf,
  print,
  readOf,
  serverHelp,
  serverOption,
  serversOf,
} from '../command.js';
import { UsageError, readAll, write } from '../io.js';
import { openSessionVault, withVaultSession } from '../session.js';

const ackHelp: [string, string] = [
  '--ack LEVEL',
  'local, one (default), quorum or all: how many replicas must have the write on disk before it returns',
];
const readHelp: [string, string] = [
  '--read LEVEL',
  'local, one (default) or quorum: local answers from this device without a request; one and quorum pull and verify first',
];

const TYPES = ['text', 'json', 'bytes'] as const;

async function valueToSet(ctx: CommandContext): Promise<Settable> {
  const type = ctx.values['type'];
  if (type !== undefined && !(TYPES as readonly unknown[]).includes(type)) {
    throw new UsageError('--type must be text, json or bytes');
  }
  const argument = ctx.positionals[2];
  const fromStdin = argument === undefined || argument === '-';
  const bytes = fromStdin ? await readAll(ctx.io.stdin) : new TextEncoder().encode(argument);
  switch (type ?? (fromStdin ? 'bytes' : 'text')) {
    case 'bytes':
      return bytes;
    case 'text':
      return fromUtf8(bytes, 'the value');
    default:
      try {
        return JSON.parse(fromUtf8(bytes, 'the value')) as Settable;
      } catch {
        throw new E2ekvError('INVALID_ARGUMENT', 'the value is not JSON (--type json): check its quoting');
      }
  }
}

function describe(value: unknown): { type: string; value: unknown } {
  if (value instanceof Uint8Array) return { type: 'bytes', value: toBase64(value) };
  if (typeof value === 'string') return { type: 'text', value };
  return { type: 'json', value };
}

function notFound(key: string, vault: string): E2ekvError {
  return new E2ekvError('NOT_FOUND', `vault ${vault} has no key "${key}"`);
}

async function conflictNote(ctx: CommandContext, key: string, siblings: Sibling[]): Promise<void> {
  if (siblings.length < 2 || ctx.json) return;
  await write(
    ctx.io.stderr,
    `note: "${key}" has ${siblings.length} concurrent values (devices ${siblings.map((s) => s.device.slice(0, 12)).join(', ')}); ` +
      'showing the one every device picks. get --json lists them all; a new set resolves them.\n',
  );
}

export const set: Command = {
  name: 'set',
  args: 'VAULT KEY [VALUE|-]',
  summary: 'set a key; the value is encrypted, signed and its key name blinded before it leaves this device',
  details: [
    'VALUE is stored as text. Without VALUE, or with -, the value is read from stdin and stored as',
    'bytes exactly (files, binary data). --type json stores parsed JSON.',
  ],
  examples: [
    'e2ekv set notes db/password "correct horse battery staple"',
    'e2ekv set notes certs/server.pem - < server.pem',
    'e2ekv set notes config --type json \'{"retries": 3}\' --ack all',
  ],
  options: { ...serverOption, ack: { type: 'string' }, type: { type: 'string' } },
  optionHelp: [ackHelp, ['--type TYPE', 'text (default for VALUE), bytes (default for stdin) or json'], serverHelp],
  positionals: { min: 2, max: 3 },
  async run(ctx) {
    const [vaultName, key] = ctx.positionals as [string, string];
    const ack = ackOf(ctx);
    const value = await valueToSet(ctx);
    await withVaultSession(ctx.io, ctx.home, vaultName, serversOf(ctx), async (session) => {
      // Sync first (tolerating no answer), so this write supersedes what others wrote.
      const vault = await openSessionVault(session, true);
      await vault.set(key, value, { ack });
    });
    await print(ctx, { vault: vaultName, key, ack }, () => '');
    return 0;
  },
};

export const get: Command = {
  name: 'get',
  args: 'VAULT KEY',
  summary: 'print the value of a key (text as is, bytes raw, JSON as JSON); exit code 3 if it has none',
  examples: [
    'e2ekv get notes db/password',
    'e2ekv get notes certs/server.pem > server.pem',
    'e2ekv get notes k --read local',
  ],
  options: { ...serverOption, read: { type: 'string' } },
  optionHelp: [readHelp, serverHelp],
  positionals: { min: 2, max: 2 },
  async run(ctx) {
    const [vaultName, key] = ctx.positionals as [string, string];
    const read = readOf(ctx);
    const siblings = await withVaultSession(ctx.io, ctx.home, vaultName, serversOf(ctx), async (session) => {
      const vault = await openSessionVault(session, false);
      return vault.getAll(key, { read });
    });
    const winner = siblings[0];
    if (winner === undefined || winner.deleted) throw notFound(key, vaultName);
    await conflictNote(ctx, key, siblings);
    if (ctx.json) {
      await print(
        ctx,
        {
          key,
          ...describe(winner.value),
          siblings: siblings.map((s) => ({ device: s.device, deleted: s.deleted, ...describe(s.value) })),
        },
        () => '',
      );
    } else if (winner.value instanceof Uint8Array) {
      await new Promise<void>((resolve, reject) =>
        ctx.io.stdout.write(winner.value as Uint8Array, (error) => (error ? reject(error) : resolve())),
      );
    } else if (typeof winner.value === 'string') {
      await write(ctx.io.stdout, `${winner.value}\n`);
    } else {
      await write(ctx.io.stdout, `${JSON.stringify(winner.value, null, 2)}\n`);
    }
    return 0;
  },
};

export const del: Command = {
  name: 'del',
  args: 'VAULT KEY',
  summary: 'delete a key (exit code 3 if it has no value)',
  examples: ['e2ekv del notes db/password'],
  options: { ...serverOption, ack: { type: 'string' } },
  optionHelp: [ackHelp, serverHelp],
  positionals: { min: 2, max: 2 },
  async run(ctx) {
    const [vaultName, key] = ctx.positionals as [string, string];
    const ack = ackOf(ctx);
    await withVaultSession(ctx.io, ctx.home, vaultName, serversOf(ctx), async (session) => {
      const vault = await openSessionVault(session, true);
      if ((await vault.get(key)) === undefined) throw notFound(key, vaultName);
      await vault.delete(key, { ack });
    });
    await print(ctx, { vault: vaultName, key, deleted: true, ack }, () => '');
    return 0;
  },
};

export const ls: Command = {
  name: 'ls',
  args: 'VAULT',
  summary: 'list the keys that have a value, sorted',
  examples: ['e2ekv ls notes', 'e2ekv ls notes --prefix db/ --json'],
  options: { ...serverOption, read: { type: 'string' }, prefix: { type: 'string' } },
  optionHelp: [['--prefix P', 'only keys that start with P'], readHelp, serverHelp],
  positionals: { min: 1, max: 1 },
  async run(ctx) {
    const vaultName = ctx.positionals[0]!;
    const read = readOf(ctx);
    const prefix = ctx.values['prefix'];
    const names = await withVaultSession(ctx.io, ctx.home, vaultName, serversOf(ctx), async (session) => {
      const vault = await openSessionVault(session, false);
      return vault.list({ read, ...(typeof prefix === 'string' ? { prefix } : {}) });
    });
    await print(ctx, names, () => names.map((n) => `${n}\n`).join(''));
    return 0;
  },
};

export const sync: Command = {
  name: 'sync',
  args: 'VAULT',
  summary: "pull and verify every device's log from the replicas, and push this device's writes",
  examples: ['e2ekv sync notes', 'e2ekv sync notes --server http://127.0.0.1:7401'],
  options: { ...serverOption },
  optionHelp: [serverHelp],
  positionals: { min: 1, max: 1 },
  async run(ctx) {
    const vaultName = ctx.positionals[0]!;
    const status = await withVaultSession(ctx.io, ctx.home, vaultName, serversOf(ctx), async (session) => {
      const vault = await openSessionVault(session, false);
      await vault.sync();
      return vault.status();
    });
    await print(
      ctx,
      { vault: vaultName, ...status },
      () =>
        `synced ${vaultName}: ${status.keys} keys, ${status.logs.length} device logs, ` +
        `${status.unpushed} of this device's entries not yet acknowledged\n`,
    );
    return status.unpushed > 0 ? 5 : 0;
  },
};

export const verify: Command = {
  name: 'verify',
  args: 'VAULT',
  summary: 'audit the replicas: every log consistent with what this device verified, replicas agreeing',
  details: [
    'Exit code 4 names what failed: a forged, altered, rolled-back or forked log, or a replica',
    'withholding entries. Evidence (signed checkpoints that contradict) is kept in the local replica.',
  ],
  examples: ['e2ekv verify notes', 'e2ekv verify notes --json'],
  options: { ...serverOption },
  optionHelp: [serverHelp],
  positionals: { min: 1, max: 1 },
  async run(ctx) {
    const vaultName = ctx.positionals[0]!;
    const report = await withVaultSession(ctx.io, ctx.home, vaultName, serversOf(ctx), async (session) => {
      const vault = await openSessionVault(session, false);
      return vault.verify();
    });
    await print(ctx, { vault: vaultName, ok: true, ...report }, () =>
      report.replicas
        .map(
          (r) =>
            `ok ${r.url}: ${r.logs.map((l) => `${l.device.slice(0, 12)}…=${l.size}`).join(', ') || 'no entries'}\n`,
        )
        .join(''),
    );
    return 0;
  },
};
