// Runs the e2ekv CLI as a real process (from sources, through tsx), with its
// own home and passphrase, and collects exit code and output.
import { spawn } from 'node:child_process';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { repoRoot } from './paths.js';

const bin = path.join(repoRoot, 'sdk/src/cli/bin.ts');

export const TEST_PASSPHRASE = 'test only: ankle brisk cobalt dune ember fjord';

export interface CliResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
  /** stdout as UTF-8. */
  out: string;
}

export async function runCli(
  home: string,
  args: readonly string[],
  options: { stdin?: Uint8Array | string; env?: Record<string, string> } = {},
): Promise<CliResult> {
  const child = spawn(process.execPath, ['--import=tsx/esm', '--conditions=e2ekv-source', bin, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, E2EKV_HOME: home, E2EKV_PASSPHRASE: TEST_PASSPHRASE, ...options.env },
  });
  const stdout: Buffer[] = [];
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdin.end(options.stdin ?? '');
  const code = await new Promise<number | null>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`e2ekv ${args.join(' ')} did not finish in 60 s:\n${stderr}`));
    }, 60_000);
    child.once('close', (exitCode) => {
      clearTimeout(timer);
      resolve(exitCode);
    });
  });
  const all = Buffer.concat(stdout);
  return { code, stdout: all, stderr, out: all.toString('utf8') };
}

/** The cheapest scrypt the keystore allows: tests unlock it dozens of times. */
export const FAST_KDF = ['--scrypt-log-n', '15'];

/** Asserts the command succeeded (showing its stderr if not) and returns its result. */
export function ok(t: ExecutionContext, result: CliResult, what: string): CliResult {
  t.is(result.code, 0, `${what} failed: ${result.stderr}`);
  return result;
}

/** Runs `e2ekv init` in `dir` and returns it. */
export async function newHome(t: ExecutionContext, dir: string): Promise<string> {
  ok(t, await runCli(dir, ['init', ...FAST_KDF]), 'init');
  return dir;
}

/** What `e2ekv whoami --json` says of a home's device. */
export interface Who {
  identity: string;
  fingerprint: string;
  device: string;
}

export async function whoami(t: ExecutionContext, home: string): Promise<Who> {
  return JSON.parse(ok(t, await runCli(home, ['whoami', '--json']), 'whoami').out) as Who;
}

/**
 * Invites the device of `invitee` into `vault` of `admin` with the CLI (vault
 * invite, then vault join in the invitee's home under the same name) and
 * returns the join's JSON.
 */
export async function inviteAndJoin(
  t: ExecutionContext,
  admin: string,
  vault: string,
  invitee: string,
  role: 'reader' | 'writer' | 'admin' = 'writer',
): Promise<{ name: string; role: string; inviterFingerprint: string }> {
  const { identity } = await whoami(t, invitee);
  const token = ok(t, await runCli(admin, ['vault', 'invite', vault, '--to', identity, '--role', role]), 'invite');
  const joined = ok(t, await runCli(invitee, ['vault', 'join', token.out.trim(), '--name', vault, '--json']), 'join');
  return JSON.parse(joined.out) as { name: string; role: string; inviterFingerprint: string };
}

/** The backup passphrase tests give through $E2EKV_BACKUP_PASSPHRASE. */
export const TEST_BACKUP_PASSPHRASE = 'test only: backup glyph harbor ivory jungle';

/** The number of entries each device's log has, as `vault info --json` of `home` shows them. */
export async function logSizes(t: ExecutionContext, home: string, vault: string): Promise<Map<string, number>> {
  const info = JSON.parse(ok(t, await runCli(home, ['vault', 'info', vault, '--json']), 'vault info').out) as {
    logs: { device: string; entries: number }[];
  };
  return new Map(info.logs.map((l) => [l.device, l.entries]));
}
