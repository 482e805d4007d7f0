/**
 * The acceptor's tree cache (server/src/tree-cache.ts): bounded by count and
 * by estimated bytes, least recently used dropped first, and a dropped tree
 * keeps working for whoever holds it.
 */
import test from 'ava';
import { E2ekvError, MerkleTree, leafHash, rootFromLeafHashes } from '@e2ekv/protocol';
import type { StorageAdapter } from '../src/storage/adapter.js';
import { DEFAULT_MAX_TREE_CACHE_BYTES, TreeCache, estimateTreeBytes } from '../src/tree-cache.js';

const VAULT = 'aa'.repeat(32);

function leaves(count: number, salt = 0): Uint8Array[] {
  return Array.from({ length: count }, (_, i) => leafHash(Uint8Array.of(salt, i & 0xff, i >> 8)));
}

/** Just enough storage for the cache: leaf hashes per device, and a count of loads. */
class LeafStorage {
  readonly logs = new Map<string, Uint8Array[]>();
  readonly loads = new Map<string, number>();
  failNext = false;

  set(device: string, hashes: Uint8Array[]): void {
    this.logs.set(device, hashes);
  }

  loadsOf(device: string): number {
    return this.loads.get(device) ?? 0;
  }

  asAdapter(): StorageAdapter {
    return this as unknown as StorageAdapter;
  }

  async getLeafHashes(vaultId: string, device: string): Promise<Uint8Array[]> {
    await Promise.resolve();
    if (vaultId !== VAULT) throw new Error(`unexpected vault ${vaultId}`);
    this.loads.set(device, this.loadsOf(device) + 1);
    if (this.failNext) {
      this.failNext = false;
      throw new Error('storage is down');
    }
    return (this.logs.get(device) ?? []).map((hash) => hash.slice());
  }
}

function device(n: number): string {
  return n.toString(16).padStart(64, '0');
}

function setup(options: { maxTrees?: number; maxBytes?: number }, logs: Record<number, number>) {
  const storage = new LeafStorage();
  for (const [n, count] of Object.entries(logs)) storage.set(device(Number(n)), leaves(count, Number(n)));
  const cache = new TreeCache(storage.asAdapter(), options);
  const get = (n: number, size = 0, exact = false) => cache.get(VAULT, device(n), size, exact);
  return { storage, cache, get };
}

test('the estimate is 64 bytes a leaf plus a fixed part; the default bound is 256 MiB', (t) => {
  t.is(estimateTreeBytes(3000) - estimateTreeBytes(2000), 64_000);
  // Small trees round up to a power of two of leaves, as their storage does.
  t.is(estimateTreeBytes(513), estimateTreeBytes(1024));
  t.is(estimateTreeBytes(1024) - estimateTreeBytes(1), 64 * 1023);
  t.true(estimateTreeBytes(0) > 0);
  t.is(DEFAULT_MAX_TREE_CACHE_BYTES, 256 * 1024 * 1024);
});

test('bounded by count: the least recently used tree goes first', async (t) => {
  const { storage, cache, get } = setup({ maxTrees: 2 }, { 1: 3, 2: 3, 3: 3 });
  await get(1);
  await get(2);
  await get(1); // 1 is now more recent than 2
  await get(3);
  t.is(cache.count, 2);
  await get(1);
  t.is(storage.loadsOf(device(1)), 1, 'kept');
  await get(2);
  t.is(storage.loadsOf(device(2)), 2, 'dropped, then loaded again');
});

test('bounded by bytes: trees are dropped until the estimate fits', async (t) => {
  const maxBytes = 2 * estimateTreeBytes(100) + 10;
  const { storage, cache, get } = setup({ maxBytes }, { 1: 100, 2: 100, 3: 100, 4: 10 });
  await get(1);
  await get(2);
  t.is(cache.count, 2);
  t.is(cache.bytes, 2 * estimateTreeBytes(100));
  await get(3);
  t.is(cache.count, 2, 'the third 100-leaf tree pushed the oldest out');
  t.true(cache.bytes <= maxBytes);
  await get(2);
  t.is(storage.loadsOf(device(2)), 1);
  await get(1);
  t.is(storage.loadsOf(device(1)), 2);
  // A small tree fits beside one large one, not beside two.
  await get(4);
  t.is(cache.count, 2);
  t.true(cache.bytes <= maxBytes);
});

test('the most recently used tree stays even when it alone is over the byte bound', async (t) => {
  const { storage, cache, get } = setup({ maxBytes: 0 }, { 1: 50, 2: 50 });
  const tree = await get(1, 50, true);
  t.is(cache.count, 1);
  t.is(await get(1, 50, true), tree, 'not rebuilt at every request');
  t.is(storage.loadsOf(device(1)), 1);
  await get(2);
  t.is(cache.count, 1);
  await get(1);
  t.is(storage.loadsOf(device(1)), 2);
});

