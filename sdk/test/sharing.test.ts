/**
 * Sharing end to end against real replica processes (protocol/SPEC.md 21):
 * invitations carry the secrets, roles hold on the client as on the replica,
 * removal starts a new key epoch that the removed device cannot open, and
 * "removal wins" voids the removed device's later writes on every client,
 * whichever order it learns of them in.
 */
import test from 'ava';
import { E2ekvError, formatIdentityString } from '@e2ekv/protocol';
import { createClient, createIdentity, publicIdentity, type Client, type Identity } from '../src/index.js';
import { startServerProcess, tempDir, type ServerProcess } from '../../server/test/support/process.js';
import { asyncCodeOf } from '../../test/support/errors.js';

async function withServers(count: number, run: (servers: ServerProcess[]) => Promise<void>): Promise<void> {
  const dirs = await Promise.all(Array.from({ length: count }, () => tempDir()));
  const servers: ServerProcess[] = [];
  try {
    for (const d of dirs) servers.push(await startServerProcess(d.dir));
    await run(servers);
  } finally {
    for (const s of servers) await s.stop();
    for (const d of dirs) await d.remove();
  }
}

function client(servers: readonly ServerProcess[], identity: Identity = createIdentity()): Promise<Client> {
  return createClient({ identity, servers: servers.map((s) => s.url) });
}

test('an invitation lets a device in with its role; members agree on the list', async (t) => {
  await withServers(1, async (servers) => {
    const alice = await client(servers);
    const bob = await client(servers);
    const { vault: a } = await alice.createVault();
    await a.set('before', 'written before the invitation');
    const token = await a.invite(bob.identityString, 'writer');
    t.regex(token, /^e2ekv-invite1-/);

    const joined = await bob.joinVault(token);
    t.is(joined.role, 'writer');
    t.is(joined.inviter, alice.deviceId);
    t.is(joined.inviterFingerprint, alice.fingerprint);
    t.is(await joined.vault.get('before'), 'written before the invitation');
    await joined.vault.set('from-bob', 'hello');
    t.is(await a.get('from-bob', { read: 'one' }), 'hello');

    const expected = [
      { device: alice.deviceId, role: 'admin', identity: alice.identityString },
      { device: bob.deviceId, role: 'writer', identity: bob.identityString },
    ].sort((x, y) => (x.device < y.device ? -1 : 1));
    const view = (members: ReturnType<typeof a.members>) =>
      members.map(({ device, role, identity }) => ({ device, role, identity }));
    t.deepEqual(view(a.members()), expected);
    t.deepEqual(view(joined.vault.members()), expected);
    t.true(joined.vault.members().find((m) => m.device === bob.deviceId)!.self);
  });
});

test('a token made for one device is refused by another', async (t) => {
  await withServers(1, async (servers) => {
    const alice = await client(servers);
    const bob = await client(servers);
    const mallory = await client(servers);
    const { vault } = await alice.createVault();
    const token = await vault.invite(bob.identityString, 'reader');
    t.is(await asyncCodeOf(() => mallory.joinVault(token)), 'PERMISSION_DENIED');
  });
});

test('a reader reads but cannot write; a writer cannot change membership', async (t) => {
  await withServers(1, async (servers) => {
    const alice = await client(servers);
    const reader = await client(servers);
    const writer = await client(servers);
    const { vault: a } = await alice.createVault();
    await a.set('k', 'v');
    const r = (await reader.joinVault(await a.invite(reader.identityString, 'reader'))).vault;
    const w = (await writer.joinVault(await a.invite(writer.identityString, 'writer'))).vault;
    t.is(await r.get('k'), 'v');
    t.is(await asyncCodeOf(() => r.set('k', 'from a reader')), 'PERMISSION_DENIED');
    const stranger = formatIdentityString(publicIdentity(createIdentity()));
    t.is(await asyncCodeOf(() => w.invite(stranger, 'reader')), 'PERMISSION_DENIED');
    t.is(await asyncCodeOf(() => w.removeMember(reader.deviceId)), 'PERMISSION_DENIED');
    t.is(await a.get('k', { read: 'one' }), 'v');
  });
});

