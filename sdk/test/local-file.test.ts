import { spawn } from 'node:child_process';
import { appendFile, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { E2ekvError, LIMITS, randomBytes, toHex } from '@e2ekv/protocol';
import test from 'ava';
import type { ExecutionContext } from 'ava';
import type { LocalStore } from '../src/local/adapter.js';
import { openFileLocalStore } from '../src/local/file.js';
import { repoRoot } from '../../test/support/paths.js';
import { rejectsCode } from '../../test/support/errors.js';
import { localStoreConformance, makeEntries, makePin, newDevice, newVaultId } from './local-conformance.js';
import {
  CRASH_DEVICE,
  CRASH_REPLICA,
  CRASH_VAULT,
  blobAt,
  entryBytes,
  evidenceAt,
  pinAt,
} from './fixtures/local-file-writer.js';

async function tempDir(t?: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'e2ekv-local-'));
  t?.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

localStoreConformance(
  test,
  'file',
  async () => {
    const dir = await tempDir();
    const opened: LocalStore[] = [await openFileLocalStore(dir)];
    return {
      store: opened[0]!,
      reopen: async () => {
        const store = await openFileLocalStore(dir);
        opened.push(store);
        return store;
      },
      cleanup: async () => {
        await Promise.all(opened.map((store) => store.close()));
        await rm(dir, { recursive: true, force: true });
      },
    };
  },
  { persistent: true },
);

async function withStore<T>(dir: string, work: (store: LocalStore) => Promise<T>): Promise<T> {
  const store = await openFileLocalStore(dir);
  try {
    return await work(store);
  } finally {
    await store.close();
  }
}

function record(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + bytes.length);
  new DataView(out.buffer).setUint32(0, bytes.length);
  out.set(bytes, 4);
  return out;
}

function u32(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value);
  return out;
}

async function entriesOf(store: LocalStore, vaultId: string, device: string): Promise<Uint8Array[] | undefined> {
  return (await store.loadVault(vaultId))?.logs.find((log) => log.device === device)?.entries;
}

/** Opening fails with INTEGRITY on use, naming the file and saying what to do. */
async function rejectsDamaged(t: ExecutionContext, work: () => Promise<unknown>, file: string): Promise<void> {
  const error = await t.throwsAsync(work, { instanceOf: E2ekvError });
  t.is(error?.code, 'INTEGRITY', error?.message);
  t.true(error?.message.includes(file), `the message names ${file}: ${error?.message}`);
  t.regex(error?.message ?? '', /[Rr]estore .*backup.*delete/);
}

test('file: an append a crash cut short is dropped on load, and the log carries on from there', async (t) => {
  const dir = await tempDir(t);
  const vaultId = newVaultId();
  const device = newDevice();
  const file = path.join(dir, vaultId, `${device}.log`);
  const entries = makeEntries(3);
  await withStore(dir, (store) => store.appendEntries(vaultId, device, 0, entries));

  // What a cut-short append leaves, and the whole records before the cut, which stay.
  const whole = randomBytes(50);
  const cuts: [string, Uint8Array, Uint8Array[]][] = [
    ['part of a length', u32(200).subarray(0, 3), []],
    ['a length and part of its bytes', record(randomBytes(200)).subarray(0, 150), []],
    ['a whole record, then part of the next', new Uint8Array([...record(whole), ...u32(80), 1, 2, 3]), [whole]],
    ['zeros where the data never landed', new Uint8Array(4096), []],
  ];
  for (const [what, tail, kept] of cuts) {
    const intact = (await stat(file)).size;
    await appendFile(file, tail);
    entries.push(...kept);
    await withStore(dir, async (store) => {
      t.deepEqual(await entriesOf(store, vaultId, device), entries, what);
      const keptBytes = kept.reduce((sum, entry) => sum + 4 + entry.length, 0);
      t.is((await stat(file)).size, intact + keptBytes, `${what}: the partial record is gone from the file`);
      await rejectsCode(t, () => store.appendEntries(vaultId, device, entries.length + 1, makeEntries(1)), 'CONFLICT');
      const more = makeEntries(2);
      await store.appendEntries(vaultId, device, entries.length, more);
      entries.push(...more);
    });
    await withStore(dir, async (store) => t.deepEqual(await entriesOf(store, vaultId, device), entries, what));
  }
});

