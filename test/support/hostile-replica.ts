/**
 * A hostile replica for conformance tests: an HTTP reverse proxy on 127.0.0.1:0
 * in front of a real e2ekv-server process, which clients use as their replica
 * URL. By default it forwards every request unchanged; a test installs
 * interceptions that rewrite, replace, replay or drop answers, for every client
 * or for one device only (so that two clients can be shown two histories):
 *
 *     const replica = await HostileReplica.start(serverProcess);
 *     const client = await createClient({ identity, servers: [replica.url] });
 *     const hook = replica.rewriteJson<EntriesJson>({ route: 'entries', client: bobHex }, (page) => {
 *       page.entries.reverse();
 *     });
 *     await rejects(t, bobVault.get('k', { read: 'one' }), 'INTEGRITY', /do not rebuild/);
 *     t.true(hook.changed > 0); // the attack really changed what Bob received
 *
 * It is as strong as a real replica turned hostile, and no stronger: it holds
 * the server's own cosigner key (read from the server's data directory), so it
 * can cosign whatever it likes, and it remembers every entry and device-signed
 * checkpoint that devices appended through it (serveLog and withhold build on
 * that). It holds no device key and no vault secret. Requests are signed by
 * devices over their method, path, query and body (SPEC.md section 18), so
 * rewrite answers, not requests: the real server refuses a rewritten request.
 *
 * The last section writes entries and checkpoints as a device the test plays:
 * not a replica's power, but what a leaked key or a faulty member could sign,
 * for the replica to serve.
 */
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { ExecutionContext, TestFn } from 'ava';
import {
  E2ekvError,
  MerkleTree,
  cosignatureMessage,
  cosignerKeyId,
  deviceCheckpointSigner,
  ed25519Signer,
  encodeEntry,
  formatNote,
  fromBase64,
  fromHex,
  leafHash,
  parseCheckpoint,
  parseCosignerVkey,
  parseLogOrigin,
  parseNote,
  randomBytes,
  sealEpochRecord,
  signDeviceCheckpoint,
  signNote,
  toBase64,
  toHex,
  vaultIdOf,
  type Cosigner,
  type ErrorCode,
  type MembershipChange,
  type Note,
} from '../../protocol/src/index.js';
import { sealDataEntry, type VaultKeys } from '../../sdk/src/entries.js';
import { EpochKeyRing } from '../../sdk/src/keyring.js';
import { publicIdentity, type Identity, type PublicIdentity } from '../../sdk/src/index.js';
import { ReplicaTransport } from '../../sdk/src/transport.js';
import { startServerProcess, tempDir, type ServerProcess } from '../../server/test/support/process.js';
import { listen } from './listen.js';

/** Which endpoint of server/API.md a request is for. */
export type Route =
  | 'info'
  | 'create-vault'
  | 'vault'
  | 'members'
  | 'append'
  | 'checkpoint'
  | 'entries'
  | 'blob'
  | 'evidence'
  | 'events'
  | 'other';

export interface HostileRequest {
  method: string;
  /** Path and query exactly as the client sent them: what its signature covers. */
  url: string;
  route: Route;
  /** The vault ID in the path (hex), if any. */
  vault: string | undefined;
  /** The device whose log the path names (logs/{device}/...), if any. */
  log: string | undefined;
  /** The device that signed the request (its Authorization header), if signed. */
  client: string | undefined;
  query: URLSearchParams;
  headers: Record<string, string>;
  body: Buffer;
}

/** An answer as the client receives it. */
export interface Answer {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** Handlers return this to cut the connection without an answer. */
export const DROP: unique symbol = Symbol('drop');

/** Sends the request upstream, optionally changed (the server checks the signature over what it receives). */
export type Forward = (
  changes?: Partial<Pick<HostileRequest, 'method' | 'url' | 'body' | 'headers'>>,
) => Promise<Answer>;

/** What to do with one request: an answer, DROP, or undefined to forward it unchanged. */
export type Handler = (
  request: HostileRequest,
  forward: Forward,
) => Answer | typeof DROP | undefined | Promise<Answer | typeof DROP | undefined>;

/** Which requests an interception applies to; every field given must match. */
export interface Match {
  route?: Route | readonly Route[];
  vault?: string;
  log?: string;
  /** Only requests signed by this device (hex): another client sees the honest replica. */
  client?: string;
  when?: (request: HostileRequest) => boolean;
  /** Apply to this many matching requests, then stop matching (default: forever). */
  times?: number;
}

/** One request and the answer the client got. */
export interface Exchange {
  request: HostileRequest;
  answer: Answer;
}

/** A handle on an installed interception: tests assert it ran and changed what the client got. */
export class Interception {
  readonly #parts: readonly Interception[];
  #calls = 0;
  #changed = 0;
  #removed = false;

