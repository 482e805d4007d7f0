// The IndexedDB local store in Node, on fake-indexeddb (a fresh factory per
// fixture): the LocalStore conformance suite, the IndexedDB cases that
// local-indexeddb-browser.test.ts also runs in Chromium, and failures only a
// fake can stage (a quota hit in the middle of an append, a forced close).
import { E2ekvError, toHex, randomBytes } from '@e2ekv/protocol';
import type { ErrorCode } from '@e2ekv/protocol';
import test from 'ava';
import {
  IDBDatabase as FakeIDBDatabase,
  IDBFactory,
  IDBKeyRange,
  IDBObjectStore as FakeIDBObjectStore,
  forceCloseDatabase,
} from 'fake-indexeddb';
import type { LocalStore } from '../src/local/adapter.js';
import { openIndexedDbLocalStore } from '../src/local/indexeddb.js';
import { rejectsCode } from '../../test/support/errors.js';
import { localStoreConformance, makeEntries, makePin, newDevice, newVaultId } from './local-conformance.js';
import { indexedDbCases, runIndexedDbCase, type IndexedDbEnv } from './fixtures/local-indexeddb-cases.js';

localStoreConformance(
  test,
  'indexeddb (fake-indexeddb)',
  async () => {
    const factory = new IDBFactory();
    const opened: LocalStore[] = [await openIndexedDbLocalStore({ indexedDB: factory, IDBKeyRange })];
    return {
      store: opened[0]!,
      reopen: async () => {
        const store = await openIndexedDbLocalStore({ indexedDB: factory, IDBKeyRange });
        opened.push(store);
        return store;
      },
      cleanup: async () => {
        await Promise.all(opened.map((store) => store.close()));
      },
    };
  },
  { persistent: true },
);

function fakeEnv(): IndexedDbEnv {
  return { indexedDB: new IDBFactory(), IDBKeyRange, IDBDatabase: FakeIDBDatabase };
}

// Serial: the first case wraps the fake's IDBDatabase.prototype.transaction while it runs.
for (const indexedDbCase of indexedDbCases) {
  test.serial(`indexeddb (fake-indexeddb): ${indexedDbCase.title}`, (t) =>
    runIndexedDbCase(t, fakeEnv(), indexedDbCase),
  );
}

// ---------------------------------------------------------------------------
// Failures staged inside fake-indexeddb.

interface Trap {
  database: string;
  /** Puts to let through before the trapped one. */
  skip: number;
  /** The DOMException name to fail with. */
  error: string;
  /** 'throw': put() throws. 'abort': put() is issued, then the transaction aborts with the error, as a browser does when a commit goes over quota. */
  how: 'throw' | 'abort';
}

let trap: Trap | undefined;
const originalPut = FakeIDBObjectStore.prototype.put;
FakeIDBObjectStore.prototype.put = function (this: IDBObjectStore, ...args: Parameters<IDBObjectStore['put']>) {
  const armed = trap;
  if (armed === undefined || this.transaction.db.name !== armed.database || armed.skip-- > 0) {
    return originalPut.apply(this, args);
  }
  trap = undefined;
  if (armed.how === 'throw') throw new DOMException('staged by the test', armed.error);
  const request = originalPut.apply(this, args);
  // fake-indexeddb's own way of aborting a transaction with an error.
  (this.transaction as unknown as { _abort(name: string): void })._abort(armed.error);
  return request;
};

async function openFake(name: string, factory = new IDBFactory()): Promise<LocalStore> {
  return openIndexedDbLocalStore({ name, indexedDB: factory, IDBKeyRange });
}

test.serial('indexeddb (fake-indexeddb): a quota hit anywhere in a call refuses it whole, as TOO_LARGE', async (t) => {
  const name = 'quota';
  const store = await openFake(name);
  const vaultId = newVaultId();
  const device = newDevice();
  const first = makeEntries(3);
  await store.appendEntries(vaultId, device, 0, first);
  await store.setPin(vaultId, device, makePin(3));
  const before = await store.loadVault(vaultId);
  // An append of 5 puts 5 entries, then the log's record, then the vault's.
  for (const how of ['throw', 'abort'] as const) {
    for (const skip of [0, 2, 4, 5, 6]) {
      const what = `${how}, at put ${skip}`;
      trap = { database: name, skip, error: 'QuotaExceededError', how };
      const error = await t.throwsAsync(() => store.appendEntries(vaultId, device, 3, makeEntries(5)), {
        instanceOf: E2ekvError,
      });
      t.is(trap as Trap | undefined, undefined, `${what}: the trap was reached`);
      t.is(error?.code, 'TOO_LARGE', `${what}: ${error?.message}`);
      t.regex(error?.message ?? '', /quota .*Nothing of this call was stored.*persist\(\)/, what);
      t.is(error?.details['domError'], 'QuotaExceededError');
      t.deepEqual(await store.loadVault(vaultId), before, `${what}: nothing of the append is stored`);
    }
  }
  const hash = toHex(randomBytes(32));
  trap = { database: name, skip: 0, error: 'QuotaExceededError', how: 'abort' };
  await rejectsCode(t, () => store.putBlob(vaultId, hash, randomBytes(100)), 'TOO_LARGE');
  t.is(await store.getBlob(vaultId, hash), undefined);
  trap = { database: name, skip: 0, error: 'QuotaExceededError', how: 'throw' };
  await rejectsCode(t, () => store.setPin(vaultId, device, makePin(1)), 'TOO_LARGE');

  // Once there is room again, the log carries on where it was.
  await store.appendEntries(vaultId, device, 3, makeEntries(5));
  t.is((await store.loadVault(vaultId))?.logs[0]?.entries.length, 8);
  t.deepEqual((await store.loadVault(vaultId))?.logs[0]?.pin, before?.logs[0]?.pin);
  await store.close();
});

