/** `e2ekv init` and `e2ekv whoami`: this device's identity. */
import { toHex } from '@e2ekv/protocol';
import { createIdentity, publicIdentity } from '../../identity.js';
import { SCRYPT_DEFAULT, SCRYPT_MINIMUM } from '../../keystore.js';
import { type Command, print } from '../command.js';
import { createKeystore, unlock, withHomeLock } from '../home.js';
import { UsageError } from '../io.js';

const MAX_LOG_N = 20;

export const init: Command = {
  name: 'init',
  args: '',
  summary: 'make a device identity and an empty keystore sealed under a passphrase',
  details: [
    'The keystore ($E2EKV_HOME/keystore.json) holds the identity and the secrets of your vaults,',
    'sealed with scrypt under the passphrase. Use six or more random words: anyone who copies the',
    'file can guess offline. Losing the file or the passphrase loses access to your vaults.',
  ],
  examples: ['e2ekv init', 'E2EKV_HOME=~/work-e2ekv e2ekv init --scrypt-log-n 18'],
  options: { 'scrypt-log-n': { type: 'string' } },
  optionHelp: [
    [
      '--scrypt-log-n N',
      `scrypt cost 2^N (default ${SCRYPT_DEFAULT.logN}, at least ${SCRYPT_MINIMUM.logN}); each step doubles unlock time and guessing cost`,
    ],
  ],
  positionals: { min: 0, max: 0 },
  async run(ctx) {
    const raw = ctx.values['scrypt-log-n'];
    let logN = SCRYPT_DEFAULT.logN;
    if (typeof raw === 'string') {
      logN = Number(raw);
      if (!Number.isInteger(logN) || logN < SCRYPT_MINIMUM.logN || logN > MAX_LOG_N) {
        throw new UsageError(`--scrypt-log-n must be a whole number from ${SCRYPT_MINIMUM.logN} to ${MAX_LOG_N}`);
      }
    }
    const identity = createIdentity();
    const pub = publicIdentity(identity);
    await withHomeLock(ctx.home, () =>
      createKeystore(ctx.home, ctx.io, { identity, vaults: [] }, { ...SCRYPT_DEFAULT, logN }),
    );
    const device = toHex(pub.signingKey);
    await print(
      ctx,
      { device, boxKey: toHex(pub.boxKey), keystore: ctx.home.keystoreFile },
      () =>
        `Created a device identity in ${ctx.home.keystoreFile}\n` +
        `device ${device}\n` +
        `Next: e2ekv vault create NAME --server URL\n`,
    );
    return 0;
  },
};

export const whoami: Command = {
  name: 'whoami',
  args: '',
  summary: "show this device's identity and where its keystore is",
  examples: ['e2ekv whoami', 'e2ekv whoami --json'],
  options: {},
  optionHelp: [],
  positionals: { min: 0, max: 0 },
  async run(ctx) {
    const keystore = await withHomeLock(ctx.home, () => unlock(ctx.home, ctx.io));
    const pub = publicIdentity(keystore.contents.identity);
    const device = toHex(pub.signingKey);
    const boxKey = toHex(pub.boxKey);
    const vaults = keystore.contents.vaults.map((v) => v.name);
    await print(
      ctx,
      { device, boxKey, home: ctx.home.dir, vaults },
      () =>
        `device  ${device}\nbox key ${boxKey}\nhome    ${ctx.home.dir}\nvaults  ${vaults.length === 0 ? '(none)' : vaults.join(', ')}\n`,
    );
    return 0;
  },
};
