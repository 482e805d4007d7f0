/**
 * Replication between replicas (SPEC.md section 22): pushes, anti-entropy,
 * catch-up after a restart, cost in proportion to the difference, peer
 * authentication, peers that lie, and equivocation seen across replicas.
 * Replicas are in-process servers on 127.0.0.1:0 with SQLite storage, each
 * behind a relay its peers use (support/replicas.ts); clients talk to them
 * directly, so cutting a relay partitions replicas, not clients.
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import anyTest from 'ava';
import type { ExecutionContext } from 'ava';
import {
  parseAppendResponse,
  randomBytes,
  ed25519Signer,
  signRequest,
  toBase64,
  utf8,
  verifyDeviceCheckpoint,
  fromHex,
} from '@e2ekv/protocol';
import type { AppendRequest } from '@e2ekv/protocol';
import { signPeerRequest } from '../src/peer-auth.js';
import type { Shipment } from '../src/peer-messages.js';
import { request } from './support/client.js';
import { startFakePeer, type FakePeer } from './support/fake-peer.js';
import { startServerProcess, tempDir } from './support/process.js';
import { startRelay } from './support/relay.js';
import {
  ReplicaSet,
  append,
  createVault,
  direct,
  eventually,
  vector,
  write,
  type Replica,
} from './support/replicas.js';
import { TestDevice } from './support/writer.js';

// One at a time: each test runs two or three replicas, and the machine has two cores.
const test = anyTest.serial;

// Long enough that only a push can deliver within a test's patience.
const NO_ROUNDS = { antiEntropyIntervalMs: 600_000, maxBackoffMs: 1_000 };
// Short, for tests that rely on anti-entropy.
const FAST = { antiEntropyIntervalMs: 300, maxBackoffMs: 500, requestTimeoutMs: 5_000 };

function two(set: ReplicaSet): [Replica, Replica] {
  return [set.replicas[0]!, set.replicas[1]!];
}

async function connected(set: ReplicaSet): Promise<void> {
  await eventually(
    'peers connected',
    () => set.replicas.every((r, i) => r.server === undefined || set.status(i).peers.every((p) => p.state === 'ok')),
    60_000,
  );
}

async function evidenceAt(replica: Replica, vaultId: string, member: TestDevice) {
  const res = await request(direct(replica), 'GET', `/v1/vaults/${vaultId}/evidence`, {
    signer: member.signer,
    audience: replica.audience,
  });
  return (res.body as { evidence: { device: string; first: string; second: string }[] }).evidence;
}

// ---------------------------------------------------------------------------
// Pushes and anti-entropy

test('a device append at one replica is pushed to its peer at once', async (t) => {
  const set = await ReplicaSet.create(2, { replication: NO_ROUNDS });
  t.teardown(() => set.cleanup());
  const [a, b] = two(set);
  await connected(set);
  const alice = await TestDevice.create();
  const { signedGenesis, vaultId } = await alice.genesis();
  // The device creates the vault on both, as the SDK does; only A receives its appends.
  for (const r of [a, b]) {
    const res = await request(direct(r), 'POST', '/v1/vaults', {
      signer: alice.signer,
      audience: r.audience,
      body: { genesis: toBase64(signedGenesis) },
    });
    t.is(res.status, 201);
  }
  await write(a, vaultId, alice, 5, 5);
  await eventually('the entries at B', async () => (await vector(b, vaultId, alice))[alice.hex] === 5);
  await append(a, vaultId, alice, await alice.nextAppend(vaultId, { values: 3 }));
  await eventually('the next batch at B', async () => (await vector(b, vaultId, alice))[alice.hex] === 8);
  const sent = set.status(0).peers[0]!;
  t.deepEqual([sent.pushes.ok, sent.pushes.skipped, sent.pushes.failed, sent.entriesSent], [2, 0, 0, 8]);
  const got = set.status(1).peers[0]!;
  t.is(got.entriesReceived, 8);
  // B cosigns what it accepted from its peer, as for a device.
  const res = await request(direct(b), 'GET', `/v1/vaults/${vaultId}/logs/${alice.hex}/checkpoint`, {
    signer: alice.signer,
    audience: b.audience,
  });
  const verified = await verifyDeviceCheckpoint(res.text, fromHex(vaultId), alice.publicKey, [
    set.replicas[1]!.server!.cosigner,
  ]);
  t.is(verified.checkpoint.size, 8n);
  t.is(verified.cosignatures.length, 1);
});

async function fetchGenesis(replica: Replica, vaultId: string, member: TestDevice): Promise<Uint8Array> {
  const res = await request(direct(replica), 'GET', `/v1/vaults/${vaultId}`, {
    signer: member.signer,
    audience: replica.audience,
  });
  return Buffer.from((res.body as { genesis: string }).genesis, 'base64');
}

test('a vault created at one replica reaches a peer that never saw it, with its first push', async (t) => {
  const set = await ReplicaSet.create(2, { replication: NO_ROUNDS });
  t.teardown(() => set.cleanup());
  const [a, b] = two(set);
  await connected(set);
  const alice = await TestDevice.create();
  const vaultId = await createVault(a, alice);
  await write(a, vaultId, alice, 4, 4);
  await eventually('the vault and its entries at B', async () => (await vector(b, vaultId, alice))[alice.hex] === 4);
  t.deepEqual(await fetchGenesis(b, vaultId, alice), await fetchGenesis(a, vaultId, alice));
});

test('a replica started empty beside a vault catches up on its own, in bounded shipments, membership first', async (t) => {
  const shipmentBytes = 64 * 1024;
  const set = await ReplicaSet.create(2, { replication: { ...FAST, shipmentBytes } }, [true, false]);
  t.teardown(() => set.cleanup());
  const [a, b] = two(set);
  const creator = await TestDevice.create();
  const admin = await TestDevice.create();
  const writer = await TestDevice.create();
  const vaultId = await createVault(a, creator);
  await write(a, vaultId, creator, 100);
  // The writer is added by an admin the creator added: its log needs two others first.
  await append(a, vaultId, creator, await creator.membershipAppend(vaultId, admin.addChange('admin')));
  await append(a, vaultId, admin, await admin.membershipAppend(vaultId, writer.addChange('writer')));
  await write(a, vaultId, writer, 2000, 50);
  await write(a, vaultId, creator, 400, 100);
  await append(a, vaultId, admin, await admin.nextAppend(vaultId, { values: 1, blobBytes: 20_000 }));
  const expected = { [creator.hex]: 501, [admin.hex]: 2, [writer.hex]: 2000 };
  t.deepEqual(await vector(a, vaultId, creator), expected);

  await set.start(1);
  await eventually(
    'B has the whole vault',
    async () => {
      const v = await vector(b, vaultId, creator);
      return Object.entries(expected).every(([d, n]) => v[d] === n);
    },
    60_000,
  );
  const status = set.status(1).peers[0]!;
  t.is(status.entriesReceived, 2503);
  t.is(status.refused, 0);
  const entryBytes = [creator, admin, writer].reduce(
    (n, d) => n + d.entries(vaultId).reduce((m, e) => m + e.length, 0),
    0,
  );
  t.true(
    status.requestsSent >= Math.ceil(entryBytes / shipmentBytes),
    `${status.requestsSent} requests for ${entryBytes} bytes in shipments of ${shipmentBytes}`,
  );
  // Byte for byte what A holds, blob included, served to a member by B.
  const res = await request(direct(b), 'GET', `/v1/vaults/${vaultId}/logs/${writer.hex}/entries?start=1990&end=2000`, {
    signer: writer.signer,
    audience: b.audience,
  });
  t.deepEqual(
    (res.body as { entries: string[] }).entries,
    writer
      .entries(vaultId)
      .slice(1990, 2000)
      .map((e) => toBase64(e)),
  );
});

test('a restarted replica catches up, exchanging data in proportion to the 10 entries it lacks', async (t) => {
  const set = await ReplicaSet.create(2, { replication: FAST });
  t.teardown(() => set.cleanup());
  const [a, b] = two(set);
  const alice = await TestDevice.create();
  const vaultId = await createVault(a, alice);
  await write(a, vaultId, alice, 3000, 500);
  await eventually('B in step', async () => (await vector(b, vaultId, alice))[alice.hex] === 3000, 60_000);

  await set.stop(1);
  // Ten single-entry appends while B is down.
  for (let i = 0; i < 10; i++) await append(a, vaultId, alice, await alice.nextAppend(vaultId, { values: 1 }));
  const before = set.status(0).peers[0]!;
  await set.start(1);
  await eventually('B caught up', async () => (await vector(b, vaultId, alice))[alice.hex] === 3010, 30_000);
  await connected(set);

  const after = set.status(0).peers[0]!;
  const got = set.status(1).peers[0]!; // counts since B restarted
  t.is(got.entriesReceived, 10, 'B received exactly the 10 entries it lacked');
  t.is(after.entriesSent - before.entriesSent, 10, 'A sent exactly those 10');
  const tenBytes = alice
    .entries(vaultId)
    .slice(3000)
    .reduce((n, e) => n + e.length, 0);
  const vaultBytes = alice.entries(vaultId).reduce((n, e) => n + e.length, 0);
  t.log(
    `B received ${got.bytesReceived} bytes in ${got.requestsSent} requests; the 10 entries are ${tenBytes} bytes, the vault ${vaultBytes}`,
  );
  // Base64 in JSON, a checkpoint note, a proof and the vault's vector: a
  // constant on top of the entries, nothing in proportion to the vault.
  t.true(got.bytesReceived < 2 * tenBytes + 8 * 1024, `${got.bytesReceived} bytes`);
  t.true(got.requestsSent <= 4, `${got.requestsSent} requests`);
});

test('a replica killed with SIGKILL and restarted catches up from its peer (real processes)', async (t) => {
  const [relayA, relayB] = [await startRelay(), await startRelay()];
  const [dirA, dirB] = [await tempDir(), await tempDir()];
  t.teardown(async () => {
    await Promise.allSettled([relayA.close(), relayB.close()]);
    await Promise.allSettled([dirA.remove(), dirB.remove()]);
  });
  const args = (peer: string) => ['--peer', peer, '--anti-entropy-interval', '300', '--log-level', 'info'];
  const a = await startServerProcess(dirA.dir, args(relayB.url));
  t.teardown(() => a.stop().then(() => undefined));
  relayA.retarget(a.url);
  let b = await startServerProcess(dirB.dir, args(relayA.url));
  t.teardown(() => b.stop().then(() => undefined));
  relayB.retarget(b.url);
  const replicaOf = async (url: string): Promise<Replica> => {
    const info = (await (await fetch(`${url}/v1/info`)).json()) as { cosigner: { publicKey: string } };
    return {
      index: 0,
      dataDir: '',
      url,
      relay: relayA,
      server: { url } as Replica['server'],
      audience: Buffer.from(info.cosigner.publicKey, 'base64'),
      logs: [],
      peers: [],
    };
  };
  // On failure, what both replicas logged about replication.
  t.teardown(() => {
    for (const [name, p] of [
      ['A', a],
      ['B', b],
    ] as const) {
      const lines = p
        .stderr()
        .split('\n')
        .filter((l) => !l.includes('"msg":"request"'));
      t.log(`${name}:\n${lines.slice(-30).join('\n')}`);
    }
  });
  const alice = await TestDevice.create();
  const ra = await replicaOf(a.url);
  const vaultId = await createVault(ra, alice);
  await write(ra, vaultId, alice, 500, 100);
  let rb = await replicaOf(b.url);
  await eventually('B in step', async () => (await vector(rb, vaultId, alice))[alice.hex] === 500, 60_000);

  await b.kill9();
  await write(ra, vaultId, alice, 300, 100);
  b = await startServerProcess(dirB.dir, args(relayA.url));
  relayB.retarget(b.url);
  rb = await replicaOf(b.url);
  await eventually(
    'B caught up after its restart',
    async () => (await vector(rb, vaultId, alice))[alice.hex] === 800,
    60_000,
  );
  // And pushes flow again both ways: a write at B reaches A.
  await write(rb, vaultId, alice, 1, 1);
  await eventually(
    'A has the write made at B',
    async () => (await vector(ra, vaultId, alice))[alice.hex] === 801,
    60_000,
  );
  t.pass();
});

// ---------------------------------------------------------------------------
// Peer authentication

test('peer routes refuse anyone but a configured peer', async (t) => {
  const set = await ReplicaSet.create(2, { replication: NO_ROUNDS });
  t.teardown(() => set.cleanup());
  const [a, b] = two(set);
  await connected(set);
  const url = direct(a);
  const path = '/v1/peer/vaults';
  const stranger = await ed25519Signer(randomBytes(32));
  const get = (authorization?: string) =>
    request(url, 'GET', path, authorization === undefined ? {} : { authorization });
  const codeOf = (r: { body: unknown }) => (r.body as { error: { code: string } }).error.code;

  const none = await get();
  t.deepEqual([none.status, codeOf(none)], [401, 'UNAUTHENTICATED']);
  // A device's request, even one signed correctly for this replica, is not a peer request.
  const device = await TestDevice.create();
  const asDevice = await get(
    await signRequest(device.signer, { audience: a.audience, method: 'GET', path, body: new Uint8Array() }),
  );
  t.deepEqual([asDevice.status, codeOf(asDevice)], [401, 'UNAUTHENTICATED']);
  // A replica that is not configured as a peer.
  const notPeer = await get(
    await signPeerRequest(stranger, { audience: a.audience, method: 'GET', path, body: new Uint8Array() }),
  );
  t.deepEqual([notPeer.status, codeOf(notPeer)], [403, 'PERMISSION_DENIED']);
  // The real peer B signs with its own key: that works; the same request again is a replay.
  const peerSigner = await peerSignerOf(b);
  const good = await signPeerRequest(peerSigner, { audience: a.audience, method: 'GET', path, body: new Uint8Array() });
  const first = await get(good);
  t.is(first.status, 200, first.text);
  const replay = await get(good);
  t.deepEqual([replay.status, codeOf(replay)], [401, 'UNAUTHENTICATED']);
  const otherAudience = await get(
    await signPeerRequest(peerSigner, { audience: b.audience, method: 'GET', path, body: new Uint8Array() }),
  );
  t.deepEqual([otherAudience.status, codeOf(otherAudience)], [401, 'UNAUTHENTICATED']);
  const stale = await get(
    await signPeerRequest(
      peerSigner,
      { audience: a.audience, method: 'GET', path, body: new Uint8Array() },
      () => Date.now() - 10 * 60_000,
    ),
  );
  t.deepEqual([stale.status, codeOf(stale)], [401, 'UNAUTHENTICATED']);
  // A body other than the one signed.
  const pushPath = `/v1/peer/vaults/${'0'.repeat(64)}/logs/${device.hex}/append`;
  const signedFor = utf8('{"start":0}');
  const tampered = await request(url, 'POST', pushPath, {
    authorization: await signPeerRequest(peerSigner, {
      audience: a.audience,
      method: 'POST',
      path: pushPath,
      body: signedFor,
    }),
    rawBody: utf8('{"start":1}'),
  });
  t.deepEqual([tampered.status, codeOf(tampered)], [401, 'UNAUTHENTICATED']);
});

/** Replica b's server key as a signer (read from its data directory). */
async function peerSignerOf(replica: Replica) {
  const { readFile } = await import('node:fs/promises');
  const { seed } = JSON.parse(await readFile(path.join(replica.dataDir, 'server-key.json'), 'utf8')) as {
    seed: string;
  };
  return ed25519Signer(fromHex(seed));
}

