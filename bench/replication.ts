/**
 * Replication between two e2ekv-server processes (protocol/SPEC.md section 22):
 *
 * 1. Catch-up: replica A holds one vault of N entries (one device, appends of
 *    1,000 entries); replica B starts empty beside it. Time until B holds all
 *    of it, and what B received.
 * 2. A 10-entry difference: B is stopped, the device makes 10 single-entry
 *    appends at A, B restarts. Time until B holds them, and the bytes and
 *    requests B exchanged (counted by B since its restart, /v1/replication),
 *    against the size of the vault.
 * 3. Replication lag: with both up, the device makes single-entry appends at
 *    A one after another; for each, the time from A's acknowledgement to B
 *    announcing the new size on its push channel (server-sent events).
 *
 * Steps 1 and 2 run for each vault size (the vault at A grows from one size
 * to the next; B starts from an empty data directory each time); step 3 runs
 * once, at the largest size. Replicas use SQLite (WAL, synchronous=FULL) and
 * default replication settings; B reaches A directly, A reaches B through a
 * TCP relay in this process (B's port changes when it restarts).
 *
 *   npm run bench:replication              (N = 1,000, 10,000, 100,000; a few minutes)
 *   npm run bench:replication -- --quick   (N = 1,000, 10,000)
 *
 * Prints a Markdown table and writes the raw numbers to
 * bench/results/replication-<ISO time>.json.
 */
import { existsSync } from 'node:fs';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeAppendRequest, parseCosignerVkey, parseVaultStateResponse, toBase64 } from '@e2ekv/protocol';
import type { AppendRequest } from '@e2ekv/protocol';
import { request } from '../server/test/support/client.js';
import { startServerProcess, tempDir, type ServerProcess } from '../server/test/support/process.js';
import { startRelay } from '../server/test/support/relay.js';
import { TestDevice } from '../server/test/support/writer.js';

const quick = process.argv.includes('--quick');
const SIZES = quick ? [1_000, 10_000] : [1_000, 10_000, 100_000];
const BATCH = 1_000;
const DIFFERENCE = 10;
const LAG_WRITES = quick ? 100 : 300;

const benchDir = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(benchDir, '..');

interface Replica {
  process: ServerProcess;
  url: string;
  audience: Uint8Array;
}

interface PeerStatus {
  entriesReceived: number;
  bytesReceived: number;
  bytesSent: number;
  requestsSent: number;
  state: string;
}

async function start(dataDir: string, peer: string): Promise<Replica> {
  const child = await startServerProcess(dataDir, ['--peer', peer, '--log-level', 'warn']);
  const info = (await (await fetch(`${child.url}/v1/info`)).json()) as { cosigner: { vkey: string } };
  return { process: child, url: child.url, audience: parseCosignerVkey(info.cosigner.vkey).publicKey };
}

async function peerStatus(replica: Replica): Promise<PeerStatus> {
  const status = (await (await fetch(`${replica.url}/v1/replication`)).json()) as { peers: PeerStatus[] };
  return status.peers[0]!;
}

async function size(replica: Replica, vaultId: string, device: TestDevice): Promise<number> {
  const res = await request(replica.url, 'GET', `/v1/vaults/${vaultId}`, {
    signer: device.signer,
    audience: replica.audience,
  });
  if (res.status === 404) return 0;
  if (res.status !== 200) throw new Error(`vault state: ${res.status} ${res.text}`);
  return parseVaultStateResponse(res.body).logs.find((l) => l.device === device.hex)?.size ?? 0;
}

async function append(replica: Replica, vaultId: string, device: TestDevice, body: AppendRequest): Promise<void> {
  const res = await request(replica.url, 'POST', `/v1/vaults/${vaultId}/logs/${device.hex}/append`, {
    signer: device.signer,
    audience: replica.audience,
    body: encodeAppendRequest(body),
  });
  if (res.status !== 200) throw new Error(`append: ${res.status} ${res.text}`);
}

