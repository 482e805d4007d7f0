import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { repoRoot } from '../../test/support/paths.js';

const run = promisify(execFile);
const bin = path.join(repoRoot, 'server/src/bin.ts');

async function server(...args: string[]) {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import=tsx/esm', bin, ...args]);
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

test('--version prints the package version', async (t) => {
  const { code, stdout } = await server('--version');
  t.is(code, 0);
  t.is(stdout.trim(), '0.1.0');
});

test('--help shows usage, and starting says plainly that the server is not built yet', async (t) => {
  const help = await server('--help');
  t.is(help.code, 0);
  t.regex(help.stdout, /^Usage: e2ekv-server/);
  const start = await server('--port', '0');
  t.is(start.code, 1);
  t.regex(start.stderr, /not implemented/);
});
