// Runs the e2ekv CLI as a real process (from sources, through tsx), with its
// own home and passphrase, and collects exit code and output.
import { spawn } from 'node:child_process';
import path from 'node:path';
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