test('a peer whose key changes is refused, loudly, and nothing is exchanged with it', async (t) => {
  const set = await ReplicaSet.create(2, { replication: FAST });
  t.teardown(() => set.cleanup());
  const [a, b] = two(set);
  await connected(set);
  const alice = await TestDevice.create();
  const vaultId = await createVault(a, alice);
  await write(a, vaultId, alice, 3, 3);
  await eventually('B in step', async () => (await vector(b, vaultId, alice))[alice.hex] === 3);

  // A is re-installed: same URL, new server key, empty.
  await set.stop(0);
  await rm(path.join(a.dataDir, 'server-key.json'));
  for (const file of ['e2ekv.sqlite3', 'e2ekv.sqlite3-wal', 'e2ekv.sqlite3-shm']) {
    await rm(path.join(a.dataDir, file), { force: true });
  }
  await set.start(0);
  await eventually('B refuses the new key', () => set.status(1).peers[0]!.state === 'key-mismatch');
  const logged = set.logged(1, 'peer key changed: refusing to replicate with it');
  t.true(logged.length >= 1);
  t.is(logged[0]!['level'], 'error');
  // The new A cannot pull the vault from B: B does not accept A's new key.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  t.deepEqual(await vector(a, vaultId, alice), {});
  t.true(set.status(0).peers[0]!.lastError !== null);
});