  /** Interceptions installed together (`parts`) count as one. */
  constructor(parts: readonly Interception[] = []) {
    this.#parts = parts;
  }

  /** Requests it handled. */
  get calls(): number {
    return this.#parts.reduce((n, p) => n + p.calls, this.#calls);
  }

  /** Answers it made differ from what the real server said (made up, rewritten or dropped). */
  get changed(): number {
    return this.#parts.reduce((n, p) => n + p.changed, this.#changed);
  }

  get removed(): boolean {
    return this.#removed;
  }

  remove(): void {
    this.#removed = true;
    for (const part of this.#parts) part.remove();
  }

  /** For the replica: one request handled, and whether the answer differs from the real server's. */
  count(changed: boolean): void {
    this.#calls++;
    if (changed) this.#changed++;
  }
}

interface Installed {
  match: Match;
  handler: Handler;
  interception: Interception;
}

interface KnownLog {
  /** Entries devices appended through this replica, by index. */
  entries: Uint8Array[];
  /** Device-signed checkpoints (the device's signature line only), by size. */
  notes: Map<number, string>;
}

// Hop-by-hop headers (RFC 9110 section 7.6.1) and those fetch recomputes.
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
  'host',
  'content-length',
]);

export class HostileReplica {
  /** The URL clients use. */
  readonly url: string;
  /** The real server behind it. */
  readonly upstream: string;
  /** The real server's cosigner, which this replica holds the key of. */
  readonly cosigner: Cosigner;
  /** Every request and the answer its client got, in order (event streams excepted). */
  readonly exchanges: Exchange[] = [];
  readonly #seed: Uint8Array;
  readonly #installed: Installed[] = [];
  readonly #logs = new Map<string, KnownLog>();
  readonly #abort = new AbortController();
  readonly #close: () => Promise<void>;

  private constructor(
    http: { url: string; close(): Promise<void> },
    upstream: string,
    cosigner: Cosigner,
    seed: Uint8Array,
  ) {
    this.url = http.url;
    this.#close = http.close;
    this.upstream = upstream.replace(/\/+$/, '');
    this.cosigner = cosigner;
    this.#seed = seed;
  }

  /** Starts a hostile replica in front of a running server (its URL and data directory). */
  static async start(server: { url: string; dataDir: string }): Promise<HostileReplica> {
    const info = (await (await fetch(`${server.url}/v1/info`)).json()) as { cosigner: { vkey: string } };
    const key = JSON.parse(await readFile(path.join(server.dataDir, 'server-key.json'), 'utf8')) as { seed: string };
    // Requests can only arrive once the URL is known, after the replica exists.
    const ref: { replica?: HostileReplica } = {};
    const http = await listen((req, res) => {
      if (ref.replica === undefined) res.destroy();
      else void ref.replica.#serve(req, res);
    });
    ref.replica = new HostileReplica(http, server.url, parseCosignerVkey(info.cosigner.vkey), fromHex(key.seed));
    return ref.replica;
  }

  async close(): Promise<void> {
    this.#abort.abort();
    await this.#close();
  }

  /**
   * Installs a handler for matching requests. The latest installed interception
   * that matches a request handles it alone.
   */
  intercept(match: Match, handler: Handler): Interception {
    const interception = new Interception();
    this.#installed.unshift({ match, handler, interception });
    return interception;
  }

