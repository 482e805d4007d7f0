/**
 * The replica as a real process: every endpoint over HTTP, every refusal with
 * its status and code and no change on disk, no 5xx for any input, and no
 * plaintext in the data directory.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import {
  EnvelopePurpose,
  KeyNameBlinder,
  NO_BLINDED_KEY,
  ValueKind,
  deriveBlindingKey,
  deriveValueKey,
  encodeAppendRequest,
  encodeEntry,
  encodeEntryMeta,
  encodeItemPayload,
  fromBase64,
  fromHex,
  parseCosignerVkey,
  parseEntriesResponse,
  randomBytes,
  sealEnvelope,
  sealEpochRecord,
  toBase64,
  utf8,
  verifyDeviceCheckpoint,
  verifyInclusion,
  leafHash,
  type AppendRequest,
} from '@e2ekv/protocol';
import { info, request, type Reply } from './support/client.js';
import { startServerProcess, tempDir, type ServerProcess } from './support/process.js';
import { TestDevice } from './support/writer.js';

interface Fixture {
  server: ServerProcess;
  audience: Uint8Array;
  cosigner: { name: string; publicKey: Uint8Array };
  remove: () => Promise<void>;
}

async function fixture(args: string[] = []): Promise<Fixture> {
  const { dir, remove } = await tempDir();
  const server = await startServerProcess(dir, args);
  const i = await info(server.url);
  const cosigner = parseCosignerVkey(i.cosigner.vkey);
  return { server, audience: cosigner.publicKey, cosigner, remove };
}

async function stop(f: Fixture): Promise<void> {
  await f.server.stop();
  await f.remove();
}

const send = (
  f: Fixture,
  device: TestDevice | undefined,
  method: string,
  p: string,
  body?: unknown,
  raw?: Uint8Array,
) =>
  request(f.server.url, method, p, {
    ...(device === undefined ? {} : { signer: device.signer, audience: f.audience }),
    ...(body === undefined ? {} : { body }),
    ...(raw === undefined ? {} : { rawBody: raw }),
  });

function appendPath(vaultId: string, device: TestDevice): string {
  return `/v1/vaults/${vaultId}/logs/${device.hex}/append`;
}

async function createVault(f: Fixture, device: TestDevice): Promise<string> {
  const { signedGenesis, vaultId } = await device.genesis();
  const res = await send(f, device, 'POST', '/v1/vaults', { genesis: toBase64(signedGenesis) });
  if (res.status !== 201) throw new Error(`create vault: ${res.status} ${res.text}`);
  return vaultId;
}

async function append(f: Fixture, device: TestDevice, vaultId: string, req: AppendRequest): Promise<Reply> {
  return send(f, device, 'POST', appendPath(vaultId, device), encodeAppendRequest(req));
}

/**
 * SHA-256 of every file in the data directory: what "storage unchanged" means on
 * disk. SQLite's -shm file is left out: it is the WAL's shared-memory index,
 * which readers update (read marks) and which holds no data.
 */
async function snapshot(dir: string): Promise<string> {
  const names = (await readdir(dir)).filter((name) => !name.endsWith('-shm')).sort();
  const h = createHash('sha256');
  for (const name of names) h.update(name).update(await readFile(path.join(dir, name)));
  return h.digest('hex');
}

function errorCode(res: Reply): string | undefined {
  return (res.body as { error?: { code?: string } }).error?.code;
}

