/**
 * The raw ingest side of the benchmarks, shared by bench/server-ingest.ts and
 * bench/compare.ts: a keep-alive HTTP client, request signing at send time
 * over a precomputed body hash, and BenchWriter, a device that continues its
 * log with data entries built (sealed, hashed into its Merkle tree,
 * checkpoint signed) ahead of the timed loop.
 */
import { createHash, randomFillSync } from 'node:crypto';
import http from 'node:http';
import {
  EnvelopePurpose,
  MerkleTree,
  NO_BLINDED_KEY,
  REQUEST_NONCE_LENGTH,
  ValueKind,
  bytesEqual,
  deriveValueKey,
  deviceCheckpointSigner,
  encodeAppendRequest,
  encodeCreateVaultRequest,
  encodeEntry,
  encodeEntryMeta,
  encodeItemPayload,
  formatAuthorization,
  fromBase64,
  fromHex,
  leafHash,
  randomBytes,
  requestSignatureInput,
  sealEnvelope,
  signDeviceCheckpoint,
} from '@e2ekv/protocol';
import type { AppendRequest, Ed25519Signer, HybridClock, NoteSigner } from '@e2ekv/protocol';
import { TestDevice } from '../server/test/support/writer.js';

/** Bytes of the random value each data entry seals. */
export const VALUE_BYTES = 1024;
// ---------------------------------------------------------------------------
// A tiny HTTP client: keep-alive sockets, one request per socket at a time.
// (Bare fetch tops out around 2,500 requests/s here and would cap the numbers.)

export interface HttpReply {
  status: number;
  text: string;
}

export class HttpClient {
  readonly #agent: http.Agent;
  readonly #host: string;
  readonly #port: number;

  constructor(baseUrl: string, maxSockets: number) {
    const url = new URL(baseUrl);
    this.#host = url.hostname;
    this.#port = Number(url.port);
    this.#agent = new http.Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets });
  }

  request(
    method: string,
    requestPath: string,
    body?: Buffer,
    headers: Record<string, string> = {},
  ): Promise<HttpReply> {
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          agent: this.#agent,
          host: this.#host,
          port: this.#port,
          method,
          path: requestPath,
          headers:
            body === undefined
              ? headers
              : { ...headers, 'content-type': 'application/json', 'content-length': String(body.length) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  close(): void {
    this.#agent.destroy();
  }
}

// ---------------------------------------------------------------------------
// Request signing at send time.

const EMPTY = new Uint8Array(0);

export function sha256Node(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(bytes).digest());
}

/**
 * The Authorization header of one POST (SPEC.md section 18). Same bytes as
 * signRequest, except that the body's SHA-256 comes precomputed: the signature
 * input ends with it, and hashing a 256-entry body with the protocol's
 * JavaScript SHA-256 takes ~4 ms, which would make the client the bottleneck.
 */
export async function authorize(
  signer: Ed25519Signer,
  audience: Uint8Array,
  requestPath: string,
  bodyHash: Uint8Array,
) {
  const timestampMs = BigInt(Date.now());
  const nonce = randomBytes(REQUEST_NONCE_LENGTH);
  const input = requestSignatureInput({
    audience,
    device: signer.publicKey,
    timestampMs,
    nonce,
    method: 'POST',
    path: requestPath,
    body: EMPTY,
  });
  input.set(bodyHash, input.length - bodyHash.length);
  return formatAuthorization({ device: signer.publicKey, timestampMs, nonce, signature: await signer.sign(input) });
}

// Shortcuts for building bodies ahead: node:crypto SHA-256 and Buffer base64
// are 5 to 10 times faster than the protocol's portable JavaScript, and produce
// the same bytes (checkShortcuts makes sure of it before anything runs).

const LEAF_PREFIX = Uint8Array.of(0);

/** RFC 6962 leaf hash, as protocol's leafHash. */
export function fastLeafHash(entry: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(LEAF_PREFIX).update(entry).digest());
}

export function base64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

/** JSON.stringify(encodeAppendRequest(request)), with fast base64. */
export function encodeAppendBody(request: AppendRequest): string {
  return JSON.stringify({
    start: request.start,
    entries: request.entries.map(base64),
    blobs: request.blobs.map(base64),
    checkpoint: request.checkpoint,
    consistencyProof: request.consistencyProof.map(base64),
  });
}