  /** Rewrites successful JSON answers; `edit` changes the value in place or returns a new one. */
  rewriteJson<T>(
    match: Match,
    edit: (json: T, request: HostileRequest) => T | undefined | Promise<T | undefined>,
  ): Interception {
    return this.intercept(match, async (request, forward) => {
      const answer = await forward();
      if (answer.status !== 200) return answer;
      const json = JSON.parse(answer.body.toString('utf8')) as T;
      const edited = await edit(json, request);
      return jsonAnswer(edited === undefined ? json : edited);
    });
  }

  /** Rewrites successful text answers (checkpoint notes). */
  rewriteText(match: Match, edit: (text: string, request: HostileRequest) => string | Promise<string>): Interception {
    return this.intercept(match, async (request, forward) => {
      const answer = await forward();
      if (answer.status !== 200) return answer;
      return { ...answer, body: Buffer.from(await edit(answer.body.toString('utf8'), request), 'utf8') };
    });
  }

  /** Rewrites the checkpoint note of successful entries answers. */
  rewriteEntriesCheckpoint(
    match: Omit<Match, 'route'>,
    edit: (note: string, request: HostileRequest) => string | Promise<string>,
  ): Interception {
    return this.rewriteJson<EntriesJson>({ ...match, route: 'entries' }, async (json, request) => {
      json.checkpoint = await edit(json.checkpoint, request);
    });
  }

  /** Answers matching requests without asking the real server. */
  answer(match: Match, answer: Answer | ((request: HostileRequest) => Answer | Promise<Answer>)): Interception {
    return this.intercept(match, (request) => (typeof answer === 'function' ? answer(request) : answer));
  }

  /** Cuts matching requests off: the client sees a connection reset. */
  drop(match: Match): Interception {
    return this.intercept(match, () => DROP);
  }

  /** Serves an answer recorded earlier (for rollback), whatever the real server says now. */
  replay(match: Match, recorded: Exchange | Answer): Interception {
    const answer = 'answer' in recorded ? recorded.answer : recorded;
    return this.intercept(match, () => ({ ...answer, body: Buffer.from(answer.body) }));
  }

  /** Exchanges whose request matches (`times` is ignored), oldest first. */
  recorded(match: Match): Exchange[] {
    return this.exchanges.filter((e) => matches(match, e.request));
  }

  /** Entries of a log that devices appended through this replica. */
  knownEntries(vault: string, device: string): readonly Uint8Array[] {
    return this.#logs.get(`${vault}/${device}`)?.entries ?? [];
  }

  /** The device-signed checkpoint of a log at `size` that passed through this replica (device signature only). */
  deviceNote(vault: string, device: string, size: number): string {
    const note = this.#logs.get(`${vault}/${device}`)?.notes.get(size);
    if (note === undefined) throw new Error(`no checkpoint of size ${size} of ${device} passed through this replica`);
    return note;
  }

