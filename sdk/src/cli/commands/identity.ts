/** `e2ekv init` and `e2ekv whoami`: this device's identity. */
import { formatIdentityString, identityFingerprint, toHex } from '@e2ekv/protocol';
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
    const identityString = formatIdentityString(pub);
    const fingerprint = identityFingerprint(pub);
    await print(
      ctx,
      { device, boxKey: toHex(pub.boxKey), identity: identityString, fingerprint, keystore: ctx.home.keystoreFile },
      () =>
        `Created a device identity in ${ctx.home.keystoreFile}\n` +
        `device      ${device}\n` +
        `identity    ${identityString}\n` +
        `fingerprint ${fingerprint}\n` +
        `Next: e2ekv vault create NAME --server URL, or give the identity to an admin to be invited\n`,
    );
    return 0;
  },
};

export const whoami: Command = {
  name: 'whoami',
  args: '',
  summary: "show this device's identity string and fingerprint, and where its keystore is",
  details: [
    'The identity string (e2ekv-id1-...) is what an admin needs to invite this device:',
    '  e2ekv vault invite NAME --to IDENTITY',
    'The fingerprint is what two people read to each other (by voice, in person) to check that the',
    'identity string that reached the other side is this one and not a substitute.',
  ],
  examples: ['e2ekv whoami', 'e2ekv whoami --json'],
  options: {},
  optionHelp: [],
  positionals: { min: 0, max: 0 },
  async run(ctx) {
    const keystore = await withHomeLock(ctx.home, () => unlock(ctx.home, ctx.io));
    const pub = publicIdentity(keystore.contents.identity);
    const device = toHex(pub.signingKey);
    const boxKey = toHex(pub.boxKey);
    const identity = formatIdentityString(pub);
    const fingerprint = identityFingerprint(pub);
    const vaults = keystore.contents.vaults.map((v) => v.name);
    await print(ctx, { identity, fingerprint, device, boxKey, home: ctx.home.dir, vaults }, () =>
      [
        `identity    ${identity}`,
        `fingerprint ${fingerprint}`,
        `device      ${device}`,
        `box key     ${boxKey}`,
        `home        ${ctx.home.dir}`,
        `vaults      ${vaults.length === 0 ? '(none)' : vaults.join(', ')}`,
        '',
      ].join('\n'),
    );
    return 0;
  },
};
