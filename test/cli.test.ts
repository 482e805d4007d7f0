/**
 * The e2ekv CLI end to end, as real processes against real replicas: a
 * person's session (init, vault create, set, get, ls, del, verify), a second
 * installation of the same identity, concurrent writes from two devices, canary
 * secrets that must appear nowhere but on the device, and a tampered replica
 * that must make reads and verify exit with code 4.
 */
import { cp, readFile, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { fromHex } from '../protocol/src/index.js';
import { startServerProcess, tempDir, type ServerProcess } from '../server/test/support/process.js';
import { inviteAndJoin, newHome, ok, runCli, type CliResult } from './support/cli.js';
import { querySql, runSql } from './support/sqlite.js';
import { findSpellings, startRecordingProxy } from './support/tcp-proxy.js';

/** Every file under `dir`, concatenated (for scanning). */
async function allBytes(dir: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) parts.push(await readFile(path.join(entry.parentPath, entry.name)));
  }
  return Buffer.concat(parts);
}

async function withServer(run: (server: ServerProcess, dataDir: string) => Promise<void>): Promise<void> {
  const data = await tempDir();
  const server = await startServerProcess(data.dir);
  try {
    await run(server, data.dir);
  } finally {
    await server.stop();
    await data.remove();
  }
}

test('a CLI session: init, vault create, set, get, ls, del, info, verify; a restored identity reads after sync', async (t) => {
  await withServer(async (server) => {
    const dirs = [await tempDir(), await tempDir()];
    try {
      const home = await newHome(t, dirs[0]!.dir);
      const who = JSON.parse(ok(t, await runCli(home, ['whoami', '--json']), 'whoami').out) as { device: string };
      t.regex(who.device, /^[0-9a-f]{64}$/);
      ok(t, await runCli(home, ['vault', 'create', 'notes', '--server', server.url]), 'vault create');
      t.is((await runCli(home, ['vault', 'create', 'notes', '--server', server.url])).code, 1, 'duplicate name');

      ok(t, await runCli(home, ['set', 'notes', 'db/password', 'hunter2 with spaces']), 'set text');
      const binary = Buffer.from([0, 1, 2, 255, 10, 13, 0]);
      ok(t, await runCli(home, ['set', 'notes', 'certs/blob', '-'], { stdin: binary }), 'set from stdin');
      ok(
        t,
        await runCli(home, ['set', 'notes', 'config', '--type', 'json', '{"retries":3}', '--ack', 'all']),
        'set json',
      );
      t.is(ok(t, await runCli(home, ['get', 'notes', 'db/password']), 'get').out, 'hunter2 with spaces\n');
      t.deepEqual(ok(t, await runCli(home, ['get', 'notes', 'certs/blob']), 'get bytes').stdout, binary);
      t.deepEqual(JSON.parse(ok(t, await runCli(home, ['get', 'notes', 'config', '--json']), 'get json').out), {
        key: 'config',
        type: 'json',
        value: { retries: 3 },
        siblings: [{ device: who.device, deleted: false, type: 'json', value: { retries: 3 } }],
      });
      t.is(ok(t, await runCli(home, ['ls', 'notes']), 'ls').out, 'certs/blob\nconfig\ndb/password\n');
      t.is(
        ok(t, await runCli(home, ['ls', 'notes', '--prefix', 'c', '--read', 'local']), 'ls').out,
        'certs/blob\nconfig\n',
      );
      ok(t, await runCli(home, ['del', 'notes', 'config']), 'del');
      const gone = await runCli(home, ['get', 'notes', 'config']);
      t.is(gone.code, 3);
      t.regex(gone.stderr, /NOT_FOUND.*no key "config"/);
      t.is((await runCli(home, ['del', 'notes', 'config'])).code, 3, 'deleting what is gone is not found');
      t.deepEqual(JSON.parse(ok(t, await runCli(home, ['ls', 'notes', '--json']), 'ls --json').out), [
        'certs/blob',
        'db/password',
      ]);
      const info = JSON.parse(ok(t, await runCli(home, ['vault', 'info', 'notes', '--json']), 'info').out) as {
        keys: number;
        unpushed: number;
        logs: { device: string; entries: number }[];
      };
      t.is(info.keys, 2);
      t.is(info.unpushed, 0);
      t.deepEqual(
        info.logs.map((l) => [l.device, l.entries]),
        [[who.device, 4]],
      );
      ok(t, await runCli(home, ['verify', 'notes']), 'verify');

      // Usage errors and unknown names.
      t.is((await runCli(home, ['set', 'notes'])).code, 2);
      t.is((await runCli(home, ['get', 'notes', 'k', '--read', 'eventually'])).code, 2);
      t.is((await runCli(home, ['get', 'nope', 'k'])).code, 3);
      const wrong = await runCli(home, ['ls', 'notes'], { env: { E2EKV_PASSPHRASE: 'not the passphrase' } });
      t.is(wrong.code, 6);
      t.regex(wrong.stderr, /wrong passphrase/);

      // The same identity restored into a fresh home (keystore copied, no local replica): it reads after sync.
      const restored = dirs[1]!.dir;
      await cp(path.join(home, 'keystore.json'), path.join(restored, 'keystore.json'));
      t.is(ok(t, await runCli(restored, ['get', 'notes', 'db/password']), 'restored get').out, 'hunter2 with spaces\n');
      t.is(ok(t, await runCli(restored, ['ls', 'notes']), 'restored ls').out, 'certs/blob\ndb/password\n');
    } finally {
      for (const d of dirs) await d.remove();
    }
  });
});

