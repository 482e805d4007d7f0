// A TCP proxy on 127.0.0.1:0 that forwards to a target and records every byte
// both ways, so a test can check what actually crossed the wire.
import net from 'node:net';

export interface RecordingProxy {
  url: string;
  /** Everything sent to the target, concatenated per connection in order. */
  sent(): Buffer;
  /** Everything the target answered. */
  received(): Buffer;
  close(): Promise<void>;
}

export async function startRecordingProxy(targetUrl: string): Promise<RecordingProxy> {
  const target = new URL(targetUrl);
  const up: Buffer[] = [];
  const down: Buffer[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    sockets.add(client);
    sockets.add(upstream);
    client.on('data', (chunk: Buffer) => up.push(Buffer.from(chunk)));
    upstream.on('data', (chunk: Buffer) => down.push(Buffer.from(chunk)));
    client.pipe(upstream);
    upstream.pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', end);
    upstream.on('error', end);
    client.on('close', end);
    upstream.on('close', end);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    sent: () => Buffer.concat(up),
    received: () => Buffer.concat(down),
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * The spellings in which `secret` could appear in captured or stored bytes:
 * raw UTF-8, hex, and base64 at each of the three byte alignments (the inner
 * part of the encoding that does not depend on the neighbouring bytes).
 */
export function spellingsOf(secret: string): Buffer[] {
  const raw = Buffer.from(secret, 'utf8');
  const spellings = [raw, Buffer.from(raw.toString('hex')), Buffer.from(raw.toString('hex').toUpperCase())];
  for (let shift = 0; shift < 3; shift++) {
    const padded = Buffer.concat([Buffer.alloc(shift), raw]);
    const encoded = padded.toString('base64');
    // Characters wholly determined by the secret's bytes: skip the first group touched by padding, and the tail.
    const start = Math.ceil((shift * 4) / 3) + (shift === 0 ? 0 : 1);
    const end = Math.floor(((shift + raw.length) * 4) / 3) - 1;
    if (end - start >= 8) {
      const inner = encoded.slice(start, end);
      spellings.push(Buffer.from(inner), Buffer.from(inner.replace(/\+/g, '-').replace(/\//g, '_')));
    }
  }
  return spellings;
}

/** The spellings of `secret` found in `haystack` (empty when none). */
export function findSpellings(haystack: Buffer, secret: string): string[] {
  return spellingsOf(secret)
    .filter((needle) => haystack.includes(needle))
    .map((needle) => needle.toString());
}