  /**
   * Adds (or replaces) this replica's cosignature on a note, dated `timestamp`
   * (POSIX seconds, default now). Unlike an honest cosigner it signs any text,
   * valid checkpoint or not.
   */
  async cosign(note: string, timestamp: bigint = BigInt(Math.floor(Date.now() / 1000))): Promise<string> {
    const parsed = parseNote(note);
    const signer = await ed25519Signer(this.#seed);
    const signature = await signer.sign(cosignatureMessage(parsed.text, timestamp));
    const blob = new Uint8Array(8 + signature.length);
    new DataView(blob.buffer).setBigUint64(0, timestamp);
    blob.set(signature, 8);
    const keyId = cosignerKeyId(this.cosigner.name, this.cosigner.publicKey);
    const others = parsed.signatures.filter((s) => !(s.name === this.cosigner.name && s.keyId === keyId));
    return formatNote({
      text: parsed.text,
      signatures: [...others, { name: this.cosigner.name, keyId, signature: blob }],
    });
  }

  /**
   * Serves a log the real server does not hold (or holds otherwise): the vault
   * state lists it, and its entries pages come from `entries`, proven against
   * `note` (a device-signed checkpoint of them), cosigned by this replica.
   */
  serveLog(options: {
    vault: string;
    device: string;
    entries: readonly Uint8Array[];
    note: string;
    /** Only to this client (device hex); others see the real server's log. */
    client?: string;
  }): Interception {
    const { vault, device, note } = options;
    const only = options.client === undefined ? {} : { client: options.client };
    const entries = [...options.entries];
    const tree = new MerkleTree(entries.map((e) => leafHash(e)));
    const size = entries.length;
    const state = this.rewriteJson<VaultStateJson>({ route: 'vault', vault, ...only }, (json) => {
      const logs = json.logs.filter((l) => l.device !== device);
      logs.push({ device, size, root: toBase64(tree.root()) });
      json.logs = logs.sort((a, b) => (a.device < b.device ? -1 : 1));
    });
    const pages = this.answer({ route: 'entries', vault, log: device, ...only }, async (request) => {
      const start = Number(request.query.get('start') ?? '0');
      const end = Math.min(size, Number(request.query.get('end') ?? String(start + 1024)));
      const from = request.query.get('proofFrom');
      const proofFrom = from === null ? undefined : Number(from);
      if (proofFrom !== undefined && proofFrom > size) {
        return errorAnswer(400, 'INVALID_ARGUMENT', `proofFrom ${proofFrom} is larger than the log`, { size });
      }
      const indices = Array.from({ length: Math.max(0, end - start) }, (_, i) => start + i);
      return jsonAnswer({
        checkpoint: await this.cosign(note),
        start,
        entries: indices.map((i) => toBase64(entries[i]!)),
        inclusionProofs: indices.map((i) => tree.inclusionProof(i, size).map((h) => toBase64(h))),
        consistencyProof:
          proofFrom !== undefined && proofFrom > 0 && proofFrom < size
            ? tree.consistencyProof(proofFrom, size).map((h) => toBase64(h))
            : [],
      });
    });
    return new Interception([state, pages]);
  }

  /**
   * Withholds a log's entries from `size` on: the vault state and the entries
   * pages show the log as it was at `size`, proven by the device's own
   * checkpoint of that size (which passed through here), freshly cosigned.
   */
  withhold(options: { vault: string; device: string; size: number; client?: string }): Interception {
    const { vault, device, size } = options;
    const entries = this.knownEntries(vault, device).slice(0, size);
    if (entries.length !== size) throw new Error(`only ${entries.length} entries of ${device} passed through here`);
    return this.serveLog({ ...options, entries, note: this.deviceNote(vault, device, size) });
  }

  /** The devices whose logs passed through this replica (appends it forwarded and the real server took). */
  knownDevices(vault: string): string[] {
    const prefix = `${vault}/`;
    return [...this.#logs.keys()].filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length));
  }

  /**
   * A log as it passed through this replica, at `size` or else at the largest
   * device-signed checkpoint that passed through: what serveLogs serves.
   */
  knownLog(vault: string, device: string, size?: number): ServedLog {
    const notes = this.#logs.get(`${vault}/${device}`)?.notes;
    const at = size ?? Math.max(-1, ...(notes?.keys() ?? []));
    if (at < 0) throw new Error(`no checkpoint of ${device} passed through this replica`);
    const entries = this.knownEntries(vault, device).slice(0, at);
    if (entries.length !== at) throw new Error(`only ${entries.length} entries of ${device} passed through here`);
    return { device, entries, note: this.deviceNote(vault, device, at) };
  }

  /** The signed genesis of a vault (base64), from its creation or a state answer that passed through here. */
  knownGenesis(vault: string): string {
    for (const { request, answer } of this.exchanges) {
      if (answer.status !== 200 && answer.status !== 201) continue;
      if (request.route === 'vault' && request.vault === vault) {
        return (JSON.parse(answer.body.toString('utf8')) as VaultStateJson).genesis;
      }
      if (request.route === 'create-vault') {
        const { genesis } = JSON.parse(request.body.toString('utf8')) as { genesis: string };
        const signed = fromBase64(genesis);
        if (toHex(vaultIdOf(signed.subarray(0, signed.length - 64))) === vault) return genesis;
      }
    }
    throw new Error(`the genesis of vault ${vault} never passed through this replica`);
  }

  /**
   * serveLog for several logs at once (interceptions do not compose: the
   * latest one that matches a request handles it alone, so two serveLogs
   * would each hide the other's log from the vault state). With `genesis`,
   * the vault state is made up here and lists `logs` only, so that it serves
   * a client the real server refuses (a removed device, a device never
   * added); without, the real server's state is rewritten.
   */
  serveLogs(options: {
    vault: string;
    logs: readonly ServedLog[];
    /** Only to this client (device hex); others see the real server. */
    client?: string;
    /** The vault's signed genesis, base64 (knownGenesis). */
    genesis?: string;
  }): Interception {
    const { vault, genesis } = options;
    const only = options.client === undefined ? {} : { client: options.client };
    const logs = new Map(
      options.logs.map((log) => {
        const entries = [...log.entries];
        return [log.device, { note: log.note, entries, tree: new MerkleTree(entries.map((e) => leafHash(e))) }];
      }),
    );
    const list = (real: VaultStateJson['logs']) =>
      [
        ...real.filter((l) => !logs.has(l.device)),
        ...[...logs].map(([device, log]) => ({ device, size: log.entries.length, root: toBase64(log.tree.root()) })),
      ].sort((a, b) => (a.device < b.device ? -1 : 1));
    const state =
      genesis === undefined
        ? this.rewriteJson<VaultStateJson>({ route: 'vault', vault, ...only }, (json) => {
            json.logs = list(json.logs);
          })
        : this.answer({ route: 'vault', vault, ...only }, () => jsonAnswer({ genesis, logs: list([]) }));
    const served = (request: HostileRequest) => request.log !== undefined && logs.has(request.log);
    const pages = this.answer({ route: 'entries', vault, ...only, when: served }, async (request) => {
      const { entries, tree, note } = logs.get(request.log!)!;
      const size = entries.length;
      const start = Number(request.query.get('start') ?? '0');
      const end = Math.min(size, Number(request.query.get('end') ?? String(start + 1024)));
      const from = request.query.get('proofFrom');
      const proofFrom = from === null ? undefined : Number(from);
      if (proofFrom !== undefined && proofFrom > size) {
        return errorAnswer(400, 'INVALID_ARGUMENT', `proofFrom ${proofFrom} is larger than the log`, { size });
      }
      const indices = Array.from({ length: Math.max(0, end - start) }, (_, i) => start + i);
      return jsonAnswer({
        checkpoint: await this.cosign(note),
        start,
        entries: indices.map((i) => toBase64(entries[i]!)),
        inclusionProofs: indices.map((i) => tree.inclusionProof(i, size).map((h) => toBase64(h))),
        consistencyProof:
          proofFrom !== undefined && proofFrom > 0 && proofFrom < size
            ? tree.consistencyProof(proofFrom, size).map((h) => toBase64(h))
            : [],
      });
    });
    const checkpoints = this.answer({ route: 'checkpoint', vault, ...only, when: served }, async (request) => ({
      status: 200,
      headers: { 'content-type': 'text/plain; charset=utf-8' },
      body: Buffer.from(await this.cosign(logs.get(request.log!)!.note), 'utf8'),
    }));
    return new Interception([state, pages, checkpoints]);
  }

  async #serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const request = describe(req, Buffer.concat(chunks));
      const installed = this.#installed.find((i) => !i.interception.removed && matches(i.match, request));
      let upstream: Answer | undefined;
      let sent = request;
      const forward: Forward = async (changes = {}) => {
        sent = { ...request, ...changes };
        const answer = await this.#forward(sent, res);
        // A copy, so that a handler editing the body in place still counts as a change.
        upstream = { ...answer, body: Buffer.from(answer.body) };
        return answer;
      };
      let outcome: Answer | typeof DROP | undefined;
      if (installed !== undefined) {
        const { times } = installed.match;
        if (times !== undefined && installed.interception.calls + 1 >= times) installed.interception.remove();
        outcome = await installed.handler(request, forward);
      }
      if (res.headersSent) return; // an event stream was piped through
      if (outcome === DROP) {
        installed?.interception.count(true);
        res.socket?.destroy();
        return;
      }
      const answer = outcome ?? upstream ?? (await forward());
      if (res.headersSent) return;
      installed?.interception.count(!sameAnswer(answer, upstream));
      if (upstream !== undefined) this.#learn(sent, upstream);
      this.exchanges.push({ request, answer });
      res.writeHead(answer.status, answer.headers);
      res.end(answer.body);
    } catch (error) {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`hostile replica failed: ${String(error)}`);
    }
  }

  /** Sends a request to the real server; an event stream is piped straight to the client. */
  async #forward(request: HostileRequest, res: ServerResponse): Promise<Answer> {
    const response = await fetch(this.upstream + request.url, {
      method: request.method,
      headers: request.headers,
      signal: this.#abort.signal,
      ...(request.body.length > 0 ? { body: new Uint8Array(request.body) } : {}),
    });
    const headers: Record<string, string> = {};
    response.headers.forEach((value, name) => {
      if (!HOP_BY_HOP.has(name)) headers[name] = value;
    });
    if (headers['content-type']?.startsWith('text/event-stream') === true && response.body !== null) {
      res.writeHead(response.status, headers);
      Readable.fromWeb(response.body as Parameters<typeof Readable.fromWeb>[0])
        .on('error', () => res.destroy())
        .pipe(res);
      return { status: response.status, headers, body: Buffer.alloc(0) };
    }
    return { status: response.status, headers, body: Buffer.from(await response.arrayBuffer()) };
  }

  /** Remembers the entries and device checkpoints of appends the real server accepted. */
  #learn(request: HostileRequest, upstream: Answer): void {
    if (
      request.route !== 'append' ||
      upstream.status !== 200 ||
      request.vault === undefined ||
      request.log === undefined
    )
      return;
    const body = JSON.parse(request.body.toString('utf8')) as { start: number; entries: string[]; checkpoint: string };
    const key = `${request.vault}/${request.log}`;
    let log = this.#logs.get(key);
    if (log === undefined) this.#logs.set(key, (log = { entries: [], notes: new Map() }));
    body.entries.forEach((entry, i) => (log.entries[body.start + i] = fromBase64(entry)));
    const note = deviceSignedOnly(body.checkpoint);
    log.notes.set(Number(parseCheckpoint(parseNote(note).text).size), note);
  }
}

