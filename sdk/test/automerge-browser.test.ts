// 'e2ekv/automerge' in a real browser: headless Chromium (playwright-core,
// Debian's /usr/bin/chromium) loads the esbuild bundle of the automerge entry
// (Automerge's WASM module inlined as base64, no WASM loader needed) beside the
// core SDK bundle, and edits a document in a vault on a real e2ekv-server
// process reached through the page server's /v1 proxy (see browser.test.ts).
// A Node device then reads the same document and changes it, and the page
// sees that change merged.
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import test from 'ava';
import { chromium, type Browser } from 'playwright-core';
import {
  CHROMIUM,
  CHROMIUM_ARGS,
  allowKeptNames,
  bundle,
  closeServer,
  collectPageErrors,
  skipWithoutChromium,
  startPageServer,
} from '../../test/support/browser.js';
import { startServerProcess, tempDir, type ServerProcess } from '../../server/test/support/process.js';
import { createClient, createIdentity, publicIdentity } from '../src/index.js';
import { initAutomerge, openDocument } from '../src/automerge/index.js';
import type * as Sdk from '../src/index.js';
import type * as AutomergeEntry from '../src/automerge/index.js';

interface Board {
  title?: string;
  cards: string[];
  fromNode?: boolean;
}

test('the automerge entry runs in headless Chromium against a real replica, and Node reads the same document', async (t) => {
  if (skipWithoutChromium(t)) return;

  const [sdkBundle, automergeBundle] = await Promise.all([
    bundle('sdk/src/index.ts'),
    bundle('sdk/src/automerge/index.ts'),
  ]);
  t.deepEqual(
    sdkBundle.inputs.filter((i) => i.includes('@automerge')),
    [],
    'the core bundle carries no Automerge',
  );
  t.true(
    automergeBundle.inputs.some((i) => i.includes('@automerge/automerge/dist/mjs/entrypoints/slim.js')),
    'the automerge bundle uses the slim entry',
  );
  t.deepEqual(
    automergeBundle.inputs.filter((i) => i.startsWith('node:')),
    [],
    'no node: module reached the automerge bundle',
  );
  t.false(
    /(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\s*\(\s*)["']node:/.test(automergeBundle.text),
    'no node: import in the automerge bundle',
  );
  for (const [name, b] of [
    ['core SDK', sdkBundle],
    ['automerge entry', automergeBundle],
  ] as const) {
    const bytes = Buffer.byteLength(b.text);
    t.log(
      `${name} browser bundle (unminified ESM, from sources): ${bytes} bytes (${(bytes / 1024).toFixed(1)} KiB), ${gzipSync(b.text).length} bytes gzipped`,
    );
  }

  const A = await initAutomerge();
  const data = await tempDir();
  let replica: ServerProcess | undefined;
  let pageServer: http.Server | undefined;
  let browser: Browser | undefined;
  try {
    replica = await startServerProcess(data.dir);
    pageServer = await startPageServer(replica.url, {
      'index.html':
        '<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><title>e2ekv automerge test</title><p>e2ekv</p>',
      'e2ekv.js': sdkBundle.text,
      'e2ekv-automerge.js': automergeBundle.text,
    });
    const origin = `http://127.0.0.1:${(pageServer.address() as AddressInfo).port}`;

    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    const page = await browser.newPage();
    page.setDefaultTimeout(60_000);
    const pageErrors = collectPageErrors(page);
    await allowKeptNames(page);
    await page.goto(`${origin}/app/index.html`);

    // Node's device, made a writer by the page.
    const nodeIdentity = createIdentity();
    const nodeKeys = publicIdentity(nodeIdentity);

    let started = Date.now();
    const flow = await page.evaluate(
      async ({ sdkUrl, automergeUrl, nodeKeys }) => {
        const sdk = (await import(sdkUrl)) as typeof Sdk;
        const am = (await import(automergeUrl)) as typeof AutomergeEntry;
        const client = await sdk.createClient({ identity: sdk.createIdentity(), servers: [location.origin] });
        const { vault, access } = await client.createVault();
        await vault.addMember(
          { signingKey: Uint8Array.from(nodeKeys.signingKey), boxKey: Uint8Array.from(nodeKeys.boxKey) },
          'writer',
        );
        const initStarted = performance.now();
        const doc = await am.openDocument<Board>(vault, 'board');
        const openMs = performance.now() - initStarted;
        const Automerge = await am.initAutomerge();
        const empty = Automerge.toJS(doc.value());
        await doc.change((d) => {
          d.title = 'Sprint';
          d.cards = ['design'];
        });
        await doc.change(
          (d) => {
            d.cards.push('build');
          },
          { message: 'second card' },
        );
        // Read back through a fresh handle: from the vault, not from the handle's cache.
        const again = await am.openDocument<Board>(vault, 'board');
        const siblings = (await vault.getAll('board')).map((s) => ({ kind: s.kind, device: s.device }));

        // A malformed document is refused with the error code, in the browser too.
        await vault.batch([{ name: 'broken', automerge: Uint8Array.of(0x85, 0x6f, 0x4a, 0x83, 1, 2, 3, 4, 0, 1, 2) }]);
        let broken: { name: string; code: string | null } | null = null;
        try {
          await am.openDocument(vault, 'broken');
        } catch (error) {
          broken = {
            name: error instanceof Error ? error.name : typeof error,
            code: (error as { code?: string }).code ?? null,
          };
        }
        (globalThis as unknown as { board: typeof doc; boardVault: typeof vault }).board = doc;
        (globalThis as unknown as { board: typeof doc; boardVault: typeof vault }).boardVault = vault;
        return {
          access: { vaultId: access.vaultId, secret: Array.from(access.secret) },
          device: client.deviceId,
          openMs,
          empty,
          written: Automerge.toJS(doc.value()),
          readBack: Automerge.toJS(again.value()),
          siblings,
          broken,
        };
      },
      {
        sdkUrl: `${origin}/app/e2ekv.js`,
        automergeUrl: `${origin}/app/e2ekv-automerge.js`,
        nodeKeys: { signingKey: Array.from(nodeKeys.signingKey), boxKey: Array.from(nodeKeys.boxKey) },
      },
    );
    t.log(
      `document flow in the page: ${Date.now() - started} ms (starting Automerge and opening the document: ${Math.round(flow.openMs)} ms)`,
    );
    t.deepEqual(flow.empty, {});
    t.deepEqual(flow.written, { title: 'Sprint', cards: ['design', 'build'] });
    t.deepEqual(flow.readBack, flow.written);
    t.deepEqual(flow.siblings, [{ kind: 'automerge', device: flow.device }]);
    t.deepEqual(flow.broken, { name: 'E2ekvError', code: 'MALFORMED' });

    // Node, straight from the replica, reads what the browser wrote, and changes it.
    const nodeClient = await createClient({ identity: nodeIdentity, servers: [replica.url] });
    const nodeVault = await nodeClient.openVault({
      vaultId: flow.access.vaultId,
      secret: Uint8Array.from(flow.access.secret),
    });
    const nodeDoc = await openDocument<Board>(nodeVault, 'board');
    t.deepEqual(A.toJS(nodeDoc.value()), { title: 'Sprint', cards: ['design', 'build'] });
    await nodeDoc.change((d) => {
      d.cards.push('ship');
      d.fromNode = true;
    });

    started = Date.now();
    const seen = await page.evaluate(async (automergeUrl) => {
      const am = (await import(automergeUrl)) as typeof AutomergeEntry;
      const Automerge = await am.initAutomerge();
      const { board, boardVault } = globalThis as unknown as {
        board: AutomergeEntry.DocumentHandle<Board>;
        boardVault: Sdk.Vault;
      };
      await boardVault.sync();
      await board.refresh();
      return {
        doc: Automerge.toJS(board.value()),
        heads: [...Automerge.getHeads(board.value())].sort(),
        siblings: (await boardVault.getAll('board')).length,
      };
    }, `${origin}/app/e2ekv-automerge.js`);
    t.log(`sync and merge in the page: ${Date.now() - started} ms`);
    t.deepEqual(seen.doc, { title: 'Sprint', cards: ['design', 'build', 'ship'], fromNode: true });
    t.deepEqual(seen.heads, [...A.getHeads(nodeDoc.value())].sort(), 'the page and Node hold the same document');
    t.is(seen.siblings, 1);
    t.deepEqual(pageErrors, [], 'no page errors, console errors or failed requests');
  } finally {
    await browser?.close();
    if (pageServer !== undefined) await closeServer(pageServer);
    if (replica !== undefined) {
      const code = await replica.stop();
      if (code !== 0) t.log(`replica exited with ${code}:\n${replica.stderr()}`);
    }
    await data.remove();
  }
});