test('concurrent writes from two devices become siblings that resolve to the same winner on both', async (t) => {
  await withServer(async (server) => {
    const dirs = [await tempDir(), await tempDir()];
    try {
      const [a, b] = [await newHome(t, dirs[0]!.dir), await newHome(t, dirs[1]!.dir)];
      ok(t, await runCli(a, ['vault', 'create', 'shared', '--server', server.url]), 'vault create');
      ok(t, await runCli(a, ['set', 'shared', 'before', 'from a']), 'set');
      await inviteAndJoin(t, a, 'shared', b);
      t.is(ok(t, await runCli(b, ['get', 'shared', 'before']), 'b reads').out, 'from a\n');

      // Neither has seen the other's write: both stay on their device until they sync.
      ok(t, await runCli(a, ['set', 'shared', 'k', 'written by a', '--ack', 'local']), 'a set');
      ok(t, await runCli(b, ['set', 'shared', 'k', 'written by b', '--ack', 'local']), 'b set');
      for (const home of [a, b, a]) ok(t, await runCli(home, ['sync', 'shared']), 'sync');
      type Got = { value: string; siblings: { value: string }[] };
      const seenByA = JSON.parse(ok(t, await runCli(a, ['get', 'shared', 'k', '--json']), 'a get').out) as Got;
      const seenByB = JSON.parse(ok(t, await runCli(b, ['get', 'shared', 'k', '--json']), 'b get').out) as Got;
      t.is(seenByA.siblings.length, 2);
      t.deepEqual(seenByA.siblings.map((s) => s.value).sort(), ['written by a', 'written by b']);
      t.is(seenByA.value, seenByB.value, 'both devices pick the same winner');
      t.deepEqual(seenByA.siblings, seenByB.siblings);
      const text = await runCli(a, ['get', 'shared', 'k']);
      t.is(text.out, `${seenByA.value}\n`);
      t.regex(text.stderr, /2 concurrent values/);

      // A write made after seeing both supersedes them.
      ok(t, await runCli(b, ['set', 'shared', 'k', 'resolved by b']), 'resolve');
      const after = JSON.parse(ok(t, await runCli(a, ['get', 'shared', 'k', '--json']), 'a get').out) as Got;
      t.is(after.value, 'resolved by b');
      t.is(after.siblings.length, 1);
    } finally {
      for (const d of dirs) await d.remove();
    }
  });
});

