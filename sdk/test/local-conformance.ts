/**
 * What every LocalStore must do, as cases that need no test framework, so that
 * they run under ava in Node (local-memory.test.ts, local-file.test.ts,
 * local-indexeddb.test.ts on fake-indexeddb) and inside a Chromium page against
 * the real IndexedDB (local-indexeddb-browser.test.ts). The SDK relies on
 * exactly these behaviours, whichever adapter a device runs with.
 *
 * This module must stay loadable in a browser: no ava, no node:* at run time.
 */
import { E2ekvError, LIMITS, randomBytes, toHex } from '@e2ekv/protocol';
import type { ErrorCode } from '@e2ekv/protocol';
import type { TestFn } from 'ava';
import type { LocalStore, StoredEvidence, StoredLog, StoredPin, StoredVault } from '../src/local/adapter.js';

/**
 * The assertions the cases use: a subset of ava's ExecutionContext, which
 * satisfies it as it is, and which fixtures/plain-assertions.ts implements for
 * the page. A failed assertion throws (as ava's do), ending the case.
 */
export interface Assertions {
  is(actual: unknown, expected: unknown, message?: string): unknown;
  deepEqual(actual: unknown, expected: unknown, message?: string): unknown;
  truthy(actual: unknown, message?: string): unknown;
  /** Passes if `fn` rejects with an instance of `instanceOf`, and returns the error. */
  throwsAsync(
    fn: () => PromiseLike<unknown>,
    expectations: { instanceOf: typeof E2ekvError },
    message?: string,
  ): Promise<E2ekvError | undefined>;
  // Two signatures, not one taking a union: ava's are two overloads, and neither would accept the union.
  notThrowsAsync: {
    (fn: () => PromiseLike<unknown>, message?: string): Promise<unknown>;
    // eslint-disable-next-line @typescript-eslint/unified-signatures
    (promise: PromiseLike<unknown>, message?: string): Promise<unknown>;
  };
  /** Runs `fn` after the case and its fixture's cleanup, whether it passed or not. */
  teardown(fn: () => unknown): void;
}

export interface LocalStoreFixture {
  /** A fresh store holding nothing. */
  store: LocalStore;
  /** Closes every store the fixture opened and removes what they stored. */
  cleanup: () => Promise<void>;
  /** Persistent stores: a new store over the same data, to call after `store` was closed. */
  reopen?: () => Promise<LocalStore>;
}

// ---------------------------------------------------------------------------

export function newDevice(): string {
  return toHex(randomBytes(32));
}

export function newVaultId(): string {
  return toHex(randomBytes(32));
}

/** Random entries of varied lengths, none empty. */
export function makeEntries(count: number): Uint8Array[] {
  return Array.from({ length: count }, (_, i) => randomBytes(1 + ((i * 37) % 300)));
}

export function makePin(size: number): StoredPin {
  return { size, root: randomBytes(32), note: `checkpoint note at ${size}\n` };
}

function makeEvidence(n: number): StoredEvidence {
  return {
    replica: `https://replica-${n}.example`,
    device: newDevice(),
    first: `first ${n}\n`,
    second: `second ${n}\n`,
  };
}

function byDevice(logs: StoredLog[]): StoredLog[] {
  return [...logs].sort((a, b) => (a.device < b.device ? -1 : a.device > b.device ? 1 : 0));
}

/** What a vault holding only these logs loads as. */
function vaultOf(logs: StoredLog[], extra: Partial<StoredVault> = {}): StoredVault {
  return { logs: byDevice(logs), acked: {}, evidence: [], ...extra };
}

async function load(store: LocalStore, vaultId: string): Promise<StoredVault | undefined> {
  const vault = await store.loadVault(vaultId);
  return vault === undefined ? undefined : { ...vault, logs: byDevice(vault.logs) };
}

// ---------------------------------------------------------------------------

