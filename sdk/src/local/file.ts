/**
 * The local replica in a folder, for Node. The layout, under the store's folder:
 *
 *   format.json                  which format and version wrote the folder
 *   <vaultId>/<device>.log       a log's entries, append-only: u32 big-endian length || bytes, per entry
 *   <vaultId>/<device>.pin.json  the log's pin
 *   <vaultId>/acked.json         own-log sizes replicas acknowledged, by replica
 *   <vaultId>/evidence.json      recorded evidence, in order
 *   <vaultId>/blobs/<hash>       blob bytes
 *
 * Durability: an append is fsynced before it resolves. Every other file is
 * replaced whole and atomically (temp file, fsync, rename, fsync the folder), so
 * a crash leaves either the old or the new version. Only a log can be left in
 * part: a crash during an append can leave the start of a record it never
 * acknowledged, and loading drops that partial tail.
 *
 * Telling a cut-short tail from damage: entries are never empty and never over
 * LIMITS.maxEntryBytes (memory.ts checks both), so a record length outside
 * those bounds was not written by this store. It is damage, unless everything
 * from there on is zeros (a file extended by a crash before its data landed).
 * A plausible length running past the end of the file cannot be told apart
 * from a cut-short append and is dropped as one; a log left with fewer entries
 * than its pin covers is damage all the same.
 *
 * One process at a time: the CONFLICT check counts entries in memory. Within
 * the process, operations on a vault run one after another.
 */
import type { FileHandle } from 'node:fs/promises';
import { mkdir, open, readFile, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { E2ekvError, LIMITS, fromHex, toHex } from '@e2ekv/protocol';
import type { LocalStore, StoredEvidence, StoredLog, StoredPin, StoredVault } from './adapter.js';
import {
  appendConflict,
  checkAcked,
  checkAppend,
  checkBlob,
  checkBlobHash,
  checkDevice,
  checkEvidence,
  checkPin,
  checkVaultId,
  pinBeyondLog,
  storeClosed,
} from './validate.js';

const FORMAT = 'e2ekv-local-replica';
const FORMAT_VERSION = 1;
const FORMAT_FILE = 'format.json';
const ACKED_FILE = 'acked.json';
const EVIDENCE_FILE = 'evidence.json';
const BLOBS_DIR = 'blobs';
const TEMP_SUFFIX = '.tmp';
// A vault being deleted is first renamed to this prefix, so that a crash
// halfway through removing it never leaves a vault with only some of its files.
const DELETED_PREFIX = '.deleted-';

const VAULT_DIR = /^(?:[0-9a-f]{2}){1,64}$/;
const LOG_FILE = /^([0-9a-f]{64})\.log$/;
const PIN_FILE = /^([0-9a-f]{64})\.pin\.json$/;

const DIR_MODE = 0o700;
const FILE_MODE = 0o600;

// ---------------------------------------------------------------------------
// Errors.

function damaged(file: string, what: string): E2ekvError {
  return new E2ekvError(
    'INTEGRITY',
    `the local replica file ${file} is damaged: ${what}. Restore it from a backup, or delete it to have the ` +
      `vault fetched again from its replicas (entries this device has not pushed yet are then lost).`,
    { details: { file } },
  );
}

// I/O failures that may pass (too many open files) rather than ones that say
// something is wrong with the folder itself.
const TRANSIENT_IO_CODES = new Set(['EIO', 'EMFILE', 'ENFILE', 'EBUSY', 'EAGAIN', 'EINTR']);
// A full disk is TOO_LARGE, as a full IndexedDB quota is: the SDK reads
// UNAVAILABLE as "a replica is offline" and carries on, which would hide it.
const FULL_DISK_CODES = new Set(['ENOSPC', 'EDQUOT']);

function errnoOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function wrapIoError(error: unknown, action: string): E2ekvError {
  if (error instanceof E2ekvError) return error;
  const errno = errnoOf(error) ?? 'unknown';
  const reason = error instanceof Error ? error.message : String(error);
  if (FULL_DISK_CODES.has(errno)) {
    return new E2ekvError(
      'TOO_LARGE',
      `the local store could not ${action}: the disk is full (${reason}); free space`,
      {
        cause: error,
        details: { errno },
      },
    );
  }
  return new E2ekvError(
    TRANSIENT_IO_CODES.has(errno) ? 'UNAVAILABLE' : 'INTERNAL',
    `the local store could not ${action}: ${reason}`,
    { cause: error, details: { errno } },
  );
}

// ---------------------------------------------------------------------------
// Files.

async function syncDir(dir: string): Promise<void> {
  // Windows cannot open a folder as a file; NTFS journals renames itself.
  if (process.platform === 'win32') return;
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function writeAll(handle: FileHandle, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, offset, bytes.length - offset);
    offset += bytesWritten;
  }
}

