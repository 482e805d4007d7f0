/**
 * 'e2ekv/automerge': Automerge documents as vault values, against a real
 * replica process (two devices editing one document concurrently, a later
 * change superseding, the rule for plain and deleted siblings, malformed and
 * oversized documents), and without a server: merging siblings is order-free
 * and idempotent (fast-check), hostile documents raise E2ekvError and never
 * break the WASM module, and the core entry point does not carry Automerge.
 */
import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';
import test from 'ava';
import { build } from 'esbuild';
import fc from 'fast-check';
import { createClient, createIdentity, isE2ekvError, publicIdentity, type Client, type Sibling } from '../src/index.js';
import { initAutomerge, mergeSiblings, openDocument, type Doc } from '../src/automerge/index.js';
import { repoRoot } from '../../test/support/paths.js';
import type { ServerProcess } from '../../server/test/support/process.js';
import { withServer } from './support/helpers.js';

type Automerge = Awaited<ReturnType<typeof initAutomerge>>;
let A: Automerge;

test.before(async () => {
  A = await initAutomerge();
});

async function client(server: ServerProcess, identity = createIdentity()): Promise<Client> {
  return createClient({ identity, servers: [server.url] });
}

/** Alice's vault and Bob, a second writer device on it. */
async function twoDevices(server: ServerProcess) {
  const bobIdentity = createIdentity();
  const alice = await client(server);
  const bob = await client(server, bobIdentity);
  const { vault: a, access } = await alice.createVault();
  await a.addMember(publicIdentity(bobIdentity), 'writer');
  const b = await bob.openVault(access);
  return { alice, bob, a, b };
}

/** A document's content as canonical JSON: key order differs with merge order, content must not. */
function canonical(doc: Doc<unknown>): string {
  const sort = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(sort);
    if (value instanceof Uint8Array) return Array.from(value);
    if (value !== null && typeof value === 'object') {
      return Object.fromEntries(
        Object.keys(value)
          .sort()
          .map((k) => [k, sort((value as Record<string, unknown>)[k])]),
      );
    }
    return value;
  };
  return JSON.stringify(sort(A.toJS(doc)));
}

function heads(doc: Doc<unknown>): string {
  return [...A.getHeads(doc)].sort().join(',');
}

async function errorOf(promise: Promise<unknown> | (() => unknown)): Promise<unknown> {
  try {
    await (typeof promise === 'function' ? promise() : promise);
  } catch (error) {
    return error;
  }
  return undefined;
}

interface Notes {
  title?: string;
  owner?: string;
  tags?: string[];
  items: string[];
  done?: boolean;
  imported?: unknown;
}

