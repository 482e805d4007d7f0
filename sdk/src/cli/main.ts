/**
 * The `e2ekv` command line: argument parsing, help, and the one place where
 * failures become exit codes (DESIGN.md section 10):
 *   0 ok, 1 error, 2 usage, 3 not found, 4 integrity violation, 5 unavailable, 6 permission denied.
 */
import { parseArgs } from 'node:util';
import { E2ekvError, isE2ekvError } from '@e2ekv/protocol';
import { type Command, type CommandContext } from './command.js';
import { backupExport, backupImport } from './commands/backup.js';
import { del, get, ls, set, sync, verify } from './commands/data.js';
import { init, whoami } from './commands/identity.js';
import { vaultInvite, vaultJoin, vaultMembers, vaultRemove } from './commands/sharing.js';
import { vaultCreate, vaultInfo, vaultList } from './commands/vaults.js';
import { homeOf } from './home.js';
import { type CliIo, UsageError, write } from './io.js';

export const VERSION = '0.1.0';

const commands: readonly Command[] = [
  init,
  whoami,
  vaultCreate,
  vaultList,
  vaultInfo,
  vaultInvite,
  vaultJoin,
  vaultMembers,
  vaultRemove,
  set,
  get,
  del,
  ls,
  sync,
  verify,
  backupExport,
  backupImport,
];

export const EXIT = {
  ok: 0,
  error: 1,
  usage: 2,
  notFound: 3,
  integrity: 4,
  unavailable: 5,
  permissionDenied: 6,
} as const;

/** The exit code for a failure. Integrity comes first: it is the one a script must never mistake. */
export function exitCodeOf(error: unknown): number {
  if (error instanceof UsageError) return EXIT.usage;
  if (!isE2ekvError(error)) return EXIT.error;
  switch (error.category) {
    case 'integrity':
      return EXIT.integrity;
    case 'not-found':
      return EXIT.notFound;
    case 'unavailable':
      return EXIT.unavailable;
    case 'permission':
      return EXIT.permissionDenied;
    default:
      return error.code === 'INVALID_ARGUMENT' ? EXIT.usage : EXIT.error;
  }
}

function usageLine(command: Command): string {
  return `e2ekv ${command.name}${command.args === '' ? '' : ` ${command.args}`}`;
}

function overview(): string {
  const width = Math.max(...commands.map((c) => usageLine(c).length));
  return [
    'e2ekv: an end-to-end encrypted, replicated key-value store. Values are encrypted and key names',
    'blinded on this device; replicas see only ciphertext, and everything they serve is verified.',
    '',
    'Usage:',
    ...commands.map((c) => `  ${usageLine(c).padEnd(width)}  ${c.summary}`),
    '',
    'Options for every command: --json (machine-readable output), --help',
    'Environment: E2EKV_HOME (default ~/.e2ekv), E2EKV_PASSPHRASE (else asked on the terminal),',
    '             E2EKV_BACKUP_PASSPHRASE (backup export and import; else asked on the terminal)',
    'Exit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 integrity violation, 5 unavailable, 6 permission denied',
    '',
    'Start:',
    '  e2ekv init',
    '  e2ekv vault create notes --server http://127.0.0.1:7400',
    '  e2ekv set notes greeting "hello"',
    '  e2ekv get notes greeting',
    '',
    'Share:',
    '  e2ekv whoami                                          (on the other device: its identity string)',
    '  e2ekv vault invite notes --to IDENTITY --role writer  (prints a token to send)',
    '  e2ekv vault join TOKEN --name notes                   (on the other device)',
    '',
    'e2ekv help COMMAND shows a command with examples.',
    '',
  ].join('\n');
}

function commandHelp(command: Command): string {
  const width = Math.max(8, ...command.optionHelp.map(([flag]) => flag.length), '--json'.length);
  return [
    `Usage: ${usageLine(command)}`,
    '',
    command.summary.charAt(0).toUpperCase() + command.summary.slice(1) + '.',
    ...(command.details === undefined ? [] : ['', ...command.details]),
    '',
    'Options:',
    ...[...command.optionHelp, ['--json', 'machine-readable output'] as [string, string]].map(
      ([flag, text]) => `  ${flag.padEnd(width)}  ${text}`,
    ),
    '',
    'Examples:',
    ...command.examples.map((e) => `  ${e}`),
    '',
  ].join('\n');
}