/** Replaces `file` whole: after a crash it holds either the old or the new bytes. */
async function writeFileAtomic(file: string, bytes: Uint8Array): Promise<void> {
  const temp = file + TEMP_SUFFIX;
  await rm(temp, { force: true });
  const handle = await open(temp, 'wx', FILE_MODE);
  try {
    await writeAll(handle, bytes);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temp, file);
  await syncDir(path.dirname(file));
}

function writeJsonAtomic(file: string, value: unknown): Promise<void> {
  return writeFileAtomic(file, new TextEncoder().encode(JSON.stringify(value)));
}

async function readIfExists(file: string): Promise<Uint8Array | undefined> {
  try {
    return await readFile(file);
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return undefined;
    throw error;
  }
}

async function readJson(file: string): Promise<unknown> {
  const bytes = await readIfExists(file);
  if (bytes === undefined) return undefined;
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)) as unknown;
  } catch {
    throw damaged(file, 'it is not valid JSON');
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return false;
    throw error;
  }
}

async function mkdirIfMissing(dir: string): Promise<void> {
  try {
    await mkdir(dir, { mode: DIR_MODE });
  } catch (error) {
    if (errnoOf(error) !== 'EEXIST') throw error;
  }
}

// ---------------------------------------------------------------------------
// Log records.

function encodeRecords(entries: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(entries.reduce((sum, entry) => sum + 4 + entry.length, 0));
  const view = new DataView(out.buffer);
  let offset = 0;
  for (const entry of entries) {
    view.setUint32(offset, entry.length);
    out.set(entry, offset + 4);
    offset += 4 + entry.length;
  }
  return out;
}

