// The examples run against a real replica, so they cannot silently rot.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { startServerProcess, tempDir } from '../server/test/support/process.js';
import { repoRoot } from './support/paths.js';

test('examples/node/quickstart.ts runs end to end', async (t) => {
  const { dir, remove } = await tempDir();
  const server = await startServerProcess(dir);
  try {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import=tsx/esm', '--conditions=e2ekv-source', path.join(repoRoot, 'examples/node/quickstart.ts'), server.url],
      { timeout: 60_000 },
    );
    t.regex(stdout, /laptop wrote \[ 'config\/db-password', 'config\/limits' \]/);
    t.regex(stdout, /phone reads correct horse battery staple/);
    t.regex(stdout, /siblings \[ \{ connections: \d+ \}, \{ connections: \d+ \} \]/);
    t.regex(stdout, /winner on both true/);
  } finally {
    await server.stop();
    await remove();
  }
});
