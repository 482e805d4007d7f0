/**
 * The keystore: sealing and opening under a passphrase, every way a file can be
 * wrong (tampered, downgraded, absurd, from the future), NFKC passphrases, and
 * the file helpers' modes and atomic replacement.
 */
import { mkdir, readdir, stat, chmod, writeFile } from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { scrypt } from '@noble/hashes/scrypt.js';
import nacl from 'tweetnacl';
import { fromBase64, randomBytes, toBase64, toHex, utf8 } from '@e2ekv/protocol';
import { SCRYPT_DEFAULT, SCRYPT_MINIMUM, openKeystore, sealKeystore, type KeystoreContents } from '../src/keystore.js';
import { readKeystoreFile, writeKeystoreFile } from '../src/node/keystore-file.js';
import { createIdentity } from '../src/identity.js';
import { tempDir } from '../../server/test/support/process.js';

const passphrase = 'correct horse battery staple';

function contents(): KeystoreContents {
  return {
    identity: createIdentity(),
    vaults: [
      { name: 'notes', vaultId: toHex(randomBytes(32)), secret: randomBytes(32), servers: ['https://a.example'] },
      {
        name: 'photos',
        vaultId: toHex(randomBytes(32)),
        secret: randomBytes(32),
        servers: ['https://a.example', 'https://b.example:8443'],
      },
    ],
  };
}

// One sealed keystore shared by the tests that only edit its header: each seal costs a derivation.
// Made on first use, so that the timing test (serial, so first) has the machine to itself.
const shared = contents();
let sealedOnce: Promise<string> | undefined;
function sealed(): Promise<string> {
  sealedOnce ??= sealKeystore(shared, passphrase, SCRYPT_MINIMUM);
  return sealedOnce;
}

type Json = Record<string, unknown> & { kdf: Record<string, unknown> };

function edit(text: string, change: (json: Json) => void): string {
  const json = JSON.parse(text) as Json;
  change(json);
  return JSON.stringify(json);
}

function flipBit(base64: unknown, index = 0): string {
  const bytes = fromBase64(base64 as string);
  bytes[index]! ^= 1;
  return toBase64(bytes);
}

/** Opens with a spy on the key derivation: how many progress reports scrypt made. */
async function openCounting(text: string, secret = passphrase): Promise<{ error: unknown; derivations: number }> {
  let derivations = 0;
  try {
    await openKeystore(text, secret, { onProgress: () => derivations++ });
    return { error: undefined, derivations };
  } catch (error) {
    return { error, derivations };
  }
}

/** Seals an arbitrary body the way sealKeystore would, with the test's own scrypt and secretbox. */
function sealRaw(body: Uint8Array, secret = passphrase): string {
  const salt = randomBytes(16);
  const nonce = randomBytes(24);
  const { logN, r, p } = SCRYPT_MINIMUM;
  const key = scrypt(utf8(secret.normalize('NFKC')), salt, { N: 2 ** logN, r, p, dkLen: 32 });
  return JSON.stringify({
    'e2ekv-keystore': 1,
    kdf: { name: 'scrypt', logN, r, p, salt: toBase64(salt) },
    nonce: toBase64(nonce),
    ciphertext: toBase64(nacl.secretbox(body, nonce, key)),
  });
}

test('round trip: what is sealed opens, with fresh salt and nonce each time', async (t) => {
  const text = await sealed();
  t.deepEqual(await openKeystore(text, passphrase), shared);
  const json = JSON.parse(text) as Json;
  t.deepEqual(Object.keys(json), ['e2ekv-keystore', 'kdf', 'nonce', 'ciphertext']);
  t.is(json['e2ekv-keystore'], 1);
  t.deepEqual({ ...json.kdf, salt: undefined }, { name: 'scrypt', logN: 15, r: 8, p: 1, salt: undefined });
  t.is(fromBase64(json.kdf['salt'] as string).length, 16);
  t.is(fromBase64(json['nonce'] as string).length, 24);
  const again = JSON.parse(await sealKeystore(shared, passphrase, SCRYPT_MINIMUM)) as Json;
  t.not(again.kdf['salt'], json.kdf['salt']);
  t.not(again['nonce'], json['nonce']);
  t.not(again['ciphertext'], json['ciphertext']);
});