function zerosFrom(bytes: Uint8Array, offset: number): boolean {
  for (let i = offset; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return true;
}

interface ParsedLog {
  entries: Uint8Array[];
  /** Bytes of whole records; anything after them is a cut-short append. */
  length: number;
}

function parseLog(bytes: Uint8Array, file: string): ParsedLog {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const entries: Uint8Array[] = [];
  let offset = 0;
  while (bytes.length - offset >= 4) {
    const length = view.getUint32(offset);
    if (length === 0 || length > LIMITS.maxEntryBytes) {
      if (zerosFrom(bytes, offset)) break;
      throw damaged(file, `entry ${entries.length} at byte ${offset} claims a length of ${length} bytes`);
    }
    const end = offset + 4 + length;
    if (end > bytes.length) break;
    // A copy, so that no entry handed out shares memory with the others.
    entries.push(new Uint8Array(bytes.subarray(offset + 4, end)));
    offset = end;
  }
  return { entries, length: offset };
}

// ---------------------------------------------------------------------------
// The JSON files, checked field by field: what they hold decides what a
// device trusts, so a file that does not have the expected shape is damage.

interface PinJson {
  size: number;
  root: string;
  note: string;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function pinFromJson(value: unknown, file: string): StoredPin {
  if (!isRecord(value) || !isCount(value['size']) || typeof value['note'] !== 'string') {
    throw damaged(file, 'it does not hold a pin');
  }
  const root = value['root'];
  if (typeof root !== 'string' || !/^(?:[0-9a-f]{2})*$/.test(root)) throw damaged(file, 'its root is not hex');
  return { size: value['size'], root: fromHex(root), note: value['note'] };
}

function pinToJson(pin: StoredPin): PinJson {
  return { size: pin.size, root: toHex(pin.root), note: pin.note };
}

function ackedFromJson(value: unknown, file: string): Map<string, number> {
  if (!isRecord(value)) throw damaged(file, 'it does not hold acknowledged sizes by replica');
  const acked = new Map<string, number>();
  for (const [replica, size] of Object.entries(value)) {
    if (!isCount(size)) throw damaged(file, `the size acknowledged by ${replica} is not a whole number`);
    acked.set(replica, size);
  }
  return acked;
}

function evidenceFromJson(value: unknown, file: string): StoredEvidence[] {
  if (!Array.isArray(value)) throw damaged(file, 'it does not hold a list of evidence');
  return value.map((item: unknown, i) => {
    if (
      !isRecord(item) ||
      typeof item['replica'] !== 'string' ||
      typeof item['device'] !== 'string' ||
      typeof item['first'] !== 'string' ||
      typeof item['second'] !== 'string'
    ) {
      throw damaged(file, `evidence ${i} is not replica, device and two notes`);
    }
    return { replica: item['replica'], device: item['device'], first: item['first'], second: item['second'] };
  });
}

function copyPin(pin: StoredPin): StoredPin {
  return { size: pin.size, root: new Uint8Array(pin.root), note: pin.note };
}

// ---------------------------------------------------------------------------

interface LogState {
  /** Entries in the file, all of them acknowledged. */
  count: number;
  /** Bytes of those entries' records: where the next append starts. */
  length: number;
  pin: StoredPin | undefined;
}

/** What a vault holds, apart from entries and blobs, which stay on disk. */
interface VaultState {
  dirExists: boolean;
  blobsDirExists: boolean;
  logs: Map<string, LogState>;
  acked: Map<string, number>;
  evidence: StoredEvidence[];
}

class FileLocalStore implements LocalStore {
  // Per vault, the tail of the queue its operations join; it never rejects.
  readonly #queues = new Map<string, Promise<void>>();
  // Loaded on a vault's first use, then kept in step with every write.
  readonly #states = new Map<string, VaultState>();
  #closing: Promise<void> | undefined;

  constructor(private readonly dir: string) {}

  // Arguments are checked, and copied, when a method is called rather than
  // when its turn in the queue comes: a caller may change them in between.

  async appendEntries(vaultId: string, device: string, start: number, entries: readonly Uint8Array[]): Promise<void> {
    this.#checkOpen();
    checkVaultId(vaultId);
    checkDevice(device);
    checkAppend(start, entries);
    const records = encodeRecords(entries);
    return this.#serialize(vaultId, 'append to a log', async () => {
      const state = await this.#state(vaultId);
      const log = state.logs.get(device);
      const stored = log?.count ?? 0;
      if (start !== stored) throw appendConflict(device, start, stored);
      if (entries.length === 0) return;

      await this.#ensureVaultDir(vaultId, state);
      const file = this.#logFile(vaultId, device);
      const previousLength = log?.length ?? 0;
      const handle = await open(file, 'a', FILE_MODE);
      try {
        await writeAll(handle, records);
        await handle.sync();
      } catch (error) {
        // Take back whatever part of the append reached the file, so that it
        // holds acknowledged entries only. Should that fail too, the vault is
        // loaded again on its next use, which drops a partial record.
        await handle.truncate(previousLength).catch(() => undefined);
        throw error;
      } finally {
        await handle.close();
      }
      // A new file's name must be durable too.
      if (previousLength === 0) await syncDir(path.dirname(file));
      state.logs.set(device, {
        count: stored + entries.length,
        length: previousLength + records.length,
        pin: log?.pin,
      });
    });
  }

  async setPin(vaultId: string, device: string, pin: StoredPin): Promise<void> {
    this.#checkOpen();
    checkVaultId(vaultId);
    checkDevice(device);
    checkPin(pin);
    const copied = copyPin(pin);
    return this.#serialize(vaultId, 'pin a log', async () => {
      const state = await this.#state(vaultId);
      const log = state.logs.get(device) ?? { count: 0, length: 0, pin: undefined };
      if (copied.size > log.count) throw pinBeyondLog(device, copied.size, log.count);
      await this.#ensureVaultDir(vaultId, state);
      await writeJsonAtomic(path.join(this.dir, vaultId, `${device}.pin.json`), pinToJson(copied));
      state.logs.set(device, { ...log, pin: copied });
    });
  }

  async putBlob(vaultId: string, hashHex: string, bytes: Uint8Array): Promise<void> {
    this.#checkOpen();
    checkVaultId(vaultId);
    checkBlobHash(hashHex);
    checkBlob(bytes);
    const copied = new Uint8Array(bytes);
    return this.#serialize(vaultId, 'store a blob', async () => {
      const state = await this.#state(vaultId);
      const file = path.join(this.dir, vaultId, BLOBS_DIR, hashHex);
      // Blobs are named by their hash: once stored, one never changes.
      if (state.blobsDirExists && (await exists(file))) return;
      await this.#ensureVaultDir(vaultId, state);
      if (!state.blobsDirExists) {
        await mkdirIfMissing(path.dirname(file));
        await syncDir(path.join(this.dir, vaultId));
        state.blobsDirExists = true;
      }
      await writeFileAtomic(file, copied);
    });
  }

  async getBlob(vaultId: string, hashHex: string): Promise<Uint8Array | undefined> {
    this.#checkOpen();
    checkVaultId(vaultId);
    checkBlobHash(hashHex);
    return this.#serialize(vaultId, 'read a blob', async () => {
      const state = await this.#state(vaultId);
      if (!state.blobsDirExists) return undefined;
      const bytes = await readIfExists(path.join(this.dir, vaultId, BLOBS_DIR, hashHex));
      return bytes === undefined ? undefined : new Uint8Array(bytes);
    });
  }

  async setAcked(vaultId: string, replica: string, size: number): Promise<void> {
    this.#checkOpen();
    checkVaultId(vaultId);
    checkAcked(replica, size);
    return this.#serialize(vaultId, 'record an acknowledged size', async () => {
      const state = await this.#state(vaultId);
      const known = state.acked.get(replica);
      if (known !== undefined && known >= size) return;
      const acked = new Map(state.acked).set(replica, size);
      await this.#ensureVaultDir(vaultId, state);
      await writeJsonAtomic(path.join(this.dir, vaultId, ACKED_FILE), Object.fromEntries(acked));
      state.acked = acked;
    });
  }

  async addEvidence(vaultId: string, evidence: StoredEvidence): Promise<void> {
    this.#checkOpen();
    checkVaultId(vaultId);
    checkEvidence(evidence);
    const { replica, device, first, second } = evidence;
    return this.#serialize(vaultId, 'record evidence', async () => {
      const state = await this.#state(vaultId);
      const all = [...state.evidence, { replica, device, first, second }];
      await this.#ensureVaultDir(vaultId, state);
      await writeJsonAtomic(path.join(this.dir, vaultId, EVIDENCE_FILE), all);
      state.evidence = all;
    });
  }

  async loadVault(vaultId: string): Promise<StoredVault | undefined> {
    this.#checkOpen();
    checkVaultId(vaultId);
    return this.#serialize(vaultId, 'load a vault', async () => {
      const state = await this.#state(vaultId);
      if (!state.dirExists) return undefined;
      const logs: StoredLog[] = [];
      for (const device of [...state.logs.keys()].sort()) {
        const log = state.logs.get(device)!;
        // A file cut back to nothing, with no pin: as if the log was never started.
        if (log.count === 0 && log.pin === undefined) continue;
        logs.push({ device, entries: await this.#readEntries(vaultId, device, log), pin: log.pin && copyPin(log.pin) });
      }
      return {
        logs,
        acked: Object.fromEntries(state.acked),
        evidence: state.evidence.map((item) => ({ ...item })),
      };
    });
  }

  async listVaults(): Promise<string[]> {
    this.#checkOpen();
    try {
      const names = await readdir(this.dir, { withFileTypes: true });
      return names
        .filter((entry) => entry.isDirectory() && VAULT_DIR.test(entry.name))
        .map((entry) => entry.name)
        .sort();
    } catch (error) {
      throw wrapIoError(error, `list the vaults in ${this.dir}`);
    }
  }

  async deleteVault(vaultId: string): Promise<void> {
    this.#checkOpen();
    checkVaultId(vaultId);
    return this.#serialize(vaultId, 'delete a vault', async () => {
      // Works on a damaged vault too: leaving it is one way out.
      this.#states.delete(vaultId);
      const doomed = path.join(this.dir, `${DELETED_PREFIX}${vaultId}`);
      await rm(doomed, { recursive: true, force: true });
      try {
        await rename(path.join(this.dir, vaultId), doomed);
      } catch (error) {
        if (errnoOf(error) === 'ENOENT') return;
        throw error;
      }
      await syncDir(this.dir);
      await rm(doomed, { recursive: true, force: true });
    });
  }

  /** Waits for queued work; idempotent; every other method rejects with UNAVAILABLE afterwards. */
  close(): Promise<void> {
    this.#closing ??= Promise.all([...this.#queues.values()]).then(() => {
      this.#states.clear();
    });
    return this.#closing;
  }

  // -------------------------------------------------------------------------

  /**
   * Runs `work` after every operation on the vault queued before it. Failures
   * become E2ekvErrors; after one that is not already an E2ekvError (an I/O
   * error), the vault is loaded from disk again on its next use rather than
   * trusting what memory says about a write that may have half happened.
   */
  #serialize<T>(vaultId: string, action: string, work: () => Promise<T>): Promise<T> {
    const previous = this.#queues.get(vaultId) ?? Promise.resolve();
    const result = previous.then(work).catch((error: unknown) => {
      if (!(error instanceof E2ekvError)) this.#states.delete(vaultId);
      throw wrapIoError(error, action);
    });
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.#queues.set(vaultId, tail);
    void tail.then(() => {
      if (this.#queues.get(vaultId) === tail) this.#queues.delete(vaultId);
    });
    return result;
  }

  #checkOpen(): void {
    if (this.#closing !== undefined) throw storeClosed();
  }

  #logFile(vaultId: string, device: string): string {
    return path.join(this.dir, vaultId, `${device}.log`);
  }

  async #ensureVaultDir(vaultId: string, state: VaultState): Promise<void> {
    if (state.dirExists) return;
    await mkdirIfMissing(path.join(this.dir, vaultId));
    await syncDir(this.dir);
    state.dirExists = true;
  }

  async #readEntries(vaultId: string, device: string, log: LogState): Promise<Uint8Array[]> {
    if (log.length === 0) return [];
    const file = this.#logFile(vaultId, device);
    const bytes = (await readIfExists(file)) ?? new Uint8Array(0);
    const parsed = parseLog(bytes.subarray(0, log.length), file);
    if (parsed.entries.length !== log.count || parsed.length !== log.length) {
      throw damaged(file, `it no longer holds the ${log.count} entries it held when loaded`);
    }
    return parsed.entries;
  }

  async #state(vaultId: string): Promise<VaultState> {
    let state = this.#states.get(vaultId);
    if (state === undefined) {
      state = await this.#loadState(vaultId);
      this.#states.set(vaultId, state);
    }
    return state;
  }

  /** Reads a vault's folder, repairing a log whose last append was cut short. */
  async #loadState(vaultId: string): Promise<VaultState> {
    const vaultDir = path.join(this.dir, vaultId);
    const state: VaultState = {
      dirExists: false,
      blobsDirExists: false,
      logs: new Map(),
      acked: new Map(),
      evidence: [],
    };
    let names: string[];
    try {
      names = await readdir(vaultDir);
    } catch (error) {
      if (errnoOf(error) === 'ENOENT') return state;
      throw error;
    }
    state.dirExists = true;
    const logOf = (device: string): LogState => {
      let log = state.logs.get(device);
      if (log === undefined) {
        log = { count: 0, length: 0, pin: undefined };
        state.logs.set(device, log);
      }
      return log;
    };

    for (const name of names) {
      const file = path.join(vaultDir, name);
      const logMatch = LOG_FILE.exec(name);
      const pinMatch = PIN_FILE.exec(name);
      if (name.endsWith(TEMP_SUFFIX)) {
        // A replacement a crash interrupted: the file it was to replace is intact.
        await rm(file, { force: true });
      } else if (logMatch !== null) {
        const bytes = (await readIfExists(file)) ?? new Uint8Array(0);
        const parsed = parseLog(bytes, file);
        if (parsed.length < bytes.length) await truncateFile(file, parsed.length);
        Object.assign(logOf(logMatch[1]!), { count: parsed.entries.length, length: parsed.length });
      } else if (pinMatch !== null) {
        logOf(pinMatch[1]!).pin = pinFromJson(await readJson(file), file);
      } else if (name === ACKED_FILE) {
        state.acked = ackedFromJson(await readJson(file), file);
      } else if (name === EVIDENCE_FILE) {
        state.evidence = evidenceFromJson(await readJson(file), file);
      } else if (name === BLOBS_DIR) {
        state.blobsDirExists = true;
        for (const blob of await readdir(file)) {
          if (blob.endsWith(TEMP_SUFFIX)) await rm(path.join(file, blob), { force: true });
        }
      }
    }

    for (const [device, log] of state.logs) {
      if (log.pin !== undefined && log.pin.size > log.count) {
        throw damaged(
          this.#logFile(vaultId, device),
          `it holds ${log.count} entries, fewer than the ${log.pin.size} its pinned checkpoint covers`,
        );
      }
    }
    return state;
  }
}

