/**
 * The SDK end to end against a real replica process: write, read, list,
 * delete; a second device reads after sync; concurrent writes become siblings
 * that resolve to the same winner everywhere; a causally later write wins.
 */
import test from 'ava';
import { MemoryLocalStore, createClient, createIdentity, publicIdentity, type Client } from '../src/index.js';
import { startServerProcess, tempDir, type ServerProcess } from '../../server/test/support/process.js';
import { withServer } from './support/helpers.js';

async function client(server: ServerProcess, identity = createIdentity()): Promise<Client> {
  return createClient({ identity, servers: [server.url] });
}

test('set, get, list, batch and delete, acknowledged by the replica', async (t) => {
  await withServer(async (server) => {
    const alice = await client(server);
    const { vault } = await alice.createVault();
    await vault.set('notes/todo', { done: false, items: ['milk'] });
    const bytes = Uint8Array.of(1, 2, 3);
    await vault.set('notes/bytes', bytes);
    bytes[0] = 9; // the caller's buffer is not the stored value
    await vault.batch([
      { name: 'a', value: 'first' },
      { name: 'b', value: 42 },
    ]);
    t.deepEqual(await vault.get('notes/todo'), { done: false, items: ['milk'] });
    t.deepEqual(await vault.get('notes/bytes'), Uint8Array.of(1, 2, 3));
    t.deepEqual(await vault.list(), ['a', 'b', 'notes/bytes', 'notes/todo']);
    t.deepEqual(await vault.list({ prefix: 'notes/' }), ['notes/bytes', 'notes/todo']);
    await vault.delete('a');
    t.is(await vault.get('a'), undefined);
    t.deepEqual(await vault.list(), ['b', 'notes/bytes', 'notes/todo']);
    t.is(await vault.get('never'), undefined);
  });
});

test('a second device reads after sync; concurrent writes resolve to one winner everywhere', async (t) => {
  await withServer(async (server) => {
    const aliceIdentity = createIdentity();
    const bobIdentity = createIdentity();
    const alice = await client(server, aliceIdentity);
    const bob = await client(server, bobIdentity);
    const { vault: a, access } = await alice.createVault();
    await a.set('shared', 'from alice');
    await a.addMember(publicIdentity(bobIdentity), 'writer');
    const b = await bob.openVault(access);
    t.is(await b.get('shared'), 'from alice');

    // Concurrent: neither has seen the other's write.
    await a.set('x', 'alice');
    await b.set('x', 'bob');
    await a.sync();
    await b.sync();
    const siblingsA = await a.getAll('x');
    const siblingsB = await b.getAll('x');
    t.is(siblingsA.length, 2);
    t.deepEqual(siblingsA, siblingsB);
    t.is(await a.get('x'), await b.get('x'));
    t.true(['alice', 'bob'].includes((await a.get('x')) as string));

    // Causally later: Bob has seen both, writes again; it supersedes both everywhere.
    await b.set('x', 'resolved by bob');
    await a.sync();
    t.deepEqual(
      (await a.getAll('x')).map((s) => s.value),
      ['resolved by bob'],
    );
    t.is(await b.get('x'), 'resolved by bob');
  });
});

test('a device that is not a member cannot write, and the error says so', async (t) => {
  await withServer(async (server) => {
    const alice = await client(server);
    const { access } = await alice.createVault();
    const mallory = await client(server);
    const error = await t.throwsAsync(async () => {
      const m = await mallory.openVault(access);
      await m.set('k', 'v');
    });
    t.is((error as { code?: string }).code, 'PERMISSION_DENIED');
    t.regex(error?.message ?? '', /is not a member of vault [0-9a-f]{64}: an admin must add it first/);
  });
});

test("watch delivers another device's writes through the push channel", async (t) => {
  await withServer(async (server) => {
    const bobIdentity = createIdentity();
    const alice = await client(server);
    const bob = await client(server, bobIdentity);
    const { vault: a, access } = await alice.createVault();
    await a.addMember(publicIdentity(bobIdentity), 'reader');
    const b = await bob.openVault(access);
    const seen = new Promise<{ key: string; device: string }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no change within 10 s')), 10_000);
      const stop = b.watch((change) => {
        if (change.key !== 'live') return;
        clearTimeout(timer);
        stop();
        resolve(change);
      });
    });
    // Give the push channel a moment to connect, then write on the other device.
    await new Promise((resolve) => setTimeout(resolve, 300));
    await a.set('live', { n: 1 });
    const change = await seen;
    t.is(change.device, alice.deviceId);
    t.deepEqual(await b.get('live'), { n: 1 });
  });
});