test('file: a record length no append writes, in the middle of a log, is INTEGRITY', async (t) => {
  const dir = await tempDir(t);
  const [vaultId, healthy] = [newVaultId(), newVaultId()];
  const device = newDevice();
  const file = path.join(dir, vaultId, `${device}.log`);
  const entries = makeEntries(3);
  await withStore(dir, async (store) => {
    await store.appendEntries(vaultId, device, 0, entries);
    await store.appendEntries(healthy, device, 0, entries);
  });
  const original = await readFile(file);
  const second = 4 + entries[0]!.length;

  for (const [what, length] of [
    ['a length past the end of the file, over the entry limit', LIMITS.maxEntryBytes + 1],
    ['a length past the end of the file, as large as it gets', 0xffffffff],
    ['a zero length with data after it', 0],
  ] as const) {
    const broken = new Uint8Array(original);
    broken.set(u32(length), second);
    await writeFile(file, broken);
    await withStore(dir, async (store) => {
      await rejectsDamaged(t, () => store.loadVault(vaultId), file);
      await rejectsDamaged(t, () => store.appendEntries(vaultId, device, 3, makeEntries(1)), file);
      t.deepEqual(await entriesOf(store, healthy, device), entries, `${what}: other vaults are fine`);
    });
    t.deepEqual(await readFile(file), Buffer.from(broken), `${what}: the damaged file is left as it was`);
  }

  // Leaving the vault is a way out.
  await withStore(dir, async (store) => {
    await store.deleteVault(vaultId);
    t.is(await store.loadVault(vaultId), undefined);
    t.deepEqual(await store.listVaults(), [healthy]);
  });
});

test('file: a log cut below its pin is INTEGRITY, even where a cut-short append is indistinguishable', async (t) => {
  const dir = await tempDir(t);
  const vaultId = newVaultId();
  const device = newDevice();
  const file = path.join(dir, vaultId, `${device}.log`);
  const entries = makeEntries(3);
  await withStore(dir, async (store) => {
    await store.appendEntries(vaultId, device, 0, entries);
    await store.setPin(vaultId, device, makePin(3));
  });
  // A plausible length running past the end: only the pin says entries were lost.
  const broken = new Uint8Array(await readFile(file));
  broken.set(u32(entries[1]!.length + 1000), 4 + entries[0]!.length);
  await writeFile(file, broken);
  await withStore(dir, (store) => rejectsDamaged(t, () => store.loadVault(vaultId), file));
});

test('file: damaged JSON files are INTEGRITY, naming the file', async (t) => {
  const dir = await tempDir(t);
  const vaultId = newVaultId();
  const device = newDevice();
  await withStore(dir, async (store) => {
    await store.appendEntries(vaultId, device, 0, makeEntries(2));
    await store.setPin(vaultId, device, makePin(2));
    await store.setAcked(vaultId, 'https://r.example', 1);
    await store.addEvidence(vaultId, { replica: 'https://r.example', device, first: 'a', second: 'b' });
  });
  const damages: [string, string][] = [
    [`${device}.pin.json`, '{"size": 2, "root": "zz", "note": ""}'],
    [`${device}.pin.json`, '{"size": 2, "root": "00"'],
    [`${device}.pin.json`, '{"size": -1, "root": "00", "note": ""}'],
    ['acked.json', '{"https://r.example": "1"}'],
    ['acked.json', '[]'],
    ['evidence.json', '[{"replica": "r"}]'],
    ['evidence.json', '\u00ff'],
  ];
  for (const [name, text] of damages) {
    const file = path.join(dir, vaultId, name);
    const original = await readFile(file);
    await writeFile(file, text);
    await withStore(dir, (store) => rejectsDamaged(t, () => store.loadVault(vaultId), file));
    await writeFile(file, original);
  }
  await withStore(dir, async (store) => t.is((await store.loadVault(vaultId))?.logs[0]?.entries.length, 2));

  const format = path.join(dir, 'format.json');
  await writeFile(format, 'not json');
  await rejectsDamaged(t, () => openFileLocalStore(dir), format);
  await writeFile(format, '{"format": "e2ekv-local-replica", "version": 2}');
  const error = await t.throwsAsync(() => openFileLocalStore(dir), { instanceOf: E2ekvError });
  t.is(error?.code, 'UNSUPPORTED_VERSION');
  t.regex(error?.message ?? '', /newer release.*Upgrade/);
});

