/**
 * A handle on one key of a vault whose value is an Automerge document: reads
 * merge the key's current siblings (merge.ts), and a change writes the changed
 * merge back as one document, which supersedes every sibling it merged.
 *
 * One document per key, never one per vault: Automerge keeps a document's whole
 * history in memory, and a key is the unit that syncs, conflicts and is loaded.
 */
import type * as AutomergeApi from '@automerge/automerge/slim';
import { E2ekvError, isE2ekvError } from '@e2ekv/protocol';
import type { ReadOptions, Sibling, Vault, WriteOptions } from '../vault.js';
import { DEFAULT_DOCUMENT_LIMITS, mergeSiblings, type DocumentLimits } from './merge.js';
import { automergeReady, initAutomerge } from './wasm.js';

/** What a handle needs of a vault. */
export type DocumentVault = Pick<Vault, 'getAll' | 'batch' | 'watch'>;

export interface OpenDocumentOptions extends ReadOptions, Partial<DocumentLimits> {}

export interface DocumentChangeOptions extends WriteOptions {
  /** Recorded in the Automerge change (inside the encrypted value). */
  message?: string;
}

/** What the last read found under the key. */
export interface DocumentSiblings {
  /** Document siblings merged into `value()`. */
  documents: number;
  /** Concurrent deletes, ignored while a document exists. */
  tombstones: number;
  /** Plain (bytes or JSON) siblings; while there are any, `value` and `change` refuse with CONFLICT. */
  plain: readonly Sibling[];
}

interface State<T> {
  /** Which read produced it: a slower read never replaces a newer state. */
  seq: number;
  /** The siblings it merges, as one string (kind, device, index of each). */
  id: string;
  /** The merged document; only this module changes it, and only a clone of it. */
  doc: AutomergeApi.Doc<T>;
  /** What `value()` hands out: a read-only view, so a caller cannot change our copy behind our back. */
  view: AutomergeApi.Doc<T>;
  siblings: DocumentSiblings;
  /** The versions merged: what a write of this state supersedes. */
  versions: { device: string; index: number }[];
}

const MAX_REDOS = 5;

/** Runs `attempt` again when the vault refused its write because the key changed under it. */
async function retryWhenSuperseded<R>(attempt: () => Promise<R>): Promise<R> {
  for (let redo = 0; ; redo++) {
    try {
      return await attempt();
    } catch (error) {
      const superseded = isE2ekvError(error, 'CONFLICT') && error.details['precondition'] === true;
      if (!superseded || redo >= MAX_REDOS) throw error;
    }
  }
}