/** Finds the command named by the first one or two words. */
function lookup(argv: readonly string[]): { command: Command; rest: string[] } | undefined {
  for (const words of [2, 1]) {
    const name = argv.slice(0, words).join(' ');
    const command = commands.find((c) => c.name === name);
    if (command !== undefined) return { command, rest: argv.slice(words) };
  }
  return undefined;
}

export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  const wantsJson = argv.includes('--json');
  try {
    if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || (argv[0] === 'help' && argv.length === 1)) {
      await write(io.stdout, overview());
      return argv.length === 0 ? EXIT.usage : EXIT.ok;
    }
    if (argv[0] === '--version' || argv[0] === 'version') {
      await write(io.stdout, `${VERSION}\n`);
      return EXIT.ok;
    }
    if (argv[0] === 'help') {
      const found = lookup(argv.slice(1));
      if (found === undefined) throw new UsageError(`there is no command "${argv.slice(1).join(' ')}"`);
      await write(io.stdout, commandHelp(found.command));
      return EXIT.ok;
    }
    const found = lookup(argv);
    if (found === undefined) {
      const group = commands.filter((c) => c.name.startsWith(`${argv[0] ?? ''} `)).map((c) => c.name);
      throw new UsageError(
        group.length > 0
          ? `"${argv[0] ?? ''}" needs a subcommand: ${group.slice(0, -1).join(', ')} or ${group[group.length - 1]!}`
          : `there is no command "${argv[0] ?? ''}"`,
      );
    }
    const { command, rest } = found;
    if (rest.includes('--help') || rest.includes('-h')) {
      await write(io.stdout, commandHelp(command));
      return EXIT.ok;
    }
    let parsed;
    try {
      parsed = parseArgs({
        args: rest,
        options: { ...command.options, json: { type: 'boolean' } },
        allowPositionals: true,
        strict: true,
      });
    } catch (error) {
      throw new UsageError(`${(error as Error).message.replace(/\. To specify a positional.*$/s, '')}`);
    }
    const { min, max } = command.positionals;
    if (parsed.positionals.length < min || parsed.positionals.length > max) {
      throw new UsageError(`usage: ${usageLine(command)}`);
    }
    const ctx: CommandContext = {
      io,
      home: homeOf(io),
      positionals: parsed.positionals,
      values: parsed.values as CommandContext['values'],
      json: (parsed.values as CommandContext['values'])['json'] === true,
    };
    return await command.run(ctx);
  } catch (error) {
    const code = exitCodeOf(error);
    await report(io, error, code, wantsJson);
    return code;
  }
}

async function report(io: CliIo, error: unknown, code: number, json: boolean): Promise<void> {
  const message = error instanceof Error ? error.message : String(error);
  const errorCode = isE2ekvError(error) ? error.code : error instanceof UsageError ? 'USAGE' : 'INTERNAL';
  if (json) {
    const details = error instanceof E2ekvError ? error.details : {};
    await write(io.stderr, JSON.stringify({ error: { code: errorCode, message, exitCode: code, details } }) + '\n');
    return;
  }
  const hint = code === EXIT.usage ? '\nRun e2ekv --help for usage.' : '';
  const label = code === EXIT.integrity ? 'e2ekv: INTEGRITY VIOLATION' : 'e2ekv';
  await write(io.stderr, `${label} (${errorCode}): ${message}${hint}\n`);
  // An error that is not ours is a bug: its stack helps the report.
  if (!isE2ekvError(error) && !(error instanceof UsageError) && error instanceof Error && error.stack !== undefined) {
    await write(io.stderr, `${error.stack}\nThis is a bug in e2ekv: please report it.\n`);
  }
}
