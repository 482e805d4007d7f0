import test from 'ava';
import { E2ekvError, MerkleTree, compareBytes, decodeEntry, encodeEntry, fromHex, leafHash } from '@e2ekv/protocol';
import type { AppendRequest, CausalContext, MembershipChange, MembershipEntry } from '@e2ekv/protocol';
import { MembershipCache, MembershipState } from '../src/membership.js';
import { MemoryStorage } from '../src/storage/memory.js';
import { TestDevice } from './support/writer.js';

/**
 * Stores an append as it comes, without the acceptor's checks: replay must
 * apply its own rules to whatever storage holds.
 */
async function storeUnchecked(storage: MemoryStorage, vaultId: string, device: TestDevice, request: AppendRequest) {
  const leaves = request.entries.map((e) => leafHash(e));
  const size = request.start + request.entries.length;
  await storage.append({
    vaultId,
    device: device.hex,
    expectedSize: request.start,
    entries: request.entries.map((bytes, i) => ({ index: request.start + i, bytes, leafHash: leaves[i]! })),
    blobs: [],
    head: { device: device.hex, size, root: device.tree(vaultId).root(size), note: request.checkpoint },
    membership: request.entries
      .map((bytes, i) => ({ device: device.hex, index: request.start + i, bytes }))
      .filter((m) => decodeEntry(m.bytes).type === 'membership'),
  });
}

/** The causal context of a writer that has seen `sizes` of other logs (zero sizes left out). */
function contextOf(writer: TestDevice, sizes: readonly [TestDevice, number][]): CausalContext {
  return sizes
    .filter(([d, size]) => d !== writer && size > 0)
    .map(([d, size]) => ({ device: d.publicKey, size: BigInt(size) }))
    .sort((x, y) => compareBytes(x.device, y.device));
}

async function vault() {
  const storage = new MemoryStorage();
  const creator = await TestDevice.create();
  const { signedGenesis, vaultId } = await creator.genesis();
  await storage.createVault(vaultId, signedGenesis);
  const [a, b, c, d] = await Promise.all([
    TestDevice.create(),
    TestDevice.create(),
    TestDevice.create(),
    TestDevice.create(),
  ]);
  const all = [creator, a!, b!, c!, d!];
  /** A membership entry whose writer had seen `context` (by default, every log as it is now). */
  const change = async (
    writer: TestDevice,
    what: MembershipChange,
    seen: readonly [TestDevice, number][] = all.map((x) => [x, x.size(vaultId)]),
  ) => {
    const context = contextOf(writer, seen);
    const request = await writer.writeRaw(vaultId, (at) =>
      encodeEntry({ type: 'membership', ...at, epoch: 0, clock: { wallMs: 1n, counter: 0 }, context, change: what }),
    );
    await storeUnchecked(storage, vaultId, writer, request);
  };
  return { storage, creator, vaultId, a: a!, b: b!, c: c!, d: d!, change };
}

function membershipEntries(request: AppendRequest): MembershipEntry[] {
  return request.entries.map((e) => decodeEntry(e)).filter((e): e is MembershipEntry => e.type === 'membership');
}

test('the genesis creator is the only member, an admin, of a new vault', async (t) => {
  const { storage, creator, vaultId, a } = await vault();
  const cache = new MembershipCache(storage);
  t.is(await cache.roleOf(vaultId, creator.hex), 'admin');
  t.is(await cache.roleOf(vaultId, a.hex), undefined);
  t.deepEqual(await cache.members(vaultId), [{ device: creator.hex, role: 'admin' }]);
});

test('an unknown vault has no members, and listing them is NOT_FOUND', async (t) => {
  const cache = new MembershipCache(new MemoryStorage());
  const vaultId = '00'.repeat(32);
  t.is(await cache.roleOf(vaultId, 'ab'.repeat(32)), undefined);
  const error = await t.throwsAsync(cache.members(vaultId), { instanceOf: E2ekvError });
  t.is(error?.code, 'NOT_FOUND');
});