test('a peer given as URL#vkey needs no pin, and a wrong key given that way is refused', async (t) => {
  const set = await ReplicaSet.create(3, { replication: FAST }, [true, false, false]);
  t.teardown(() => set.cleanup());
  const [a] = two(set);
  const vkey = (await (await fetch(`${direct(a)}/v1/info`)).json()) as { cosigner: { vkey: string } };
  const alice = await TestDevice.create();
  const vaultId = await createVault(a, alice);
  await write(a, vaultId, alice, 2, 2);
  // Replica 1 names A's key explicitly; replica 2 names a wrong one.
  const c1 = await set.start(1, [`${a.url}#${vkey.cosigner.vkey}`]);
  const wrong = toBase64(randomBytes(32));
  await set.start(2, [`${a.url}#${wrong}`]);
  await eventually('replica 1 pulled the vault', async () => (await vector(c1, vaultId, alice))[alice.hex] === 2);
  t.is(set.status(1).peers[0]!.keySource, 'explicit');
  await eventually('replica 2 refuses', () => set.status(2).peers[0]!.state === 'key-mismatch');
  t.deepEqual(await vector(set.replicas[2]!, vaultId, alice), {});
});

// ---------------------------------------------------------------------------
// Peers that lie: refused, logged, and the receiver is not poisoned

