/**
 * Sharing with the CLI, as real processes against a real replica: identity
 * strings and fingerprints, invitations between homes, roles enforced, member
 * lists, removal with a new key epoch, and a person's second device.
 */
import path from 'node:path';
import { PassThrough } from 'node:stream';
import test from 'ava';
import { identityFingerprint, parseIdentityString, toHex } from '../protocol/src/index.js';
import { main } from '../sdk/src/cli/main.js';
import { openKeystore } from '../sdk/src/index.js';
import { readKeystoreFile } from '../sdk/src/node/index.js';
import { startServerProcess, tempDir, type ServerProcess } from '../server/test/support/process.js';
import { TEST_PASSPHRASE, inviteAndJoin, newHome, ok, runCli, whoami } from './support/cli.js';

async function withServer(run: (server: ServerProcess) => Promise<void>): Promise<void> {
  const data = await tempDir();
  const server = await startServerProcess(data.dir);
  try {
    await run(server);
  } finally {
    await server.stop();
    await data.remove();
  }
}

/** `count` fresh homes with an identity each, removed after the test. */
async function homes(t: Parameters<typeof newHome>[0], count: number): Promise<string[]> {
  const dirs = await Promise.all(Array.from({ length: count }, () => tempDir()));
  t.teardown(async () => {
    for (const d of dirs) await d.remove();
  });
  const made: string[] = [];
  for (const d of dirs) made.push(await newHome(t, d.dir));
  return made;
}

interface Members {
  epoch: number;
  members: { device: string; role: string; identity: string; fingerprint: string; self: boolean }[];
}

test('help for every sharing and backup command, in process', async (t) => {
  for (const name of [
    'vault invite',
    'vault join',
    'vault members',
    'vault remove',
    'backup export',
    'backup import',
  ]) {
    const stdout = new PassThrough();
    let out = '';
    stdout.on('data', (c: Buffer) => (out += c.toString()));
    const stdin = new PassThrough();
    stdin.end();
    const code = await main(['help', ...name.split(' ')], { stdout, stderr: new PassThrough(), stdin, env: {} });
    t.is(code, 0, name);
    t.regex(out, new RegExp(`^Usage: e2ekv ${name}`), name);
    t.regex(out, /Examples:\n {2}e2ekv \S/, name);
  }
});

test('whoami prints an identity string and a fingerprint that parse and name this device', async (t) => {
  const [home] = await homes(t, 1);
  const who = await whoami(t, home!);
  const keys = parseIdentityString(who.identity);
  t.is(toHex(keys.signingKey), who.device);
  t.regex(who.fingerprint, /^[0-9a-f]{4}( [0-9a-f]{4}){4}$/);
  t.is(identityFingerprint(keys), who.fingerprint);
  const text = ok(t, await runCli(home!, ['whoami']), 'whoami').out;
  t.regex(text, new RegExp(`^identity +${who.identity}$`, 'm'));
  t.regex(text, new RegExp(`^fingerprint +${who.fingerprint}$`, 'm'));
  t.regex(text, new RegExp(`^device +${who.device}$`, 'm'));
});

