/**
 * The queue of appends waiting to be pushed to one peer: bounded in bytes (a
 * slow or far-behind peer costs this replica a fixed amount of memory, and
 * what does not fit is left to the peer's own anti-entropy), with at most
 * `concurrency` pushes in flight and at most one per log, so that a log's
 * batches reach the peer in order.
 */
export interface PushItem {
  /** Items with the same key are sent one after another, in order. */
  key: string;
  bytes: number;
}

export class PushQueue<T extends PushItem> {
  readonly #maxBytes: number;
  readonly #concurrency: number;
  readonly #send: (item: T) => Promise<void>;
  readonly #byKey = new Map<string, T[]>();
  // Keys with queued items and nothing in flight, oldest first.
  #ready: string[] = [];
  readonly #inFlight = new Set<string>();
  #bytes = 0;
  #items = 0;
  #idle: (() => void)[] = [];

  constructor(options: { maxBytes: number; concurrency: number; send: (item: T) => Promise<void> }) {
    this.#maxBytes = options.maxBytes;
    this.#concurrency = Math.max(1, options.concurrency);
    this.#send = options.send;
  }

  get bytes(): number {
    return this.#bytes;
  }

  get items(): number {
    return this.#items;
  }

  /** Queues `item`; false (and nothing queued) when it would take the queue over its byte bound. */
  offer(item: T): boolean {
    if (this.#bytes + item.bytes > this.#maxBytes) return false;
    this.#bytes += item.bytes;
    this.#items++;
    const queue = this.#byKey.get(item.key);
    if (queue !== undefined) queue.push(item);
    else {
      this.#byKey.set(item.key, [item]);
      if (!this.#inFlight.has(item.key)) this.#ready.push(item.key);
    }
    this.#pump();
    return true;
  }

  /** Forgets every queued item (those in flight finish). */
  clear(): void {
    for (const [key, queue] of this.#byKey) {
      for (const item of queue) this.#bytes -= item.bytes;
      this.#items -= queue.length;
      this.#byKey.delete(key);
    }
    this.#ready = [];
    this.#checkIdle();
  }

  /** Resolves when nothing is queued or in flight. */
  idle(): Promise<void> {
    if (this.#items === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  #pump(): void {
    while (this.#inFlight.size < this.#concurrency && this.#ready.length > 0) {
      const key = this.#ready.shift()!;
      const queue = this.#byKey.get(key);
      const item = queue?.shift();
      if (item === undefined) continue;
      if (queue!.length === 0) this.#byKey.delete(key);
      this.#inFlight.add(key);
      void this.#send(item)
        .catch(() => undefined) // the sender handles its own failures
        .finally(() => {
          this.#inFlight.delete(key);
          this.#bytes -= item.bytes;
          this.#items--;
          if (this.#byKey.has(key)) this.#ready.push(key);
          this.#pump();
          this.#checkIdle();
        });
    }
  }

  #checkIdle(): void {
    if (this.#items !== 0) return;
    for (const resolve of this.#idle.splice(0)) resolve();
  }
}