async function truncateFile(file: string, length: number): Promise<void> {
  const handle = await open(file, 'r+');
  try {
    await handle.truncate(length);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function checkFormat(dir: string): Promise<void> {
  const file = path.join(dir, FORMAT_FILE);
  const format = await readJson(file);
  if (format === undefined) {
    await writeJsonAtomic(file, { format: FORMAT, version: FORMAT_VERSION });
    return;
  }
  if (!isRecord(format) || format['format'] !== FORMAT || !isCount(format['version'])) {
    throw damaged(file, `it does not say which version of ${FORMAT} wrote the folder`);
  }
  if (format['version'] > FORMAT_VERSION) {
    throw new E2ekvError(
      'UNSUPPORTED_VERSION',
      `the local replica in ${dir} has format version ${format['version']}, but this SDK only knows versions up to ` +
        `${FORMAT_VERSION}: it was written by a newer release. Upgrade e2ekv to open it.`,
      { details: { version: format['version'], supportedVersion: FORMAT_VERSION } },
    );
  }
}

/**
 * Opens (creating it if needed) the local replica stored in the folder `dir`.
 * Only one process may use a folder at a time.
 */
export async function openFileLocalStore(dir: string): Promise<LocalStore> {
  const root = path.resolve(dir);
  try {
    await mkdir(root, { recursive: true, mode: DIR_MODE });
    await checkFormat(root);
    // Finishes deletions a crash interrupted: the vaults were already gone.
    for (const name of await readdir(root)) {
      if (name.startsWith(DELETED_PREFIX)) await rm(path.join(root, name), { recursive: true, force: true });
    }
  } catch (error) {
    throw wrapIoError(error, `open the local replica in ${root}`);
  }
  return new FileLocalStore(root);
}
