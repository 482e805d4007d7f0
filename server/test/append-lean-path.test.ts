/**
 * Device appends take a lean path past express's body parser and router
 * (app.ts) when they are plain requests. These check that it answers exactly as
 * the general path does, which still takes every other spelling: the same status,
 * headers and body for accepted and refused appends, the same limits, and that a
 * cut-off body leaves the server serving.
 */
import http from 'node:http';
import { gzipSync } from 'node:zlib';
import test from 'ava';
import { encodeAppendRequest, parseCosignerVkey, signRequest, toBase64, utf8 } from '@e2ekv/protocol';
import { info } from './support/client.js';
import { startServerProcess, tempDir } from './support/process.js';
import { TestDevice } from './support/writer.js';

interface RawReply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function raw(
  url: string,
  path: string,
  headers: Record<string, string>,
  chunks: readonly Uint8Array[],
): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const req = http.request(url + path, { method: 'POST', headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    for (const c of chunks) req.write(c);
    req.end();
  });
}

/** The answer's shape: status, header names other than per-request ones, and the error body or the answer's keys. */
function shape(reply: RawReply): unknown {
  const names = Object.keys(reply.headers)
    .filter((n) => !['date', 'x-request-id', 'keep-alive', 'connection'].includes(n))
    .sort();
  const body = JSON.parse(reply.body) as Record<string, unknown>;
  return {
    status: reply.status,
    type: reply.headers['content-type'],
    names,
    body: 'error' in body ? body : Object.keys(body),
  };
}

test('lean and general paths answer appends and refusals alike', async (t) => {
  const { dir, remove } = await tempDir();
  const server = await startServerProcess(dir);
  try {
    const audience = parseCosignerVkey((await info(server.url)).cosigner.vkey).publicKey;
    const device = await TestDevice.create();
    const { signedGenesis, vaultId } = await device.genesis();
    const create = utf8(JSON.stringify({ genesis: toBase64(signedGenesis) }));
    const created = await raw(
      server.url,
      '/v1/vaults',
      {
        'content-type': 'application/json',
        'content-length': String(create.length),
        authorization: await signRequest(device.signer, { audience, method: 'POST', path: '/v1/vaults', body: create }),
      },
      [create],
    );
    t.is(created.status, 201);
    const path = `/v1/vaults/${vaultId}/logs/${device.hex}/append`;
    const signed = async (body: Uint8Array, p = path) => ({
      'content-type': 'application/json',
      authorization: await signRequest(device.signer, { audience, method: 'POST', path: p, body }),
    });

    // Accepted: lean (Content-Length), then general (chunked; gzip; a query string).
    const replies: RawReply[] = [];
    let body = utf8(JSON.stringify(encodeAppendRequest(await device.nextAppend(vaultId))));
    replies.push(
      await raw(server.url, path, { ...(await signed(body)), 'content-length': String(body.length) }, [body]),
    );
    body = utf8(JSON.stringify(encodeAppendRequest(await device.nextAppend(vaultId))));
    replies.push(
      await raw(server.url, path, { ...(await signed(body)), 'transfer-encoding': 'chunked' }, [
        body.subarray(0, 100),
        body.subarray(100),
      ]),
    );
    body = utf8(JSON.stringify(encodeAppendRequest(await device.nextAppend(vaultId))));
    const gz = gzipSync(body);
    replies.push(
      await raw(
        server.url,
        path,
        { ...(await signed(body)), 'content-encoding': 'gzip', 'content-length': String(gz.length) },
        [gz],
      ),
    );
    body = utf8(JSON.stringify(encodeAppendRequest(await device.nextAppend(vaultId))));
    replies.push(
      await raw(
        server.url,
        `${path}?x=1`,
        { ...(await signed(body, `${path}?x=1`)), 'content-length': String(body.length) },
        [body],
      ),
    );
    for (const reply of replies) {
      t.deepEqual(shape(reply), shape(replies[0]!), reply.body);
      t.is(reply.status, 200);
      t.is(reply.headers['content-type'], 'application/json; charset=utf-8');
      t.is(Number(reply.headers['content-length']), Buffer.byteLength(reply.body));
      t.truthy(reply.headers['x-request-id']);
    }

    // Refused: the same status and body either way.
    const stale = utf8(JSON.stringify(encodeAppendRequest(await device.appendFrom(vaultId, 0))));
    const notJson = utf8('{"start":');
    const unsigned = () => Promise.resolve({ 'content-type': 'application/json' });
    const cases: [string, (b: Uint8Array) => Promise<Record<string, string>>, Uint8Array, number, string][] = [
      ['unsigned', unsigned, stale, 401, 'UNAUTHENTICATED'],
      ['stale start', signed, stale, 409, 'CONFLICT'],
      ['not JSON', signed, notJson, 400, 'MALFORMED'],
    ];
    for (const [what, headers, b, status, code] of cases) {
      const lean = await raw(server.url, path, { ...(await headers(b)), 'content-length': String(b.length) }, [b]);
      const general = await raw(server.url, path, { ...(await headers(b)), 'transfer-encoding': 'chunked' }, [b]);
      t.is(lean.status, status, what);
      t.is((JSON.parse(lean.body) as { error: { code: string } }).error.code, code, what);
      t.deepEqual(shape(lean), shape(general), what);
    }

    // Over the body limit: the general path refuses it (once it has been sent: express.raw drains it first).
    const big = new Uint8Array(17 * 1024 * 1024).fill(0x20);
    const tooLarge = await raw(
      server.url,
      path,
      { 'content-type': 'application/json', 'content-length': String(big.length) },
      [big],
    );
    t.is((JSON.parse(tooLarge.body) as { error: { code: string } }).error.code, 'TOO_LARGE');
    t.is(tooLarge.status, 413);

    // A body cut off half way: the server carries on.
    await new Promise<void>((resolve) => {
      const req = http.request(server.url + path, { method: 'POST', headers: { 'content-length': '1000' } });
      req.on('error', () => resolve());
      req.write('{"start":', () => setTimeout(() => (req.destroy(), resolve()), 50));
    });
    body = utf8(JSON.stringify(encodeAppendRequest(await device.nextAppend(vaultId))));
    const after = await raw(server.url, path, { ...(await signed(body)), 'content-length': String(body.length) }, [
      body,
    ]);
    t.is(after.status, 200);

    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    t.regex(metrics, /e2ekv_http_requests_total\{method="POST",route="append",status="200"\} 5/);
    t.regex(metrics, /e2ekv_appends_total 5/);
  } finally {
    await server.stop();
    await remove();
  }
});
