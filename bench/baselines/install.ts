/**
 * Makes sure the baseline services' Debian packages are installed: when a
 * binary is missing and this process runs as root, `apt-get install -y` the
 * package (after `apt-get update` if the first attempt fails); otherwise it
 * says what to install. Never fails the run: a missing service is reported
 * and its workloads are skipped.
 */
import { execFile } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);

async function executable(file: string): Promise<boolean> {
  try {
    await access(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export interface Installed {
  /** The binaries that are there now, by package. */
  available: Record<string, boolean>;
  /** What happened, for the report (empty when everything was there already). */
  notes: string[];
}

/** `packages` maps a Debian package to the binary it provides. */
export async function ensurePackages(
  packages: Record<string, string>,
  log: (line: string) => void,
): Promise<Installed> {
  const available: Record<string, boolean> = {};
  const notes: string[] = [];
  const missing: string[] = [];
  for (const [pkg, binary] of Object.entries(packages)) {
    available[pkg] = await executable(binary);
    if (!available[pkg]) missing.push(pkg);
  }
  if (missing.length === 0) return { available, notes };
  if (process.getuid?.() !== 0) {
    notes.push(`not installed: ${missing.join(', ')} (run as root, or: sudo apt-get install -y ${missing.join(' ')})`);
    return { available, notes };
  }
  log(`installing ${missing.join(', ')} with apt-get (about a minute)`);
  const install = () =>
    run('apt-get', ['install', '-y', '--no-install-recommends', ...missing], {
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      maxBuffer: 64 * 1024 * 1024,
    });
  try {
    try {
      await install();
    } catch {
      await run('apt-get', ['update'], { maxBuffer: 64 * 1024 * 1024 });
      await install();
    }
    notes.push(`installed with apt-get: ${missing.join(', ')}`);
  } catch (error) {
    notes.push(`apt-get install ${missing.join(' ')} failed: ${String((error as Error).message).slice(0, 500)}`);
  }
  for (const pkg of missing) available[pkg] = await executable(packages[pkg]!);
  return { available, notes };
}