async function rejectsCode(t: Assertions, fn: () => Promise<unknown>, code: ErrorCode): Promise<void> {
  const error = await t.throwsAsync(fn, { instanceOf: E2ekvError });
  t.is(error?.code, code, error?.message);
}

// ---------------------------------------------------------------------------

export interface LocalStoreCase {
  title: string;
  /** Needs a store that keeps its data across close and reopen (the fixture's `reopen`). */
  persistent: boolean;
  run: (t: Assertions, fixture: LocalStoreFixture) => Promise<void>;
}

/** Runs one case on a fresh fixture, and always cleans it up (as test/support/conformance.ts does). */
export async function runLocalStoreCase(
  t: Assertions,
  localCase: LocalStoreCase,
  open: () => Promise<LocalStoreFixture>,
): Promise<void> {
  const fixture = await open();
  try {
    await localCase.run(t, fixture);
  } finally {
    await fixture.cleanup();
  }
}

export interface LocalConformanceOptions {
  /** Also check that data survives close and reopen (the fixture must then provide `reopen`). */
  persistent?: boolean;
}

/**
 * Registers every case as an ava test named `${name}: ${title}`. Ava's `test`
 * is passed in, so that this module never loads ava itself.
 */
export function localStoreConformance(
  test: TestFn,
  name: string,
  open: () => Promise<LocalStoreFixture>,
  options: LocalConformanceOptions = {},
): void {
  for (const localCase of localStoreCases) {
    if (localCase.persistent && options.persistent !== true) continue;
    test(`${name}: ${localCase.title}`, (t) => runLocalStoreCase(t, localCase, open));
  }
}

