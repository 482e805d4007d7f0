/**
 * Processes the comparison benchmark starts: e2ekv-server replicas and the
 * baseline services (bench/baselines/). Every process started here is
 * remembered and killed when this process exits, whatever the reason; each
 * stop() sends SIGTERM, then SIGKILL after a grace period. Also: free loopback
 * ports and the resident set size of a process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export interface Service {
  name: string;
  pid: number;
  child: ChildProcess;
  /** What the process wrote to stdout (the last 64 KiB), then the end of its log file. */
  output(): string;
  /** SIGTERM, SIGKILL after `graceMs`; resolves with the exit code (or signal). */
  stop(graceMs?: number): Promise<number | string | null>;
}

export interface SpawnOptions {
  name: string;
  command: string;
  args: readonly string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /**
   * stderr goes to this file, as a deployed service's log would (read back
   * only on failure): the benchmark spends no CPU on a service's logs, and a
   * service never blocks on a full pipe.
   */
  logFile: string;
  /** Resolves when the service is ready; given the output so far each time more arrives. */
  ready: (output: string) => boolean;
  /** Or polled every 100 ms (for services that print nothing useful). */
  probe?: () => Promise<boolean>;
  timeoutMs?: number;
}

/** Starts a service and waits until it is ready; stops it again if it fails to become ready. */
export async function startService(options: SpawnOptions): Promise<Service> {
  const logFd = openSync(options.logFile, 'a');
  const child = spawn(options.command, [...options.args], {
    stdio: ['ignore', 'pipe', logFd],
    env: options.env ?? process.env,
    cwd: options.cwd ?? repoRoot,
  });
  closeSync(logFd);
  running.add(child);
  let output = '';
  const logTail = () => {
    try {
      return readFileSync(options.logFile, 'utf8').slice(-4000);
    } catch {
      return '';
    }
  };
  const exited = new Promise<number | string | null>((resolve) => {
    child.once('error', (error) => {
      output += `\n${String(error)}`;
      running.delete(child);
      resolve(null);
    });
    child.once('close', (code, signal) => {
      running.delete(child);
      resolve(code ?? signal);
    });
  });
  let onOutput: (() => void) | undefined;
  const append = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-65536);
    onOutput?.();
  };
  child.stdout!.on('data', append);
  const service: Service = {
    name: options.name,
    pid: child.pid ?? -1,
    child,
    output: () => `${output}\n--- ${options.logFile}:\n${logTail()}`,
    async stop(graceMs = 10_000) {
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        const code = await exited;
        clearTimeout(timer);
        return code;
      }
      return exited;
    },
  };
  try {
    await new Promise<void>((resolve, reject) => {
      const timeoutMs = options.timeoutMs ?? 30_000;
      let done = false;
      const finish = (error?: Error) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        clearInterval(poller);
        onOutput = undefined;
        if (error === undefined) resolve();
        else reject(error);
      };
      const timer = setTimeout(
        () => finish(new Error(`${options.name} was not ready in ${timeoutMs / 1000} s:\n${service.output()}`)),
        timeoutMs,
      );
      const poller = setInterval(() => {
        if (options.probe === undefined) return;
        options.probe().then(
          (ok) => ok && finish(),
          () => undefined,
        );
      }, 100);
      onOutput = () => {
        if (options.ready(output)) finish();
      };
      onOutput();
      void exited.then((code) =>
        finish(new Error(`${options.name} exited (${String(code)}) before it was ready:\n${service.output()}`)),
      );
    });
  } catch (error) {
    await service.stop(2000);
    throw error;
  }
  return service;
}

// ---------------------------------------------------------------------------
// e2ekv-server.

export interface E2ekvServer extends Service {
  url: string;
  dataDir: string;
}

/**
 * Starts e2ekv-server (server/src/bin.ts through tsx, as the tests do) on
 * 127.0.0.1 and a free port. `nodeArgs` go before the script (e.g. --cpu-prof).
 */
export async function startE2ekvServer(
  dataDir: string,
  args: readonly string[] = [],
  nodeArgs: readonly string[] = [],
  name = 'e2ekv-server',
  /** Another entry point that prints the same "listening" line (bench/memory-server.ts). */
  script = path.join(repoRoot, 'server/src/bin.ts'),
): Promise<E2ekvServer> {
  // The data dir holds the log: one JSON line per request at the default level.
  const port = args.includes('--port') ? undefined : await freePort();
  const service = await startService({
    name,
    command: process.execPath,
    args: [
      ...nodeArgs,
      '--import=tsx/esm',
      '--conditions=e2ekv-source',
      script,
      '--host',
      '127.0.0.1',
      ...(port === undefined ? [] : ['--port', String(port)]),
      '--data',
      dataDir,
      ...args,
    ],
    ready: (output) => /^e2ekv-server listening on (https?:\/\/\S+)$/m.test(output),
    logFile: `${dataDir}.log`,
  });
  const url = /^e2ekv-server listening on (https?:\/\/\S+)$/m.exec(service.output())![1]!;
  return { ...service, url, dataDir };
}

// ---------------------------------------------------------------------------
// Ports and memory.

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Resident set size of a process in bytes (VmRSS in /proc/PID/status); undefined if unknown. */
export async function rssBytes(pid: number): Promise<number | undefined> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
    return match === null ? undefined : Number(match[1]) * 1024;
  } catch {
    return undefined;
  }
}

/** Sum of the RSS of several processes; undefined if any is unknown. */
export async function totalRss(pids: readonly number[]): Promise<number | undefined> {
  if (pids.length === 0) return undefined;
  let total = 0;
  for (const pid of pids) {
    const rss = await rssBytes(pid);
    if (rss === undefined) return undefined;
    total += rss;
  }
  return total;
}

/** Samples the summed RSS of `pids` every `everyMs` until stopped; reports the peak and the last sample. */
export function rssSampler(
  pids: readonly number[],
  everyMs = 100,
): { stop(): Promise<{ peak?: number; last?: number }> } {
  let peak: number | undefined;
  let last: number | undefined;
  let busy: Promise<void> = Promise.resolve();
  const sample = () => {
    busy = totalRss(pids).then((rss) => {
      if (rss === undefined) return;
      last = rss;
      peak = Math.max(peak ?? 0, rss);
    });
  };
  sample();
  const timer = setInterval(sample, everyMs);
  return {
    async stop() {
      clearInterval(timer);
      await busy;
      sample();
      await busy;
      return { ...(peak === undefined ? {} : { peak }), ...(last === undefined ? {} : { last }) };
    },
  };
}
