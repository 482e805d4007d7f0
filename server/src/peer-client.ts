/**
 * Requests from this replica to one peer: each signed with this replica's
 * server key for the peer's pinned key (peer-auth.ts), with a timeout, a cap
 * on the answer's size (a peer must not make us buffer without bound) and
 * byte counts for metrics. A refusal by the peer becomes an E2ekvError with
 * the peer's code and `details.remote = true`; a network failure or timeout
 * is UNAVAILABLE.
 */
import {
  E2ekvError,
  encodeCreateVaultRequest,
  isErrorCode,
  parseAppendResponse,
  parseCosignerVkey,
  utf8,
} from '@e2ekv/protocol';
import type { Ed25519Signer } from '@e2ekv/protocol';
import { signPeerRequest } from './peer-auth.js';
import {
  parsePeerVaultList,
  parsePeerVaultState,
  parseShipment,
  type PeerVaultList,
  type PeerVaultState,
  type Shipment,
} from './peer-messages.js';

export interface PeerInfo {
  publicKey: Uint8Array;
  maxBatchEntries: number;
  maxBodyBytes: number;
}

export interface PeerClientOptions {
  url: string;
  signer: Ed25519Signer;
  /** The peer's server key (pinned). */
  audience: Uint8Array;
  timeoutMs: number;
  /** Answers larger than this are cut off (UNAVAILABLE). */
  maxResponseBytes: number;
  /** Aborted when the replica shuts down. */
  signal: AbortSignal;
  /** Called with the bytes of every request body sent and answer received. */
  onBytes?: (sent: number, received: number) => void;
}

/** Fetches a peer's /v1/info (unauthenticated): its key and the limits it verifies appends with. */
export async function fetchPeerInfo(url: string, timeoutMs: number, signal: AbortSignal): Promise<PeerInfo> {
  const { status, body } = await send(url, '/v1/info', { method: 'GET', timeoutMs, signal, maxResponseBytes: 1 << 20 });
  if (status !== 200) throw new E2ekvError('UNAVAILABLE', `peer ${url}: /v1/info answered ${status}`);
  const info = json(body, url) as { cosigner?: { vkey?: unknown }; limits?: Record<string, unknown> } | null;
  if (typeof info?.cosigner?.vkey !== 'string') {
    throw new E2ekvError('MALFORMED', `peer ${url}: /v1/info has no cosigner vkey: is it an e2ekv-server?`);
  }
  const limit = (name: string, fallback: number) => {
    const v = info.limits?.[name];
    return typeof v === 'number' && Number.isSafeInteger(v) && v > 0 ? v : fallback;
  };
  return {
    publicKey: parseCosignerVkey(info.cosigner.vkey).publicKey,
    maxBatchEntries: limit('maxBatchEntries', 1024),
    maxBodyBytes: limit('maxBodyBytes', 16 * 1024 * 1024),
  };
}

export class PeerClient {
  readonly url: string;
  readonly #options: PeerClientOptions;

  constructor(options: PeerClientOptions) {
    this.url = options.url;
    this.#options = options;
  }

