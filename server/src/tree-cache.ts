/**
 * Each log's Merkle tree, rebuilt from storage on first use and kept in memory
 * for the appends and proofs that follow. The cache is bounded twice: by the
 * number of trees, and by an estimate of their bytes, since one large log can
 * weigh more than thousands of small ones. Least recently used trees go first.
 *
 * Dropping a tree only drops the cache's reference: whoever is using it (an
 * append in progress holds the tree it checked against) keeps a working tree,
 * and the next request for that log rebuilds it from storage.
 */
import { E2ekvError, MerkleTree } from '@e2ekv/protocol';
import type { StorageAdapter } from './storage/adapter.js';

export const DEFAULT_MAX_CACHED_TREES = 4096;
export const DEFAULT_MAX_TREE_CACHE_BYTES = 256 * 1024 * 1024;

/**
 * Estimated bytes of a cached tree of `size` leaves. MerkleTree keeps about 2
 * hashes of 32 bytes per leaf in chunks of 1,024 hashes (protocol's merkle.ts),
 * so 64 bytes a leaf; below 1,024 a level's chunk is a power of two of hashes,
 * so small trees are rounded up to one. The fixed part covers the objects
 * around the hashes and this cache's entry. Measured on Node 20 from 10 to
 * 20,000 leaves, a tree uses at most about 10% more than this (less when just
 * past a power of two).
 */
export function estimateTreeBytes(size: number): number {
  let leaves = size;
  if (size < 1024) {
    leaves = 1;
    while (leaves < size) leaves *= 2;
  }
  return TREE_FIXED_BYTES + TREE_BYTES_PER_LEAF * leaves;
}

const TREE_BYTES_PER_LEAF = 64;
const TREE_FIXED_BYTES = 2048;

export interface TreeCacheOptions {
  /** Trees kept at most; default 4096. */
  maxTrees?: number | undefined;
  /** Estimated bytes of trees kept at most (estimateTreeBytes); default 256 MiB. */
  maxBytes?: number | undefined;
}

interface Cached {
  pending: Promise<MerkleTree>;
  /** Set once `pending` has resolved. */
  tree?: MerkleTree;
  /** What this entry adds to TreeCache's byte total (estimateTreeBytes when last counted). */
  counted: number;
}

// Every this many requests, every tree's bytes are counted again (see #evict).
const RECOUNT_EVERY = 64;

/**
 * A tree may run ahead of storage while an append is being checked (the append
 * drops it if it fails); proofs are only asked for sizes storage holds.
 *
 * Entries enter and leave #trees only through #put and #remove, which keep
 * #bytes equal to the sum of their `counted`.
 */
export class TreeCache {
  readonly #storage: StorageAdapter;
  readonly #maxTrees: number;
  readonly #maxBytes: number;
  // In order of use, least recent first (a Map iterates in insertion order).
  readonly #trees = new Map<string, Cached>();
  #bytes = 0;
  #sinceRecount = 0;

  constructor(storage: StorageAdapter, options: TreeCacheOptions = {}) {
    this.#storage = storage;
    const maxTrees = options.maxTrees ?? DEFAULT_MAX_CACHED_TREES;
    const maxBytes = options.maxBytes ?? DEFAULT_MAX_TREE_CACHE_BYTES;
    // NaN would compare false and silently disable the bound.
    if (!(maxTrees >= 0)) throw new E2ekvError('INVALID_ARGUMENT', `maxTrees must be a number >= 0, got ${maxTrees}`);
    if (!(maxBytes >= 0)) throw new E2ekvError('INVALID_ARGUMENT', `maxBytes must be a number >= 0, got ${maxBytes}`);
    this.#maxTrees = Math.max(1, maxTrees);
    this.#maxBytes = maxBytes;
  }

  /** Trees held now. */
  get count(): number {
    return this.#trees.size;
  }

