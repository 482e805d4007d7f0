/**
 * pullLog and pullBlob against real e2ekv-server processes: honest pulls from
 * scratch, incrementally and page by page; forked and lagging replicas; and a
 * tampering proxy between the SDK and an honest replica that rewrites answers.
 * Every failure must carry its specific code and leave the caller's tree and pin
 * as they were.
 */
import { writeFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import {
  E2ekvError,
  MerkleTree,
  addNoteSignatures,
  cosignatureSigner,
  decodeEntry,
  encodeEntriesResponse,
  formatCosignerVkey,
  formatNote,
  fromBase64,
  fromHex,
  leafHash,
  parseNote,
  randomBytes,
  toBase64,
  toHex,
  verifyDeviceCheckpoint,
  type AppendRequest,
  type Cosigner,
  type ErrorCode,
} from '@e2ekv/protocol';
import { EquivocationError, RollbackError, pullBlob, pullLog, type LogPin, type PulledLog } from '../src/log-sync.js';
import { ReplicaTransport } from '../src/transport.js';
import { startServerProcess, tempDir, type ServerProcess } from '../../server/test/support/process.js';
import { TestDevice } from '../../server/test/support/writer.js';
import { listen } from '../../test/support/listen.js';

interface Replica {
  url: string;
  cosigner: Cosigner;
}

const servers: ServerProcess[] = [];
const cleanups: (() => Promise<void>)[] = [];
/** A replica that sends at most 4 entries per page, and one with the default limits. */
let paged: Replica;
let plain: Replica;

async function startReplica(config?: object): Promise<Replica> {
  const data = await tempDir();
  cleanups.push(data.remove);
  const args: string[] = [];
  if (config !== undefined) {
    const dir = await tempDir('e2ekv-config-');
    cleanups.push(dir.remove);
    const file = path.join(dir.dir, 'config.json');
    await writeFile(file, JSON.stringify(config));
    args.push('--config', file);
  }
  const server = await startServerProcess(data.dir, args);
  servers.push(server);
  const anyone = await TestDevice.create();
  const info = await new ReplicaTransport({ url: server.url, signer: anyone.signer }).info();
  return { url: server.url, cosigner: info.cosigner };
}

test.before(async () => {
  [paged, plain] = await Promise.all([startReplica({ limits: { maxBatchEntries: 4 } }), startReplica()]);
});

test.after.always(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  for (const cleanup of cleanups) await cleanup();
});

function connect(device: TestDevice, replica: Replica | string, fetchImpl?: typeof fetch): ReplicaTransport {
  return new ReplicaTransport({
    url: typeof replica === 'string' ? replica : replica.url,
    signer: device.signer,
    ...(fetchImpl === undefined ? {} : { fetch: fetchImpl }),
  });
}

interface Writer {
  device: TestDevice;
  vaultId: string;
  id: Uint8Array;
}

/** A device with one vault, created with the same genesis on each replica. */
async function writer(...replicas: Replica[]): Promise<Writer> {
  const device = await TestDevice.create();
  const { signedGenesis, vaultId } = await device.genesis();
  for (const replica of replicas) await connect(device, replica).createVault(signedGenesis);
  return { device, vaultId, id: fromHex(vaultId) };
}

async function append(w: Writer, replica: Replica, values: number): Promise<void> {
  await connect(w.device, replica).append(w.vaultId, await w.device.nextAppend(w.vaultId, { values }));
}

/** What a reader keeps for one log. */
interface LocalLog {
  tree: MerkleTree;
  pin: LogPin | undefined;
}

const fresh = (): LocalLog => ({ tree: new MerkleTree(), pin: undefined });

function attempt(transport: ReplicaTransport, w: Writer, log: LocalLog, cosigner: Cosigner, maxEntries?: number) {
  return pullLog(transport, {
    vaultId: w.id,
    device: w.device.publicKey,
    pin: log.pin,
    tree: log.tree,
    cosigner,
    ...(maxEntries === undefined ? {} : { maxEntries }),
  });
}

/** Pulls and moves the pin, as a caller does. */
async function pull(transport: ReplicaTransport, w: Writer, log: LocalLog, cosigner: Cosigner): Promise<PulledLog> {
  const pulled = await attempt(transport, w, log, cosigner);
  log.pin = pulled.pin;
  return pulled;
}

