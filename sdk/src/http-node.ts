/**
 * The transport's Node path: node:http and node:https with keep-alive agents,
 * used instead of the global fetch when the caller passed no `fetch` (undici's
 * fetch costs several times the CPU of http.request per small request).
 *
 * The SDK is bundled for browsers, so the Node modules are not imported: they
 * are taken at run time from `process.getBuiltinModule` (Node >= 20.16), and
 * where that does not exist (browsers) there is no Node path and fetch is used.
 * Only types are imported below, which the compiler erases.
 *
 * It behaves as the fetch path does: one deadline for the whole request,
 * redirects included, answer body included; redirects followed the way fetch
 * follows them (at most 20; 303, and 301/302 after a POST, become a GET without
 * body; the Authorization header is dropped when the origin changes); TLS
 * verified against Node's default CAs (and NODE_EXTRA_CA_CERTS); gzip, deflate
 * and br answers decoded. Errors are plain errors (a timeout is named
 * TimeoutError, as fetch's is): the transport maps them to E2ekvError.
 */
// Types only, erased at compile time: nothing of Node reaches the browser bundle.
// eslint-disable-next-line no-restricted-imports
import type * as NodeHttp from 'node:http';
// eslint-disable-next-line no-restricted-imports
import type * as NodeHttps from 'node:https';
// eslint-disable-next-line no-restricted-imports
import type * as NodeZlib from 'node:zlib';

/** A whole answer: status, the headers this module needs, and the body, read to its end. */
export interface HttpAnswer {
  status: number;
  body: Uint8Array;
}

export interface HttpSender {
  send(
    method: 'GET' | 'POST',
    url: string,
    headers: Record<string, string>,
    body: Uint8Array | undefined,
    timeoutMs: number,
  ): Promise<HttpAnswer>;
  /** Destroys the agents' sockets, idle or busy; requests still running fail. */
  close(): void;
}

const MAX_REDIRECTS = 20;
/** Headers that describe a request body, dropped with the body when a redirect turns a POST into a GET. */
const BODY_HEADERS = ['content-type', 'content-encoding', 'content-language', 'content-location', 'content-length'];
/** A reused keep-alive socket that the server had just closed fails with one of these before any answer. */
const STALE_SOCKET_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED']);

interface NodeModules {
  http: typeof NodeHttp;
  https: typeof NodeHttps;
  zlib: typeof NodeZlib;
}

function nodeModules(): NodeModules | undefined {
  const process = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  if (typeof process?.getBuiltinModule !== 'function') return undefined;
  try {
    const http = process.getBuiltinModule('node:http') as typeof NodeHttp | undefined;
    const https = process.getBuiltinModule('node:https') as typeof NodeHttps | undefined;
    const zlib = process.getBuiltinModule('node:zlib') as typeof NodeZlib | undefined;
    if (typeof http?.request !== 'function' || typeof https?.request !== 'function' || zlib === undefined) {
      return undefined;
    }
    return { http, https, zlib };
  } catch {
    return undefined;
  }
}

/** The Node sender, or undefined where node:http is not available (browsers). */
export function nodeHttpSender(): HttpSender | undefined {
  const modules = nodeModules();
  return modules === undefined ? undefined : new NodeHttpSender(modules);
}

function timeoutError(timeoutMs: number): Error {
  const error = new Error(`no answer within ${timeoutMs} ms`);
  error.name = 'TimeoutError';
  return error;
}

class NodeHttpSender implements HttpSender {
  readonly #modules: NodeModules;
  #httpAgent: NodeHttp.Agent | undefined;
  #httpsAgent: NodeHttps.Agent | undefined;
  #closed = false;

  constructor(modules: NodeModules) {
    this.#modules = modules;
  }

  close(): void {
    this.#closed = true;
    this.#httpAgent?.destroy();
    this.#httpsAgent?.destroy();
  }

  async send(
    method: 'GET' | 'POST',
    url: string,
    headers: Record<string, string>,
    body: Uint8Array | undefined,
    timeoutMs: number,
  ): Promise<HttpAnswer> {
    const deadline = Date.now() + timeoutMs;
    let current = new URL(url);
    let currentMethod = method;
    let currentHeaders = { ...headers };
    let currentBody = body;
    for (let redirects = 0; ; redirects++) {
      const answer = await this.#once(currentMethod, current, currentHeaders, currentBody, deadline, timeoutMs);
      const location = answer.location;
      if (![301, 302, 303, 307, 308].includes(answer.status) || location === undefined) {
        return { status: answer.status, body: answer.body };
      }
      if (redirects >= MAX_REDIRECTS) throw new Error('redirect count exceeded');
      let next: URL;
      try {
        next = new URL(location, current);
      } catch (cause) {
        throw new Error(`the replica redirected to an invalid URL`, { cause });
      }
      if (next.protocol !== 'http:' && next.protocol !== 'https:') {
        throw new Error(`the replica redirected to a URL that is not http(s)`);
      }
      if (
        (answer.status === 303 && currentMethod !== 'GET') ||
        ((answer.status === 301 || answer.status === 302) && currentMethod === 'POST')
      ) {
        currentMethod = 'GET';
        currentBody = undefined;
        currentHeaders = without(currentHeaders, BODY_HEADERS);
      }
      if (next.origin !== current.origin) currentHeaders = without(currentHeaders, ['authorization']);
      current = next;
    }
  }