test.serial(
  'invite and join between homes; roles are enforced; members list them; mistakes are usage errors',
  async (t) => {
    await withServer(async (server) => {
      const [admin, writer, reader, stranger] = await homes(t, 4);
      ok(t, await runCli(admin!, ['vault', 'create', 'team', '--server', server.url]), 'create');
      ok(t, await runCli(admin!, ['set', 'team', 'before', 'written before sharing']), 'set');
      const adminWho = await whoami(t, admin!);
      const writerWho = await whoami(t, writer!);
      const readerWho = await whoami(t, reader!);
      const strangerWho = await whoami(t, stranger!);

      // The invite prints the token alone on stdout and the invitee's fingerprint on stderr.
      const invite = ok(t, await runCli(admin!, ['vault', 'invite', 'team', '--to', writerWho.identity]), 'invite');
      const token = invite.out.trim();
      t.regex(token, /^e2ekv-invite1-[A-Za-z0-9_-]+$/);
      t.is(invite.out, `${token}\n`);
      t.true(invite.stderr.includes(writerWho.fingerprint), invite.stderr);
      t.true(invite.stderr.includes(adminWho.fingerprint), invite.stderr);
      // A token made for one device does not open on another.
      const wrongDevice = await runCli(stranger!, ['vault', 'join', token, '--name', 'team']);
      t.is(wrongDevice.code, 6, wrongDevice.stderr);
      t.regex(wrongDevice.stderr, /another device/);
      const joined = ok(t, await runCli(writer!, ['vault', 'join', token, '--name', 'team']), 'join');
      t.regex(joined.out, /Joined vault team .* as writer/);
      t.true(joined.out.includes(adminWho.fingerprint), 'join shows the inviter fingerprint');

      // The writer reads what was there and writes; the admin reads that.
      t.is(ok(t, await runCli(writer!, ['get', 'team', 'before']), 'writer get').out, 'written before sharing\n');
      ok(t, await runCli(writer!, ['set', 'team', 'from-writer', 'hello from the writer']), 'writer set');
      t.is(ok(t, await runCli(admin!, ['get', 'team', 'from-writer']), 'admin get').out, 'hello from the writer\n');

      // A writer cannot invite; a reader reads and cannot write.
      const writerInvites = await runCli(writer!, ['vault', 'invite', 'team', '--to', readerWho.identity]);
      t.is(writerInvites.code, 6, writerInvites.stderr);
      t.regex(writerInvites.stderr, /PERMISSION_DENIED.*admin/);
      const asReader = await inviteAndJoin(t, admin!, 'team', reader!, 'reader');
      t.is(asReader.role, 'reader');
      t.is(asReader.inviterFingerprint, adminWho.fingerprint);
      t.is(ok(t, await runCli(reader!, ['get', 'team', 'from-writer']), 'reader get').out, 'hello from the writer\n');
      const readerWrites = await runCli(reader!, ['set', 'team', 'k', 'v']);
      t.is(readerWrites.code, 6, readerWrites.stderr);
      t.regex(readerWrites.stderr, /reader/);

      // Members, as each device's own replay says.
      const members = JSON.parse(
        ok(t, await runCli(writer!, ['vault', 'members', 'team', '--json']), 'members').out,
      ) as Members;
      const roles = Object.fromEntries(members.members.map((m) => [m.device, m.role]));
      t.deepEqual(roles, { [adminWho.device]: 'admin', [writerWho.device]: 'writer', [readerWho.device]: 'reader' });
      t.deepEqual(
        members.members.filter((m) => m.self).map((m) => m.device),
        [writerWho.device],
      );
      const writerEntry = members.members.find((m) => m.device === writerWho.device)!;
      t.is(writerEntry.identity, writerWho.identity);
      t.is(writerEntry.fingerprint, writerWho.fingerprint);
      const text = ok(t, await runCli(admin!, ['vault', 'members', 'team']), 'members text').out;
      t.regex(text, new RegExp(`admin +${adminWho.fingerprint} +\\(this device\\)`));
      t.regex(text, new RegExp(`reader +${readerWho.fingerprint}`));

      // Mistakes: a mangled identity, a garbled token, a member that is not one, this device itself.
      const mangled = await runCli(admin!, [
        'vault',
        'invite',
        'team',
        '--to',
        `${strangerWho.identity.slice(0, -3)}AAA`,
      ]);
      t.is(mangled.code, 2, mangled.stderr);
      t.regex(mangled.stderr, /--to is not a usable identity string.*whoami/);
      const garbled = await runCli(stranger!, ['vault', 'join', `${token.slice(0, 40)}`]);
      t.is(garbled.code, 2, garbled.stderr);
      t.is((await runCli(admin!, ['vault', 'remove', 'team', strangerWho.identity])).code, 3);
      const self = await runCli(admin!, ['vault', 'remove', 'team', adminWho.device]);
      t.is(self.code, 2, self.stderr);
      t.regex(self.stderr, /cannot remove itself/);
    });
  },
);

