/**
 * ReplicaTransport against a real e2ekv-server process (signing, every route,
 * refusals mapped to codes), and against fake fetches for what a well-behaved
 * server never does (malformed answers, silence, split event streams).
 */
import test from 'ava';
import type { E2ekvError } from '@e2ekv/protocol';
import {
  decodeEntry,
  ed25519PublicKeyFromSeed,
  ed25519Verify,
  formatCosignerVkey,
  fromHex,
  parseAuthorization,
  parseCosignerVkey,
  randomBytes,
  requestSignatureInput,
  sha256,
  toBase64,
  toHex,
  verifyDeviceCheckpoint,
  type Ed25519Signer,
  type ErrorCode,
} from '@e2ekv/protocol';
import { ReplicaError, ReplicaTransport } from '../src/transport.js';
import { startServerProcess, tempDir, type ServerProcess } from '../../server/test/support/process.js';
import { TestDevice } from '../../server/test/support/writer.js';
import { listen } from '../../test/support/listen.js';
import { rejects } from './support/helpers.js';

let server: ServerProcess | undefined;
let removeDir: (() => Promise<void>) | undefined;

test.before(async () => {
  const { dir, remove } = await tempDir();
  removeDir = remove;
  server = await startServerProcess(dir);
});

test.after.always(async () => {
  await server?.stop();
  await removeDir?.();
});

function url(): string {
  if (server === undefined) throw new Error('the server did not start');
  return server.url;
}

function transport(signer: Ed25519Signer, options: { fetch?: typeof fetch; timeoutMs?: number } = {}) {
  return new ReplicaTransport({ url: url(), signer, ...options });
}

/** A device with a vault on the server holding `values` data entries (the first one with a blob). */
async function vaultWithEntries(values: number) {
  const device = await TestDevice.create();
  const replica = transport(device.signer);
  const { signedGenesis, vaultId } = await device.genesis();
  const created = await replica.createVault(signedGenesis);
  if (values > 0) {
    await replica.append(vaultId, await device.nextAppend(vaultId, { values: 1, blobBytes: 5000 }));
    if (values > 1) await replica.append(vaultId, await device.nextAppend(vaultId, { values: values - 1 }));
  }
  return { device, replica, vaultId, created, signedGenesis };
}

test('info is parsed, checked against its own vkey, and fetched once', async (t) => {
  const device = await TestDevice.create();
  let calls = 0;
  const counting: typeof fetch = (input, init) => {
    calls++;
    return fetch(input, init);
  };
  const replica = transport(device.signer, { fetch: counting });
  const [a, b] = await Promise.all([replica.info(), replica.info()]);
  t.is(a, b);
  t.is(calls, 1);
  t.is(a.name, 'e2ekv-server');
  t.deepEqual(a.protocolVersions, [1]);
  t.deepEqual(a.cosigner, parseCosignerVkey(a.vkey));
  t.is(a.limits.maxBatchEntries, 1024);
  t.is(typeof a.limits['maxBodyBytes'], 'number');
  await replica.info();
  t.is(calls, 1);
});

test('a device creates a vault, appends to it and reads every route back', async (t) => {
  const { device, replica, vaultId, created, signedGenesis } = await vaultWithEntries(0);
  t.true(created.created);
  t.is(created.vaultId, vaultId);
  const info = await replica.info();
  const id = fromHex(vaultId);

  const cosigned = await replica.append(vaultId, await device.nextAppend(vaultId, { values: 2, blobBytes: 5000 }));
  const verified = await verifyDeviceCheckpoint(cosigned, id, device.publicKey, [info.cosigner]);
  t.is(verified.checkpoint.size, 2n);
  t.is(verified.cosignatures.length, 1);

  const head = await replica.checkpoint(id, device.publicKey);
  t.is((await verifyDeviceCheckpoint(head, id, device.publicKey, [info.cosigner])).checkpoint.size, 2n);

  const all = await replica.entries(id, device.publicKey, 0, 10);
  t.deepEqual(all.entries, [...device.entries(vaultId)]);
  t.is(all.start, 0);
  t.deepEqual(all.consistencyProof, []);
  // The query string is part of what is signed: a proof request goes through.
  const tail = await replica.entries(vaultId, device.hex, 1, 2, 1);
  t.is(tail.entries.length, 1);
  t.deepEqual(tail.consistencyProof, device.tree(vaultId).consistencyProof(1, 2));

  const state = await replica.vaultState(id);
  t.deepEqual(
    state.logs.map((l) => ({ device: l.device, size: l.size })),
    [{ device: device.hex, size: 2 }],
  );
  t.deepEqual((await replica.members(id)).members, [{ device: device.hex, role: 'admin' }]);
  t.deepEqual(await replica.evidence(id), []);

  const entry = decodeEntry(device.entries(vaultId)[0]!);
  if (entry.type !== 'data' || entry.items[0]!.value.kind !== 'blob') throw new Error('expected a blob item');
  const blob = await replica.blob(id, toHex(entry.items[0]!.value.hash));
  t.deepEqual(sha256(blob), entry.items[0]!.value.hash);

  // Creating it again is not an error.
  t.deepEqual(state.genesis, signedGenesis);
  t.false((await replica.createVault(signedGenesis)).created);
});