  #agent(protocol: string): NodeHttp.Agent {
    if (protocol === 'https:') return (this.#httpsAgent ??= new this.#modules.https.Agent({ keepAlive: true }));
    return (this.#httpAgent ??= new this.#modules.http.Agent({ keepAlive: true }));
  }

  /** One request/answer exchange; retried once on a fresh socket when a reused idle one turns out closed. */
  async #once(
    method: 'GET' | 'POST',
    url: URL,
    headers: Record<string, string>,
    body: Uint8Array | undefined,
    deadline: number,
    timeoutMs: number,
  ): Promise<HttpAnswer & { location: string | undefined }> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#exchange(method, url, headers, body, deadline, timeoutMs, attempt > 0);
      } catch (error) {
        if (attempt === 0 && error instanceof StaleSocket) continue;
        throw error instanceof StaleSocket ? error.cause : error;
      }
    }
  }

  #exchange(
    method: 'GET' | 'POST',
    url: URL,
    headers: Record<string, string>,
    body: Uint8Array | undefined,
    deadline: number,
    timeoutMs: number,
    fresh: boolean,
  ): Promise<HttpAnswer & { location: string | undefined }> {
    if (this.#closed) return Promise.reject(new Error('this client was closed'));
    const remaining = deadline - Date.now();
    if (remaining <= 0) return Promise.reject(timeoutError(timeoutMs));
    const { http, https } = this.#modules;
    const requestHeaders: Record<string, string> = { ...headers };
    if (body !== undefined) requestHeaders['content-length'] = String(body.byteLength);
    return new Promise((resolve, reject) => {
      let settled = false;
      let answered = false;
      const finish = (error: unknown, answer?: HttpAnswer & { location: string | undefined }) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (error === undefined) resolve(answer!);
        else reject(error);
      };
      const request = (url.protocol === 'https:' ? https : http).request(url, {
        method,
        headers: requestHeaders,
        agent: fresh ? false : this.#agent(url.protocol),
      });
      // Like fetch's AbortSignal.timeout, the deadline does not keep a process alive (the socket does).
      const timer = setTimeout(() => {
        const error = timeoutError(timeoutMs);
        finish(error);
        request.destroy(error);
      }, remaining);
      timer.unref?.();
      request.on('error', (error: NodeJS.ErrnoException) => {
        if (!answered && request.reusedSocket && STALE_SOCKET_CODES.has(error.code ?? '')) {
          finish(new StaleSocket(error));
        } else {
          finish(error);
        }
      });
      request.on('response', (response) => {
        answered = true;
        const chunks: Buffer[] = [];
        let length = 0;
        let ended = false;
        response.on('data', (chunk: Buffer) => {
          chunks.push(chunk);
          length += chunk.length;
        });
        response.on('error', (error) => finish(error));
        response.on('end', () => {
          ended = true;
          const location = response.headers.location;
          try {
            const raw = join(chunks, length);
            const decoded = this.#decode(raw, response.headers['content-encoding']);
            finish(undefined, { status: response.statusCode ?? 0, body: decoded, location });
          } catch (error) {
            finish(error);
          }
        });
        response.on('close', () => {
          if (!ended) finish(new Error('the connection closed before the answer ended'));
        });
      });
      request.end(body);
    });
  }

  /** Decodes the content codings fetch decodes (it ignores others); no Accept-Encoding is sent, so rare. */
  #decode(bytes: Uint8Array, encoding: string | undefined): Uint8Array {
    if (encoding === undefined) return bytes;
    const codings = encoding
      .toLowerCase()
      .split(',')
      .map((c) => c.trim())
      .filter((c) => c !== '' && c !== 'identity');
    const { zlib } = this.#modules;
    let out = bytes;
    for (const coding of codings.reverse()) {
      if (coding === 'gzip' || coding === 'x-gzip') out = copy(zlib.gunzipSync(out));
      else if (coding === 'br') out = copy(zlib.brotliDecompressSync(out));
      else if (coding === 'deflate') {
        try {
          out = copy(zlib.inflateSync(out));
        } catch {
          out = copy(zlib.inflateRawSync(out));
        }
      } else return bytes; // an unknown coding: fetch hands the bytes on as they came
    }
    return out;
  }
}

/** A failure that a retry on a fresh connection may cure (the reused keep-alive socket was already closed). */
class StaleSocket extends Error {
  constructor(cause: Error) {
    super(cause.message, { cause });
  }
}

function without(headers: Record<string, string>, names: readonly string[]): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).filter(([name]) => !names.includes(name)));
}

/** The chunks in one plain Uint8Array of its own (never a view of Node's shared Buffer pool). */
function join(chunks: readonly Uint8Array[], length: number): Uint8Array {
  const out = new Uint8Array(length);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

function copy(buffer: Uint8Array): Uint8Array {
  return join([buffer], buffer.length);
}