test('canary key names and values appear nowhere on the wire, in the replica data or in the local replica', async (t) => {
  await withServer(async (server, dataDir) => {
    const proxy = await startRecordingProxy(server.url);
    const dir = await tempDir();
    try {
      const home = await newHome(t, dir.dir);
      const canaries = {
        vaultName: 'canary-vault-name-7d1c2e',
        keyName: 'canary/key-name/5f0a9b3e1d',
        text: 'canary text value 3b9e7f21c04d',
        stdin: 'canary stdin value c81d3f09ab72',
        big: 'canary big value 19ae4c7f ',
      };
      ok(t, await runCli(home, ['vault', 'create', canaries.vaultName, '--server', proxy.url]), 'create');
      ok(t, await runCli(home, ['set', canaries.vaultName, canaries.keyName, canaries.text]), 'set');
      ok(t, await runCli(home, ['set', canaries.vaultName, 'k2', '-'], { stdin: canaries.stdin }), 'set stdin');
      // Large enough to travel as a blob (SPEC section 8.2).
      ok(t, await runCli(home, ['set', canaries.vaultName, 'k3', canaries.big.repeat(400)]), 'set big');
      const got = ok(t, await runCli(home, ['get', canaries.vaultName, canaries.keyName]), 'get');
      ok(t, await runCli(home, ['ls', canaries.vaultName]), 'ls');
      ok(t, await runCli(home, ['verify', canaries.vaultName]), 'verify');

      // The scan itself works: the decrypted value is on this device's stdout.
      t.deepEqual(findSpellings(got.stdout, canaries.text), [canaries.text]);
      t.true(proxy.sent().length > 10_000 && proxy.received().length > 1_000, 'traffic was captured');

      const places: [string, () => Promise<Buffer>][] = [
        ['bytes sent to the replica', async () => proxy.sent()],
        ['bytes the replica answered', async () => proxy.received()],
        ['the replica data directory', () => allBytes(dataDir)],
        ['the local replica', () => allBytes(path.join(home, 'replicas'))],
        ['the keystore file', () => readFile(path.join(home, 'keystore.json'))],
      ];
      for (const [place, read] of places) {
        const bytes = await read();
        t.true(bytes.length > 0, `${place} is not empty`);
        for (const [name, canary] of Object.entries(canaries)) {
          t.deepEqual(findSpellings(bytes, canary), [], `${name} found in ${place}`);
        }
      }
      t.true((await stat(path.join(home, 'replicas'))).isDirectory());
    } finally {
      await proxy.close();
      await dir.remove();
    }
  });
});

