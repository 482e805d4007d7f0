/**
 * The replica-to-replica routes under /v1/peer (server/API.md "Peer routes"),
 * each authenticated as a request from a configured peer (peers.ts), and the
 * operator's view of replication at /v1/replication. Appends a peer sends go
 * through the acceptor like a device's (peer-link.ts `receive`).
 */
import type express from 'express';
import type { Request, Response } from 'express';
import { E2ekvError, fromUtf8, parseAppendRequest, parseCreateVaultRequest, verifyGenesis } from '@e2ekv/protocol';
import type { Acceptor } from './accept.js';
import type { ServerLimits } from './limits.js';
import type { PeerLink } from './peer-link.js';
import {
  MAX_VAULTS_PER_PAGE,
  encodePeerVaultList,
  encodePeerVaultState,
  encodeShipment,
  vectorDigest,
} from './peer-messages.js';
import type { Replicator } from './peers.js';
import { buildShipment } from './shipment.js';
import type { StorageAdapter } from './storage/adapter.js';

export interface PeerRouteContext {
  storage: StorageAdapter;
  acceptor: Acceptor;
  replicator: Replicator;
  limits: ServerLimits;
}

/** app.ts's wrapper: names the route for logs and metrics and passes errors to the one error handler. */
export type RouteWrapper = (
  name: string,
  handler: (req: Request, res: Response) => Promise<void> | void,
) => express.RequestHandler;

const HEX64 = /^[0-9a-f]{64}$/;
// Shipments being built at once; more peers asking wait (429) rather than pile up in memory.
const MAX_CONCURRENT_SHIPMENTS = 4;

function bodyBytes(req: Request): Uint8Array {
  return Buffer.isBuffer(req.body)
    ? new Uint8Array(req.body.buffer, req.body.byteOffset, req.body.length)
    : new Uint8Array(0);
}

function jsonBody(req: Request): unknown {
  try {
    return JSON.parse(fromUtf8(bodyBytes(req), 'request body'));
  } catch (cause) {
    throw new E2ekvError('MALFORMED', 'the request body is not JSON', { cause });
  }
}

function hexParam(req: Request, name: string): string {
  const value = req.params[name];
  if (typeof value !== 'string' || !HEX64.test(value)) {
    throw new E2ekvError('MALFORMED', `${name} must be 64 lowercase hex digits`);
  }
  return value;
}

function count(req: Request, name: string, fallback: number | undefined, max: number): number {
  const raw = req.query[name];
  if (raw === undefined && fallback !== undefined) return fallback;
  if (typeof raw !== 'string' || !/^(0|[1-9][0-9]{0,15})$/.test(raw)) {
    throw new E2ekvError('MALFORMED', `query parameter ${name} must be a non-negative integer`);
  }
  return Math.min(Number(raw), max);
}

/** Sends `body` as JSON and tells the link how much it cost. */
function reply(res: Response, link: PeerLink, req: Request, body: unknown, entries = 0, status = 200): void {
  const text = JSON.stringify(body);
  res.status(status).type('application/json').send(text);
  link.served(entries, bodyBytes(req).length, Buffer.byteLength(text));
}