interface Genuine {
  alice: TestDevice;
  vaultId: string;
  genesis: Uint8Array;
  first: AppendRequest; // entries [0, 5)
  second: AppendRequest; // entries [5, 10)
  otherVault: AppendRequest; // entries [5, 10) of the same device's log in another vault
}

async function genuine(): Promise<Genuine> {
  const alice = await TestDevice.create();
  const { signedGenesis, vaultId } = await alice.genesis();
  const first = await alice.nextAppend(vaultId, { values: 5 });
  const second = await alice.nextAppend(vaultId, { values: 5 });
  const other = (await alice.genesis()).vaultId;
  await alice.nextAppend(other, { values: 5 });
  const otherVault = await alice.nextAppend(other, { values: 5 });
  return { alice, vaultId, genesis: signedGenesis, first, second, otherVault };
}

function flipped(entry: Uint8Array): Uint8Array {
  const copy = entry.slice();
  copy[copy.length - 20]! ^= 1; // inside the last envelope: it still decodes
  return copy;
}

/**
 * Replica 1 peers with a lying peer and with honest replica 0, which holds
 * the genuine vault; the honest link is cut until the lie has been refused,
 * then healed: replica 1 must end with exactly the genuine data.
 */
async function lyingPeerCase(
  t: ExecutionContext,
  lie: (g: Genuine, fake: FakePeer) => void,
  expectCodes: readonly string[],
): Promise<{ set: ReplicaSet; g: Genuine }> {
  const fake = await startFakePeer();
  t.teardown(() => fake.close());
  const set = await ReplicaSet.create(
    2,
    { replication: FAST, peersOf: (i, urls) => (i === 1 ? [urls[0]!, fake.spec] : [urls[1]!]) },
    [true, false],
  );
  t.teardown(() => set.cleanup());
  const [a, b] = two(set);
  const g = await genuine();
  const created = await request(direct(a), 'POST', '/v1/vaults', {
    signer: g.alice.signer,
    audience: a.audience,
    body: { genesis: toBase64(g.genesis) },
  });
  t.is(created.status, 201);
  await append(a, g.vaultId, g.alice, g.first);
  await append(a, g.vaultId, g.alice, g.second);
  lie(g, fake);
  a.relay.cut();
  await set.start(1);
  await eventually('the lie refused', () => set.logged(1, 'refused data from a peer').length > 0);
  const refusal = set.logged(1, 'refused data from a peer')[0]!;
  t.is(refusal['peer'], fake.url);
  t.true(
    expectCodes.includes(String(refusal['code'])),
    `refused with ${String(refusal['code'])}: ${String(refusal['error'])}`,
  );
  t.true(set.status(1).peers[1]!.refused >= 1);
  t.true(fake.requests.some((p) => p.includes('/suffix?') || /\/v1\/peer\/vaults\/[0-9a-f]{64}$/.test(p)));

  a.relay.heal();
  await eventually('the genuine vault at B', async () => (await vector(b, g.vaultId, g.alice))[g.alice.hex] === 10);
  const res = await request(direct(b), 'GET', `/v1/vaults/${g.vaultId}/logs/${g.alice.hex}/entries?start=0&end=10`, {
    signer: g.alice.signer,
    audience: b.audience,
  });
  t.deepEqual(
    (res.body as { entries: string[] }).entries,
    g.alice.entries(g.vaultId).map((e) => toBase64(e)),
  );
  t.deepEqual(await evidenceAt(b, g.vaultId, g.alice), [], 'no evidence against an honest device');
  return { set, g };
}

