// The IndexedDB local store in headless Chromium (playwright-core, Debian's
// /usr/bin/chromium), against the browser's real IndexedDB on a real profile
// folder: the whole LocalStore conformance suite and the IndexedDB cases run
// inside the page (sdk/test/fixtures/local-indexeddb-page.ts), each reported
// back here; then what only a real browser shows: a storage quota reached
// (set through the DevTools protocol), and data surviving a browser restart.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { E2ekvError, randomBytes, toHex } from '@e2ekv/protocol';
import test, { type ExecutionContext } from 'ava';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import {
  CHROMIUM,
  CHROMIUM_ARGS,
  allowKeptNames,
  bundle,
  chromiumSkipped,
  closeServer,
  skipWithoutChromium,
  startPageServer,
} from '../../test/support/browser.js';
import { localStoreCases } from './local-conformance.js';
import { indexedDbCases } from './fixtures/local-indexeddb-cases.js';
import type * as PageModule from './fixtures/local-indexeddb-page.js';
import type { CaseResult } from './fixtures/local-indexeddb-page.js';
import { difference, plainAssertions } from './fixtures/plain-assertions.js';

interface Served {
  server: http.Server;
  origin: string;
  bundleUrl: string;
  /** The bundle's lines, to show the code a page stack frame points at. */
  bundleLines: string[];
}

let served: Served | undefined;
const profiles: string[] = [];

test.before(async () => {
  if (chromiumSkipped) return;
  const page = await bundle('sdk/test/fixtures/local-indexeddb-page.ts');
  const nodeInputs = page.inputs.filter((input) => input.startsWith('node:'));
  if (nodeInputs.length > 0) throw new Error(`node: modules reached the page bundle: ${nodeInputs.join(', ')}`);
  // The page never calls /v1: the replica address the page server proxies to is a placeholder.
  const server = await startPageServer('http://127.0.0.1:9', {
    'index.html':
      '<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><title>e2ekv local store</title>',
    'local-indexeddb.js': page.text,
  });
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  served = { server, origin, bundleUrl: `${origin}/app/local-indexeddb.js`, bundleLines: page.text.split('\n') };
});

test.after.always(async () => {
  if (served !== undefined) await closeServer(served.server);
  await Promise.all(profiles.map((dir) => rm(dir, { recursive: true, force: true })));
});

async function newProfile(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'e2ekv-chromium-'));
  profiles.push(dir);
  return dir;
}

/** Chromium on a profile folder of its own, so IndexedDB is on disk as it is for a user (not an incognito context). */
function launch(profile: string): Promise<BrowserContext> {
  return chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
}

interface OpenPage {
  page: Page;
  /** Page errors, console errors and failed requests seen so far. */
  errors: string[];
}