/** Fails loudly if a shortcut ever stops producing what the protocol's own code does. */
export function checkShortcuts(): void {
  const body = randomBytes(100);
  const request = {
    audience: randomBytes(32),
    device: randomBytes(32),
    timestampMs: 1n,
    nonce: randomBytes(REQUEST_NONCE_LENGTH),
    method: 'POST',
    path: '/v1/x',
  };
  const expected = requestSignatureInput({ ...request, body });
  const shortcut = requestSignatureInput({ ...request, body: EMPTY });
  shortcut.set(sha256Node(body), shortcut.length - 32);
  if (!bytesEqual(expected, shortcut)) throw new Error('the request signature input no longer ends with SHA-256(body)');
  for (const length of [0, 1, 2, 3, 1344]) {
    const bytes = randomBytes(length);
    if (!bytesEqual(fastLeafHash(bytes), leafHash(bytes))) throw new Error('fastLeafHash differs from leafHash');
  }
  const append: AppendRequest = {
    start: 3,
    entries: [randomBytes(1344), randomBytes(1)],
    blobs: [randomBytes(2)],
    checkpoint: 'note\n',
    consistencyProof: [randomBytes(32)],
  };
  if (encodeAppendBody(append) !== JSON.stringify(encodeAppendRequest(append))) {
    throw new Error('encodeAppendBody differs from encodeAppendRequest');
  }
}

/** A setup request, signed the ordinary way. */
export async function signedPost(
  client: HttpClient,
  device: TestDevice,
  audience: Uint8Array,
  requestPath: string,
  json: unknown,
) {
  const body = Buffer.from(JSON.stringify(json));
  const authorization = await device.authorize({ audience, method: 'POST', path: requestPath, body });
  const reply = await client.request('POST', requestPath, body, { authorization });
  if (reply.status !== 200 && reply.status !== 201) {
    throw new Error(`setup request ${requestPath} answered ${reply.status}: ${reply.text.slice(0, 500)}`);
  }
}

/** A replica the raw writers talk to: its client and its cosigner key (the audience of signed requests). */
export interface RawReplica {
  client: HttpClient;
  audience: Uint8Array;
}

/** The audience of signed requests to a replica: its cosigner key, from /v1/info. */
export async function replicaAudience(client: HttpClient): Promise<Uint8Array> {
  const reply = await client.request('GET', '/v1/info');
  if (reply.status !== 200) throw new Error(`/v1/info answered ${reply.status}: ${reply.text.slice(0, 500)}`);
  return fromBase64((JSON.parse(reply.text) as { cosigner: { publicKey: string } }).cosigner.publicKey);
}

/**
 * A new vault on every replica given, with `writerCount` devices: the
 * creator (devices[0]) and the others, added as writers by the creator.
 */
export async function createSharedVault(
  replicas: readonly RawReplica[],
  writerCount: number,
): Promise<{ vaultId: string; devices: TestDevice[] }> {
  const devices = await Promise.all(Array.from({ length: writerCount }, () => TestDevice.create()));
  const creator = devices[0]!;
  const { signedGenesis, vaultId } = await creator.genesis();
  for (const r of replicas) {
    await signedPost(r.client, creator, r.audience, '/v1/vaults', encodeCreateVaultRequest({ genesis: signedGenesis }));
  }
  for (const other of devices.slice(1)) {
    const append = await creator.membershipAppend(vaultId, other.addChange('writer'));
    for (const r of replicas) {
      await signedPost(
        r.client,
        creator,
        r.audience,
        `/v1/vaults/${vaultId}/logs/${creator.hex}/append`,
        encodeAppendRequest(append),
      );
    }
  }
  return { vaultId, devices };
}

/** Sends one prepared append of `writer` to a replica; throws unless it answered 200. */
export async function sendAppend(replica: RawReplica, writer: BenchWriter, append: PreparedAppend): Promise<void> {
  const authorization = await authorize(writer.signer, replica.audience, writer.appendPath, append.bodyHash);
  const reply = await replica.client.request('POST', writer.appendPath, append.body, { authorization });
  if (reply.status !== 200) {
    throw new Error(
      `append of entries ${append.start}+${append.entries} answered ${reply.status}: ${reply.text.slice(0, 500)}`,
    );
  }
}

/**
 * Appends `entries` entries to `writer`'s log on every replica given, in
 * appends of the writer's batch size (the last one smaller), one append in
 * flight per replica while the next is built. For loading large vaults.
 */
export async function streamEntries(
  replicas: readonly RawReplica[],
  writer: BenchWriter,
  entries: number,
  onProgress?: (sent: number) => void,
): Promise<void> {
  let inFlight: Promise<unknown> = Promise.resolve();
  for (let sent = 0; sent < entries;) {
    const append = await writer.build(Math.min(writer.batch, entries - sent));
    await inFlight;
    inFlight = Promise.all(replicas.map((r) => sendAppend(r, writer, append)));
    sent += append.entries;
    onProgress?.(sent);
  }
  await inFlight;
}