function collectCases(): LocalStoreCase[] {
  const cases: LocalStoreCase[] = [];
  const check = (title: string, run: LocalStoreCase['run']) => cases.push({ title, persistent: false, run });
  const checkPersistent = (title: string, run: LocalStoreCase['run']) => cases.push({ title, persistent: true, run });

  check('a store holding nothing reads as empty', async (t, { store }) => {
    const vaultId = newVaultId();
    t.deepEqual(await store.listVaults(), []);
    t.is(await store.loadVault(vaultId), undefined);
    t.is(await store.getBlob(vaultId, toHex(randomBytes(32))), undefined);
    await store.deleteVault(vaultId);
    t.deepEqual(await store.listVaults(), []);
  });

  check('entries round-trip, log by log and vault by vault', async (t, { store }) => {
    const [v1, v2] = [newVaultId(), newVaultId()];
    const [alice, bob] = [newDevice(), newDevice()];
    const [a1, a2, b1, other] = [makeEntries(3), makeEntries(2), makeEntries(4), makeEntries(1)];
    await store.appendEntries(v1, alice, 0, a1);
    await store.appendEntries(v1, bob, 0, b1);
    await store.appendEntries(v2, alice, 0, other);
    await store.appendEntries(v1, alice, 3, a2);

    t.deepEqual(
      await load(store, v1),
      vaultOf([
        { device: alice, entries: [...a1, ...a2], pin: undefined },
        { device: bob, entries: b1, pin: undefined },
      ]),
    );
    t.deepEqual(await load(store, v2), vaultOf([{ device: alice, entries: other, pin: undefined }]));
    t.deepEqual(await store.listVaults(), [v1, v2].sort());
    // The same device's log in another vault is another log.
    await rejectsCode(t, () => store.appendEntries(v2, alice, 5, makeEntries(1)), 'CONFLICT');
  });

  check('an append at the wrong start is CONFLICT and writes nothing', async (t, { store }) => {
    const vaultId = newVaultId();
    const device = newDevice();
    await rejectsCode(t, () => store.appendEntries(vaultId, device, 1, makeEntries(2)), 'CONFLICT');
    t.is(await store.loadVault(vaultId), undefined, 'a refused first append creates no vault');
    t.deepEqual(await store.listVaults(), []);

    const entries = makeEntries(3);
    await store.appendEntries(vaultId, device, 0, entries);
    const before = await load(store, vaultId);
    for (const start of [0, 2, 4, 100]) {
      const error = await t.throwsAsync(() => store.appendEntries(vaultId, device, start, makeEntries(2)), {
        instanceOf: E2ekvError,
      });
      t.is(error?.code, 'CONFLICT', `start ${start}`);
      t.is(error?.details['actual'], 3, 'the error says where the log ends');
    }
    await rejectsCode(t, () => store.appendEntries(vaultId, device, 4, []), 'CONFLICT');
    await store.appendEntries(vaultId, device, 3, []);
    t.deepEqual(await load(store, vaultId), before);
    await store.appendEntries(vaultId, device, 3, entries.slice(0, 1));
    t.is((await store.loadVault(vaultId))?.logs[0]?.entries.length, 4);
  });

  check('appends queued without waiting land in call order; racing ones: exactly one wins', async (t, { store }) => {
    const vaultId = newVaultId();
    const device = newDevice();
    const [first, second, third] = [makeEntries(2), makeEntries(3), makeEntries(1)];
    await Promise.all([
      store.appendEntries(vaultId, device, 0, first),
      store.appendEntries(vaultId, device, 2, second),
      store.appendEntries(vaultId, device, 5, third),
    ]);
    t.deepEqual((await store.loadVault(vaultId))?.logs[0]?.entries, [...first, ...second, ...third]);

    for (const contenders of [2, 5]) {
      const racer = newDevice();
      const batches = Array.from({ length: contenders }, () => makeEntries(2));
      const results = await Promise.allSettled(batches.map((batch) => store.appendEntries(vaultId, racer, 0, batch)));
      const winners = results.flatMap((result, i) => (result.status === 'fulfilled' ? [batches[i]!] : []));
      t.is(winners.length, 1, `${contenders} contenders`);
      for (const result of results) {
        if (result.status === 'rejected') t.is((result.reason as E2ekvError).code, 'CONFLICT');
      }
      const log = (await store.loadVault(vaultId))?.logs.find((l) => l.device === racer);
      t.deepEqual(log?.entries, winners[0]);
    }
  });

  check('a pin is set and replaced, and never beyond the stored entries', async (t, { store }) => {
    const vaultId = newVaultId();
    const [device, empty] = [newDevice(), newDevice()];
    await rejectsCode(t, () => store.setPin(vaultId, device, makePin(1)), 'INVALID_ARGUMENT');
    t.is(await store.loadVault(vaultId), undefined, 'a refused pin creates no vault');

    const entries = makeEntries(3);
    await store.appendEntries(vaultId, device, 0, entries);
    await rejectsCode(t, () => store.setPin(vaultId, device, makePin(4)), 'INVALID_ARGUMENT');
    t.deepEqual(await load(store, vaultId), vaultOf([{ device, entries, pin: undefined }]));

    const [pin2, pin3, pin1] = [makePin(2), makePin(3), makePin(1)];
    await store.setPin(vaultId, device, pin2);
    t.deepEqual(await load(store, vaultId), vaultOf([{ device, entries, pin: pin2 }]));
    await store.setPin(vaultId, device, pin3);
    await rejectsCode(t, () => store.setPin(vaultId, device, makePin(5)), 'INVALID_ARGUMENT');
    t.deepEqual(await load(store, vaultId), vaultOf([{ device, entries, pin: pin3 }]), 'a refused pin changes none');
    // The store keeps what it is given: judging a smaller pin is the caller's job.
    await store.setPin(vaultId, device, pin1);
    t.deepEqual(await load(store, vaultId), vaultOf([{ device, entries, pin: pin1 }]));

    // A log with no entries yet can be pinned at size 0.
    const pin0 = makePin(0);
    await store.setPin(vaultId, empty, pin0);
    t.deepEqual(
      await load(store, vaultId),
      vaultOf([
        { device, entries, pin: pin1 },
        { device: empty, entries: [], pin: pin0 },
      ]),
    );
    // Appending keeps the pin.
    const more = makeEntries(2);
    await store.appendEntries(vaultId, empty, 0, more);
    t.deepEqual((await load(store, vaultId))?.logs.find((log) => log.device === empty)?.pin, pin0);
  });

  check('acknowledged sizes only grow, per replica and per vault', async (t, { store }) => {
    const [v1, v2] = [newVaultId(), newVaultId()];
    const [r1, r2] = ['https://one.example', 'https://two.example:8443/base'];
    await store.setAcked(v1, r1, 5);
    await store.setAcked(v1, r1, 3);
    t.deepEqual((await store.loadVault(v1))?.acked, { [r1]: 5 }, 'smaller is ignored');
    await store.setAcked(v1, r1, 5);
    await store.setAcked(v1, r2, 0);
    await store.setAcked(v1, r1, 9);
    await store.setAcked(v2, r1, 1);
    t.deepEqual(await store.loadVault(v1), vaultOf([], { acked: { [r1]: 9, [r2]: 0 } }));
    t.deepEqual((await store.loadVault(v2))?.acked, { [r1]: 1 });
  });

  check('evidence is kept per vault, in order', async (t, { store }) => {
    const [v1, v2] = [newVaultId(), newVaultId()];
    const evidence = [makeEvidence(1), makeEvidence(2), makeEvidence(3)];
    const elsewhere = makeEvidence(4);
    for (const item of evidence) await store.addEvidence(v1, item);
    await store.addEvidence(v2, elsewhere);
    await store.addEvidence(v1, evidence[0]!);
    t.deepEqual(await store.loadVault(v1), vaultOf([], { evidence: [...evidence, evidence[0]!] }), 'repeats are kept');
    t.deepEqual((await store.loadVault(v2))?.evidence, [elsewhere]);
  });

  check('blobs are kept per vault, and once stored never change', async (t, { store }) => {
    const [v1, v2] = [newVaultId(), newVaultId()];
    const [hash, other] = [toHex(randomBytes(32)), toHex(randomBytes(32))];
    const bytes = randomBytes(1000);
    await store.putBlob(v1, hash, bytes);
    await store.putBlob(v1, other, new Uint8Array(0));
    t.deepEqual(await store.getBlob(v1, hash), bytes);
    t.deepEqual(await store.getBlob(v1, other), new Uint8Array(0));
    t.is(await store.getBlob(v2, hash), undefined, 'blobs belong to their vault');
    t.is(await store.getBlob(v1, toHex(randomBytes(32))), undefined);
    await store.putBlob(v1, hash, randomBytes(10));
    t.deepEqual(await store.getBlob(v1, hash), bytes, 'a second put under the same hash keeps the first');
    t.deepEqual(await store.loadVault(v1), vaultOf([]), 'blobs are not part of what loadVault returns');
  });

  check('any write lists a vault; deleting one forgets all of it and only it', async (t, { store }) => {
    const device = newDevice();
    const hash = toHex(randomBytes(32));
    const writes: ((vaultId: string) => Promise<void>)[] = [
      (v) => store.appendEntries(v, device, 0, makeEntries(2)),
      (v) => store.setPin(v, device, makePin(0)),
      (v) => store.putBlob(v, hash, randomBytes(20)),
      (v) => store.setAcked(v, 'https://r.example', 1),
      (v) => store.addEvidence(v, makeEvidence(1)),
    ];
    const vaults = writes.map(() => newVaultId());
    for (const [i, write] of writes.entries()) await write(vaults[i]!);
    t.deepEqual(await store.listVaults(), [...vaults].sort());

    // A vault holding everything, then deleted.
    const doomed = newVaultId();
    for (const write of writes) await write(doomed);
    await store.setPin(doomed, device, makePin(2));
    const keep = await Promise.all(vaults.map((v) => load(store, v)));
    await store.deleteVault(doomed);
    t.is(await store.loadVault(doomed), undefined);
    t.is(await store.getBlob(doomed, hash), undefined);
    t.deepEqual(await store.listVaults(), [...vaults].sort());
    t.deepEqual(await Promise.all(vaults.map((v) => load(store, v))), keep, 'other vaults are untouched');
    t.truthy(await store.getBlob(vaults[2]!, hash), 'the same blob in another vault stays');

    // The deleted vault starts again from nothing.
    await rejectsCode(t, () => store.appendEntries(doomed, device, 2, makeEntries(1)), 'CONFLICT');
    const entries = makeEntries(1);
    await store.appendEntries(doomed, device, 0, entries);
    await store.setAcked(doomed, 'https://r.example', 0);
    t.deepEqual(
      await store.loadVault(doomed),
      vaultOf([{ device, entries, pin: undefined }], { acked: { 'https://r.example': 0 } }),
    );
    await store.deleteVault(doomed);
    await store.deleteVault(doomed);
    t.deepEqual(await store.listVaults(), [...vaults].sort());
  });

  check('malformed arguments are refused before anything is written', async (t, { store }) => {
    const vaultId = newVaultId();
    const device = newDevice();
    const hash = toHex(randomBytes(32));
    const badIds = ['', 'ABCD', 'abc', '../etc', 'ab/cd', 'ab.', 'a'.repeat(130)];
    for (const bad of badIds) {
      await rejectsCode(t, () => store.appendEntries(bad, device, 0, makeEntries(1)), 'INVALID_ARGUMENT');
      await rejectsCode(t, () => store.putBlob(vaultId, bad, randomBytes(3)), 'INVALID_ARGUMENT');
      await rejectsCode(t, () => store.getBlob(vaultId, bad), 'INVALID_ARGUMENT');
      await rejectsCode(t, () => store.setAcked(bad, 'https://r.example', 1), 'INVALID_ARGUMENT');
      await rejectsCode(t, () => store.addEvidence(bad, makeEvidence(1)), 'INVALID_ARGUMENT');
      await rejectsCode(t, () => store.loadVault(bad), 'INVALID_ARGUMENT');
      await rejectsCode(t, () => store.deleteVault(bad), 'INVALID_ARGUMENT');
    }
    for (const bad of ['', 'alice', device.toUpperCase(), device.slice(2), `../${device.slice(3)}`]) {
      await rejectsCode(t, () => store.appendEntries(vaultId, bad, 0, makeEntries(1)), 'INVALID_ARGUMENT');
      await rejectsCode(t, () => store.setPin(vaultId, bad, makePin(0)), 'INVALID_ARGUMENT');
    }
    const entries = makeEntries(3);
    const appends: [string, number, unknown[], 'INVALID_ARGUMENT' | 'TOO_LARGE'][] = [
      ['a negative start', -1, entries, 'INVALID_ARGUMENT'],
      ['a fractional start', 0.5, entries, 'INVALID_ARGUMENT'],
      ['an entry that is not bytes', 0, [...entries, 'entry'], 'INVALID_ARGUMENT'],
      ['an empty entry, after good ones', 0, [...entries, new Uint8Array(0)], 'INVALID_ARGUMENT'],
      ['an entry over the limit', 0, [...entries, new Uint8Array(LIMITS.maxEntryBytes + 1)], 'TOO_LARGE'],
    ];
    for (const [what, start, list, code] of appends) {
      const error = await t.throwsAsync(() => store.appendEntries(vaultId, device, start, list as Uint8Array[]), {
        instanceOf: E2ekvError,
      });
      t.is(error?.code, code, what);
    }
    const pins: [string, unknown][] = [
      ['a negative size', { ...makePin(0), size: -1 }],
      ['a fractional size', { ...makePin(0), size: 0.5 }],
      ['a root that is not bytes', { ...makePin(0), root: 'root' }],
      ['a note that is not a string', { ...makePin(0), note: 7 }],
    ];
    for (const [what, pin] of pins) {
      const error = await t.throwsAsync(() => store.setPin(vaultId, device, pin as StoredPin), {
        instanceOf: E2ekvError,
      });
      t.is(error?.code, 'INVALID_ARGUMENT', what);
    }
    await rejectsCode(t, () => store.setAcked(vaultId, 'https://r.example', -1), 'INVALID_ARGUMENT');
    await rejectsCode(t, () => store.setAcked(vaultId, 'https://r.example', 1.5), 'INVALID_ARGUMENT');
    await rejectsCode(t, () => store.setAcked(vaultId, '', 1), 'INVALID_ARGUMENT');
    await rejectsCode(t, () => store.putBlob(vaultId, hash, 'bytes' as unknown as Uint8Array), 'INVALID_ARGUMENT');
    const incomplete: Partial<StoredEvidence> = makeEvidence(1);
    delete incomplete.second;
    await rejectsCode(t, () => store.addEvidence(vaultId, incomplete as StoredEvidence), 'INVALID_ARGUMENT');

    t.deepEqual(await store.listVaults(), [], 'nothing was written anywhere');
    await store.appendEntries(vaultId, device, 0, entries);
    t.is((await store.loadVault(vaultId))?.logs[0]?.entries.length, 3, 'the log still starts at 0');
  });

  check('stored data is a copy: changing arrays given or returned changes nothing', async (t, { store }) => {
    const vaultId = newVaultId();
    const device = newDevice();
    const hash = toHex(randomBytes(32));
    const entries = makeEntries(3);
    const pin = makePin(2);
    const blob = randomBytes(64);
    const evidence = makeEvidence(1);
    const expected = structuredClone({ entries, pin, blob, evidence });

    // Calls not awaited one by one: a queued call must not see later changes either.
    const writes = Promise.all([
      store.appendEntries(vaultId, device, 0, entries),
      store.setPin(vaultId, device, pin),
      store.putBlob(vaultId, hash, blob),
      store.addEvidence(vaultId, evidence),
      store.setAcked(vaultId, 'https://r.example', 4),
    ]);
    for (const entry of entries) entry.fill(1);
    pin.root.fill(1);
    pin.size = 0;
    blob.fill(1);
    evidence.first = 'changed';
    await writes;

    const loaded = (await store.loadVault(vaultId))!;
    for (const entry of loaded.logs[0]!.entries) entry.fill(2);
    loaded.logs[0]!.entries.pop();
    loaded.logs[0]!.pin!.root.fill(2);
    loaded.logs[0]!.pin!.size = 99;
    loaded.evidence[0]!.second = 'changed';
    loaded.evidence.pop();
    loaded.acked['https://r.example'] = 100;
    (await store.getBlob(vaultId, hash))!.fill(2);

    t.deepEqual(
      await store.loadVault(vaultId),
      vaultOf([{ device, entries: expected.entries, pin: expected.pin }], {
        acked: { 'https://r.example': 4 },
        evidence: [expected.evidence],
      }),
    );
    t.deepEqual(await store.getBlob(vaultId, hash), expected.blob);
  });

  check('only the bytes of a view are stored, not its whole buffer', async (t, { store }) => {
    const vaultId = newVaultId();
    const device = newDevice();
    const hash = toHex(randomBytes(32));
    const backing = randomBytes(200);
    const entry = backing.subarray(10, 20);
    const root = backing.subarray(30, 62);
    const blob = backing.subarray(100, 150);
    await store.appendEntries(vaultId, device, 0, [entry]);
    await store.setPin(vaultId, device, { size: 1, root, note: 'n' });
    await store.putBlob(vaultId, hash, blob);
    const log = (await store.loadVault(vaultId))!.logs[0]!;
    t.deepEqual(log.entries, [entry.slice()]);
    t.deepEqual(log.pin?.root, root.slice());
    t.deepEqual(await store.getBlob(vaultId, hash), blob.slice());
  });

  check('close lets queued work finish, is idempotent, and later calls are UNAVAILABLE', async (t, { store }) => {
    const vaultId = newVaultId();
    const device = newDevice();
    const pending = store.appendEntries(vaultId, device, 0, makeEntries(2));
    const settled: string[] = [];
    const noted = (what: string) => () => void settled.push(what);
    void pending.then(noted('append'), noted('append'));
    const closed = store.close();
    void closed.then(noted('close'), noted('close'));
    await t.notThrowsAsync(pending, 'work started before close completes');
    await closed;
    t.deepEqual(settled, ['append', 'close'], 'close resolves only once the work under way is done');
    await store.close();
    await rejectsCode(t, () => store.appendEntries(vaultId, device, 2, makeEntries(1)), 'UNAVAILABLE');
    await rejectsCode(t, () => store.loadVault(vaultId), 'UNAVAILABLE');
    await rejectsCode(t, () => store.listVaults(), 'UNAVAILABLE');
    await rejectsCode(t, () => store.getBlob(vaultId, toHex(randomBytes(32))), 'UNAVAILABLE');
    await rejectsCode(t, () => store.deleteVault(vaultId), 'UNAVAILABLE');
  });

  // -------------------------------------------------------------------------
  // Persistent stores.

  async function reopened(t: Assertions, fixture: LocalStoreFixture): Promise<LocalStore> {
    if (fixture.reopen === undefined) throw new Error('a persistent store fixture must provide reopen');
    await fixture.store.close();
    const store = await fixture.reopen();
    t.teardown(() => store.close());
    return store;
  }

  checkPersistent('everything written is there after close and reopen, and carries on', async (t, fixture) => {
    const { store } = fixture;
    const [v1, v2, gone] = [newVaultId(), newVaultId(), newVaultId()];
    const [alice, bob] = [newDevice(), newDevice()];
    const hash = toHex(randomBytes(32));
    const blob = randomBytes(300);
    await store.appendEntries(v1, alice, 0, makeEntries(3));
    await store.appendEntries(v1, alice, 3, makeEntries(2));
    await store.appendEntries(v1, bob, 0, makeEntries(4));
    await store.setPin(v1, alice, makePin(4));
    await store.setPin(v1, newDevice(), makePin(0));
    await store.setAcked(v1, 'https://r.example', 5);
    await store.addEvidence(v1, makeEvidence(1));
    await store.addEvidence(v1, makeEvidence(2));
    await store.putBlob(v1, hash, blob);
    await store.setAcked(v2, 'https://r.example', 1);
    await store.appendEntries(gone, alice, 0, makeEntries(1));
    await store.deleteVault(gone);
    const before = await load(store, v1);
    const vaults = await store.listVaults();

    const again = await reopened(t, fixture);
    t.deepEqual(await load(again, v1), before);
    t.deepEqual(await again.listVaults(), vaults);
    t.deepEqual(vaults, [v1, v2].sort());
    t.is(await again.loadVault(gone), undefined);
    t.deepEqual(await again.getBlob(v1, hash), blob);

    // The CONFLICT check and the growing acked sizes hold across the restart.
    await rejectsCode(t, () => again.appendEntries(v1, alice, 3, makeEntries(1)), 'CONFLICT');
    await rejectsCode(t, () => again.appendEntries(v1, bob, 0, makeEntries(1)), 'CONFLICT');
    await rejectsCode(t, () => again.setPin(v1, bob, makePin(5)), 'INVALID_ARGUMENT');
    await again.appendEntries(v1, alice, 5, makeEntries(1));
    await again.appendEntries(gone, alice, 0, makeEntries(1));
    await again.setAcked(v1, 'https://r.example', 2);
    const after = await again.loadVault(v1);
    t.is(after?.logs.find((log) => log.device === alice)?.entries.length, 6);
    t.deepEqual(after?.acked, { 'https://r.example': 5 });
  });

  return cases;
}

/** Every case, in the order they are registered. */
export const localStoreCases: readonly LocalStoreCase[] = collectCases();