test('two devices change one document concurrently; both see the same merge, and a later change supersedes it', async (t) => {
  await withServer(async (server) => {
    const { alice, bob, a, b } = await twoDevices(server);
    const docA = await openDocument<Notes>(a, 'notes');
    t.deepEqual(A.toJS(docA.value()), {}, 'a key without a document reads as an empty document');
    await docA.change((d) => {
      d.title = 'groceries';
      d.items = ['bread'];
    });
    await b.sync();
    const docB = await openDocument<Notes>(b, 'notes');
    t.deepEqual(A.toJS(docB.value()), { title: 'groceries', items: ['bread'] });

    // Concurrent: neither device has seen the other's change.
    await docA.change((d) => {
      d.owner = 'alice';
      d.items.push('milk');
    });
    await docB.change((d) => {
      d.tags = ['weekly'];
      d.items.push('eggs');
    });
    t.is((await a.getAll('notes')).length, 1);
    await a.sync();
    await b.sync();
    await docA.refresh();
    await docB.refresh();

    const siblingsA = await a.getAll('notes');
    t.deepEqual(
      siblingsA.map((s) => s.kind),
      ['automerge', 'automerge'],
    );
    t.deepEqual(siblingsA.map((s) => s.device).sort(), [alice.deviceId, bob.deviceId].sort());
    t.deepEqual(docA.siblings(), { documents: 2, tombstones: 0, plain: [] });
    const merged = A.toJS(docA.value());
    t.is(merged.title, 'groceries');
    t.is(merged.owner, 'alice');
    t.deepEqual(merged.tags, ['weekly']);
    t.is(merged.items.length, 3);
    t.is(merged.items[0], 'bread');
    t.deepEqual([...merged.items].sort(), ['bread', 'eggs', 'milk']);
    t.is(canonical(docA.value()), canonical(docB.value()), 'both devices see the same merged document');
    t.is(heads(docA.value()), heads(docB.value()));
    t.deepEqual(A.toJS(docB.value()).items, merged.items, 'the same list order on both devices');

    // A change made after reading both siblings supersedes both, everywhere.
    await docB.change((d) => {
      d.done = true;
    });
    await a.sync();
    await docA.refresh();
    const after = await a.getAll('notes');
    t.is(after.length, 1);
    t.is(after[0]!.device, bob.deviceId);
    t.is(after[0]!.kind, 'automerge');
    t.deepEqual(docA.siblings(), { documents: 1, tombstones: 0, plain: [] });
    t.is(A.toJS(docA.value()).done, true);
    t.deepEqual([...A.toJS(docA.value()).items].sort(), ['bread', 'eggs', 'milk']);
    t.is(canonical(docA.value()), canonical(docB.value()));
    t.deepEqual((await b.getAll('notes')).length, 1);

    // The value is a read-only view: only change() writes.
    const outdated = await errorOf(() =>
      A.change(docA.value(), (d) => {
        d.done = false;
      }),
    );
    t.truthy(outdated, 'Automerge.change on value() is refused');
    t.is(A.toJS(docA.value()).done, true);

    // A change that changes nothing writes nothing.
    const before = (await a.getAll('notes'))[0]!;
    await docA.change((d) => {
      d.done = true;
    });
    t.deepEqual(
      (await a.getAll('notes')).map((s) => [s.device, s.index]),
      [[before.device, before.index]],
    );
  });
});

test('changes started together on one device are applied one after the other, none lost', async (t) => {
  await withServer(async (server) => {
    const alice = await client(server);
    const { vault } = await alice.createVault();
    const one = await openDocument<Record<string, number>>(vault, 'counter');
    const two = await openDocument<Record<string, number>>(vault, 'counter');
    await Promise.all([
      one.change((d) => {
        d['a'] = 1;
      }),
      one.change((d) => {
        d['b'] = 2;
      }),
      two.change((d) => {
        d['c'] = 3;
      }),
    ]);
    await one.refresh();
    await two.refresh();
    t.deepEqual(A.toJS(one.value()), { a: 1, b: 2, c: 3 });
    t.is(canonical(one.value()), canonical(two.value()));
    t.is((await vault.getAll('counter')).length, 1);
  });
});