test('an empty vault list round-trips', async (t) => {
  const empty = { identity: createIdentity(), vaults: [] };
  t.deepEqual(await openKeystore(await sealKeystore(empty, passphrase, SCRYPT_MINIMUM), passphrase), empty);
});

test('the format: an independent scrypt and secretbox open it to canonical JSON', async (t) => {
  const text = await sealed();
  const json = JSON.parse(text) as Json;
  const key = scrypt(utf8(passphrase), fromBase64(json.kdf['salt'] as string), { N: 2 ** 15, r: 8, p: 1, dkLen: 32 });
  const body = nacl.secretbox.open(fromBase64(json['ciphertext'] as string), fromBase64(json['nonce'] as string), key);
  t.truthy(body);
  const [notes, photos] = shared.vaults;
  const canonical =
    `{"identity":{"boxSecret":"${toBase64(shared.identity.boxSecret)}",` +
    `"signingSeed":"${toBase64(shared.identity.signingSeed)}"},` +
    `"vaults":[{"name":"notes","secret":"${toBase64(notes!.secret)}","servers":["https://a.example"],` +
    `"vaultId":"${notes!.vaultId}"},` +
    `{"name":"photos","secret":"${toBase64(photos!.secret)}",` +
    `"servers":["https://a.example","https://b.example:8443"],"vaultId":"${photos!.vaultId}"}]}`;
  t.is(new TextDecoder().decode(body!), canonical);
});

test.serial('the scrypt cost at the minimum and at the default, measured alone', async (t) => {
  const time = async (params: typeof SCRYPT_DEFAULT) => {
    const start = performance.now();
    const text = await sealKeystore(shared, passphrase, params);
    const sealMs = performance.now() - start;
    const openStart = performance.now();
    t.deepEqual(await openKeystore(text, passphrase), shared);
    return { text, sealMs, openMs: performance.now() - openStart };
  };
  const minimum = await time(SCRYPT_MINIMUM);
  const defaults = await time(SCRYPT_DEFAULT);
  t.is((JSON.parse(defaults.text) as Json).kdf['logN'], SCRYPT_DEFAULT.logN);
  t.log(`minimum (logN 15, 32 MiB): seal ${minimum.sealMs.toFixed(0)} ms, open ${minimum.openMs.toFixed(0)} ms`);
  t.log(`default (logN 17, 128 MiB): seal ${defaults.sealMs.toFixed(0)} ms, open ${defaults.openMs.toFixed(0)} ms`);
});

test('a wrong passphrase is PERMISSION_DENIED', async (t) => {
  const text = await sealed();
  await t.throwsAsync(openKeystore(text, 'correct horse battery stapler'), {
    code: 'PERMISSION_DENIED',
    message: 'wrong passphrase for this keystore',
  });
});

test('a tampered ciphertext, nonce, salt or raised cost fails like a wrong passphrase', async (t) => {
  const text = await sealed();
  const tampered = {
    'ciphertext, first byte': edit(text, (j) => (j['ciphertext'] = flipBit(j['ciphertext']))),
    'ciphertext, a body byte': edit(text, (j) => (j['ciphertext'] = flipBit(j['ciphertext'], 40))),
    nonce: edit(text, (j) => (j['nonce'] = flipBit(j['nonce'], 23))),
    salt: edit(text, (j) => (j.kdf['salt'] = flipBit(j.kdf['salt'], 15))),
    'logN raised': edit(text, (j) => (j.kdf['logN'] = 16)),
    'p raised': edit(text, (j) => (j.kdf['p'] = 2)),
  };
  for (const [what, changed] of Object.entries(tampered)) {
    const error = await t.throwsAsync(openKeystore(changed, passphrase), { code: 'PERMISSION_DENIED' }, what);
    t.is(error?.message, 'wrong passphrase for this keystore', what);
  }
});

test('parameters below the minimum are refused as tampering before any key derivation', async (t) => {
  const text = await sealed();
  // The control: opening an untouched keystore does report progress, so the spy can see a derivation.
  const control = await openCounting(text);
  t.is(control.error, undefined);
  t.true(control.derivations > 0);
  for (const change of [{ logN: 14 }, { logN: 1 }, { r: 7 }, { r: 1, logN: 20 }]) {
    const { error, derivations } = await openCounting(edit(text, (j) => Object.assign(j.kdf, change)));
    t.like(
      error,
      {
        code: 'INTEGRITY',
        message: 'the keystore asks for weaker scrypt parameters than e2ekv allows: it may have been tampered with',
      },
      JSON.stringify(change),
    );
    t.is(derivations, 0, JSON.stringify(change));
  }
});