function describe(req: IncomingMessage, body: Buffer): HostileRequest {
  const url = req.url ?? '/';
  const parsed = new URL(url, 'http://replica.invalid');
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (!HOP_BY_HOP.has(name) && typeof value === 'string') headers[name] = value;
  }
  const client = /^e2ekv-v1 device=([0-9a-f]{64}),/.exec(headers['authorization'] ?? '')?.[1];
  const parts = parsed.pathname.split('/').slice(1); // v1, vaults, {vault}, ...
  const vault = parts[1] === 'vaults' ? parts[2] : undefined;
  const log = parts[3] === 'logs' ? parts[4] : undefined;
  return {
    method: req.method ?? 'GET',
    url,
    route: routeOf(req.method ?? 'GET', parts),
    vault,
    log,
    client,
    query: parsed.searchParams,
    headers,
    body,
  };
}

function routeOf(method: string, parts: readonly string[]): Route {
  const [v1, vaults, vault, sub, , leaf] = parts;
  if (v1 !== 'v1') return 'other';
  if (vaults === 'info' && parts.length === 2) return 'info';
  if (vaults !== 'vaults') return 'other';
  if (vault === undefined) return method === 'POST' ? 'create-vault' : 'other';
  if (sub === undefined) return 'vault';
  if (sub === 'members' || sub === 'evidence' || sub === 'events') return sub;
  if (sub === 'blobs') return 'blob';
  if (sub === 'logs' && (leaf === 'append' || leaf === 'checkpoint' || leaf === 'entries')) return leaf;
  return 'other';
}

