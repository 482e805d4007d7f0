/**
 * ReplicaTransport's Node path (node:http with keep-alive agents, used when the
 * caller passes no fetch): timeouts, connections that close, refusals mapped
 * to codes, redirects, TLS verification, keep-alive reuse, close().
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createServer as createHttpsServer } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  ed25519PublicKeyFromSeed,
  formatCosignerVkey,
  randomBytes,
  toBase64,
  toHex,
  type Ed25519Signer,
} from '@e2ekv/protocol';
import { ReplicaError, ReplicaTransport } from '../src/transport.js';
import { createClient, createIdentity } from '../src/index.js';
import { tempDir } from '../../server/test/support/process.js';
import { TestDevice } from '../../server/test/support/writer.js';
import { listen } from '../../test/support/listen.js';
import { rejects } from './support/helpers.js';

const here = path.dirname(fileURLToPath(import.meta.url));

function fakeInfo() {
  const publicKey = ed25519PublicKeyFromSeed(new Uint8Array(32).fill(7));
  return {
    name: 'fake',
    version: '0',
    protocolVersions: [1],
    cosigner: {
      name: 'replica.test/w',
      publicKey: toBase64(publicKey),
      vkey: formatCosignerVkey('replica.test/w', publicKey),
    },
    limits: { maxBatchEntries: 8 },
  };
}

function json(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** A fake replica: /v1/info answers, everything else goes to `handle`; counts connections and requests. */
async function fakeReplica(
  handle: (req: IncomingMessage, res: ServerResponse) => void = (_, res) => json(res, 404, {}),
) {
  const stats = { requests: [] as { url: string; authorization: string | undefined }[] };
  const server = await listen((req, res) => {
    stats.requests.push({ url: req.url ?? '', authorization: req.headers.authorization });
    if (req.url === '/v1/info') json(res, 200, fakeInfo());
    else handle(req, res);
  });
  return { ...server, stats };
}

function transport(url: string, signer: Ed25519Signer, timeoutMs?: number) {
  return new ReplicaTransport({ url, signer, ...(timeoutMs === undefined ? {} : { timeoutMs }) });
}

