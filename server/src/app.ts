/**
 * HTTP wiring of the replica: express routes under /v1, authentication of every
 * vault route by device signature, membership checks for reads, and the one
 * error handler that turns codes into statuses. Verification lives in
 * accept.ts; this file only moves bytes between HTTP and the acceptor.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import express, { type NextFunction, type Request, type Response } from 'express';
import {
  E2ekvError,
  encodeEntriesResponse,
  encodeVaultStateResponse,
  formatCosignerVkey,
  fromUtf8,
  parseAppendRequest,
  parseCreateVaultRequest,
  toBase64,
  toHex,
  verifyGenesis,
} from '@e2ekv/protocol';
import type { ErrorBody } from '@e2ekv/protocol';
import type { Acceptor } from './accept.js';
import type { RequestAuthenticator } from './auth.js';
import type { EventHub } from './events.js';
import { errorBody, httpStatus, toE2ekvError } from './http-errors.js';
import type { ServerLimits } from './limits.js';
import type { Logger } from './log.js';
import type { MembershipCache } from './membership.js';
import type { ServerMetrics } from './metrics.js';
import { mountPeerRoutes, peerOf } from './peer-routes.js';
import type { Replicator } from './peers.js';
import type { StorageAdapter } from './storage/adapter.js';

export interface AppContext {
  version: string;
  storage: StorageAdapter;
  acceptor: Acceptor;
  authenticator: RequestAuthenticator;
  membership: MembershipCache;
  events: EventHub;
  metrics: ServerMetrics;
  logger: Logger;
  limits: ServerLimits;
  cosigner: { name: string; publicKey: Uint8Array };
  /** False while starting or draining: /readyz answers 503. */
  isReady: () => boolean;
  /** Replication with peers (peers.ts): the /v1/peer routes and pushes of accepted appends. */
  replicator: Replicator;
}

type Role = 'reader' | 'writer' | 'admin';

interface Locals {
  requestId: string;
  route: string;
  device?: string;
}

const HEX64 = /^[0-9a-f]{64}$/;
const APPEND_PATH = /^\/v1\/vaults\/([0-9a-f]{64})\/logs\/([0-9a-f]{64})\/append$/;
const CONTENT_LENGTH = /^(0|[1-9][0-9]{0,15})$/;

/**
 * Reads a request body of `length` bytes (its Content-Length, within the limit)
 * as express.raw would, failing as express.raw's failures map in
 * http-errors.ts: cut off (MALFORMED), or not the declared length.
 */
function readBody(req: IncomingMessage, length: number, done: (error: unknown, body?: Buffer) => void): void {
  const chunks: Buffer[] = [];
  let received = 0;
  let finished = false;
  const finish = (error: unknown, body?: Buffer) => {
    if (finished) return;
    finished = true;
    req.removeListener('data', onData);
    req.removeListener('end', onEnd);
    req.removeListener('error', onError);
    req.removeListener('close', onClose);
    done(error, body);
  };
  const onData = (chunk: Buffer) => {
    received += chunk.length;
    if (received > length) finish(new E2ekvError('MALFORMED', 'the request could not be read'));
    else chunks.push(chunk);
  };
  const onEnd = () => {
    if (received !== length) finish(new E2ekvError('MALFORMED', 'the request could not be read'));
    // A copy, as express.raw makes: the body outlives the request (replication pushes keep it).
    else finish(undefined, Buffer.concat(chunks, received));
  };
  const onError = () => finish(new E2ekvError('MALFORMED', 'the request body was cut off'));
  const onClose = () => {
    if (!req.complete) onError();
  };
  req.on('data', onData);
  req.on('end', onEnd);
  req.on('error', onError);
  req.on('close', onClose);
}

function locals(res: Response): Locals {
  return res.locals as Locals;
}

function bodyBytes(req: Request): Uint8Array {
  return Buffer.isBuffer(req.body) ? asBytes(req.body) : new Uint8Array(0);
}

function asBytes(body: Buffer): Uint8Array {
  return new Uint8Array(body.buffer, body.byteOffset, body.length);
}

function jsonBody(req: Request): unknown {
  return parseJson(bodyBytes(req));
}

function parseJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(fromUtf8(bytes, 'request body'));
  } catch (cause) {
    throw new E2ekvError('MALFORMED', 'the request body is not JSON', { cause });
  }
}

function param(req: Request, name: string): string {
  const value = req.params[name];
  if (typeof value !== 'string' || !HEX64.test(value)) {
    throw new E2ekvError('MALFORMED', `${name} must be 64 lowercase hex digits`);
  }
  return value;
}

