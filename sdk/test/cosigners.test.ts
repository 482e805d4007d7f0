/**
 * The k-of-n cosigner policy (ClientOptions.cosignerQuorum): another device's
 * entries are applied only once k replicas each proved them with a checkpoint
 * they cosigned. Two replicas that do not replicate stand in for one replica
 * that accepted entries the other never saw.
 */
import test from 'ava';
import { parseNote } from '@e2ekv/protocol';
import { MemoryLocalStore, createClient, createIdentity } from '../src/index.js';
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

test('with a cosigner quorum of 2, entries one replica alone vouches for are not applied', async (t) => {
  await withServers(2, async (servers) => {
    const [r0] = servers as [ServerProcess, ServerProcess];
    const urls = servers.map((s) => s.url);
    const admin = await createClient({ identity: createIdentity(), servers: urls });
    const { vault: a } = await admin.createVault();
    const reader = await createClient({ identity: createIdentity(), servers: urls, cosignerQuorum: 2 });
    const relaxed = await createClient({ identity: createIdentity(), servers: urls });
    const token = await a.invite(reader.identityString, 'reader', { ack: 'all' });
    const relaxedToken = await a.invite(relaxed.identityString, 'reader', { ack: 'all' });
    const r = (await reader.joinVault(token)).vault;
    const loose = (await relaxed.joinVault(relaxedToken)).vault;

    // A writer that reaches replica 0 only.
    const writerId = createIdentity();
    const writerOnR0 = await createClient({ identity: writerId, servers: [r0.url] });
    const w = (await writerOnR0.joinVault(await a.invite(writerOnR0.identityString, 'writer', { ack: 'all' }))).vault;
    await w.set('k', 'vouched for by one replica');
    t.is(await loose.get('k', { read: 'quorum' }), 'vouched for by one replica', 'a quorum of 1 takes it');
    t.is(await r.get('k', { read: 'quorum' }), undefined, 'a quorum of 2 waits for a second replica');

    // The writer's next installation reaches both: it adopts its log and pushes it to replica 1.
    const both = await (await createClient({ identity: writerId, servers: urls })).openVault(w.access());
    await both.set('k2', 'on both', { ack: 'all' });
    t.is(await r.get('k', { read: 'quorum' }), 'vouched for by one replica');
    // The pin keeps both cosignatures beside the device's.
    const info = await r.auditInfo();
    const log = info.logs.find((l) => l.device === writerOnR0.deviceId)!;
    t.is(parseNote(log.checkpoint!.note).signatures.length, 3);
  });
});

test('a quorum larger than the replicas is refused up front', async (t) => {
  await withServers(1, async (servers) => {
    t.is(
      await asyncCodeOf(() =>
        createClient({ identity: createIdentity(), servers: [servers[0]!.url], cosignerQuorum: 2 }),
      ),
      'INVALID_ARGUMENT',
    );
  });
});

test('what a quorum proved stays applied after a restart from the local store', async (t) => {
  await withServers(2, async (servers) => {
    const urls = servers.map((s) => s.url);
    const admin = await createClient({ identity: createIdentity(), servers: urls });
    const { vault: a } = await admin.createVault();
    await a.set('k', 'v', { ack: 'all' });
    const readerId = createIdentity();
    const store = new MemoryLocalStore();
    const reader = await createClient({ identity: readerId, servers: urls, cosignerQuorum: 2, store });
    const joined = await reader.joinVault(await a.invite(reader.identityString, 'reader', { ack: 'all' }));
    t.is(await joined.vault.get('k'), 'v');
    const again = await createClient({ identity: readerId, servers: urls, cosignerQuorum: 2, store });
    const reopened = await again.openVault(joined.access, { sync: false });
    t.is(await reopened.get('k'), 'v');
  });
});
