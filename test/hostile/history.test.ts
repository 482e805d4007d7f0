/**
 * Hostile replica, history: reordered, shortened and rolled-back logs,
 * withheld entries, lies about a device's own log, and equivocation (a
 * device's log forked across replicas, or one replica showing two clients two
 * histories), caught once the views meet, with evidence anyone can check.
 */
import test, { type ExecutionContext } from 'ava';
import {
  MerkleTree,
  fromHex,
  leafHash,
  verifyConsistency,
  verifyDeviceCheckpoint,
  type VerifiedCheckpoint,
} from '../../protocol/src/index.js';
import { EquivocationError, RollbackError } from '../../sdk/src/log-sync.js';
import {
  createClient,
  createIdentity,
  publicIdentity,
  type Identity,
  type Vault,
  type VaultAccess,
  type VaultEvidence,
} from '../../sdk/src/index.js';
import { startServerProcess, tempDir, type ServerProcess } from '../../server/test/support/process.js';
import {
  HostileReplica,
  flipBase64,
  hex,
  noteSize,
  rejects,
  type EntriesJson,
  type VaultStateJson,
} from '../support/hostile-replica.js';

const servers: ServerProcess[] = [];
const cleanups: (() => Promise<void>)[] = [];
let serverA: ServerProcess;
let serverB: ServerProcess;

test.before(async () => {
  const dirs = await Promise.all([tempDir(), tempDir()]);
  cleanups.push(...dirs.map((d) => d.remove));
  [serverA, serverB] = (await Promise.all(dirs.map((d) => startServerProcess(d.dir)))) as [
    ServerProcess,
    ServerProcess,
  ];
  servers.push(serverA, serverB);
});

test.after.always(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  for (const cleanup of cleanups) await cleanup();
});

async function hostile(t: ExecutionContext, server: ServerProcess): Promise<HostileReplica> {
  const replica = await HostileReplica.start(server);
  t.teardown(() => replica.close());
  return replica;
}

const key = (identity: Identity) => hex(publicIdentity(identity).signingKey);

interface Scene {
  replica: HostileReplica;
  access: VaultAccess;
  alice: { identity: Identity; hex: string; vault: Vault };
  bob: { hex: string; vault: Vault };
}

/** Alice adds reader Bob and sets k twice (entries 0-2); Bob pins her log at 3; Alice writes `more` entries. */
async function scene(t: ExecutionContext, more: number): Promise<Scene> {
  const replica = await hostile(t, serverA);
  const [aliceId, bobId] = [createIdentity(), createIdentity()];
  const { vault: a, access } = await (await createClient({ identity: aliceId, servers: [replica.url] })).createVault();
  await a.addMember(publicIdentity(bobId), 'reader');
  await a.set('k', 'v1');
  await a.set('k', 'v2');
  const b = await (await createClient({ identity: bobId, servers: [replica.url] })).openVault(access);
  for (let i = 0; i < more; i++) await a.set('k', `v${3 + i}`);
  return {
    replica,
    access,
    alice: { identity: aliceId, hex: key(aliceId), vault: a },
    bob: { hex: key(bobId), vault: b },
  };
}

function onAlicePage(s: Scene, edit: (page: EntriesJson) => void | Promise<void>) {
  return s.replica.rewriteJson<EntriesJson>({ route: 'entries', log: s.alice.hex, client: s.bob.hex }, async (page) => {
    await edit(page);
    return page;
  });
}

async function aliceUnchanged(t: ExecutionContext, s: Scene, changed: number): Promise<void> {
  t.true(changed > 0, 'the attack changed what the client received');
  t.is(s.bob.vault.status().logs.find((l) => l.device === s.alice.hex)?.entries, 3);
  t.is(await s.bob.vault.get('k'), 'v2');
}

// ---------------------------------------------------------------------------
// Reordered and shortened logs

test('reordering entries is INTEGRITY', async (t) => {
  const s = await scene(t, 3);
  const hook = onAlicePage(s, (page) => {
    page.entries.reverse();
  });
  await rejects(
    t,
    s.bob.vault.get('k', { read: 'one' }),
    'INTEGRITY',
    /do not rebuild the signed root of device [0-9a-f]{16} \(size 6\): it altered, reordered or replaced them/,
  );
  await aliceUnchanged(t, s, hook.changed);
});

test('dropping an entry from the middle of a log is INTEGRITY', async (t) => {
  const s = await scene(t, 3);
  const hook = onAlicePage(s, (page) => {
    page.entries.splice(1, 1);
    page.inclusionProofs.splice(1, 1);
  });
  await rejects(
    t,
    s.bob.vault.get('k', { read: 'one' }),
    'INTEGRITY',
    /the replica's checkpoint claims 6 entries of device [0-9a-f]{16} but it sent 5: it withholds or invents entries/,
  );
  await aliceUnchanged(t, s, hook.changed);
});

