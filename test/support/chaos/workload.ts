// The client side of a chaos run: each session (one device, one SDK client)
// runs a seeded plan of operations one at a time, as a Jepsen client does, and
// records each one in the history: sets with ack one/quorum/all, reads with
// get or getAll at read level one/quorum, over a few keys so that writers
// collide and siblings appear.
import type { AckLevel, ReadLevel, Vault } from '../../../sdk/src/index.js';
import type { History, WriteEntry } from './history.js';
import type { Random } from './random.js';

export interface PlannedOp {
  f: 'set' | 'get' | 'getAll';
  key: string;
  level: AckLevel | ReadLevel;
  /** set: unique in the run, so that every value read names its write. */
  value?: string;
}

export interface PlanOptions {
  /** Keys are "k0" .. "k{keys-1}"; few keys make concurrent writes to one key common. */
  keys: number;
  /** Share of writes among operations (default 0.55). */
  writeShare?: number;
}

const ACK_WEIGHTS: Record<'one' | 'quorum' | 'all', number> = { one: 2, quorum: 2, all: 1 };
const READ_WEIGHTS: Record<'one' | 'quorum', number> = { one: 1, quorum: 1 };

/** A session's operations, forever; a pure function of the generator's seed. */
export function* sessionPlan(random: Random, session: string, options: PlanOptions): Generator<PlannedOp, never> {
  const writeShare = options.writeShare ?? 0.55;
  for (let seq = 0; ; seq++) {
    // A skew towards the first keys: hot keys get concurrent writers, cold keys long quiet histories.
    const key = `k${Math.floor(options.keys * random.next() ** 1.5)}`;
    if (random.chance(writeShare)) {
      yield { f: 'set', key, level: random.weighted(ACK_WEIGHTS), value: `${session}:${seq}` };
    } else {
      yield { f: random.chance(0.7) ? 'getAll' : 'get', key, level: random.weighted(READ_WEIGHTS) };
    }
  }
}

export interface SessionOptions {
  session: string;
  /** The session's device id (hex), to find its own log in the vault's status. */
  device: string;
  vault: Vault;
  plan: Iterator<PlannedOp>;
  history: History;
  /** Asked before each operation. */
  stop: () => boolean;
  /** Pause between operations, ms (seeded, from `random`). */
  thinkMs: readonly [number, number];
  random: Random;
}

/** Runs a session until `stop()`; resolves with the number of operations it ran. */
export async function runSession(options: SessionOptions): Promise<number> {
  let done = 0;
  while (!options.stop()) {
    const op = options.plan.next().value as PlannedOp;
    if (op.f === 'set') await runSet(options, op);
    else await runRead(options, op);
    done++;
    await new Promise((resolve) => setTimeout(resolve, options.random.range(...options.thinkMs)));
  }
  return done;
}

/**
 * A set, with the entry it lands in. The vault's status right before the call
 * gives the entry's index (the own log's size) and causal context (what this
 * device has applied of every other log): nothing else runs on this device in
 * between, since a session runs one operation at a time and nothing pulls
 * in the background without watch().
 */
async function runSet(options: SessionOptions, op: PlannedOp): Promise<void> {
  const { vault, device, history } = options;
  const before = vault.status();
  const index = before.logs.find((l) => l.device === device)?.entries ?? 0;
  const context = Object.fromEntries(
    before.logs.filter((l) => l.device !== device && l.applied > 0).map((l) => [l.device, l.applied]),
  );
  const entry: WriteEntry = { device, index, context };
  const ownSize = () => vault.status().logs.find((l) => l.device === device)?.entries ?? 0;
  const invocation = history.invoke({
    session: options.session,
    f: 'set',
    key: op.key,
    level: op.level,
    value: op.value!,
  });
  try {
    await vault.set(op.key, op.value!, { ack: op.level as AckLevel });
  } catch (error) {
    // Saved on the device but not acknowledged as asked: it may or may not be on the replicas yet.
    if (ownSize() > index) invocation.unknown(error, { entry });
    else invocation.fail(error);
    return;
  }
  invocation.ok({ entry });
  // The entry's identity above is only right if this set made exactly one entry.
  if (ownSize() !== index + 1)
    throw new Error(`${options.session}: one set grew the own log from ${index} to ${ownSize()}`);
}

async function runRead(options: SessionOptions, op: PlannedOp): Promise<void> {
  const { vault, history } = options;
  const invocation = history.invoke({ session: options.session, f: op.f, key: op.key, level: op.level });
  try {
    const read = { read: op.level as ReadLevel };
    if (op.f === 'getAll') {
      const siblings = await vault.getAll(op.key, read);
      invocation.ok({ observed: siblings.map((s) => ({ value: s.value, device: s.device, index: s.index })) });
    } else {
      const value = await vault.get(op.key, read);
      invocation.ok({ observed: value === undefined ? [] : [{ value }] });
    }
  } catch (error) {
    invocation.fail(error);
  }
}