test('a replica whose stored entries, checkpoints or blobs were edited makes reads and verify exit 4; local data stays readable', async (t) => {
  const data = await tempDir();
  const pristine = await tempDir();
  const dirs = [await tempDir(), await tempDir()];
  let server = await startServerProcess(data.dir);
  try {
    const [a, b] = [await newHome(t, dirs[0]!.dir), await newHome(t, dirs[1]!.dir)];
    ok(t, await runCli(a, ['vault', 'create', 'v', '--server', server.url]), 'create');
    ok(t, await runCli(a, ['set', 'v', 'k1', 'one']), 'set');
    await inviteAndJoin(t, a, 'v', b);
    t.is(ok(t, await runCli(b, ['get', 'v', 'k1']), 'b get').out, 'one\n');
    ok(t, await runCli(a, ['set', 'v', 'k3', 'three']), 'set');
    ok(t, await runCli(a, ['set', 'v', 'big', 'x'.repeat(10_000)]), 'set big');
    const aDevice = (JSON.parse((await runCli(a, ['whoami', '--json'])).out) as { device: string }).device;

    await server.stop();
    const db = path.join(data.dir, 'e2ekv.sqlite3');
    await rm(pristine.dir, { recursive: true, force: true });
    await cp(data.dir, pristine.dir, { recursive: true });
    const restart = async (edit: () => Promise<void>) => {
      await server.stop();
      await rm(data.dir, { recursive: true, force: true });
      await cp(pristine.dir, data.dir, { recursive: true });
      await edit();
      server = await startServerProcess(data.dir);
      return ['--server', server.url];
    };
    const integrity = (result: CliResult, pattern: RegExp, what: string) => {
      t.is(result.code, 4, `${what}: ${result.stderr}`);
      t.regex(result.stderr, /INTEGRITY VIOLATION/, what);
      t.regex(result.stderr, pattern, what);
    };

    // Entry 2 of device A (k3; 0 is k1, 1 adds B) changed: it no longer rebuilds the signed root.
    let via = await restart(async () => {
      const where = 'WHERE device = ? AND entry_index = 2';
      const bytes = await querySql<Buffer>(db, `SELECT bytes FROM entries ${where}`, [aDevice]);
      bytes[bytes.length - 1]! ^= 1; // the last byte of the last envelope: ciphertext
      t.is(await runSql(db, `UPDATE entries SET bytes = ? ${where}`, [bytes, aDevice]), 1);
    });
    integrity(await runCli(b, ['get', 'v', 'k3', ...via]), /do not rebuild the signed root/, 'get of an edited entry');
    integrity(await runCli(b, ['verify', 'v', ...via]), /do not rebuild the signed root/, 'verify of an edited entry');
    t.is(ok(t, await runCli(b, ['get', 'v', 'k1', '--read', 'local']), 'local read').out, 'one\n');

    // The stored checkpoint's signature changed.
    via = await restart(async () => {
      // Line 3 of the checkpoint is the root hash (base64): change its first character.
      const note = await querySql<string>(db, 'SELECT note FROM heads WHERE device = ?', [aDevice]);
      const lines = note.split('\n');
      lines[2] = (lines[2]!.startsWith('A') ? 'B' : 'A') + lines[2]!.slice(1);
      t.is(await runSql(db, 'UPDATE heads SET note = ? WHERE device = ?', [lines.join('\n'), aDevice]), 1);
    });
    integrity(
      await runCli(b, ['get', 'v', 'k3', ...via]),
      /BAD_SIGNATURE|signature/i,
      'get under an edited checkpoint',
    );
    integrity(
      await runCli(b, ['verify', 'v', ...via]),
      /BAD_SIGNATURE|signature/i,
      'verify under an edited checkpoint',
    );

    // A blob's ciphertext changed.
    via = await restart(async () => {
      const bytes = await querySql<Buffer>(db, 'SELECT bytes FROM blobs', []);
      bytes[100]! ^= 1;
      t.is(await runSql(db, 'UPDATE blobs SET bytes = ?', [bytes]), 1);
    });
    integrity(await runCli(b, ['get', 'v', 'big', ...via]), /blob/, 'get of an edited blob');
    t.is(ok(t, await runCli(b, ['get', 'v', 'k1', '--read', 'local']), 'local read').out, 'one\n');

    // Untouched, the same replica data reads fine: the failures above were the edits.
    via = await restart(async () => undefined);
    t.is(ok(t, await runCli(b, ['get', 'v', 'k3', ...via]), 'pristine get').out, 'three\n');
    t.is(ok(t, await runCli(b, ['get', 'v', 'big', ...via]), 'pristine get').out, `${'x'.repeat(10_000)}\n`);
    ok(t, await runCli(b, ['verify', 'v', ...via]), 'pristine verify');
    t.is(fromHex(aDevice).length, 32);
  } finally {
    await server.stop();
    for (const d of [data, pristine, ...dirs]) await d.remove();
  }
});