test('absurd parameters are MALFORMED, before any key derivation', async (t) => {
  const text = await sealed();
  for (const change of [{ logN: 23 }, { r: 33 }, { p: 17 }, { logN: 21 }, { logN: 20, r: 16 }, { logN: 1e6 }]) {
    const { error, derivations } = await openCounting(edit(text, (j) => Object.assign(j.kdf, change)));
    t.like(error, { code: 'MALFORMED' }, JSON.stringify(change));
    t.regex((error as Error).message, /maximum|more than 1024 MiB/, JSON.stringify(change));
    t.is(derivations, 0, JSON.stringify(change));
  }
});

test('an unknown version or key derivation is UNSUPPORTED_VERSION', async (t) => {
  const text = await sealed();
  await t.throwsAsync(
    openKeystore(
      edit(text, (j) => (j['e2ekv-keystore'] = 2)),
      passphrase,
    ),
    {
      code: 'UNSUPPORTED_VERSION',
      message: /version 2; this e2ekv reads version 1: upgrade e2ekv/,
    },
  );
  await t.throwsAsync(
    openKeystore(
      edit(text, (j) => (j.kdf['name'] = 'argon2id')),
      passphrase,
    ),
    {
      code: 'UNSUPPORTED_VERSION',
      message: /"argon2id"; this e2ekv knows only scrypt/,
    },
  );
});

test('a malformed keystore is MALFORMED, before any key derivation', async (t) => {
  const text = await sealed();
  const cases: Record<string, string> = {
    'not JSON': 'e2ekv keystore',
    'a JSON list': '[1]',
    'no version': edit(text, (j) => delete j['e2ekv-keystore']),
    'a string version': edit(text, (j) => (j['e2ekv-keystore'] = '1')),
    'a missing nonce': edit(text, (j) => delete j['nonce']),
    'an unknown field': edit(text, (j) => (j['comment'] = 'hi')),
    'an unknown kdf field': edit(text, (j) => (j.kdf['maxmem'] = 1)),
    'kdf not an object': edit(text, (j) => ((j as Record<string, unknown>)['kdf'] = 'scrypt')),
    'a fractional logN': edit(text, (j) => (j.kdf['logN'] = 15.5)),
    'a string r': edit(text, (j) => (j.kdf['r'] = '8')),
    'p of zero': edit(text, (j) => (j.kdf['p'] = 0)),
    'a short salt': edit(text, (j) => (j.kdf['salt'] = toBase64(randomBytes(15)))),
    'a long nonce': edit(text, (j) => (j['nonce'] = toBase64(randomBytes(25)))),
    'unpadded base64': edit(text, (j) => (j.kdf['salt'] = (j.kdf['salt'] as string).replace(/=+$/, ''))),
    'non-canonical base64': edit(text, (j) => (j.kdf['salt'] = (j.kdf['salt'] as string).replace(/.==$/, 'B=='))),
    'a ciphertext shorter than a MAC': edit(text, (j) => (j['ciphertext'] = toBase64(randomBytes(15)))),
  };
  for (const [what, bad] of Object.entries(cases)) {
    const { error, derivations } = await openCounting(bad);
    t.like(error, { code: 'MALFORMED' }, what);
    t.is(derivations, 0, what);
  }
});

