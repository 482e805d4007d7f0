/**
 * Helpers shared by the SDK's tests: a real replica process for the duration
 * of one test, and a rejection that must be an E2ekvError.
 */
import { E2ekvError } from '@e2ekv/protocol';
import { startServerProcess, tempDir, type ServerProcess } from '../../../server/test/support/process.js';

/** Runs `run` against a fresh e2ekv-server process, stopped and its directory removed afterwards. */
export async function withServer(run: (server: ServerProcess) => Promise<void>): Promise<void> {
  const { dir, remove } = await tempDir();
  const server = await startServerProcess(dir);
  try {
    await run(server);
  } finally {
    await server.stop();
    await remove();
  }
}

/** The E2ekvError `promise` rejects with; fails the test if it resolves, rethrows any other error. */
export async function rejects(t: { fail(message: string): void }, promise: Promise<unknown>): Promise<E2ekvError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof E2ekvError) return error;
    throw error;
  }
  t.fail('expected an E2ekvError');
  throw new Error('unreachable');
}
