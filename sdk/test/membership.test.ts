/**
 * Membership replayed by the client from the genesis: who may write is judged
 * from each entry's causal past alone, and writes of devices that could not
 * write are never believed, wherever they came from.
 */
import test from 'ava';
import {
  KeyNameBlinder,
  MerkleTree,
  deriveBlindingKey,
  deriveValueKey,
  deviceCheckpointSigner,
  fromHex,
  leafHash,
  signDeviceCheckpoint,
  toHex,
  type HybridClock,
  type MembershipChange,
  type Role,
} from '@e2ekv/protocol';
import { MembershipView } from '../src/membership.js';
import { sealDataEntry } from '../src/entries.js';
import { MemoryLocalStore, createClient, createIdentity, publicIdentity, type Identity } from '../src/index.js';
import { startServerProcess, tempDir } from '../../server/test/support/process.js';

const hex = (n: number) => n.toString(16).padStart(64, '0');
const [creator, bob, carol] = [hex(1), hex(2), hex(3)];
const clock = (wallMs: number): HybridClock => ({ wallMs: BigInt(wallMs), counter: 0 });
const change = (op: 'add' | 'set-role' | 'remove', member: string, role: Role = 'writer'): MembershipChange =>
  op === 'remove'
    ? { op, member: fromHex(member) }
    : op === 'add'
      ? { op, member: fromHex(member), boxKey: new Uint8Array(32).fill(9), role }
      : { op, member: fromHex(member), role };

test('the creator is the first admin; adds, role changes and removals count only from admins', (t) => {
  const view = new MembershipView(creator);
  t.is(view.roleAt(creator, new Map()), 'admin');
  t.is(view.roleAt(bob, new Map()), undefined);
  // creator's entry 0 adds bob as a writer.
  t.true(view.record({ device: creator, index: 0, clock: clock(1), context: new Map(), change: change('add', bob) }));
  t.is(view.roleAt(bob, new Map([[creator, 1]])), 'writer');
  t.is(view.roleAt(bob, new Map()), undefined, 'not in a past that lacks the add');
  // bob (a writer, not an admin) tries to add carol: it does not count.
  t.false(
    view.record({
      device: bob,
      index: 0,
      clock: clock(2),
      context: new Map([[creator, 1]]),
      change: change('add', carol, 'admin'),
    }),
  );
  t.is(
    view.roleAt(
      carol,
      new Map([
        [creator, 1],
        [bob, 1],
      ]),
    ),
    undefined,
  );
  // creator makes bob a reader, then removes him.
  view.record({
    device: creator,
    index: 1,
    clock: clock(3),
    context: new Map(),
    change: change('set-role', bob, 'reader'),
  });
  t.is(view.roleAt(bob, new Map([[creator, 2]])), 'reader');
  view.record({ device: creator, index: 2, clock: clock(4), context: new Map(), change: change('remove', bob) });
  t.is(view.roleAt(bob, new Map([[creator, 3]])), undefined);
  // Entries bob wrote before seeing the removal are judged by their own past.
  t.is(view.writerRole(bob, 1, new Map([[creator, 1]])), 'writer');
  t.is(view.writerRole(bob, 1, new Map([[creator, 3]])), undefined);
  // A set-role never makes a non-member a member.
  view.record({
    device: creator,
    index: 3,
    clock: clock(5),
    context: new Map(),
    change: change('set-role', carol, 'admin'),
  });
  t.is(view.roleAt(carol, new Map([[creator, 4]])), undefined);
});

