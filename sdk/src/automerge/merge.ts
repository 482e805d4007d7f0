/**
 * The value of a document key: the Automerge merge of the key's current
 * siblings (DESIGN.md section 6). Pure and synchronous once Automerge runs, so
 * the property tests exercise exactly the code that reads real vaults.
 *
 * The sibling rule, in one place:
 * - 'automerge' siblings are merged; Automerge merges commute, associate and are
 *   idempotent, so every device holding the same siblings sees the same document.
 * - 'tombstone' siblings are ignored while any document sibling exists: a delete
 *   concurrent with an edit loses to the edit (nothing the editor wrote is lost),
 *   and the next write supersedes the tombstone. With only tombstones (or no
 *   siblings) the key holds no document and reads as an empty one.
 * - 'bytes' and 'json' siblings (written with plain `set`) cannot be merged into a
 *   document and must not vanish under the next document write, so they are
 *   returned as `plain`, and the handle refuses to read or change the document
 *   (CONFLICT) until the application resolves them explicitly.
 */
import type * as AutomergeApi from '@automerge/automerge/slim';
import { E2ekvError } from '@e2ekv/protocol';
import type { Sibling } from '../vault.js';
import { automergeReady } from './wasm.js';

type Api = typeof AutomergeApi;

/** Bounds on what reading a document key loads, so one member's huge or hostile document cannot exhaust memory. */
export interface DocumentLimits {
  /** Bytes of one saved document sibling (read and written). Default 8 MiB. */
  maxDocumentBytes: number;
  /** Document siblings merged for one key (they come from concurrent writers). Default 64. */
  maxDocumentSiblings: number;
}

// A saved document is compressed; loaded, Automerge holds its whole history in
// memory, many times the saved size (SETUP-NOTES: 670 KiB took about 500 MiB in
// automerge#705). 8 MiB keeps one key's document far below what a browser tab can
// hold, and a deployment that needs more raises it explicitly.
export const DEFAULT_DOCUMENT_LIMITS: Readonly<DocumentLimits> = Object.freeze({
  maxDocumentBytes: 8 * 1024 * 1024,
  maxDocumentSiblings: 64,
});

export interface MergedSiblings<T> {
  /** The merge of every document sibling; an empty document when there is none. */
  doc: AutomergeApi.Doc<T>;
  /** How many document siblings were merged. */
  documents: number;
  /** Concurrent deletes, ignored while a document sibling exists. */
  tombstones: number;
  /** Siblings that are not documents (plain `set` values), winner first: they block reads and changes. */
  plain: readonly Sibling[];
}

function where(sibling: Sibling): Record<string, string | number> {
  return { device: sibling.device, index: sibling.index };
}

/**
 * Loads one saved document, within the limits.
 *
 * Why MALFORMED and not INTEGRITY: by the time a sibling gets here, its entry was
 * signed by a member, decrypted under the vault key and bound to its key name
 * (INTEGRITY and its relatives already cover a server or network altering it).
 * A document that does not load is what that member sealed: a bug or an Automerge
 * version this one cannot read, like a JSON value that does not parse (entries.ts
 * raises MALFORMED for that too). INTEGRITY would tell the user to distrust the
 * replicas, which is the wrong alarm.
 */
export function loadDocument<T>(api: Api, key: string, sibling: Sibling, limits: DocumentLimits): AutomergeApi.Doc<T> {
  const bytes = sibling.value;
  if (!(bytes instanceof Uint8Array)) {
    throw new E2ekvError('MALFORMED', `the Automerge value of key "${key}" is not bytes`, { details: where(sibling) });
  }
  if (bytes.length > limits.maxDocumentBytes) {
    throw new E2ekvError(
      'TOO_LARGE',
      `the Automerge document of key "${key}" written by device ${sibling.device} is ${bytes.length} bytes, more than the ${limits.maxDocumentBytes} this reader loads (raise maxDocumentBytes to read it)`,
      { details: { ...where(sibling), bytes: bytes.length, limit: limits.maxDocumentBytes } },
    );
  }
  // TODO: maxDocumentBytes bounds the compressed size only. Automerge's public API
  // cannot bound what a document inflates to before loading it, so a small
  // hostile document can still take a lot of memory (an "out of memory" is caught
  // below as MALFORMED, but the allocation happens first).
  try {
    // Checked loading (no `unchecked`, no missing changes allowed): every change
    // hash and dependency is verified, and a Rust panic surfaces as a thrown error.
    return api.load<T>(bytes);
  } catch (cause) {
    throw new E2ekvError(
      'MALFORMED',
      `the Automerge document of key "${key}" written by device ${sibling.device} (entry ${sibling.index}) does not load: the writer sealed a bad document`,
      { cause, details: where(sibling) },
    );
  }
}

/**
 * Merges the siblings of `key` by the rule above. Needs Automerge started
 * (`initAutomerge`). The result does not depend on the order of `siblings`, and
 * a sibling given twice changes nothing.
 */
export function mergeSiblings<T>(
  key: string,
  siblings: readonly Sibling[],
  limits: DocumentLimits = DEFAULT_DOCUMENT_LIMITS,
): MergedSiblings<T> {
  const api = automergeReady();
  const documents: Sibling[] = [];
  const plain: Sibling[] = [];
  let tombstones = 0;
  for (const sibling of siblings) {
    switch (sibling.kind) {
      case 'automerge':
        documents.push(sibling);
        break;
      case 'tombstone':
        tombstones++;
        break;
      default:
        // 'bytes', 'json', and any kind a newer SDK adds: never merged, never dropped.
        plain.push(sibling);
    }
  }
  if (documents.length > limits.maxDocumentSiblings) {
    throw new E2ekvError(
      'TOO_LARGE',
      `key "${key}" has ${documents.length} concurrent Automerge documents, more than the ${limits.maxDocumentSiblings} this reader merges`,
      { details: { documents: documents.length, limit: limits.maxDocumentSiblings } },
    );
  }
  let merged: AutomergeApi.Doc<T> | undefined;
  try {
    for (const sibling of documents) {
      const loaded = loadDocument<T>(api, key, sibling, limits);
      if (merged === undefined) {
        merged = loaded;
        continue;
      }
      try {
        merged = api.merge(merged, loaded);
      } catch (cause) {
        throw new E2ekvError(
          'MALFORMED',
          `the Automerge document of key "${key}" written by device ${sibling.device} (entry ${sibling.index}) does not merge with its siblings`,
          { cause, details: where(sibling) },
        );
      } finally {
        // Its changes are copied into `merged`; release the WASM memory now
        // rather than whenever the garbage collector runs the finalizer.
        api.free(loaded);
      }
    }
  } catch (error) {
    if (merged !== undefined) api.free(merged);
    throw error;
  }
  return { doc: merged ?? api.init<T>(), documents: documents.length, tombstones, plain };
}
