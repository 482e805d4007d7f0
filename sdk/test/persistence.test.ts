/**
 * The local replica across restarts: state comes back from the store (offline
 * too), unpushed writes survive and are pushed later, and a store altered on
 * disk is refused instead of believed.
 */
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { createClient, createIdentity, MemoryLocalStore, publicIdentity } from '../src/index.js';
import { openFileLocalStore } from '../src/node/index.js';
import { startServerProcess, tempDir } from '../../server/test/support/process.js';

test('a restarted client gets its vault back from the store, offline, and pushes what it wrote offline', async (t) => {
  const data = await tempDir();
  let server = await startServerProcess(data.dir);
  const port = new URL(server.url).port;
  try {
    const identity = createIdentity();
    const store = new MemoryLocalStore();
    const first = await createClient({ identity, servers: [server.url], store });
    const { vault, access } = await first.createVault();
    await vault.set('k', { v: 1 });
    await vault.set('big', new Uint8Array(10_000).fill(7));
    await server.stop();

    // Offline: the vault opens from the local replica, and a local write is durable.
    const offline = await createClient({ identity, servers: [server.url], store });
    const reopened = await offline.openVault(access);
    t.deepEqual(await reopened.get('k'), { v: 1 });
    t.deepEqual(await reopened.get('big'), new Uint8Array(10_000).fill(7));
    await reopened.set('written offline', true, { ack: 'local' });

    // Back online (same port): another restart pushes the offline write.
    server = await startServerProcess(data.dir, ['--port', port]);
    const online = await createClient({ identity, servers: [server.url], store });
    const synced = await online.openVault(access);
    t.is(await synced.get('written offline'), true);
    const fresh = await createClient({ identity: createIdentity(), servers: [server.url] });
    await t.throwsAsync(fresh.openVault(access), { message: /not a reader or writer or admin/ });
    const report = await synced.verify();
    t.is(report.replicas[0]!.logs[0]!.size, 3, 'the replica holds all three writes');
  } finally {
    await server.stop();
    await data.remove();
  }
});

test('a file store that was altered on disk is refused with INTEGRITY', async (t) => {
  const data = await tempDir();
  const local = await tempDir();
  const server = await startServerProcess(data.dir);
  try {
    const bobIdentity = createIdentity();
    const alice = await createClient({ identity: createIdentity(), servers: [server.url] });
    const { vault, access } = await alice.createVault();
    await vault.set('k', 'v');
    await vault.addMember(publicIdentity(bobIdentity), 'reader');

    const store = await openFileLocalStore(local.dir);
    const bob = await createClient({ identity: bobIdentity, servers: [server.url], store });
    const b = await bob.openVault(access);
    t.is(await b.get('k'), 'v');
    await store.close();

    // Flip one byte of Alice's log as Bob's disk holds it.
    const vaultDir = path.join(local.dir, access.vaultId);
    const logFile = (await readdir(vaultDir)).find((f) => f.startsWith(alice.deviceId) && f.endsWith('.log'));
    t.truthy(logFile, 'the store keeps a file per device log');
    const file = path.join(vaultDir, logFile!);
    const bytes = await readFile(file);
    bytes[bytes.length - 10]! ^= 0x01;
    await writeFile(file, bytes);

    const again = await openFileLocalStore(local.dir);
    const restarted = await createClient({ identity: bobIdentity, servers: [server.url], store: again });
    const error = await t.throwsAsync(restarted.openVault(access));
    t.is((error as { code?: string }).code, 'INTEGRITY');
    t.regex(error?.message ?? '', /local replica is damaged/);
    await again.close();
  } finally {
    await server.stop();
    await data.remove();
    await local.remove();
  }
});
