// Carries out a fault schedule against a cluster while the workload runs, and
// records each fault in the history. Actions on one replica run in order (a
// restart waits for its kill), actions on different replicas and on links do
// not wait for each other, so a slow restart does not hold back a partition.
// stop() ends the schedule and heals everything: continues paused replicas,
// restarts killed ones, heals cuts and clears link impairments.
import type { Cluster } from './cluster.js';
import type { FaultRecord, History } from './history.js';
import type { FaultAction, FaultEvent } from './schedule.js';

export interface NemesisHooks {
  /** Right after a replica died: e.g. note what it had acknowledged. */
  afterKill?: (replica: number) => void | Promise<void>;
  /** After a restarted replica listens, before any link reaches it (see Cluster.restart). */
  beforeReconnect?: (replica: number, url: string) => Promise<void>;
}

export type FaultCounts = Record<FaultAction['kind'], number>;

export class Nemesis {
  /** Scheduled faults carried out without error, by kind (the final heal is not counted). */
  readonly injected: FaultCounts = {
    kill: 0,
    restart: 0,
    pause: 0,
    resume: 0,
    partition: 0,
    heal: 0,
    impair: 0,
    restore: 0,
  };
  readonly #cluster: Cluster;
  readonly #events: Iterator<FaultEvent>;
  readonly #history: History;
  readonly #hooks: NemesisHooks;
  readonly #chains = new Map<number, Promise<void>>();
  #stopped = false;
  #wake: (() => void) | undefined;
  #running: Promise<void> | undefined;

  readonly #maxDown: number;
  /** Serializes "count the replicas down, then take one down", so two kills cannot both pass the count. */
  #gate: Promise<void> = Promise.resolve();

  constructor(
    cluster: Cluster,
    events: Iterator<FaultEvent>,
    history: History,
    options: NemesisHooks & { maxDown?: number } = {},
  ) {
    this.#cluster = cluster;
    this.#events = events;
    this.#history = history;
    this.#hooks = options;
    this.#maxDown = options.maxDown ?? 1;
  }

  /**
   * Waits until fewer than maxDown replicas are killed or paused, then takes
   * `replica` down. The schedule keeps to maxDown on paper, but a restart on a
   * loaded machine can take many seconds: the next kill then waits for it
   * (later, but still the planned fault) instead of taking a quorum down.
   */
  async #takeDown(replica: number, down: () => Promise<void>): Promise<void> {
    const turn = this.#gate.then(async () => {
      const isDown = (r: { state: string; index: number }) => r.state !== 'running' && r.index !== replica;
      while (!this.#stopped && this.#cluster.replicas.filter(isDown).length >= this.#maxDown) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      await down();
    });
    this.#gate = turn.catch(() => undefined);
    await turn;
  }

  start(): void {
    const origin = this.#history.now();
    this.#running = (async () => {
      while (!this.#stopped) {
        const next = this.#events.next();
        if (next.done === true) return;
        const due = origin + next.value.atMs;
        await this.#sleep(due - this.#history.now());
        if (this.#stopped) return;
        void this.#apply(next.value.action, due);
      }
    })();
  }

  #sleep(ms: number): Promise<void> {
    if (ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /**
   * Starts one action; a replica's actions queue behind that replica's earlier
   * ones. It is recorded now, so the history lists faults in schedule order.
   */
  #apply(action: FaultAction, plannedMs: number, origin: FaultRecord['origin'] = 'schedule'): Promise<void> {
    const record: FaultRecord = { origin, plannedMs, atMs: this.#history.now(), action };
    this.#history.fault(record);
    const run = () => this.#carryOut(action, record);
    if (!('replica' in action)) return run();
    const chain = (this.#chains.get(action.replica) ?? Promise.resolve()).then(run);
    this.#chains.set(action.replica, chain);
    return chain;
  }

  async #carryOut(action: FaultAction, record: FaultRecord): Promise<void> {
    record.atMs = this.#history.now();
    const cluster = this.#cluster;
    try {
      switch (action.kind) {
        case 'kill':
          await this.#takeDown(action.replica, async () => {
            await cluster.kill9(action.replica);
            await this.#hooks.afterKill?.(action.replica);
          });
          break;
        case 'restart':
          await cluster.restart(action.replica, {
            samePort: action.samePort,
            beforeReconnect: (url) => this.#hooks.beforeReconnect?.(action.replica, url) ?? Promise.resolve(),
          });
          break;
        case 'pause':
          await this.#takeDown(action.replica, async () => cluster.pause(action.replica));
          break;
        case 'resume':
          cluster.resume(action.replica);
          break;
        case 'partition':
          cluster.partition(action.groups, action.cut);
          break;
        case 'heal':
          cluster.heal();
          break;
        case 'impair':
          cluster.impair(action.from, action.to, action.faults);
          break;
        case 'restore':
          cluster.impair(action.from, action.to, {});
          break;
      }
      if (record.origin === 'schedule') this.injected[action.kind]++;
    } catch (error) {
      record.error = error instanceof Error ? error.message : String(error);
    }
    record.doneMs = this.#history.now();
  }

  /** Ends the schedule, waits for actions under way, then heals the whole cluster. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#wake?.();
    await this.#running;
    await Promise.all(this.#chains.values());
    const now = this.#history.now();
    for (const replica of this.#cluster.replicas) {
      if (replica.state === 'paused') void this.#apply({ kind: 'resume', replica: replica.index }, now, 'heal');
      if (replica.state === 'killed')
        void this.#apply({ kind: 'restart', replica: replica.index, samePort: true }, now, 'heal');
    }
    await Promise.all(this.#chains.values());
    await this.#apply({ kind: 'heal' }, now, 'heal');
    for (const link of this.#cluster.links()) {
      const [from, to] = link.name.split('->') as [string, string];
      if (Object.keys(link.faults).length > 0) await this.#apply({ kind: 'restore', from, to }, now, 'heal');
    }
  }
}