test('with two replicas, ack all puts the write on both and verify finds them consistent', async (t) => {
  const first = await tempDir();
  const second = await tempDir();
  const one = await startServerProcess(first.dir);
  const two = await startServerProcess(second.dir);
  try {
    const alice = await createClient({ identity: createIdentity(), servers: [one.url, two.url] });
    const { vault } = await alice.createVault();
    await vault.set('k', 'v', { ack: 'all' });
    await vault.batch([{ name: 'k2', value: 2 }], { ack: 'quorum' });
    const report = await vault.verify();
    t.deepEqual(
      report.replicas.map((r) => [r.url, r.logs.map((l) => [l.device, l.size])]),
      [
        [one.url, [[alice.deviceId, 2]]],
        [two.url, [[alice.deviceId, 2]]],
      ],
    );
    // One replica down: 'one' still succeeds, 'all' reports UNAVAILABLE and keeps the write locally.
    await two.stop();
    await vault.set('k3', 3, { ack: 'one' });
    const error = await t.throwsAsync(vault.set('k4', 4, { ack: 'all' }));
    t.is((error as { code?: string }).code, 'UNAVAILABLE');
    t.is(await vault.get('k4'), 4);
  } finally {
    await one.stop();
    await two.stop();
    await first.remove();
    await second.remove();
  }
});

test('read levels: local answers from this device, one and quorum pull first, quorum needs a majority', async (t) => {
  const dirs = [await tempDir(), await tempDir()];
  const servers = await Promise.all(dirs.map((d) => startServerProcess(d.dir)));
  try {
    const urls = servers.map((s) => s.url);
    const aliceIdentity = createIdentity();
    const bobIdentity = createIdentity();
    const alice = await createClient({ identity: aliceIdentity, servers: urls });
    const bob = await createClient({ identity: bobIdentity, servers: urls });
    const { vault: a, access } = await alice.createVault();
    await a.addMember(publicIdentity(bobIdentity), 'writer', { ack: 'all' });
    const b = await bob.openVault(access);
    await a.set('k', 'new', { ack: 'all' });
    t.is(await b.get('k'), undefined, 'local: not pulled yet');
    t.is(await b.get('k', { read: 'one' }), 'new');
    await a.set('k', 'newer', { ack: 'all' });
    t.deepEqual(await b.list({ read: 'quorum' }), ['k']);
    t.is(await b.get('k'), 'newer');
    // With one of two replicas down, 'one' still reads but a majority of two is two.
    await servers[1]!.stop();
    await a.set('k', 'newest', { ack: 'one' });
    t.is(await b.get('k', { read: 'one' }), 'newest');
    const error = await t.throwsAsync(b.get('k', { read: 'quorum' }));
    t.is((error as { code?: string }).code, 'UNAVAILABLE');
    t.regex((error as Error).message, /1 of 2 replicas answered, 2 needed/);
    t.is(await b.get('k'), 'newest', 'what was verified stays readable locally');
  } finally {
    for (const s of servers) await s.stop();
    for (const d of dirs) await d.remove();
  }
});

test('a push longer than the replica takes in one append goes in chunks, each cosigned', async (t) => {
  await withServer(async (server) => {
    const identity = createIdentity();
    const alice = await client(server, identity);
    const { vault, access } = await alice.createVault();
    const info = (await (await fetch(`${server.url}/v1/info`)).json()) as { limits: { maxBatchEntries: number } };
    const count = info.limits.maxBatchEntries + 100;
    for (let i = 0; i < count; i++) await vault.set(`k${i}`, i, { ack: 'local' });
    await vault.sync();
    const report = await vault.verify();
    t.deepEqual(report.replicas[0]!.logs, [{ device: alice.deviceId, size: count }]);
    const again = await (await client(server, identity)).openVault(access);
    t.is((await again.list()).length, count);
    t.is(await again.get(`k${count - 1}`), count - 1);
  });
});

test('concurrent writes on one vault are all acknowledged, in order', async (t) => {
  await withServer(async (server) => {
    const alice = await client(server);
    const { vault } = await alice.createVault();
    await Promise.all(Array.from({ length: 8 }, (_, i) => vault.set(`k${i}`, i, { ack: 'one' })));
    const report = await vault.verify();
    t.deepEqual(report.replicas[0]!.logs, [{ device: alice.deviceId, size: 8 }]);
    t.deepEqual(await vault.list(), ['k0', 'k1', 'k2', 'k3', 'k4', 'k5', 'k6', 'k7']);
  });
});