test("refusals keep the replica's code, its message and its details", async (t) => {
  const { device, replica, vaultId } = await vaultWithEntries(2);

  const missing = await rejects(t, replica.vaultState(randomBytes(32)));
  t.is(missing.code, 'NOT_FOUND');
  t.true(missing.message.startsWith(`replica ${url()}: `), missing.message);
  t.true(missing instanceof ReplicaError);
  t.is((missing as ReplicaError).status, 404);
  t.is((missing as ReplicaError).replica, url());

  const stranger = await TestDevice.create();
  const denied = await rejects(t, transport(stranger.signer).entries(vaultId, device.hex, 0, 5));
  t.is(denied.code, 'PERMISSION_DENIED');

  // A signer whose signatures are not by the key it names.
  const impostor: Ed25519Signer = { publicKey: device.publicKey, sign: (m) => stranger.signer.sign(m) };
  const unauthenticated = await rejects(t, transport(impostor).vaultState(vaultId));
  t.is(unauthenticated.code, 'UNAUTHENTICATED');

  // The replica holds 2 entries; an append from 0 conflicts and says where to start.
  const conflict = await rejects(t, replica.append(vaultId, await device.appendFrom(vaultId, 0)));
  t.is(conflict.code, 'CONFLICT');
  t.is(conflict.details['expected'], 2);
  t.is((conflict as ReplicaError).status, 409);

  const noEvents = await rejects(
    t,
    transport(stranger.signer).events(vaultId, () => undefined, new AbortController().signal),
  );
  t.is(noEvents.code, 'PERMISSION_DENIED');

  const badArgument = await rejects(t, replica.entries(vaultId, device.hex, 0, 5, 0));
  t.is(badArgument.code, 'INVALID_ARGUMENT');
});

test('a closed port and a silent replica are UNAVAILABLE', async (t) => {
  const device = await TestDevice.create();
  const closed = await listen(() => undefined);
  const closedUrl = closed.url;
  await closed.close();
  const refused = await rejects(t, new ReplicaTransport({ url: closedUrl, signer: device.signer }).info());
  t.is(refused.code, 'UNAVAILABLE');
  t.regex(refused.message, /^replica http:\/\/127\.0\.0\.1:\d+ did not answer: /);

  const silent = await listen(() => undefined); // accepts, never answers
  try {
    const started = Date.now();
    const timedOut = await rejects(
      t,
      new ReplicaTransport({ url: silent.url, signer: device.signer, timeoutMs: 300 }).info(),
    );
    t.is(timedOut.code, 'UNAVAILABLE');
    t.regex(timedOut.message, /did not answer: no answer within 300 ms/);
    t.true(Date.now() - started < 5000);
  } finally {
    await silent.close();
  }
});

