/**
 * The SDK end to end against a real replica process: write, read, list,
 * delete; a second device reads after sync; concurrent writes become siblings
 * that resolve to the same winner everywhere; a causally later write wins.
 */
import test from 'ava';
import { createClient, createIdentity, publicIdentity, type Client } from '../src/index.js';
import { startServerProcess, tempDir, type ServerProcess } from '../../server/test/support/process.js';

async function withServer(run: (server: ServerProcess) => Promise<void>): Promise<void> {
  const { dir, remove } = await tempDir();
  const server = await startServerProcess(dir);
  try {
    await run(server);
  } finally {
    await server.stop();
    await remove();
  }
}

async function client(server: ServerProcess, identity = createIdentity()): Promise<Client> {
  return createClient({ identity, servers: [server.url] });
}

test('set, get, list, batch and delete, acknowledged by the replica', async (t) => {
  await withServer(async (server) => {
    const alice = await client(server);
    const { vault } = await alice.createVault();
    await vault.set('notes/todo', { done: false, items: ['milk'] });
    await vault.set('notes/bytes', Uint8Array.of(1, 2, 3));
    await vault.batch([
      { name: 'a', value: 'first' },
      { name: 'b', value: 42 },
    ]);
    t.deepEqual(vault.get('notes/todo'), { done: false, items: ['milk'] });
    t.deepEqual(vault.get('notes/bytes'), Uint8Array.of(1, 2, 3));
    t.deepEqual(vault.list(), ['a', 'b', 'notes/bytes', 'notes/todo']);
    t.deepEqual(vault.list({ prefix: 'notes/' }), ['notes/bytes', 'notes/todo']);
    await vault.delete('a');
    t.is(vault.get('a'), undefined);
    t.deepEqual(vault.list(), ['b', 'notes/bytes', 'notes/todo']);
    t.is(vault.get('never'), undefined);
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
    t.is(b.get('shared'), 'from alice');

    // Concurrent: neither has seen the other's write.
    await a.set('x', 'alice');
    await b.set('x', 'bob');
    await a.sync();
    await b.sync();
    const siblingsA = a.getAll('x');
    const siblingsB = b.getAll('x');
    t.is(siblingsA.length, 2);
    t.deepEqual(siblingsA, siblingsB);
    t.is(a.get('x'), b.get('x'));
    t.true(['alice', 'bob'].includes(a.get('x') as string));

    // Causally later: Bob has seen both, writes again; it supersedes both everywhere.
    await b.set('x', 'resolved by bob');
    await a.sync();
    t.deepEqual(
      a.getAll('x').map((s) => s.value),
      ['resolved by bob'],
    );
    t.is(b.get('x'), 'resolved by bob');
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
    t.regex(error?.message ?? '', /is not a reader or writer or admin of this vault/);
  });
});