/** A server on 127.0.0.1:0 that reports its connections (for keep-alive and close checks). */
async function connectionServer(handler: (req: IncomingMessage, res: ServerResponse) => void) {
  const { createServer } = await import('node:http');
  const sockets = new Set<Socket>();
  let connections = 0;
  const server = createServer((req, res) => {
    if (req.url === '/v1/info') json(res, 200, fakeInfo());
    else handler(req, res);
  });
  server.on('connection', (socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    connections: () => connections,
    open: () => sockets.size,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function until(condition: () => boolean, ms = 3000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (condition()) return true;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return condition();
}

test('requests reuse one keep-alive connection, and close() releases it', async (t) => {
  const device = await TestDevice.create();
  const vaultId = randomBytes(32);
  const server = await connectionServer((_, res) => json(res, 200, { vaultId: toHex(vaultId) }));
  try {
    const replica = transport(server.url, device.signer);
    for (let i = 0; i < 5; i++) await replica.createVault(randomBytes(100));
    // Sequential requests: one connection carried the info request and all five creates.
    t.is(server.connections(), 1);
    t.is(server.open(), 1);
    replica.close();
    t.true(replica.closed);
    t.true(await until(() => server.open() === 0), 'the idle socket is closed');
    const after = await rejects(t, replica.createVault(randomBytes(100)));
    t.is(after.code, 'UNAVAILABLE');
    t.regex(after.message, /was closed/);
    t.is(server.connections(), 1, 'no request after close');
    replica.close(); // twice is fine
  } finally {
    await server.close();
  }
});

test('Client.close() closes every replica connection', async (t) => {
  const a = await connectionServer((_, res) => json(res, 404, { error: { code: 'NOT_FOUND', message: 'no vault' } }));
  const b = await connectionServer((_, res) => json(res, 404, { error: { code: 'NOT_FOUND', message: 'no vault' } }));
  try {
    const client = await createClient({ identity: createIdentity(), servers: [a.url, b.url] });
    const error = await rejects(t, client.openVault({ vaultId: toHex(randomBytes(32)), secret: randomBytes(32) }));
    t.is(error.code, 'NOT_FOUND');
    t.true(a.connections() >= 1 && b.connections() >= 1);
    client.close();
    t.true(await until(() => a.open() === 0 && b.open() === 0));
  } finally {
    await a.close();
    await b.close();
  }
});

test('an idle keep-alive connection does not keep a Node process alive', async (t) => {
  const server = await connectionServer(() => undefined);
  try {
    const script = path.join(here, 'fixtures', 'transport-node-exit.ts');
    const started = Date.now();
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import=tsx/esm', '--conditions=e2ekv-source', script, server.url],
      { timeout: 20_000 },
    );
    t.is(stdout.trim(), 'info fake');
    // Node's server keeps the idle connection for 5 s: the child left before that.
    t.true(server.connections() === 1);
    t.true(Date.now() - started < 20_000);
  } finally {
    await server.close();
  }
});

test('timeouts: no answer, and an answer whose body never ends, are UNAVAILABLE', async (t) => {
  const device = await TestDevice.create();
  const silent = await listen(() => undefined);
  const trickle = await listen((_, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000' });
    res.write('{"name":');
  });
  try {
    const started = Date.now();
    const timedOut = await rejects(t, transport(silent.url, device.signer, 300).info());
    t.is(timedOut.code, 'UNAVAILABLE');
    t.regex(timedOut.message, /did not answer: no answer within 300 ms/);
    const cut = await rejects(t, transport(trickle.url, device.signer, 300).info());
    t.is(cut.code, 'UNAVAILABLE');
    t.regex(cut.message, /no answer within 300 ms/);
    t.true(Date.now() - started < 5000);
  } finally {
    await silent.close();
    await trickle.close();
  }
});

test('a replica that closes the connection, before or during its answer, is UNAVAILABLE', async (t) => {
  const device = await TestDevice.create();
  const hangUp = await listen((req) => req.socket.destroy());
  const midBody = await listen((_, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000' });
    res.write('{"name":', () => res.socket?.destroy());
  });
  const refused = await listen(() => undefined);
  const refusedUrl = refused.url;
  await refused.close();
  try {
    for (const url of [hangUp.url, midBody.url, refusedUrl]) {
      const error = await rejects(t, transport(url, device.signer).info());
      t.is(error.code, 'UNAVAILABLE', url);
      t.regex(error.message, /^replica http:\/\/127\.0\.0\.1:\d+ did not answer: /);
    }
  } finally {
    await hangUp.close();
    await midBody.close();
  }
});

test('a reused connection the server closed meanwhile is retried once on a new one', async (t) => {
  const device = await TestDevice.create();
  let vaultRequests = 0;
  const server = await connectionServer((req, res) => {
    vaultRequests++;
    // The second vault request arrives on the kept connection: drop it unanswered, as a server
    // closing an idle connection does when a request crosses its close.
    if (vaultRequests === 2) req.socket.destroy();
    else json(res, 200, { vaultId: toHex(randomBytes(32)) });
  });
  try {
    const replica = transport(server.url, device.signer);
    await replica.createVault(randomBytes(10));
    await replica.createVault(randomBytes(10));
    t.is(vaultRequests, 3);
    t.is(server.connections(), 2);
    replica.close();
  } finally {
    await server.close();
  }
});

test('non-2xx answers map to the same codes as through fetch', async (t) => {
  const device = await TestDevice.create();
  const vaultId = toHex(randomBytes(32));
  const answers: Record<string, (res: ServerResponse) => void> = {
    conflict: (res) =>
      json(res, 409, { error: { code: 'CONFLICT', message: 'x'.repeat(600), details: { expected: 2, nested: {} } } }),
    gateway: (res) => {
      res.writeHead(502, { 'content-type': 'text/html' });
      res.end('<html>bad gateway</html>');
    },
    unknownCode: (res) => json(res, 409, { error: { code: 'NO_SUCH_CODE', message: 'x' } }),
    notJson: (res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('not json');
    },
    badUtf8: (res) => {
      res.writeHead(200);
      res.end(Buffer.from([0x22, 0xff, 0x22]));
    },
    gzipRefusal: (res) => {
      const { gzipSync } = process.getBuiltinModule('node:zlib');
      res.writeHead(403, { 'content-encoding': 'gzip', 'content-type': 'application/json' });
      res.end(gzipSync(JSON.stringify({ error: { code: 'PERMISSION_DENIED', message: 'no' } })));
    },
  };
  let next = 'conflict';
  const server = await fakeReplica((_, res) => answers[next]!(res));
  try {
    const replica = transport(server.url, device.signer);
    next = 'conflict';
    const conflict = await rejects(t, replica.vaultState(vaultId));
    t.true(conflict instanceof ReplicaError);
    t.is(conflict.code, 'CONFLICT');
    t.is((conflict as ReplicaError).status, 409);
    t.deepEqual(conflict.details, { expected: 2 });
    t.true(conflict.message.length < 600, 'the message is cut');
    next = 'gateway';
    const gateway = await rejects(t, replica.vaultState(vaultId));
    t.is(gateway.code, 'UNAVAILABLE');
    t.regex(gateway.message, /HTTP 502 without an e2ekv error/);
    next = 'unknownCode';
    t.regex((await rejects(t, replica.vaultState(vaultId))).message, /HTTP 409 without/);
    next = 'notJson';
    const malformed = await rejects(t, replica.vaultState(vaultId));
    t.is(malformed.code, 'INTEGRITY');
    next = 'badUtf8';
    t.is((await rejects(t, replica.checkpoint(vaultId, vaultId))).code, 'INTEGRITY');
    next = 'gzipRefusal';
    const denied = await rejects(t, replica.vaultState(vaultId));
    t.is(denied.code, 'PERMISSION_DENIED');
    t.is((denied as ReplicaError).status, 403);
    replica.close();
  } finally {
    await server.close();
  }
});

test('redirects are followed as fetch follows them; the signature does not go to another origin', async (t) => {
  const device = await TestDevice.create();
  const vaultId = toHex(randomBytes(32));
  const other = await fakeReplica((_, res) => json(res, 200, { vaultId }));
  const server = await fakeReplica((req, res) => {
    if (req.url?.endsWith('/there')) return json(res, 200, { vaultId });
    if (req.method === 'POST' && req.url === '/v1/vaults') {
      res.writeHead(307, { location: `${other.url}/v1/vaults` });
      return res.end();
    }
    if (req.url === '/v1/loop') {
      res.writeHead(302, { location: '/v1/loop' });
      return res.end();
    }
    res.writeHead(404);
    res.end();
  });
  try {
    const replica = transport(server.url, device.signer);
    // 307 keeps the method and body; crossing origins drops the Authorization header.
    const created = await replica.createVault(randomBytes(10));
    t.is(created.vaultId, vaultId);
    t.is(server.stats.requests.at(-1)?.url, '/v1/vaults');
    t.truthy(server.stats.requests.at(-1)?.authorization);
    t.is(other.stats.requests.at(-1)?.url, '/v1/vaults');
    t.is(other.stats.requests.at(-1)?.authorization, undefined);
    replica.close();
  } finally {
    await server.close();
    await other.close();
  }
});

test('too many redirects are UNAVAILABLE', async (t) => {
  const device = await TestDevice.create();
  let hops = 0;
  const server = await listen((_, res) => {
    hops++;
    res.writeHead(302, { location: '/v1/info' });
    res.end();
  });
  try {
    const error = await rejects(t, transport(server.url, device.signer).info());
    t.is(error.code, 'UNAVAILABLE');
    t.regex(error.message, /redirect count exceeded/);
    t.is(hops, 21);
  } finally {
    await server.close();
  }
});

test('https: a certificate no default CA signed is refused (UNAVAILABLE)', async (t) => {
  const { dir, remove } = await tempDir();
  try {
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    // prettier-ignore
    await promisify(execFile)('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
      '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert]);
    let requests = 0;
    const server = createHttpsServer({ cert: await readFile(cert), key: await readFile(key) }, (_, res) => {
      requests++;
      json(res, 200, fakeInfo());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const device = await TestDevice.create();
      const replica = transport(`https://127.0.0.1:${port}`, device.signer);
      const error = await rejects(t, replica.info());
      t.is(error.code, 'UNAVAILABLE');
      t.regex(error.message, /self[- ]signed|certificate/i);
      t.is(requests, 0);
      replica.close();
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  } finally {
    await remove();
  }
});

test('a caller-provided fetch is still the one used', async (t) => {
  const device = await TestDevice.create();
  let calls = 0;
  const replica = new ReplicaTransport({
    url: 'http://replica.test',
    signer: device.signer,
    fetch: async () => {
      calls++;
      return Response.json(fakeInfo());
    },
  });
  t.is((await replica.info()).name, 'fake');
  t.is(calls, 1);
});