test('answers that do not parse are INTEGRITY; errors that do not parse are UNAVAILABLE', async (t) => {
  const device = await TestDevice.create();
  const info = fakeInfo();
  const cases: { answer: () => Response; code: ErrorCode; message: RegExp }[] = [
    { answer: () => new Response('not json'), code: 'INTEGRITY', message: /sent a malformed answer/ },
    { answer: () => Response.json({ ...info, cosigner: undefined }), code: 'INTEGRITY', message: /malformed/ },
    {
      answer: () => Response.json({ ...info, cosigner: { ...info.cosigner, name: 'someone-else' } }),
      code: 'INTEGRITY',
      message: /malformed/,
    },
    { answer: () => Response.json({ ...info, protocolVersions: [2] }), code: 'UNSUPPORTED_VERSION', message: /2/ },
    {
      answer: () => new Response('<html>bad gateway</html>', { status: 502 }),
      code: 'UNAVAILABLE',
      message: /HTTP 502 without an e2ekv error/,
    },
    {
      answer: () => Response.json({ error: { code: 'NO_SUCH_CODE', message: 'x' } }, { status: 409 }),
      code: 'UNAVAILABLE',
      message: /HTTP 409/,
    },
  ];
  for (const c of cases) {
    const replica = new ReplicaTransport({
      url: 'http://replica.test',
      signer: device.signer,
      fetch: async () => c.answer(),
    });
    const error = await rejects(t, replica.info());
    t.is(error.code, c.code, c.message.source);
    t.regex(error.message, c.message);
  }

  // Entries with an unknown field, behind a good info.
  const replica = new ReplicaTransport({
    url: 'http://replica.test',
    signer: device.signer,
    fetch: async (input) =>
      String(input).endsWith('/v1/info')
        ? Response.json(info)
        : Response.json({ checkpoint: '', start: 0, entries: [], inclusionProofs: [], consistencyProof: [], extra: 1 }),
  });
  const error = await rejects(t, replica.entries(randomBytes(32), randomBytes(32), 0, 1));
  t.is(error.code, 'INTEGRITY');
  t.is((error.cause as E2ekvError).code, 'MALFORMED');
});

test('each vault request is signed over the exact method, path, query and body, for the pinned audience', async (t) => {
  const device = await TestDevice.create();
  const info = fakeInfo();
  const seen: { url: string; method: string; authorization: string | null; body: Uint8Array }[] = [];
  const replica = new ReplicaTransport({
    url: 'http://replica.test/',
    signer: device.signer,
    fetch: async (input, init) => {
      const headers = new Headers(init?.headers);
      const body = init?.body === undefined || init.body === null ? new Uint8Array() : (init.body as Uint8Array);
      seen.push({
        url: String(input),
        method: init?.method ?? 'GET',
        authorization: headers.get('authorization'),
        body,
      });
      if (String(input).endsWith('/v1/info')) return Response.json(info);
      if (String(input).endsWith('/append')) return Response.json({ checkpoint: 'note' });
      return Response.json({ checkpoint: 'note', start: 2, entries: [], inclusionProofs: [], consistencyProof: [] });
    },
  });
  const vaultId = randomBytes(32);
  await replica.entries(vaultId, device.publicKey, 2, 9, 4);
  await replica.append(vaultId, {
    start: 0,
    entries: [randomBytes(80)],
    blobs: [],
    checkpoint: 'c',
    consistencyProof: [],
  });
  t.is(seen[0]!.authorization, null, 'info is not signed');
  const audience = ed25519PublicKeyFromSeed(fakeCosignerSeed);
  const expected = [
    { method: 'GET', path: `/v1/vaults/${toHex(vaultId)}/logs/${device.hex}/entries?start=2&end=9&proofFrom=4` },
    { method: 'POST', path: `/v1/vaults/${toHex(vaultId)}/logs/${device.hex}/append` },
  ];
  for (const [i, want] of expected.entries()) {
    const sent = seen[i + 1]!;
    t.is(sent.url, `http://replica.test${want.path}`);
    t.is(sent.method, want.method);
    const auth = parseAuthorization(sent.authorization!);
    t.deepEqual(auth.device, device.publicKey);
    const input = requestSignatureInput({ ...auth, audience, method: want.method, path: want.path, body: sent.body });
    t.true(await ed25519Verify(device.publicKey, input, auth.signature));
    // Any other path or body would not verify.
    const other = requestSignatureInput({
      ...auth,
      audience,
      method: want.method,
      path: want.path + 'x',
      body: sent.body,
    });
    t.false(await ed25519Verify(device.publicKey, other, auth.signature));
  }
  t.true(new TextDecoder().decode(seen[2]!.body).startsWith('{"start":0,"entries":["'));
});