/** Runs a pull that must fail with `code`, and checks the caller's tree and pin did not move. */
async function fails(
  t: ExecutionContext,
  log: LocalLog,
  run: () => Promise<unknown>,
  code: ErrorCode,
  message?: RegExp,
): Promise<E2ekvError> {
  const size = log.tree.size;
  const root = log.tree.root();
  const pin = log.pin === undefined ? undefined : { ...log.pin, root: log.pin.root.slice() };
  const error = await t.throwsAsync(run);
  if (!(error instanceof E2ekvError)) throw new Error(`expected an E2ekvError, got ${String(error)}`);
  t.is(error.code, code, error.message);
  if (message !== undefined) t.regex(error.message, message);
  t.is(log.tree.size, size, 'the tree did not grow');
  t.deepEqual(log.tree.root(), root, 'the tree is unchanged');
  t.deepEqual(log.pin, pin, 'the pin is unchanged');
  return error;
}

async function checkEvidence(t: ExecutionContext, w: Writer, error: E2ekvError, first: string, second: string) {
  const evidence = (error as EquivocationError | RollbackError).evidence;
  t.deepEqual(evidence, { first, second });
  t.is(error.details['pinned'], first);
  t.is(error.details['presented'], second);
  // Each note verifies on its own under the device key: anyone can check them.
  const a = await verifyDeviceCheckpoint(first, w.id, w.device.publicKey);
  const b = await verifyDeviceCheckpoint(second, w.id, w.device.publicKey);
  return { first: a.checkpoint, second: b.checkpoint };
}

// ---------------------------------------------------------------------------
// Honest replicas

test('pulls a log from scratch and incrementally, page by page, and the pin follows the log', async (t) => {
  const w = await writer(paged);
  let requests = 0;
  const counting: typeof fetch = (input, init) => {
    if (String(input).includes('/entries?')) requests++;
    return fetch(input, init);
  };
  const replica = connect(w.device, paged, counting);
  const log = fresh();
  // Appends of 1 to 4 entries (the replica takes at most 4 at once), pulled
  // after each one or after several, so that pins land on many tree shapes.
  const rounds = [[1], [3], [4], [2], [4, 4, 1], [3], [1, 1]];
  for (const round of rounds) {
    for (const values of round) await append(w, paged, values);
    const before = log.tree.size;
    const added = round.reduce((a, b) => a + b, 0);
    requests = 0;
    const pulled = await pull(replica, w, log, paged.cosigner);
    const size = w.device.size(w.vaultId);
    t.deepEqual(pulled.entries, w.device.entries(w.vaultId).slice(before));
    t.is(pulled.pin.size, size);
    t.is(log.tree.size, size);
    t.deepEqual(log.tree.root(), w.device.tree(w.vaultId).root());
    t.deepEqual(pulled.pin.root, w.device.tree(w.vaultId).root());
    t.is(requests, Math.ceil(added / 4), `pages for ${added} entries`);
  }
  const last = log.pin!;
  // The pin keeps the device's signature only; the cosigned note is returned beside it.
  t.is(parseNote(last.note).signatures.length, 1);
  t.is((await verifyDeviceCheckpoint(last.note, w.id, w.device.publicKey)).checkpoint.size, BigInt(last.size));
  const again = await pull(replica, w, log, paged.cosigner);
  t.deepEqual(again.entries, []);
  t.is(again.pin.size, last.size);
  t.is(parseNote(again.cosignedNote).signatures.length, 2);
  const verified = await verifyDeviceCheckpoint(again.cosignedNote, w.id, w.device.publicKey, [paged.cosigner]);
  t.is(verified.cosignatures[0]!.timestamp, again.cosignatureTime);
  t.true(Math.abs(Number(again.cosignatureTime) - Date.now() / 1000) < 60);

  // From scratch: 23 entries in 6 pages.
  requests = 0;
  const scratch = fresh();
  const all = await pull(replica, w, scratch, paged.cosigner);
  t.is(requests, 6);
  t.deepEqual(all.entries, [...w.device.entries(w.vaultId)]);
  t.deepEqual(scratch.tree.root(), log.tree.root());
  t.deepEqual(all.pin.root, last.root);
});