// The replica drops entry 4 and serves Alice's genuine checkpoint of size 5
// (which the entries no longer rebuild) with no consistency proof. Both notes
// are Alice's and consistent with each other: the replica lied, Alice did not
// fork. A failed proof proves nothing against the device (SPEC 11.1): the SDK
// asks the replica for a whole log contradicting the pin, which it cannot show.
test('dropping an entry from the middle under an older checkpoint of the right count is INTEGRITY, not EQUIVOCATION', async (t) => {
  const s = await scene(t, 3);
  onAlicePage(s, async (page) => {
    page.entries.splice(1, 1);
    page.inclusionProofs.splice(1, 1);
    page.checkpoint = await s.replica.cosign(s.replica.deviceNote(s.access.vaultId, s.alice.hex, 5));
    page.consistencyProof = [];
  });
  await rejects(t, s.bob.vault.get('k', { read: 'one' }), 'INTEGRITY');
  t.deepEqual(s.bob.vault.evidence, [], 'no evidence against an honest device');
});

// ---------------------------------------------------------------------------
// Rollback

/** Both notes of a RollbackError or EquivocationError verify on their own under the device's key. */
async function checkEvidence(
  t: ExecutionContext,
  vaultId: string,
  device: string,
  evidence: { first: string; second: string },
): Promise<{ first: VerifiedCheckpoint; second: VerifiedCheckpoint }> {
  const first = await verifyDeviceCheckpoint(evidence.first, fromHex(vaultId), fromHex(device));
  const second = await verifyDeviceCheckpoint(evidence.second, fromHex(vaultId), fromHex(device));
  t.pass('both notes verify under the device key');
  return { first, second };
}

test('re-serving an older cosigned checkpoint after a newer one was pinned is ROLLBACK, with evidence', async (t) => {
  const s = await scene(t, 1);
  // The replica's own answer to Alice's append of entry 1: cosigned then, re-served now.
  const stale = s.replica
    .recorded({ route: 'append', client: s.alice.hex })
    .map((e) => (JSON.parse(e.answer.body.toString('utf8')) as { checkpoint: string }).checkpoint)
    .find((note) => noteSize(note) === 2)!;
  const hook = onAlicePage(s, (page) => {
    page.checkpoint = stale;
    page.entries = [];
    page.inclusionProofs = [];
    page.consistencyProof = [];
  });
  const error = await rejects(
    t,
    s.bob.vault.get('k', { read: 'one' }),
    'ROLLBACK',
    /presented a checkpoint of device [0-9a-f]{16} of size 2, smaller than the 3 already verified/,
  );
  t.true(error instanceof RollbackError);
  const { evidence } = error as RollbackError;
  t.is(evidence.second, stale);
  t.deepEqual(s.bob.vault.evidence, [{ replica: s.replica.url, device: s.alice.hex, ...evidence }]);
  const notes = await checkEvidence(t, s.access.vaultId, s.alice.hex, evidence);
  t.is(notes.first.checkpoint.size, 3n);
  t.is(notes.second.checkpoint.size, 2n);
  await aliceUnchanged(t, s, hook.changed);
});

test('a vault state truncated below the pin is caught at verify', async (t) => {
  const s = await scene(t, 0);
  const hook = s.replica.rewriteJson<VaultStateJson>({ route: 'vault', client: s.bob.hex }, (state) => {
    for (const log of state.logs) if (log.device === s.alice.hex) log.size = 2;
  });
  // verify syncs first, which judges the claim on the signed checkpoint (still size 3).
  await rejects(t, s.bob.vault.verify(), 'INTEGRITY', /its own signed checkpoint \(size 3\) contradicts/);
  t.true(hook.changed > 0);
});

// The vault state is unsigned: a claim below the pin is judged at sync on the
// replica's signed checkpoint. Here only the claim was cut and the signed
// checkpoint still says 3, so the replica contradicts itself: INTEGRITY. (A
// signed checkpoint below the pin is ROLLBACK: see the re-served older one above.)
test('a vault state truncated below the pin is caught at sync', async (t) => {
  const s = await scene(t, 0);
  const hook = s.replica.rewriteJson<VaultStateJson>({ route: 'vault', client: s.bob.hex }, (state) => {
    for (const log of state.logs) if (log.device === s.alice.hex) log.size = 2;
  });
  await rejects(t, s.bob.vault.sync(), 'INTEGRITY', /its own signed checkpoint \(size 3\) contradicts/);
  t.true(hook.changed > 0);
});

// ---------------------------------------------------------------------------
// Lies about the reader's own log