// ---------------------------------------------------------------------------
// Writers: each continues its device's log with data entries, prepared ahead.

export interface PreparedAppend {
  /** The log's size before this append: the request's `start`. */
  start: number;
  entries: number;
  body: Buffer;
  bodyHash: Uint8Array;
}

export class BenchWriter {
  readonly device: TestDevice;
  readonly vaultId: string;
  readonly appendPath: string;
  readonly #vaultId: Uint8Array;
  readonly #checkpointSigner: NoteSigner;
  readonly #valueKey: Uint8Array;
  readonly #tree: MerkleTree;
  readonly #batch: number;
  readonly #poolSize: number;
  readonly #opaque: boolean;
  /** Opaque mode: the lengths of a really sealed entry's two envelopes. */
  #sealedLengths: { meta: number; envelope: number } | undefined;
  #clock: HybridClock = { wallMs: 0n, counter: 0 };
  /** Built appends; `#dropped` of them were dropped from the front. */
  #prepared: PreparedAppend[] = [];
  #dropped = 0;
  /** Absolute index of the next append e2ekv gets. */
  #e2ekvNext = 0;
  #baselineNext = 0;
  #baselineCycle = 0;

  private constructor(
    device: TestDevice,
    vaultId: string,
    checkpointSigner: NoteSigner,
    batch: number,
    poolSize: number,
    opaque: boolean,
  ) {
    this.device = device;
    this.vaultId = vaultId;
    this.appendPath = `/v1/vaults/${vaultId}/logs/${device.hex}/append`;
    this.#vaultId = fromHex(vaultId);
    this.#checkpointSigner = checkpointSigner;
    // A fresh random epoch secret: the server never sees keys, so any will do.
    this.#valueKey = deriveValueKey(randomBytes(32), this.#vaultId, 0);
    // Continues whatever the device already wrote (the creator's membership entries).
    this.#tree = new MerkleTree(device.entries(vaultId).map(fastLeafHash));
    this.#batch = batch;
    this.#poolSize = poolSize;
    this.#opaque = opaque;
  }

  /**
   * `opaque`: after the first entry, the two envelopes of each entry are random
   * bytes of the length really sealed ones have (windows into a pool of random
   * bytes), instead of being sealed. The
   * server holds no key, so it cannot tell them apart; this only saves the
   * client's sealing time when loading large vaults (readers with keys would
   * fail to open them).
   */
  static async takeOver(
    device: TestDevice,
    vaultId: string,
    batch: number,
    poolSize: number,
    options: { opaque?: boolean } = {},
  ): Promise<BenchWriter> {
    const signer = await deviceCheckpointSigner(device.seed, fromHex(vaultId));
    return new BenchWriter(device, vaultId, signer, batch, poolSize, options.opaque === true);
  }

  /** Entries in this device's log, counting the ones prepared and not sent yet. */
  get size(): number {
    return this.#tree.size;
  }

  get signer(): Ed25519Signer {
    return this.device.signer;
  }

  /** Appends ready for e2ekv. */
  get readyForE2ekv(): number {
    return this.#dropped + this.#prepared.length - this.#e2ekvNext;
  }

  /** Builds appends until `count` are ready for e2ekv. */
  async prepare(count: number): Promise<void> {
    while (this.readyForE2ekv < count) this.#prepared.push(await this.#build());
  }

  /** The next append of this log, in order; undefined when none is prepared. */
  nextForE2ekv(): PreparedAppend | undefined {
    const next = this.#prepared[this.#e2ekvNext - this.#dropped];
    if (next !== undefined) this.#e2ekvNext++;
    return next;
  }