test('a log that grows between pages is pulled up to the first checkpoint, the rest next time', async (t) => {
  const w = await writer(paged);
  await append(w, paged, 4);
  await append(w, paged, 2);
  const proxy = await startProxy(
    paged.url,
    onEntries(async (_json, call) => {
      if (call === 0) await append(w, paged, 3); // after page 1 was answered, before page 2 is asked
    }),
  );
  try {
    const log = fresh();
    const pulled = await pull(connect(w.device, proxy.url), w, log, paged.cosigner);
    t.is(pulled.pin.size, 6);
    t.deepEqual(pulled.entries, w.device.entries(w.vaultId).slice(0, 6));
    t.deepEqual(log.tree.root(), w.device.tree(w.vaultId).root(6));
    const rest = await pull(connect(w.device, paged), w, log, paged.cosigner);
    t.deepEqual(rest.entries, w.device.entries(w.vaultId).slice(6));
    t.is(rest.pin.size, 9);
  } finally {
    await proxy.close();
  }
});

test('pullBlob returns a blob only if it is the one the entry references', async (t) => {
  const w = await writer(plain);
  await connect(w.device, plain).append(
    w.vaultId,
    await w.device.nextAppend(w.vaultId, { values: 1, blobBytes: 6000 }),
  );
  const entry = decodeEntry(w.device.entries(w.vaultId)[0]!);
  if (entry.type !== 'data' || entry.items[0]!.value.kind !== 'blob') throw new Error('expected a blob item');
  const ref = entry.items[0]!.value;
  const blob = await pullBlob(connect(w.device, plain), w.vaultId, ref);
  t.is(blob.length, ref.length);

  const wrongLength = await t.throwsAsync(pullBlob(connect(w.device, plain), w.id, { ...ref, length: ref.length + 1 }));
  t.is((wrongLength as E2ekvError).code, 'INTEGRITY');
  const proxy = await startProxy(plain.url, ({ path: p, body }) => {
    if (!p.includes('/blobs/')) return undefined;
    const altered = Buffer.from(body);
    altered[100]! ^= 1;
    return altered;
  });
  try {
    const error = await t.throwsAsync(pullBlob(connect(w.device, proxy.url), w.vaultId, ref));
    t.is((error as E2ekvError).code, 'INTEGRITY');
    t.regex((error as E2ekvError).message, /not the one the entry references/);
  } finally {
    await proxy.close();
  }
});

test('maxEntries and a tree that does not match the pin are refused before anything moves', async (t) => {
  const w = await writer(plain);
  await append(w, plain, 5);
  const replica = connect(w.device, plain);
  const log = fresh();
  await fails(t, log, () => attempt(replica, w, log, plain.cosigner, 4), 'TOO_LARGE', /more than maxEntries \(4\)/);
  t.is((await attempt(replica, w, log, plain.cosigner, 5)).entries.length, 5);
  const stale = { tree: new MerkleTree([leafHash(w.device.entries(w.vaultId)[0]!)]), pin: undefined };
  await fails(t, stale, () => attempt(replica, w, stale, plain.cosigner), 'INVALID_ARGUMENT');
  // The right size but other leaves than the pin was made from.
  const pinned = fresh();
  const { pin } = await attempt(replica, w, pinned, plain.cosigner);
  t.is(pinned.tree.size, 5);
  const other = { tree: new MerkleTree(Array.from({ length: 5 }, () => leafHash(randomBytes(9)))), pin };
  await fails(t, other, () => attempt(replica, w, other, plain.cosigner), 'INVALID_ARGUMENT', /pinned root/);
});

// ---------------------------------------------------------------------------
// Replicas that disagree with what was pinned

test('a log forked into a longer history on another replica is EQUIVOCATION, with both notes', async (t) => {
  const w = await writer(paged, plain);
  await append(w, paged, 3);
  const log = fresh();
  await pull(connect(w.device, paged), w, log, paged.cosigner);
  // The device forgets entry 2 and writes two others: plain gets the fork.
  w.device.rewind(w.vaultId, 2);
  await w.device.nextAppend(w.vaultId, { values: 2 });
  await connect(w.device, plain).append(w.vaultId, await w.device.appendFrom(w.vaultId, 0));
  const pinnedNote = log.pin!.note;
  const error = await fails(
    t,
    log,
    () => attempt(connect(w.device, plain), w, log, plain.cosigner),
    'EQUIVOCATION',
    /forked/,
  );
  t.true(error instanceof EquivocationError);
  const notes = await checkEvidence(t, w, error, pinnedNote, (error as EquivocationError).evidence.second);
  t.is(notes.first.size, 3n);
  t.is(notes.second.size, 4n);
});

