/** The shape every CLI command has, and the options several share. */
import type { ParseArgsConfig } from 'node:util';
import type { AckLevel, ReadLevel } from '../vault.js';
import type { Home } from './home.js';
import { type CliIo, UsageError, write } from './io.js';

export type ParseArgsOptionsConfig = NonNullable<ParseArgsConfig['options']>;

export interface CommandContext {
  io: CliIo;
  home: Home;
  positionals: string[];
  values: Readonly<Record<string, string | boolean | (string | boolean)[] | undefined>>;
  json: boolean;
}

export interface Command {
  /** As typed: 'set', 'vault create'. */
  name: string;
  /** Arguments after the name, for the usage line: 'VAULT KEY [VALUE|-]'. */
  args: string;
  summary: string;
  /** Lines shown under the usage line in `e2ekv help COMMAND`. */
  details?: string[];
  examples: string[];
  options: ParseArgsOptionsConfig;
  /** Option help lines: [flag, description]. */
  optionHelp: [string, string][];
  positionals: { min: number; max: number };
  run(ctx: CommandContext): Promise<number>;
}

export const serverOption: ParseArgsOptionsConfig = { server: { type: 'string', multiple: true } };
export const serverHelp: [string, string] = [
  '--server URL',
  "use this replica instead of the vault's list for this call (repeatable)",
];

export function serversOf(ctx: CommandContext): string[] {
  const value = ctx.values['server'];
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

const ACK_LEVELS: readonly AckLevel[] = ['local', 'one', 'quorum', 'all'];
const READ_LEVELS: readonly ReadLevel[] = ['local', 'one', 'quorum'];

export function ackOf(ctx: CommandContext): AckLevel {
  return level(ctx, 'ack', ACK_LEVELS, 'one');
}

export function readOf(ctx: CommandContext): ReadLevel {
  return level(ctx, 'read', READ_LEVELS, 'one');
}

function level<T extends string>(ctx: CommandContext, name: string, allowed: readonly T[], fallback: T): T {
  const value = ctx.values[name];
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw new UsageError(`--${name} must be one of ${allowed.join(', ')}`);
  }
  return value as T;
}

/** Prints a result: the JSON value with --json, else the text lines. */
export async function print(ctx: CommandContext, json: unknown, text: () => string): Promise<void> {
  await write(ctx.io.stdout, ctx.json ? JSON.stringify(json) + '\n' : text());
}