test('verdicts depend on the causal past, not on the order concurrent changes were recorded in', (t) => {
  // Two admins change bob concurrently; both orders of recording give one answer.
  const admin2 = hex(4);
  const entries = [
    { device: creator, index: 0, clock: clock(1), context: new Map(), change: change('add', admin2, 'admin') },
    { device: creator, index: 1, clock: clock(2), context: new Map(), change: change('add', bob, 'writer') },
    { device: creator, index: 2, clock: clock(5), context: new Map(), change: change('remove', bob) },
    {
      device: admin2,
      index: 0,
      clock: clock(6),
      context: new Map([[creator, 2]]),
      change: change('set-role', bob, 'reader'),
    },
  ];
  const past = new Map([
    [creator, 3],
    [admin2, 1],
  ]);
  const verdicts = [
    [0, 1, 2, 3],
    [0, 1, 3, 2],
  ].map((order) => {
    const view = new MembershipView(creator);
    for (const i of order) view.record(entries[i]!);
    return view.roleAt(bob, past);
  });
  t.is(verdicts[0], verdicts[1]);
  // Clock order: the removal (5) comes before the set-role (6), which changes only members.
  t.is(verdicts[0], undefined);
});

async function seal(
  identity: Identity,
  vaultId: Uint8Array,
  secret: Uint8Array,
  context: { device: Uint8Array; size: bigint }[],
) {
  const keys = {
    vaultId,
    epoch: 0,
    valueKeys: new Map([[0, deriveValueKey(secret, vaultId, 0)]]),
    blinder: new KeyNameBlinder(deriveBlindingKey(secret, vaultId)),
  };
  const device = publicIdentity(identity).signingKey;
  return sealDataEntry({
    keys,
    device,
    index: 0,
    clock: { wallMs: BigInt(Date.now()), counter: 0 },
    context,
    writes: [{ name: 'k', value: { kind: 'json', json: 'forged' } }],
  }).bytes;
}

test('writes of a non-member or a reader that reach the local replica are not believed', async (t) => {
  const { dir, remove } = await tempDir();
  const server = await startServerProcess(dir);
  try {
    const store = new MemoryLocalStore();
    const alice = await createClient({ identity: createIdentity(), servers: [server.url], store });
    const readerIdentity = createIdentity();
    const { vault, access } = await alice.createVault();
    await vault.set('k', 'from alice');
    await vault.addMember(publicIdentity(readerIdentity), 'reader');
    // Mallory knows the vault secret (a leak, or a former member) but was never added; the
    // reader is a member who may not write. Both logs are signed by their devices, as a
    // replica would serve them, and are planted in the local replica.
    const vaultId = fromHex(access.vaultId);
    // The reader's entry depends on alice's add (her entries 0 and 1), so it is judged as a reader's.
    const afterAdd = [{ device: fromHex(alice.deviceId), size: 2n }];
    for (const [identity, context] of [
      [createIdentity(), []],
      [readerIdentity, afterAdd],
    ] as const) {
      const device = toHex(publicIdentity(identity).signingKey);
      const bytes = await seal(identity, vaultId, access.secret, [...context]);
      const tree = new MerkleTree([leafHash(bytes)]);
      const note = await signDeviceCheckpoint(await deviceCheckpointSigner(identity.signingSeed, vaultId), {
        size: 1n,
        root: tree.root(),
      });
      await store.appendEntries(access.vaultId, device, 0, [bytes]);
      await store.setPin(access.vaultId, device, { size: 1, root: tree.root(), note });
    }
    const errors: unknown[] = [];
    const reopened = await alice.openVault(access, { sync: false });
    reopened.onError((e) => errors.push(e));
    t.is(await reopened.get('k'), 'from alice');
    t.deepEqual(
      (await reopened.getAll('k')).map((s) => s.value),
      ['from alice'],
    );
    const rejected = reopened.status().rejected;
    t.is(rejected.length, 2);
    t.deepEqual(rejected.map((r) => r.role).sort(), ['reader', undefined].sort());
    // A reader's own client refuses to write at all.
    const reader = await createClient({ identity: readerIdentity, servers: [server.url] });
    const readerVault = await reader.openVault(access);
    t.is(await readerVault.get('k'), 'from alice');
    const refused = await t.throwsAsync(readerVault.set('k', 'nope'));
    t.is((refused as { code?: string }).code, 'PERMISSION_DENIED');
    t.regex(refused!.message, /a reader of this vault/);
  } finally {
    await server.stop();
    await remove();
  }
});