function matches(match: Match, request: HostileRequest): boolean {
  const routes = match.route === undefined ? undefined : typeof match.route === 'string' ? [match.route] : match.route;
  return (
    (routes === undefined || routes.includes(request.route)) &&
    (match.vault === undefined || match.vault === request.vault) &&
    (match.log === undefined || match.log === request.log) &&
    (match.client === undefined || match.client === request.client) &&
    (match.when === undefined || match.when(request))
  );
}

function sameAnswer(answer: Answer, upstream: Answer | undefined): boolean {
  return upstream !== undefined && answer.status === upstream.status && answer.body.equals(upstream.body);
}

// ---------------------------------------------------------------------------
// Answers and their surgery

/** The JSON bodies tests edit most (server/API.md). */
export interface EntriesJson {
  checkpoint: string;
  start: number;
  entries: string[];
  inclusionProofs: string[][];
  consistencyProof: string[];
}

export interface VaultStateJson {
  genesis: string;
  logs: { device: string; size: number; root: string }[];
}

/** A log a replica serves: entries and a device-signed checkpoint of them (serveLogs cosigns it). */
export interface ServedLog {
  device: string;
  entries: readonly Uint8Array[];
  note: string;
}

export function jsonAnswer(value: unknown, status = 200): Answer {
  return {
    status,
    headers: { 'content-type': 'application/json; charset=utf-8' },
    body: Buffer.from(JSON.stringify(value), 'utf8'),
  };
}