async function openPage(context: BrowserContext): Promise<OpenPage> {
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(90_000);
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(`pageerror: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(`console.error: ${message.text()}`);
  });
  page.on('requestfailed', (request) => errors.push(`request failed: ${request.url()}`));
  await allowKeptNames(page);
  await page.goto(`${served!.origin}/app/index.html`);
  return { page, errors };
}

/** Calls an export of the page module with JSON arguments, in the page. */
function call<K extends keyof typeof PageModule>(
  page: Page,
  name: K,
  ...args: unknown[]
): Promise<Awaited<ReturnType<Extract<(typeof PageModule)[K], (...a: never[]) => unknown>>>> {
  return page.evaluate(
    async ({ url, name, args }) => {
      const module = (await import(url)) as Record<string, (...a: unknown[]) => unknown>;
      return module[name]!(...args);
    },
    { url: served!.bundleUrl, name, args },
  ) as never;
}

/** A page stack, each frame in the bundle followed by the line of code it points at. */
function annotate(error: string): string {
  const { bundleUrl, bundleLines } = served!;
  return error
    .split('\n')
    .map((line) => {
      const at = line.indexOf(`${bundleUrl}:`);
      if (at < 0) return line;
      const number = Number(line.slice(at + bundleUrl.length + 1).split(':')[0]);
      const code = bundleLines[number - 1]?.trim();
      return code === undefined ? line : `${line}\n        ${code}`;
    })
    .join('\n');
}

function report(t: ExecutionContext, results: CaseResult[], titles: string[]): void {
  for (const result of results) {
    t.log(`${result.passed ? '✔' : '✘'} ${result.title} (${result.assertions} assertions, ${result.ms} ms)`);
  }
  t.deepEqual(
    results.map((result) => result.title),
    titles,
    'every case ran in the page',
  );
  const failed = results.filter((result) => !result.passed);
  if (failed.length > 0) {
    t.fail(
      `${failed.length} of ${results.length} cases failed in Chromium:\n\n` +
        failed.map((result) => `✘ ${result.title}\n${annotate(result.error ?? '')}`).join('\n\n'),
    );
  }
}

test.serial('indexeddb in Chromium: the LocalStore conformance cases, against the real IndexedDB', async (t) => {
  if (skipWithoutChromium(t)) return;
  const context = await launch(await newProfile());
  try {
    t.log(`browser: Chromium ${context.browser()?.version() ?? '(persistent context)'}`);
    const { page, errors } = await openPage(context);
    const started = Date.now();
    const results = await call(page, 'runConformance');
    t.log(`${results.length} conformance cases in the page: ${Date.now() - started} ms`);
    report(
      t,
      results,
      localStoreCases.map((localCase) => localCase.title),
    );
    t.deepEqual(errors, [], 'no page errors, console errors or failed requests');
  } finally {
    await context.close();
  }
});

test.serial('indexeddb in Chromium: transactions, other tabs, damaged records', async (t) => {
  if (skipWithoutChromium(t)) return;
  const context = await launch(await newProfile());
  try {
    const { page, errors } = await openPage(context);
    const started = Date.now();
    const results = await call(page, 'runIndexedDbCases');
    t.log(`${results.length} IndexedDB cases in the page: ${Date.now() - started} ms`);
    report(
      t,
      results,
      indexedDbCases.map((indexedDbCase) => indexedDbCase.title),
    );
    t.deepEqual(errors, [], 'no page errors, console errors or failed requests');
  } finally {
    await context.close();
  }
});

test.serial('indexeddb in Chromium: a full storage quota refuses an append whole, as TOO_LARGE', async (t) => {
  if (skipWithoutChromium(t)) return;
  const context = await launch(await newProfile());
  try {
    const { page, errors } = await openPage(context);
    const cdp = await context.newCDPSession(page);
    const name = `e2ekv-quota-${toHex(randomBytes(8))}`;
    const quotaSize = 6 * 1024 * 1024;
    await cdp.send('Storage.overrideQuotaForOrigin', { origin: served!.origin, quotaSize });
    const entryBytes = 64 * 1024;
    const outcome = await call(page, 'fillUntilRefused', name, entryBytes, 16);
    t.log(
      `quota ${quotaSize} bytes: ${outcome.acknowledged} appends of ${outcome.entriesPerAppend} × ${entryBytes} bytes ` +
        `acknowledged, then ${outcome.refusal?.code}; usage ${outcome.usage} of ${outcome.quota}; ` +
        `refusal: ${outcome.refusal?.message}`,
    );
    t.true(outcome.acknowledged > 0, 'appends under the quota are stored');
    t.is(outcome.refusal?.code, 'TOO_LARGE', outcome.refusal?.message);
    t.is(outcome.refusal?.details['domError'], 'QuotaExceededError');
    t.regex(outcome.refusal?.message ?? '', /quota .*Nothing of this call was stored.*persist\(\)/);
    t.is(
      outcome.stored,
      outcome.acknowledged * outcome.entriesPerAppend,
      'what was acknowledged, and none of the rest',
    );
    t.is(outcome.blobRefusal, 'TOO_LARGE', 'a blob too large for the space left is refused too');

    // With room again, the log carries on from what was acknowledged.
    await cdp.send('Storage.overrideQuotaForOrigin', { origin: served!.origin });
    t.is(await call(page, 'appendAfterQuota', name, outcome.stored), outcome.stored + 3);
    t.deepEqual(errors, [], 'no page errors, console errors or failed requests');
  } finally {
    await context.close();
  }
});

test.serial('indexeddb in Chromium: what was written is there after the browser restarts on its profile', async (t) => {
  if (skipWithoutChromium(t)) return;
  const profile = await newProfile();
  const name = `e2ekv-restart-${toHex(randomBytes(8))}`;
  const vaultId = toHex(randomBytes(32));
  let written: string;
  let context = await launch(profile);
  try {
    const { page, errors } = await openPage(context);
    written = await call(page, 'writeKnownVault', name, vaultId);
    t.deepEqual(errors, []);
  } finally {
    await context.close();
  }
  context = await launch(profile);
  try {
    const { page, errors } = await openPage(context);
    const read = await call(page, 'readKnownVaultAgain', name, vaultId);
    t.is(read, written);
    const parsed = JSON.parse(read) as { vault: { logs: { entries: string[] }[] }; vaults: string[] };
    t.is(parsed.vault.logs[0]?.entries.length, 8);
    t.deepEqual(parsed.vaults, [vaultId]);
    t.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

// ---------------------------------------------------------------------------
// kill -9: Chromium started by hand (playwright's persistent contexts hide
// the process), in a process group of its own so the whole browser dies at
// once, driven through the DevTools protocol. This is a crash of the browser,
// not of the machine: it shows an append resolves only once Chromium has
// committed it, not that the commit reached the disk (what 'strict' asks for,
// and only a power cut would tell).

async function killedWhileWriting(profile: string, name: string, killAfterFirstAckMs: number): Promise<number[]> {
  const child = spawn(
    CHROMIUM,
    [...CHROMIUM_ARGS, '--headless', `--user-data-dir=${profile}`, '--remote-debugging-port=0', 'about:blank'],
    { detached: true, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const kill = () => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // Gone already.
    }
  };
  try {
    const endpoint = await new Promise<string>((resolve, reject) => {
      let stderr = '';
      const timer = setTimeout(() => reject(new Error(`Chromium did not start:\n${stderr}`)), 30_000);
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
        stderr += chunk;
        const found = /DevTools listening on (ws:\/\/\S+)/.exec(stderr);
        if (found !== null) {
          clearTimeout(timer);
          resolve(found[1]!);
        }
      });
      child.once('exit', () => reject(new Error(`Chromium exited at start:\n${stderr}`)));
    });
    const browser = await chromium.connectOverCDP(endpoint);
    const { page } = await openPage(browser.contexts()[0]!);
    const acks: number[] = [];
    page.on('console', (message) => {
      const found = /^acked ([0-9]+)$/.exec(message.text());
      if (found === null) return;
      acks.push(Number(found[1]));
      if (acks.length === 1) setTimeout(kill, killAfterFirstAckMs);
    });
    const writing = call(page, 'writeUntilKilled', name).then(
      () => new Error('the writer finished before the browser was killed'),
      () => undefined,
    );
    await exited;
    const finished = await writing;
    if (finished !== undefined) throw finished;
    return acks;
  } finally {
    kill();
    await exited;
  }
}

test.serial('indexeddb in Chromium: acknowledged appends survive kill -9 of the browser, intact', async (t) => {
  if (skipWithoutChromium(t)) return;
  const profile = await newProfile();
  const name = 'e2ekv-crash';
  let acknowledged = 0;
  for (let run = 0; run < 3; run++) {
    const started = Date.now();
    const acks = await killedWhileWriting(profile, name, Math.floor(Math.random() * 300));
    acknowledged = Math.max(acknowledged, ...acks);
    const context = await launch(profile);
    try {
      const { page, errors } = await openPage(context);
      const { size, damaged } = await call(page, 'checkCrashLog', name);
      t.true(size >= acknowledged, `${size} entries stored, ${acknowledged} acknowledged`);
      t.deepEqual(damaged, [], 'entries intact');
      t.deepEqual(errors, []);
      t.log(
        `run ${run}: ${acks.length} appends acknowledged, the last at ${acknowledged}; log at ${size} (${Date.now() - started} ms)`,
      );
      acknowledged = size;
    } finally {
      await context.close();
    }
  }
});

// ---------------------------------------------------------------------------
// The page's assertions stand in for ava's: they must be at least as strict.

test("the page's assertions are as strict as ava's", async (t) => {
  const view = Uint8Array.of(9, 1, 2, 9).subarray(1, 3);
  const pairs: [string, unknown, unknown][] = [
    ['equal bytes', Uint8Array.of(1, 2), Uint8Array.of(1, 2)],
    ['other bytes', Uint8Array.of(1, 2), Uint8Array.of(1, 3)],
    ['a byte more', Uint8Array.of(1, 2, 3), Uint8Array.of(1, 2)],
    ['a view and a copy of it', view, Uint8Array.of(1, 2)],
    ['a Buffer and a Uint8Array', Buffer.from([1]), Uint8Array.of(1)],
    ['a Uint16Array and a Uint8Array', Uint16Array.of(1), Uint8Array.of(1)],
    ['a missing property and an undefined one', { a: undefined }, {}],
    ['an undefined property and a missing one', {}, { a: undefined }],
    ['properties in another order', { a: 1, b: 2 }, { b: 2, a: 1 }],
    ['an array and an object', [1], { 0: 1 }],
    ['an element more', [1, 2], [1]],
    ['-0 and 0', -0, 0],
    ['NaN and NaN', NaN, NaN],
    ['a string and a number', '1', 1],
    ['null and undefined', null, undefined],
    ['undefined and an object', undefined, {}],
    [
      'a nested difference',
      { logs: [{ device: 'd', entries: [Uint8Array.of(1)], pin: undefined }], acked: { r: 1 } },
      { logs: [{ device: 'd', entries: [Uint8Array.of(2)], pin: undefined }], acked: { r: 1 } },
    ],
    [
      'a nested pin and none',
      { logs: [{ device: 'd', entries: [], pin: { size: 0, root: Uint8Array.of(1), note: 'n' } }] },
      { logs: [{ device: 'd', entries: [], pin: undefined }] },
    ],
    [
      'equal vaults',
      { logs: [{ device: 'd', entries: [Uint8Array.of(1)], pin: undefined }], acked: { r: 1 }, evidence: [] },
      { logs: [{ device: 'd', entries: [Uint8Array.of(1)], pin: undefined }], acked: { r: 1 }, evidence: [] },
    ],
  ];
  for (const [what, actual, expected] of pairs) {
    const attempt = await t.try((tt) => {
      tt.deepEqual(actual, expected);
    });
    const avaPassed = attempt.passed;
    attempt.discard();
    const found = difference(actual, expected);
    t.is(found === undefined, avaPassed, `${what}: ava ${avaPassed ? 'passes' : 'fails'} it; the page's ${found}`);
  }

  const plain = plainAssertions();
  t.throws(() => plain.is(0, -0));
  t.throws(() => plain.truthy(''));
  await t.throwsAsync(() => plain.throwsAsync(() => Promise.resolve(), { instanceOf: E2ekvError }));
  await t.throwsAsync(() => plain.throwsAsync(() => Promise.reject(new Error('x')), { instanceOf: E2ekvError }));
  const error = new E2ekvError('CONFLICT', 'c');
  t.is(await plain.throwsAsync(() => Promise.reject(error), { instanceOf: E2ekvError }), error);
  await t.throwsAsync(() => plain.notThrowsAsync(Promise.reject(new Error('x'))));
  await t.throwsAsync(() => plain.notThrowsAsync(() => Promise.reject(new Error('x'))));
  await plain.notThrowsAsync(Promise.resolve());
  const order: number[] = [];
  plain.teardown(() => order.push(1));
  plain.teardown(() => {
    order.push(2);
    throw new Error('teardown');
  });
  t.is((await plain.runTeardowns()).length, 1);
  t.deepEqual(order, [2, 1], 'teardowns run last first');
  t.is(plain.count, 8, 'every assertion counts, passed or failed');
});
