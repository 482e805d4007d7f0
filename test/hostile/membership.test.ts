/**
 * Hostile replica, membership: clients replay membership from the genesis and
 * never trust a replica's member list (SPEC.md 8.4). A replica that serves the
 * signed log of a device no admin made a writer gets its writes ignored, listed
 * and reported; a replica that hides a member's log that others depend on is
 * caught as withholding.
 */
import test, { type ExecutionContext } from 'ava';
import { E2ekvError, type Role } from '../../protocol/src/index.js';
import {
  createClient,
  createIdentity,
  publicIdentity,
  type Identity,
  type Vault,
  type VaultAccess,
} from '../../sdk/src/index.js';
import {
  HostileReplica,
  sharedServer,
  hex,
  membershipAs,
  rejects,
  sealDataAs,
  signLogAs,
  type VaultStateJson,
} from '../support/hostile-replica.js';

const server = sharedServer(test);

const key = (identity: Identity) => hex(publicIdentity(identity).signingKey);

async function hostile(t: ExecutionContext): Promise<HostileReplica> {
  const replica = await HostileReplica.start(server());
  t.teardown(() => replica.close());
  return replica;
}

// ---------------------------------------------------------------------------
// Inventing a member. The invented device holds the vault secret (leaked, or
// a former member's), so its entries decrypt: only membership replay stops them.

interface Invented {
  /** Entries of the invented log, given Alice's device and how many entries of hers it depends on. */
  log: (
    mallory: Identity,
    access: VaultAccess,
    /** Alice's device and all of her log: what the invented entries depend on. */
    alice: Record<string, number>,
  ) => { entries: Uint8Array[]; rejected: number[]; role: Role | undefined };
  /** Made a member (with this role) by Alice before the attack, or not at all. */
  member?: 'reader' | 'writer';
}

const invented = test.macro({
  async exec(t, { log, member }: Invented) {
    const replica = await hostile(t);
    const [aliceId, bobId, malloryId] = [createIdentity(), createIdentity(), createIdentity()];
    const connect = (identity: Identity) => createClient({ identity, servers: [replica.url] });
    const { vault: a, access } = await (await connect(aliceId)).createVault();
    await a.addMember(publicIdentity(bobId), 'reader');
    if (member !== undefined) await a.addMember(publicIdentity(malloryId), member);
    await a.set('k', 'from alice');
    const b = await (await connect(bobId)).openVault(access);
    const errors: unknown[] = [];
    b.onError((error) => errors.push(error));

    const { entries, rejected, role } = log(malloryId, access, { [key(aliceId)]: member === undefined ? 2 : 3 });
    const served = replica.serveLog({
      vault: access.vaultId,
      device: key(malloryId),
      entries,
      note: await signLogAs(malloryId, access.vaultId, entries),
      client: key(bobId),
    });
    // The replica's own member list is a claim no client reads: it says Mallory is an admin.
    const members = replica.rewriteJson<{ members: { device: string; role: string }[] }>(
      { route: 'members' },
      (json) => {
        json.members.push({ device: key(malloryId), role: 'admin' });
      },
    );

    t.is(await b.get('k', { read: 'one' }), 'from alice');
    t.true(served.changed > 0, 'the replica served the invented log');
    t.deepEqual(
      (await b.getAll('k')).map((s) => s.value),
      ['from alice'],
    );
    t.deepEqual(await b.list(), ['k'], "none of the invented device's keys is visible");
    t.is(
      b.status().logs.find((l) => l.device === key(malloryId))?.entries,
      entries.length,
      'the log is kept, verified, in its causal place',
    );
    t.deepEqual(
      b.status().rejected,
      rejected.map((index) => ({ device: key(malloryId), index, reason: 'not-a-writer', role })),
    );
    t.is(errors.length, rejected.length);
    for (const [i, error] of errors.entries()) {
      t.true(error instanceof E2ekvError);
      t.is((error as E2ekvError).code, 'PERMISSION_DENIED');
      t.regex(
        (error as E2ekvError).message,
        new RegExp(
          `entry ${rejected[i]} of device ${key(malloryId)} was written when that device was ${role === undefined ? 'not a member' : `a ${role}`} of this vault: its writes are ignored`,
        ),
      );
    }
    t.is(members.calls, 0, "the SDK never asks for the replica's member list");
  },
  title: (title = '') => `inventing a member, ${title}: ignored, listed as rejected, reported PERMISSION_DENIED`,
});