test("a replica claiming more of this device's own log than it wrote is CONFLICT", async (t) => {
  const s = await scene(t, 0);
  const hook = s.replica.rewriteJson<VaultStateJson>({ route: 'vault', client: s.alice.hex }, (state) => {
    for (const log of state.logs) if (log.device === s.alice.hex) log.size += 1;
  });
  await rejects(
    t,
    s.alice.vault.sync(),
    'CONFLICT',
    /holds 4 entries of this device's log, this installation only 3: the same identity is writing from another installation/,
  );
  t.true(hook.changed > 0);
});

test("a replica holding another version of this device's own log is INTEGRITY", async (t) => {
  const s = await scene(t, 0);
  const hook = s.replica.rewriteJson<VaultStateJson>({ route: 'vault', client: s.alice.hex }, (state) => {
    for (const log of state.logs) if (log.device === s.alice.hex) log.root = flipBase64(log.root, 3);
  });
  await rejects(
    t,
    s.alice.vault.sync(),
    'INTEGRITY',
    /holds a version of this device's log that this installation never wrote/,
  );
  t.true(hook.changed > 0);
});

// ---------------------------------------------------------------------------
// Withholding

test("withholding one device's newest entries while another device's entries depend on them is WITHHELD", async (t) => {
  const replica = await hostile(t, serverA);
  const [aliceId, bobId, carolId] = [createIdentity(), createIdentity(), createIdentity()];
  const connect = (identity: Identity) => createClient({ identity, servers: [replica.url] });
  const { vault: a, access } = await (await connect(aliceId)).createVault();
  await a.addMember(publicIdentity(bobId), 'writer');
  await a.addMember(publicIdentity(carolId), 'reader');
  const c = await (await connect(carolId)).openVault(access);
  await a.set('k', 'from alice');
  // Bob has seen Alice's entry 2 when he writes: his entry depends on 3 entries of hers.
  const b = await (await connect(bobId)).openVault(access);
  await b.set('k', 'from bob');
  const hook = replica.withhold({ vault: access.vaultId, device: key(aliceId), size: 2, client: key(carolId) });
  const error = await rejects(
    t,
    c.get('k', { read: 'one' }),
    'WITHHELD',
    new RegExp(
      `entry 0 of device ${key(bobId)} depends on 3 entries of device ${key(aliceId)}, but the replicas served only 2: a replica is withholding them`,
    ),
  );
  t.deepEqual(error.details, { device: key(aliceId), needed: 3, served: 2 });
  t.true(hook.changed > 0);
  t.is(await c.get('k'), undefined, "Bob's write waits for what it depends on");
});

// ---------------------------------------------------------------------------
// Equivocation. Alice's device forks its log: one installation writes to
// replica A, another with the same identity (restored without its local
// state, which SPEC.md 11.1 forbids) to replica B.

interface Fork {
  access: VaultAccess;
  alice: string;
  /** Hostile replicas in front of A and B (honest unless a test says otherwise). */
  a: HostileReplica;
  b: HostileReplica;
  /** Alice's log on A and on B. */
  onA: readonly Uint8Array[];
  onB: readonly Uint8Array[];
}

/**
 * Alice creates the vault on both replicas and adds `readers` (acknowledged by
 * both), then writes `onA` more entries on A and `onB` other ones on B. `before`
 * runs after the shared prefix, before the fork (readers open the vault there).
 */
async function fork(
  t: ExecutionContext,
  readers: readonly Identity[],
  sizes: { onA: number; onB: number },
  before: (f: Omit<Fork, 'onA' | 'onB'>) => Promise<void>,
): Promise<Fork> {
  const [a, b] = [await hostile(t, serverA), await hostile(t, serverB)];
  const aliceId = createIdentity();
  const { vault, access } = await (await createClient({ identity: aliceId, servers: [a.url, b.url] })).createVault();
  for (const reader of readers) await vault.addMember(publicIdentity(reader), 'reader', { ack: 'all' });
  const f = { access, alice: key(aliceId), a, b };
  await before(f);
  for (const [replica, n, tag] of [
    [a, sizes.onA, 'x'],
    [b, sizes.onB, 'y'],
  ] as const) {
    const installation = await (await createClient({ identity: aliceId, servers: [replica.url] })).openVault(access);
    for (let i = 0; i < n; i++) await installation.set('k', `${tag}${i}`);
  }
  return { ...f, onA: a.knownEntries(access.vaultId, f.alice), onB: b.knownEntries(access.vaultId, f.alice) };
}

/**
 * Evidence of a fork as the SDK keeps it: two notes, each verifying under the
 * device's key, that no consistency proof can join: the larger log's own proof
 * from the smaller size fails against the smaller note's root.
 */
