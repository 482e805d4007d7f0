/**
 * The pieces of replication with logic of their own, without HTTP: what a
 * shipment holds (shipment.ts), the push queue's bounds (push-queue.ts), the
 * peer request layout and header (peer-auth.ts, SPEC.md 22.2), the vector
 * digest (SPEC.md 22.3) and peer specs (peer-config.ts).
 */
import test from 'ava';
import {
  ed25519Signer,
  concatBytes,
  cosignatureSigner,
  fromHex,
  randomBytes,
  sha256,
  toHex,
  utf8,
  verifyConsistency,
  verifyDeviceCheckpoint,
} from '@e2ekv/protocol';
import { Acceptor } from '../src/accept.js';
import { DEFAULT_LIMITS } from '../src/limits.js';
import { MembershipCache } from '../src/membership.js';
import {
  PeerRequestVerifier,
  parsePeerAuthorization,
  peerRequestSignatureInput,
  signPeerRequest,
} from '../src/peer-auth.js';
import { parsePeerSpec } from '../src/peer-config.js';
import { parseShipment, encodeShipment, vectorDigest } from '../src/peer-messages.js';
import { PushQueue } from '../src/push-queue.js';
import { buildShipment } from '../src/shipment.js';
import { MemoryStorage } from '../src/storage/memory.js';
import { TestDevice } from './support/writer.js';
import { asyncCodeOf, codeOf } from '../../test/support/errors.js';

async function replica() {
  const storage = new MemoryStorage();
  const acceptor = new Acceptor({
    storage,
    membership: new MembershipCache(storage),
    limits: DEFAULT_LIMITS,
    cosigner: await cosignatureSigner('replica.test/r', randomBytes(32)),
  });
  return { storage, acceptor };
}

// A log written in appends of 3, 5, 2 and 10 entries: checkpoints at 3, 8, 10 and 20.
async function written() {
  const source = await replica();
  const device = await TestDevice.create();
  const { signedGenesis, vaultId } = await device.genesis();
  await source.acceptor.createVault(signedGenesis);
  for (const [values, blobBytes] of [[3], [5, 5000], [2], [10]] as const) {
    await source.acceptor.append(
      vaultId,
      device.hex,
      await device.nextAppend(vaultId, { values, ...(blobBytes === undefined ? {} : { blobBytes }) }),
    );
  }
  return { ...source, device, vaultId, signedGenesis };
}

test('a shipment ends at the largest checkpoint the device signed within the limits', async (t) => {
  const { storage, acceptor, device, vaultId } = await written();
  const ship = (start: number, maxEntries: number, maxBytes = 1 << 22) =>
    buildShipment(storage, acceptor, vaultId, device.hex, start, { maxEntries, maxBytes });
  const sizeOf = async (start: number, maxEntries: number, maxBytes?: number) => {
    const s = await ship(start, maxEntries, maxBytes);
    return s.start + s.entries.length;
  };
  t.is(await sizeOf(0, 9), 8);
  t.is(await sizeOf(0, 100), 20);
  t.is(await sizeOf(4, 4), 8, 'from inside a batch to the end of it');
  t.is(await sizeOf(10, 5), 20, 'a batch longer than the limit is shipped whole');
  t.is(await sizeOf(0, 100, 1), 3, 'the byte cap stops at the first checkpoint');
  const entryBytes = device.entries(vaultId).map((e) => e.length);
  const upTo = (n: number) => entryBytes.slice(0, n).reduce((a, b) => a + b, 0);
  // Entries 3 to 7 each reference a blob (padded envelopes of a 5,000-byte value).
  const blobBytes = (await ship(3, 5)).blobs.reduce((n, b) => n + b.length, 0);
  t.true(blobBytes > 5 * 5000);
  t.is(await sizeOf(0, 100, upTo(8) + blobBytes), 8, 'entries and blobs of [0, 8) fit');
  t.is(await sizeOf(0, 100, upTo(8) + blobBytes - 1), 3, 'the blobs count');
  t.is(await asyncCodeOf(() => ship(20, 10)), 'NOT_FOUND');

  // Each shipment is what the device sent, checkpoint and proof included.
  const s = await ship(3, 100);
  t.deepEqual(s.entries, device.entries(vaultId).slice(3, 20));
  t.is(s.blobs.length, 5, 'the blobs the entries reference');
  const checkpoint = (await verifyDeviceCheckpoint(s.checkpoint, fromHex(vaultId), device.publicKey)).checkpoint;
  t.is(checkpoint.size, 20n);
  t.deepEqual(s.startRoot, device.tree(vaultId).root(3));
  t.notThrows(() => verifyConsistency(3n, 20n, s.consistencyProof, device.tree(vaultId).root(3), checkpoint.root));
  t.is((await ship(0, 100)).startRoot, undefined, 'no start root from 0');
  // And the JSON form carries it unchanged.
  t.deepEqual(parseShipment(JSON.parse(JSON.stringify(encodeShipment(s)))), s);
});