  /** Estimated bytes of the trees held now, counted afresh (a tree still loading counts as empty). */
  get bytes(): number {
    let bytes = 0;
    for (const cached of this.#trees.values()) bytes += cachedBytes(cached);
    return bytes;
  }

  /**
   * The log's tree, with exactly `size` leaves when `exact` (for appending to
   * it), else at least `size` leaves.
   */
  async get(vaultIdHex: string, deviceHex: string, size: number, exact: boolean): Promise<MerkleTree> {
    const key = logKey(vaultIdHex, deviceHex);
    let cached = this.#trees.get(key);
    if (cached !== undefined) {
      this.#remove(key, cached); // put back below as the most recently used
    } else {
      cached = this.#load(key, vaultIdHex, deviceHex);
    }
    this.#put(key, cached);
    this.#recount(cached); // it may have grown since it was last handed out
    this.#evict();
    const tree = await cached.pending;
    if (exact ? tree.size === size : tree.size >= size) return tree;
    // Built before storage grew, or holding leaves of a failed append: build it again.
    this.#remove(key, cached);
    const fresh = this.#load(key, vaultIdHex, deviceHex);
    this.#put(key, fresh);
    this.#evict();
    const rebuilt = await fresh.pending;
    if (exact ? rebuilt.size !== size : rebuilt.size < size) {
      this.#remove(key, fresh);
      throw new E2ekvError('INTERNAL', `storage holds ${rebuilt.size} leaf hashes for a log of size ${size}`);
    }
    return rebuilt;
  }

  /** Forgets a tree that took leaves storage did not accept. */
  drop(vaultIdHex: string, deviceHex: string, tree: MerkleTree): void {
    const key = logKey(vaultIdHex, deviceHex);
    const cached = this.#trees.get(key);
    if (cached?.tree === tree) this.#remove(key, cached);
  }

  #load(key: string, vaultIdHex: string, deviceHex: string): Cached {
    const entry: Cached = {
      pending: this.#storage.getLeafHashes(vaultIdHex, deviceHex).then((leaves) => {
        const tree = new MerkleTree(leaves);
        entry.tree = tree;
        // Its bytes count from now on, and may push the cache over its bounds.
        if (this.#trees.get(key) === entry) {
          this.#recount(entry);
          this.#evict();
        }
        return tree;
      }),
      counted: estimateTreeBytes(0),
    };
    // A failed load is not remembered; the caller sees the failure through `pending`.
    entry.pending.catch(() => this.#remove(key, entry));
    return entry;
  }

  #put(key: string, cached: Cached): void {
    this.#trees.set(key, cached);
    this.#bytes += cached.counted;
  }

  /** Removes `cached` if it is still the entry for `key`. */
  #remove(key: string, cached: Cached): void {
    if (this.#trees.get(key) !== cached) return;
    this.#trees.delete(key);
    this.#bytes -= cached.counted;
  }

  /** Counts a held entry's bytes again. */
  #recount(cached: Cached): void {
    const bytes = cachedBytes(cached);
    this.#bytes += bytes - cached.counted;
    cached.counted = bytes;
  }

  /**
   * Drops least recently used trees until both bounds hold, but never the most
   * recently used one: a log whose tree alone is over the byte bound would
   * otherwise be rebuilt from storage at every request. So the cache may hold
   * one tree's worth over `maxBytes`.
   *
   * Trees grow after the cache hands them out (an append adds its leaves to the
   * tree it got), out of its sight. A tree is counted again when it is asked
   * for, and all of them every RECOUNT_EVERY requests, so the total misses at
   * most the leaves appended in the last RECOUNT_EVERY requests. Counting all
   * at every request would cost O(trees held) each time (about 57 µs with
   * 4,096 trees).
   */
  #evict(): void {
    if (++this.#sinceRecount >= RECOUNT_EVERY) {
      this.#sinceRecount = 0;
      for (const cached of this.#trees.values()) this.#recount(cached);
    }
    for (const [key, cached] of this.#trees) {
      if (this.#trees.size <= 1) return;
      if (this.#trees.size <= this.#maxTrees && this.#bytes <= this.#maxBytes) return;
      this.#remove(key, cached); // removing the current entry is safe while iterating a Map
    }
  }
}

function cachedBytes(cached: Cached): number {
  return estimateTreeBytes(cached.tree?.size ?? 0);
}

function logKey(vaultIdHex: string, deviceHex: string): string {
  return `${vaultIdHex}/${deviceHex}`;
}
