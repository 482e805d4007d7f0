// One directed network link of a chaos test (a client to a replica, or a
// replica to its peer) as a TCP proxy on 127.0.0.1:0, with faults switched on
// and off while traffic flows. This kernel has no netem qdisc, so faults are
// made in user space, at the level where each one means something for a TCP
// byte stream:
//
// - cut 'refuse': a new connection is accepted and reset at once (RST), which
//   the caller sees as ECONNRESET, close to a refused port; open connections
//   are reset when the cut starts.
// - cut 'blackhole': a new connection is accepted and then nothing: no byte is
//   forwarded or answered, so the caller waits for its own timeout; open
//   connections are reset when the cut starts, held ones when it ends. (A real
//   blackhole would let TCP retransmit after the heal; ours never delivers.)
// - delay: every chunk, both ways, is delivered `ms` (+ up to `jitterMs`) after
//   it arrived, never before the chunk ahead of it: a stream is not reordered.
// - duplicate: with `probability`, a new connection gets a shadow connection
//   to the same target that receives every byte the client sends, `lagMs`
//   later; the shadow's answers are read and thrown away. The replica thus
//   receives each HTTP request of that connection twice, byte for byte (same
//   signature, same nonce): what a retrying middlebox does. TCP itself never
//   duplicates bytes inside a stream, so this is the meaningful duplication.
// - reorder: with `probability`, a new connection's bytes are held (one
//   connection at a time) until a connection accepted after it has sent its
//   first bytes upstream (or `maxHoldMs` passed), then released: requests on
//   different connections reach the replica in the opposite order to the one
//   they were sent in. Bytes inside one connection are never reordered (TCP
//   would put them back). With keep-alive, callers open new connections only
//   for concurrent requests, so this reorders concurrent requests of a link.
//
// Faults combine: a delayed link may also duplicate and reorder; a cut wins
// over everything. The coin flips come from a seeded Random.
import net from 'node:net';
import type { Random } from './random.js';

export interface LinkFaults {
  cut?: 'refuse' | 'blackhole';
  delay?: { ms: number; jitterMs?: number };
  duplicate?: { probability: number; lagMs: number };
  reorder?: { probability: number; maxHoldMs: number };
}

export interface LinkStats {
  connections: number;
  /** Connections reset on arrival (cut 'refuse', blocked, or no target). */
  refused: number;
  /** Connections whose target failed (refused: a killed replica), reset too. */
  upstreamFailed: number;
  /** Connections accepted and left unanswered (cut 'blackhole'). */
  blackholed: number;
  /** Open connections reset by a cut or a re-target. */
  reset: number;
  duplicated: number;
  reordered: number;
  /** Chunks that waited for a delay. */
  delayed: number;
  bytesUp: number;
  bytesDown: number;
}

export interface LinkProxyOptions {
  /** For messages and stats, e.g. "c0->r1". */
  name: string;
  /** Where the link leads, e.g. http://127.0.0.1:4711; undefined: every connection is reset. */
  target?: string | undefined;
  random: Random;
}

/** The port of an http://host:port URL. */
function endpoint(url: string): { host: string; port: number } {
  const parsed = new URL(url);
  return { host: parsed.hostname, port: Number(parsed.port) };
}

/**
 * Delivers chunks in order, each no earlier than `delay()` after it was pushed
 * and never before the one ahead of it. Without a delay and with nothing
 * queued, a chunk goes out at once (a healthy link adds no timer per chunk).
 */
class Conveyor {
  // Chunks waiting, in the order pushed, each with the time it is due. One timer,
  // for the head only: timers of different lengths that fall due in the same
  // millisecond may fire in either order, which would reorder the stream.
  readonly #queue: { chunk: Buffer; at: number }[] = [];
  #timer: NodeJS.Timeout | undefined;
  #ending: (() => void) | undefined;
  readonly #deliver: (chunk: Buffer) => void;
  readonly #delay: () => number;
  readonly #onDelayed: () => void;

  constructor(deliver: (chunk: Buffer) => void, delay: () => number, onDelayed: () => void) {
    this.#deliver = deliver;
    this.#delay = delay;
    this.#onDelayed = onDelayed;
  }

  push(chunk: Buffer): void {
    const wait = this.#delay();
    if (wait <= 0 && this.#queue.length === 0) {
      this.#deliver(chunk);
      return;
    }
    this.#onDelayed();
    this.#queue.push({ chunk, at: Date.now() + Math.max(0, wait) });
    this.#schedule();
  }

  #schedule(): void {
    const head = this.#queue[0];
    if (this.#timer !== undefined || head === undefined) return;
    this.#timer = setTimeout(() => this.#flush(), Math.max(0, head.at - Date.now()));
  }

