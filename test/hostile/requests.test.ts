/**
 * Hostile replica, requests and replica-level answers: rewritten requests (the
 * real server refuses them), lies in /v1/info and in the vault state's genesis,
 * answers that do not parse, refusals a replica invents, and a replica that
 * drops connections (unavailable, not lying: another replica serves the read).
 */
import test, { type ExecutionContext } from 'ava';
import { cosignatureSigner, formatCosignerVkey, toBase64 } from '../../protocol/src/index.js';
import { ReplicaError } from '../../sdk/src/transport.js';
import { createClient, createIdentity, publicIdentity, type Identity, type Vault } from '../../sdk/src/index.js';
import {
  HostileReplica,
  sharedServer,
  errorAnswer,
  flipBase64,
  hex,
  jsonAnswer,
  rejects,
  type VaultStateJson,
} from '../support/hostile-replica.js';

const server = sharedServer(test);

const key = (identity: Identity) => hex(publicIdentity(identity).signingKey);

interface Scene {
  replica: HostileReplica;
  access: { vaultId: string; secret: Uint8Array };
  alice: { hex: string; vault: Vault };
  bob: { identity: Identity; hex: string; vault: Vault };
}

/** Alice adds reader Bob and sets k; Bob opens the vault; Alice sets k again. All through the hostile replica. */
async function scene(t: ExecutionContext, bobServers?: (replica: HostileReplica) => string[]): Promise<Scene> {
  const replica = await HostileReplica.start(server());
  t.teardown(() => replica.close());
  const [aliceId, bobId] = [createIdentity(), createIdentity()];
  const { vault: a, access } = await (await createClient({ identity: aliceId, servers: [replica.url] })).createVault();
  await a.addMember(publicIdentity(bobId), 'reader');
  await a.set('k', 'v1');
  const servers = bobServers?.(replica) ?? [replica.url];
  const b = await (await createClient({ identity: bobId, servers })).openVault(access);
  await a.set('k', 'v2');
  return {
    replica,
    access,
    alice: { hex: key(aliceId), vault: a },
    bob: { identity: bobId, hex: key(bobId), vault: b },
  };
}

// ---------------------------------------------------------------------------
// Requests are signed over method, path, query and body (SPEC.md 18).

test("rewriting a read request's query is refused by the real server (UNAUTHENTICATED)", async (t) => {
  const s = await scene(t);
  const hook = s.replica.intercept({ route: 'entries', client: s.bob.hex }, (request, forward) =>
    forward({ url: request.url.replace(/end=\d+/, 'end=1') }),
  );
  const error = await rejects(
    t,
    s.bob.vault.get('k', { read: 'one' }),
    'UNAUTHENTICATED',
    new RegExp(`^replica ${s.replica.url}: `),
  );
  t.true(error instanceof ReplicaError);
  t.is((error as ReplicaError).status, 401);
  t.true(hook.calls > 0, 'the request was rewritten');
  t.is(await s.bob.vault.get('k'), 'v1');
});

test('rewriting an append body is refused by the real server, and the write is not acknowledged', async (t) => {
  const s = await scene(t);
  const hook = s.replica.intercept({ route: 'append', client: s.alice.hex }, (request, forward) => {
    const body = JSON.parse(request.body.toString('utf8')) as { entries: string[] };
    body.entries[0] = flipBase64(body.entries[0]!, -1);
    return forward({ body: Buffer.from(JSON.stringify(body)) });
  });
  // The replica's refusal is the answer; the write stays on this device.
  const error = await rejects(
    t,
    s.alice.vault.set('k', 'v3'),
    'UNAUTHENTICATED',
    new RegExp(`^replica ${s.replica.url}: the request signature does not verify`),
  );
  t.true(error instanceof ReplicaError);
  const refusal = s.replica.recorded({ route: 'append', client: s.alice.hex }).at(-1)!;
  t.is(refusal.answer.status, 401);
  t.regex(refusal.answer.body.toString('utf8'), /"code":"UNAUTHENTICATED"/);
  t.true(hook.calls > 0);
  t.is(s.alice.vault.status().unpushed, 1);
  t.is(await s.bob.vault.get('k', { read: 'one' }), 'v2', 'the replica stored nothing of it');
});

// ---------------------------------------------------------------------------
// /v1/info is unsigned discovery; what it says is checked where it matters.

const infoLie = test.macro({
  async exec(t, edit: (info: InfoJson) => InfoJson | Promise<InfoJson>, code: string, message: RegExp) {
    const s = await scene(t);
    const hook = s.replica.rewriteJson<InfoJson>({ route: 'info' }, edit);
    const fresh = await createClient({ identity: s.bob.identity, servers: [s.replica.url] });
    await rejects(t, fresh.openVault(s.access), code as 'INTEGRITY', message);
    t.true(hook.changed > 0);
  },
  title: (title = '', _edit: unknown, code: string) => `/v1/info ${title} is ${code}`,
});

interface InfoJson {
  protocolVersions: number[];
  cosigner: { name: string; publicKey: string; vkey: string };
}

test(
  'announcing only a protocol version the SDK does not speak',
  infoLie,
  (info) => ({ ...info, protocolVersions: [2] }),
  'UNSUPPORTED_VERSION',
  /speaks protocol versions 2, not 1/,
);

test(
  'announcing a cosigner name that differs from its vkey',
  infoLie,
  (info) => ({ ...info, cosigner: { ...info.cosigner, name: 'someone-else.example' } }),
  'INTEGRITY',
  /sent a malformed answer/,
);