test('a peer that ships a forged entry is refused and does not poison the receiver', async (t) => {
  await lyingPeerCase(
    t,
    (g, fake) => {
      fake.vaults.push({
        vaultId: g.vaultId,
        genesis: g.genesis,
        heads: { [g.alice.hex]: g.second.checkpoint },
        suffix: (_device, start) =>
          start === 0
            ? {
                start: 0,
                entries: [...g.first.entries, ...g.second.entries].map((e, i) => (i === 7 ? flipped(e) : e)),
                blobs: [],
                checkpoint: g.second.checkpoint,
                consistencyProof: [],
              }
            : undefined,
      });
    },
    ['INTEGRITY'],
  );
});

test('a peer that ships a bad consistency proof is refused as BAD_PROOF, never taken for equivocation', async (t) => {
  await lyingPeerCase(
    t,
    (g, fake) => {
      fake.vaults.push({
        vaultId: g.vaultId,
        genesis: g.genesis,
        heads: { [g.alice.hex]: g.second.checkpoint },
        suffix: (_device, start): Shipment | undefined =>
          start === 0
            ? { ...g.first }
            : start === 5
              ? {
                  // Forged entries and a proof of random hashes, with the receiver's own root as
                  // the start root: the acceptor alone would have kept "evidence" of this.
                  ...g.second,
                  entries: g.second.entries.map(flipped),
                  consistencyProof: g.second.consistencyProof.map(() => randomBytes(32)),
                  startRoot: g.alice.tree(g.vaultId).root(5),
                }
              : undefined,
      });
    },
    ['BAD_PROOF'],
  );
});