/** Polls until B holds `target` entries; returns the seconds it took. */
async function until(replica: Replica, vaultId: string, device: TestDevice, target: number): Promise<number> {
  const started = performance.now();
  const deadline = Date.now() + 30 * 60_000;
  while ((await size(replica, vaultId, device)) < target) {
    if (Date.now() > deadline) throw new Error(`B did not reach ${target} entries`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return (performance.now() - started) / 1000;
}

/** Subscribes to B's push channel for the vault; calls `onSize` with each new size of the device's log. */
async function subscribe(
  replica: Replica,
  vaultId: string,
  device: TestDevice,
  onSize: (size: number) => void,
): Promise<AbortController> {
  const path = `/v1/vaults/${vaultId}/events`;
  const authorization = await device.authorize({ audience: replica.audience, method: 'GET', path });
  const abort = new AbortController();
  const res = await fetch(replica.url + path, { headers: { authorization }, signal: abort.signal });
  if (res.status !== 200 || res.body === null) throw new Error(`events: ${res.status}`);
  void (async () => {
    let buffer = '';
    const decoder = new TextDecoder();
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        let end;
        while ((end = buffer.indexOf('\n\n')) !== -1) {
          const event = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = /^data: (.*)$/m.exec(event)?.[1];
          if (data === undefined) continue;
          const parsed = JSON.parse(data) as { device: string; size: number };
          if (parsed.device === device.hex) onSize(parsed.size);
        }
      }
    } catch {
      // aborted at the end
    }
  })();
  return abort;
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

const fmtBytes = (n: number) => (n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`);

async function main(): Promise<void> {
  const startedAt = new Date();
  const dirA = await tempDir('e2ekv-bench-a-');
  const relayB = await startRelay();
  const cleanups: (() => Promise<unknown>)[] = [() => relayB.close(), () => dirA.remove()];
  try {
    const a = await start(dirA.dir, relayB.url);
    cleanups.unshift(() => a.process.stop());
    const device = await TestDevice.create();
    const { signedGenesis, vaultId } = await device.genesis();
    const created = await request(a.url, 'POST', '/v1/vaults', {
      signer: device.signer,
      audience: a.audience,
      body: { genesis: toBase64(signedGenesis) },
    });
    if (created.status !== 201) throw new Error(`create vault: ${created.status}`);

    const results = [];
    let b: Replica | undefined;
    const keyDir = await tempDir('e2ekv-bench-key-');
    cleanups.push(() => keyDir.remove());
    let keyFile: string | undefined;
    for (const target of SIZES) {
      // Grow the vault at A to `target` entries (B is down: nothing is pushed).
      const writeStarted = performance.now();
      while (device.size(vaultId) < target) {
        await append(
          a,
          vaultId,
          device,
          await device.nextAppend(vaultId, { values: Math.min(BATCH, target - device.size(vaultId)) }),
        );
      }
      const writeSeconds = (performance.now() - writeStarted) / 1000;
      const n = device.size(vaultId);
      const vaultBytes = device.entries(vaultId).reduce((sum, e) => sum + e.length, 0);

      // 1. An empty B beside it: a new data directory with the same server key
      // (A pinned B's key on first contact; a new key would be refused).
      const dirB = await tempDir('e2ekv-bench-b-');
      if (keyFile !== undefined) await copyFile(keyFile, path.join(dirB.dir, 'server-key.json'));
      b = await start(dirB.dir, a.url);
      relayB.retarget(b.url);
      keyFile ??= path.join(keyDir.dir, 'server-key.json');
      if (!existsSync(keyFile)) await copyFile(path.join(dirB.dir, 'server-key.json'), keyFile);
      const catchUpSeconds = await until(b, vaultId, device, n);
      const catchUp = await peerStatus(b);

      // 2. Ten entries B misses while it is down.
      await b.process.stop();
      for (let i = 0; i < DIFFERENCE; i++)
        await append(a, vaultId, device, await device.nextAppend(vaultId, { values: 1 }));
      const diffBytes = device
        .entries(vaultId)
        .slice(n)
        .reduce((sum, e) => sum + e.length, 0);
      b = await start(dirB.dir, a.url);
      relayB.retarget(b.url);
      const reconcileSeconds = await until(b, vaultId, device, n + DIFFERENCE);
      const reconcile = await peerStatus(b);
      const result = {
        entries: n,
        vaultBytes,
        writeSeconds,
        catchUp: {
          seconds: catchUpSeconds,
          entriesPerSecond: n / catchUpSeconds,
          entriesReceived: catchUp.entriesReceived,
          bytesReceived: catchUp.bytesReceived,
          requests: catchUp.requestsSent,
        },
        difference: {
          entries: DIFFERENCE,
          entryBytes: diffBytes,
          seconds: reconcileSeconds,
          entriesReceived: reconcile.entriesReceived,
          bytesReceived: reconcile.bytesReceived,
          bytesSent: reconcile.bytesSent,
          requests: reconcile.requestsSent,
        },
      };
      results.push(result);
      console.error(`N=${n}: ${JSON.stringify(result)}`);
      if (target !== SIZES.at(-1)) {
        await b.process.stop();
        await dirB.remove();
        b = undefined;
      } else {
        const last = b;
        cleanups.unshift(
          () => last.process.stop(),
          () => dirB.remove(),
        );
      }
    }

    // 3. Lag from acknowledgement at A to visibility at B, at the largest size.
    const bFinal = b!;
    for (let i = 0; ; i++) {
      const statusA = (await (await fetch(`${a.url}/v1/replication`)).json()) as { peers: PeerStatus[] };
      if (statusA.peers[0]!.state === 'ok') break;
      if (i > 600) throw new Error('A never reached B');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const acknowledged = new Map<number, number>();
    const lags: number[] = [];
    let waiting: { size: number; resolve: () => void } | undefined;
    const abort = await subscribe(bFinal, vaultId, device, (seen) => {
      const ackAt = acknowledged.get(seen);
      if (ackAt !== undefined) {
        lags.push(performance.now() - ackAt);
        acknowledged.delete(seen);
      }
      if (waiting !== undefined && seen >= waiting.size) waiting.resolve();
    });
    try {
      for (let i = 0; i < LAG_WRITES; i++) {
        const body = await device.nextAppend(vaultId, { values: 1 });
        const newSize = device.size(vaultId);
        const seen = new Promise<void>((resolve) => (waiting = { size: newSize, resolve }));
        await append(a, vaultId, device, body);
        acknowledged.set(newSize, performance.now());
        await Promise.race([seen, new Promise((resolve) => setTimeout(resolve, 60_000))]);
      }
    } finally {
      abort.abort();
    }
    lags.sort((x, y) => x - y);
    const lag = {
      writes: LAG_WRITES,
      observed: lags.length,
      p50Ms: quantile(lags, 0.5),
      p99Ms: quantile(lags, 0.99),
      maxMs: lags.at(-1)!,
    };

    const elapsedSeconds = (Date.now() - startedAt.getTime()) / 1000;
    const machine = {
      node: process.version,
      platform: process.platform,
      arch: process.arch,
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model,
      memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    };
    const lines = [
      `## e2ekv replication, two replicas (${quick ? 'quick' : 'full'} run, ${machine.cpus} cores, ${machine.node})`,
      '',
      '| vault entries | vault bytes | catch-up of an empty replica | entries/s | bytes received | 10-entry difference: time | bytes received | requests | entries received |',
      '|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
      ...results.map(
        (r) =>
          `| ${r.entries.toLocaleString('en')} | ${fmtBytes(r.vaultBytes)} | ${r.catchUp.seconds.toFixed(2)} s | ${Math.round(r.catchUp.entriesPerSecond).toLocaleString('en')} | ${fmtBytes(r.catchUp.bytesReceived)} | ${(r.difference.seconds * 1000).toFixed(0)} ms | ${r.difference.bytesReceived.toLocaleString('en')} B | ${r.difference.requests} | ${r.difference.entriesReceived} |`,
      ),
      '',
      `The ${DIFFERENCE} entries of the difference are ${results[0]!.difference.entryBytes.toLocaleString('en')} bytes; ` +
        "the difference times include the restarted replica's start-up round.",
      '',
      `Replication lag, acknowledgement at A to the push event at B, ${lag.observed} of ${lag.writes} single-entry appends ` +
        `at ${results.at(-1)!.entries.toLocaleString('en')} entries: p50 ${lag.p50Ms.toFixed(1)} ms, p99 ${lag.p99Ms.toFixed(1)} ms, max ${lag.maxMs.toFixed(1)} ms.`,
    ];
    console.log(lines.join('\n'));
    const resultsDir = path.join(benchDir, 'results');
    await mkdir(resultsDir, { recursive: true });
    const file = path.join(resultsDir, `replication-${startedAt.toISOString().replace(/:/g, '-')}.json`);
    await writeFile(
      file,
      JSON.stringify(
        {
          benchmark: 'replication',
          date: startedAt.toISOString(),
          quick,
          machine,
          settings: {
            sizes: SIZES,
            appendEntries: BATCH,
            difference: DIFFERENCE,
            lagWrites: LAG_WRITES,
            replication: 'defaults',
          },
          elapsedSeconds,
          results,
          lag,
        },
        null,
        2,
      ) + '\n',
    );
    console.error(`\nraw results: ${path.relative(repoRoot, file)}`);
  } finally {
    for (const cleanup of cleanups) await cleanup().catch(() => undefined);
  }
}

await main();