test(
  'announcing another cosigner key (requests signed for it are refused by the real server)',
  infoLie,
  async (info) => {
    const other = await cosignatureSigner(info.cosigner.name, new Uint8Array(32).fill(8));
    return {
      ...info,
      cosigner: {
        name: other.name,
        publicKey: toBase64(other.publicKey),
        vkey: formatCosignerVkey(other.name, other.publicKey),
      },
    };
  },
  'UNAUTHENTICATED',
  /replica http:\/\/127\.0\.0\.1:\d+: /,
);

// ---------------------------------------------------------------------------
// The vault state: its genesis must be the vault's.

test('a vault state carrying the genesis of another vault is INTEGRITY', async (t) => {
  const s = await scene(t);
  const other = await (await createClient({ identity: createIdentity(), servers: [s.replica.url] })).createVault();
  const otherGenesis = s.replica.recorded({ route: 'create-vault' }).at(-1)!;
  const genesis = (JSON.parse(otherGenesis.request.body.toString('utf8')) as { genesis: string }).genesis;
  t.not(other.access.vaultId, s.access.vaultId);
  const hook = s.replica.rewriteJson<VaultStateJson>({ route: 'vault', client: s.bob.hex }, (state) => {
    state.genesis = genesis;
  });
  const fresh = await createClient({ identity: s.bob.identity, servers: [s.replica.url] });
  await rejects(t, fresh.openVault(s.access), 'INTEGRITY', /holds the genesis of another vault/);
  t.true(hook.changed > 0);
});

test('a vault state carrying an altered genesis is BAD_SIGNATURE', async (t) => {
  const s = await scene(t);
  const hook = s.replica.rewriteJson<VaultStateJson>({ route: 'vault', client: s.bob.hex }, (state) => {
    state.genesis = flipBase64(state.genesis, 20);
  });
  const fresh = await createClient({ identity: s.bob.identity, servers: [s.replica.url] });
  await rejects(t, fresh.openVault(s.access), 'BAD_SIGNATURE');
  t.true(hook.changed > 0);
});

// ---------------------------------------------------------------------------
// Answers that do not parse, and refusals a replica makes up

const broken = test.macro({
  async exec(t, body: string) {
    const s = await scene(t);
    const hook = s.replica.answer(
      { route: 'entries', client: s.bob.hex },
      { status: 200, headers: { 'content-type': 'application/json' }, body: Buffer.from(body) },
    );
    await rejects(t, s.bob.vault.get('k', { read: 'one' }), 'INTEGRITY', /sent a malformed answer/);
    t.true(hook.changed > 0);
    t.is(await s.bob.vault.get('k'), 'v1');
  },
  title: (title = '') => `an entries answer ${title} is INTEGRITY`,
});

test('that is not JSON', broken, '{"checkpoint":');
test(
  'with an unknown field',
  broken,
  '{"checkpoint":"","start":2,"entries":[],"inclusionProofs":[],"consistencyProof":[],"x":1}',
);
test(
  'with an entry in non-canonical base64',
  broken,
  '{"checkpoint":"","start":2,"entries":["AB=="],"inclusionProofs":[[]],"consistencyProof":[]}',
);

// The transport reports a replica's refusal with the replica's code: a claim,
// marked as such (ReplicaError, with the replica's URL and status), never
// evidence. Programs that act on integrity codes should check for it.
test('a replica refusing a read with an integrity code is reported as its claim (ReplicaError), with no evidence', async (t) => {
  const s = await scene(t);
  const hook = s.replica.answer(
    { route: 'entries', client: s.bob.hex },
    errorAnswer(409, 'EQUIVOCATION', 'the device forked its log, trust me'),
  );
  const error = await rejects(
    t,
    s.bob.vault.get('k', { read: 'one' }),
    'EQUIVOCATION',
    /^replica http:\/\/\S+: the device forked its log, trust me$/,
  );
  t.true(error instanceof ReplicaError);
  t.is((error as ReplicaError).status, 409);
  t.deepEqual(s.bob.vault.evidence, []);
  t.true(hook.changed > 0);
});

test('an error answer without an e2ekv error body is UNAVAILABLE', async (t) => {
  const s = await scene(t);
  s.replica.answer({ route: 'entries', client: s.bob.hex }, jsonAnswer({ oops: true }, 500));
  await rejects(t, s.bob.vault.get('k', { read: 'one' }), 'UNAVAILABLE', /answered HTTP 500 without an e2ekv error/);
});

// ---------------------------------------------------------------------------
// Dropping is not lying: the replica is unavailable, and another one serves.

test('a replica that drops connections is UNAVAILABLE, and a read at level one is served by another replica', async (t) => {
  // Bob reads through the hostile replica first, then the real server directly.
  const s = await scene(t, (replica) => [replica.url, server().url]);
  const dropped = s.replica.drop({ client: s.bob.hex });
  t.is(await s.bob.vault.get('k', { read: 'one' }), 'v2');
  t.true(dropped.changed > 0);
  await rejects(t, s.bob.vault.get('k', { read: 'quorum' }), 'UNAVAILABLE', /1 of 2 replicas answered, 2 needed/);
});

test('harness: the push channel streams through the hostile replica', async (t) => {
  const s = await scene(t);
  const seen = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no change within 10 s')), 10_000);
    const stop = s.bob.vault.watch((change) => {
      if (change.key !== 'live') return;
      clearTimeout(timer);
      stop();
      resolve(change.key);
    });
  });
  await new Promise((resolve) => setTimeout(resolve, 300));
  await s.alice.vault.set('live', 1);
  t.is(await seen, 'live');
  t.true(s.replica.recorded({ route: 'events' }).length === 0, 'event streams are piped, not recorded');
});
