// The vault browser (examples/web) in headless Chromium, served by the example's
// own page server and proxy, against a real e2ekv-server process: a person
// creates a vault, writes, locks and unlocks, adds a Node device that writes
// while the page watches, and a second browser joins by pasting the access.
// Throughout, nothing the page decrypts may leave it in clear.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { createClient, createIdentity, publicIdentity } from 'e2ekv';
import { buildPage, startPageServer, type PageServer } from '../examples/web/page-server.js';
import { formatDevice, parseAccess, renderValue } from '../examples/web/format.js';
import { startServerProcess, tempDir, type ServerProcess } from '../server/test/support/process.js';
import { CHROMIUM, CHROMIUM_ARGS, allowKeptNames, skipWithoutChromium } from './support/browser.js';

const PASSPHRASE = 'a test passphrase, long enough for the page';
// Random per run, so that a match anywhere can only have come from this test.
const CANARY = `canary-${crypto.randomUUID()}`;
const CANARY_KEY = 'secret/token';

interface Sent {
  page: string;
  method: string;
  url: string;
  body: Buffer | null;
}

/** Everything that would mean the page misbehaved, collected from every page. */
class Watcher {
  readonly problems: string[] = [];
  readonly refusals: string[] = [];
  readonly sent: Sent[] = [];

  attach(page: Page, label: string): void {
    page.on('pageerror', (error) => this.problems.push(`${label} pageerror: ${error.message}`));
    page.on('console', (message) => {
      // Chromium logs every 4xx as "Failed to load resource"; `refusals` accounts for those.
      if (message.type() === 'error' && !message.text().startsWith('Failed to load resource:')) {
        this.problems.push(`${label} console.error: ${message.text()}`);
      }
    });
    page.on('requestfailed', (request) => {
      const failure = request.failure()?.errorText ?? '';
      // Lock and closing a page abort the watch stream: that is how it stops.
      if (new URL(request.url()).pathname.endsWith('/events') && failure === 'net::ERR_ABORTED') return;
      this.problems.push(`${label} request failed: ${request.method()} ${request.url()} ${failure}`);
    });
    page.on('response', (response) => {
      if (response.status() >= 400) {
        this.refusals.push(`${response.status()} ${response.request().method()} ${new URL(response.url()).pathname}`);
      }
    });
    page.on('request', (request) => {
      this.sent.push({ page: label, method: request.method(), url: request.url(), body: request.postDataBuffer() });
    });
  }
}

async function openPage(context: BrowserContext, watcher: Watcher, label: string, url: string): Promise<Page> {
  const page = await context.newPage();
  page.setDefaultTimeout(30_000);
  watcher.attach(page, label);
  await allowKeptNames(page);
  await page.goto(url);
  return page;
}

/** Waits until the action the last click started has finished (the page marks itself busy). */
async function idle(page: Page): Promise<void> {
  await page.waitForSelector('body:not([aria-busy])', { state: 'attached' });
}

async function status(page: Page): Promise<string> {
  return (await page.textContent('#status')) ?? '';
}

async function keys(page: Page): Promise<string[]> {
  return page.locator('#keys button').allTextContents();
}

async function waitForKeys(page: Page, expected: readonly string[], timeout = 30_000): Promise<void> {
  try {
    await page.waitForFunction(
      (want) => JSON.stringify([...document.querySelectorAll('#keys button')].map((b) => b.textContent)) === want,
      JSON.stringify(expected),
      { timeout },
    );
  } catch (error) {
    throw new Error(`the page lists ${JSON.stringify(await keys(page))}, not ${JSON.stringify(expected)}`, {
      cause: error,
    });
  }
}

async function setKey(page: Page, name: string, value: string, type: 'json' | 'text' | 'hex'): Promise<void> {
  await page.fill('#set-key', name);
  await page.fill('#set-value', value);
  await page.selectOption('#set-type', type);
  await page.click('#set-button');
  await idle(page);
  const said = await status(page);
  if (said !== `Saved “${name}”.`) throw new Error(`setting ${name}: the page says ${said}`);
}

async function openKey(page: Page, name: string): Promise<{ kind: string; value: string }> {
  await page.locator('#keys button', { hasText: name }).first().click();
  await page.waitForFunction((want) => document.querySelector('#detail-key')?.textContent === want, name);
  return {
    kind: (await page.textContent('#detail-kind')) ?? '',
    value: (await page.textContent('#detail-value')) ?? '',
  };
}