test('a replica presenting another cosigner than the pinned one is refused', async (t) => {
  const device = await TestDevice.create();
  const real = await transport(device.signer).info();
  const pinned = new ReplicaTransport({ url: url(), signer: device.signer, cosigner: real.cosigner });
  t.deepEqual((await pinned.info()).cosigner, real.cosigner);
  const other = { name: real.cosigner.name, publicKey: ed25519PublicKeyFromSeed(randomBytes(32)) };
  const refused = await rejects(t, new ReplicaTransport({ url: url(), signer: device.signer, cosigner: other }).info());
  t.is(refused.code, 'UNKNOWN_KEY');
  // Nothing is signed for an audience the replica chose.
  const noRequest = await rejects(
    t,
    new ReplicaTransport({ url: url(), signer: device.signer, cosigner: other }).vaultState(randomBytes(32)),
  );
  t.is(noRequest.code, 'UNKNOWN_KEY');
});

test('events announce appends until the caller aborts', async (t) => {
  const { device, replica: writer, vaultId } = await vaultWithEntries(1);
  let connected!: () => void;
  const subscribed = new Promise<void>((resolve) => (connected = resolve));
  const reader = transport(device.signer, {
    fetch: async (input, init) => {
      const response = await fetch(input, init);
      // The server subscribes before it sends the headers.
      if (String(input).endsWith('/events')) connected();
      return response;
    },
  });
  const controller = new AbortController();
  const received: { device: string; size: number }[] = [];
  let gotTwo!: () => void;
  const two = new Promise<void>((resolve) => (gotTwo = resolve));
  const done = reader.events(
    vaultId,
    (event) => {
      received.push(event);
      if (received.length === 2) gotTwo();
    },
    controller.signal,
  );
  await subscribed;
  await writer.append(vaultId, await device.nextAppend(vaultId, { values: 2 }));
  await writer.append(vaultId, await device.nextAppend(vaultId, { values: 1 }));
  await two;
  controller.abort();
  await done; // resolves, does not throw
  t.deepEqual(received, [
    { device: device.hex, size: 3 },
    { device: device.hex, size: 4 },
  ]);
});

test('the event stream parser copes with split chunks, CRLF, comments and other events; bad events are INTEGRITY', async (t) => {
  const device = await TestDevice.create();
  const hex = toHex(randomBytes(32));
  const stream = (chunks: string[]) =>
    new ReplicaTransport({
      url: 'http://replica.test',
      signer: device.signer,
      fetch: async (input) => {
        if (String(input).endsWith('/v1/info')) return Response.json(fakeInfo());
        const body = new ReadableStream<Uint8Array>({
          start(controller) {
            for (const chunk of chunks) controller.enqueue(new TextEncoder().encode(chunk));
            controller.close();
          },
        });
        return new Response(body, { headers: { 'content-type': 'text/event-stream' } });
      },
    });
  const events: unknown[] = [];
  await stream([
    ': hello\n\n',
    'event: check',
    `point\r\ndata: {"device":"${hex}",`,
    '"size":3}\r',
    '\n\r\nevent: other\ndata: x\n\n',
    `event:checkpoint\ndata:{"device":"${hex}","size":4}\n\n`,
    'event: checkpoint\n\n', // no data: not an event
    // Two data lines joined by a newline, with a CRLF split across chunks.
    `event: checkpoint\r\ndata: {"device":"${hex}",\r`,
    '\ndata: "size":6}\r\n\r\n',
    `event: checkpoint\ndata: {"device":"${hex}","size":5}`, // cut off: dropped
  ]).events(randomBytes(32), (e) => events.push(e), new AbortController().signal);
  t.deepEqual(events, [
    { device: hex, size: 3 },
    { device: hex, size: 4 },
    { device: hex, size: 6 },
  ]);

  for (const bad of [
    '{"device":"AB","size":1}',
    `{"device":"${hex}","size":-1}`,
    'nope',
    `{"device":"${hex}","size":1,"x":0}`,
  ]) {
    const error = await rejects(
      t,
      stream([`event: checkpoint\ndata: ${bad}\n\n`]).events(
        randomBytes(32),
        () => undefined,
        new AbortController().signal,
      ),
    );
    t.is(error.code, 'INTEGRITY', bad);
  }
});

const fakeCosignerSeed = randomBytes(32);

function fakeInfo() {
  const publicKey = ed25519PublicKeyFromSeed(fakeCosignerSeed);
  return {
    name: 'fake',
    version: '0',
    protocolVersions: [1],
    cosigner: {
      name: 'replica.test/w',
      publicKey: toBase64(publicKey),
      vkey: formatCosignerVkey('replica.test/w', publicKey),
    },
    limits: { maxBatchEntries: 8, maxBodyBytes: 1000 },
  };
}