test('a peer that ships another vault under this vault is refused', async (t) => {
  await lyingPeerCase(
    t,
    (g, fake) => {
      // The same device's genuine batch [5, 10) of its log in another vault, under this vault's id.
      fake.vaults.push({
        vaultId: g.vaultId,
        genesis: g.genesis,
        heads: { [g.alice.hex]: g.second.checkpoint },
        suffix: (_device, start) => (start === 0 ? { ...g.first } : start === 5 ? { ...g.otherVault } : undefined),
      });
    },
    ['UNKNOWN_KEY', 'INTEGRITY', 'BAD_SIGNATURE'],
  );
});

test('a peer that sends a genesis under another vault id is refused: no vault is created', async (t) => {
  const fake = await startFakePeer();
  t.teardown(() => fake.close());
  const set = await ReplicaSet.create(1, { replication: FAST, peersOf: () => [fake.spec] });
  t.teardown(() => set.cleanup());
  const b = set.replicas[0]!;
  const g = await genuine();
  const decoy = await genuine();
  fake.vaults.push({ vaultId: decoy.vaultId, genesis: g.genesis, heads: {}, suffix: () => undefined });
  await eventually('the lie refused', () => set.logged(0, 'refused data from a peer').length > 0);
  t.is(set.logged(0, 'refused data from a peer')[0]!['code'], 'INTEGRITY');
  t.deepEqual(await vector(b, g.vaultId, g.alice), {});
  t.deepEqual(await vector(b, decoy.vaultId, decoy.alice), {});
});

