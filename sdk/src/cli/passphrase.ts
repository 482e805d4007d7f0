/**
 * The keystore passphrase: from $E2EKV_PASSPHRASE (scripts, tests) or typed at
 * a terminal without echo. Never from a command-line flag, which other users
 * of the machine can read in the process list.
 */
import { E2ekvError } from '@e2ekv/protocol';
import { type CliIo, write } from './io.js';

export interface PassphraseOptions {
  /** Ask twice on a terminal (a new passphrase). */
  confirm?: boolean;
  /** The variable scripts set instead (default E2EKV_PASSPHRASE). */
  env?: string;
  /** What the passphrase unlocks, for messages (default "the keystore"). */
  what?: string;
}

export async function readPassphrase(io: CliIo, prompt: string, options: PassphraseOptions = {}): Promise<string> {
  const variable = options.env ?? 'E2EKV_PASSPHRASE';
  const what = options.what ?? 'the keystore';
  const fromEnv = io.env[variable];
  if (fromEnv !== undefined) {
    if (fromEnv.length === 0) throw new E2ekvError('INVALID_ARGUMENT', `$${variable} is set but empty`);
    return fromEnv;
  }
  if (io.stdin.isTTY !== true || io.stdin.setRawMode === undefined) {
    throw new E2ekvError(
      'INVALID_ARGUMENT',
      `the passphrase of ${what} is needed but there is no terminal to ask on: set $${variable}`,
    );
  }
  const first = await promptHidden(io, prompt);
  if (options.confirm === true) {
    const second = await promptHidden(io, 'Repeat the passphrase: ');
    if (first !== second) throw new E2ekvError('INVALID_ARGUMENT', 'the two passphrases differ: run the command again');
  }
  if (first.length === 0) throw new E2ekvError('INVALID_ARGUMENT', 'the passphrase is empty');
  return first;
}

// Raw mode, so that the terminal does not echo; we handle backspace, Ctrl-C and Enter.
async function promptHidden(io: CliIo, prompt: string): Promise<string> {
  await write(io.stderr, prompt);
  const stdin = io.stdin;
  stdin.setRawMode!(true);
  stdin.resume();
  try {
    return await new Promise<string>((resolve, reject) => {
      let typed = '';
      const onData = (chunk: Buffer | string) => {
        for (const char of chunk.toString()) {
          if (char === '\r' || char === '\n' || char === '\u0004') {
            stdin.off('data', onData);
            resolve(typed);
            return;
          }
          if (char === '\u0003') {
            stdin.off('data', onData);
            reject(new E2ekvError('INVALID_ARGUMENT', 'cancelled'));
            return;
          }
          if (char === '\u007f' || char === '\b') typed = [...typed].slice(0, -1).join('');
          else typed += char;
        }
      };
      stdin.on('data', onData);
    });
  } finally {
    stdin.setRawMode!(false);
    stdin.pause();
    await write(io.stderr, '\n');
  }
}
