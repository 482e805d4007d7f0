/**
 * Membership replayed by the client from the genesis: who may write is judged
 * from each entry's causal past alone, and writes of devices that could not
 * write are never believed, wherever they came from.
 */
import test from 'ava';
import fc from 'fast-check';
import {
  MerkleTree,
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
import { EpochKeyRing } from '../src/keyring.js';
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
  const view = new MembershipView(creator, new Uint8Array(32).fill(7));
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
    const view = new MembershipView(creator, new Uint8Array(32).fill(7));
    for (const i of order) view.record(entries[i]!);
    return view.roleAt(bob, past);
  });
  t.is(verdicts[0], verdicts[1]);
  // Clock order: the removal (5) comes before the set-role (6), which changes only members.
  t.is(verdicts[0], undefined);
});

test('a removal is for good: a later add of the removed device does not count in any past that holds the removal', (t) => {
  const view = new MembershipView(creator, new Uint8Array(32).fill(7));
  view.record({ device: creator, index: 0, clock: clock(1), context: new Map(), change: change('add', bob) });
  view.record({ device: creator, index: 1, clock: clock(2), context: new Map(), change: change('remove', bob) });
  view.record({ device: creator, index: 2, clock: clock(3), context: new Map(), change: change('add', bob, 'admin') });
  t.is(view.roleAt(bob, new Map([[creator, 3]])), undefined);
  t.is(view.roleAt(bob, new Map([[creator, 1]])), 'writer', 'a past without the removal still has him');
});

test("removal wins: the removed device's entries from the cut on are void, whatever context they claim", (t) => {
  const view = new MembershipView(creator, new Uint8Array(32).fill(7));
  view.record({ device: creator, index: 0, clock: clock(1), context: new Map(), change: change('add', bob, 'admin') });
  // The creator had seen 2 of bob's entries when it removed him: bob's entries 0 and 1 stand, 2 on are void.
  view.record({
    device: creator,
    index: 1,
    clock: clock(9),
    context: new Map([[bob, 2]]),
    change: change('remove', bob),
  });
  t.false(view.isVoid(bob, 1));
  t.true(view.isVoid(bob, 2));
  t.true(view.isVoid(bob, 7));
  t.is(view.cutOf(bob), 2);
  // Bob's entry 3 claims a context without the removal: by its past he is still an admin...
  t.is(view.writerRole(bob, 3, new Map([[creator, 1]])), 'admin');
  // ...and what he "added" there does not count, for it is void.
  t.false(
    view.record({
      device: bob,
      index: 3,
      clock: clock(10),
      context: new Map([[creator, 1]]),
      change: change('add', carol),
    }),
  );
  t.true(view.isVoid(bob, 3));
  t.is(
    view.roleAt(
      carol,
      new Map([
        [creator, 2],
        [bob, 4],
      ]),
    ),
    undefined,
  );
  // The removal itself is never void, and a removal of bob written by bob past the cut does not undo it.
  t.false(view.isVoid(creator, 1));
});

test('two admins that remove each other concurrently are both removed', (t) => {
  const view = new MembershipView(creator, new Uint8Array(32).fill(7));
  view.record({ device: creator, index: 0, clock: clock(1), context: new Map(), change: change('add', bob, 'admin') });
  view.record({ device: creator, index: 1, clock: clock(5), context: new Map(), change: change('remove', bob) });
  view.record({
    device: bob,
    index: 0,
    clock: clock(5),
    context: new Map([[creator, 1]]),
    change: change('remove', creator),
  });
  const all = new Map([
    [creator, 2],
    [bob, 1],
  ]);
  t.deepEqual(view.membersAt(all), []);
  t.true(view.isVoid(creator, 2), "the creator's next entry would be void");
});

test('a view seeded with known removals judges entries void before the removal is recorded again', (t) => {
  const first = new MembershipView(creator, new Uint8Array(32).fill(7));
  first.record({ device: creator, index: 0, clock: clock(1), context: new Map(), change: change('add', bob) });
  first.record({
    device: creator,
    index: 1,
    clock: clock(9),
    context: new Map([[bob, 1]]),
    change: change('remove', bob),
  });
  const replay = new MembershipView(creator, new Uint8Array(32).fill(7), first);
  t.true(replay.isVoid(bob, 1));
  t.false(replay.isVoid(bob, 0));
  // Roles in a past are still judged by that past alone.
  replay.record({ device: creator, index: 0, clock: clock(1), context: new Map(), change: change('add', bob) });
  t.is(replay.roleAt(bob, new Map([[creator, 1]])), 'writer');
});