function siblingsId(siblings: readonly Sibling[]): string {
  return siblings
    .map((s) => `${s.kind}:${s.device}/${s.index}`)
    .sort()
    .join(',');
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// Document writes of one vault, one at a time: two changes to the same key that
// both read the key before either wrote would each supersede the other's
// siblings, and the second (always causally later, being from the same device)
// would drop what the first added.
const exclusive = new WeakMap<object, Promise<unknown>>();

function oneAtATime<R>(vault: object, run: () => Promise<R>): Promise<R> {
  const done = (exclusive.get(vault) ?? Promise.resolve()).then(run);
  exclusive.set(
    vault,
    done.catch(() => undefined),
  );
  return done;
}

export class DocumentHandle<T> {
  readonly key: string;
  readonly #vault: DocumentVault;
  readonly #limits: DocumentLimits;
  #state: State<T> | undefined;
  #reads = 0;

  constructor(vault: DocumentVault, key: string, limits: DocumentLimits) {
    this.#vault = vault;
    this.key = key;
    this.#limits = limits;
  }

  /**
   * The merged document as of the last read (`openDocument`, `refresh`,
   * `change`, or a watched update): read-only; change it with `change`. An empty
   * document when the key holds none. Throws CONFLICT while the key also holds
   * plain values (see `resolve`).
   */
  value(): AutomergeApi.Doc<T> {
    const state = this.#current();
    if (state.siblings.plain.length > 0) throw this.#conflict(state.siblings);
    return state.view;
  }

  /** What the last read found under the key. */
  siblings(): DocumentSiblings {
    return this.#current().siblings;
  }

  /**
   * Merges the key's current siblings again, after `vault.sync()` or with a read
   * level that pulls first. Throws MALFORMED if a document sibling does not load
   * (nothing is written; the key stays as it is), TOO_LARGE past the limits.
   */
  async refresh(options: ReadOptions = {}): Promise<void> {
    await this.#read(options.read ?? 'local');
  }

  /**
   * Applies `fn` to the merge of the key's current siblings (read again now, so
   * it includes everything this device has applied) and writes the result as one
   * document: the write supersedes every sibling merged. A change that changes
   * nothing writes nothing, unless the key has several siblings to fold into one.
   * Throws CONFLICT while the key holds plain values (nothing is written).
   */
  async change(fn: AutomergeApi.ChangeFn<T>, options: DocumentChangeOptions = {}): Promise<AutomergeApi.Doc<T>> {
    return oneAtATime(this.#vault, () =>
      retryWhenSuperseded(async () => {
        const state = await this.#read('local');
        if (state.siblings.plain.length > 0) throw this.#conflict(state.siblings);
        return this.#write(state, fn, options);
      }),
    );
  }

  /**
   * Like `change`, but also when the key holds plain values: `fn` gets the merged
   * document and those siblings (winner first), may fold them into the document,
   * and the write supersedes them. The application decides what they become;
   * nothing is dropped without it deciding.
   */
  async resolve(
    fn: (doc: T, plain: readonly Sibling[]) => void,
    options: DocumentChangeOptions = {},
  ): Promise<AutomergeApi.Doc<T>> {
    return oneAtATime(this.#vault, () =>
      retryWhenSuperseded(async () => {
        const state = await this.#read('local');
        const plain = state.siblings.plain;
        return this.#write(state, (doc) => fn(doc, plain), options);
      }),
    );
  }

  /**
   * Calls `listener` with the merged document each time the key changes in the
   * vault (this device's writes and other devices' synced ones), and `onError`
   * when a new state cannot be read (MALFORMED, TOO_LARGE, or CONFLICT when plain
   * values appear). Keeps the vault syncing through `vault.watch` until the
   * returned function is called.
   */
  watch(listener: (doc: AutomergeApi.Doc<T>) => void, onError: (error: unknown) => void): () => void {
    let stopped = false;
    let running = false;
    let again = false;
    let notified: string | undefined = this.#state?.id;
    const update = async () => {
      running = true;
      try {
        do {
          again = false;
          try {
            const state = await this.#read('local');
            if (stopped || state.id === notified) continue;
            notified = state.id;
            if (state.siblings.plain.length > 0) onError(this.#conflict(state.siblings));
            else listener(state.view);
          } catch (error) {
            if (!stopped) onError(error);
          }
        } while (again && !stopped);
      } finally {
        running = false;
      }
    };
    // The vault calls this while it applies an entry: only schedule work here,
    // and never throw into the vault.
    const unwatch = this.#vault.watch((change) => {
      if (change.key !== this.key || stopped) return;
      if (running) again = true;
      else void update();
    });
    return () => {
      stopped = true;
      unwatch();
    };
  }

  #current(): State<T> {
    if (this.#state === undefined) {
      throw new E2ekvError('INVALID_ARGUMENT', `the document "${this.key}" was not read yet: use openDocument`);
    }
    return this.#state;
  }

  #conflict(siblings: DocumentSiblings): E2ekvError {
    const kinds = [...new Set(siblings.plain.map((s) => s.kind))].join(' and ');
    return new E2ekvError(
      'CONFLICT',
      `key "${this.key}" holds ${siblings.plain.length} plain ${kinds} value(s) beside ${siblings.documents} Automerge document(s): ` +
        'read them with vault.getAll and fold them in with resolve(), or overwrite the key with vault.set',
      { details: { documents: siblings.documents, plain: siblings.plain.length } },
    );
  }

  /** Reads and merges the key's siblings; reuses the last merge when they are the same. */
  async #read(read: ReadOptions['read']): Promise<State<T>> {
    const siblings = await this.#vault.getAll(this.key, read === undefined ? {} : { read });
    const seq = ++this.#reads;
    const id = siblingsId(siblings);
    const last = this.#state;
    if (last !== undefined && last.id === id) return last;
    const merged = mergeSiblings<T>(this.key, siblings, this.#limits);
    return this.#adopt({
      seq,
      id,
      versions: siblings.map((s) => ({ device: s.device, index: s.index })),
      doc: merged.doc,
      siblings: { documents: merged.documents, tombstones: merged.tombstones, plain: merged.plain },
    });
  }

  #adopt(state: Omit<State<T>, 'view'>): State<T> {
    const api = automergeReady();
    const adopted = { ...state, view: api.view(state.doc, api.getHeads(state.doc)) };
    if (this.#state === undefined || adopted.seq > this.#state.seq) this.#state = adopted;
    return adopted;
  }

  // The write names the versions it merged (supersedes): if another version of
  // the key is applied before the write takes its place in the vault's queue,
  // the vault refuses it with CONFLICT and the change is redone on the new merge
  // (retryWhenSuperseded), so no version is ever superseded unmerged.
  async #write(
    state: State<T>,
    fn: AutomergeApi.ChangeFn<T>,
    options: DocumentChangeOptions,
  ): Promise<AutomergeApi.Doc<T>> {
    const api = automergeReady();
    // A clone has a fresh random actor id. Reusing one actor across changes is
    // unsafe here: if a writer superseded this device's change without merging
    // it, the next change would reuse its sequence number, and a sibling that
    // still carries the old change would make the document unmergeable forever.
    const base = api.clone(state.doc);
    const next = api.change(base, options.message === undefined ? {} : { message: options.message }, fn);
    const changed = api.getHeads(next).join() !== api.getHeads(state.doc).join();
    const keySiblings = state.siblings.documents + state.siblings.tombstones + state.siblings.plain.length;
    if (!changed && keySiblings <= 1 && state.siblings.plain.length === 0) {
      api.free(next);
      return state.view;
    }
    const bytes = api.save(next);
    if (bytes.length > this.#limits.maxDocumentBytes) {
      api.free(next);
      throw new E2ekvError(
        'TOO_LARGE',
        `the changed document of key "${this.key}" is ${bytes.length} bytes, more than maxDocumentBytes (${this.#limits.maxDocumentBytes}); nothing was written`,
        { details: { bytes: bytes.length, limit: this.#limits.maxDocumentBytes } },
      );
    }
    const writeOptions: WriteOptions = options.ack === undefined ? {} : { ack: options.ack };
    // The first await of this method: the batch's own write queue takes it from here.
    return await this.#afterWrite(
      this.#vault.batch([{ name: this.key, automerge: bytes, supersedes: state.versions }], writeOptions),
      next,
      bytes,
    );
  }

  /**
   * Waits for the write, then adopts the written document if it is still the
   * key's only sibling. The write may have landed locally even when batch()
   * rejects (UNAVAILABLE: saved here, not yet acknowledged), so look either way.
   */
  async #afterWrite(
    written: Promise<void>,
    next: AutomergeApi.Doc<T>,
    bytes: Uint8Array,
  ): Promise<AutomergeApi.Doc<T>> {
    let failure: { error: unknown } | undefined;
    try {
      await written;
    } catch (error) {
      failure = { error };
    }
    const siblings = await this.#vault.getAll(this.key);
    const seq = ++this.#reads;
    const only = siblings.length === 1 ? siblings[0] : undefined;
    let adopted: State<T> | undefined;
    if (only?.kind === 'automerge' && only.value instanceof Uint8Array && sameBytes(only.value, bytes)) {
      adopted = this.#adopt({
        seq,
        id: siblingsId(siblings),
        versions: siblings.map((s) => ({ device: s.device, index: s.index })),
        doc: next,
        siblings: { documents: 1, tombstones: 0, plain: [] },
      });
    }
    if (failure !== undefined) throw failure.error;
    if (adopted !== undefined) return adopted.view;
    // A concurrent write arrived already: answer with the merge of what is there
    // now, or else with what was written. The write succeeded either way, so a
    // problem with what arrived beside it is for the next read to report.
    try {
      const state = await this.#read('local');
      if (state.siblings.plain.length === 0) return state.view;
    } catch {
      // the next refresh() or watch() update reports it
    }
    const api = automergeReady();
    return api.view(next, api.getHeads(next));
  }
}

/**
 * Opens the Automerge document stored under `key` (starting Automerge's WASM
 * module on first use) and reads it: the merge of the key's current document
 * siblings, or an empty document if there is none.
 */
export async function openDocument<T>(
  vault: DocumentVault,
  key: string,
  options: OpenDocumentOptions = {},
): Promise<DocumentHandle<T>> {
  if (typeof key !== 'string' || key.length === 0) {
    throw new E2ekvError('INVALID_ARGUMENT', 'a document key is a non-empty string');
  }
  const limits: DocumentLimits = {
    maxDocumentBytes: options.maxDocumentBytes ?? DEFAULT_DOCUMENT_LIMITS.maxDocumentBytes,
    maxDocumentSiblings: options.maxDocumentSiblings ?? DEFAULT_DOCUMENT_LIMITS.maxDocumentSiblings,
  };
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new E2ekvError('INVALID_ARGUMENT', `${name} must be a positive integer`);
    }
  }
  await initAutomerge();
  const handle = new DocumentHandle<T>(vault, key, limits);
  await handle.refresh(options.read === undefined ? {} : { read: options.read });
  return handle;
}