test('the web example: create, write, lock, unlock, live updates from another device, join; nothing leaves in clear', async (t) => {
  if (skipWithoutChromium(t)) return;
  const started = Date.now();
  const built = await buildPage();
  t.deepEqual(
    built.inputs.filter((i) => i.startsWith('node:')),
    [],
    'no node: module reached the page bundle',
  );
  t.true(
    built.inputs.some((i) => i.startsWith('sdk/src/')),
    'the page bundles the SDK from its sources',
  );

  const data = await tempDir();
  const watcher = new Watcher();
  let replica: ServerProcess | undefined;
  let pageServer: PageServer | undefined;
  let browser: Browser | undefined;
  try {
    replica = await startServerProcess(data.dir);
    pageServer = await startPageServer({ page: built, replicaUrl: replica.url });
    const url = pageServer.url;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    const contextA = await browser.newContext();
    const a = await openPage(contextA, watcher, 'A', url);
    let navigations = 0;
    a.on('framenavigated', (frame) => {
      if (frame === a.mainFrame()) navigations++;
    });

    // ---- create -----------------------------------------------------------------
    await a.locator('#setup').waitFor();
    await a.fill('#new-passphrase', 'too short');
    await a.click('#create');
    await idle(a);
    t.regex(await status(a), /12 characters or more/);
    t.true(await a.locator('#setup').isVisible(), 'a short passphrase creates nothing');
    t.is(await a.evaluate(() => localStorage.length), 0);

    let step = Date.now();
    await a.fill('#new-passphrase', PASSPHRASE);
    await a.click('#create');
    await idle(a);
    await a.locator('#vault').waitFor();
    t.log(`create (vault on the replica, keystore sealed with scrypt): ${Date.now() - step} ms`);
    const vaultId = (await a.textContent('#vault-id')) ?? '';
    const deviceA = (await a.textContent('#device-id')) ?? '';
    t.regex(vaultId, /^[0-9a-f]{64}$/);
    t.regex(deviceA, /^[0-9a-f]{64}$/);
    t.true(await a.locator('#lock').isVisible());

    // ---- write, list, read, filter, delete -----------------------------------------
    const profile = { name: 'Ada', langs: ['en', 'fr'], n: 1815 };
    const markup = '<img src=x onerror="document.title=\'pwned\'">';
    await setKey(a, 'profile', JSON.stringify(profile), 'json');
    await setKey(a, CANARY_KEY, CANARY, 'text');
    await setKey(a, 'notes/<b>bold</b>', markup, 'text');
    await setKey(a, 'files/blob', '00 01 fe ff', 'hex');
    await waitForKeys(a, ['files/blob', 'notes/<b>bold</b>', 'profile', CANARY_KEY]);

    t.deepEqual(await openKey(a, 'profile'), { kind: 'JSON', value: JSON.stringify(profile, null, 2) });
    t.deepEqual(await openKey(a, 'files/blob'), { kind: 'bytes, 4 bytes', value: '00 01 fe ff' });
    t.deepEqual(await openKey(a, 'notes/<b>bold</b>'), { kind: 'text', value: markup });
    // Key names and values are text, never markup.
    t.is(await a.locator('#keys b, #detail img, #detail b').count(), 0);
    t.not(await a.title(), 'pwned');

    await a.fill('#prefix', 'secret/');
    await waitForKeys(a, [CANARY_KEY]);
    await a.fill('#prefix', '');
    await waitForKeys(a, ['files/blob', 'notes/<b>bold</b>', 'profile', CANARY_KEY]);

    await openKey(a, 'notes/<b>bold</b>');
    await a.click('#delete');
    await idle(a);
    t.is(await status(a), 'Deleted “notes/<b>bold</b>”.');
    await waitForKeys(a, ['files/blob', 'profile', CANARY_KEY]);
    t.true(await a.locator('#detail').isHidden());

    // ---- lock, wrong passphrase, unlock ------------------------------------------------
    t.deepEqual(await openKey(a, CANARY_KEY), { kind: 'text', value: CANARY });
    await a.click('#lock');
    await a.locator('#unlock').waitFor();
    t.true(await a.locator('#vault').isHidden());
    // Neither in the markup nor in a form field's value (which the markup does not show).
    const leftOver = (text: string) =>
      a.evaluate(
        (needle) =>
          document.documentElement.outerHTML.includes(needle) ||
          [...document.querySelectorAll('input, textarea')].some((field) =>
            (field as HTMLInputElement | HTMLTextAreaElement).value.includes(needle),
          ),
        text,
      );
    t.false(await leftOver(CANARY), 'Lock leaves no decrypted value in the page');
    t.false(await leftOver(CANARY_KEY), 'nor a key name');
    t.false(await leftOver(vaultId), 'nor the vault id');

    step = Date.now();
    await a.fill('#passphrase', 'not the passphrase at all');
    await a.click('#unlock-button');
    await idle(a);
    t.log(`wrong passphrase refused in ${Date.now() - step} ms`);
    t.is(await status(a), 'Wrong passphrase. Nothing was unlocked.');
    t.true(await a.locator('#unlock').isVisible());
    t.true(await a.locator('#vault').isHidden());

    step = Date.now();
    await a.fill('#passphrase', PASSPHRASE);
    await a.click('#unlock-button');
    await idle(a);
    await a.locator('#vault').waitFor();
    t.log(`unlock (scrypt, then the vault synced from the replica): ${Date.now() - step} ms`);
    t.is(await a.textContent('#vault-id'), vaultId);
    t.is(await a.textContent('#device-id'), deviceA);
    // Nothing is kept in the page between sessions but the sealed keystore: this came from the replica.
    await waitForKeys(a, ['files/blob', 'profile', CANARY_KEY]);
    t.deepEqual(await openKey(a, CANARY_KEY), { kind: 'text', value: CANARY });

    // ---- a Node device joins and writes; the page shows it live ------------------------------
    const nodeIdentity = createIdentity();
    await a.click('#devices summary');
    await a.fill('#add-device', formatDevice(publicIdentity(nodeIdentity)));
    await a.selectOption('#add-role', 'writer');
    await a.click('#add-button');
    await idle(a);
    t.regex(await status(a), /^Added device [0-9a-f]{16}… as writer/);

    t.true(await a.locator('#access-text').isHidden(), 'the access secret is hidden until asked for');
    t.is(await a.inputValue('#access-text'), '');
    await a.click('#export summary');
    await a.click('#show-access');
    const accessText = await a.inputValue('#access-text');
    await a.click('#hide-access');
    t.is(await a.inputValue('#access-text'), '', 'Hide drops the access text');
    const access = parseAccess(accessText);
    t.is(access.vaultId, vaultId);

    const nodeClient = await createClient({ identity: nodeIdentity, servers: [replica.url] });
    const nodeVault = await nodeClient.openVault(access);
    t.is(await nodeVault.get(CANARY_KEY), CANARY, 'Node decrypts what the page wrote');
    t.deepEqual(await nodeVault.get('profile'), profile);
    t.deepEqual(await nodeVault.get('files/blob'), Uint8Array.of(0, 1, 0xfe, 0xff));

    step = Date.now();
    await nodeVault.set('from-node', { hello: 'page' });
    await waitForKeys(a, ['files/blob', 'from-node', 'profile', CANARY_KEY], 15_000);
    t.log(`a write from Node reached the page by its watch in ${Date.now() - step} ms`);
    t.deepEqual(await openKey(a, 'from-node'), { kind: 'JSON', value: JSON.stringify({ hello: 'page' }, null, 2) });

    // Concurrent writes: Node writes without pushing, the page writes, then Node syncs.
    await nodeVault.set('shared', { from: 'node' }, { ack: 'local' });
    await setKey(a, 'shared', 'from the page', 'text');
    await nodeVault.sync();
    await a.waitForFunction(() => document.querySelector('#siblings-title')?.textContent === '2 concurrent values');
    t.true(await a.locator('#siblings').isVisible());
    const winner = await nodeVault.get('shared');
    t.is(
      await a.textContent('#detail-value'),
      renderValue(winner, 'json').text,
      'the page and Node pick the same winner',
    );
    t.deepEqual(
      (await a.locator('#sibling-list pre').allTextContents()).sort(),
      ['from the page', JSON.stringify({ from: 'node' }, null, 2)].sort(),
    );
    await setKey(a, 'shared', 'settled', 'text');
    await a.waitForFunction(() => document.querySelector('#detail-value')?.textContent === 'settled');
    t.true(await a.locator('#siblings').isHidden(), 'a new write replaces the siblings');
    t.is(navigations, 0, 'all of it without reloading the page');

    // ---- a second tab of the same browser may not open the same device ------------------------
    const a2 = await openPage(contextA, watcher, 'A2', url);
    await a2.locator('#unlock').waitFor();
    await a2.fill('#passphrase', PASSPHRASE);
    await a2.click('#unlock-button');
    await idle(a2);
    t.regex(await status(a2), /open in another tab/);
    t.true(await a2.locator('#vault').isHidden());
    await a2.close();

    // ---- a second browser joins with the access and waits to be added -----------------------
    const contextB = await browser.newContext();
    const b = await openPage(contextB, watcher, 'B', url);
    await b.locator('#setup').waitFor();
    await b.click('#join-details summary');
    await b.fill('#join-access', accessText);
    await b.fill('#new-passphrase', 'another long passphrase for device B');
    await b.click('#join');
    await idle(b);
    await b.locator('#pending').waitFor();
    t.is(await b.textContent('#pending-vault-id'), vaultId);
    const deviceBText = await b.inputValue('#pending-device');
    t.notRegex(deviceBText, new RegExp(deviceA), 'B has a key of its own');

    await a.fill('#add-device', deviceBText);
    await a.selectOption('#add-role', 'reader');
    await a.click('#add-button');
    await idle(a);
    t.regex(await status(a), /as reader/);

    await b.click('#retry');
    await idle(b);
    await b.locator('#vault').waitFor();
    t.is(await b.textContent('#vault-id'), vaultId);
    t.not(await b.textContent('#device-id'), deviceA);
    await waitForKeys(b, ['files/blob', 'from-node', 'profile', CANARY_KEY, 'shared']);
    t.deepEqual(await openKey(b, CANARY_KEY), { kind: 'text', value: CANARY });
    await b.click('#lock');
    b.once('dialog', (dialog) => void dialog.accept());
    await b.click('#forget');
    await b.locator('#setup').waitFor();
    t.is(await b.evaluate(() => localStorage.getItem('e2ekv-keystore')), null, 'Forget removes the keystore');

    // ---- the page's policy is in force --------------------------------------------------------
    // A separate page, unwatched: the refusal is reported as a console error by design.
    const probe = await contextA.newPage();
    await probe.goto(url);
    t.is(
      await probe.evaluate(() => {
        try {
          document.createElement('div').innerHTML = '<b>x</b>';
          return 'innerHTML accepted a string';
        } catch (error) {
          return (error as Error).name;
        }
      }),
      'TypeError',
      'Trusted Types make innerHTML with a string throw',
    );
    await probe.close();

    // ---- nothing left the page in clear ---------------------------------------------------------
    const keystore = (await a.evaluate(() => localStorage.getItem('e2ekv-keystore'))) ?? '';
    t.regex(keystore, /^\{"e2ekv-keystore":1,/);
    const secrets: [string, Buffer][] = [
      ['the canary value', Buffer.from(CANARY)],
      ['the canary key name', Buffer.from(CANARY_KEY)],
      ['a value the page wrote', Buffer.from('from the page')],
      ['the passphrase', Buffer.from(PASSPHRASE)],
      ['the access secret', Buffer.from(access.secret)],
      ['the access secret in base64', Buffer.from(Buffer.from(access.secret).toString('base64'))],
      ['the access secret in hex', Buffer.from(Buffer.from(access.secret).toString('hex'))],
    ];
    for (const [what, bytes] of secrets.slice(0, 5)) {
      t.false(keystore.includes(bytes.toString('latin1')), `${what} is not in the sealed keystore in clear`);
    }
    const origin = new URL(url).origin;
    const appends = watcher.sent.filter((s) => s.method === 'POST' && s.url.endsWith('/append'));
    t.true(appends.length >= 8, `the page sent its writes (${appends.length} appends)`);
    t.true(
      appends.every((s) => s.body !== null && s.body.length > 0),
      'the request bodies were captured',
    );
    t.deepEqual(
      watcher.sent.filter((s) => !s.url.startsWith(origin + '/')).map((s) => s.url),
      [],
      'the pages talked to their own origin only',
    );
    for (const [what, bytes] of secrets) {
      t.deepEqual(
        watcher.sent
          .filter((s) => s.body?.includes(bytes) === true || s.url.includes(bytes.toString('latin1')))
          .map((s) => `${s.page} ${s.method} ${s.url}`),
        [],
        `${what} is in no request the pages sent`,
      );
    }
    // And the replica holds none of it either (its database, write-ahead log and key).
    for (const file of await readdir(data.dir, { recursive: true })) {
      const content = await readFile(path.join(data.dir, file)).catch(() => undefined);
      if (content === undefined) continue;
      for (const [what, bytes] of secrets) t.false(content.includes(bytes), `${what} is not in the replica's ${file}`);
    }

    t.deepEqual(
      watcher.refusals.filter((r) => r !== `403 GET /v1/vaults/${vaultId}`),
      [],
      'no refusal but the replica keeping B out until it was added',
    );
    t.true(watcher.refusals.length > 0, 'B was refused before it was added');
    t.deepEqual(watcher.problems, [], 'no page errors, console errors or failed requests');
    t.log(`whole test: ${Date.now() - started} ms`);
  } finally {
    await browser?.close();
    await pageServer?.close();
    if (replica !== undefined) {
      const code = await replica.stop();
      if (code !== 0) t.log(`replica exited with ${code}:\n${replica.stderr()}`);
    }
    await data.remove();
  }
});