test('contents that decrypt but do not parse or validate are MALFORMED', async (t) => {
  const seed = toBase64(randomBytes(32));
  const vault = { name: 'a', secret: seed, servers: ['https://a.example'], vaultId: 'ab'.repeat(32) };
  const bodies: Record<string, Uint8Array> = {
    'not JSON': utf8('not json'),
    'invalid UTF-8': Uint8Array.of(0x7b, 0xff, 0x7d),
    'a JSON list': utf8('[]'),
    'a short seed': utf8(JSON.stringify({ identity: { boxSecret: seed, signingSeed: 'AAAA' }, vaults: [] })),
    'an extra field': utf8(JSON.stringify({ identity: { boxSecret: seed, signingSeed: seed }, vaults: [], x: 1 })),
    'a bad vault id': utf8(
      JSON.stringify({ identity: { boxSecret: seed, signingSeed: seed }, vaults: [{ ...vault, vaultId: 'AB' }] }),
    ),
    'a server that is a number': utf8(
      JSON.stringify({ identity: { boxSecret: seed, signingSeed: seed }, vaults: [{ ...vault, servers: [1] }] }),
    ),
    'two vaults of one name': utf8(
      JSON.stringify({ identity: { boxSecret: seed, signingSeed: seed }, vaults: [vault, vault] }),
    ),
  };
  for (const [what, body] of Object.entries(bodies)) {
    await t.throwsAsync(openKeystore(sealRaw(body), passphrase), { code: 'MALFORMED', message: /contents/ }, what);
  }
  // The control: the same sealing with a valid body opens.
  const valid = { identity: { boxSecret: seed, signingSeed: seed }, vaults: [vault] };
  const opened = await openKeystore(sealRaw(utf8(JSON.stringify(valid))), passphrase);
  t.is(opened.vaults[0]!.vaultId, vault.vaultId);
});

test('NFKC: a passphrase opens whichever Unicode form it is typed in', async (t) => {
  const nfd = 'A\u030Angstro\u0308m cafe\u0301 \uFB01sh'; // decomposed accents and the "fi" ligature
  const nfc = '\u00C5ngstr\u00F6m caf\u00E9 fish';
  t.not(nfd, nfc);
  const text = await sealKeystore(shared, nfd, SCRYPT_MINIMUM);
  t.deepEqual(await openKeystore(text, nfc), shared);
  t.deepEqual(await openKeystore(text, nfc.normalize('NFD')), shared);
  await t.throwsAsync(openKeystore(text, 'Angstrom cafe fish'), { code: 'PERMISSION_DENIED' });
});

test('sealing refuses what opening would refuse', async (t) => {
  const ok = contents();
  const badContents: Record<string, KeystoreContents> = {
    'a short box secret': { ...ok, identity: { ...ok.identity, boxSecret: randomBytes(31) } },
    'an uppercase vault id': { ...ok, vaults: [{ ...ok.vaults[0]!, vaultId: 'AB'.repeat(32) }] },
    'a short vault secret': { ...ok, vaults: [{ ...ok.vaults[0]!, secret: randomBytes(16) }] },
    'an unnamed vault': { ...ok, vaults: [{ ...ok.vaults[0]!, name: '' }] },
    'two vaults of one name': { ...ok, vaults: [ok.vaults[0]!, { ...ok.vaults[1]!, name: 'notes' }] },
    'an empty server': { ...ok, vaults: [{ ...ok.vaults[0]!, servers: [''] }] },
  };
  for (const [what, bad] of Object.entries(badContents)) {
    await t.throwsAsync(sealKeystore(bad, passphrase, SCRYPT_MINIMUM), { code: 'INVALID_ARGUMENT' }, what);
  }
  for (const params of [
    { logN: 14, r: 8, p: 1 },
    { logN: 23, r: 8, p: 1 },
    { logN: 15.5, r: 8, p: 1 },
  ]) {
    await t.throwsAsync(sealKeystore(ok, passphrase, params), { code: 'INVALID_ARGUMENT' }, JSON.stringify(params));
  }
  await t.throwsAsync(sealKeystore(ok, '', SCRYPT_MINIMUM), { code: 'INVALID_ARGUMENT', message: /passphrase/ });
  await t.throwsAsync(sealKeystore(ok, 'lone \uD800 surrogate', SCRYPT_MINIMUM), {
    code: 'INVALID_ARGUMENT',
    message: /surrogate/,
  });
});

test('files: a missing file reads as undefined; a written one reads back, 0600 in a new 0700 directory', async (t) => {
  const { dir, remove } = await tempDir();
  t.teardown(remove);
  const file = path.join(dir, 'config', 'e2ekv', 'keystore.json');
  t.is(await readKeystoreFile(file), undefined);
  await writeKeystoreFile(file, 'first');
  t.is(await readKeystoreFile(file), 'first');
  if (process.platform !== 'win32') {
    t.is((await stat(file)).mode & 0o777, 0o600);
    t.is((await stat(path.dirname(file))).mode & 0o777, 0o700);
    t.is((await stat(path.join(dir, 'config'))).mode & 0o777, 0o700);
  }
  await writeKeystoreFile(file, 'second');
  t.is(await readKeystoreFile(file), 'second');
  t.deepEqual(await readdir(path.dirname(file)), ['keystore.json'], 'no temporary file is left behind');
});