test('a peer that pushes a forged append is refused with its code and logged', async (t) => {
  const fake = await startFakePeer();
  t.teardown(() => fake.close());
  const set = await ReplicaSet.create(1, { replication: NO_ROUNDS, peersOf: () => [fake.spec] });
  t.teardown(() => set.cleanup());
  const b = set.replicas[0]!;
  const g = await genuine();
  await request(direct(b), 'POST', '/v1/vaults', {
    signer: g.alice.signer,
    audience: b.audience,
    body: { genesis: toBase64(g.genesis) },
  });
  await append(b, g.vaultId, g.alice, g.first);

  const forged = await fake.push(direct(b), b.audience, g.vaultId, g.alice.hex, {
    ...g.second,
    entries: g.second.entries.map((e, i) => (i === 2 ? flipped(e) : e)),
  });
  t.is(forged.status, 422);
  t.is((forged.body as { error: { code: string } }).error.code, 'INTEGRITY');
  const refusal = set.logged(0, 'refused data from a peer');
  t.is(refusal.length, 1);
  t.is(refusal[0]!['peer'], fake.url);
  t.is(refusal[0]!['code'], 'INTEGRITY');
  t.deepEqual(await vector(b, g.vaultId, g.alice), { [g.alice.hex]: 5 });
  // Forged entries under the device's genuine checkpoint with a garbage proof: the
  // acceptor alone would keep that as evidence against the device; a peer's proof proves nothing.
  const badProof = await fake.push(direct(b), b.audience, g.vaultId, g.alice.hex, {
    ...g.second,
    entries: g.second.entries.map(flipped),
    consistencyProof: g.second.consistencyProof.map(() => randomBytes(32)),
  });
  t.is(badProof.status, 422);
  t.is((badProof.body as { error: { code: string } }).error.code, 'BAD_PROOF');
  t.deepEqual(await evidenceAt(b, g.vaultId, g.alice), []);
  t.deepEqual(await vector(b, g.vaultId, g.alice), { [g.alice.hex]: 5 });
  // The genuine batch from the same peer is taken, and cosigned by the receiver.
  const ok = await fake.push(direct(b), b.audience, g.vaultId, g.alice.hex, g.second);
  t.is(ok.status, 200, ok.text);
  const cosigned = parseAppendResponse(ok.body).checkpoint;
  const verified = await verifyDeviceCheckpoint(cosigned, fromHex(g.vaultId), g.alice.publicKey, [b.server!.cosigner]);
  t.is(verified.cosignatures.length, 1);
  t.deepEqual(await vector(b, g.vaultId, g.alice), { [g.alice.hex]: 10 });
});

// ---------------------------------------------------------------------------
// Equivocation across replicas

test('a device that shows two replicas two histories is caught when they compare, and both keep evidence', async (t) => {
  const set = await ReplicaSet.create(2, { replication: FAST });
  t.teardown(() => set.cleanup());
  const [a, b] = two(set);
  await connected(set);
  for (const r of set.replicas) r.relay.cut(); // a partition while the device forks
  const mallory = await TestDevice.create();
  const { signedGenesis, vaultId } = await mallory.genesis();
  for (const r of [a, b]) {
    await request(direct(r), 'POST', '/v1/vaults', {
      signer: mallory.signer,
      audience: r.audience,
      body: { genesis: toBase64(signedGenesis) },
    });
  }
  await append(a, vaultId, mallory, await mallory.nextAppend(vaultId, { values: 4 }));
  mallory.rewind(vaultId, 0);
  await append(b, vaultId, mallory, await mallory.nextAppend(vaultId, { values: 4 }));
  for (const r of set.replicas) r.relay.heal();

  await eventually(
    'evidence at both',
    async () =>
      (await evidenceAt(a, vaultId, mallory)).length === 1 && (await evidenceAt(b, vaultId, mallory)).length === 1,
  );
  for (const r of [a, b]) {
    const [record] = await evidenceAt(r, vaultId, mallory);
    for (const note of [record!.first, record!.second]) {
      t.is((await verifyDeviceCheckpoint(note, fromHex(vaultId), mallory.publicKey)).checkpoint.size, 4n);
    }
    t.not(record!.first, record!.second);
  }
  // Neither took the other's history.
  t.deepEqual(await vector(a, vaultId, mallory), { [mallory.hex]: 4 });

  // The fork grows at B: A, behind, is shown a longer history whose start is not its own.
  await append(b, vaultId, mallory, await mallory.nextAppend(vaultId, { values: 3 }));
  await eventually(
    'evidence of the longer fork at A',
    async () => (await evidenceAt(a, vaultId, mallory)).length === 2,
  );
  const sizes = await Promise.all(
    Object.values((await evidenceAt(a, vaultId, mallory))[1]!)
      .slice(1, 3)
      .map(
        async (note) =>
          (await verifyDeviceCheckpoint(note as string, fromHex(vaultId), mallory.publicKey)).checkpoint.size,
      ),
  );
  t.deepEqual(sizes, [4n, 7n]);
  t.deepEqual(await vector(a, vaultId, mallory), { [mallory.hex]: 4 });
  t.true(set.logged(0, /equivocation/).length >= 2);
});