export function mountPeerRoutes(app: express.Express, ctx: PeerRouteContext, route: RouteWrapper): void {
  let shipping = 0;

  async function peer(req: Request, res: Response): Promise<PeerLink> {
    const link = await ctx.replicator.authenticate({
      method: req.method,
      path: req.originalUrl,
      body: bodyBytes(req),
      authorization: req.get('authorization'),
    });
    (res.locals as { peer?: string }).peer = link.url;
    return link;
  }

  app.get(
    '/v1/replication',
    route('replication', (_req, res) => {
      res.json(ctx.replicator.status());
    }),
  );

  app.get(
    '/v1/peer/vaults',
    route('peer-vaults', async (req, res) => {
      const link = await peer(req, res);
      const after = req.query['after'];
      if (after !== undefined && (typeof after !== 'string' || !HEX64.test(after))) {
        throw new E2ekvError('MALFORMED', 'after must be 64 lowercase hex digits');
      }
      const limit = count(req, 'limit', MAX_VAULTS_PER_PAGE, MAX_VAULTS_PER_PAGE);
      const ids = (await ctx.storage.listVaults()).filter(
        (id) => HEX64.test(id) && (after === undefined || id > after),
      );
      const page = ids.slice(0, limit);
      const vaults = [];
      for (const vaultId of page) vaults.push({ vaultId, vector: vectorDigest(await ctx.storage.listHeads(vaultId)) });
      reply(res, link, req, encodePeerVaultList({ vaults, ...(ids.length > limit ? { next: page.at(-1)! } : {}) }));
    }),
  );

  app.post(
    '/v1/peer/vaults',
    route('peer-create-vault', async (req, res) => {
      const link = await peer(req, res);
      const { genesis } = parseCreateVaultRequest(jsonBody(req));
      await verifyGenesis(genesis);
      const { vaultId, created } = await ctx.acceptor.createVault(genesis);
      reply(res, link, req, { vaultId }, 0, created ? 201 : 200);
    }),
  );

  app.get(
    '/v1/peer/vaults/:vault',
    route('peer-vault', async (req, res) => {
      const link = await peer(req, res);
      const vaultId = hexParam(req, 'vault');
      const genesis = await ctx.storage.getGenesis(vaultId);
      if (genesis === undefined) {
        throw new E2ekvError('NOT_FOUND', `this replica holds no vault ${vaultId}`, { details: { vaultId } });
      }
      const heads = await ctx.storage.listHeads(vaultId);
      reply(
        res,
        link,
        req,
        encodePeerVaultState({ genesis, logs: heads.map((h) => ({ device: h.device, checkpoint: h.note })) }),
      );
    }),
  );

  app.get(
    '/v1/peer/vaults/:vault/logs/:device/suffix',
    route('peer-suffix', async (req, res) => {
      const link = await peer(req, res);
      const vaultId = hexParam(req, 'vault');
      const device = hexParam(req, 'device');
      const start = count(req, 'start', undefined, Number.MAX_SAFE_INTEGER);
      const maxEntries = Math.max(1, count(req, 'maxEntries', ctx.limits.maxBatchEntries, ctx.limits.maxBatchEntries));
      const maxBytes = Math.max(1, count(req, 'maxBytes', 4 << 20, Math.floor((ctx.limits.maxBodyBytes * 3) / 4)));
      if ((await ctx.storage.getGenesis(vaultId)) === undefined) {
        throw new E2ekvError('NOT_FOUND', `this replica holds no vault ${vaultId}`, { details: { vaultId } });
      }
      if (shipping >= MAX_CONCURRENT_SHIPMENTS) {
        res.setHeader('retry-after', '1');
        throw new E2ekvError('RATE_LIMITED', 'this replica is shipping to other peers: retry shortly');
      }
      shipping++;
      try {
        const shipment = await buildShipment(ctx.storage, ctx.acceptor, vaultId, device, start, {
          maxEntries,
          maxBytes,
        });
        reply(res, link, req, encodeShipment(shipment), shipment.entries.length);
      } finally {
        shipping--;
      }
    }),
  );

  app.post(
    '/v1/peer/vaults/:vault/logs/:device/append',
    route('peer-append', async (req, res) => {
      const link = await peer(req, res);
      const vaultId = hexParam(req, 'vault');
      const device = hexParam(req, 'device');
      const request = parseAppendRequest(jsonBody(req));
      const checkpoint = await link.receive(vaultId, device, request);
      reply(res, link, req, { checkpoint });
    }),
  );
}

/** For logs: which peer a request came from. */
export function peerOf(res: Response): string | undefined {
  return (res.locals as { peer?: string }).peer;
}
