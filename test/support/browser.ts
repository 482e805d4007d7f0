// A harness for tests that run code in headless Chromium (playwright-core and
// Debian's /usr/bin/chromium): bundle TypeScript for the page with esbuild, and
// serve the page from a local express server that also reverse-proxies /v1/* to
// a real replica. The replica sends no CORS headers, so the page talks to its
// own origin, and the request paths the SDK signs are exactly the paths the
// replica sees.
import { existsSync } from 'node:fs';
import http, { type IncomingHttpHeaders } from 'node:http';
import path from 'node:path';
import { build, type Metafile } from 'esbuild';
import type { ExecutionContext } from 'ava';
import type { Page } from 'playwright-core';
import express from 'express';
import { repoRoot } from './paths.js';

export const CHROMIUM = '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

export interface Bundle {
  text: string;
  inputs: string[];
}

/** Bundles a workspace file (path from the repository root) for the page, from sources. */
export async function bundle(entry: string): Promise<Bundle> {
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
  const metafile: Metafile = result.metafile;
  return { text: result.outputFiles[0]!.text, inputs: Object.keys(metafile.inputs) };
}

// Request headers that belong to one connection, not to the request (RFC 9110 7.6.1).
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

function endToEnd(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  return Object.fromEntries(Object.entries(headers).filter(([name]) => !HOP_BY_HOP.has(name.toLowerCase())));
}

/** The page's own server: /app/* (page and bundles), and /v1/* proxied to the replica byte for byte. */
export async function startPageServer(replicaUrl: string, files: Record<string, string>): Promise<http.Server> {
  const upstream = new URL(replicaUrl);
  const app = express();
  app.disable('x-powered-by');
  for (const [name, text] of Object.entries(files)) {
    const type = name.endsWith('.html') ? 'text/html; charset=utf-8' : 'text/javascript; charset=utf-8';
    app.get(`/app/${name}`, (_req, res) => {
      res.type(type).send(text);
    });
  }
  // Same method, path and query (originalUrl keeps the /v1 mount path), headers
  // including Authorization, and body, streamed both ways (the events route is a stream).
  app.use('/v1', (req, res) => {
    const forwarded = http.request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.originalUrl,
        headers: { ...endToEnd(req.headers), host: upstream.host },
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, endToEnd(answer.headers));
        answer.pipe(res);
      },
    );
    forwarded.on('error', (error) => {
      if (res.headersSent) res.destroy(error);
      else res.status(502).json({ error: { code: 'UNAVAILABLE', message: `proxy: ${error.message}` } });
    });
    req.pipe(forwarded);
  });
  const server = http.createServer(app);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return server;
}

export async function closeServer(server: http.Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

export const chromiumPresent = existsSync(CHROMIUM);
export const inCi = process.env['CI'] !== undefined && process.env['CI'] !== '';
/** Browser tests skip on a machine without Chromium, never in CI (which installs it). */
export const chromiumSkipped = !chromiumPresent && !inCi;

/** Passes the test with a logged reason, and returns true, when browser tests are skipped here. */
export function skipWithoutChromium(t: ExecutionContext): boolean {
  if (!chromiumSkipped) return false;
  t.log(`SKIPPED: ${CHROMIUM} is not installed (apt-get install chromium); CI installs it and runs this test`);
  t.pass();
  return true;
}

/**
 * Collects what goes wrong in a page: uncaught errors, console errors (except
 * "Failed to load resource", which is how Chromium logs any answer of 400 and
 * above: tests judge those themselves), and requests that failed.
 */
export function collectPageErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(`pageerror: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource:')) {
      errors.push(`console.error: ${message.text()}`);
    }
  });
  page.on('requestfailed', (request) =>
    errors.push(`request failed: ${request.method()} ${request.url()} ${request.failure()?.errorText ?? ''}`),
  );
  return errors;
}

/**
 * tsx compiles test files with esbuild's keepNames, which wraps the named
 * functions inside page.evaluate callbacks in __name(): give the page one.
 * Call before the page's first navigation.
 */
export async function allowKeptNames(page: Page): Promise<void> {
  await page.addInitScript('globalThis.__name = (fn) => fn;');
}