test('files: writing replaces the file by rename and leaves no temporary file when it fails', async (t) => {
  const { dir, remove } = await tempDir();
  t.teardown(remove);
  const file = path.join(dir, 'keystore.json');
  await writeKeystoreFile(file, 'old');
  const before = await stat(file);
  await writeKeystoreFile(file, 'new');
  // A new inode: the old file was replaced whole, never rewritten in place.
  t.not((await stat(file)).ino, before.ino);
  // A directory in the way makes the rename fail: the temporary file must not stay.
  const blocked = path.join(dir, 'blocked');
  await mkdir(path.join(blocked, 'inside'), { recursive: true });
  await t.throwsAsync(writeKeystoreFile(blocked, 'text'));
  t.deepEqual((await readdir(dir)).sort(), ['blocked', 'keystore.json']);
  t.is(await readKeystoreFile(file), 'new');
});

test('files: a keystore others can read is refused', async (t) => {
  if (process.platform === 'win32') {
    t.pass('no POSIX modes on Windows');
    return;
  }
  const { dir, remove } = await tempDir();
  t.teardown(remove);
  const file = path.join(dir, 'keystore.json');
  await writeFile(file, await sealed(), { mode: 0o600 });
  t.is(await readKeystoreFile(file), await sealed());
  for (const mode of [0o644, 0o640, 0o604]) {
    await chmod(file, mode);
    await t.throwsAsync(readKeystoreFile(file), {
      code: 'PERMISSION_DENIED',
      message: `the keystore file ${file} is readable by other users: chmod 600 it`,
    });
  }
  await chmod(file, 0o600);
  t.truthy(await readKeystoreFile(file));
  await t.throwsAsync(readKeystoreFile(dir), { code: 'INVALID_ARGUMENT' });
});

test('later key epochs: kept in ascending order, omitted when there are none, byte for byte as specified', async (t) => {
  const [a, b] = [randomBytes(32), randomBytes(32)];
  // Two secrets of epoch 2 (two admins started it concurrently), in the order of their bytes.
  const [low, high] = [a, b].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
  const one = randomBytes(32);
  const withEpochs: KeystoreContents = {
    identity: createIdentity(),
    vaults: [
      {
        name: 'team',
        vaultId: toHex(randomBytes(32)),
        secret: randomBytes(32),
        servers: ['https://a.example'],
        epochs: [
          { epoch: 1, secret: one },
          { epoch: 2, secret: low! },
          { epoch: 2, secret: high! },
        ],
      },
      { name: 'plain', vaultId: toHex(randomBytes(32)), secret: randomBytes(32), servers: ['https://a.example'] },
    ],
  };
  const text = await sealKeystore(withEpochs, passphrase, SCRYPT_MINIMUM);
  t.deepEqual(await openKeystore(text, passphrase), withEpochs);
  const json = JSON.parse(text) as Json;
  const key = scrypt(utf8(passphrase), fromBase64(json.kdf['salt'] as string), { N: 2 ** 15, r: 8, p: 1, dkLen: 32 });
  const body = nacl.secretbox.open(fromBase64(json['ciphertext'] as string), fromBase64(json['nonce'] as string), key);
  const [team, plain] = withEpochs.vaults;
  t.is(
    new TextDecoder().decode(body!),
    `{"identity":{"boxSecret":"${toBase64(withEpochs.identity.boxSecret)}","signingSeed":"${toBase64(withEpochs.identity.signingSeed)}"},` +
      `"vaults":[{"epochs":[{"epoch":1,"secret":"${toBase64(one)}"},{"epoch":2,"secret":"${toBase64(low!)}"},` +
      `{"epoch":2,"secret":"${toBase64(high!)}"}],"name":"team","secret":"${toBase64(team!.secret)}",` +
      `"servers":["https://a.example"],"vaultId":"${team!.vaultId}"},` +
      `{"name":"plain","secret":"${toBase64(plain!.secret)}","servers":["https://a.example"],"vaultId":"${plain!.vaultId}"}]}`,
  );
  // Sealing an empty list writes no "epochs" field: the record reads back without one.
  const empty = { ...withEpochs, vaults: [{ ...plain!, epochs: [] }] };
  const reopened = await openKeystore(await sealKeystore(empty, passphrase, SCRYPT_MINIMUM), passphrase);
  t.false('epochs' in reopened.vaults[0]!);
});