test('add, set-role and remove by an admin change roles in acceptance order', async (t) => {
  const { storage, creator, vaultId, a, b, change } = await vault();
  await change(creator, a.addChange('writer'));
  await change(creator, b.addChange('reader'));
  await change(creator, { op: 'set-role', member: a.publicKey, role: 'admin' });
  await change(a, { op: 'set-role', member: b.publicKey, role: 'writer' });
  await change(a, { op: 'remove', member: creator.publicKey });
  const cache = new MembershipCache(storage);
  t.is(await cache.roleOf(vaultId, a.hex), 'admin');
  t.is(await cache.roleOf(vaultId, b.hex), 'writer');
  t.is(await cache.roleOf(vaultId, creator.hex), undefined);
  t.deepEqual(
    await cache.members(vaultId),
    [
      { device: a.hex, role: 'admin' },
      { device: b.hex, role: 'writer' },
    ].sort((x, y) => (x.device < y.device ? -1 : 1)),
  );
});

test('changes by a device that is not an admin at that point are skipped', async (t) => {
  const { storage, creator, vaultId, a, b, c, change } = await vault();
  await change(a, b.addChange('admin')); // a is not a member yet
  await change(creator, a.addChange('writer'));
  await change(a, c.addChange('admin')); // a is only a writer
  await change(creator, { op: 'set-role', member: a.publicKey, role: 'admin' });
  await change(a, { op: 'set-role', member: a.publicKey, role: 'reader' }); // a demotes itself
  await change(a, b.addChange('writer')); // no longer an admin
  const cache = new MembershipCache(storage);
  t.is(await cache.roleOf(vaultId, a.hex), 'reader');
  t.is(await cache.roleOf(vaultId, b.hex), undefined);
  t.is(await cache.roleOf(vaultId, c.hex), undefined);
});

test('a removed device cannot be added again, and set-role does not make members', async (t) => {
  const { storage, creator, vaultId, a, b, change } = await vault();
  await change(creator, a.addChange('writer'));
  await change(creator, { op: 'remove', member: a.publicKey });
  await change(creator, a.addChange('admin'));
  await change(creator, { op: 'set-role', member: b.publicKey, role: 'writer' });
  const cache = new MembershipCache(storage);
  t.is(await cache.roleOf(vaultId, a.hex), undefined);
  t.is(await cache.roleOf(vaultId, b.hex), undefined);
});

test('the cache keeps its state, applyAccepted updates it, invalidate replays storage', async (t) => {
  const { storage, creator, vaultId, a, b } = await vault();
  const cache = new MembershipCache(storage);
  t.is(await cache.roleOf(vaultId, a.hex), undefined);

  // Stored behind the cache's back: not seen until invalidated or applied.
  const addA = await creator.membershipAppend(vaultId, a.addChange('writer'));
  await storeUnchecked(storage, vaultId, creator, addA);
  t.is(await cache.roleOf(vaultId, a.hex), undefined);
  await cache.applyAccepted(vaultId, membershipEntries(addA));
  t.is(await cache.roleOf(vaultId, a.hex), 'writer');

  const addB = await creator.membershipAppend(vaultId, b.addChange('reader'));
  await storeUnchecked(storage, vaultId, creator, addB);
  t.is(await cache.roleOf(vaultId, b.hex), undefined);
  cache.invalidate(vaultId);
  t.is(await cache.roleOf(vaultId, b.hex), 'reader');
});

test('an entry applied by both a replay and applyAccepted counts once', async (t) => {
  const { storage, creator, vaultId, a } = await vault();
  // Applied twice, these would undo the promotion: the second add would set writer again.
  const first = await creator.membershipAppend(vaultId, a.addChange('writer'));
  await storeUnchecked(storage, vaultId, creator, first);
  const second = await creator.membershipAppend(vaultId, { op: 'set-role', member: a.publicKey, role: 'admin' });
  await storeUnchecked(storage, vaultId, creator, second);
  const cache = new MembershipCache(storage);
  t.is(await cache.roleOf(vaultId, a.hex), 'admin'); // the replay saw both
  await cache.applyAccepted(vaultId, membershipEntries(first));
  t.is(await cache.roleOf(vaultId, a.hex), 'admin');
});

