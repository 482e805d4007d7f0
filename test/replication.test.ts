/**
 * Replication seen from the SDK: two members who each talk to a different
 * replica share a vault through the replicas' peering alone (SPEC.md 22), and
 * every entry either reads was verified by the SDK as usual, cosigned by the
 * replica it read from.
 */
import test from 'ava';
import { createClient, createIdentity } from '../sdk/src/index.js';
import { ReplicaSet, direct, eventually } from '../server/test/support/replicas.js';
import { isE2ekvError } from '../protocol/src/errors.js';

test('members on different replicas share a vault through replication alone', async (t) => {
  const set = await ReplicaSet.create(2, {
    replication: { antiEntropyIntervalMs: 300, maxBackoffMs: 500, requestTimeoutMs: 5_000 },
  });
  t.teardown(() => set.cleanup());
  const [a, b] = [set.replicas[0]!, set.replicas[1]!];
  const alice = await createClient({ identity: createIdentity(), servers: [direct(a)] });
  const bob = await createClient({ identity: createIdentity(), servers: [direct(b)] });

  const { vault: va } = await alice.createVault();
  await va.set('greeting', 'hello from A');
  const token = await va.invite(bob.identityString, 'writer');

  // Bob knows only B: he can join once B holds the vault and the add.
  let joined: Awaited<ReturnType<typeof bob.joinVault>> | undefined;
  await eventually('bob joins through B', async () => {
    try {
      joined = await bob.joinVault(token);
      return true;
    } catch (error) {
      if (isE2ekvError(error) && (error.code === 'NOT_FOUND' || error.code === 'PERMISSION_DENIED')) return false;
      throw error;
    }
  });
  const vb = joined!.vault;
  t.is(await vb.get('greeting'), 'hello from A');

  await vb.set('reply', 'hello from B');
  await eventually('alice reads bob through A', async () => {
    await va.sync();
    return (await va.get('reply')) === 'hello from B';
  });
  t.deepEqual(va.evidence, []);
  t.deepEqual(vb.evidence, []);
  t.true(set.status(0).peers[0]!.entriesReceived >= 1);
  t.true(set.status(1).peers[0]!.entriesReceived >= 2);
});