test('health, readiness, info and metrics', async (t) => {
  const f = await fixture();
  try {
    t.is((await request(f.server.url, 'GET', '/healthz')).status, 200);
    const ready = await request(f.server.url, 'GET', '/readyz');
    t.deepEqual([ready.status, ready.body], [200, { status: 'ready' }]);
    const i = await info(f.server.url);
    t.deepEqual(i.protocolVersions, [1]);
    t.is(toBase64(f.cosigner.publicKey), i.cosigner.publicKey);
    const metrics = await request(f.server.url, 'GET', '/metrics');
    t.regex(metrics.headers.get('content-type') ?? '', /^text\/plain/);
    t.regex(metrics.text, /e2ekv_http_requests_total\{method="GET",route="healthz",status="200"\} 1/);
    t.regex(metrics.text, /# TYPE e2ekv_http_request_duration_seconds histogram/);
    const missing = await request(f.server.url, 'GET', '/v2/nothing');
    t.deepEqual([missing.status, errorCode(missing)], [404, 'NOT_FOUND']);
  } finally {
    await stop(f);
  }
});

test('a vault end to end: create, append, read back everything with proofs, push events', async (t) => {
  const f = await fixture();
  try {
    const creator = await TestDevice.create();
    const { signedGenesis, vaultId } = await creator.genesis();
    const created = await send(f, creator, 'POST', '/v1/vaults', { genesis: toBase64(signedGenesis) });
    t.deepEqual([created.status, created.body], [201, { vaultId }]);
    const again = await send(f, creator, 'POST', '/v1/vaults', { genesis: toBase64(signedGenesis) });
    t.is(again.status, 200);

    // Subscribe to the push channel before writing.
    const eventsPath = `/v1/vaults/${vaultId}/events`;
    const controller = new AbortController();
    const eventsRes = await fetch(f.server.url + eventsPath, {
      headers: { authorization: await creator.authorize({ audience: f.audience, method: 'GET', path: eventsPath }) },
      signal: controller.signal,
    });
    t.is(eventsRes.status, 200);
    const reader = eventsRes.body!.getReader();

    const firstRequest = await creator.nextAppend(vaultId, { values: 3, blobBytes: 6000 });
    t.is(firstRequest.blobs.length, 3);
    const first = await append(f, creator, vaultId, firstRequest);
    t.is(first.status, 200, first.text);
    const cosigned = (first.body as { checkpoint: string }).checkpoint;
    const verified = await verifyDeviceCheckpoint(cosigned, fromHex(vaultId), creator.publicKey, [f.cosigner]);
    t.is(verified.checkpoint.size, 3n);
    t.is(verified.cosignatures.length, 1);

    let pushed = '';
    while (!pushed.includes('event: checkpoint')) pushed += new TextDecoder().decode((await reader.read()).value);
    t.regex(pushed, new RegExp(`data: \\{"device":"${creator.hex}","size":3\\}`));
    controller.abort();

    const second = await append(f, creator, vaultId, await creator.nextAppend(vaultId, { values: 2 }));
    t.is(second.status, 200, second.text);

    const state = await send(f, creator, 'GET', `/v1/vaults/${vaultId}`);
    t.is(state.status, 200);
    const logs = (state.body as { logs: { device: string; size: number }[] }).logs;
    t.deepEqual(
      logs.map((l) => [l.device, l.size]),
      [[creator.hex, 5]],
    );
    t.is((state.body as { genesis: string }).genesis, toBase64(signedGenesis));

    const members = await send(f, creator, 'GET', `/v1/vaults/${vaultId}/members`);
    t.deepEqual((members.body as { members: unknown }).members, [{ device: creator.hex, role: 'admin' }]);

    const note = await send(f, creator, 'GET', `/v1/vaults/${vaultId}/logs/${creator.hex}/checkpoint`);
    t.regex(note.headers.get('content-type') ?? '', /^text\/plain/);
    const head = await verifyDeviceCheckpoint(note.text, fromHex(vaultId), creator.publicKey, [f.cosigner]);
    t.is(head.checkpoint.size, 5n);
    t.is(head.cosignatures.length, 1);

    const entries = await send(
      f,
      creator,
      'GET',
      `/v1/vaults/${vaultId}/logs/${creator.hex}/entries?start=1&end=4&proofFrom=3`,
    );
    t.is(entries.status, 200, entries.text);
    const parsed = parseEntriesResponse(entries.body);
    t.is(parsed.start, 1);
    t.is(parsed.entries.length, 3);
    const proven = await verifyDeviceCheckpoint(parsed.checkpoint, fromHex(vaultId), creator.publicKey, [f.cosigner]);
    parsed.entries.forEach((entry, i) => {
      t.deepEqual(entry, creator.entries(vaultId)[1 + i]);
      t.notThrows(() =>
        verifyInclusion(
          BigInt(1 + i),
          proven.checkpoint.size,
          leafHash(entry),
          parsed.inclusionProofs[i]!,
          proven.checkpoint.root,
        ),
      );
    });
    t.true(parsed.consistencyProof.length > 0);

    // Blobs by their SHA-256.
    for (const blob of firstRequest.blobs) {
      const hash = createHash('sha256').update(blob).digest('hex');
      const res = await fetch(`${f.server.url}/v1/vaults/${vaultId}/blobs/${hash}`, {
        headers: {
          authorization: await creator.authorize({
            audience: f.audience,
            method: 'GET',
            path: `/v1/vaults/${vaultId}/blobs/${hash}`,
          }),
        },
      });
      t.is(res.status, 200);
      t.deepEqual(new Uint8Array(await res.arrayBuffer()), blob);
    }
    const evidence = await send(f, creator, 'GET', `/v1/vaults/${vaultId}/evidence`);
    t.deepEqual(evidence.body, { evidence: [] });
  } finally {
    await stop(f);
  }
});

/** Flips one bit of the first signature of a note, keeping its base64 canonical. */
function flipFirstSignature(note: string): string {
  const lines = note.split('\n');
  const i = lines.findIndex((l) => l.startsWith('— '));
  const parts = lines[i]!.split(' ');
  const raw = fromBase64(parts[2]!);
  raw[raw.length - 1]! ^= 1;
  parts[2] = toBase64(raw);
  lines[i] = parts.join(' ');
  return lines.join('\n');
}

test('every malformed or unauthorized request gets its 4xx and code, and the data directory does not change', async (t) => {
  const f = await fixture();
  try {
    const creator = await TestDevice.create();
    const reader = await TestDevice.create();
    const outsider = await TestDevice.create();
    const vaultId = await createVault(f, creator);
    t.is((await append(f, creator, vaultId, await creator.nextAppend(vaultId, { values: 2 }))).status, 200);
    t.is(
      (await append(f, creator, vaultId, await creator.membershipAppend(vaultId, reader.addChange('reader')))).status,
      200,
    );
    const outsiderVault = (await outsider.genesis()).vaultId;

    const before = await snapshot(f.server.dataDir);
    const valid = encodeAppendRequest(await creator.nextAppend(vaultId));
    const entries = valid['entries'] as string[];
    const truncated = { ...valid, entries: [toBase64(fromBase64(entries[0]!).subarray(0, 100))] };
    const badSignature = { ...valid, checkpoint: flipFirstSignature(valid['checkpoint'] as string) };
    const stale = encodeAppendRequest(await creator.appendFrom(vaultId, 0));
    const readerAppend = encodeAppendRequest(await reader.nextAppend(vaultId));
    const outsiderAppend = encodeAppendRequest(await outsider.nextAppend(vaultId));
    const statePath = `/v1/vaults/${vaultId}`;
    const replayed = await creator.authorize({ audience: f.audience, method: 'GET', path: statePath });
    t.is((await request(f.server.url, 'GET', statePath, { authorization: replayed })).status, 200);
    const old = await creator.authorize(
      { audience: f.audience, method: 'GET', path: statePath },
      () => Date.now() - 10 * 60_000,
    );
    const forOtherServer = await creator.authorize({ audience: randomBytes(32), method: 'GET', path: statePath });

    const cases: [string, () => Promise<Reply>, number, string][] = [
      [
        'body is not JSON',
        () => send(f, creator, 'POST', appendPath(vaultId, creator), undefined, utf8('{"start":')),
        400,
        'MALFORMED',
      ],
      [
        'unknown field',
        () => send(f, creator, 'POST', appendPath(vaultId, creator), { ...valid, extra: 1 }),
        400,
        'MALFORMED',
      ],
      [
        'entry of the wrong length',
        () => send(f, creator, 'POST', appendPath(vaultId, creator), truncated),
        400,
        'MALFORMED',
      ],
      [
        'checkpoint signature altered',
        () => send(f, creator, 'POST', appendPath(vaultId, creator), badSignature),
        422,
        'BAD_SIGNATURE',
      ],
      ['stale start', () => send(f, creator, 'POST', appendPath(vaultId, creator), stale), 409, 'CONFLICT'],
      [
        'a reader appends',
        () => send(f, reader, 'POST', appendPath(vaultId, reader), readerAppend),
        403,
        'PERMISSION_DENIED',
      ],
      [
        'an unknown device appends',
        () => send(f, outsider, 'POST', appendPath(vaultId, outsider), outsiderAppend),
        403,
        'PERMISSION_DENIED',
      ],
      ['an unknown device reads', () => send(f, outsider, 'GET', statePath), 403, 'PERMISSION_DENIED'],
      [
        "appending to another device's log",
        () => send(f, creator, 'POST', appendPath(vaultId, reader), readerAppend),
        403,
        'PERMISSION_DENIED',
      ],
      ['unknown vault', () => send(f, outsider, 'GET', `/v1/vaults/${outsiderVault}`), 404, 'NOT_FOUND'],
      ['no Authorization', () => send(f, undefined, 'GET', statePath), 401, 'UNAUTHENTICATED'],
      [
        'malformed Authorization',
        () => request(f.server.url, 'GET', statePath, { authorization: 'Bearer x' }),
        401,
        'UNAUTHENTICATED',
      ],
      [
        'replayed request',
        () => request(f.server.url, 'GET', statePath, { authorization: replayed }),
        401,
        'UNAUTHENTICATED',
      ],
      [
        'request ten minutes old',
        () => request(f.server.url, 'GET', statePath, { authorization: old }),
        401,
        'UNAUTHENTICATED',
      ],
      [
        'request signed for another replica',
        () => request(f.server.url, 'GET', statePath, { authorization: forOtherServer }),
        401,
        'UNAUTHENTICATED',
      ],
      ['vault id not hex', () => send(f, creator, 'GET', '/v1/vaults/xyz'), 400, 'MALFORMED'],
      [
        'negative start',
        () => send(f, creator, 'GET', `${statePath}/logs/${creator.hex}/entries?start=-1`),
        400,
        'MALFORMED',
      ],
      [
        'body over 16 MiB',
        () => send(f, undefined, 'POST', appendPath(vaultId, creator), undefined, new Uint8Array(17 * 1024 * 1024)),
        413,
        'TOO_LARGE',
      ],
      [
        'genesis of another creator',
        () => send(f, outsider, 'POST', '/v1/vaults', { genesis: toBase64(new Uint8Array(169)) }),
        400,
        'UNSUPPORTED_VERSION',
      ],
    ];
    for (const [name, run, status, code] of cases) {
      const res = await run();
      t.is(res.status, status, `${name}: ${res.text.slice(0, 300)}`);
      t.is(errorCode(res), code, name);
      t.is(typeof (res.body as { error?: { message?: unknown } }).error?.message, 'string', name);
    }
    t.is(await snapshot(f.server.dataDir), before, 'refused requests changed the data directory');
    // The valid append still goes through afterwards.
    t.is((await send(f, creator, 'POST', appendPath(vaultId, creator), valid)).status, 200);
  } finally {
    await stop(f);
  }
});

test('random and mangled bodies never produce a 5xx', async (t) => {
  const f = await fixture();
  try {
    const creator = await TestDevice.create();
    const vaultId = await createVault(f, creator);
    const valid = encodeAppendRequest(await creator.nextAppend(vaultId, { values: 2 }));
    const mutate = (value: unknown, depth = 0): unknown => {
      const r = Math.random();
      if (depth > 2 || r < 0.2)
        return [null, 0, -1, 1e300, '', 'AAAA', [], {}, true, 'x'.repeat(100)][Math.floor(Math.random() * 10)];
      if (Array.isArray(value)) return value.map((v) => (Math.random() < 0.3 ? mutate(v, depth + 1) : v));
      if (typeof value === 'object' && value !== null) {
        return Object.fromEntries(
          Object.entries(value).map(([k, v]) => [k, Math.random() < 0.4 ? mutate(v, depth + 1) : v]),
        );
      }
      if (typeof value === 'string' && value.length > 4) {
        const i = Math.floor(Math.random() * value.length);
        return value.slice(0, i) + 'ABCD+/=é\n'[Math.floor(Math.random() * 9)] + value.slice(i + 1);
      }
      return value;
    };
    const statuses = new Map<number, number>();
    for (let i = 0; i < 150; i++) {
      const body = i % 10 === 0 ? randomBytes(Math.floor(Math.random() * 300)) : utf8(JSON.stringify(mutate(valid)));
      const res = await send(f, creator, 'POST', appendPath(vaultId, creator), undefined, body);
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      t.true(res.status < 500, `status ${res.status}: ${res.text.slice(0, 200)}`);
    }
    t.log(Object.fromEntries(statuses));
    t.true((await request(f.server.url, 'GET', '/healthz')).status === 200);
  } finally {
    await stop(f);
  }
});

test('an inconsistent checkpoint is refused with 409 and both notes are kept as evidence', async (t) => {
  const f = await fixture();
  try {
    const creator = await TestDevice.create();
    const vaultId = await createVault(f, creator);
    t.is((await append(f, creator, vaultId, await creator.nextAppend(vaultId, { values: 2 }))).status, 200);
    const honest = await creator.checkpoint(vaultId);
    // Forget entry 1 and write other entries: the device now signs a fork.
    creator.rewind(vaultId, 1);
    await creator.nextAppend(vaultId, { values: 2 });
    const fork = await append(f, creator, vaultId, await creator.appendFrom(vaultId, 2));
    t.deepEqual([fork.status, errorCode(fork)], [409, 'EQUIVOCATION']);
    const evidence = await send(f, creator, 'GET', `/v1/vaults/${vaultId}/evidence`);
    const records = (evidence.body as { evidence: { device: string; first: string; second: string }[] }).evidence;
    t.is(records.length, 1);
    t.is(records[0]!.device, creator.hex);
    t.is(records[0]!.first, honest);
    for (const note of [records[0]!.first, records[0]!.second]) {
      await t.notThrowsAsync(verifyDeviceCheckpoint(note, fromHex(vaultId), creator.publicKey));
    }
    const state = await send(f, creator, 'GET', `/v1/vaults/${vaultId}`);
    t.is((state.body as { logs: { size: number }[] }).logs[0]!.size, 2, 'the fork was not stored');
  } finally {
    await stop(f);
  }
});

test('key names and values written appear nowhere in the data directory', async (t) => {
  const f = await fixture();
  try {
    const creator = await TestDevice.create();
    const { signedGenesis, vaultId } = await creator.genesis();
    t.is((await send(f, creator, 'POST', '/v1/vaults', { genesis: toBase64(signedGenesis) })).status, 201);
    const secret = randomBytes(32);
    const id = fromHex(vaultId);
    const valueKey = deriveValueKey(secret, id, 0);
    const blinder = new KeyNameBlinder(deriveBlindingKey(secret, id));
    const canaries: string[] = [];
    for (let n = 0; n < 5; n++) {
      const name = `CANARY-NAME-${n}-${toBase64(randomBytes(6))}`;
      const value = `CANARY-VALUE-${n}-${toBase64(randomBytes(6))}`;
      canaries.push(name, value);
      const req = await creator.writeRaw(vaultId, ({ vaultId: v, device, index }) => {
        const blindedKey = blinder.blind(name);
        const base = { vaultId: v, device, logIndex: index, epoch: 0 };
        return encodeEntry({
          type: 'data',
          vaultId: v,
          device,
          index,
          epoch: 0,
          meta: sealEnvelope(
            valueKey,
            { ...base, purpose: EnvelopePurpose.entryMeta, item: 0, blindedKey: NO_BLINDED_KEY },
            encodeEntryMeta({ clock: { wallMs: BigInt(Date.now()), counter: 0 }, context: [] }, device),
          ),
          items: [
            {
              blindedKey,
              value: {
                kind: 'inline',
                envelope: sealEnvelope(
                  valueKey,
                  { ...base, purpose: EnvelopePurpose.itemValue, item: 0, blindedKey },
                  encodeItemPayload({ name: utf8(name), kind: ValueKind.bytes, value: utf8(value) }),
                ),
              },
            },
          ],
        });
      });
      t.is((await append(f, creator, vaultId, req)).status, 200);
    }
    await f.server.stop();
    const files = await readdir(f.server.dataDir);
    t.true(files.some((name) => name.endsWith('.sqlite3')));
    for (const name of files) {
      const bytes = await readFile(path.join(f.server.dataDir, name));
      for (const canary of canaries) {
        t.false(bytes.includes(Buffer.from(canary)), `${canary} found in ${name}`);
        t.false(bytes.includes(Buffer.from(canary.slice(0, 14))), `a canary prefix found in ${name}`);
      }
    }
  } finally {
    await stop(f);
  }
});

test('SIGTERM stops the server cleanly; logs are JSON lines on stderr', async (t) => {
  const f = await fixture();
  try {
    t.is((await request(f.server.url, 'GET', '/healthz')).status, 200);
    t.is(await f.server.stop(), 0);
    const lines = f.server.stderr().trim().split('\n');
    t.true(lines.length >= 2);
    for (const line of lines) t.notThrows(() => JSON.parse(line), line);
    t.true(lines.some((l) => (JSON.parse(l) as { msg: string }).msg === 'stopped'));
    t.false(f.server.stderr().includes('authorization'), 'no Authorization header in logs');
  } finally {
    await f.remove();
  }
});

test('with --tls-cert and --tls-key it serves HTTPS', async (t) => {
  const { dir, remove } = await tempDir();
  const { execFile } = await import('node:child_process');
  const { promisify } = await import('node:util');
  const https = await import('node:https');
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  await promisify(execFile)('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=127.0.0.1',
    '-addext',
    'subjectAltName=IP:127.0.0.1',
    '-keyout',
    key,
    '-out',
    cert,
  ]);
  const server = await startServerProcess(path.join(dir, 'data'), ['--tls-cert', cert, '--tls-key', key]);
  try {
    t.regex(server.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const ca = await readFile(cert);
    const body = await new Promise<string>((resolve, reject) => {
      https
        .get(`${server.url}/v1/info`, { ca }, (res) => {
          let text = '';
          res.on('data', (chunk: Buffer) => (text += chunk.toString()));
          res.on('end', () => resolve(text));
        })
        .on('error', reject);
    });
    t.deepEqual((JSON.parse(body) as { protocolVersions: number[] }).protocolVersions, [1]);
  } finally {
    await server.stop();
    await remove();
  }
});

test('a removed device gets 403 for every read and append from the moment its removal is accepted', async (t) => {
  const f = await fixture();
  try {
    const creator = await TestDevice.create();
    const member = await TestDevice.create();
    const staying = await TestDevice.create();
    const vaultId = await createVault(f, creator);
    for (const d of [member, staying]) {
      const add = await creator.membershipAppend(vaultId, d.addChange('writer'));
      t.is((await append(f, creator, vaultId, add)).status, 200);
    }
    const written = await member.nextAppend(vaultId, { values: 1, blobBytes: 6000 });
    t.is((await append(f, member, vaultId, written)).status, 200);
    const blobHash = createHash('sha256').update(written.blobs[0]!).digest('hex');
    const logPath = `/v1/vaults/${vaultId}/logs/${creator.hex}`;
    const reads = [
      `/v1/vaults/${vaultId}`,
      `/v1/vaults/${vaultId}/members`,
      `${logPath}/checkpoint`,
      `${logPath}/entries?start=0&end=2`,
      `/v1/vaults/${vaultId}/blobs/${blobHash}`,
      `/v1/vaults/${vaultId}/evidence`,
    ];
    for (const p of reads) t.is((await send(f, member, 'GET', p)).status, 200, `a member reads ${p}`);

    // The member listens for pushes while it is removed.
    const eventsPath = `/v1/vaults/${vaultId}/events`;
    const eventsRes = await fetch(f.server.url + eventsPath, {
      headers: { authorization: await member.authorize({ audience: f.audience, method: 'GET', path: eventsPath }) },
    });
    t.is(eventsRes.status, 200);
    const events = eventsRes.body!.getReader();
    const pending = await member.nextAppend(vaultId); // written before the removal, pushed after

    // Rule 5: the removal, then the next epoch for the remaining members, in one push.
    const before = creator.size(vaultId);
    await creator.writeRaw(vaultId, (at) =>
      encodeEntry({
        type: 'membership',
        ...at,
        epoch: 0,
        clock: { wallMs: BigInt(Date.now()), counter: 0 },
        context: [{ device: member.publicKey, size: 1n }],
        change: { op: 'remove', member: member.publicKey },
      }),
    );
    await creator.writeRaw(vaultId, (at) =>
      encodeEntry(
        sealEpochRecord({
          ...at,
          epoch: 1,
          clock: { wallMs: BigInt(Date.now()), counter: 1 },
          context: [{ device: member.publicKey, size: 1n }],
          secret: randomBytes(32),
          recipients: [creator, staying].map((d) => ({ signingKey: d.publicKey, boxKey: d.boxKey })),
        }),
      ),
    );
    const removal = await append(f, creator, vaultId, await creator.appendFrom(vaultId, before));
    t.is(removal.status, 200, removal.text);

    // The stream ends without telling the removed device that the creator's log grew.
    let heard = '';
    for (;;) {
      const { done, value } = await events.read();
      if (done) break;
      heard += new TextDecoder().decode(value);
    }
    t.notRegex(heard, new RegExp(creator.hex), 'no event after the removal');

    for (const p of [...reads, eventsPath]) {
      const res = await send(f, member, 'GET', p);
      t.deepEqual([res.status, errorCode(res)], [403, 'PERMISSION_DENIED'], p);
      t.regex(res.text, /was removed from this vault/);
    }
    const refused = await append(f, member, vaultId, pending);
    t.deepEqual([refused.status, errorCode(refused)], [403, 'PERMISSION_DENIED']);
    // Everyone else goes on.
    t.is((await send(f, staying, 'GET', `/v1/vaults/${vaultId}`)).status, 200);
    t.is((await append(f, staying, vaultId, await staying.nextAppend(vaultId))).status, 200);
    const members = await send(f, creator, 'GET', `/v1/vaults/${vaultId}/members`);
    t.deepEqual(
      (members.body as { members: { device: string }[] }).members.map((m) => m.device).sort(),
      [creator.hex, staying.hex].sort(),
    );
  } finally {
    await stop(f);
  }
});