test('a document write that names the versions it merged is refused if another version arrived first', async (t) => {
  await withServer(async (server) => {
    const bobIdentity = createIdentity();
    const alice = await client(server);
    const { vault: a, access } = await alice.createVault();
    await a.addMember(publicIdentity(bobIdentity), 'writer');
    const b = await (await client(server, bobIdentity)).openVault(access);
    await a.batch([{ name: 'doc', automerge: Uint8Array.of(1) }]);
    const read = (await a.getAll('doc')).map((s) => ({ device: s.device, index: s.index }));
    // Bob's version arrives at Alice after she read the key.
    await b.sync();
    await b.batch([{ name: 'doc', automerge: Uint8Array.of(2) }]);
    await a.sync();
    const refused = await t.throwsAsync(a.batch([{ name: 'doc', automerge: Uint8Array.of(3), supersedes: read }]));
    t.is((refused as { code?: string }).code, 'CONFLICT');
    t.is((await a.getAll('doc')).length, 1, 'nothing was written');
    const now = (await a.getAll('doc')).map((s) => ({ device: s.device, index: s.index }));
    await a.batch([{ name: 'doc', automerge: Uint8Array.of(4), supersedes: now }]);
    t.deepEqual(
      (await a.getAll('doc')).map((s) => s.value),
      [Uint8Array.of(4)],
    );
  });
});

test('watch catches up on writes made before its push channel opened', async (t) => {
  await withServer(async (server) => {
    const bobIdentity = createIdentity();
    const alice = await client(server);
    const { vault: a, access } = await alice.createVault();
    await a.addMember(publicIdentity(bobIdentity), 'reader');
    const b = await (await client(server, bobIdentity)).openVault(access);
    await a.set('early', 'written before bob watched');
    const seen = new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no change within 10 s')), 10_000);
      const stop = b.watch((change) => {
        if (change.key !== 'early') return;
        clearTimeout(timer);
        stop();
        resolve(change.key);
      });
    });
    t.is(await seen, 'early');
    t.is(await b.get('early', { read: 'local' }), 'written before bob watched');
  });
});

test('a restored identity adopts its own log from the replica that serves the most of it', async (t) => {
  const dirs = [await tempDir(), await tempDir()];
  const servers = await Promise.all(dirs.map((d) => startServerProcess(d.dir)));
  try {
    const [full, short] = servers.map((s) => s.url) as [string, string];
    const identity = createIdentity();
    const store = new MemoryLocalStore();
    const both = await createClient({ identity, servers: [full, short], store });
    const { vault, access } = await both.createVault();
    await vault.set('k1', 1, { ack: 'all' });
    // The same installation, configured with one replica only: the other never hears of k2.
    const onlyFull = await createClient({ identity, servers: [full], store });
    await (await onlyFull.openVault(access)).set('k2', 2, { ack: 'one' });

    // Restored elsewhere, with the short replica listed first.
    const restored = await createClient({ identity, servers: [short, full] });
    const again = await restored.openVault(access);
    t.deepEqual(await again.list(), ['k1', 'k2']);
    await again.set('k3', 3, { ack: 'all' });
    const report = await again.verify();
    t.deepEqual(
      report.replicas.map((r) => r.logs),
      [[{ device: both.deviceId, size: 3 }], [{ device: both.deviceId, size: 3 }]],
    );
  } finally {
    for (const s of servers) await s.stop();
    for (const d of dirs) await d.remove();
  }
});

test('watch reports an unreachable replica once per outage, not at every retry', async (t) => {
  const { dir, remove } = await tempDir();
  const server = await startServerProcess(dir);
  try {
    const alice = await createClient({ identity: createIdentity(), servers: [server.url] });
    const { vault } = await alice.createVault();
    const errors: string[] = [];
    vault.onError((error) => errors.push((error as { code?: string }).code ?? String(error)));
    const opened = new Promise<void>((resolve) => setTimeout(resolve, 1_000));
    const stop = vault.watch(() => undefined);
    await opened;
    await server.stop();
    // Retries back off from 250 ms: within 4 s there are several.
    await new Promise((resolve) => setTimeout(resolve, 4_000));
    stop();
    t.deepEqual(errors, ['UNAVAILABLE']);
  } finally {
    await server.stop();
    await remove();
  }
});