async function checkFork(
  t: ExecutionContext,
  f: Fork,
  evidence: { first: string; second: string },
  larger: readonly Uint8Array[],
) {
  const notes = await checkEvidence(t, f.access.vaultId, f.alice, evidence);
  const [small, big] = [notes.first.checkpoint, notes.second.checkpoint].sort((x, y) => Number(x.size - y.size)) as [
    VerifiedCheckpoint['checkpoint'],
    VerifiedCheckpoint['checkpoint'],
  ];
  const tree = new MerkleTree(larger.map((e) => leafHash(e)));
  t.is(tree.size, Number(big.size));
  t.deepEqual(tree.root(), big.root);
  t.throws(() =>
    verifyConsistency(small.size, big.size, tree.consistencyProof(Number(small.size)), small.root, big.root),
  );
  t.notDeepEqual(tree.root(Number(small.size)), small.root);
}

test('a log forked across two replicas is EQUIVOCATION when a client syncs from both, with evidence', async (t) => {
  const bobId = createIdentity();
  let bob!: Vault;
  const f = await fork(t, [bobId], { onA: 1, onB: 2 }, async ({ a, b, access }) => {
    bob = await (await createClient({ identity: bobId, servers: [a.url, b.url] })).openVault(access);
  });
  const error = await rejects(
    t,
    bob.sync(),
    'EQUIVOCATION',
    /\(size 3\) that is not consistent with the pinned one \(size 2\): the device forked its log/,
  );
  t.true(error instanceof EquivocationError);
  const { evidence } = error as EquivocationError;
  t.deepEqual(bob.evidence, [{ replica: f.b.url, device: f.alice, ...evidence }] satisfies VaultEvidence[]);
  await checkFork(t, f, evidence, f.onB);
  t.is(await bob.get('k'), 'x0', 'what was verified first stays; nothing of the fork is used');
});

test('a replica showing two clients two histories is EQUIVOCATION once one of them reads another replica', async (t) => {
  const [bobId, carolId] = [createIdentity(), createIdentity()];
  let bob!: Vault;
  let carol!: Vault;
  const f = await fork(t, [bobId, carolId], { onA: 2, onB: 1 }, async ({ a, access }) => {
    // Bob reads through the hostile A and, later, A itself; Carol only through the hostile A.
    bob = await (await createClient({ identity: bobId, servers: [a.url, serverA.url] })).openVault(access);
    carol = await (await createClient({ identity: carolId, servers: [a.url] })).openVault(access);
  });
  // A shows Bob the history it never held (B's copy, cosigned with A's key), and Carol its own.
  const lie = f.a.serveLog({
    vault: f.access.vaultId,
    device: f.alice,
    entries: f.onB,
    note: f.b.deviceNote(f.access.vaultId, f.alice, 3),
    client: key(bobId),
  });
  t.is(await bob.get('k', { read: 'one' }), 'y0');
  t.is(await carol.get('k', { read: 'one' }), 'x1');
  t.true(lie.changed > 0);
  // The views meet: Bob syncs from A directly, whose log of Alice does not extend the one he pinned.
  const error = await rejects(t, bob.sync(), 'EQUIVOCATION', /not consistent with the pinned one \(size 3\)/);
  const { evidence } = error as EquivocationError;
  t.deepEqual(bob.evidence, [{ replica: serverA.url, device: f.alice, ...evidence }]);
  await checkFork(t, f, evidence, f.onA);
});

test('a log forked at the same size on two replicas is EQUIVOCATION at verify', async (t) => {
  const bobId = createIdentity();
  let bob!: Vault;
  await fork(t, [bobId], { onA: 1, onB: 1 }, async ({ a, b, access }) => {
    bob = await (await createClient({ identity: bobId, servers: [a.url, b.url] })).openVault(access);
  });
  await rejects(
    t,
    bob.verify(),
    'EQUIVOCATION',
    /a checkpoint of device [0-9a-f]{64} \(size 2\) that is not consistent with the pinned one \(size 2\)/,
  );
});

// verify syncs first, and sync judges an unsigned root that differs on the
// replica's signed checkpoint: two signed statements are kept (DESIGN.md G4).
test('a log forked at the same size on two replicas leaves evidence after verify', async (t) => {
  const bobId = createIdentity();
  let bob!: Vault;
  await fork(t, [bobId], { onA: 1, onB: 1 }, async ({ a, b, access }) => {
    bob = await (await createClient({ identity: bobId, servers: [a.url, b.url] })).openVault(access);
  });
  await t.throwsAsync(bob.verify());
  t.is(bob.evidence.length, 1);
});

// A log whose size this device already holds is still compared by root: a
// fork of equal size is caught at sync, on the replica's signed checkpoint.
test('a log forked at the same size on two replicas is EQUIVOCATION at sync', async (t) => {
  const bobId = createIdentity();
  let bob!: Vault;
  await fork(t, [bobId], { onA: 1, onB: 1 }, async ({ a, b, access }) => {
    bob = await (await createClient({ identity: bobId, servers: [a.url, b.url] })).openVault(access);
  });
  await rejects(t, bob.sync(), 'EQUIVOCATION');
});
