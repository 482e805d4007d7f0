// The SDK in a real browser: headless Chromium (playwright-core, Debian's
// /usr/bin/chromium) loads the esbuild browser bundle and talks to a real
// e2ekv-server process. The replica sends no CORS headers, so the page is served
// by this test's own express server, which also reverse-proxies /v1/* to the
// replica unchanged: the page talks to its own origin, and the request paths the
// SDK signs are exactly the paths the replica sees.
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import test from 'ava';
import { chromium, type Browser } from 'playwright-core';
import { ed25519EdgeCases } from '../../test/support/paths.js';
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
import type * as Sdk from '../src/index.js';
import type * as Ed25519Module from '../../protocol/src/crypto/ed25519.js';

const vectors = ed25519EdgeCases();

test('the SDK bundle runs in headless Chromium against a real replica, and its Ed25519 verifier gives Go verdicts', async (t) => {
  if (skipWithoutChromium(t)) return;

  // Bundles: the SDK as an application would ship it, and the protocol's Ed25519
  // module (the SDK's verifier; needsReferenceVerifier is exported only there).
  const [sdkBundle, edBundle] = await Promise.all([
    bundle('sdk/src/index.ts'),
    bundle('protocol/src/crypto/ed25519.ts'),
  ]);
  t.true(
    sdkBundle.inputs.some((i) => i.includes('protocol/src/')),
    'the protocol sources are in the SDK bundle',
  );
  for (const b of [sdkBundle, edBundle]) {
    t.deepEqual(
      b.inputs.filter((i) => i.startsWith('node:')),
      [],
      'no node: module reached the bundle',
    );
    t.false(/(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\s*\(\s*)["']node:/.test(b.text), 'no node: import in the bundle');
  }
  const sdkBytes = Buffer.byteLength(sdkBundle.text);
  t.log(
    `SDK browser bundle (unminified ESM): ${sdkBytes} bytes (${(sdkBytes / 1024).toFixed(1)} KiB), ${gzipSync(sdkBundle.text).length} bytes gzipped, ${sdkBundle.inputs.length} input files`,
  );

  const data = await tempDir();
  let replica: ServerProcess | undefined;
  let pageServer: http.Server | undefined;
  let browser: Browser | undefined;
  try {
    replica = await startServerProcess(data.dir);
    pageServer = await startPageServer(replica.url, {
      'index.html':
        '<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><title>e2ekv browser test</title><p>e2ekv</p>',
      'e2ekv.js': sdkBundle.text,
      'ed25519.js': edBundle.text,
    });
    const origin = `http://127.0.0.1:${(pageServer.address() as AddressInfo).port}`;

    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    t.log(`browser: Chromium ${browser.version()}`);
    const page = await browser.newPage();
    page.setDefaultTimeout(30_000);
    const pageErrors = collectPageErrors(page);
    // Answers of 400 and above, by method and path: Chromium also logs each one as a console error.
    const refusals: string[] = [];
    page.on('response', (response) => {
      if (response.status() >= 400) {
        refusals.push(`${response.status()} ${response.request().method()} ${new URL(response.url()).pathname}`);
      }
    });
    await allowKeptNames(page);
    await page.goto(`${origin}/app/index.html`);

    // A third device made here in Node: the page makes it a reader, and Node's SDK
    // then reads what the browser wrote (browser and Node agree on the bytes).
    const carolIdentity = createIdentity();
    const carol = publicIdentity(carolIdentity);

    let started = Date.now();
    const flow = await page.evaluate(
      async ({ bundleUrl, carolKeys }) => {
        const sdk = (await import(bundleUrl)) as typeof Sdk;
        const servers = [location.origin];
        const bytesOf = (value: unknown) => (value instanceof Uint8Array ? Array.from(value) : null);

        const aliceIdentity = sdk.createIdentity();
        const alice = await sdk.createClient({ identity: aliceIdentity, servers });
        const { vault, access } = await alice.createVault();
        await vault.set('profile', { name: 'Ada', tags: ['math', 'engines'], n: 1815, ok: true, none: null });
        await vault.set('files/small', Uint8Array.of(0, 1, 2, 254, 255));
        // Above the 4 KiB blob threshold: uploaded and fetched as a blob.
        const big = new Uint8Array(20_000).map((_, i) => (i * 7) & 0xff);
        await vault.set('files/big', big);
        await vault.batch([
          { name: 'tmp', value: 'soon gone' },
          { name: 'files/text', value: 'héllo wörld ✓' },
        ]);
        const afterWrites = await vault.list();
        await vault.delete('tmp');
        const afterDelete = await vault.list();

        const bobIdentity = sdk.createIdentity();
        await vault.addMember(sdk.publicIdentity(bobIdentity), 'writer');
        await vault.addMember(
          { signingKey: Uint8Array.from(carolKeys.signingKey), boxKey: Uint8Array.from(carolKeys.boxKey) },
          'reader',
        );
        const bob = await sdk.createClient({ identity: bobIdentity, servers });
        const bobVault = await bob.openVault(access);
        const bobSaw = {
          profile: await bobVault.get('profile'),
          small: bytesOf(await bobVault.get('files/small')),
          bigMatches: await (async () => {
            const got = await bobVault.get('files/big');
            return got instanceof Uint8Array && got.length === big.length && got.every((b, i) => b === big[i]);
          })(),
          text: await bobVault.get('files/text'),
          tmp: (await bobVault.get('tmp')) ?? null,
          list: await bobVault.list(),
          listFiles: await bobVault.list({ prefix: 'files/' }),
        };
        await bobVault.set('from-bob', { hello: 'alice' });
        await vault.sync();

        let strangerError: { code: string | null; message: string } | null = null;
        try {
          const stranger = await sdk.createClient({ identity: sdk.createIdentity(), servers });
          const strangerVault = await stranger.openVault(access);
          await strangerVault.set('k', 'v');
        } catch (error) {
          strangerError = {
            code: sdk.isE2ekvError(error) ? error.code : null,
            message: error instanceof Error ? error.message : String(error),
          };
        }

        return {
          access: { vaultId: access.vaultId, secret: Array.from(access.secret) },
          aliceDevice: alice.deviceId,
          bobDevice: bob.deviceId,
          afterWrites,
          afterDelete,
          afterSync: await vault.list(),
          profile: await vault.get('profile'),
          small: bytesOf(await vault.get('files/small')),
          tmp: (await vault.get('tmp')) ?? null,
          fromBob: await vault.get('from-bob'),
          fromBobSiblings: (await vault.getAll('from-bob')).map((s) => ({ device: s.device, deleted: s.deleted })),
          bobSaw,
          strangerError,
          evidence: vault.evidence.length,
        };
      },
      {
        bundleUrl: `${origin}/app/e2ekv.js`,
        carolKeys: { signingKey: Array.from(carol.signingKey), boxKey: Array.from(carol.boxKey) },
      },
    );

    t.log(`vault flow in the page: ${Date.now() - started} ms`);
    const profile = { name: 'Ada', tags: ['math', 'engines'], n: 1815, ok: true, none: null };
    t.deepEqual(flow.afterWrites, ['files/big', 'files/small', 'files/text', 'profile', 'tmp']);
    t.deepEqual(flow.afterDelete, ['files/big', 'files/small', 'files/text', 'profile']);
    t.deepEqual(flow.afterSync, ['files/big', 'files/small', 'files/text', 'from-bob', 'profile']);
    t.deepEqual(flow.profile, profile);
    t.deepEqual(flow.small, [0, 1, 2, 254, 255]);
    t.is(flow.tmp, null);
    t.deepEqual(flow.bobSaw, {
      profile,
      small: [0, 1, 2, 254, 255],
      bigMatches: true,
      text: 'héllo wörld ✓',
      tmp: null,
      list: ['files/big', 'files/small', 'files/text', 'profile'],
      listFiles: ['files/big', 'files/small', 'files/text'],
    });
    t.deepEqual(flow.fromBob, { hello: 'alice' });
    t.deepEqual(flow.fromBobSiblings, [{ device: flow.bobDevice, deleted: false }]);
    t.is(flow.strangerError?.code, 'PERMISSION_DENIED', JSON.stringify(flow.strangerError));
    t.is(flow.evidence, 0);

    // Node reads, straight from the replica, what the browser wrote through the proxy.
    const carolClient = await createClient({ identity: carolIdentity, servers: [replica.url] });
    const carolVault = await carolClient.openVault({
      vaultId: flow.access.vaultId,
      secret: Uint8Array.from(flow.access.secret),
    });
    t.deepEqual(await carolVault.get('profile'), profile);
    t.deepEqual(await carolVault.get('files/small'), Uint8Array.of(0, 1, 2, 254, 255));
    t.deepEqual(
      await carolVault.get('files/big'),
      new Uint8Array(20_000).map((_, i) => (i * 7) & 0xff),
    );
    t.deepEqual(await carolVault.get('from-bob'), { hello: 'alice' });
    t.deepEqual(await carolVault.list(), ['files/big', 'files/small', 'files/text', 'from-bob', 'profile']);

    // All 914 C2SP/CCTV Ed25519 edge cases: through the SDK's verifier (the
    // protocol module in the bundle, which picks WebCrypto here and routes the
    // disputed inputs to tweetnacl), and through Chromium's raw WebCrypto.
    started = Date.now();
    const verdicts = await page.evaluate(
      async ({ bundleUrl, cases }) => {
        const ed = (await import(bundleUrl)) as typeof Ed25519Module;
        const bytes = (hex: string) => Uint8Array.from(hex.match(/../g) ?? [], (h) => parseInt(h, 16));
        const encoder = new TextEncoder();
        const backend = (await ed.defaultEd25519()).name;
        const out: {
          number: number;
          sdk: boolean;
          raw: boolean;
          rawError: string | null;
          routed: boolean;
        }[] = [];
        for (const c of cases) {
          const key = bytes(c.key);
          const sig = bytes(c.sig);
          const msg = encoder.encode(c.msg);
          let raw = false;
          let rawError: string | null = null;
          try {
            const cryptoKey = await crypto.subtle.importKey('raw', key, { name: 'Ed25519' }, false, ['verify']);
            raw = await crypto.subtle.verify({ name: 'Ed25519' }, cryptoKey, sig, msg);
          } catch (error) {
            rawError = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
          }
          out.push({
            number: c.number,
            sdk: await ed.ed25519Verify(key, msg, sig),
            raw,
            rawError,
            routed: ed.needsReferenceVerifier(key, sig),
          });
        }
        return { backend, out };
      },
      { bundleUrl: `${origin}/app/ed25519.js`, cases: vectors },
    );

    t.log(`914 vectors through the SDK verifier and raw WebCrypto in the page: ${Date.now() - started} ms`);
    t.is(verdicts.out.length, 914);
    t.is(verdicts.backend, 'webcrypto', 'Chromium has WebCrypto Ed25519, so the SDK uses it');
    const expected = new Map(vectors.map((v) => [v.number, v.expected_valid]));
    t.deepEqual(
      verdicts.out.filter((v) => v.sdk !== expected.get(v.number)).map((v) => v.number),
      [],
      "the SDK's verifier gives Go's verdict on every vector",
    );
    const disagreements = verdicts.out.filter((v) => v.raw !== expected.get(v.number));
    const unrouted = disagreements.filter((v) => !v.routed);
    const importErrors = verdicts.out.filter((v) => v.rawError !== null);
    t.log(
      `Ed25519 edge cases: raw Chromium WebCrypto disagrees with Go on ${disagreements.length} of ${verdicts.out.length} ` +
        `(Go valid / Chromium invalid: ${disagreements.filter((v) => expected.get(v.number)).length}, ` +
        `Go invalid / Chromium valid: ${disagreements.filter((v) => !expected.get(v.number)).length}); ` +
        `${disagreements.length - unrouted.length} of them routed to the reference verifier by needsReferenceVerifier; ` +
        `${verdicts.out.filter((v) => v.routed).length} vectors routed in all; ` +
        `raw WebCrypto accepts ${verdicts.out.filter((v) => v.raw).length}, Go ${vectors.filter((v) => v.expected_valid).length}; ` +
        `${importErrors.length} raw imports/verifications threw` +
        (importErrors.length > 0 ? ` (first: ${importErrors[0]!.rawError})` : ''),
    );
    t.deepEqual(
      unrouted.map((v) => v.number),
      [],
      'every vector where raw WebCrypto disagrees with Go is routed to the reference verifier',
    );

    // The stranger's reads are the only refusals: every other request succeeded.
    t.true(refusals.length > 0);
    t.deepEqual(
      refusals.filter((r) => r !== `403 GET /v1/vaults/${flow.access.vaultId}`),
      [],
      'no refusal other than the stranger being denied the vault',
    );
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