test('a plain value concurrent with a document is never dropped: CONFLICT until resolve() folds it in', async (t) => {
  await withServer(async (server) => {
    const { bob, a, b } = await twoDevices(server);
    const docA = await openDocument<Notes>(a, 'notes');
    await docA.change((d) => {
      d.items = ['bread'];
    });
    await b.sync();
    // Concurrent: Alice edits the document while Bob (an old app version) writes plain JSON.
    await docA.change((d) => {
      d.items.push('milk');
    });
    await b.set('notes', { legacy: 'plain json from an old app version' });
    await a.sync();
    await docA.refresh();
    const siblings = await a.getAll('notes');
    t.deepEqual(siblings.map((s) => s.kind).sort(), ['automerge', 'json']);
    t.deepEqual(docA.siblings().plain.length, 1);

    const conflict = await errorOf(() => docA.value());
    t.true(isE2ekvError(conflict, 'CONFLICT'), String(conflict));
    t.regex((conflict as Error).message, /key "notes" holds 1 plain json value/);
    const refused = await errorOf(
      docA.change((d) => {
        d.done = true;
      }),
    );
    t.true(isE2ekvError(refused, 'CONFLICT'), String(refused));
    t.deepEqual(
      (await a.getAll('notes')).map((s) => `${s.device}/${s.index}`),
      siblings.map((s) => `${s.device}/${s.index}`),
      'a refused change writes nothing',
    );
    t.deepEqual(
      docA.siblings().plain.map((s) => [s.kind, s.device, s.value]),
      [['json', bob.deviceId, { legacy: 'plain json from an old app version' }]],
    );

    // The application decides: here, it keeps the plain value inside the document.
    await docA.resolve((d, plain) => {
      d.imported = plain.map((s) => s.value);
    });
    const resolved = await a.getAll('notes');
    t.is(resolved.length, 1);
    t.is(resolved[0]!.kind, 'automerge');
    t.deepEqual(A.toJS(docA.value()), {
      items: ['bread', 'milk'],
      imported: [{ legacy: 'plain json from an old app version' }],
    });
    await b.sync();
    const docB = await openDocument<Notes>(b, 'notes');
    t.is(canonical(docB.value()), canonical(docA.value()));
  });
});

test('a key written only with set is not a document until resolved; a concurrent delete loses to an edit', async (t) => {
  await withServer(async (server) => {
    const { a, b } = await twoDevices(server);
    await a.set('settings', Uint8Array.of(1, 2, 3));
    const settings = await openDocument<{ raw?: number[] }>(a, 'settings');
    t.true(isE2ekvError(await errorOf(() => settings.value()), 'CONFLICT'));
    await settings.resolve((d, plain) => {
      const value = plain[0]?.value;
      d.raw = value instanceof Uint8Array ? Array.from(value) : [];
    });
    t.deepEqual(A.toJS(settings.value()), { raw: [1, 2, 3] });

    // Bob deletes the key while Alice edits it: the edit survives, the delete is ignored.
    await b.sync();
    await b.delete('settings');
    await settings.change((d) => {
      d.raw!.push(4);
    });
    await a.sync();
    await settings.refresh();
    t.deepEqual((await a.getAll('settings')).map((s) => s.kind).sort(), ['automerge', 'tombstone']);
    t.deepEqual(settings.siblings(), { documents: 1, tombstones: 1, plain: [] });
    t.deepEqual(A.toJS(settings.value()), { raw: [1, 2, 3, 4] });
    // A change that changes nothing still folds the two siblings into one.
    await settings.change(() => undefined);
    t.deepEqual(
      (await a.getAll('settings')).map((s) => s.kind),
      ['automerge'],
    );

    // A delete that saw the document removes it: the key reads as an empty document again.
    await b.sync();
    await b.delete('settings');
    await a.sync();
    await settings.refresh();
    t.deepEqual(settings.siblings(), { documents: 0, tombstones: 1, plain: [] });
    t.deepEqual(A.toJS(settings.value()), {});
  });
});

