// A TCP relay on 127.0.0.1:0 whose target can change and which can be cut:
// replicas are configured with each other's relay URL before they start (and
// keep it across restarts on new ports), and a test partitions them by
// cutting relays.
//
// Connections it refuses or cuts are reset (RST), which callers see at once
// as ECONNRESET; closing them with FIN instead leaves fetch waiting for its
// timeout. Upstream sockets are only destroyed: resetAndDestroy() on one
// still connecting defers to a 'connect' that may never come, and leaves the
// process unable to exit.
import net from 'node:net';

export interface Relay {
  url: string;
  /** Where new connections go (a replica's own URL). */
  retarget(url: string): void;
  /** Resets open connections and refuses new ones until heal(). */
  cut(): void;
  heal(): void;
  close(): Promise<void>;
}

export async function startRelay(): Promise<Relay> {
  let target: URL | undefined;
  let cut = false;
  const clients = new Set<net.Socket>();
  const upstreams = new Set<net.Socket>();
  const server = net.createServer((client) => {
    clients.add(client);
    client.on('close', () => clients.delete(client));
    client.on('error', () => client.destroy());
    if (cut || target === undefined) {
      client.resetAndDestroy();
      return;
    }
    const upstream = net.connect(Number(target.port), target.hostname);
    upstreams.add(upstream);
    upstream.on('close', () => {
      upstreams.delete(upstream);
      if (!client.destroyed) client.resetAndDestroy();
    });
    upstream.on('error', () => upstream.destroy());
    client.on('close', () => upstream.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as net.AddressInfo;
  const resetAll = () => {
    for (const socket of upstreams) socket.destroy();
    for (const socket of clients) if (!socket.destroyed) socket.resetAndDestroy();
  };
  return {
    url: `http://127.0.0.1:${port}`,
    retarget(url) {
      target = new URL(url);
      resetAll();
    },
    cut() {
      cut = true;
      resetAll();
    },
    heal() {
      cut = false;
    },
    close: async () => {
      resetAll();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
