/**
 * Auditing a vault from the command line, as real processes against two real
 * replicas and two devices: `vault info --json` lists every log's device
 * checkpoint key and latest cosigned checkpoint and every replica's cosigner
 * key, which an independent implementation (test/support/verify_notes.py,
 * Python) must accept as is and reject with one character changed; `verify`
 * reports per replica and log, and exits 4 naming a replica whose stored
 * checkpoint was forged or rolled back (keeping the evidence), 5 for one that
 * does not answer.
 */
import { spawn, spawnSync } from 'node:child_process';
import { cp, rm } from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { fromBase64 } from '../protocol/src/index.js';
import { startServerProcess, tempDir, type ServerProcess } from '../server/test/support/process.js';
import { inviteAndJoin, newHome, ok, runCli } from './support/cli.js';
import { querySql, runSql } from './support/sqlite.js';
import { repoRoot } from './support/paths.js';

const CHECKER = path.join(repoRoot, 'test/support/verify_notes.py');

interface Info {
  vaultId: string;
  device: string;
  logs: {
    device: string;
    vkey: string;
    entries: number;
    verified: number;
    root: string;
    checkpoint: {
      size: number;
      root: string;
      note: string;
      cosignatures: { name: string; vkey: string | null; time: number | null }[];
    } | null;
  }[];
  replicas: { url: string; configured: boolean; vkey: string | null }[];
  evidence: { replica: string; device: string; first: string; second: string }[];
}

interface Report {
  ok: boolean;
  replicas: {
    url: string;
    reachable: boolean;
    cosigner: string | null;
    logs: { device: string; own: boolean; size: number; verified: number; match: string; cosigned: boolean }[];
  }[];
  violations: { replica: string | null; device: string | null; code: string; message: string }[];
  evidence: unknown[];
}

/**
 * A python3 with the `cryptography` package, or undefined. CI installs Debian's
 * python3-cryptography when the default python3 lacks it, so /usr/bin/python3 is tried too.
 */
function findPython(): string | undefined {
  for (const candidate of ['python3', '/usr/bin/python3']) {
    const probe = spawnSync(candidate, ['-c', 'import cryptography.hazmat.primitives.asymmetric.ed25519'], {
      stdio: 'ignore',
    });
    if (probe.status === 0) return candidate;
  }
  return undefined;
}

function checkNotes(python: string, json: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(python, [CHECKER], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, out }));
    child.stdin.end(json);
  });
}

/** The JSON with one character of a signature line changed (base64 stays valid and canonical). */
function flipSignature(json: string, line: string): string {
  const at = json.indexOf(line);
  if (at < 0) throw new Error('signature line not found');
  const i = at + line.length - 20;
  const flipped = json[i] === 'A' ? 'B' : 'A';
  return json.slice(0, i) + flipped + json.slice(i + 1);
}

