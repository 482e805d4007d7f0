/**
 * `e2ekv backup export | import` as real processes against a real replica: a
 * restore onto a fresh home as a new device that reads and writes every vault,
 * without ever appending to the old device's log; and the ways a backup file
 * or its passphrase can be wrong.
 */
import { readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { formatIdentityString, randomBytes, toHex } from '../protocol/src/index.js';
import { sealBackup } from '../sdk/src/backup.js';
import { createIdentity, publicIdentity } from '../sdk/src/index.js';
import { SCRYPT_MINIMUM } from '../sdk/src/keystore.js';
import { startServerProcess, tempDir, type ServerProcess } from '../server/test/support/process.js';
import {
  TEST_BACKUP_PASSPHRASE,
  inviteAndJoin,
  logSizes,
  newHome,
  ok,
  runCli,
  whoami,
  type CliResult,
} from './support/cli.js';

const backupEnv = { E2EKV_BACKUP_PASSPHRASE: TEST_BACKUP_PASSPHRASE };
const FAST = ['--scrypt-log-n', '15'];

async function dirs(t: Parameters<typeof newHome>[0], count: number): Promise<string[]> {
  const made = await Promise.all(Array.from({ length: count }, () => tempDir()));
  t.teardown(async () => {
    for (const d of made) await d.remove();
  });
  return made.map((d) => d.dir);
}

async function exists(file: string): Promise<boolean> {
  return (await stat(file).catch(() => undefined)) !== undefined;
}

interface ImportJson {
  device: { device: string; identity: string };
  oldDevice: { device: string; identity: string };
  recovery: { device: string };
  vaults: { name: string; status: string; role: string | null; oldDeviceMember: boolean | null }[];
}

test.serial(
  'export, then import on a fresh home: every vault restored to a new device that writes; the old log is never appended',
  async (t) => {
    const data = await tempDir();
    const server: ServerProcess = await startServerProcess(data.dir);
    t.teardown(async () => {
      await server.stop();
      await data.remove();
    });
    const [oldDir, otherDir, freshDir, filesDir] = await dirs(t, 4);
    const [old, other] = [await newHome(t, oldDir!), await newHome(t, otherDir!)];
    const fresh = freshDir!;
    const file = path.join(filesDir!, 'e2ekv.backup');

    ok(t, await runCli(old, ['vault', 'create', 'notes', '--server', server.url]), 'create notes');
    ok(t, await runCli(old, ['vault', 'create', 'photos', '--server', server.url]), 'create photos');
    ok(t, await runCli(old, ['set', 'notes', 'n1', 'first note']), 'set');
    ok(t, await runCli(old, ['set', 'photos', 'p1', '-'], { stdin: Buffer.from([0, 1, 2, 255]) }), 'set bytes');
    // A vault where the old device is only a writer: exported, but the new device needs an invite.
    ok(t, await runCli(other, ['vault', 'create', 'theirs', '--server', server.url]), 'create theirs');
    ok(t, await runCli(other, ['set', 'theirs', 't1', 'their value']), 'set theirs');
    await inviteAndJoin(t, other, 'theirs', old, 'writer');
    const oldWho = await whoami(t, old);

    const exported = ok(
      t,
      await runCli(old, ['backup', 'export', file, ...FAST, '--json'], { env: backupEnv }),
      'export',
    );
    const report = JSON.parse(exported.out) as {
      recovery: { device: string; identity: string };
      vaults: { name: string; recovery: string }[];
    };
    t.deepEqual(
      report.vaults.map((v) => [v.name, v.recovery]),
      [
        ['notes', 'added'],
        ['photos', 'added'],
        ['theirs', 'not-admin'],
      ],
    );
    if (process.platform !== 'win32') t.is((await stat(file)).mode & 0o777, 0o600);
    const bytes = await readFile(file);
    t.regex(bytes.toString(), /^\{"e2ekv-backup":1,"kdf":\{"name":"scrypt","logN":15,/);
    // No overwrite without --force; the file is left as it was.
    const again = await runCli(old, ['backup', 'export', file, ...FAST], { env: backupEnv });
    t.is(again.code, 1, again.stderr);
    t.regex(again.stderr, /already exists.*--force/);
    t.deepEqual(await readFile(file), bytes);

    // The old device's log, as it stands after the export (which added the recovery device there).
    const oldLogs = { notes: await logSizes(t, old, 'notes'), photos: await logSizes(t, old, 'photos') };
    const oldSize = (vault: 'notes' | 'photos') => oldLogs[vault].get(oldWho.device);

    const imported = ok(
      t,
      await runCli(fresh, ['backup', 'import', file, ...FAST, '--json'], { env: backupEnv }),
      'import',
    );
    const result = JSON.parse(imported.out) as ImportJson;
    t.deepEqual(
      result.vaults.map((v) => [v.name, v.status]),
      [
        ['notes', 'restored'],
        ['photos', 'restored'],
        ['theirs', 'needs-invite'],
      ],
    );
    t.is(result.oldDevice.identity, oldWho.identity);
    t.not(result.device.device, oldWho.device, 'a new device key');
    t.not(result.device.device, report.recovery.device);
    t.is(result.recovery.device, report.recovery.device);
    const freshWho = await whoami(t, fresh);
    t.is(freshWho.device, result.device.device);

    // The text report says how to revoke the old device, and warns about the recovery device.
    const text = ok(t, await runCli(fresh, ['backup', 'import', file, '--merge'], { env: backupEnv }), 'merge again');
    t.true(text.out.includes(`e2ekv vault remove notes ${oldWho.identity}`), text.out);
    t.true(text.out.includes(`e2ekv vault remove photos ${report.recovery.identity}`), text.out);
    t.regex(text.out, /notes: restored: this device was a member already/);

    // Every value reads on the new device, which writes, and the old device reads what it wrote.
    t.is(ok(t, await runCli(fresh, ['get', 'notes', 'n1']), 'get').out, 'first note\n');
    t.deepEqual(ok(t, await runCli(fresh, ['get', 'photos', 'p1']), 'get bytes').stdout, Buffer.from([0, 1, 2, 255]));
    ok(t, await runCli(fresh, ['set', 'notes', 'n2', 'written on the new machine', '--ack', 'all']), 'new device set');
    ok(t, await runCli(fresh, ['set', 'photos', 'p2', 'also new']), 'new device set');
    t.is(ok(t, await runCli(old, ['get', 'notes', 'n2']), 'old reads').out, 'written on the new machine\n');
    const members = JSON.parse(ok(t, await runCli(fresh, ['vault', 'members', 'notes', '--json']), 'members').out) as {
      members: { device: string; role: string }[];
    };
    t.deepEqual(Object.fromEntries(members.members.map((m) => [m.device, m.role])), {
      [oldWho.device]: 'admin',
      [report.recovery.device]: 'admin',
      [freshWho.device]: 'admin',
    });

    // The old device's log: the same size on the old device after a sync (no fork, nothing new) and
    // as the new device sees it; the recovery device wrote one entry (the add), the new device its own.
    for (const vault of ['notes', 'photos'] as const) {
      ok(t, await runCli(old, ['sync', vault]), 'old sync');
      const seenByOld = await logSizes(t, old, vault);
      const seenByNew = await logSizes(t, fresh, vault);
      t.is(seenByOld.get(oldWho.device), oldSize(vault), `${vault}: the old device's own log`);
      t.is(seenByNew.get(oldWho.device), oldSize(vault), `${vault}: the old log as the new device sees it`);
      t.is(seenByNew.get(report.recovery.device), 1, `${vault}: the recovery device's log`);
      t.is(seenByNew.get(freshWho.device), 1, `${vault}: the new device's own log`);
    }
    ok(t, await runCli(old, ['verify', 'notes']), 'the old device finds nothing wrong');

    // The vault where the old device was a writer: kept, unreadable until an admin invites the new device.
    const refused = await runCli(fresh, ['get', 'theirs', 't1']);
    t.is(refused.code, 6, refused.stderr);
    const rejoined = await inviteAndJoin(t, other, 'theirs', fresh, 'writer');
    t.is(rejoined.name, 'theirs');
    t.is(ok(t, await runCli(fresh, ['get', 'theirs', 't1']), 'theirs').out, 'their value\n');

    // A home with a keystore is refused without --merge.
    const occupied = await runCli(other, ['backup', 'import', file], { env: backupEnv });
    t.is(occupied.code, 1, occupied.stderr);
    t.regex(occupied.stderr, /already exists.*--merge/);
  },
);

/** A backup of nothing, sealed in process (what the CLI reads is the format, not how it was made). */
async function sealedBackup(): Promise<string> {
  return sealBackup(
    {
      createdAtMs: Date.now(),
      device: formatIdentityString(publicIdentity(createIdentity())),
      recovery: createIdentity(),
      vaults: [
        {
          name: 'v',
          vaultId: toHex(randomBytes(32)),
          secret: randomBytes(32),
          servers: ['http://127.0.0.1:9'],
          role: 'admin',
          recoverable: true,
        },
      ],
    },
    TEST_BACKUP_PASSPHRASE,
    SCRYPT_MINIMUM,
  );
}

test('a wrong backup passphrase is exit 6, lowered scrypt parameters exit 4; neither leaves a keystore', async (t) => {
  const [home, files] = await dirs(t, 2);
  const file = path.join(files!, 'backup.json');
  const text = await sealedBackup();
  await writeFile(file, text, { mode: 0o600 });
  const keystore = path.join(home!, 'keystore.json');
  const expectNoKeystore = async (what: string) => t.false(await exists(keystore), what);

  const wrong = await runCli(home!, ['backup', 'import', file, ...FAST], {
    env: { E2EKV_BACKUP_PASSPHRASE: 'not the backup passphrase' },
  });
  t.is(wrong.code, 6, wrong.stderr);
  t.regex(wrong.stderr, /PERMISSION_DENIED.*wrong passphrase for this backup/);
  await expectNoKeystore('wrong passphrase');

  const lowered = path.join(files!, 'lowered.json');
  const json = JSON.parse(text) as { kdf: { logN: number } };
  json.kdf.logN = 14;
  await writeFile(lowered, JSON.stringify(json));
  const downgraded = await runCli(home!, ['backup', 'import', lowered, ...FAST], { env: backupEnv });
  t.is(downgraded.code, 4, downgraded.stderr);
  t.regex(downgraded.stderr, /INTEGRITY VIOLATION.*weaker scrypt parameters.*tampered/);
  await expectNoKeystore('lowered parameters');

  // An empty passphrase variable: say which one.
  const none = await runCli(home!, ['backup', 'import', file, ...FAST], { env: { E2EKV_BACKUP_PASSPHRASE: '' } });
  t.is(none.code, 2, none.stderr);
  t.regex(none.stderr, /E2EKV_BACKUP_PASSPHRASE/);
  const missing = await runCli(home!, ['backup', 'import', path.join(files!, 'nope.json')], { env: backupEnv });
  t.is(missing.code, 3, missing.stderr);

  // A keystore is not a backup, and the message says what to do with it.
  const source = await newHome(t, files!);
  const asBackup = await runCli(home!, ['backup', 'import', path.join(source, 'keystore.json')], { env: backupEnv });
  t.is(asBackup.code, 1, asBackup.stderr);
  t.regex(asBackup.stderr, /this is an e2ekv keystore, not a backup/);
  await expectNoKeystore('a keystore given as a backup');

  // The control: the right passphrase opens it (then the replica it names does not answer: exit 5).
  const right: CliResult = await runCli(home!, ['backup', 'import', file, ...FAST], { env: backupEnv });
  t.is(right.code, 5, right.stderr);
  t.regex(right.stderr, /vault v was not restored/);
  t.true(await exists(keystore), 'the new device is kept, with the vault, so that --merge can resume');
});

test.serial(
  'export changes nothing and writes no file when a vault it administers cannot reach its replicas',
  async (t) => {
    const data = await tempDir();
    const server = await startServerProcess(data.dir);
    const [homeDir, files] = await dirs(t, 2);
    try {
      const home = await newHome(t, homeDir!);
      ok(t, await runCli(home, ['vault', 'create', 'v', '--server', server.url]), 'create');
      ok(t, await runCli(home, ['set', 'v', 'k', 'x']), 'set');
      const before = await logSizes(t, home, 'v');
      await server.stop();
      const file = path.join(files!, 'backup.json');
      const result = await runCli(home, ['backup', 'export', file, ...FAST], { env: backupEnv });
      t.is(result.code, 5, result.stderr);
      t.regex(result.stderr, /UNAVAILABLE.*recovery device to vault v.*nothing was changed/);
      t.false(await exists(file));
      t.deepEqual(await logSizes(t, home, 'v'), before, 'nothing was written to the log');
      const level = await runCli(home, ['backup', 'export', file, '--ack', 'one'], { env: backupEnv });
      t.is(level.code, 2, level.stderr);
    } finally {
      await server.stop();
      await data.remove();
    }
  },
);
