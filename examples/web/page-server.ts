/**
 * Builds the vault browser and serves it: the page's three files, and /v1/*
 * reverse-proxied to one replica. The replica sends no CORS headers, so the page
 * reaches it through its own origin; and the SDK signs the exact path and query
 * of each request, so the proxy passes them on untouched.
 */
import { readFile } from 'node:fs/promises';
import http, { type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = path.dirname(fileURLToPath(import.meta.url));

export interface PageFile {
  type: string;
  body: string;
}

export interface Page {
  /** By URL path. */
  files: Map<string, PageFile>;
  /** The source files in the bundle, for checks. */
  inputs: string[];
}

/** Bundles app.ts with the SDK from its sources (the e2ekv-source condition), for browsers. */
export async function buildPage(): Promise<Page> {
  const result = await build({
    entryPoints: [path.join(here, 'app.ts')],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    conditions: ['e2ekv-source'],
    metafile: true,
    logLevel: 'silent',
  });
  const [html, css] = await Promise.all([
    readFile(path.join(here, 'index.html'), 'utf8'),
    readFile(path.join(here, 'style.css'), 'utf8'),
  ]);
  return {
    files: new Map([
      ['/', { type: 'text/html; charset=utf-8', body: html }],
      ['/app.js', { type: 'text/javascript; charset=utf-8', body: result.outputFiles[0]!.text }],
      ['/style.css', { type: 'text/css; charset=utf-8', body: css }],
    ]),
    inputs: Object.keys(result.metafile.inputs),
  };
}

/** The page's policy (as in index.html) plus what only a header can say. */
const PAGE_HEADERS: OutgoingHttpHeaders = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cache-control': 'no-store',
};

// Headers of one connection, not of the request (RFC 9110 section 7.6.1).
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

function endToEnd(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  // A Connection header may name more headers that are for this hop only.
  const named = new Set(
    String(headers.connection ?? '')
      .split(',')
      .map((name) => name.trim().toLowerCase()),
  );
  return Object.fromEntries(Object.entries(headers).filter(([name]) => !HOP_BY_HOP.has(name) && !named.has(name)));
}

function proxy(upstream: URL, req: http.IncomingMessage, res: http.ServerResponse): void {
  const forwarded = http.request(
    {
      hostname: upstream.hostname,
      port: upstream.port,
      method: req.method,
      // The raw request target: the SDK signed exactly these bytes of path and query.
      path: req.url,
      headers: { ...endToEnd(req.headers), host: upstream.host },
    },
    (answer) => {
      res.writeHead(answer.statusCode ?? 502, endToEnd(answer.headers));
      // Streamed, so that the events route (server-sent events) reaches the page as it happens.
      answer.pipe(res);
    },
  );
  forwarded.on('error', (error) => {
    if (res.headersSent) {
      res.destroy(error);
      return;
    }
    res.writeHead(502, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { code: 'UNAVAILABLE', message: `the page server's proxy: ${error.message}` } }));
  });
  // The page went away or stopped watching: close the upstream stream too, or it stays open on the replica.
  res.on('close', () => forwarded.destroy());
  req.pipe(forwarded);
}

export interface PageServer {
  url: string;
  close(): Promise<void>;
}

export async function startPageServer(options: {
  page: Page;
  replicaUrl: string;
  host?: string;
  port?: number;
}): Promise<PageServer> {
  const upstream = new URL(options.replicaUrl);
  if (upstream.protocol !== 'http:') throw new Error('the page server proxies to an http:// replica only');
  const server = http.createServer((req, res) => {
    const target = req.url ?? '/';
    if (target === '/v1' || target.startsWith('/v1/') || target.startsWith('/v1?')) {
      proxy(upstream, req, res);
      return;
    }
    const file = options.page.files.get(new URL(target, 'http://page').pathname);
    if ((req.method !== 'GET' && req.method !== 'HEAD') || file === undefined) {
      res.writeHead(file === undefined ? 404 : 405, { 'content-type': 'text/plain; charset=utf-8', ...PAGE_HEADERS });
      res.end(file === undefined ? 'not found\n' : 'method not allowed\n');
      return;
    }
    res.writeHead(200, { 'content-type': file.type, ...PAGE_HEADERS });
    res.end(req.method === 'HEAD' ? undefined : file.body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const address = server.address() as AddressInfo;
  return {
    url: `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}/`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