test('a malformed document from another member raises MALFORMED, an oversized one TOO_LARGE; neither crashes', async (t) => {
  await withServer(async (server) => {
    const { bob, a, b } = await twoDevices(server);
    const good = A.save(
      A.change(A.init<{ n: number }>(), (d) => {
        d.n = 1;
      }),
    );
    const truncated = good.slice(0, good.length - 5);
    const flipped = good.slice();
    flipped[flipped.length - 1]! ^= 1;
    await b.batch([
      { name: 'bad/garbage', automerge: Uint8Array.of(1, 2, 3) },
      { name: 'bad/truncated', automerge: truncated },
      { name: 'bad/flipped', automerge: flipped },
      { name: 'good', automerge: good },
    ]);
    await a.sync();
    for (const key of ['bad/garbage', 'bad/truncated', 'bad/flipped']) {
      const error = await errorOf(openDocument(a, key));
      t.true(isE2ekvError(error, 'MALFORMED'), `${key}: ${String(error)}`);
      t.regex((error as Error).message, new RegExp(`key "${key}" written by device ${bob.deviceId}`));
      t.is((error as { details: Record<string, unknown> }).details['index'], (await a.getAll(key))[0]!.index);
    }
    // The module still works after the failures, and the good document reads.
    const doc = await openDocument<{ n: number }>(a, 'good');
    t.deepEqual(A.toJS(doc.value()), { n: 1 });

    // A document beside a malformed sibling: reading refuses rather than dropping either.
    const docA = await openDocument<{ n: number }>(a, 'mixed');
    await docA.change((d) => {
      d.n = 2;
    });
    await b.batch([{ name: 'mixed', automerge: Uint8Array.of(0x85, 0x6f, 0x4a, 0x83, 9, 9, 9) }]);
    await a.sync();
    t.is((await a.getAll('mixed')).length, 2);
    t.true(isE2ekvError(await errorOf(docA.refresh()), 'MALFORMED'));
    t.true(
      isE2ekvError(
        await errorOf(
          docA.change((d) => {
            d.n = 3;
          }),
        ),
        'MALFORMED',
      ),
    );
    t.is((await a.getAll('mixed')).length, 2, 'nothing was written over the malformed sibling');

    // Bounds: reading and writing.
    const small = await errorOf(openDocument(a, 'good', { maxDocumentBytes: 16 }));
    t.true(isE2ekvError(small, 'TOO_LARGE'), String(small));
    const bounded = await openDocument<{ text?: string }>(a, 'big', { maxDocumentBytes: 2048 });
    const tooBig = await errorOf(
      bounded.change((d) => {
        // Random text: a saved document is compressed, so repetition would stay small.
        d.text = randomBytes(4096).toString('hex');
      }),
    );
    t.true(isE2ekvError(tooBig, 'TOO_LARGE'), String(tooBig));
    t.deepEqual(await a.getAll('big'), [], 'an oversized change is not written');
    t.true(isE2ekvError(await errorOf(openDocument(a, 'big', { maxDocumentBytes: 0 })), 'INVALID_ARGUMENT'));
  });
});

test('watch delivers the merged document when another device changes it', async (t) => {
  await withServer(async (server) => {
    const { a, b } = await twoDevices(server);
    const docA = await openDocument<Notes>(a, 'live');
    await docA.change((d) => {
      d.items = ['one'];
    });
    await b.sync();
    const docB = await openDocument<Notes>(b, 'live');
    const errors: unknown[] = [];
    const seen = new Promise<Doc<Notes>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no document update within 10 s')), 10_000);
      const stop = docA.watch(
        (doc) => {
          if (!doc.items.includes('two')) return;
          clearTimeout(timer);
          stop();
          resolve(doc);
        },
        (error) => errors.push(error),
      );
    });
    // Give the push channel a moment to connect, then change on the other device.
    await new Promise((resolve) => setTimeout(resolve, 300));
    await docB.change((d) => {
      d.items.push('two');
    });
    const doc = await seen;
    t.deepEqual(A.toJS(doc).items, ['one', 'two']);
    t.deepEqual(errors, []);
  });
});

// ---- Without a server -------------------------------------------------------

/** A sibling as Vault.getAll returns it. */
function sibling(kind: Sibling['kind'], value: unknown, device: string, index: number): Sibling {
  return { kind, value, device, index, deleted: kind === 'tombstone' };
}

type Edit =
  | { op: 'set'; field: string; value: number }
  | { op: 'push'; value: string }
  | { op: 'remove'; field: string }
  | { op: 'text'; at: number; insert: string };

const edit: fc.Arbitrary<Edit> = fc.oneof(
  fc.record({ op: fc.constant('set' as const), field: fc.constantFrom('a', 'b', 'c'), value: fc.integer() }),
  fc.record({ op: fc.constant('push' as const), value: fc.string({ maxLength: 3 }) }),
  fc.record({ op: fc.constant('remove' as const), field: fc.constantFrom('a', 'b', 'c') }),
  fc.record({ op: fc.constant('text' as const), at: fc.nat(20), insert: fc.string({ maxLength: 4 }) }),
);

