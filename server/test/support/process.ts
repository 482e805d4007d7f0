// Starts real e2ekv-server processes for tests, on 127.0.0.1 and port 0, and
// makes sure every one of them is stopped.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { repoRoot } from '../../../test/support/paths.js';

const bin = path.join(repoRoot, 'server/src/bin.ts');
const running = new Set<ChildProcess>();

process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export interface ServerProcess {
  url: string;
  dataDir: string;
  child: ChildProcess;
  stderr: () => string;
  /** SIGTERM, then SIGKILL after 10 s; resolves with the exit code. */
  stop(): Promise<number | null>;
  kill9(): Promise<void>;
}

export async function tempDir(prefix = 'e2ekv-test-'): Promise<{ dir: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

export async function startServerProcess(dataDir: string, args: readonly string[] = []): Promise<ServerProcess> {
  const child = spawn(
    process.execPath,
    [
      '--import=tsx/esm',
      '--conditions=e2ekv-source',
      bin,
      '--host',
      '127.0.0.1',
      '--port',
      '0',
      '--data',
      dataDir,
      ...args,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  running.add(child);
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  // 'close' rather than 'exit': 'exit' can fire before the last stderr chunk
  // has been read, and tests assert on the final log lines.
  const exited = new Promise<number | null>((resolve) =>
    child.once('close', (code) => {
      running.delete(child);
      resolve(code);
    }),
  );
  const url = await new Promise<string>((resolve, reject) => {
    let stdout = '';
    // A server that did not start in time is killed, not left running behind the failed test.
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`server did not start in 20 s:\n${stderr}`));
    }, 20_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      const match = /^e2ekv-server listening on (https?:\/\/\S+)$/m.exec(stdout);
      if (match !== null) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before listening:\n${stderr}`));
    });
  });
  return {
    url,
    dataDir,
    child,
    stderr: () => stderr,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
    async kill9() {
      child.kill('SIGKILL');
      await exited;
    },
  };
}