test('file: folders are 0700 and files 0600, and no temporary file is left behind', async (t) => {
  if (process.platform === 'win32') {
    t.pass('Windows has no POSIX modes');
    return;
  }
  const dir = path.join(await tempDir(t), 'nested', 'replica');
  const vaultId = newVaultId();
  const device = newDevice();
  const hash = toHex(randomBytes(32));
  await withStore(dir, async (store) => {
    await store.appendEntries(vaultId, device, 0, makeEntries(2));
    await store.setPin(vaultId, device, makePin(1));
    await store.setAcked(vaultId, 'https://r.example', 1);
    await store.addEvidence(vaultId, { replica: 'https://r.example', device, first: 'a', second: 'b' });
    await store.putBlob(vaultId, hash, randomBytes(10));
  });
  const modeOf = async (file: string) => (await stat(file)).mode & 0o777;
  for (const folder of [path.dirname(dir), dir, path.join(dir, vaultId), path.join(dir, vaultId, 'blobs')]) {
    t.is(await modeOf(folder), 0o700, folder);
  }
  const files = [
    path.join(dir, 'format.json'),
    ...(await readdir(path.join(dir, vaultId)))
      .filter((name) => name !== 'blobs')
      .map((n) => path.join(dir, vaultId, n)),
    path.join(dir, vaultId, 'blobs', hash),
  ];
  t.is(files.length, 6);
  for (const file of files) t.is(await modeOf(file), 0o600, file);
  t.deepEqual((await readdir(dir)).sort(), ['format.json', vaultId].sort());
  t.deepEqual(await readdir(path.join(dir, vaultId, 'blobs')), [hash]);
});

test('file: leftovers of interrupted writes and deletions are cleared on open', async (t) => {
  const dir = await tempDir(t);
  const vaultId = newVaultId();
  const device = newDevice();
  const entries = makeEntries(2);
  await withStore(dir, async (store) => {
    await store.appendEntries(vaultId, device, 0, entries);
    await store.setAcked(vaultId, 'https://r.example', 2);
    await store.putBlob(vaultId, toHex(randomBytes(32)), randomBytes(5));
  });
  const gone = newVaultId();
  await mkdir(path.join(dir, `.deleted-${gone}`, 'blobs'), { recursive: true });
  await writeFile(path.join(dir, vaultId, 'acked.json.tmp'), '{"https://r.example": 1');
  await writeFile(path.join(dir, vaultId, 'blobs', `${'ab'.repeat(32)}.tmp`), 'half a blob');
  await withStore(dir, async (store) => {
    t.deepEqual(await store.listVaults(), [vaultId]);
    t.deepEqual((await store.loadVault(vaultId))?.acked, { 'https://r.example': 2 });
    t.deepEqual(await store.getBlob(vaultId, 'ab'.repeat(32)), undefined);
  });
  t.deepEqual((await readdir(dir)).sort(), ['format.json', vaultId].sort());
  t.false((await readdir(path.join(dir, vaultId))).includes('acked.json.tmp'));
  t.is((await readdir(path.join(dir, vaultId, 'blobs'))).length, 1);

  // Deleting leaves nothing behind either.
  await withStore(dir, (store) => store.deleteVault(vaultId));
  t.deepEqual(await readdir(dir), ['format.json']);
});