test('applyAccepted during a replay in flight does not lose the entries the replay missed', async (t) => {
  const { storage, creator, vaultId, a } = await vault();
  // The replay reads storage before the change lands, and finishes after applyAccepted was called.
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const slow = new Proxy(storage, {
    get(target, property) {
      if (property === 'listMembership') {
        return async (id: string) => {
          const records = await target.listMembership(id);
          await gate;
          return records;
        };
      }
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  const cache = new MembershipCache(slow);
  const pending = cache.roleOf(vaultId, a.hex);
  const add = await creator.membershipAppend(vaultId, a.addChange('writer'));
  await storeUnchecked(storage, vaultId, creator, add);
  const applied = cache.applyAccepted(vaultId, membershipEntries(add));
  release();
  await pending;
  await applied;
  t.is(await cache.roleOf(vaultId, a.hex), 'writer');
});

test('a stored membership entry that no longer decodes is INTERNAL, not a client error', async (t) => {
  const { storage, creator, vaultId, a } = await vault();
  const request = await creator.membershipAppend(vaultId, a.addChange('writer'));
  const broken = request.entries[0]!.slice();
  broken[broken.length - 1] = 9; // an unknown role
  await storage.append({
    vaultId,
    device: creator.hex,
    expectedSize: 0,
    entries: [{ index: 0, bytes: broken, leafHash: leafHash(broken) }],
    blobs: [],
    head: { device: creator.hex, size: 1, root: new MerkleTree([leafHash(broken)]).root(), note: request.checkpoint },
    membership: [{ device: creator.hex, index: 0, bytes: broken }],
  });
  const error = await t.throwsAsync(new MembershipCache(storage).roleOf(vaultId, a.hex), { instanceOf: E2ekvError });
  t.is(error?.code, 'INTERNAL');
});

/** A membership entry as the acceptor hands it to the state (no signature needed here). */
function entry(writer: string, index: number, change: MembershipChange, context: CausalContext = []): MembershipEntry {
  return {
    type: 'membership',
    vaultId: new Uint8Array(32),
    device: fromHex(writer),
    index: BigInt(index),
    epoch: 0,
    clock: { wallMs: BigInt(index), counter: 0 },
    context,
    change,
  };
}

test('MembershipState.clone is independent of its source', (t) => {
  const state = new MembershipState('aa'.repeat(32));
  const copy = state.clone();
  t.true(copy.apply(entry('aa'.repeat(32), 0, { op: 'remove', member: new Uint8Array(32).fill(0xaa) })));
  t.is(copy.roleOf('aa'.repeat(32)), undefined);
  t.is(state.roleOf('aa'.repeat(32)), 'admin');
});

const roles = async (storage: MemoryStorage, vaultId: string, devices: TestDevice[]) => {
  const cache = new MembershipCache(storage);
  return Promise.all(devices.map((x) => cache.roleOf(vaultId, x.hex)));
};

test("rule 3: a removal voids the removed admin's membership entries it had not seen", async (t) => {
  const { storage, creator, vaultId, a, b, c, change } = await vault();
  await change(creator, a.addChange('admin'));
  await change(a, b.addChange('writer')); // a's index 0: the creator never sees it
  await change(creator, { op: 'remove', member: a.publicKey }, [[a, 0]]); // cut 0
  await change(creator, c.addChange('reader'));
  t.deepEqual(await roles(storage, vaultId, [creator, a, b, c]), ['admin', undefined, undefined, 'reader']);
});

test('rule 3: entries below the cut (seen by the remover) stand', async (t) => {
  const { storage, creator, vaultId, a, b, c, change } = await vault();
  await change(creator, a.addChange('admin'));
  await change(a, b.addChange('writer')); // a's index 0, seen by the creator
  await change(a, c.addChange('writer')); // a's index 1, concurrent with the removal
  await change(creator, { op: 'remove', member: a.publicKey }, [[a, 1]]); // cut 1
  t.deepEqual(await roles(storage, vaultId, [a, b, c]), [undefined, 'writer', undefined]);
});

test('rule 3: with several removals of one device the smallest cut wins', async (t) => {
  const { storage, creator, vaultId, a, b, c, d, change } = await vault();
  await change(creator, a.addChange('admin'));
  await change(creator, d.addChange('admin'));
  await change(a, b.addChange('writer')); // a's index 0
  await change(a, c.addChange('writer')); // a's index 1
  await change(creator, { op: 'remove', member: a.publicKey }, [[a, 2]]); // cut 2: both stand
  t.deepEqual(await roles(storage, vaultId, [b, c]), ['writer', 'writer']);
  await change(d, { op: 'remove', member: a.publicKey }, [
    [creator, 2],
    [a, 1],
  ]); // cut 1: c's add is void
  t.deepEqual(await roles(storage, vaultId, [a, b, c, d]), [undefined, 'writer', undefined, 'admin']);
});

test('rule 3: a device that removes itself keeps what it wrote before', async (t) => {
  const { storage, creator, vaultId, a, b, change } = await vault();
  await change(creator, a.addChange('admin'));
  await change(a, b.addChange('reader')); // a's index 0
  await change(a, { op: 'remove', member: a.publicKey }); // a's index 1: cut 1
  t.deepEqual(await roles(storage, vaultId, [a, b]), [undefined, 'reader']);
});

test('rule 4: a removal does not reach entries of others that relied on the removed admin', async (t) => {
  const { storage, creator, vaultId, a, b, c, change } = await vault();
  await change(creator, a.addChange('admin'));
  await change(a, b.addChange('admin')); // a's index 0, concurrent with the removal
  await change(b, c.addChange('reader')); // counted: b was an admin when this replica accepted it
  await change(creator, { op: 'remove', member: a.publicKey }, [[a, 0]]);
  // b's own membership came from a void entry; c's did not.
  t.deepEqual(await roles(storage, vaultId, [a, b, c]), [undefined, undefined, 'reader']);
});

test('two admins that remove each other: a replica keeps the removal it accepted first', async (t) => {
  const { storage, creator, vaultId, a, b, change } = await vault();
  await change(creator, a.addChange('admin'));
  await change(creator, b.addChange('admin'));
  // Both accepted here before either removal applies: a's first, then b's (whose writer is out by then).
  await change(a, { op: 'remove', member: b.publicKey }, [[creator, 2]]);
  await change(b, { op: 'remove', member: a.publicKey }, [[creator, 2]]);
  // b's removal did not count here (b was already removed when it arrived), but a's did.
  t.deepEqual(await roles(storage, vaultId, [creator, a, b]), ['admin', 'admin', undefined]);
  // Another replica that accepted b's first holds the mirror image; clients, holding both, remove both (rule 3).
});

test('a replayed state equals the state built entry by entry through applyAccepted', async (t) => {
  const { storage, creator, vaultId, a, b, c, change } = await vault();
  const live = new MembershipCache(storage);
  t.is(await live.roleOf(vaultId, creator.hex), 'admin');
  const steps: [TestDevice, MembershipChange, [TestDevice, number][]?][] = [
    [creator, a.addChange('admin')],
    [a, b.addChange('admin'), [[creator, 1]]],
    [b, c.addChange('writer')],
    [creator, { op: 'remove', member: a.publicKey }, [[a, 0]]],
    [creator, { op: 'set-role', member: c.publicKey, role: 'admin' }],
  ];
  for (const [writer, what, seen] of steps) {
    const before = writer.size(vaultId);
    await change(writer, what, seen);
    const stored = (await storage.getEntries(vaultId, writer.hex, before, before + 1))[0]!;
    await live.applyAccepted(vaultId, [decodeEntry(stored.bytes) as MembershipEntry]);
  }
  const replayed = new MembershipCache(storage);
  t.deepEqual(await live.members(vaultId), await replayed.members(vaultId));
  t.deepEqual(
    (await replayed.members(vaultId)).map((m) => m.role).sort(),
    ['admin', 'admin'],
    'the creator and c; a removed, b voided',
  );
});

test('a removed device writes only below its cut, with the role it had', (t) => {
  const admin = 'aa'.repeat(32);
  const x = 'bb'.repeat(32);
  const state = new MembershipState(admin);
  const xKey = fromHex(x);
  t.true(state.apply(entry(admin, 0, { op: 'add', member: xKey, boxKey: new Uint8Array(32).fill(1), role: 'writer' })));
  t.true(state.apply(entry(admin, 1, { op: 'remove', member: xKey }, [{ device: xKey, size: 3n }])));
  t.is(state.roleOf(x), undefined, 'no reads');
  t.true(state.isRemoved(x));
  t.is(state.roleAt(x, 2n), 'writer', "index 2 is in the removal's past");
  t.is(state.roleAt(x, 3n), undefined, 'index 3 is at the cut');
  // A later add of a removed device is ignored, and so is set-role.
  t.true(state.apply(entry(admin, 2, { op: 'add', member: xKey, boxKey: new Uint8Array(32).fill(1), role: 'admin' })));
  t.true(state.apply(entry(admin, 3, { op: 'set-role', member: xKey, role: 'admin' })));
  t.is(state.roleOf(x), undefined);
  t.is(state.roleAt(x, 2n), 'writer');
});
