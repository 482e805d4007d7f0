import test from 'ava';
import { E2ekvError, MerkleTree, decodeEntry, leafHash } from '@e2ekv/protocol';
import type { AppendRequest, MembershipChange, MembershipEntry } from '@e2ekv/protocol';
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

async function vault() {
  const storage = new MemoryStorage();
  const creator = await TestDevice.create();
  const { signedGenesis, vaultId } = await creator.genesis();
  await storage.createVault(vaultId, signedGenesis);
  const [a, b, c] = await Promise.all([TestDevice.create(), TestDevice.create(), TestDevice.create()]);
  const change = async (writer: TestDevice, what: MembershipChange) =>
    storeUnchecked(storage, vaultId, writer, await writer.membershipAppend(vaultId, what));
  return { storage, creator, vaultId, a: a!, b: b!, c: c!, change };
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

test('MembershipState.clone is independent of its source', (t) => {
  const state = new MembershipState('aa'.repeat(32));
  const copy = state.clone();
  t.true(copy.applyChange('aa'.repeat(32), { op: 'remove', member: new Uint8Array(32).fill(0xaa) }));
  t.is(copy.roleOf('aa'.repeat(32)), undefined);
  t.is(state.roleOf('aa'.repeat(32)), 'admin');
});