test('a log forked at the same size on another replica is EQUIVOCATION, with both notes', async (t) => {
  const w = await writer(paged, plain);
  await append(w, paged, 3);
  const log = fresh();
  await pull(connect(w.device, paged), w, log, paged.cosigner);
  w.device.rewind(w.vaultId, 2);
  await w.device.nextAppend(w.vaultId, { values: 1 });
  await connect(w.device, plain).append(w.vaultId, await w.device.appendFrom(w.vaultId, 0));
  const error = await fails(t, log, () => attempt(connect(w.device, plain), w, log, plain.cosigner), 'EQUIVOCATION');
  t.true(error instanceof EquivocationError);
  const notes = await checkEvidence(t, w, error, log.pin!.note, (error as EquivocationError).evidence.second);
  t.is(notes.second.size, 3n);
  t.notDeepEqual(notes.first.root, notes.second.root);
});

test('a replica holding less than the pin is ROLLBACK, with both notes', async (t) => {
  const w = await writer(paged, plain);
  const firstTwo = await w.device.nextAppend(w.vaultId, { values: 2 });
  await connect(w.device, paged).append(w.vaultId, firstTwo);
  await connect(w.device, plain).append(w.vaultId, firstTwo);
  await append(w, paged, 1);
  const log = fresh();
  await pull(connect(w.device, paged), w, log, paged.cosigner);
  const error = await fails(t, log, () => attempt(connect(w.device, plain), w, log, plain.cosigner), 'ROLLBACK');
  t.true(error instanceof RollbackError);
  const notes = await checkEvidence(t, w, error, log.pin!.note, (error as RollbackError).evidence.second);
  t.is(notes.second.size, 2n);
});

test("a replica's checkpoint is refused under another replica's key (UNKNOWN_KEY)", async (t) => {
  const w = await writer(plain);
  await append(w, plain, 2);
  const log = fresh();
  await fails(t, log, () => attempt(connect(w.device, plain), w, log, paged.cosigner), 'UNKNOWN_KEY', /did not cosign/);
});

// ---------------------------------------------------------------------------
// A tampering proxy in front of an honest replica

interface Scenario {
  w: Writer;
  /** The log verified up to 3 and up to 5 entries (copy before use). */
  at3: { leaves: Uint8Array[]; pin: LogPin; cosignedNote: string };
  at5: { leaves: Uint8Array[]; pin: LogPin };
  /** Device e's cosigned checkpoint in the same vault. */
  otherDeviceNote: string;
}

let scenario: Promise<Scenario> | undefined;

/** One vault on `plain`: 5 entries of w (a blob, e's enrolment, data), and 1 of e. */
function hostileScenario(): Promise<Scenario> {
  scenario ??= (async () => {
    const w = await writer(plain);
    const e = await TestDevice.create();
    const direct = connect(w.device, plain);
    await direct.append(w.vaultId, await w.device.nextAppend(w.vaultId, { values: 1, blobBytes: 5000 }));
    await direct.append(w.vaultId, await w.device.membershipAppend(w.vaultId, e.addChange('writer')));
    await append(w, plain, 1);
    const log = fresh();
    const three = await pull(direct, w, log, plain.cosigner);
    await append(w, plain, 2);
    const five = await pull(direct, w, log, plain.cosigner);
    await connect(e, plain).append(w.vaultId, await e.nextAppend(w.vaultId, { values: 1 }));
    const leaves = w.device.entries(w.vaultId).map((entry) => leafHash(entry));
    return {
      w,
      at3: { leaves: leaves.slice(0, 3), pin: three.pin, cosignedNote: three.cosignedNote },
      at5: { leaves, pin: five.pin },
      otherDeviceNote: await direct.checkpoint(w.id, e.publicKey),
    };
  })();
  return scenario;
}