test('shipments taken one after another rebuild the log at another replica, which verifies each', async (t) => {
  const { storage, acceptor, device, vaultId, signedGenesis } = await written();
  const target = await replica();
  await target.acceptor.createVault(signedGenesis);
  let size = 0;
  let shipments = 0;
  while (size < 20) {
    const s = await buildShipment(storage, acceptor, vaultId, device.hex, size, { maxEntries: 6, maxBytes: 1 << 20 });
    size = (await target.acceptor.append(vaultId, device.hex, s, { fromPeer: true })).size;
    shipments++;
  }
  t.is(shipments, 4, '0→3, 3→8, 8→10, 10→20');
  t.deepEqual(await target.storage.getHead(vaultId, device.hex), await storage.getHead(vaultId, device.hex));
});

test('the push queue holds at most its bytes, one item per key in flight, in order', async (t) => {
  const sent: string[] = [];
  const gates: (() => void)[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const queue = new PushQueue<{ key: string; bytes: number; n: number }>({
    maxBytes: 100,
    concurrency: 2,
    send: async (item) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise<void>((resolve) => gates.push(resolve));
      sent.push(`${item.key}${item.n}`);
      inFlight--;
    },
  });
  t.true(queue.offer({ key: 'a', bytes: 30, n: 1 }));
  t.true(queue.offer({ key: 'a', bytes: 30, n: 2 }));
  t.true(queue.offer({ key: 'b', bytes: 30, n: 1 }));
  t.false(queue.offer({ key: 'c', bytes: 30, n: 1 }), 'over 100 bytes: dropped');
  t.true(queue.offer({ key: 'c', bytes: 10, n: 1 }));
  t.is(queue.bytes, 100);
  t.is(queue.items, 4);
  const idle = queue.idle();
  while (sent.length < 4) {
    await new Promise((resolve) => setImmediate(resolve));
    gates.shift()?.();
  }
  await idle;
  t.is(maxInFlight, 2);
  t.true(sent.indexOf('a1') < sent.indexOf('a2'), sent.join(' '));
  t.deepEqual([...sent].sort(), ['a1', 'a2', 'b1', 'c1']);
  t.is(queue.bytes, 0);
});

test('the peer request signature input is the layout of SPEC.md 22.2', async (t) => {
  const audience = new Uint8Array(32).fill(1);
  const sender = new Uint8Array(32).fill(2);
  const nonce = new Uint8Array(16).fill(3);
  const body = utf8('{"x":1}');
  const input = peerRequestSignatureInput({
    audience,
    sender,
    timestampMs: 1_700_000_000_123n,
    nonce,
    method: 'POST',
    path: '/v1/peer/vaults?after=ab',
    body,
  });
  const u64 = new Uint8Array(8);
  new DataView(u64.buffer).setBigUint64(0, 1_700_000_000_123n);
  const vec16 = (b: Uint8Array) => concatBytes(Uint8Array.of(b.length >> 8, b.length & 255), b);
  t.is(
    toHex(input),
    toHex(
      concatBytes(
        utf8('e2ekv/v1/peer-request\0'),
        audience,
        sender,
        u64,
        nonce,
        vec16(utf8('POST')),
        vec16(utf8('/v1/peer/vaults?after=ab')),
        sha256(body),
      ),
    ),
  );
  t.is(utf8('e2ekv/v1/peer-request\0').length, 22);
});

