// A replica that lies, for replication tests: it has its own server key (so a
// replica can be configured to peer with it, with --peer URL#VKEY), answers
// the peer routes from a script the test writes (genuine device-signed data,
// tampered as the test likes), and signs peer requests of its own to push.
import { ed25519Signer, encodeAppendRequest, formatCosignerVkey, randomBytes, toBase64, utf8 } from '@e2ekv/protocol';
import type { AppendRequest, Ed25519Signer } from '@e2ekv/protocol';
import { signPeerRequest } from '../../src/peer-auth.js';
import { encodeShipment, type Shipment } from '../../src/peer-messages.js';
import { listen } from '../../../test/support/listen.js';
import type { Reply } from './client.js';

export interface FakeVault {
  vaultId: string;
  genesis: Uint8Array;
  /** device hex -> the checkpoint note the fake advertises. */
  heads: Record<string, string>;
  /** The answer to a suffix request from `start`, or undefined for 404. */
  suffix: (device: string, start: number) => Shipment | undefined;
}

export interface FakePeer {
  url: string;
  /** --peer URL#VKEY for the replica that should trust it as a peer. */
  spec: string;
  signer: Ed25519Signer;
  vaults: FakeVault[];
  /** Paths of the requests it answered, in order. */
  requests: string[];
  /** Signs and sends an append as a peer push to a replica whose key is `audience`. */
  push(url: string, audience: Uint8Array, vaultId: string, device: string, body: AppendRequest): Promise<Reply>;
  close(): Promise<void>;
}

export async function startFakePeer(): Promise<FakePeer> {
  const signer = await ed25519Signer(randomBytes(32));
  const vkey = formatCosignerVkey('lying-replica.test', signer.publicKey);
  const vaults: FakeVault[] = [];
  const requests: string[] = [];
  const server = await listen((req, res) => {
    const path = req.url ?? '/';
    requests.push(path);
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const notFound = () => send(404, { error: { code: 'NOT_FOUND', message: 'no' } });
    if (path === '/v1/info') {
      return send(200, {
        name: 'e2ekv-server',
        cosigner: { name: 'lying-replica.test', publicKey: toBase64(signer.publicKey), vkey },
        limits: { maxBatchEntries: 1024, maxBodyBytes: 16 * 1024 * 1024 },
      });
    }
    if (path.startsWith('/v1/peer/vaults?') || path === '/v1/peer/vaults') {
      // A vector no replica has: every vault always looks different.
      return send(200, { vaults: vaults.map((v) => ({ vaultId: v.vaultId, vector: 'f'.repeat(64) })) });
    }
    const state = /^\/v1\/peer\/vaults\/([0-9a-f]{64})$/.exec(path);
    if (state !== null) {
      const vault = vaults.find((v) => v.vaultId === state[1]);
      if (vault === undefined) return notFound();
      return send(200, {
        genesis: toBase64(vault.genesis),
        logs: Object.entries(vault.heads).map(([device, checkpoint]) => ({ device, checkpoint })),
      });
    }
    const suffix = /^\/v1\/peer\/vaults\/([0-9a-f]{64})\/logs\/([0-9a-f]{64})\/suffix\?start=([0-9]+)&/.exec(path);
    if (suffix !== null) {
      const shipment = vaults.find((v) => v.vaultId === suffix[1])?.suffix(suffix[2]!, Number(suffix[3]));
      return shipment === undefined ? notFound() : send(200, encodeShipment(shipment));
    }
    return notFound();
  });
  return {
    url: server.url,
    spec: `${server.url}#${vkey}`,
    signer,
    vaults,
    requests,
    async push(url, audience, vaultId, device, body) {
      const path = `/v1/peer/vaults/${vaultId}/logs/${device}/append`;
      const bytes = utf8(JSON.stringify(encodeAppendRequest(body)));
      const authorization = await signPeerRequest(signer, { audience, method: 'POST', path, body: bytes });
      const res = await fetch(url + path, {
        method: 'POST',
        headers: { authorization, 'content-type': 'application/json' },
        body: Buffer.from(bytes),
      });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        // keep text
      }
      return { status: res.status, body: parsed, text, headers: res.headers };
    },
    close: () => server.close(),
  };
}
