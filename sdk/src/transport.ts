/**
 * HTTP access to one replica (server/API.md), for browsers and Node alike:
 * `fetch` (or, in Node when the caller passed no fetch, node:http with keep-alive
 * agents: http-node.ts), WebCrypto (through the protocol package) and
 * '@e2ekv/protocol'.
 *
 * This module signs requests and checks the *shape* of answers, nothing more.
 * A replica is not trusted: every checkpoint, entry and blob it returns must be
 * verified by the caller (log-sync.ts does it for logs and blobs). Failures come
 * out as E2ekvError with these codes:
 *
 * - the replica refused with a known code: a ReplicaError with that code, message
 *   "replica <url>: …" and the replica's `details` (its claims, not verified facts);
 * - the replica cannot be reached, timed out, or answered an error we cannot read:
 *   UNAVAILABLE (try again later or another replica);
 * - a 2xx answer that does not parse: INTEGRITY (the replica is broken or hostile).
 */
import {
  E2ekvError,
  encodeAppendRequest,
  fromBase64,
  isE2ekvError,
  isErrorCode,
  parseAppendResponse,
  parseCosignerVkey,
  parseEntriesResponse,
  parseVaultStateResponse,
  bytesEqual,
  signRequest,
  toBase64,
  toHex,
  utf8,
  type AppendRequest,
  type Cosigner,
  type Ed25519Signer,
  type ErrorCode,
  type EntriesResponse,
  type Role,
  type VaultStateResponse,
} from '@e2ekv/protocol';
import { nodeHttpSender, type HttpSender } from './http-node.js';

/** The protocol version whose paths (/v1/...) this transport speaks. */
const PROTOCOL_VERSION = 1;
const DEFAULT_TIMEOUT_MS = 30_000;
/** Error messages from a replica are cut to this many characters, so a hostile one cannot flood logs. */
const MAX_REMOTE_MESSAGE = 500;
const HEX64 = /^[0-9a-f]{64}$/;

export interface ReplicaTransportOptions {
  /** The replica's base URL, e.g. "https://replica1.example" (no trailing path is needed). */
  url: string;
  /** The device that signs every vault request. */
  signer: Ed25519Signer;
  /**
   * Defaults to node:http / node:https with keep-alive agents in Node (the event
   * stream of `events` still uses the global fetch there), and to the global
   * fetch elsewhere.
   */
  fetch?: typeof fetch;
  /** How long one request may take, answer body included (default 30 s). */
  timeoutMs?: number;
  /**
   * The cosigner this replica is pinned to, if the caller already knows it.
   * info() then refuses a replica presenting another key (UNKNOWN_KEY): a
   * replica whose key changes is a new replica, and requests must not be
   * signed for an audience someone else chose.
   */
  cosigner?: Cosigner;
}

/** Deployment limits the replica announces; only maxBatchEntries is required. */
export interface ReplicaLimits {
  readonly maxBatchEntries: number;
  readonly [name: string]: number;
}

/** GET /v1/info, checked for shape. Nothing in it is signed. */
export interface ReplicaInfo {
  name: string;
  version: string;
  protocolVersions: readonly number[];
  /** The replica's cosigner: the audience of signed requests and the key of its cosignatures. */
  cosigner: Cosigner;
  /** The cosigner as a C2SP vkey (type 0x04), as the replica published it. */
  vkey: string;
  limits: ReplicaLimits;
}

export interface ReplicaMembers {
  /** The roles this replica enforces (a claim: replay `entries` to know the truth). */
  members: { device: string; role: Role }[];
  /** The membership entries the roles come from, as the replica holds them. */
  entries: { device: string; index: number; entry: Uint8Array }[];
}

export interface ReplicaEvidence {
  device: string;
  first: string;
  second: string;
  recordedAtMs: number;
}

export interface CheckpointEvent {
  device: string;
  size: number;
}

/**
 * A refusal the replica itself sent (any non-2xx answer). Its code is the
 * replica's claim, not something this client verified: a replica answering
 * EQUIVOCATION or INTEGRITY about a request proves nothing about the vault.
 */
