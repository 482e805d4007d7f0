// Runs the e2ekv CLI as a real process (from sources, through tsx), with its
// own home and passphrase, and collects exit code and output.
import { spawn } from 'node:child_process';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { createClient, openKeystore, publicIdentity, sealKeystore } from '../../sdk/src/index.js';
import { openFileLocalStore, readKeystoreFile, writeKeystoreFile } from '../../sdk/src/node/index.js';
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

/**
 * Makes the device of `homeB` a writer of `vault` in `homeA` and gives it the
 * vault's access, as a person would by moving it between their devices (until
 * invitations exist). Acts as device A through A's own local replica, while no
 * CLI command runs.
 */
export async function shareWith(homeA: string, homeB: string, vault: string): Promise<void> {
  const a = await openKeystore((await readKeystoreFile(path.join(homeA, 'keystore.json')))!, TEST_PASSPHRASE);
  const bFile = path.join(homeB, 'keystore.json');
  const b = await openKeystore((await readKeystoreFile(bFile))!, TEST_PASSPHRASE);
  const access = a.vaults.find((v) => v.name === vault)!;
  const store = await openFileLocalStore(path.join(homeA, 'replicas'));
  try {
    const client = await createClient({ identity: a.identity, servers: access.servers, store });
    const opened = await client.openVault({ vaultId: access.vaultId, secret: access.secret });
    await opened.addMember(publicIdentity(b.identity), 'writer', { ack: 'all' });
  } finally {
    await store.close();
  }
  await writeKeystoreFile(
    bFile,
    await sealKeystore({ ...b, vaults: [...b.vaults, access] }, TEST_PASSPHRASE, { logN: 15, r: 8, p: 1 }),
  );
}