test('the log of a device no admin added', invented, {
  log: (mallory, access, alice) => ({
    entries: [
      sealDataAs(
        mallory,
        access,
        0,
        [
          { name: 'k', json: 'forged' },
          { name: 'mallory-only', json: 'forged' },
        ],
        alice,
      ),
    ],
    rejected: [0],
    role: undefined,
  }),
});

test('the log of a device that enrols itself as an admin first', invented, {
  log: (mallory, access, alice) => ({
    entries: [
      membershipAs(
        mallory,
        access.vaultId,
        0,
        {
          op: 'add',
          member: publicIdentity(mallory).signingKey,
          boxKey: publicIdentity(mallory).boxKey,
          role: 'admin',
        },
        alice,
      ),
      sealDataAs(mallory, access, 1, [{ name: 'mallory-only', json: 'forged' }], alice),
    ],
    rejected: [1],
    role: undefined,
  }),
});

test('the writes of a reader (which the real server refuses to store)', invented, {
  member: 'reader',
  log: (mallory, access, alice) => ({
    entries: [sealDataAs(mallory, access, 0, [{ name: 'k', json: 'forged' }], alice)],
    rejected: [0],
    role: 'reader',
  }),
});

test('the writes of a writer from before its enrolment (an older causal past)', invented, {
  member: 'writer',
  log: (mallory, access, alice) => ({
    // Alice's entry 1 made it a reader; this entry's past holds only her entry 0.
    entries: [
      sealDataAs(mallory, access, 0, [{ name: 'mallory-only', json: 'forged' }], { [Object.keys(alice)[0]!]: 1 }),
    ],
    rejected: [0],
    role: undefined,
  }),
});

// ---------------------------------------------------------------------------
// Hiding a member

interface Hidden {
  /** Whose log the replica leaves out of the vault state. */
  hide: 'alice' | 'bob';
  message: (who: Record<'alice' | 'bob' | 'carol', string>) => RegExp;
}

const hidden = test.macro({
  async exec(t, { hide, message }: Hidden) {
    const replica = await hostile(t);
    const [aliceId, bobId, carolId, daveId] = [createIdentity(), createIdentity(), createIdentity(), createIdentity()];
    const who = { alice: key(aliceId), bob: key(bobId), carol: key(carolId) };
    const connect = (identity: Identity) => createClient({ identity, servers: [replica.url] });
    const { vault: a, access } = await (await connect(aliceId)).createVault();
    await a.addMember(publicIdentity(bobId), 'writer');
    await a.addMember(publicIdentity(carolId), 'writer');
    await a.addMember(publicIdentity(daveId), 'reader');
    await (await (await connect(bobId)).openVault(access)).set('k', 'from bob');
    // Carol writes having seen Bob's entry: hers depends on it.
    await (await (await connect(carolId)).openVault(access)).set('k', 'from carol');
    const hook = replica.rewriteJson<VaultStateJson>({ route: 'vault', client: key(daveId) }, (state) => {
      state.logs = state.logs.filter((l) => l.device !== who[hide]);
    });
    const dave: Promise<Vault> = (await connect(daveId)).openVault(access);
    const error = await rejects(t, dave, 'WITHHELD', message(who));
    t.is(error.details['served'], 0);
    t.true(hook.changed > 0);
  },
  title: (title = '') => `hiding a member: ${title} is WITHHELD`,
});

test("omitting a writer's log that another writer's entries depend on", hidden, {
  hide: 'bob',
  message: ({ bob, carol }) =>
    new RegExp(`entry 0 of device ${carol} depends on 1 entries of device ${bob}, but the replicas served only 0`),
});

test("omitting the admin's log whose entries made the others members", hidden, {
  hide: 'alice',
  message: ({ alice }) => new RegExp(`depends on \\d+ entries of device ${alice}, but the replicas served only 0`),
});