export class ReplicaError extends E2ekvError {
  /** The replica's base URL. */
  readonly replica: string;
  /** The HTTP status it answered with. */
  readonly status: number;

  constructor(
    code: ErrorCode,
    message: string,
    options: { replica: string; status: number; details?: Record<string, string | number | boolean> },
  ) {
    super(code, message, options.details === undefined ? {} : { details: options.details });
    this.name = 'ReplicaError';
    this.replica = options.replica;
    this.status = options.status;
  }
}

/** A vault ID or device key: 32 bytes, or the same as 64 lowercase hex digits. */
export type Key32 = Uint8Array | string;

type Json = Record<string, unknown>;

export class ReplicaTransport {
  /** The base URL, without a trailing slash; used in every error message. */
  readonly url: string;
  readonly #signer: Ed25519Signer;
  /** The caller's fetch, if it passed one. */
  readonly #fetch: typeof fetch | undefined;
  /** node:http, when there is no caller's fetch and this runs in Node. */
  readonly #node: HttpSender | undefined;
  readonly #timeoutMs: number;
  /** Aborted by close(): ends event streams. */
  readonly #closing = new AbortController();
  readonly #pinned: Cosigner | undefined;
  #info: Promise<ReplicaInfo> | undefined;

  constructor(options: ReplicaTransportOptions) {
    let parsed: URL;
    try {
      parsed = new URL(options.url);
    } catch (cause) {
      throw new E2ekvError('INVALID_ARGUMENT', `${JSON.stringify(options.url)} is not a URL`, { cause });
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw new E2ekvError('INVALID_ARGUMENT', `replica URL ${options.url} must be http:// or https://`);
    }
    if (parsed.search !== '' || parsed.hash !== '') {
      throw new E2ekvError('INVALID_ARGUMENT', `replica URL ${options.url} must not have a query or fragment`);
    }
    this.url = options.url.replace(/\/+$/, '');
    this.#signer = options.signer;
    this.#fetch = options.fetch;
    this.#node = options.fetch === undefined ? nodeHttpSender() : undefined;
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!Number.isSafeInteger(timeoutMs) || timeoutMs <= 0) {
      throw new E2ekvError('INVALID_ARGUMENT', `timeoutMs must be a positive whole number of milliseconds`);
    }
    this.#timeoutMs = timeoutMs;
    this.#pinned = options.cosigner;
  }

  /** Whether close() was called. */
  get closed(): boolean {
    return this.#closing.signal.aborted;
  }

  /**
   * Releases the connections this transport keeps open (Node's keep-alive
   * sockets) and ends its event streams. Requests after close() fail with
   * UNAVAILABLE. Idle keep-alive sockets never keep a Node process alive, even
   * without close().
   */
  close(): void {
    if (this.#closing.signal.aborted) return;
    this.#closing.abort(new E2ekvError('UNAVAILABLE', `the transport to replica ${this.url} was closed`));
    this.#node?.close();
  }

  /**
   * GET /v1/info, fetched once and cached (a failed fetch is not cached, so the
   * next call tries again).
   */
  info(): Promise<ReplicaInfo> {
    this.#info ??= this.#fetchInfo().catch((error: unknown) => {
      this.#info = undefined;
      throw error;
    });
    return this.#info;
  }

  /** POST /v1/vaults. `created` is false when the replica already held the vault. */
  async createVault(signedGenesis: Uint8Array): Promise<{ vaultId: string; created: boolean }> {
    const { status, body } = await this.#json('POST', '/v1/vaults', { genesis: toBase64(signedGenesis) });
    return this.#parse(() => {
      const o = object(body, 'create-vault answer', ['vaultId']);
      return { vaultId: hex64(o['vaultId'], 'vaultId'), created: status === 201 };
    });
  }

  /** GET /v1/vaults/{vault}: the genesis and the replica's vector of log heads. */
  async vaultState(vaultId: Key32): Promise<VaultStateResponse> {
    const { body } = await this.#json('GET', vaultPath(vaultId));
    return this.#parse(() => parseVaultStateResponse(body));
  }

  /** GET /v1/vaults/{vault}/members. */
  async members(vaultId: Key32): Promise<ReplicaMembers> {
    const { body } = await this.#json('GET', `${vaultPath(vaultId)}/members`);
    return this.#parse(() => {
      const o = object(body, 'members answer', ['members', 'entries']);
      return {
        members: list(o['members'], 'members').map((m, i) => {
          const member = object(m, `members[${i}]`, ['device', 'role']);
          return { device: hex64(member['device'], 'device'), role: role(member['role']) };
        }),
        entries: list(o['entries'], 'entries').map((e, i) => {
          const entry = object(e, `entries[${i}]`, ['device', 'index', 'entry']);
          return {
            device: hex64(entry['device'], 'device'),
            index: count(entry['index'], 'index'),
            entry: fromBase64(text(entry['entry'], 'entry'), 'entry'),
          };
        }),
      };
    });
  }

  /**
   * POST /v1/vaults/{vault}/logs/{this device}/append. Returns the replica's
   * answer: the checkpoint note with its cosignature (unverified).
   */
  async append(vaultId: Key32, request: AppendRequest): Promise<string> {
    const path = `${vaultPath(vaultId)}/logs/${toHex(this.#signer.publicKey)}/append`;
    const { body } = await this.#json('POST', path, encodeAppendRequest(request));
    return this.#parse(() => parseAppendResponse(body).checkpoint);
  }

  /** GET /v1/vaults/{vault}/logs/{device}/checkpoint: the latest cosigned checkpoint note (unverified). */
  async checkpoint(vaultId: Key32, device: Key32): Promise<string> {
    const { body } = await this.#send('GET', `${logPath(vaultId, device)}/checkpoint`);
    return decodeText(body, this.url);
  }

  /**
   * GET /v1/vaults/{vault}/logs/{device}/entries: entries [start, min(end, size)),
   * at most the replica's maxBatchEntries, with proofs against the returned
   * checkpoint, and a consistency proof from `proofFrom` (at least 1) when given.
   */
  async entries(
    vaultId: Key32,
    device: Key32,
    start: number,
    end: number,
    proofFrom?: number,
  ): Promise<EntriesResponse> {
    checkCount(start, 'start');
    checkCount(end, 'end');
    if (end < start) throw new E2ekvError('INVALID_ARGUMENT', `end ${end} is before start ${start}`);
    let query = `?start=${start}&end=${end}`;
    if (proofFrom !== undefined) {
      checkCount(proofFrom, 'proofFrom');
      if (proofFrom === 0) {
        throw new E2ekvError(
          'INVALID_ARGUMENT',
          'proofFrom must be at least 1: a consistency proof from size 0 proves nothing (omit it)',
        );
      }
      query += `&proofFrom=${proofFrom}`;
    }
    const { body } = await this.#json('GET', `${logPath(vaultId, device)}/entries${query}`);
    return this.#parse(() => parseEntriesResponse(body));
  }

  /** GET /v1/vaults/{vault}/blobs/{hash}: the blob bytes, unverified (see pullBlob). */
  async blob(vaultId: Key32, hashHex: string): Promise<Uint8Array> {
    if (!HEX64.test(hashHex)) {
      throw new E2ekvError('INVALID_ARGUMENT', 'a blob hash is 64 lowercase hex digits (a SHA-256)');
    }
    return (await this.#send('GET', `${vaultPath(vaultId)}/blobs/${hashHex}`)).body;
  }

  /** GET /v1/vaults/{vault}/evidence: checkpoint pairs this replica found inconsistent (verify them). */
  async evidence(vaultId: Key32): Promise<ReplicaEvidence[]> {
    const { body } = await this.#json('GET', `${vaultPath(vaultId)}/evidence`);
    return this.#parse(() =>
      list(object(body, 'evidence answer', ['evidence'])['evidence'], 'evidence').map((e, i) => {
        const o = object(e, `evidence[${i}]`, ['device', 'first', 'second', 'recordedAtMs']);
        return {
          device: hex64(o['device'], 'device'),
          first: text(o['first'], 'first'),
          second: text(o['second'], 'second'),
          recordedAtMs: count(o['recordedAtMs'], 'recordedAtMs'),
        };
      }),
    );
  }

  /**
   * GET /v1/vaults/{vault}/events: calls `onEvent` for each `checkpoint` event
   * until the replica ends the stream (resolves), `signal` aborts (resolves), or
   * the connection fails (UNAVAILABLE) or carries a malformed event (INTEGRITY).
   * An event only says a log grew: fetch and verify the entries to learn more.
   * Reconnecting is the caller's choice; each connection is a fresh signed request.
   *
   * fetch rather than EventSource, because EventSource cannot send the
   * Authorization header. The timeout applies until the replica starts answering,
   * not to the stream, which may stay quiet for hours.
   */
  async events(
    vaultId: Key32,
    onEvent: (event: CheckpointEvent) => void,
    signal: AbortSignal,
    onOpen?: () => void,
  ): Promise<void> {
    if (signal.aborted) return;
    const path = `${vaultPath(vaultId)}/events`;
    const connection = new AbortController();
    const stop = () => connection.abort(signal.reason);
    signal.addEventListener('abort', stop, { once: true });
    const closed = () => connection.abort(this.#closing.signal.reason);
    this.#closing.signal.addEventListener('abort', closed, { once: true });
    const timer = setTimeout(
      () =>
        connection.abort(
          new E2ekvError('UNAVAILABLE', `replica ${this.url} did not answer within ${this.#timeoutMs} ms`),
        ),
      this.#timeoutMs,
    );
    try {
      let response: Response;
      try {
        response = await this.#fetchRequest('GET', path, undefined, {
          signal: connection.signal,
          accept: 'text/event-stream',
        });
      } finally {
        clearTimeout(timer);
      }
      if (response.body === null) return;
      // Events announce only what happens from now on: the caller catches up on what came before.
      onOpen?.();
      await readEventStream(response.body, (type, data) => {
        if (type === 'checkpoint') onEvent(this.#parse(() => checkpointEvent(data)));
      });
    } catch (error) {
      // The caller asked to stop: whatever the read was doing is moot.
      if (signal.aborted) return;
      if (this.#closing.signal.aborted) throw this.#closing.signal.reason;
      if (isE2ekvError(error)) throw error;
      throw this.#unreachable(error);
    } finally {
      signal.removeEventListener('abort', stop);
      this.#closing.signal.removeEventListener('abort', closed);
      connection.abort();
    }
  }

  async #fetchInfo(): Promise<ReplicaInfo> {
    const { body } = await this.#json('GET', '/v1/info');
    const info = this.#parse(() => parseInfo(body));
    if (!info.protocolVersions.includes(PROTOCOL_VERSION)) {
      throw new E2ekvError(
        'UNSUPPORTED_VERSION',
        `replica ${this.url} speaks protocol versions ${info.protocolVersions.join(', ')}, not ${PROTOCOL_VERSION}: upgrade the SDK or use another replica`,
      );
    }
    const pinned = this.#pinned;
    if (
      pinned !== undefined &&
      (pinned.name !== info.cosigner.name || !bytesEqual(pinned.publicKey, info.cosigner.publicKey))
    ) {
      throw new E2ekvError(
        'UNKNOWN_KEY',
        `replica ${this.url} presents cosigner ${info.vkey}, not the pinned ${pinned.name} key: a replica whose key changed is a new replica; re-pin it only if its operator confirms the change`,
      );
    }
    return info;
  }

  /** A request whose answer must be JSON. */
  async #json(method: 'GET' | 'POST', path: string, body?: Json): Promise<{ status: number; body: unknown }> {
    const answer = await this.#send(
      method,
      path,
      body === undefined ? undefined : utf8(JSON.stringify(body)),
      'application/json',
    );
    return { status: answer.status, body: this.#parse(() => JSON.parse(decodeText(answer.body, this.url)) as unknown) };
  }

  /**
   * Sends one request (signed when it is a vault route) and returns its 2xx
   * answer, body read in full; any other status becomes an error. Through
   * node:http when there is no caller's fetch in Node, else through fetch.
   */
  async #send(
    method: 'GET' | 'POST',
    path: string,
    body?: Uint8Array,
    accept?: string,
  ): Promise<{ status: number; body: Uint8Array }> {
    const node = this.#node;
    if (node === undefined) {
      const response = await this.#fetchRequest(method, path, body, accept === undefined ? {} : { accept });
      return { status: response.status, body: await this.#bytes(response) };
    }
    const headers = await this.#headers(method, path, body, accept);
    let answer: { status: number; body: Uint8Array };
    try {
      if (this.#closing.signal.aborted) throw this.#closing.signal.reason;
      answer = await node.send(method, this.url + path, headers, body, this.#timeoutMs);
    } catch (error) {
      throw this.#unreachable(error);
    }
    if (answer.status >= 200 && answer.status <= 299) return answer;
    throw this.#refusal(answer.status, answer.body);
  }

  /** The headers of a request: Accept, Content-Type, and the signature when it is a vault route. */
  async #headers(
    method: 'GET' | 'POST',
    path: string,
    body: Uint8Array | undefined,
    accept: string | undefined,
  ): Promise<Record<string, string>> {
    const target = this.url + path;
    const headers: Record<string, string> = {};
    if (accept !== undefined) headers['accept'] = accept;
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (path.startsWith('/v1/vaults')) {
      const { cosigner } = await this.info();
      // The replica rebuilds the signed input from the path it receives: sign exactly what goes on the wire.
      const sent = new URL(target);
      headers['authorization'] = await signRequest(this.#signer, {
        audience: cosigner.publicKey,
        method,
        path: sent.pathname + sent.search,
        body: body ?? new Uint8Array(0),
      });
    }
    return headers;
  }

  /**
   * Sends one request through fetch (the caller's, or the global one) and
   * returns a 2xx response whose body is still unread; any other status
   * becomes an error.
   */
  async #fetchRequest(
    method: 'GET' | 'POST',
    path: string,
    body?: Uint8Array,
    options: { signal?: AbortSignal; accept?: string } = {},
  ): Promise<Response> {
    const headers = await this.#headers(method, path, body, options.accept);
    let response: Response;
    try {
      if (this.#closing.signal.aborted) throw this.#closing.signal.reason;
      response = await (this.#fetch ?? fetch).call(globalThis, this.url + path, {
        method,
        headers,
        signal: options.signal ?? AbortSignal.timeout(this.#timeoutMs),
        ...(body === undefined ? {} : { body: body as BufferSource }),
      });
    } catch (error) {
      throw this.#unreachable(error);
    }
    if (response.ok) return response;
    let bytes: Uint8Array | undefined;
    try {
      bytes = new Uint8Array(await response.arrayBuffer());
    } catch {
      bytes = undefined;
    }
    throw this.#refusal(response.status, bytes);
  }

  async #bytes(response: Response): Promise<Uint8Array> {
    try {
      return new Uint8Array(await response.arrayBuffer());
    } catch (error) {
      throw this.#unreachable(error);
    }
  }

  /** The error a non-2xx answer stands for (`body` undefined: it could not be read). */
  #refusal(status: number, body: Uint8Array | undefined): ReplicaError {
    let parsed: unknown;
    try {
      // As Response.text() reads it: UTF-8, malformed sequences replaced, a BOM dropped.
      parsed = body === undefined ? undefined : (JSON.parse(lenientDecoder.decode(body)) as unknown);
    } catch {
      parsed = undefined;
    }
    const error = errorBody(parsed);
    if (error === undefined) {
      return new ReplicaError(
        'UNAVAILABLE',
        `replica ${this.url} answered HTTP ${status} without an e2ekv error: is the URL right? Try again later or use another replica`,
        { replica: this.url, status },
      );
    }
    return new ReplicaError(error.code, `replica ${this.url}: ${error.message}`, {
      replica: this.url,
      status,
      details: error.details,
    });
  }

  #unreachable(error: unknown): E2ekvError {
    if (isE2ekvError(error)) return error;
    const timedOut = error instanceof Error && error.name === 'TimeoutError';
    const reason = timedOut
      ? `no answer within ${this.#timeoutMs} ms`
      : error instanceof Error
        ? error.message
        : String(error);
    return new E2ekvError(
      'UNAVAILABLE',
      `replica ${this.url} did not answer: ${reason}. Try again later or use another replica`,
      {
        cause: error,
      },
    );
  }

  /** Runs a parser over a 2xx answer: anything it rejects means the replica is broken or hostile. */
  #parse<T>(parse: () => T): T {
    try {
      return parse();
    } catch (cause) {
      throw new E2ekvError('INTEGRITY', `replica ${this.url} sent a malformed answer`, { cause });
    }
  }
}