test('removal starts a new epoch: the removed device reads nothing new, the others go on', async (t) => {
  await withServers(1, async (servers) => {
    const alice = await client(servers);
    const bob = await client(servers);
    const carol = await client(servers);
    const { vault: a } = await alice.createVault();
    await a.set('old', 'before removal');
    const b = (await bob.joinVault(await a.invite(bob.identityString, 'writer'))).vault;
    const c = (await carol.joinVault(await a.invite(carol.identityString, 'writer'))).vault;
    t.is(a.epoch, 0);

    await a.removeMember(bob.identityString, { ack: 'all' });
    t.is(a.epoch, 1);
    t.false(a.members().some((m) => m.device === bob.deviceId));
    await a.set('new', 'after removal');

    // The replica refuses the removed device from now on, reads and writes.
    t.is(await asyncCodeOf(() => b.sync()), 'PERMISSION_DENIED');
    t.is(await b.get('old'), 'before removal', 'what it held before stays readable on its device');
    t.is(await b.get('new'), undefined);

    // Carol learns epoch 1 from the log (it was wrapped for her) and writes in it.
    t.is(await c.get('new', { read: 'one' }), 'after removal');
    t.is(c.epoch, 1);
    await c.set('from-carol', 'in epoch 1');
    t.is(await a.get('from-carol', { read: 'one' }), 'in epoch 1');
    t.deepEqual(
      c.access().epochs?.map((e) => e.epoch),
      [1],
    );
  });
});

test("removal wins: a removed writer's concurrent writes are ignored, in whatever order a reader meets them", async (t) => {
  // Two replicas that do not replicate to each other stand for a partition:
  // replica 0 learns of the removal, replica 1 takes the removed device's writes.
  await withServers(2, async (servers) => {
    const [r0, r1] = servers as [ServerProcess, ServerProcess];
    const aliceIdentity = createIdentity();
    const bobIdentity = createIdentity();
    const carolIdentity = createIdentity();
    const alice = await client(servers, aliceIdentity);
    const bob = await client(servers, bobIdentity);
    const { vault: a } = await alice.createVault();
    await a.set('k', 'before', { ack: 'all' });
    const token = await a.invite(bob.identityString, 'writer', { ack: 'all' });
    const carolToken = await a.invite((await client(servers, carolIdentity)).identityString, 'reader', { ack: 'all' });
    const joined = await bob.joinVault(token);
    await joined.vault.set('k', 'bob while a member', { ack: 'all' });
    await a.sync();

    // Alice removes bob on replica 0 only; bob, unaware, writes to replica 1 only.
    const aliceOn0 = await (await client([r0], aliceIdentity)).openVault(a.access());
    await aliceOn0.removeMember(bob.deviceId);
    const bobOn1 = await (await client([r1], bobIdentity)).openVault(joined.access);
    await bobOn1.set('k', 'bob after removal');
    await bobOn1.set('other', 'bob after removal');

    for (const order of [
      [r0, r1],
      [r1, r0],
    ]) {
      // A fresh installation of carol, a reader that never wrote, pulls in this order.
      const view = (await (await client(order, carolIdentity)).joinVault(carolToken)).vault;
      t.is(await view.get('k'), 'bob while a member', `order ${order.map((s) => s.url).join(' ')}`);
      t.is(await view.get('other'), undefined);
      t.true(view.status().rejected.some((r) => r.device === bob.deviceId && r.reason === 'removed'));
    }
  });
});