// A type alias, not an interface: Automerge.from wants a Record.
type Shape = {
  a?: number;
  b?: number;
  c?: number;
  list: string[];
  text: string;
};

function applyEdits(doc: Doc<Shape>, edits: readonly Edit[]): Doc<Shape> {
  return A.change(A.clone(doc), (d) => {
    for (const e of edits) {
      if (e.op === 'set') d[e.field as 'a'] = e.value;
      else if (e.op === 'push') d.list.push(e.value);
      else if (e.op === 'remove') {
        if (e.field === 'a') delete d.a;
        else if (e.field === 'b') delete d.b;
        else delete d.c;
      } else A.splice(d, ['text'], Math.min(e.at, d.text.length), 0, e.insert);
    }
  });
}

test('merging siblings: any order, any duplicates, any grouping give the same document (fast-check)', (t) => {
  const base = A.from<Shape>({ list: ['x'], text: 'hello' });
  // Two to four devices edit from the same base, some of them after merging another's branch.
  const histories = fc.record({
    branches: fc.array(
      fc.record({ edits: fc.array(edit, { maxLength: 5 }), after: fc.option(fc.nat(3), { nil: undefined }) }),
      { minLength: 2, maxLength: 4 },
    ),
    tombstones: fc.nat(2),
    order: fc.array(fc.nat(1000), { minLength: 12, maxLength: 12 }),
    duplicate: fc.nat(3),
  });
  fc.assert(
    fc.property(histories, ({ branches, tombstones, order, duplicate }) => {
      const docs: Doc<Shape>[] = [];
      for (const branch of branches) {
        const from =
          branch.after !== undefined && branch.after < docs.length
            ? A.merge(A.clone(base), A.clone(docs[branch.after]!))
            : base;
        docs.push(applyEdits(from, branch.edits));
      }
      const saved = docs.map((d) => A.save(d));
      const siblings = saved.map((bytes, i) => sibling('automerge', bytes, `d${i}`, 1));
      for (let i = 0; i < tombstones; i++) siblings.push(sibling('tombstone', undefined, `t${i}`, 1));

      const reference = mergeSiblings<Shape>('k', siblings);
      const expected = { content: canonical(reference.doc), heads: heads(reference.doc) };
      // Automerge's own merge of all branches, for an oracle independent of mergeSiblings.
      const oracle = docs.slice(1).reduce((acc, d) => A.merge(acc, A.clone(d)), A.clone(docs[0]!));
      if (canonical(oracle) !== expected.content || heads(oracle) !== expected.heads) return false;

      // Commutative: a shuffled order.
      const shuffled = siblings
        .map((s, i) => ({ s, key: order[i % order.length]! * 16 + i }))
        .sort((x, y) => x.key - y.key)
        .map((x) => x.s);
      // Idempotent: a document given twice, and a document merged with itself.
      const twice = [...shuffled, siblings[duplicate % siblings.length]!];
      // Grouping: the first two merged and saved, then merged with the rest.
      const grouped = [
        sibling('automerge', A.save(mergeSiblings<Shape>('k', siblings.slice(0, 2)).doc), 'g', 1),
        ...siblings.slice(2),
      ];
      for (const variant of [shuffled, twice, grouped]) {
        const merged = mergeSiblings<Shape>('k', variant);
        if (canonical(merged.doc) !== expected.content || heads(merged.doc) !== expected.heads) return false;
        if (merged.documents !== variant.filter((s) => s.kind === 'automerge').length) return false;
      }
      // The result does not depend on the plain siblings either, which are reported in order.
      const withPlain = mergeSiblings<Shape>('k', [sibling('json', { p: 1 }, 'p', 1), ...shuffled]);
      return canonical(withPlain.doc) === expected.content && withPlain.plain.length === 1;
    }),
    { numRuns: 60 },
  );
  t.pass();
});