test.serial(
  'indexeddb (fake-indexeddb): other IndexedDB failures become E2ekvErrors that say what to do',
  async (t) => {
    const name = 'failures';
    const store = await openFake(name);
    const vaultId = newVaultId();
    const device = newDevice();
    const cases: [string, ErrorCode, RegExp][] = [
      ['UnknownError', 'UNAVAILABLE', /storage failed.*Try again/],
      ['AbortError', 'UNAVAILABLE', /connection was closed.*Open the store again/],
      ['DataError', 'INTERNAL', /IndexedDB failed \(DataError/],
      ['DataCloneError', 'INTERNAL', /IndexedDB failed \(DataCloneError/],
    ];
    for (const [domError, code, message] of cases) {
      for (const how of ['throw', 'abort'] as const) {
        trap = { database: name, skip: 1, error: domError, how };
        const error = await t.throwsAsync(() => store.appendEntries(vaultId, device, 0, makeEntries(2)), {
          instanceOf: E2ekvError,
        });
        t.is(error?.code, code, `${domError}, ${how}: ${error?.message}`);
        t.regex(error?.message ?? '', message);
        t.regex(error?.message ?? '', /could not append to a log/);
        t.is(await store.loadVault(vaultId), undefined, `${domError}, ${how}: nothing stored`);
      }
    }
    await store.close();
  },
);

test('indexeddb (fake-indexeddb): a connection the browser closes makes calls UNAVAILABLE', async (t) => {
  const factory = new IDBFactory();
  const connections: IDBDatabase[] = [];
  // Only open() is used by the store: hand it the fake's, keeping each connection it makes.
  const watching = {
    open(name: string, version?: number) {
      const request = factory.open(name, version);
      request.addEventListener('success', () => connections.push(request.result));
      return request;
    },
  } as unknown as IDBFactory;
  const store = await openIndexedDbLocalStore({ indexedDB: watching, IDBKeyRange });
  const vaultId = newVaultId();
  const device = newDevice();
  await store.appendEntries(vaultId, device, 0, makeEntries(2));
  t.is(connections.length, 1);
  forceCloseDatabase(connections[0]! as unknown as typeof FakeIDBDatabase);
  const error = await t.throwsAsync(() => store.loadVault(vaultId), { instanceOf: E2ekvError });
  t.is(error?.code, 'UNAVAILABLE');
  t.regex(error?.message ?? '', /browser closed its IndexedDB connection.*open the store again/);
  await store.close();
  // What it held is still there for the next connection.
  const again = await openIndexedDbLocalStore({ indexedDB: factory, IDBKeyRange });
  t.is((await again.loadVault(vaultId))?.logs[0]?.entries.length, 2);
  await again.close();
});

test('indexeddb: without IndexedDB, opening says what to use instead', async (t) => {
  t.is((globalThis as { indexedDB?: unknown }).indexedDB, undefined, 'Node has no IndexedDB of its own');
  const error = await t.throwsAsync(() => openIndexedDbLocalStore(), { instanceOf: E2ekvError });
  t.is(error?.code, 'UNSUPPORTED_PLATFORM');
  t.regex(error?.message ?? '', /openFileLocalStore/);
  await rejectsCode(t, () => openIndexedDbLocalStore({ indexedDB: new IDBFactory() }), 'INVALID_ARGUMENT');
  await rejectsCode(
    t,
    () => openIndexedDbLocalStore({ name: '', indexedDB: new IDBFactory(), IDBKeyRange }),
    'INVALID_ARGUMENT',
  );
});

test('indexeddb (fake-indexeddb): stores on one factory under different names are separate', async (t) => {
  const factory = new IDBFactory();
  const [a, b] = [await openFake('one', factory), await openFake('two', factory)];
  const vaultId = newVaultId();
  await a.appendEntries(vaultId, newDevice(), 0, makeEntries(1));
  t.deepEqual(await a.listVaults(), [vaultId]);
  t.deepEqual(await b.listVaults(), []);
  const other = await openIndexedDbLocalStore({ indexedDB: factory, IDBKeyRange });
  t.deepEqual(await other.listVaults(), [], "the default name, 'e2ekv-local', is another database again");
  await Promise.all([a.close(), b.close(), other.close()]);
});