test('vault info --json lists keys and cosigned checkpoints that an independent checker verifies; verify audits every replica and exits 4 on a forged or rolled-back checkpoint, 5 on a silent replica', async (t) => {
  const python = findPython();
  if (python === undefined) {
    if (process.env['CI'] !== undefined) t.fail('python3 with the cryptography package is required in CI');
    else t.log('python3 with the cryptography package is missing: the independent checks are skipped');
  }
  const data = [await tempDir(), await tempDir()];
  const pristine = await tempDir();
  const dirs = [await tempDir(), await tempDir()];
  const servers: ServerProcess[] = [];
  try {
    for (const d of data) servers.push(await startServerProcess(d.dir));
    const [r1, r2] = servers.map((s) => s.url) as [string, string];
    const [a, b] = [await newHome(t, dirs[0]!.dir), await newHome(t, dirs[1]!.dir)];
    const aDevice = (JSON.parse(ok(t, await runCli(a, ['whoami', '--json']), 'whoami').out) as { device: string })
      .device;
    ok(t, await runCli(a, ['vault', 'create', 'v', '--server', r1, '--server', r2]), 'create');
    ok(t, await runCli(a, ['set', 'v', 'k1', 'one', '--ack', 'all']), 'a set');
    // A's own checkpoint of one entry, kept for the rollback below.
    const early = JSON.parse(ok(t, await runCli(a, ['vault', 'info', 'v', '--json']), 'a info').out) as Info;
    const earlyCheckpoint = early.logs.find((l) => l.device === aDevice)!.checkpoint!;
    t.is(earlyCheckpoint.size, 1);
    await inviteAndJoin(t, a, 'v', b);
    ok(t, await runCli(a, ['set', 'v', 'k2', 'two', '--ack', 'all']), 'a set');
    ok(t, await runCli(b, ['sync', 'v']), 'b sync');
    ok(t, await runCli(b, ['set', 'v', 'k3', 'from b', '--ack', 'all']), 'b set');
    ok(t, await runCli(a, ['sync', 'v']), 'a sync');

    // vault info --json: every log with its device vkey and cosigned checkpoint, every replica's cosigner.
    const infoText = ok(t, await runCli(b, ['vault', 'info', 'v', '--json']), 'b info').out;
    const info = JSON.parse(infoText) as Info;
    const bDevice = info.device;
    t.regex(info.vaultId, /^[0-9a-f]{64}$/);
    t.deepEqual(info.logs.map((l) => l.device).sort(), [aDevice, bDevice].sort());
    for (const log of info.logs) {
      const origin = `e2ekv/v1/${info.vaultId}/${log.device}`;
      t.true(log.vkey.startsWith(`${origin}+`), 'the device vkey is named by the log origin');
      t.regex(log.vkey, /^[^+]+\+[0-9a-f]{8}\+A[A-Za-z0-9+/]{43}$/, 'type 0x01: base64 starts with A');
      t.is(log.verified, log.entries);
      t.truthy(log.checkpoint, `a cosigned checkpoint is kept for ${log.device}`);
      t.is(log.checkpoint!.size, log.verified);
      t.is(log.checkpoint!.root, log.root);
      t.true(log.checkpoint!.note.startsWith(`${origin}\n${log.verified}\n${log.root}\n\n— ${origin} `));
      t.true(log.checkpoint!.cosignatures.length >= 1, 'at least one replica cosignature');
      for (const c of log.checkpoint!.cosignatures) {
        t.not(c.vkey, null);
        t.true(log.checkpoint!.note.includes(`\n— ${c.name} `));
        t.true(typeof c.time === 'number' && Math.abs(c.time - Date.now() / 1000) < 600, 'a recent cosignature time');
      }
    }
    // B's own log was acknowledged by both replicas, and each one's cosignature is kept.
    t.is(info.logs.find((l) => l.device === bDevice)!.checkpoint!.cosignatures.length, 2);
    t.deepEqual(
      info.replicas.map((r) => [r.url, r.configured]),
      [
        [r1, true],
        [r2, true],
      ],
    );
    for (const r of info.replicas) t.regex(r.vkey!, /^e2ekv-replica\/[^+]+\+[0-9a-f]{8}\+B[A-Za-z0-9+/]{43}$/);
    t.not(info.replicas[0]!.vkey, info.replicas[1]!.vkey);
    t.deepEqual(info.evidence, []);
    const text = ok(t, await runCli(b, ['vault', 'info', 'v']), 'b info text').out;
    t.regex(text, /\(this device\): 1 entries, 1 verified\n {4}checkpoint of 1 entries, cosigned by e2ekv-replica\//);
    t.true(text.includes(`  ${r1}: ${info.replicas[0]!.vkey}\n`));

    // An independent implementation accepts every note and key, and refuses a changed signature.
    if (python !== undefined) {
      for (const [who, json] of [
        ['B', infoText],
        ['A', ok(t, await runCli(a, ['vault', 'info', 'v', '--json']), 'a info').out],
      ] as const) {
        const checked = await checkNotes(python, json);
        t.is(checked.code, 0, `the checker refused ${who}'s vault info:\n${checked.out}`);
        t.regex(checked.out, /all \d+ checks passed/);
      }
      const aLog = info.logs.find((l) => l.device === aDevice)!;
      const deviceLine = aLog.checkpoint!.note.split('\n').find((l) => l.startsWith(`— e2ekv/v1/`))!;
      const cosignatureLine = aLog.checkpoint!.note.split('\n').find((l) => l.startsWith('— e2ekv-replica/'))!;
      for (const line of [deviceLine, cosignatureLine]) {
        const refused = await checkNotes(python, flipSignature(infoText, line));
        t.is(refused.code, 1, `a changed signature was accepted:\n${refused.out}`);
        t.regex(refused.out, /FAIL checkpoint note of device [0-9a-f]{16}: .* does not verify/);
      }
    }

    // verify: both replicas answer and serve, cosigned, what B verified.
    const audit = ok(t, await runCli(b, ['verify', 'v', '--json']), 'verify');
    const report = JSON.parse(audit.out) as Report;
    t.true(report.ok);
    t.deepEqual(report.violations, []);
    t.deepEqual(
      report.replicas.map((r) => [r.url, r.reachable, r.cosigner]),
      info.replicas.map((r) => [r.url, true, r.vkey]),
    );
    for (const replica of report.replicas) {
      t.deepEqual(
        replica.logs.map((l) => [l.device, l.own, l.size, l.verified, l.match, l.cosigned]).sort(),
        [
          [aDevice, false, 3, 3, 'same', true],
          [bDevice, true, 1, 1, 'same', true],
        ].sort(),
      );
    }
    t.regex(ok(t, await runCli(b, ['verify', 'v']), 'verify text').out, /^ok: every replica answered/m);

    // A replica that does not answer is reported; the others are still audited.
    const silent = await runCli(b, ['verify', 'v', '--json', '--server', r1, '--server', 'http://127.0.0.1:1']);
    t.is(silent.code, 5, silent.stderr);
    const partial = JSON.parse(silent.out) as Report;
    t.deepEqual(
      partial.replicas.map((r) => [r.reachable, r.logs.length]),
      [
        [true, 2],
        [false, 0],
      ],
    );
    t.regex(silent.stderr, /"code":"UNAVAILABLE".*1 of 2 replicas did not answer \(http:\/\/127\.0\.0\.1:1\)/);

    // The second replica's stored checkpoints are edited while it is stopped. B holds
    // everything already, so nothing new is pulled: only the audit of each
    // replica's signed checkpoint can see it.
    await servers[1]!.stop();
    const db = path.join(data[1]!.dir, 'e2ekv.sqlite3');
    await cp(data[1]!.dir, pristine.dir, { recursive: true });
    const restart = async (edit: () => Promise<void>) => {
      await servers[1]!.stop();
      await rm(data[1]!.dir, { recursive: true, force: true });
      await cp(pristine.dir, data[1]!.dir, { recursive: true });
      await edit();
      servers[1] = await startServerProcess(data[1]!.dir);
      return servers[1].url;
    };

    // One character of A's signature on the stored checkpoint.
    let r2Now = await restart(async () => {
      const note = await querySql<string>(db, 'SELECT note FROM heads WHERE device = ?', [aDevice]);
      const line = note.split('\n').find((l) => l.startsWith('— '))!;
      const edited = note.replace(line, flipSignature(line, line));
      t.is(await runSql(db, 'UPDATE heads SET note = ? WHERE device = ?', [edited, aDevice]), 1);
    });
    const forged = await runCli(b, ['verify', 'v', '--server', r1, '--server', r2Now]);
    t.is(forged.code, 4, forged.stderr);
    t.regex(forged.stderr, /INTEGRITY VIOLATION \(BAD_SIGNATURE\): replica http:\/\/\S+ serves a checkpoint/);
    t.true(forged.stderr.includes(r2Now) && forged.stderr.includes(aDevice), 'names the replica and the device');
    t.regex(forged.out, /checkpoint DOES NOT VERIFY/);
    const forgedJson = await runCli(b, ['verify', 'v', '--json', '--server', r1, '--server', r2Now]);
    t.is(forgedJson.code, 4);
    const forgedReport = JSON.parse(forgedJson.out) as Report;
    t.false(forgedReport.ok);
    t.deepEqual(
      forgedReport.violations.map((v) => [v.replica, v.device, v.code]),
      [[r2Now, aDevice, 'BAD_SIGNATURE']],
    );
    t.is(forgedReport.replicas[0]!.logs.find((l) => l.device === aDevice)!.match, 'same', 'the first replica passes');

    // A's log rolled back to its first checkpoint (device-signed: only its size betrays it).
    r2Now = await restart(async () => {
      const deviceOnly = earlyCheckpoint.note
        .split('\n')
        .filter((l) => !l.startsWith('— ') || l.startsWith(`— e2ekv/v1/`))
        .join('\n');
      const changed = await runSql(db, 'UPDATE heads SET size = ?, root = ?, note = ? WHERE device = ?', [
        1,
        Buffer.from(fromBase64(earlyCheckpoint.root)),
        deviceOnly,
        aDevice,
      ]);
      t.is(changed, 1);
    });
    const rolledBack = await runCli(b, ['verify', 'v', '--json', '--server', r1, '--server', r2Now]);
    t.is(rolledBack.code, 4, rolledBack.stderr);
    t.regex(rolledBack.stderr, /"code":"ROLLBACK"/);
    const rollbackReport = JSON.parse(rolledBack.out) as Report;
    t.deepEqual(
      rollbackReport.violations.map((v) => [v.replica, v.code]),
      [[r2Now, 'ROLLBACK']],
    );
    t.true(rollbackReport.violations[0]!.message.includes(aDevice));
    t.is(rollbackReport.evidence.length, 1);
    const rolledLog = rollbackReport.replicas[1]!.logs.find((l) => l.device === aDevice)!;
    t.deepEqual([rolledLog.size, rolledLog.verified, rolledLog.match, rolledLog.cosigned], [1, 3, 'behind', true]);

    // The evidence is kept in the local replica, shown by vault info, and checks out independently.
    const after = JSON.parse(ok(t, await runCli(b, ['vault', 'info', 'v', '--json']), 'info after').out) as Info;
    t.is(after.evidence.length, 1);
    t.is(after.evidence[0]!.device, aDevice);
    t.is(after.evidence[0]!.replica, r2Now);
    t.true(after.evidence[0]!.first.startsWith(`e2ekv/v1/${info.vaultId}/${aDevice}\n3\n`));
    t.true(after.evidence[0]!.second.startsWith(`e2ekv/v1/${info.vaultId}/${aDevice}\n1\n`));
    t.regex(ok(t, await runCli(b, ['vault', 'info', 'v']), 'info text').out, /^evidence 1 record\(s\)/m);
    if (python !== undefined) {
      const checked = await checkNotes(python, JSON.stringify(after));
      t.is(checked.code, 0, checked.out);
      t.regex(checked.out, /ok {3}evidence 1 .*: rollback: size 1 presented after size 3/);
    }
    // Running verify again keeps one record of the same evidence.
    t.is((await runCli(b, ['verify', 'v', '--server', r1, '--server', r2Now])).code, 4);
    const again = JSON.parse((await runCli(b, ['vault', 'info', 'v', '--json'])).out) as Info;
    t.is(again.evidence.length, 1);
  } finally {
    for (const s of servers) await s.stop();
    for (const d of [...data, pristine, ...dirs]) await d.remove();
  }
});