test.serial(
  'remove: a new key epoch the removed device cannot read; the others read, write and keep its secret',
  async (t) => {
    await withServer(async (server) => {
      const [admin, writer, reader] = await homes(t, 3);
      ok(t, await runCli(admin!, ['vault', 'create', 'team', '--server', server.url]), 'create');
      ok(t, await runCli(admin!, ['set', 'team', 'before', 'written before sharing']), 'set');
      await inviteAndJoin(t, admin!, 'team', writer!, 'writer');
      await inviteAndJoin(t, admin!, 'team', reader!, 'reader');
      const writerWho = await whoami(t, writer!);
      t.is(ok(t, await runCli(writer!, ['get', 'team', 'before']), 'writer get').out, 'written before sharing\n');

      // Remove the writer (by a prefix of its device id): a new epoch, which the reader learns and the writer cannot.
      const removed = ok(
        t,
        await runCli(admin!, ['vault', 'remove', 'team', writerWho.device.slice(0, 12), '--ack', 'all']),
        'remove',
      );
      t.regex(removed.out, new RegExp(`Removed device ${writerWho.device}`));
      t.regex(removed.out, /Started key epoch 1/);
      ok(t, await runCli(admin!, ['set', 'team', 'after', 'written after the removal']), 'set after');
      t.is(ok(t, await runCli(admin!, ['get', 'team', 'after']), 'admin get after').out, 'written after the removal\n');
      t.is(
        ok(t, await runCli(reader!, ['get', 'team', 'after']), 'reader get after').out,
        'written after the removal\n',
      );
      const removedReads = await runCli(writer!, ['get', 'team', 'after']);
      t.is(removedReads.code, 6, `the removed device reads nothing new: ${removedReads.stderr}`);
      t.is(removedReads.out, '');
      t.is((await runCli(writer!, ['set', 'team', 'k', 'v'])).code, 6, 'the removed device cannot write');
      // What the removed device verified before stays on it (said in the docs).
      t.is(
        ok(t, await runCli(writer!, ['get', 'team', 'before', '--read', 'local']), 'local').out,
        'written before sharing\n',
      );
      const after = JSON.parse(
        ok(t, await runCli(admin!, ['vault', 'members', 'team', '--json']), 'members').out,
      ) as Members;
      t.is(after.epoch, 1);
      t.false(after.members.some((m) => m.device === writerWho.device));

      // Both remaining devices keep the epoch-1 secret in their keystores, not only in their local replicas.
      for (const home of [admin!, reader!]) {
        const keystore = await openKeystore(
          (await readKeystoreFile(path.join(home, 'keystore.json')))!,
          TEST_PASSPHRASE,
        );
        t.deepEqual(
          keystore.vaults.find((v) => v.name === 'team')?.epochs?.map((e) => e.epoch),
          [1],
          home,
        );
      }
      // The removed device never held it.
      const removedKeystore = await openKeystore(
        (await readKeystoreFile(path.join(writer!, 'keystore.json')))!,
        TEST_PASSPHRASE,
      );
      t.is(removedKeystore.vaults.find((v) => v.name === 'team')?.epochs, undefined);
    });
  },
);

test.serial(
  "a person's second device joins by invite; revoking the lost first device leaves the others working",
  async (t) => {
    await withServer(async (server) => {
      const [laptop, desktop, phone] = await homes(t, 3);
      ok(t, await runCli(laptop!, ['vault', 'create', 'mine', '--server', server.url]), 'create');
      ok(t, await runCli(laptop!, ['set', 'mine', 'k', 'from the laptop']), 'set');
      t.is((await inviteAndJoin(t, laptop!, 'mine', desktop!, 'admin')).role, 'admin');
      // The second device, an admin, invites a third.
      t.is((await inviteAndJoin(t, desktop!, 'mine', phone!, 'writer')).role, 'writer');
      t.is(ok(t, await runCli(phone!, ['get', 'mine', 'k']), 'phone get').out, 'from the laptop\n');

      // The laptop is lost: the desktop removes it (the vault's creator).
      const laptopWho = await whoami(t, laptop!);
      ok(t, await runCli(desktop!, ['vault', 'remove', 'mine', laptopWho.identity, '--ack', 'all']), 'remove laptop');
      ok(t, await runCli(desktop!, ['set', 'mine', 'k', 'after the laptop was lost']), 'desktop set');
      ok(t, await runCli(phone!, ['set', 'mine', 'p', 'from the phone']), 'phone set');
      t.is(ok(t, await runCli(phone!, ['get', 'mine', 'k']), 'phone get').out, 'after the laptop was lost\n');
      t.is(ok(t, await runCli(desktop!, ['get', 'mine', 'p']), 'desktop get').out, 'from the phone\n');
      const lost = await runCli(laptop!, ['get', 'mine', 'k']);
      t.is(lost.code, 6, lost.stderr);
      t.is((await runCli(laptop!, ['set', 'mine', 'k', 'from a thief'])).code, 6);
      t.is(ok(t, await runCli(phone!, ['get', 'mine', 'k']), 'phone get').out, 'after the laptop was lost\n');
    });
  },
);