function vaultPath(vaultId: Key32): string {
  return `/v1/vaults/${key32(vaultId, 'vault ID')}`;
}

function logPath(vaultId: Key32, device: Key32): string {
  return `${vaultPath(vaultId)}/logs/${key32(device, 'device key')}`;
}

function key32(key: Key32, what: string): string {
  if (typeof key === 'string') {
    if (!HEX64.test(key)) throw new E2ekvError('INVALID_ARGUMENT', `${what} must be 64 lowercase hex digits`);
    return key;
  }
  if (key.length !== 32) throw new E2ekvError('INVALID_ARGUMENT', `${what} must be 32 bytes, got ${key.length}`);
  return toHex(key);
}

function checkCount(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new E2ekvError('INVALID_ARGUMENT', `${what} must be a non-negative whole number, got ${value}`);
  }
}

const utf8Decoder = new TextDecoder('utf-8', { fatal: true });
const lenientDecoder = new TextDecoder('utf-8');

function decodeText(bytes: Uint8Array, url: string): string {
  try {
    return utf8Decoder.decode(bytes);
  } catch (cause) {
    throw new E2ekvError('INTEGRITY', `replica ${url} sent a malformed answer`, { cause });
  }
}

/** `{ error: { code, message, details? } }` with a code we know, or undefined. */
function errorBody(
  value: unknown,
): { code: ErrorCode; message: string; details: Record<string, string | number | boolean> } | undefined {
  if (!isJsonObject(value) || !isJsonObject(value['error'])) return undefined;
  const { code, message, details } = value['error'];
  if (!isErrorCode(code) || typeof message !== 'string') return undefined;
  // Details are for programs (e.g. CONFLICT's "expected"): keep the plain values only.
  const kept: Record<string, string | number | boolean> = {};
  if (isJsonObject(details)) {
    for (const [name, v] of Object.entries(details)) {
      if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') kept[name] = v;
    }
  }
  const short = message.length > MAX_REMOTE_MESSAGE ? `${message.slice(0, MAX_REMOTE_MESSAGE)}…` : message;
  return { code, message: short, details: kept };
}

function isJsonObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function object(value: unknown, what: string, fields: readonly string[] | undefined): Json {
  if (!isJsonObject(value)) throw new E2ekvError('MALFORMED', `${what} must be a JSON object`);
  if (fields !== undefined) {
    for (const name of Object.keys(value)) {
      if (!fields.includes(name)) throw new E2ekvError('MALFORMED', `${what} has an unknown field "${name}"`);
    }
  }
  return value;
}

function list(value: unknown, what: string): unknown[] {
  if (!Array.isArray(value)) throw new E2ekvError('MALFORMED', `${what} must be an array`);
  return value;
}

function text(value: unknown, what: string): string {
  if (typeof value !== 'string') throw new E2ekvError('MALFORMED', `${what} must be a string`);
  return value;
}

function count(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new E2ekvError('MALFORMED', `${what} must be a non-negative integer`);
  }
  return value;
}

function hex64(value: unknown, what: string): string {
  const s = text(value, what);
  if (!HEX64.test(s)) throw new E2ekvError('MALFORMED', `${what} must be 64 lowercase hex digits`);
  return s;
}

function role(value: unknown): Role {
  if (value === 'reader' || value === 'writer' || value === 'admin') return value;
  throw new E2ekvError('MALFORMED', 'role must be reader, writer or admin');
}