function logAt(s: Scenario, at: 'none' | 3 | 5): LocalLog {
  if (at === 'none') return fresh();
  const { leaves, pin } = at === 3 ? s.at3 : s.at5;
  return { tree: new MerkleTree(leaves), pin: { ...pin, root: pin.root.slice() } };
}

interface EntriesJson {
  checkpoint: string;
  start: number;
  entries: string[];
  inclusionProofs: string[][];
  consistencyProof: string[];
}

const tampered = test.macro({
  async exec(
    t,
    at: 'none' | 3 | 5,
    edit: (json: EntriesJson, s: Scenario) => void,
    code: ErrorCode,
    message?: RegExp,
  ): Promise<E2ekvError> {
    const s = await hostileScenario();
    const proxy = await startProxy(
      plain.url,
      onEntries((json) => edit(json, s)),
    );
    try {
      const log = logAt(s, at);
      return await fails(
        t,
        log,
        () => attempt(connect(s.w.device, proxy.url), s.w, log, plain.cosigner),
        code,
        message,
      );
    } finally {
      await proxy.close();
    }
  },
  title: (title = '', at: 'none' | 3 | 5, _edit: unknown, code: ErrorCode) =>
    `tampering: ${title} (pinned at ${at}) is ${code}`,
});

const dropLast = (json: EntriesJson) => {
  json.entries.pop();
  json.inclusionProofs.pop();
};
test('an entry dropped', tampered, 3, dropLast, 'INTEGRITY', /claims 5 entries .*but it sent 4/);
test('an entry dropped', tampered, 'none', dropLast, 'INTEGRITY', /claims 5 entries .*but it sent 4/);
test(
  'an entry invented',
  tampered,
  3,
  (json) => {
    json.entries.push(json.entries[0]!);
    json.inclusionProofs.push([]);
  },
  'INTEGRITY',
  /claims 5 entries .*but it sent 6/,
);
test(
  'a byte flipped in an entry',
  tampered,
  'none',
  (json) => {
    const entry = fromBase64(json.entries[1]!);
    entry[entry.length - 10]! ^= 0x40;
    json.entries[1] = toBase64(entry);
  },
  'INTEGRITY',
  /do not rebuild the signed root/,
);
test(
  'two entries swapped',
  tampered,
  3,
  (json) => {
    json.entries.reverse();
  },
  'INTEGRITY',
  /do not rebuild the signed root/,
);
test(
  'entries from another start',
  tampered,
  3,
  (json) => {
    json.start = 2;
  },
  'INTEGRITY',
  /sent entries from 2 when asked from 3/,
);
test(
  'an older checkpoint',
  tampered,
  'none',
  (json, s) => {
    json.checkpoint = s.at3.cosignedNote;
  },
  'INTEGRITY',
  /claims 3 entries .*but it sent 5/,
);
test(
  'the cosignature stripped',
  tampered,
  3,
  (json) => {
    json.checkpoint = keepSignatures(json.checkpoint, (_s, i) => i === 0);
  },
  'UNKNOWN_KEY',
  /did not cosign/,
);
test(
  'the cosignature altered',
  tampered,
  3,
  (json) => {
    json.checkpoint = flipSignature(json.checkpoint, 1);
  },
  'BAD_SIGNATURE',
);
test(
  "the device's signature altered",
  tampered,
  'none',
  (json) => {
    json.checkpoint = flipSignature(json.checkpoint, 0);
  },
  'BAD_SIGNATURE',
);
test(
  "another device's checkpoint",
  tampered,
  3,
  (json, s) => {
    json.checkpoint = s.otherDeviceNote;
  },
  'UNKNOWN_KEY',
);
test(
  'a wrong consistency proof for the right entries',
  tampered,
  3,
  (json) => {
    const hash = fromBase64(json.consistencyProof[0]!);
    hash[0]! ^= 1;
    json.consistencyProof[0] = toBase64(hash);
  },
  'BAD_PROOF',
  /the replica is faulty, the device is not/,
);
test(
  'a consistency proof cut short',
  tampered,
  3,
  (json) => {
    json.consistencyProof.pop();
  },
  'BAD_PROOF',
);