test('property: verdicts do not depend on the order changes are recorded in, as long as it is causal', (t) => {
  // Three admins-to-be and a target; random histories of concurrent adds and removals.
  const devices = [creator, hex(4), hex(5), bob];
  fc.assert(
    fc.property(
      fc.array(
        fc.record({
          writer: fc.integer({ min: 0, max: 2 }),
          op: fc.constantFrom('add', 'remove', 'set-role') as fc.Arbitrary<'add' | 'remove' | 'set-role'>,
          member: fc.integer({ min: 1, max: 3 }),
          role: fc.constantFrom('reader', 'writer', 'admin') as fc.Arbitrary<Role>,
          sees: fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }),
          wall: fc.integer({ min: 1, max: 20 }),
        }),
        { maxLength: 12 },
      ),
      fc.integer(),
      (steps, seed) => {
        // Build entries whose contexts are closed prefixes of what was written before.
        const logs = new Map<string, RecordedChangeLike[]>(devices.map((d) => [d, []]));
        const entries: RecordedChangeLike[] = [];
        for (const step of steps) {
          const writer = devices[step.writer]!;
          const context = new Map<string, number>();
          for (const [i, d] of devices.slice(0, 3).entries()) {
            const size = logs.get(d)!.length;
            if (d !== writer && step.sees[i] && size > 0) context.set(d, size);
          }
          // Close the context: include whatever the listed entries themselves saw.
          for (let changed = true; changed;) {
            changed = false;
            for (const [d, size] of [...context]) {
              for (const [d2, s2] of logs.get(d)![size - 1]!.context) {
                if (d2 !== writer && (context.get(d2) ?? 0) < s2) {
                  context.set(d2, s2);
                  changed = true;
                }
              }
            }
          }
          const own = logs.get(writer)!;
          const maxWall = Math.max(
            0,
            ...entries.filter((e) => inPast(e, writer, own.length, context)).map((e) => Number(e.clock.wallMs)),
          );
          const entry: RecordedChangeLike = {
            device: writer,
            index: own.length,
            clock: clock(Math.max(step.wall, maxWall + 1)),
            context,
            change: change(step.op, devices[step.member]!, step.role),
          };
          own.push(entry);
          entries.push(entry);
        }
        const everything = new Map(devices.map((d) => [d, logs.get(d)!.length]));
        const verdict = (order: RecordedChangeLike[]) => {
          const view = new MembershipView(creator, new Uint8Array(32).fill(7));
          for (const e of order) view.record(e);
          return JSON.stringify({
            members: view.membersAt(everything).map((m) => [m.device, m.role]),
            void: entries.map((e) => view.isVoid(e.device, e.index)),
          });
        };
        const shuffled = causalShuffle(entries, seed);
        return verdict(entries) === verdict(shuffled);
      },
    ),
  );
  t.pass();
});

type RecordedChangeLike = {
  device: string;
  index: number;
  clock: HybridClock;
  context: Map<string, number>;
  change: MembershipChange;
};

function inPast(e: RecordedChangeLike, writer: string, index: number, context: Map<string, number>): boolean {
  return e.device === writer ? e.index < index : e.index < (context.get(e.device) ?? 0);
}

/** Another causal order of the same entries: repeatedly pick, by a seeded choice, an entry whose past is recorded. */
function causalShuffle(entries: RecordedChangeLike[], seed: number): RecordedChangeLike[] {
  const left = [...entries];
  const done: RecordedChangeLike[] = [];
  let state = seed >>> 0 || 1;
  while (left.length > 0) {
    const ready = left.filter((e) =>
      left.every((other) => other === e || !inPast(other, e.device, e.index, e.context)),
    );
    state = (state * 1103515245 + 12345) >>> 0;
    const pick = ready[state % ready.length]!;
    done.push(pick);
    left.splice(left.indexOf(pick), 1);
  }
  return done;
}

async function seal(
  identity: Identity,
  vaultId: Uint8Array,
  secret: Uint8Array,
  context: { device: Uint8Array; size: bigint }[],
) {
  const keys = new EpochKeyRing(vaultId, secret);
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