/**
 * /v1/info. Unknown fields are tolerated here, unlike in the wire messages of
 * SPEC.md section 19: info is discovery, nothing in it is signed, and a newer
 * replica may announce more. The cosigner must agree with its own vkey.
 */
function parseInfo(value: unknown): ReplicaInfo {
  const o = object(value, 'info', undefined);
  const versions = list(o['protocolVersions'], 'protocolVersions').map((v, i) => count(v, `protocolVersions[${i}]`));
  const c = object(o['cosigner'], 'cosigner', undefined);
  const vkey = text(c['vkey'], 'cosigner.vkey');
  const cosigner = parseCosignerVkey(vkey);
  if (text(c['name'], 'cosigner.name') !== cosigner.name) {
    throw new E2ekvError('MALFORMED', 'cosigner.name differs from the name in cosigner.vkey');
  }
  if (!bytesEqual(fromBase64(text(c['publicKey'], 'cosigner.publicKey'), 'cosigner.publicKey'), cosigner.publicKey)) {
    throw new E2ekvError('MALFORMED', 'cosigner.publicKey differs from the key in cosigner.vkey');
  }
  const limits: Record<string, number> = {};
  for (const [name, v] of Object.entries(object(o['limits'], 'limits', undefined))) {
    limits[name] = count(v, `limits.${name}`);
  }
  const maxBatchEntries = limits['maxBatchEntries'];
  if (maxBatchEntries === undefined || maxBatchEntries < 1) {
    throw new E2ekvError('MALFORMED', 'limits.maxBatchEntries must be a positive integer');
  }
  return {
    name: text(o['name'], 'name'),
    version: text(o['version'], 'version'),
    protocolVersions: versions,
    cosigner,
    vkey,
    limits: { ...limits, maxBatchEntries },
  };
}