test('later key epochs that break a rule are refused when sealing and when opening', async (t) => {
  const seed = toBase64(randomBytes(32));
  const s1 = toBase64(randomBytes(32));
  const vault = { name: 'a', secret: seed, servers: ['https://a.example'], vaultId: 'ab'.repeat(32) };
  const identity = { boxSecret: seed, signingSeed: seed };
  const withEpochs = (epochs: unknown) => utf8(JSON.stringify({ identity, vaults: [{ epochs, ...vault }] }));
  const [x, y] = [randomBytes(32), randomBytes(32)].sort((p, q) => Buffer.compare(Buffer.from(p), Buffer.from(q)));
  const bodies: Record<string, Uint8Array> = {
    'an empty list (absent is the one encoding)': withEpochs([]),
    'not a list': withEpochs({ epoch: 1, secret: s1 }),
    'epoch 0 (the record secret is epoch 0)': withEpochs([{ epoch: 0, secret: s1 }]),
    'a fractional epoch': withEpochs([{ epoch: 1.5, secret: s1 }]),
    'an epoch above 2^32 - 1': withEpochs([{ epoch: 2 ** 32, secret: s1 }]),
    'a string epoch': withEpochs([{ epoch: '1', secret: s1 }]),
    'descending epochs': withEpochs([
      { epoch: 2, secret: s1 },
      { epoch: 1, secret: s1 },
    ]),
    'one secret twice': withEpochs([
      { epoch: 1, secret: s1 },
      { epoch: 1, secret: s1 },
    ]),
    'two secrets of one epoch not in byte order': withEpochs([
      { epoch: 1, secret: toBase64(y!) },
      { epoch: 1, secret: toBase64(x!) },
    ]),
    'a short secret': withEpochs([{ epoch: 1, secret: toBase64(randomBytes(31)) }]),
    'an unknown field': withEpochs([{ epoch: 1, secret: s1, note: 'x' }]),
    'a missing secret': withEpochs([{ epoch: 1 }]),
  };
  for (const [what, body] of Object.entries(bodies)) {
    await t.throwsAsync(openKeystore(sealRaw(body), passphrase), { code: 'MALFORMED', message: /contents/ }, what);
  }
  // The control: the same record with valid epochs opens.
  const valid = await openKeystore(
    sealRaw(
      withEpochs([
        { epoch: 1, secret: toBase64(x!) },
        { epoch: 1, secret: toBase64(y!) },
        { epoch: 7, secret: s1 },
      ]),
    ),
    passphrase,
  );
  t.deepEqual(
    valid.vaults[0]!.epochs!.map((e) => e.epoch),
    [1, 1, 7],
  );

  const ok = contents();
  const record = ok.vaults[0]!;
  const sealBad: Record<string, KeystoreContents> = {
    'epoch 0': { ...ok, vaults: [{ ...record, epochs: [{ epoch: 0, secret: randomBytes(32) }] }] },
    descending: {
      ...ok,
      vaults: [
        {
          ...record,
          epochs: [
            { epoch: 3, secret: randomBytes(32) },
            { epoch: 2, secret: randomBytes(32) },
          ],
        },
      ],
    },
    'a short secret': { ...ok, vaults: [{ ...record, epochs: [{ epoch: 1, secret: randomBytes(16) }] }] },
  };
  for (const [what, bad] of Object.entries(sealBad)) {
    await t.throwsAsync(sealKeystore(bad, passphrase, SCRYPT_MINIMUM), { code: 'INVALID_ARGUMENT' }, what);
  }
});

test('a backup file handed to the keystore reader says what it is', async (t) => {
  const text = edit(await sealed(), (j) => {
    j['e2ekv-backup'] = j['e2ekv-keystore'];
    delete j['e2ekv-keystore'];
  });
  const { error, derivations } = await openCounting(text);
  t.like(error, {
    code: 'MALFORMED',
    message: 'this is an e2ekv backup, not a keystore: restore it with e2ekv backup import',
  });
  t.is(derivations, 0);
});