  /**
   * The baseline checks nothing, so it may take the same bodies again: it cycles
   * through the most recent ones, each cycle under a different vault id in the
   * path, so that its (vault, device, index) keys stay unique. This way the
   * baseline, which runs faster, needs no bodies beyond those built for e2ekv.
   */
  nextForBaseline(): { path: string; append: PreparedAppend } {
    const first = this.#dropped;
    if (this.#baselineNext < first || this.#baselineNext >= first + this.#prepared.length) {
      this.#baselineNext = first;
      this.#baselineCycle++;
    }
    const append = this.#prepared[this.#baselineNext++ - first]!;
    return { path: this.#baselinePath(), append };
  }

  /** Starts a new baseline cycle (at a run's start, so keys stay unique when the pool moved). */
  newBaselineCycle(): void {
    this.#baselineNext = -1;
  }

  /** Drops bodies e2ekv has sent that the baseline pool no longer needs. */
  trim(): void {
    const keepFrom = Math.max(this.#dropped, this.#e2ekvNext - this.#poolSize);
    this.#prepared.splice(0, keepFrom - this.#dropped);
    this.#dropped = keepFrom;
  }

  #baselinePath(): string {
    // Same length as the real path: the cycle number replaces the vault id's first 8 hex digits.
    const cycle = this.#baselineCycle.toString(16).padStart(8, '0');
    return `/v1/vaults/${cycle}${this.vaultId.slice(8)}/logs/${this.device.hex}/append`;
  }

  /** Entries per prepared append. */
  get batch(): number {
    return this.#batch;
  }

  /** Builds one append of `entries` entries (for streamEntries: not kept, not counted as prepared). */
  async build(entries: number): Promise<PreparedAppend> {
    if (this.#prepared.length > this.#e2ekvNext - this.#dropped) {
      throw new Error('build() would continue the log past appends prepared and not sent yet');
    }
    return this.#build(entries);
  }

  async #build(batch = this.#batch): Promise<PreparedAppend> {
    const start = this.#tree.size;
    const entries: Uint8Array[] = [];
    for (let i = 0; i < batch; i++) {
      const entry = this.#dataEntry(BigInt(start + i));
      entries.push(entry);
      this.#tree.append(fastLeafHash(entry));
    }
    const size = this.#tree.size;
    const body = Buffer.from(
      encodeAppendBody({
        start,
        entries,
        blobs: [],
        checkpoint: await signDeviceCheckpoint(this.#checkpointSigner, { size: BigInt(size), root: this.#tree.root() }),
        consistencyProof: start > 0 ? this.#tree.consistencyProof(start, size) : [],
      }),
    );
    return { start, entries: batch, body, bodyHash: sha256Node(body) };
  }

  // What the SDK writes: sealed metadata (clock, empty context) and one item
  // whose inline envelope seals VALUE_BYTES random bytes under a blinded key.
  #dataEntry(index: bigint): Uint8Array {
    const device = this.signer.publicKey;
    const bind = { vaultId: this.#vaultId, device, logIndex: index, epoch: 0 };
    const wallMs = BigInt(Date.now());
    this.#clock =
      wallMs > this.#clock.wallMs
        ? { wallMs, counter: 0 }
        : { wallMs: this.#clock.wallMs, counter: this.#clock.counter + 1 };
    if (this.#sealedLengths !== undefined) {
      return encodeEntry({
        type: 'data',
        vaultId: this.#vaultId,
        device,
        index,
        epoch: 0,
        meta: randomFill(this.#sealedLengths.meta),
        items: [
          { blindedKey: randomFill(32), value: { kind: 'inline', envelope: randomFill(this.#sealedLengths.envelope) } },
        ],
      });
    }
    const meta = sealEnvelope(
      this.#valueKey,
      { ...bind, purpose: EnvelopePurpose.entryMeta, item: 0, blindedKey: NO_BLINDED_KEY },
      encodeEntryMeta({ clock: this.#clock, context: [] }, device),
    );
    const blindedKey = randomBytes(32);
    const envelope = sealEnvelope(
      this.#valueKey,
      { ...bind, purpose: EnvelopePurpose.itemValue, item: 0, blindedKey },
      encodeItemPayload({
        name: new TextEncoder().encode(`bench/${index}`),
        kind: ValueKind.bytes,
        value: randomBytes(VALUE_BYTES),
      }),
    );
    if (this.#opaque) this.#sealedLengths = { meta: meta.length, envelope: envelope.length };
    return encodeEntry({
      type: 'data',
      vaultId: this.#vaultId,
      device,
      index,
      epoch: 0,
      meta,
      items: [{ blindedKey, value: { kind: 'inline', envelope } }],
    });
  }
}

// Opaque envelopes are windows into one pool of random bytes, at offsets that
// walk through it: filling fresh random bytes per entry cost more than all the
// rest of building one (~16 µs per KiB here), and to a server without keys any
// window is as good as a ciphertext.
const POOL_BYTES = 4 * 1024 * 1024;
const pool = randomFillSync(new Uint8Array(POOL_BYTES));
let poolOffset = 0;
function randomFill(length: number): Uint8Array {
  poolOffset = (poolOffset + 7919) % (POOL_BYTES - length);
  return pool.subarray(poolOffset, poolOffset + length);
}
