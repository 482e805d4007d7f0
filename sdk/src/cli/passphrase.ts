/**
 * The keystore passphrase: from $E2EKV_PASSPHRASE (scripts, tests) or typed at
 * a terminal without echo. Never from a command-line flag, which other users
 * of the machine can read in the process list.
 */
import { E2ekvError } from '@e2ekv/protocol';
import { type CliIo, write } from './io.js';

export async function readPassphrase(io: CliIo, prompt: string, options: { confirm?: boolean } = {}): Promise<string> {
  const fromEnv = io.env['E2EKV_PASSPHRASE'];
  if (fromEnv !== undefined) {
    if (fromEnv.length === 0) throw new E2ekvError('INVALID_ARGUMENT', '$E2EKV_PASSPHRASE is set but empty');
    return fromEnv;
  }
  if (io.stdin.isTTY !== true || io.stdin.setRawMode === undefined) {
    throw new E2ekvError(
      'INVALID_ARGUMENT',
      'the keystore passphrase is needed but there is no terminal to ask on: set $E2EKV_PASSPHRASE',
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