export function errorAnswer(
  status: number,
  code: ErrorCode,
  message: string,
  details?: Record<string, string | number | boolean>,
): Answer {
  return jsonAnswer({ error: { code, message, ...(details === undefined ? {} : { details }) } }, status);
}

/** Flips one bit of a byte string (byte `index` counts from the end when negative). */
export function flipBit(bytes: Uint8Array, index: number, bit = 0): Uint8Array {
  const out = new Uint8Array(bytes); // a copy: Buffer#slice would share memory
  const at = index < 0 ? out.length + index : index;
  out[at]! ^= 1 << bit;
  return out;
}

/** Flips one bit of base64 text's bytes, keeping it canonical base64. */
export function flipBase64(text: string, index: number, bit = 0): string {
  return toBase64(flipBit(fromBase64(text), index, bit));
}

/** Flips the last bit of a note's signature line `index` (0: the device's, 1: the replica's). */
export function flipSignature(note: string, index: number): string {
  const parsed = parseNote(note);
  const signature = parsed.signatures[index]!;
  parsed.signatures[index] = { ...signature, signature: flipBit(signature.signature, -1) };
  return formatNote(parsed);
}

/** The note with only the signature lines `keep` accepts. */
export function keepSignatures(
  note: string,
  keep: (signature: Note['signatures'][number], index: number) => boolean,
): string {
  const parsed = parseNote(note);
  return formatNote({ text: parsed.text, signatures: parsed.signatures.filter(keep) });
}

/** The note with its device's signature line only (the log origin's key name). */
export function deviceSignedOnly(note: string): string {
  const parsed = parseNote(note);
  const origin = parseCheckpoint(parsed.text).origin;
  parseLogOrigin(origin);
  return keepSignatures(note, (s) => s.name === origin);
}

/** The size a (not yet verified) checkpoint note claims. */
export function noteSize(note: string): number {
  return Number(parseCheckpoint(parseNote(note).text).size);
}

/** The hex of a device's public key, as the harness matches clients. */
export function hex(key: Uint8Array): string {
  return toHex(key);
}

/**
 * Awaits `promise`, which must reject with an E2ekvError of `code` whose
 * message matches `message`; returns the error for further checks.
 */
export async function rejects(
  t: ExecutionContext,
  promise: Promise<unknown>,
  code: ErrorCode,
  message?: RegExp,
): Promise<E2ekvError> {
  const error = await t.throwsAsync(promise);
  if (!(error instanceof E2ekvError)) throw new Error(`expected an E2ekvError ${code}, got ${String(error)}`);
  t.is(error.code, code, error.message);
  if (message !== undefined) t.regex(error.message, message);
  return error;
}

// ---------------------------------------------------------------------------
// Writing as a device the test plays. Not a replica's power: what a device (or
// whoever holds its seed and the vault secret) could sign, for the replica to serve.

/** The keys of a vault, as a member derives them from its first epoch's secret. */
export function vaultKeys(access: { vaultId: string; secret: Uint8Array }): VaultKeys {
  const vaultId = fromHex(access.vaultId);
  return new EpochKeyRing(vaultId, access.secret);
}