test('a removal that voids writes already applied tells watchers of exactly the keys it changed, once', async (t) => {
  // Replica 1 takes bob's late writes, replica 0 the removal that voids them
  // (two replicas that do not replicate stand for a partition): carol applies
  // the writes first, then learns of the removal and rebuilds her state.
  await withServers(2, async (servers) => {
    const [r0, r1] = servers as [ServerProcess, ServerProcess];
    const aliceIdentity = createIdentity();
    const bobIdentity = createIdentity();
    const alice = await client(servers, aliceIdentity);
    const bob = await client(servers, bobIdentity);
    const carol = await client(servers);
    const { vault: a } = await alice.createVault();
    await a.set('stable', 'untouched', { ack: 'all' });
    const bobToken = await a.invite(bob.identityString, 'writer', { ack: 'all' });
    const c = (await carol.joinVault(await a.invite(carol.identityString, 'reader', { ack: 'all' }))).vault;
    const b = (await bob.joinVault(bobToken)).vault;
    await b.set('k', 'bob while a member', { ack: 'all' });
    await a.sync();
    await c.sync();

    const changes: string[] = [];
    const rejections: string[] = [];
    const stop = c.watch((change) => changes.push(change.key));
    c.onError((error) => {
      if (error instanceof E2ekvError && error.code === 'PERMISSION_DENIED')
        rejections.push(String(error.details?.['index']));
    });
    try {
      // Bob, cut off from replica 0, writes to replica 1; carol applies it.
      const bobOn1 = await (await client([r1], bobIdentity)).openVault(b.access());
      await bobOn1.set('k', 'bob after removal');
      await bobOn1.set('other', 'bob after removal');
      await c.sync();
      t.is(await c.get('other'), 'bob after removal');
      // Alice, who never saw those writes, removes bob on replica 0.
      const aliceOn0 = await (await client([r0], aliceIdentity)).openVault(a.access());
      await aliceOn0.removeMember(bob.deviceId);
      const seen = changes.length;
      await c.sync();
      t.is(await c.get('k'), 'bob while a member');
      t.is(await c.get('other'), undefined);
      t.is(await c.get('stable'), 'untouched');
      // Told that k and other changed (other is gone), not the replay of stable; each voided write reported once.
      t.deepEqual([...new Set(changes.slice(seen))].sort(), ['k', 'other']);
      t.is(changes.slice(seen).length, 2);
      t.deepEqual(rejections.sort(), [...new Set(rejections)].sort());
      t.is(rejections.length, 2);
    } finally {
      stop();
    }
  });
});

test('a second device of the same person joins by invitation; removing it leaves the first working', async (t) => {
  await withServers(1, async (servers) => {
    const laptop = await client(servers);
    const phone = await client(servers);
    const { vault: l } = await laptop.createVault();
    await l.set('k', 1);
    const p = (await phone.joinVault(await l.invite(phone.identityString, 'admin'))).vault;
    await p.set('k', 2);
    t.is(await l.get('k', { read: 'one' }), 2);
    // The phone is lost: the laptop removes it.
    await l.removeMember(phone.deviceId);
    await l.set('k', 3);
    t.is(await l.get('k', { read: 'one' }), 3);
    t.is(await asyncCodeOf(() => p.set('k', 4)), 'PERMISSION_DENIED');
  });
});

test('two admins that remove different members concurrently: every remaining member reads everything', async (t) => {
  await withServers(1, async (servers) => {
    const alice = await client(servers);
    const dave = await client(servers);
    const bob = await client(servers);
    const carol = await client(servers);
    const erin = await client(servers);
    const { vault: a } = await alice.createVault();
    const d = (await dave.joinVault(await a.invite(dave.identityString, 'admin'))).vault;
    await a.invite(bob.identityString, 'writer');
    await a.invite(carol.identityString, 'writer');
    const e = (await erin.joinVault(await a.invite(erin.identityString, 'writer'))).vault;
    await d.sync();
    // Concurrent: neither admin syncs before removing.
    await a.removeMember(bob.deviceId);
    await d.removeMember(carol.deviceId);
    await a.set('from-alice', 'a');
    await d.set('from-dave', 'd');
    await e.sync();
    t.is(await e.get('from-alice'), 'a');
    t.is(await e.get('from-dave'), 'd');
    t.is(e.epoch, 1);
    await e.set('from-erin', 'e');
    t.is(await a.get('from-erin', { read: 'one' }), 'e');
    t.is(await d.get('from-erin', { read: 'one' }), 'e');
    t.is(await a.get('from-dave'), 'd');
  });
});

test("an admin changes a member's role; a writer made reader can no longer write", async (t) => {
  await withServers(1, async (servers) => {
    const alice = await client(servers);
    const bob = await client(servers);
    const { vault: a } = await alice.createVault();
    const b = (await bob.joinVault(await a.invite(bob.identityString, 'writer'))).vault;
    await b.set('k', 'while a writer');
    await a.setRole(bob.deviceId, 'reader');
    t.is(a.members().find((m) => m.device === bob.deviceId)?.role, 'reader');
    await b.sync();
    t.is(b.role, 'reader');
    t.is(await asyncCodeOf(() => b.set('k', 'as a reader')), 'PERMISSION_DENIED');
    t.is(await b.get('k'), 'while a writer');
    await a.setRole(bob.identityString, 'admin');
    await b.sync();
    t.is(b.role, 'admin');
  });
});