/** Recomputes the checksum of a single-chunk saved document, so a mutation reaches the parser behind it. */
function withValidChecksum(bytes: Uint8Array): Uint8Array {
  let length = 0;
  let shift = 0;
  let at = 9;
  for (;;) {
    const b = bytes[at++];
    if (b === undefined) return bytes;
    length += (b & 0x7f) * 2 ** shift;
    shift += 7;
    if ((b & 0x80) === 0 || shift > 28) break;
  }
  const end = Math.min(bytes.length, at + length);
  const out = bytes.slice();
  out.set(createHash('sha256').update(bytes.subarray(8, end)).digest().subarray(0, 4), 4);
  return out;
}

test('hostile documents (mutations behind a valid checksum) raise E2ekvError or load; the module keeps working', (t) => {
  const doc = A.change(A.init<Record<string, unknown>>(), (d) => {
    d['title'] = 'a document with some structure';
    d['list'] = [1, 2, 3, { nested: 'yes' }];
    d['n'] = 42;
  });
  const good = A.save(
    A.change(doc, (d) => {
      (d['list'] as unknown[]).push('more');
    }),
  );
  const expected = canonical(A.load(good));
  const codes = new Map<string, number>();
  fc.assert(
    fc.property(
      fc.array(fc.record({ at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 4 }),
      fc.boolean(),
      (mutations, fixChecksum) => {
        let bytes: Uint8Array = good.slice();
        for (const m of mutations) bytes[8 + (m.at % (bytes.length - 8))] = m.byte;
        if (fixChecksum) bytes = withValidChecksum(bytes);
        const siblings = [sibling('automerge', bytes, 'evil', 3), sibling('automerge', good, 'good', 1)];
        try {
          const merged = mergeSiblings('k', siblings);
          // Loaded: it must be usable like any document.
          A.save(merged.doc);
          canonical(merged.doc);
          codes.set('loaded', (codes.get('loaded') ?? 0) + 1);
        } catch (error) {
          if (!isE2ekvError(error, 'MALFORMED')) return false;
          if (error.details['device'] !== 'evil') return false;
          codes.set('MALFORMED', (codes.get('MALFORMED') ?? 0) + 1);
        }
        // The WASM module survived whatever happened.
        return canonical(mergeSiblings('k', [sibling('automerge', good, 'good', 1)]).doc) === expected;
      },
    ),
    { numRuns: 400 },
  );
  t.log(`hostile documents: ${JSON.stringify(Object.fromEntries(codes))}`);
  t.true((codes.get('MALFORMED') ?? 0) > 0);
});

test('the core entry point does not carry Automerge; the automerge entry does', async (t) => {
  const bundleOf = async (entry: string) => {
    const result = await build({
      entryPoints: [path.join(repoRoot, entry)],
      bundle: true,
      write: false,
      format: 'esm',
      platform: 'browser',
      conditions: ['e2ekv-source'],
      metafile: true,
      logLevel: 'silent',
    });
    return { bytes: result.outputFiles[0]!.contents.length, inputs: Object.keys(result.metafile.inputs) };
  };
  const [core, automerge] = await Promise.all([bundleOf('sdk/src/index.ts'), bundleOf('sdk/src/automerge/index.ts')]);
  t.deepEqual(
    core.inputs.filter((i) => i.includes('@automerge') || i.includes('sdk/src/automerge/')),
    [],
    'nothing of Automerge in the core bundle',
  );
  t.true(automerge.inputs.some((i) => i.includes('@automerge/automerge/dist/mjs/wasm_bindgen_output/web/')));
  t.true(core.bytes < 1_000_000, `core bundle ${core.bytes} bytes`);
  t.true(automerge.bytes > 3_000_000, `automerge bundle ${automerge.bytes} bytes`);
  t.log(`core bundle ${core.bytes} bytes; automerge entry bundle ${automerge.bytes} bytes (unminified, from sources)`);
});