// ---------------------------------------------------------------------------
// Crash test: kill -9 a writer at random moments; every acknowledged write
// must survive, intact, and the store must open again every time.

const writerScript = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures/local-file-writer.ts');

interface WriterRun {
  sizes: number[];
  last: Record<'pin' | 'acked' | 'blob' | 'evidence', number>;
  blobs: number[];
}

function runWriterUntilKilled(dir: string, killAfterFirstAckMs: number): Promise<WriterRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import=tsx/esm', '--conditions=e2ekv-source', writerScript, dir], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let killTimer: NodeJS.Timeout | undefined;
    const lines = () => stdout.split('\n').slice(0, -1);
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      if (killTimer === undefined && lines().some((line) => /^[0-9]+$/.test(line))) {
        killTimer = setTimeout(() => child.kill('SIGKILL'), killAfterFirstAckMs);
      }
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(killTimer);
      if (signal !== 'SIGKILL') {
        reject(new Error(`the writer exited by itself (code ${code}):\n${stderr}`));
        return;
      }
      const run: WriterRun = { sizes: [], last: { pin: 0, acked: 0, blob: 0, evidence: 0 }, blobs: [] };
      for (const line of lines()) {
        const [kind, value] = line.includes(' ') ? line.split(' ') : ['size', line];
        const n = Number(value);
        if (kind === 'size') run.sizes.push(n);
        else if (kind === 'pin' || kind === 'acked' || kind === 'blob' || kind === 'evidence') run.last[kind] = n;
        if (kind === 'blob') run.blobs.push(n);
      }
      resolve(run);
    });
  });
}

test('file: acknowledged writes survive kill -9, intact', async (t) => {
  const dir = await tempDir(t);
  const runs = 8;
  const blobs: number[] = [];
  let previous = { size: 0, pin: 0, acked: 0, evidence: 0 };
  for (let run = 0; run < runs; run++) {
    const { sizes, last, blobs: written } = await runWriterUntilKilled(dir, Math.floor(Math.random() * 250));
    blobs.push(...written);
    const acknowledged = {
      size: sizes.at(-1) ?? previous.size,
      pin: Math.max(last.pin, previous.pin),
      acked: Math.max(last.acked, previous.acked),
      evidence: Math.max(last.evidence, previous.evidence),
    };
    previous = await withStore(dir, async (store) => {
      const vault = await store.loadVault(CRASH_VAULT);
      const log = vault?.logs.find((l) => l.device === CRASH_DEVICE);
      const entries = log?.entries ?? [];
      t.true(entries.length >= acknowledged.size, `${entries.length} entries lost acknowledged ${acknowledged.size}`);
      const damaged = entries.flatMap((entry, i) => (Buffer.compare(entry, entryBytes(i)) === 0 ? [] : [i]));
      t.deepEqual(damaged, [], 'entries intact');

      const pin = log?.pin;
      t.true((pin?.size ?? 0) >= acknowledged.pin, 'the pin did not go back');
      if (pin !== undefined) t.deepEqual(pin, pinAt(pin.size));
      const acked = vault?.acked[CRASH_REPLICA] ?? 0;
      t.true(acked >= acknowledged.acked, 'the acknowledged size did not go back');
      const evidence = vault?.evidence ?? [];
      t.true(evidence.length >= acknowledged.evidence, 'no evidence lost');
      t.deepEqual(
        evidence,
        evidence.map((_, i) => evidenceAt(i)),
      );
      for (const size of blobs) {
        const blob = blobAt(size);
        t.deepEqual(await store.getBlob(CRASH_VAULT, blob.hash), blob.bytes, `blob at ${size}`);
      }
      t.log(
        `run ${run}: ${sizes.length} appends acknowledged, the last at ${acknowledged.size}; log at ${entries.length}`,
      );
      return { size: entries.length, pin: pin?.size ?? 0, acked, evidence: evidence.length };
    });
  }
});