test('a tree that grows after it was handed out counts when next asked for, or at the periodic recount', async (t) => {
  const maxBytes = estimateTreeBytes(10) + estimateTreeBytes(10) + 10;
  const { storage, cache, get } = setup({ maxBytes }, { 1: 10, 2: 10, 3: 10 });
  const tree = await get(1, 10, true);
  for (const hash of leaves(1000, 9)) tree.append(hash); // as an append does, before storage has them
  t.is(cache.bytes, estimateTreeBytes(1010));
  await get(1, 1010, true); // the next append to that log
  await get(2);
  t.is(cache.count, 1, 'the grown tree no longer fits beside another');
  t.is(storage.loadsOf(device(2)), 1);

  // Grown, and never asked for again: the recount every 64 requests finds it.
  const grown = await get(3, 10, true);
  for (const hash of leaves(1000, 9)) grown.append(hash);
  for (let i = 0; i < 64; i++) await get(2);
  t.is(cache.count, 1);
  t.true(cache.bytes <= estimateTreeBytes(10));
});

test('a dropped tree keeps working for the append that holds it, and drop() leaves its successor alone', async (t) => {
  const { storage, cache, get } = setup({ maxTrees: 1 }, { 1: 5, 2: 5 });
  const held = await get(1, 5, true);
  await get(2); // evicts log 1's tree while an "append" holds it
  t.is(cache.count, 1);
  const added = leaves(3, 7);
  for (const hash of added) held.append(hash);
  const all = [...leaves(5, 1), ...added];
  t.deepEqual(held.root(), rootFromLeafHashes(all));
  t.deepEqual(held.root(5), rootFromLeafHashes(all.slice(0, 5)));
  // Storage took the append: the next request rebuilds from it.
  storage.set(device(1), all);
  const rebuilt = await get(1, 8, true);
  t.not(rebuilt, held);
  t.is(storage.loadsOf(device(1)), 2);
  // A failed append's drop() of the old tree must not forget the new one.
  cache.drop(VAULT, device(1), held);
  t.is(await get(1, 8, true), rebuilt);
  cache.drop(VAULT, device(1), rebuilt);
  t.is(cache.count, 0);
});

test('a tree evicted while it loads still reaches its caller', async (t) => {
  const { cache, get } = setup({ maxTrees: 1 }, { 1: 4, 2: 4 });
  const first = get(1, 4, true);
  const second = get(2, 4, true); // evicts log 1's entry before its load finished
  const [one, two] = await Promise.all([first, second]);
  t.is(one.size, 4);
  t.is(two.size, 4);
  t.is(cache.count, 1);
});

test('concurrent requests for one log share one load', async (t) => {
  const { storage, get } = setup({}, { 1: 20 });
  const [a, b] = await Promise.all([get(1, 20, true), get(1, 10)]);
  t.is(a, b);
  t.is(storage.loadsOf(device(1)), 1);
});

test('a tree of the wrong size is rebuilt; storage that still disagrees is INTERNAL', async (t) => {
  const { storage, get } = setup({}, { 1: 3 });
  const stale = await get(1, 3, true);
  stale.append(leaves(1, 8)[0]!); // a failed append's leaf, never dropped
  t.not(await get(1, 3, true), stale);
  t.is(storage.loadsOf(device(1)), 2);
  const error = await t.throwsAsync(get(1, 4, true));
  t.true(error instanceof E2ekvError && error.code === 'INTERNAL');
});

test('a failed load is not remembered', async (t) => {
  const { storage, cache, get } = setup({}, { 1: 2 });
  storage.failNext = true;
  await t.throwsAsync(get(1), { message: 'storage is down' });
  t.is(cache.count, 0);
  t.true((await get(1)) instanceof MerkleTree);
  t.is(storage.loadsOf(device(1)), 2);
});

test('bounds must be numbers >= 0; a count of 0 still keeps one tree', async (t) => {
  const storage = new LeafStorage().asAdapter();
  for (const options of [{ maxTrees: Number.NaN }, { maxBytes: Number.NaN }, { maxBytes: -1 }, { maxTrees: -1 }]) {
    const error = t.throws(() => new TreeCache(storage, options));
    t.true(error instanceof E2ekvError && error.code === 'INVALID_ARGUMENT');
  }
  const { cache, get } = setup({ maxTrees: 0 }, { 1: 1 });
  await get(1);
  t.is(cache.count, 1);
});