function queryIndex(req: Request, name: string, fallback?: number): number {
  const raw = req.query[name];
  if (raw === undefined && fallback !== undefined) return fallback;
  if (typeof raw !== 'string' || !/^(0|[1-9][0-9]{0,15})$/.test(raw)) {
    throw new E2ekvError('MALFORMED', `query parameter ${name} must be a non-negative integer`);
  }
  return Number(raw);
}

/** What the request listener of createApp takes: node:http's request and response. */
export type RequestListener = (req: IncomingMessage, res: ServerResponse) => void;

/** The fields of a request the append route reads, on both paths to it. */
interface AppendInput {
  method: string;
  path: string;
  authorization: string | undefined;
  body: Uint8Array;
  locals: Locals;
}

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * The replica's request listener: device appends that can take the lean path
 * (below) take it, before express; everything else goes to the express app.
 */
export function createApp(ctx: AppContext): RequestListener {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');

  /**
   * A request's id (the x-request-id header, echoed, or a fresh one), and when
   * it finishes its metrics and its log line. `l` is the response's locals.
   */
  function track(req: IncomingMessage, res: ServerResponse, l: Locals): void {
    const started = process.hrtime.bigint();
    res.setHeader('x-request-id', l.requestId);
    res.on('finish', () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const method = req.method!;
      const status = res.statusCode;
      ctx.metrics.requests.inc({ route: l.route, method, status: String(status) });
      ctx.metrics.latency.observe(seconds, { route: l.route });
      const level = status >= 500 ? 'error' : 'info';
      // No fields are built for a line the logger would drop.
      if (ctx.logger.enabled?.(level) === false) return;
      const fields: Record<string, unknown> = {
        requestId: l.requestId,
        method,
        route: l.route,
        status,
        ms: Math.round(seconds * 1e6) / 1e3,
      };
      if (l.device !== undefined) fields['device'] = l.device;
      const peer = peerOf(res as Response);
      if (peer !== undefined) fields['peer'] = peer;
      ctx.logger.log(level, 'request', fields);
    });
  }

  function requestIdOf(req: IncomingMessage): string {
    const incoming = req.headers['x-request-id'];
    return typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
  }

  // Request id, metrics and one log line per request (of the general path).
  app.use((req, res, next) => {
    const l = locals(res);
    l.requestId = requestIdOf(req);
    l.route = 'unmatched';
    track(req, res, l);
    next();
  });

  // Bodies are read as bytes: the request signature covers their exact hash.
  app.use(express.raw({ type: () => true, limit: ctx.limits.maxBodyBytes }));

  const route =
    (name: string, handler: (req: Request, res: Response) => Promise<void> | void) =>
    async (req: Request, res: Response, next: NextFunction) => {
      locals(res).route = name;
      try {
        await handler(req, res);
      } catch (error) {
        next(error);
      }
    };

  async function authenticate(req: Request, res: Response): Promise<string> {
    const { deviceHex } = await ctx.authenticator.authenticate({
      method: req.method,
      path: req.originalUrl,
      body: bodyBytes(req),
      authorization: req.get('authorization'),
    });
    locals(res).device = deviceHex;
    return deviceHex;
  }

  /** Authenticates and checks the device holds one of `roles` in the vault. */
  async function member(
    req: Request,
    res: Response,
    roles: readonly Role[],
  ): Promise<{ vaultId: string; device: string }> {
    const device = await authenticate(req, res);
    const vaultId = param(req, 'vault');
    if ((await ctx.storage.getGenesis(vaultId)) === undefined) {
      throw new E2ekvError('NOT_FOUND', `this server holds no vault ${vaultId}`);
    }
    // Checked on every request, against the state with every accepted removal
    // applied: a removed device reads nothing from the moment its removal is accepted.
    const state = await ctx.membership.state(vaultId);
    const role = state?.roleOf(device);
    if (role === undefined || !roles.includes(role)) {
      throw new E2ekvError(
        'PERMISSION_DENIED',
        state?.isRemoved(device) === true
          ? `device ${device} was removed from this vault`
          : `device ${device} is not a ${roles.join(' or ')} of this vault`,
      );
    }
    return { vaultId, device };
  }
  const anyRole: readonly Role[] = ['reader', 'writer', 'admin'];

  app.get(
    '/healthz',
    route('healthz', (_req, res) => {
      res.json({ status: 'ok' });
    }),
  );
  app.get(
    '/readyz',
    route('readyz', (_req, res) => {
      res.status(ctx.isReady() ? 200 : 503).json({ status: ctx.isReady() ? 'ready' : 'not ready' });
    }),
  );
  app.get(
    '/metrics',
    route('metrics', (_req, res) => {
      ctx.metrics.eventStreams.set(ctx.events.size);
      res.type('text/plain; version=0.0.4').send(ctx.metrics.registry.render());
    }),
  );

  app.get(
    '/v1/info',
    route('info', (_req, res) => {
      res.json({
        name: 'e2ekv-server',
        version: ctx.version,
        protocolVersions: [1],
        cosigner: {
          name: ctx.cosigner.name,
          publicKey: toBase64(ctx.cosigner.publicKey),
          vkey: formatCosignerVkey(ctx.cosigner.name, ctx.cosigner.publicKey),
        },
        limits: ctx.limits,
      });
    }),
  );

  app.post(
    '/v1/vaults',
    route('create-vault', async (req, res) => {
      const device = await authenticate(req, res);
      const { genesis } = parseCreateVaultRequest(jsonBody(req));
      const verified = await verifyGenesis(genesis);
      if (toHex(verified.genesis.creator) !== device) {
        throw new E2ekvError('PERMISSION_DENIED', 'a vault is created by the device that signed its genesis');
      }
      const { vaultId, created } = await ctx.acceptor.createVault(genesis);
      res.status(created ? 201 : 200).json({ vaultId });
    }),
  );

  app.get(
    '/v1/vaults/:vault',
    route('vault', async (req, res) => {
      const { vaultId } = await member(req, res, anyRole);
      const genesis = (await ctx.storage.getGenesis(vaultId))!;
      const heads = await ctx.storage.listHeads(vaultId);
      res.json(
        encodeVaultStateResponse({
          genesis,
          logs: heads.map((h) => ({ device: h.device, size: h.size, root: h.root })),
        }),
      );
    }),
  );

  app.get(
    '/v1/vaults/:vault/members',
    route('members', async (req, res) => {
      const { vaultId } = await member(req, res, anyRole);
      const entries = await ctx.storage.listMembership(vaultId);
      res.json({
        members: await ctx.membership.members(vaultId),
        entries: entries.map((e) => ({ device: e.device, index: e.index, entry: toBase64(e.bytes) })),
      });
    }),
  );

  app.post(
    '/v1/vaults/:vault/logs/:device/append',
    route('append', async (req, res) => {
      const input: AppendInput = {
        method: req.method,
        path: req.originalUrl,
        authorization: req.get('authorization'),
        body: bodyBytes(req),
        locals: locals(res),
      };
      res.json({ checkpoint: await append(input, () => [param(req, 'vault'), param(req, 'device')]) });
    }),
  );

  /**
   * The append route's work, on both paths to it (see the lean path below):
   * `params` gives the vault and log device, checked after authentication as
   * on every route. Returns the cosigned checkpoint.
   */
  async function append(input: AppendInput, params: () => [string, string]): Promise<string> {
    const { deviceHex: device } = await ctx.authenticator.authenticate({
      method: input.method,
      path: input.path,
      body: input.body,
      authorization: input.authorization,
    });
    input.locals.device = device;
    const [vaultId, logDevice] = params();
    if (logDevice !== device) {
      throw new E2ekvError('PERMISSION_DENIED', 'a device appends only to its own log');
    }
    const request = parseAppendRequest(parseJson(input.body));
    const { cosignedCheckpoint, size } = await ctx.acceptor.append(vaultId, device, request);
    // The body as received: peers verify the very bytes the device signed.
    ctx.replicator.accepted(vaultId, device, request.entries.length, input.body);
    ctx.metrics.appends.inc();
    ctx.metrics.entries.inc({}, request.entries.length);
    ctx.metrics.storageBytes.add(
      request.entries.reduce((n, e) => n + e.length, 0) + request.blobs.reduce((n, b) => n + b.length, 0),
    );
    const state = await ctx.membership.state(vaultId);
    ctx.events.publish(vaultId, { device, size }, (reader) => state?.roleOf(reader) !== undefined);
    return cosignedCheckpoint;
  }

  app.get(
    '/v1/vaults/:vault/logs/:device/checkpoint',
    route('checkpoint', async (req, res) => {
      const { vaultId } = await member(req, res, anyRole);
      const head = await ctx.acceptor.cosignedHead(vaultId, param(req, 'device'));
      if (head === undefined)
        throw new E2ekvError('NOT_FOUND', 'this server holds no entries of that device in this vault');
      res.type('text/plain; charset=utf-8').send(head.note);
    }),
  );

  app.get(
    '/v1/vaults/:vault/logs/:device/entries',
    route('entries', async (req, res) => {
      const { vaultId } = await member(req, res, anyRole);
      const device = param(req, 'device');
      const start = queryIndex(req, 'start', 0);
      const end = queryIndex(req, 'end', start + ctx.limits.maxBatchEntries);
      const proofFrom = req.query['proofFrom'] === undefined ? undefined : queryIndex(req, 'proofFrom');
      const result = await ctx.acceptor.entries(vaultId, device, start, end, proofFrom);
      res.json(encodeEntriesResponse(result));
    }),
  );

  app.get(
    '/v1/vaults/:vault/blobs/:hash',
    route('blob', async (req, res) => {
      const { vaultId } = await member(req, res, anyRole);
      const blob = await ctx.storage.getBlob(vaultId, param(req, 'hash'));
      if (blob === undefined) throw new E2ekvError('NOT_FOUND', 'no such blob in this vault');
      res.type('application/octet-stream').send(Buffer.from(blob));
    }),
  );

  app.get(
    '/v1/vaults/:vault/evidence',
    route('evidence', async (req, res) => {
      const { vaultId } = await member(req, res, anyRole);
      res.json({ evidence: await ctx.storage.listEvidence(vaultId) });
    }),
  );

  app.get(
    '/v1/vaults/:vault/events',
    route('events', async (req, res) => {
      const { vaultId, device } = await member(req, res, anyRole);
      res.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-store',
        connection: 'keep-alive',
      });
      res.write(': e2ekv checkpoint events\n\n');
      ctx.metrics.eventStreams.add(1);
      ctx.events.subscribe(vaultId, res, () => ctx.metrics.eventStreams.add(-1), device);
    }),
  );

  mountPeerRoutes(app, ctx, route);

  app.use(
    route('unmatched', () => {
      throw new E2ekvError('NOT_FOUND', 'no such endpoint: see server/API.md');
    }),
  );

  // The single place where errors become responses (the lean path's through failed()).
  app.use((error: unknown, _req: Request, res: Response, next: NextFunction) => {
    void next;
    const answer = failure(error, res, locals(res));
    if (answer !== undefined) res.status(answer.status).json(answer.body);
  });

  /**
   * Logs and counts a failure; the status and body to answer, or undefined
   * when the answer had started already (the response is then ended).
   */
  function failure(error: unknown, res: ServerResponse, l: Locals): { status: number; body: ErrorBody } | undefined {
    const e = toE2ekvError(error);
    const status = httpStatus(e.code);
    if (status >= 500)
      ctx.logger.log('error', 'request failed', {
        requestId: l.requestId,
        error: String(error),
        stack: (error as Error)?.stack,
      });
    ctx.metrics.rejections.inc({ code: e.code });
    if (res.headersSent) {
      res.end();
      return undefined;
    }
    return { status, body: errorBody(e) };
  }

  /** failure() for the lean path, which answers as the error handler above does. */
  function failed(error: unknown, res: ServerResponse, l: Locals): void {
    const answer = failure(error, res, l);
    if (answer !== undefined) sendJson(res, answer.status, answer.body);
  }

  // The lean path of device appends, the hot route: before express, with the
  // body read here instead of by express.raw and the answer written as res.json
  // writes it; the same request id, metrics and log line, the same handler,
  // checks and limits, and the same error handler (failed). Only plain requests
  // take it: exactly this path (no query, no percent-encoding, lowercase hex),
  // POST, an identity body with a Content-Length within the limit. Anything else
  // (chunked, compressed, oversized, odd spellings) goes to express, which
  // answers it as before.
  function lean(req: IncomingMessage, res: ServerResponse): boolean {
    if (req.method !== 'POST') return false;
    const url = req.url!;
    const match = APPEND_PATH.exec(url);
    if (match === null) return false;
    const headers = req.headers;
    const declared = headers['content-length'];
    if (
      headers['content-encoding'] !== undefined ||
      headers['transfer-encoding'] !== undefined ||
      declared === undefined ||
      !CONTENT_LENGTH.test(declared) ||
      Number(declared) > ctx.limits.maxBodyBytes
    ) {
      return false;
    }
    const l: Locals = { requestId: requestIdOf(req), route: 'unmatched' };
    // As express's res.locals: the request log and peerOf read them there.
    (res as ServerResponse & { locals: Locals }).locals = l;
    track(req, res, l);
    readBody(req, Number(declared), (error, body) => {
      if (error !== undefined) return failed(error, res, l);
      l.route = 'append';
      const input: AppendInput = {
        method: 'POST',
        path: url,
        authorization: headers.authorization,
        body: asBytes(body!),
        locals: l,
      };
      void (async () => {
        try {
          sendJson(res, 200, { checkpoint: await append(input, () => [match[1]!, match[2]!]) });
        } catch (error) {
          failed(error, res, l);
        }
      })();
    });
    return true;
  }

  return (req, res) => {
    if (!lean(req, res)) app(req, res);
  };
}

/**
 * What express's res.status(status).json(body) sends here (no ETag: it is
 * disabled; no 304: never for POST), in one write: the status, the JSON
 * content type and length, the body.
 */
function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const json = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader('content-type', 'application/json; charset=utf-8');
  res.setHeader('content-length', Buffer.byteLength(json));
  res.end(json);
}