function checkpointEvent(data: string): CheckpointEvent {
  const o = object(JSON.parse(data) as unknown, 'checkpoint event', ['device', 'size']);
  return { device: hex64(o['device'], 'device'), size: count(o['size'], 'size') };
}

/**
 * Reads a server-sent event stream (the WHATWG "event stream interpretation",
 * restricted to what we use): lines end in LF, CRLF or CR; a blank line
 * dispatches the event built from its `event:` and `data:` lines; lines starting
 * with ":" are comments; `id:` and `retry:` are ignored. An event cut off by the
 * end of the stream is dropped, as EventSource does.
 */
async function readEventStream(
  stream: ReadableStream<Uint8Array>,
  dispatch: (type: string, data: string) => void,
): Promise<void> {
  const reader = stream.getReader();
  const decoder = new TextDecoder('utf-8');
  let pending = '';
  let type = '';
  let data: string[] = [];
  const line = (l: string) => {
    if (l === '') {
      if (data.length > 0) dispatch(type === '' ? 'message' : type, data.join('\n'));
      type = '';
      data = [];
      return;
    }
    if (l.startsWith(':')) return;
    const colon = l.indexOf(':');
    const field = colon < 0 ? l : l.slice(0, colon);
    let value = colon < 0 ? '' : l.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') type = value;
    else if (field === 'data') data.push(value);
  };
  try {
    for (;;) {
      const { done, value } = await reader.read();
      pending += done ? decoder.decode() : decoder.decode(value, { stream: true });
      for (;;) {
        const end = pending.search(/[\r\n]/);
        if (end < 0) break;
        // A CR at the very end may be the first half of a CRLF split across chunks.
        if (pending[end] === '\r' && end === pending.length - 1 && !done) break;
        line(pending.slice(0, end));
        pending = pending.slice(pending[end] === '\r' && pending[end + 1] === '\n' ? end + 2 : end + 1);
      }
      if (done) return;
    }
  } finally {
    reader.cancel().catch(() => undefined);
  }
}
