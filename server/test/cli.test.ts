import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { repoRoot } from '../../test/support/paths.js';
import { parseArgs } from '../src/main.js';
import { tempDir } from './support/process.js';

const run = promisify(execFile);
const bin = path.join(repoRoot, 'server/src/bin.ts');

async function server(...args: string[]) {
  try {
    const { stdout, stderr } = await run(process.execPath, [
      '--import=tsx/esm',
      '--conditions=e2ekv-source',
      bin,
      ...args,
    ]);
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

test('--version prints the package version; --help shows usage with an example', async (t) => {
  const version = await server('--version');
  t.deepEqual([version.code, version.stdout.trim()], [0, '0.1.0']);
  const help = await server('--help');
  t.is(help.code, 0);
  t.regex(help.stdout, /^Usage: e2ekv-server/);
  t.regex(help.stdout, /Examples:\n {2}npx e2ekv-server/);
  t.regex(help.stdout, /--peer URL\[#KEY\]/);
  t.regex(help.stdout, /--anti-entropy-interval MS/);
});

test('usage errors exit 2 and say what is wrong', async (t) => {
  for (const [args, message] of [
    [['--port', '70000'], /port must be a whole number/],
    [['--bogus'], /unknown argument "--bogus"/],
    [['--tls-cert', 'x.pem'], /--tls-cert and --tls-key go together/],
    [['--peer', 'ftp://x'], /not an http/],
    [['--peer', 'http://x:1/prefix'], /without path/],
    [['--peer', 'http://x:1#nokey'], /the part after # must be/],
    [['--anti-entropy-interval', '0'], /positive whole number of milliseconds/],
    [['--port'], /--port needs a value/],
  ] as const) {
    const res = await server(...args);
    t.is(res.code, 2, args.join(' '));
    t.regex(res.stderr, message);
  }
});

test('defaults, flags and a config file (flags win)', async (t) => {
  const defaults = parseArgs([]);
  if (typeof defaults === 'string') return t.fail();
  t.deepEqual(
    [defaults.host, defaults.port, defaults.dataDir, defaults.peers],
    ['127.0.0.1', 7400, './e2ekv-data', []],
  );
  const { dir, remove } = await tempDir();
  try {
    const config = path.join(dir, 'server.json');
    await writeFile(
      config,
      JSON.stringify({ port: 7500, data: '/srv/e2ekv', peers: ['http://a:1'], limits: { maxBatchEntries: 10 } }),
    );
    const parsed = parseArgs(['--config', config, '--port', '0', '--peer', 'https://b:2']);
    if (typeof parsed === 'string') return t.fail();
    t.deepEqual(
      [parsed.port, parsed.dataDir, parsed.peers, parsed.limits],
      [0, '/srv/e2ekv', ['http://a:1', 'https://b:2'], { maxBatchEntries: 10 }],
    );
    await writeFile(config, JSON.stringify({ replication: { antiEntropyIntervalMs: 1000, pushConcurrency: 2 } }));
    const timing = parseArgs(['--config', config, '--anti-entropy-interval', '500', '--peer-timeout=2000']);
    if (typeof timing === 'string') return t.fail();
    t.deepEqual(timing.replication, { antiEntropyIntervalMs: 500, pushConcurrency: 2, requestTimeoutMs: 2000 });
    await writeFile(config, JSON.stringify({ replication: { intervalMs: 1 } }));
    t.throws(() => parseArgs(['--config', config]), { message: /unknown replication setting "intervalMs"/ });
    await writeFile(config, JSON.stringify({ prot: 1 }));
    t.throws(() => parseArgs(['--config', config]), { message: /unknown setting "prot"/ });
    await writeFile(config, JSON.stringify({ limits: { maxBatchEntries: -1 } }));
    t.throws(() => parseArgs(['--config', config]), { message: /positive whole number/ });
  } finally {
    await remove();
  }
});