/** A data entry at `index` of `identity`'s log, sealed as the SDK seals one. */
export function sealDataAs(
  identity: Identity,
  access: { vaultId: string; secret: Uint8Array },
  index: number,
  writes: readonly { name: string; json: unknown }[],
  context: Readonly<Record<string, number>> = {},
): Uint8Array {
  return sealDataEntry({
    keys: vaultKeys(access),
    device: publicIdentity(identity).signingKey,
    index,
    clock: { wallMs: BigInt(Date.now()), counter: index },
    context: contextOf(context),
    writes: writes.map((w) => ({ name: w.name, value: { kind: 'json', json: w.json } })),
  }).bytes;
}

/** A membership entry at `index` of `identity`'s log. */
export function membershipAs(
  identity: Identity,
  vaultId: string,
  index: number,
  change: MembershipChange,
  context: Readonly<Record<string, number>> = {},
): Uint8Array {
  return encodeEntry({
    type: 'membership',
    vaultId: fromHex(vaultId),
    device: publicIdentity(identity).signingKey,
    index: BigInt(index),
    epoch: 0,
    clock: { wallMs: BigInt(Date.now()), counter: index },
    context: contextOf(context),
    change,
  });
}

/**
 * An epoch record (SPEC.md 21.3) at `index` of `identity`'s log, starting
 * `epoch` with `secret` wrapped for `recipients`: what an admin writes, or
 * what anyone holding a device key can sign.
 */
export function epochRecordAs(
  identity: Identity,
  vaultId: string,
  index: number,
  epoch: number,
  recipients: readonly PublicIdentity[],
  context: Readonly<Record<string, number>> = {},
  secret: Uint8Array = randomBytes(32),
): Uint8Array {
  return encodeEntry(
    sealEpochRecord({
      vaultId: fromHex(vaultId),
      device: publicIdentity(identity).signingKey,
      index: BigInt(index),
      epoch,
      clock: { wallMs: BigInt(Date.now()), counter: index },
      context: contextOf(context),
      secret,
      recipients,
    }),
  );
}

/**
 * Appends `log.slice(start)` to `identity`'s log on the replica at `url` (the
 * real server, to see what an honest replica answers), as the device itself
 * would: a request it signs, its signed checkpoint of the whole `log`, the
 * consistency proof from `start`. Resolves to the cosigned checkpoint; a
 * refusal is the replica's ReplicaError (its code and HTTP status).
 */
export async function appendAs(
  url: string,
  identity: Identity,
  vaultId: string,
  log: readonly Uint8Array[],
  start = 0,
): Promise<string> {
  const transport = new ReplicaTransport({ url, signer: await ed25519Signer(identity.signingSeed) });
  const tree = new MerkleTree(log.map((e) => leafHash(e)));
  return transport.append(vaultId, {
    start,
    entries: log.slice(start),
    blobs: [],
    checkpoint: await signLogAs(identity, vaultId, log),
    consistencyProof: start > 0 ? tree.consistencyProof(start, log.length) : [],
  });
}

/** The device's signed checkpoint of a log holding `entries` (or any checkpoint text it is made to sign). */
export async function signLogAs(
  identity: Identity,
  vaultId: string,
  entries: readonly Uint8Array[] | { text: string },
): Promise<string> {
  const signer = await deviceCheckpointSigner(identity.signingSeed, fromHex(vaultId));
  if ('text' in entries) return signNote(entries.text, [signer]);
  const tree = new MerkleTree(entries.map((e) => leafHash(e)));
  return signDeviceCheckpoint(signer, { size: BigInt(tree.size), root: tree.root() });
}

function contextOf(context: Readonly<Record<string, number>>): { device: Uint8Array; size: bigint }[] {
  return Object.entries(context)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([device, size]) => ({ device: fromHex(device), size: BigInt(size) }));
}

/**
 * One real replica for a whole test file, started before its tests and
 * stopped (its data removed) after them; each test puts its own proxy in front.
 */
export function sharedServer(test: TestFn): () => ServerProcess {
  let server: ServerProcess | undefined;
  let removeData: (() => Promise<void>) | undefined;
  test.before(async () => {
    const data = await tempDir();
    removeData = data.remove;
    server = await startServerProcess(data.dir);
  });
  test.after.always(async () => {
    await server?.stop();
    await removeData?.();
  });
  return () => {
    if (server === undefined) throw new Error('the shared server starts in test.before');
    return server;
  };
}
