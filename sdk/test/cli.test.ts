/**
 * The CLI in process: help, argument errors and the exit-code mapping, which
 * need no replica. test/cli.test.ts runs the real processes end to end.
 */
import { PassThrough } from 'node:stream';
import test from 'ava';
import { E2ekvError, ErrorCodes, errorCategory } from '@e2ekv/protocol';
import { UsageError } from '../src/cli/io.js';
import { EXIT, exitCodeOf, main } from '../src/cli/main.js';
import { tempDir } from '../../server/test/support/process.js';

async function run(argv: string[], env: Record<string, string> = {}) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const stdin = new PassThrough();
  stdin.end();
  let out = '';
  let err = '';
  stdout.on('data', (c: Buffer) => (out += c.toString()));
  stderr.on('data', (c: Buffer) => (err += c.toString()));
  const code = await main(argv, { stdout, stderr, stdin, env });
  return { code, out, err };
}

const COMMANDS = [
  'init',
  'whoami',
  'vault create',
  'vault list',
  'vault info',
  'vault invite',
  'vault join',
  'vault members',
  'vault remove',
  'set',
  'get',
  'del',
  'ls',
  'sync',
  'verify',
  'backup export',
  'backup import',
];

test('every command has help with a usage line and at least one example', async (t) => {
  const overview = await run(['--help']);
  t.is(overview.code, 0);
  for (const name of COMMANDS) {
    t.true(overview.out.includes(`e2ekv ${name}`), name);
    const help = await run(['help', ...name.split(' ')]);
    t.is(help.code, 0, name);
    t.regex(help.out, new RegExp(`^Usage: e2ekv ${name}`), name);
    t.regex(help.out, /Examples:\n {2}e2ekv \S/, name);
    t.deepEqual(await run([...name.split(' '), '--help']), help, `${name} --help`);
  }
  t.is((await run([])).code, EXIT.usage, 'no command is a usage error, after the overview');
});

test('argument mistakes exit with 2 and say what to do', async (t) => {
  const cases: [string[], RegExp][] = [
    [['frobnicate'], /no command "frobnicate"/],
    [['vault'], /needs a subcommand/],
    [['get', 'v'], /usage: e2ekv get VAULT KEY/],
    [['get', 'v', 'k', '--bogus'], /bogus/],
    [['set', 'v', 'k', 'x', '--ack', 'most'], /--ack must be one of local, one, quorum, all/],
    [['ls', 'v', '--read', 'all'], /--read must be one of local, one, quorum/],
    [['init', '--scrypt-log-n', '12'], /--scrypt-log-n must be a whole number from 15 to 20/],
    [['vault', 'create', 'bad name!', '--server', 'http://127.0.0.1:1'], /vault names/],
    [['vault', 'create', 'ok', '--server', 'ftp://x'], /not an http or https URL/],
    [['vault', 'create', 'ok'], /at least one --server/],
  ];
  const { dir, remove } = await tempDir();
  try {
    for (const [argv, message] of cases) {
      const result = await run(argv, { E2EKV_HOME: dir, E2EKV_PASSPHRASE: 'x' });
      t.is(result.code, EXIT.usage, argv.join(' '));
      t.regex(result.err, message, argv.join(' '));
      t.regex(result.err, /Run e2ekv --help for usage/);
    }
  } finally {
    await remove();
  }
});

test('without a keystore: not found, with the next step; without a passphrase or terminal: say so', async (t) => {
  const { dir, remove } = await tempDir();
  try {
    const missing = await run(['ls', 'v'], { E2EKV_HOME: dir, E2EKV_PASSPHRASE: 'x' });
    t.is(missing.code, EXIT.notFound);
    t.regex(missing.err, /e2ekv init/);
    const json = await run(['ls', 'v', '--json'], { E2EKV_HOME: dir, E2EKV_PASSPHRASE: 'x' });
    t.is(json.code, EXIT.notFound);
    t.like(JSON.parse(json.err) as object, { error: { code: 'NOT_FOUND', exitCode: 3 } });
    const noPassphrase = await run(['init', '--scrypt-log-n', '15'], { E2EKV_HOME: dir });
    t.is(noPassphrase.code, EXIT.usage);
    t.regex(noPassphrase.err, /set \$E2EKV_PASSPHRASE/);
  } finally {
    await remove();
  }
});

test('init makes a keystore only the owner can read, refuses to overwrite it, and whoami needs its passphrase', async (t) => {
  const { dir, remove } = await tempDir();
  const { stat } = await import('node:fs/promises');
  try {
    const env = { E2EKV_HOME: dir, E2EKV_PASSPHRASE: 'in-process test passphrase words' };
    const made = await run(['init', '--scrypt-log-n', '15', '--json'], env);
    t.is(made.code, 0, made.err);
    const { device } = JSON.parse(made.out) as { device: string };
    t.is((await stat(`${dir}/keystore.json`)).mode & 0o777, 0o600);
    const again = await run(['init', '--scrypt-log-n', '15'], env);
    t.is(again.code, EXIT.error);
    t.regex(again.err, /already exists/);
    const who = await run(['whoami', '--json'], env);
    t.is((JSON.parse(who.out) as { device: string }).device, device);
    const wrong = await run(['whoami'], { ...env, E2EKV_PASSPHRASE: 'wrong' });
    t.is(wrong.code, EXIT.permissionDenied);
  } finally {
    await remove();
  }
});

test('every error code maps to the exit code of its category; integrity is always 4', (t) => {
  const expected: Record<string, number> = {
    integrity: 4,
    'not-found': 3,
    unavailable: 5,
    permission: 6,
  };
  for (const code of ErrorCodes) {
    const exit = exitCodeOf(new E2ekvError(code, 'x'));
    const category = errorCategory(code);
    const want = expected[category] ?? (code === 'INVALID_ARGUMENT' ? EXIT.usage : EXIT.error);
    t.is(exit, want, code);
  }
  t.is(exitCodeOf(new UsageError('x')), EXIT.usage);
  t.is(exitCodeOf(new Error('a bug')), EXIT.error);
});