  // Delivers every chunk that is due, in order: one behind a later-due chunk waits for it.
  #flush(): void {
    this.#timer = undefined;
    const now = Date.now();
    while (this.#queue.length > 0 && this.#queue[0]!.at <= now) this.#deliver(this.#queue.shift()!.chunk);
    if (this.#queue.length === 0) this.#ending?.();
    else this.#schedule();
  }

  /** Calls `done` once everything pushed so far is delivered. */
  end(done: () => void): void {
    if (this.#queue.length === 0) done();
    else this.#ending = done;
  }

  cancel(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#queue.length = 0;
    this.#ending = undefined;
  }
}

/** One client connection and what the proxy opened for it. */
class Connection {
  readonly client: net.Socket;
  readonly upstream: net.Socket;
  shadow: net.Socket | undefined;
  /** Bytes held back for reordering; undefined when not held. */
  held: Buffer[] | undefined;
  readonly order: number;
  #forwarded = false;
  #closed = false;
  readonly #up: Conveyor;
  readonly #down: Conveyor;
  #shadowUp: Conveyor | undefined;
  #holdTimer: NodeJS.Timeout | undefined;
  readonly #proxy: LinkProxy;

  constructor(client: net.Socket, target: { host: string; port: number }, order: number, proxy: LinkProxy) {
    this.client = client;
    this.order = order;
    this.#proxy = proxy;
    const delay = () => proxy.chunkDelay();
    const counted = () => proxy.stats.delayed++;
    this.#up = new Conveyor((chunk) => this.#sendUp(chunk), delay, counted);
    this.#down = new Conveyor((chunk) => this.client.write(chunk), delay, counted);
    this.upstream = net.connect({ ...target, allowHalfOpen: true });
    this.upstream.on('data', (chunk: Buffer) => {
      proxy.stats.bytesDown += chunk.length;
      this.#down.push(chunk);
    });
    this.upstream.on('end', () => this.#down.end(() => this.client.end()));
    this.upstream.on('error', () => this.reset());
    this.upstream.on('close', () => this.close());
    client.on('data', (chunk: Buffer) => {
      proxy.stats.bytesUp += chunk.length;
      if (this.held !== undefined) this.held.push(chunk);
      else this.#up.push(chunk);
    });
    client.on('end', () => this.#up.end(() => this.upstream.end()));
    client.on('error', () => this.close());
    client.on('close', () => this.close());
  }

  /** Opens a shadow connection that replays every byte sent upstream, `lagMs` later. */
  duplicate(target: { host: string; port: number }, lagMs: number): void {
    const shadow = net.connect(target);
    shadow.on('data', () => undefined); // the duplicate's answers go nowhere
    shadow.on('error', () => shadow.destroy());
    this.shadow = shadow;
    this.#shadowUp = new Conveyor(
      (chunk) => shadow.write(chunk),
      () => lagMs,
      () => undefined,
    );
  }

  /** Holds this connection's bytes until release() or `maxHoldMs`. */
  hold(maxHoldMs: number): void {
    this.held = [];
    this.#holdTimer = setTimeout(() => this.release(), maxHoldMs);
  }

  release(): void {
    clearTimeout(this.#holdTimer);
    const held = this.held;
    this.held = undefined;
    if (this.#closed || held === undefined) return;
    for (const chunk of held) this.#up.push(chunk);
  }

  #sendUp(chunk: Buffer): void {
    this.upstream.write(chunk);
    this.#shadowUp?.push(chunk);
    if (!this.#forwarded) {
      this.#forwarded = true;
      this.#proxy.forwarded(this);
    }
  }

  /** Ends the connection abruptly (a cut, a re-target): both sides see a reset, and no replay crosses later. */
  reset(): void {
    if (!this.client.destroyed) this.client.resetAndDestroy();
    this.close(true);
  }

  close(abrupt = false): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#holdTimer);
    this.#up.cancel();
    this.#down.cancel();
    this.client.destroy();
    this.upstream.destroy();
    const shadow = this.shadow;
    const shadowUp = this.#shadowUp;
    if (shadow !== undefined && shadowUp !== undefined) {
      const stop = () => {
        shadowUp.cancel();
        shadow.destroy();
      };
      if (abrupt) stop();
      else {
        // The caller hung up normally: the replay is still on its way, let it reach the
        // replica and give the replica a moment to answer, unless the link is cut meanwhile.
        this.#proxy.linger(stop);
        shadowUp.end(() => setTimeout(() => this.#proxy.linger(stop, true), 1000).unref());
      }
    }
    this.#proxy.closed(this);
  }
}

export class LinkProxy {
  readonly name: string;
  readonly stats: LinkStats = {
    connections: 0,
    refused: 0,
    upstreamFailed: 0,
    blackholed: 0,
    reset: 0,
    duplicated: 0,
    reordered: 0,
    delayed: 0,
    bytesUp: 0,
    bytesDown: 0,
  };
  #url = '';
  #target: { host: string; port: number } | undefined;
  #faults: LinkFaults = {};
  readonly #server: net.Server;
  readonly #random: Random;
  readonly #open = new Set<Connection>();
  readonly #blackholed = new Set<net.Socket>();
  #accepted = 0;
  #closing = false;
  #blocked = false;
  readonly #lingering = new Set<() => void>();

  private constructor(options: LinkProxyOptions) {
    this.name = options.name;
    this.#random = options.random;
    this.#target = options.target === undefined ? undefined : endpoint(options.target);
    this.#server = net.createServer({ allowHalfOpen: true }, (socket) => this.#accept(socket));
  }

  static async start(options: LinkProxyOptions): Promise<LinkProxy> {
    const proxy = new LinkProxy(options);
    await new Promise<void>((resolve, reject) => {
      proxy.#server.once('error', reject);
      proxy.#server.listen(0, '127.0.0.1', () => resolve());
    });
    proxy.#url = `http://127.0.0.1:${(proxy.#server.address() as net.AddressInfo).port}`;
    return proxy;
  }

  /** Where callers connect: stays the same across re-targets. */
  get url(): string {
    return this.#url;
  }

  get faults(): Readonly<LinkFaults> {
    return this.#faults;
  }

  /** Replaces the link's faults; a cut that starts resets every open connection. */
  setFaults(faults: LinkFaults): void {
    const wasCut = this.#faults.cut !== undefined;
    this.#faults = { ...faults };
    if (faults.cut !== undefined && !wasCut) this.#resetOpen();
    if (faults.cut === undefined) this.#dropBlackholed();
  }

  /** Changes only the cut, keeping delay, duplication and reordering. */
  setCut(cut: LinkFaults['cut']): void {
    const rest = { ...this.#faults };
    delete rest.cut;
    this.setFaults(cut === undefined ? rest : { ...rest, cut });
  }

  /**
   * Points the link at another address (a replica restarted on a new port), or
   * at nothing (every connection is reset). Open connections are reset: they
   * led to the old process.
   */
  retarget(target: string | undefined): void {
    this.#target = target === undefined ? undefined : endpoint(target);
    this.#resetOpen();
  }

  /**
   * Holds the link shut (every connection reset) apart from its faults, for a
   * harness that must keep traffic off it for a moment whatever the schedule
   * does to the link meanwhile.
   */
  block(blocked: boolean): void {
    this.#blocked = blocked;
    if (blocked) this.#resetOpen();
  }

  /** The delay of the next chunk, in ms (0 without a delay fault). */
  chunkDelay(): number {
    const delay = this.#faults.delay;
    if (delay === undefined) return 0;
    return delay.ms + (delay.jitterMs === undefined ? 0 : this.#random.range(0, delay.jitterMs));
  }

  /** A connection sent its first bytes upstream: held connections accepted before it may go now. */
  forwarded(connection: Connection): void {
    for (const other of this.#open) {
      if (other.held !== undefined && other.order < connection.order) {
        // A few ms, so that the later connection's bytes are well ahead at the replica.
        setTimeout(() => other.release(), 10).unref();
      }
    }
  }

  closed(connection: Connection): void {
    this.#open.delete(connection);
  }

  /** Keeps track of a replay that outlives its connection (`done`: it is over), so that a cut stops it too. */
  linger(stop: () => void, done = false): void {
    if (!done) {
      this.#lingering.add(stop);
      return;
    }
    if (this.#lingering.delete(stop)) stop();
  }

  #accept(socket: net.Socket): void {
    this.stats.connections++;
    socket.on('error', () => socket.destroy());
    const target = this.#target;
    if (this.#closing || this.#blocked || target === undefined || this.#faults.cut === 'refuse') {
      this.stats.refused++;
      socket.resetAndDestroy();
      return;
    }
    if (this.#faults.cut === 'blackhole') {
      this.stats.blackholed++;
      this.#blackholed.add(socket);
      socket.resume(); // read and drop, so the caller's writes do not stall before its timeout
      socket.on('close', () => this.#blackholed.delete(socket));
      return;
    }
    const connection = new Connection(socket, target, this.#accepted++, this);
    this.#open.add(connection);
    // A target that refuses (a killed replica) reaches the caller as a reset, like a cut.
    connection.upstream.once('error', () => this.stats.upstreamFailed++);
    const { duplicate, reorder } = this.#faults;
    if (duplicate !== undefined && this.#random.chance(duplicate.probability)) {
      this.stats.duplicated++;
      connection.duplicate(target, duplicate.lagMs);
    }
    // One connection is held at a time: the ones after it pass, which is what overtakes it.
    const holding = [...this.#open].some((c) => c.held !== undefined);
    if (reorder !== undefined && !holding && this.#random.chance(reorder.probability)) {
      this.stats.reordered++;
      connection.hold(reorder.maxHoldMs);
    }
  }

  #resetOpen(): void {
    for (const connection of [...this.#open]) {
      this.stats.reset++;
      connection.reset();
    }
    for (const stop of this.#lingering) stop();
    this.#lingering.clear();
  }

  #dropBlackholed(): void {
    for (const socket of this.#blackholed) socket.resetAndDestroy();
    this.#blackholed.clear();
  }

  /** Stops listening and resets every connection. */
  async close(): Promise<void> {
    this.#closing = true;
    this.#resetOpen();
    this.#dropBlackholed();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