test('tampering: an older checkpoint carries both notes in a RollbackError', async (t) => {
  const s = await hostileScenario();
  const proxy = await startProxy(
    plain.url,
    onEntries((json) => {
      json.checkpoint = s.at3.cosignedNote;
    }),
  );
  try {
    const log = logAt(s, 5);
    const error = await fails(
      t,
      log,
      () => attempt(connect(s.w.device, proxy.url), s.w, log, plain.cosigner),
      'ROLLBACK',
    );
    t.true(error instanceof RollbackError);
    await checkEvidence(t, s.w, error, s.at5.pin.note, s.at3.cosignedNote);
  } finally {
    await proxy.close();
  }
});

test('tampering: an answer that is not JSON is INTEGRITY', async (t) => {
  const s = await hostileScenario();
  const proxy = await startProxy(plain.url, ({ path: p }) => (p.includes('/entries') ? '{"checkpoint":' : undefined));
  try {
    const log = logAt(s, 3);
    await fails(
      t,
      log,
      () => attempt(connect(s.w.device, proxy.url), s.w, log, plain.cosigner),
      'INTEGRITY',
      /malformed answer/,
    );
  } finally {
    await proxy.close();
  }
});

test('tampering with a later page: an older checkpoint is ROLLBACK against the first page', async (t) => {
  const w = await writer(paged);
  await append(w, paged, 4);
  const older = await connect(w.device, paged).checkpoint(w.id, w.device.publicKey);
  await append(w, paged, 2);
  let target = '';
  const proxy = await startProxy(
    paged.url,
    onEntries((json, call) => {
      if (call === 0) target = json.checkpoint;
      if (call === 1) json.checkpoint = older;
    }),
  );
  try {
    const log = fresh();
    const error = await fails(t, log, () => attempt(connect(w.device, proxy.url), w, log, paged.cosigner), 'ROLLBACK');
    await checkEvidence(t, w, error, target, older);
  } finally {
    await proxy.close();
  }
});

test('tampering with a later page: a grown checkpoint not proven to extend the first is EQUIVOCATION', async (t) => {
  const w = await writer(paged);
  await append(w, paged, 4);
  await append(w, paged, 2);
  const proxy = await startProxy(
    paged.url,
    onEntries(async (json, call) => {
      if (call === 0) await append(w, paged, 2);
      if (call === 1) json.consistencyProof = json.consistencyProof.map(() => toBase64(randomBytes(32)));
    }),
  );
  try {
    const log = fresh();
    const error = await fails(
      t,
      log,
      () => attempt(connect(w.device, proxy.url), w, log, paged.cosigner),
      'EQUIVOCATION',
    );
    t.true(error instanceof EquivocationError);
  } finally {
    await proxy.close();
  }
});

// ---------------------------------------------------------------------------
// A replica serving a device's own signed log of misplaced or unknown entries,
// which an honest server refuses to store: a fake replica in a fetch function.

async function fakeReplica(request: AppendRequest): Promise<{ transport: ReplicaTransport; cosigner: Cosigner }> {
  const signer = await cosignatureSigner('fake.test/w', randomBytes(32));
  const cosigner = { name: signer.name, publicKey: signer.publicKey };
  const checkpoint = await addNoteSignatures(request.checkpoint, [signer]);
  const info = {
    name: 'fake',
    version: '0',
    protocolVersions: [1],
    cosigner: {
      name: signer.name,
      publicKey: toBase64(signer.publicKey),
      vkey: formatCosignerVkey(signer.name, signer.publicKey),
    },
    limits: { maxBatchEntries: 1024 },
  };
  const device = await TestDevice.create();
  const transport = connect(device, 'http://fake.test', async (input) => {
    if (String(input).endsWith('/v1/info')) return Response.json(info);
    return Response.json(
      encodeEntriesResponse({
        checkpoint,
        start: 0,
        entries: request.entries,
        inclusionProofs: request.entries.map(() => []),
        consistencyProof: [],
      }),
    );
  });
  return { transport, cosigner };
}

const misplaced = test.macro({
  async exec(
    t,
    make: (device: TestDevice, vaultId: string) => Promise<void>,
    code: ErrorCode,
    message: RegExp,
  ): Promise<void> {
    const device = await TestDevice.create();
    const vaultId = toHex(randomBytes(32));
    await make(device, vaultId);
    const { transport, cosigner } = await fakeReplica(await device.appendFrom(vaultId, 0));
    const w = { device, vaultId, id: fromHex(vaultId) };
    const log = fresh();
    await fails(t, log, () => attempt(transport, w, log, cosigner), code, message);
  },
  title: (title = '', _make: unknown, code: ErrorCode) => `a signed log with ${title} is ${code}`,
});

