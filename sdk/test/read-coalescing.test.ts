/**
 * Concurrent reads at level 'one' or 'quorum' on one vault share a refresh,
 * and still see every write acknowledged before they started.
 */
import test from 'ava';
import { createClient, createIdentity, publicIdentity } from '../src/index.js';
import { withServer } from './support/helpers.js';

/**
 * A fetch that counts requests and can hold answers to GETs of the vault state
 * (after the replica answered: what the refresh learns is from before).
 */
function gatedFetch() {
  let gate: Promise<void> | undefined;
  let release: (() => void) | undefined;
  let held = 0;
  const state = {
    requests: 0,
    held: () => held,
    close() {
      gate = new Promise((resolve) => (release = resolve));
    },
    open() {
      release?.();
      gate = undefined;
    },
    fetch: (async (input, init) => {
      state.requests++;
      const url = new URL(String(input));
      const response = await fetch(input, init);
      if (
        gate !== undefined &&
        (init?.method ?? 'GET') === 'GET' &&
        /^\/v1\/vaults\/[0-9a-f]{64}$/.test(url.pathname)
      ) {
        held++;
        await gate;
      }
      return response;
    }) as typeof fetch,
  };
  return state;
}

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
}

test('16 concurrent reads at level one and quorum share refreshes', async (t) => {
  await withServer(async (server) => {
    const wire = gatedFetch();
    const client = await createClient({ identity: createIdentity(), servers: [server.url], fetch: wire.fetch });
    const { vault } = await client.createVault();
    await vault.set('k', 'v');
    for (const read of ['one', 'quorum'] as const) {
      let before = wire.requests;
      t.is(await vault.get('k', { read }), 'v');
      const single = wire.requests - before;
      t.true(single >= 1);
      before = wire.requests;
      const values = await Promise.all(Array.from({ length: 16 }, () => vault.get('k', { read })));
      t.deepEqual(values, Array<string>(16).fill('v'));
      // The first read's refresh, and one more shared by the fifteen that came while it ran.
      t.true(
        wire.requests - before <= 2 * single,
        `${wire.requests - before} requests for 16 reads (${single} for one)`,
      );
    }
  });
});

test('a read started after a write was acknowledged sees it, even while an earlier refresh runs', async (t) => {
  await withServer(async (server) => {
    const readerId = createIdentity();
    const writerId = createIdentity();
    const wire = gatedFetch();
    const reader = await createClient({ identity: readerId, servers: [server.url], fetch: wire.fetch });
    const writer = await createClient({ identity: writerId, servers: [server.url] });
    const { vault: r, access } = await reader.createVault();
    await r.set('k', 'old');
    await r.addMember(publicIdentity(writerId), 'writer');
    const w = await writer.openVault(access);

    wire.close();
    // Its refresh got the vault's state from before the write, and is held there.
    const early = r.get('k', { read: 'one' });
    const queuedBefore = r.get('k', { read: 'quorum' });
    await until(() => wire.held() === 1);
    await w.set('k', 'new', { ack: 'one' });
    // Started after the acknowledgement: it must not share the running refresh, which asked before.
    const after = r.get('k', { read: 'one' });
    const afterQuorum = r.get('k', { read: 'quorum' });
    wire.open();
    t.true(['old', 'new'].includes((await early) as string));
    t.is(await after, 'new');
    t.is(await afterQuorum, 'new');
    t.true(['old', 'new'].includes((await queuedBefore) as string));
    t.is(await r.get('k', { read: 'one' }), 'new');
  });
});