  async listVaults(after?: string): Promise<PeerVaultList> {
    const query = after === undefined ? '' : `?after=${after}`;
    return parsePeerVaultList(json(await this.#request('GET', `/v1/peer/vaults${query}`), this.url));
  }

  /** The peer's genesis and heads of a vault; undefined when the peer does not hold it. */
  async vaultState(vaultId: string): Promise<PeerVaultState | undefined> {
    try {
      return parsePeerVaultState(json(await this.#request('GET', `/v1/peer/vaults/${vaultId}`), this.url));
    } catch (error) {
      if (error instanceof E2ekvError && error.code === 'NOT_FOUND' && error.details['remote'] === true) {
        return undefined;
      }
      throw error;
    }
  }

  async createVault(genesis: Uint8Array): Promise<void> {
    await this.#request('POST', '/v1/peer/vaults', utf8(JSON.stringify(encodeCreateVaultRequest({ genesis }))));
  }

  async suffix(
    vaultId: string,
    device: string,
    start: number,
    limits: { maxEntries: number; maxBytes: number },
  ): Promise<Shipment> {
    const path = `/v1/peer/vaults/${vaultId}/logs/${device}/suffix?start=${start}&maxEntries=${limits.maxEntries}&maxBytes=${limits.maxBytes}`;
    return parseShipment(json(await this.#request('GET', path), this.url));
  }

  /** Sends an append body (JSON of an append request) to the peer; resolves with its cosigned checkpoint. */
  async push(vaultId: string, device: string, body: Uint8Array): Promise<string> {
    const answer = await this.#request('POST', `/v1/peer/vaults/${vaultId}/logs/${device}/append`, body);
    return parseAppendResponse(json(answer, this.url)).checkpoint;
  }

  async #request(method: string, path: string, body?: Uint8Array): Promise<Uint8Array> {
    const o = this.#options;
    const payload = body ?? new Uint8Array(0);
    const authorization = await signPeerRequest(o.signer, { audience: o.audience, method, path, body: payload });
    const answer = await send(o.url, path, {
      method,
      body: payload,
      authorization,
      timeoutMs: o.timeoutMs,
      signal: o.signal,
      maxResponseBytes: o.maxResponseBytes,
    });
    o.onBytes?.(payload.length, answer.body.length);
    if (answer.status >= 200 && answer.status < 300) return answer.body;
    throw remoteError(o.url, answer.status, answer.body);
  }
}

interface SendOptions {
  method: string;
  body?: Uint8Array;
  authorization?: string;
  timeoutMs: number;
  signal: AbortSignal;
  maxResponseBytes: number;
}

async function send(url: string, path: string, o: SendOptions): Promise<{ status: number; body: Uint8Array }> {
  const signal = AbortSignal.any([o.signal, AbortSignal.timeout(o.timeoutMs)]);
  const headers: Record<string, string> = {};
  if (o.authorization !== undefined) headers['authorization'] = o.authorization;
  const hasBody = o.body !== undefined && o.body.length > 0;
  if (hasBody) headers['content-type'] = 'application/json';
  try {
    const res = await fetch(url + path, {
      method: o.method,
      headers,
      signal,
      ...(hasBody ? { body: new Uint8Array(o.body!) } : {}),
    });
    return { status: res.status, body: await readCapped(res, o.maxResponseBytes, url) };
  } catch (cause) {
    if (cause instanceof E2ekvError) throw cause;
    const reason = signal.aborted
      ? o.signal.aborted
        ? 'this replica is shutting down'
        : `no answer within ${o.timeoutMs} ms`
      : messageOf(cause);
    throw new E2ekvError('UNAVAILABLE', `peer ${url}: ${o.method} ${path.split('?')[0]} failed: ${reason}`, { cause });
  }
}

async function readCapped(res: Response, max: number, url: string): Promise<Uint8Array> {
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (declared > max) {
    await res.body?.cancel();
    throw new E2ekvError('UNAVAILABLE', `peer ${url} answered ${declared} bytes, more than the ${max} accepted`);
  }
  if (res.body === null) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let length = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    length += chunk.length;
    if (length > max) {
      await res.body.cancel().catch(() => undefined);
      throw new E2ekvError('UNAVAILABLE', `peer ${url} answered more than the ${max} bytes accepted`);
    }
    chunks.push(chunk);
  }
  const out = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

function json(body: Uint8Array, url: string): unknown {
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
  } catch (cause) {
    throw new E2ekvError('MALFORMED', `peer ${url} answered something that is not JSON`, { cause });
  }
}

function remoteError(url: string, status: number, body: Uint8Array): E2ekvError {
  let code: string | undefined;
  let message = `HTTP ${status}`;
  const details: Record<string, string | number | boolean> = { remote: true, status };
  try {
    const error = (JSON.parse(new TextDecoder().decode(body)) as { error?: Record<string, unknown> }).error;
    if (typeof error?.['code'] === 'string') code = error['code'];
    if (typeof error?.['message'] === 'string') message = error['message'];
    const d = error?.['details'];
    if (typeof d === 'object' && d !== null) {
      for (const [k, v] of Object.entries(d)) {
        if (typeof v === 'number' || typeof v === 'string' || typeof v === 'boolean') details[`peer.${k}`] = v;
      }
    }
  } catch {
    // not our error body: keep the status
  }
  const known = isErrorCode(code) ? code : status >= 500 || status === 429 ? 'UNAVAILABLE' : 'INTERNAL';
  return new E2ekvError(known, `peer ${url}: ${message}`, { details });
}

function messageOf(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } } | null)?.cause;
  if (cause?.code !== undefined) return `${cause.code}${cause.message === undefined ? '' : ` (${cause.message})`}`;
  return error instanceof Error ? error.message : String(error);
}