test(
  'an entry copied to another index',
  misplaced,
  async (device, vaultId) => {
    await device.nextAppend(vaultId, { values: 1 });
    await device.writeRaw(vaultId, () => device.entries(vaultId)[0]!);
  },
  'INTEGRITY',
  /entry 1 of device .* names another place .*index 0\): it was moved/,
);
test(
  "another vault's entry",
  misplaced,
  async (device, vaultId) => {
    const elsewhere = toHex(randomBytes(32));
    await device.nextAppend(elsewhere, { values: 1 });
    await device.writeRaw(vaultId, () => device.entries(elsewhere)[0]!);
  },
  'INTEGRITY',
  /entry 0 of device .* names another place/,
);
test(
  'an entry that does not decode',
  misplaced,
  async (device, vaultId) => {
    await device.writeRaw(vaultId, () => randomBytes(120));
  },
  'INTEGRITY',
  /entry 0 of device .* does not decode/,
);
test(
  'an entry of an unknown type',
  misplaced,
  async (device, vaultId) => {
    await device.nextAppend(vaultId, { values: 1 });
    const entry = device.entries(vaultId)[0]!.slice();
    entry[15] = 4; // the type byte, after the 15-byte tag
    device.rewind(vaultId, 0);
    await device.writeRaw(vaultId, () => entry);
  },
  'UNSUPPORTED_VERSION',
  /unknown entry type 4/,
);

// ---------------------------------------------------------------------------
// Helpers: the proxy and note surgery

type Rewrite = (exchange: {
  method: string;
  path: string;
  status: number;
  body: Buffer;
}) => Promise<Buffer | string | undefined> | Buffer | string | undefined;

/**
 * An HTTP proxy on 127.0.0.1 that forwards to `target` and lets `rewrite`
 * replace answer bodies. Request signatures cover the method, path and body,
 * not the host, so forwarding the Authorization header as is works.
 */
async function startProxy(target: string, rewrite: Rewrite): Promise<{ url: string; close(): Promise<void> }> {
  const forward = async (req: IncomingMessage, res: ServerResponse) => {
    try {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const body = Buffer.concat(chunks);
      const headers: Record<string, string> = {};
      for (const name of ['authorization', 'content-type', 'accept']) {
        const value = req.headers[name];
        if (typeof value === 'string') headers[name] = value;
      }
      const upstream = await fetch(target + req.url, {
        method: req.method ?? 'GET',
        headers,
        ...(body.length > 0 ? { body } : {}),
      });
      const answer = Buffer.from(await upstream.arrayBuffer());
      const replaced = await rewrite({
        method: req.method ?? 'GET',
        path: req.url ?? '/',
        status: upstream.status,
        body: answer,
      });
      res.writeHead(upstream.status, {
        'content-type': upstream.headers.get('content-type') ?? 'application/octet-stream',
      });
      res.end(replaced ?? answer);
    } catch (error) {
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`proxy failed: ${String(error)}`);
    }
  };
  return listen((req, res) => void forward(req, res));
}

/** A rewrite of successful entries answers; `call` counts them from 0. */
function onEntries(edit: (json: EntriesJson, call: number) => void | Promise<void>): Rewrite {
  let call = 0;
  return async ({ path: p, status, body }) => {
    if (!p.includes('/entries?') || status !== 200) return undefined;
    const json = JSON.parse(body.toString('utf8')) as EntriesJson;
    await edit(json, call++);
    return JSON.stringify(json);
  };
}

function keepSignatures(note: string, keep: (s: unknown, index: number) => boolean): string {
  const parsed = parseNote(note);
  return formatNote({ text: parsed.text, signatures: parsed.signatures.filter(keep) });
}

/** Flips the last bit of signature line `index` (0 is the device's, 1 the replica's). */
function flipSignature(note: string, index: number): string {
  const parsed = parseNote(note);
  const signature = parsed.signatures[index]!;
  const bytes = signature.signature.slice();
  bytes[bytes.length - 1]! ^= 1;
  parsed.signatures[index] = { ...signature, signature: bytes };
  return formatNote(parsed);
}