test('a peer request verifies once, for its audience, and the header is strict', async (t) => {
  const signer = await ed25519Signer(randomBytes(32));
  const audience = (await ed25519Signer(randomBytes(32))).publicKey;
  const verifier = new PeerRequestVerifier({ audience, windowMs: 60_000 });
  const request = { method: 'GET', path: '/v1/peer/vaults', body: new Uint8Array() };
  const header = await signPeerRequest(signer, { audience, ...request });
  t.regex(header, /^e2ekv-peer-v1 replica=[0-9a-f]{64},ts=[1-9][0-9]*,nonce=[0-9a-f]{32},sig=[A-Za-z0-9+/]{86}==$/);
  const accept = async (hex: string) => (hex === toHex(signer.publicKey) ? 'peer' : undefined);
  t.is(await verifier.verify({ ...request, authorization: header }, accept), 'peer');
  t.is(await asyncCodeOf(() => verifier.verify({ ...request, authorization: header }, accept)), 'UNAUTHENTICATED');
  const other = await signPeerRequest(signer, { audience, ...request });
  t.is(
    await asyncCodeOf(() => verifier.verify({ ...request, authorization: other }, async () => undefined)),
    'PERMISSION_DENIED',
  );
  const moved = await signPeerRequest(signer, { audience, ...request });
  t.is(
    await asyncCodeOf(() =>
      verifier.verify({ ...request, path: '/v1/peer/vaults?after=0', authorization: moved }, accept),
    ),
    'UNAUTHENTICATED',
  );
  for (const bad of [
    header.toUpperCase(),
    header.replace('e2ekv-peer-v1', 'e2ekv-v1'),
    header.replace(',ts=', ', ts='),
    header.replace('==', '='),
  ]) {
    t.is(
      codeOf(() => parsePeerAuthorization(bad)),
      'MALFORMED',
      bad,
    );
  }
});

test('the vector digest depends on every head and not on their order', (t) => {
  const heads = [
    { device: 'b'.repeat(64), size: 3, root: new Uint8Array(32).fill(7) },
    { device: 'a'.repeat(64), size: 10, root: new Uint8Array(32).fill(9) },
  ];
  const digest = vectorDigest(heads);
  t.is(digest, vectorDigest([...heads].reverse()));
  t.not(digest, vectorDigest([heads[0]!, { ...heads[1]!, size: 11 }]));
  t.not(digest, vectorDigest([heads[0]!, { ...heads[1]!, root: new Uint8Array(32).fill(8) }]));
  t.not(digest, vectorDigest([heads[0]!]));
  t.not(vectorDigest([]), digest);
});

test('peer specs: a base URL, with an optional key as vkey, base64 or hex', async (t) => {
  const key = (await ed25519Signer(randomBytes(32))).publicKey;
  const { formatCosignerVkey, toBase64 } = await import('@e2ekv/protocol');
  t.deepEqual(parsePeerSpec('https://r2.example:7400/'), { url: 'https://r2.example:7400' });
  for (const form of [formatCosignerVkey('r2.example/w', key), toBase64(key), toHex(key)]) {
    t.deepEqual(parsePeerSpec(`http://127.0.0.1:7401#${form}`), { url: 'http://127.0.0.1:7401', key }, form);
  }
  for (const bad of [
    'ftp://x',
    'http://x/prefix',
    'http://x?q=1',
    'http://u:p@x',
    'http://x#short',
    `http://x#${toHex(key).slice(2)}`,
  ]) {
    t.is(
      codeOf(() => parsePeerSpec(bad)),
      'INVALID_ARGUMENT',
      bad,
    );
  }
});
