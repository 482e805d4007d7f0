/**
 * Backup files (protocol/SPEC.md section 20.1): sealed like a keystore under
 * their own version field, checked as strictly, never mistaken for a keystore.
 */
import test from 'ava';
import { scrypt } from '@noble/hashes/scrypt.js';
import nacl from 'tweetnacl';
import { formatIdentityString, fromBase64, randomBytes, toBase64, toHex, utf8 } from '@e2ekv/protocol';
import { BACKUP_SCRYPT_DEFAULT, backupParams, openBackup, sealBackup, type BackupContents } from '../src/backup.js';
import { createIdentity, publicIdentity } from '../src/identity.js';
import { SCRYPT_MINIMUM, openKeystore, sealKeystore } from '../src/keystore.js';

const passphrase = 'backup test: dune ember fjord glyph harbor';
const MINIMUM = SCRYPT_MINIMUM;

function contents(): BackupContents {
  return {
    createdAtMs: 1_790_000_000_000,
    device: formatIdentityString(publicIdentity(createIdentity())),
    recovery: createIdentity(),
    vaults: [
      {
        name: 'team',
        vaultId: toHex(randomBytes(32)),
        secret: randomBytes(32),
        servers: ['https://a.example', 'https://b.example:8443'],
        epochs: [{ epoch: 1, secret: randomBytes(32) }],
        role: 'admin',
        recoverable: true,
      },
      {
        name: 'theirs',
        vaultId: toHex(randomBytes(32)),
        secret: randomBytes(32),
        servers: ['https://a.example'],
        role: 'writer',
        recoverable: false,
      },
    ],
  };
}

const shared = contents();
let sealedOnce: Promise<string> | undefined;
function sealed(): Promise<string> {
  sealedOnce ??= sealBackup(shared, passphrase, MINIMUM);
  return sealedOnce;
}

type Json = Record<string, unknown> & { kdf: Record<string, unknown> };

function edit(text: string, change: (json: Json) => void): string {
  const json = JSON.parse(text) as Json;
  change(json);
  return JSON.stringify(json);
}

/** Seals an arbitrary body the way sealBackup would, with the test's own scrypt and secretbox. */
function sealRaw(body: Uint8Array): string {
  const salt = randomBytes(16);
  const nonce = randomBytes(24);
  const key = scrypt(utf8(passphrase), salt, { N: 2 ** 15, r: 8, p: 1, dkLen: 32 });
  return JSON.stringify({
    'e2ekv-backup': 1,
    kdf: { name: 'scrypt', logN: 15, r: 8, p: 1, salt: toBase64(salt) },
    nonce: toBase64(nonce),
    ciphertext: toBase64(nacl.secretbox(body, nonce, key)),
  });
}

async function openCounting(text: string, secret = passphrase): Promise<{ error: unknown; derivations: number }> {
  let derivations = 0;
  try {
    await openBackup(text, secret, { onProgress: () => derivations++ });
    return { error: undefined, derivations };
  } catch (error) {
    return { error, derivations };
  }
}

test('round trip, with its own version field and fresh salt and nonce', async (t) => {
  const text = await sealed();
  t.deepEqual(await openBackup(text, passphrase), shared);
  const json = JSON.parse(text) as Json;
  t.deepEqual(Object.keys(json), ['e2ekv-backup', 'kdf', 'nonce', 'ciphertext']);
  t.is(json['e2ekv-backup'], 1);
  t.deepEqual(backupParams(text), { logN: 15, r: 8, p: 1 });
  const again = JSON.parse(await sealBackup(shared, passphrase, MINIMUM)) as Json;
  t.not(again.kdf['salt'], json.kdf['salt']);
  t.not(again['nonce'], json['nonce']);
  t.is(BACKUP_SCRYPT_DEFAULT.logN, 18);
});

test('the format: an independent scrypt and secretbox open it to canonical JSON', async (t) => {
  const text = await sealed();
  const json = JSON.parse(text) as Json;
  const key = scrypt(utf8(passphrase), fromBase64(json.kdf['salt'] as string), { N: 2 ** 15, r: 8, p: 1, dkLen: 32 });
  const body = nacl.secretbox.open(fromBase64(json['ciphertext'] as string), fromBase64(json['nonce'] as string), key);
  t.truthy(body);
  const [team, theirs] = shared.vaults;
  const expected =
    `{"createdAtMs":1790000000000,"device":"${shared.device}",` +
    `"recovery":{"boxSecret":"${toBase64(shared.recovery.boxSecret)}","signingSeed":"${toBase64(shared.recovery.signingSeed)}"},` +
    `"vaults":[{"epochs":[{"epoch":1,"secret":"${toBase64(team!.epochs![0]!.secret)}"}],"name":"team","recoverable":true,` +
    `"role":"admin","secret":"${toBase64(team!.secret)}","servers":["https://a.example","https://b.example:8443"],` +
    `"vaultId":"${team!.vaultId}"},` +
    `{"name":"theirs","recoverable":false,"role":"writer","secret":"${toBase64(theirs!.secret)}",` +
    `"servers":["https://a.example"],"vaultId":"${theirs!.vaultId}"}]}`;
  t.is(new TextDecoder().decode(body!), expected);
});

test('a wrong passphrase, or an edited salt, nonce or ciphertext, is PERMISSION_DENIED', async (t) => {
  const text = await sealed();
  await t.throwsAsync(openBackup(text, `${passphrase}!`), {
    code: 'PERMISSION_DENIED',
    message: 'wrong passphrase for this backup',
  });
  const flip = (b64: unknown, i: number) => {
    const bytes = fromBase64(b64 as string);
    bytes[i]! ^= 1;
    return toBase64(bytes);
  };
  for (const changed of [
    edit(text, (j) => (j['ciphertext'] = flip(j['ciphertext'], 30))),
    edit(text, (j) => (j['nonce'] = flip(j['nonce'], 0))),
    edit(text, (j) => (j.kdf['salt'] = flip(j.kdf['salt'], 3))),
  ]) {
    await t.throwsAsync(openBackup(changed, passphrase), { code: 'PERMISSION_DENIED' });
  }
});

test('lowered scrypt parameters are INTEGRITY, refused before any derivation', async (t) => {
  const text = await sealed();
  const control = await openCounting(text);
  t.is(control.error, undefined);
  t.true(control.derivations > 0);
  for (const change of [{ logN: 14 }, { r: 4 }, { logN: 10, r: 1 }]) {
    const { error, derivations } = await openCounting(edit(text, (j) => Object.assign(j.kdf, change)));
    t.like(
      error,
      {
        code: 'INTEGRITY',
        message: 'the backup asks for weaker scrypt parameters than e2ekv allows: it may have been tampered with',
      },
      JSON.stringify(change),
    );
    t.is(derivations, 0);
  }
  t.throws(() => backupParams(edit(text, (j) => (j.kdf['logN'] = 14))), { code: 'INTEGRITY' });
  await t.throwsAsync(sealBackup(shared, passphrase, { logN: 14, r: 8, p: 1 }), { code: 'INVALID_ARGUMENT' });
});

test('a backup is never taken for a keystore, nor a keystore for a backup', async (t) => {
  const backup = await sealed();
  const keystore = await sealKeystore({ identity: createIdentity(), vaults: [] }, passphrase, MINIMUM);
  const asBackup = await openCounting(keystore);
  t.like(asBackup.error, { code: 'MALFORMED' });
  t.regex((asBackup.error as Error).message, /^this is an e2ekv keystore, not a backup/);
  t.is(asBackup.derivations, 0);
  await t.throwsAsync(openKeystore(backup, passphrase), {
    code: 'MALFORMED',
    message: /this is an e2ekv backup, not a keystore/,
  });
  // Relabelled by hand, the contents still do not pass for the other kind (strict fields on both sides).
  const relabelled = edit(backup, (j) => {
    j['e2ekv-keystore'] = 1;
    delete j['e2ekv-backup'];
  });
  await t.throwsAsync(openKeystore(relabelled, passphrase), { code: 'MALFORMED', message: /contents/ });
  const other = await openCounting(edit(backup, (j) => (j['e2ekv-backup'] = 2)));
  t.like(other.error, { code: 'UNSUPPORTED_VERSION' });
  t.regex((other.error as Error).message, /format version 2/);
  await t.throwsAsync(openBackup('not json', passphrase), { code: 'MALFORMED', message: /not an e2ekv backup/ });
  await t.throwsAsync(openBackup('x'.repeat(16 * 2 ** 20 + 1), passphrase), { code: 'MALFORMED', message: /larger/ });
});

test('contents that decrypt but break a rule are MALFORMED', async (t) => {
  const seed = toBase64(randomBytes(32));
  const vault = {
    name: 'v',
    recoverable: true,
    role: 'admin',
    secret: seed,
    servers: ['https://a.example'],
    vaultId: 'ab'.repeat(32),
  };
  const base = {
    createdAtMs: 1,
    device: shared.device,
    recovery: { boxSecret: seed, signingSeed: seed },
    vaults: [vault],
  };
  const body = (change: (b: Record<string, unknown>) => void) => {
    const copy = JSON.parse(JSON.stringify(base)) as Record<string, unknown>;
    change(copy);
    return utf8(JSON.stringify(copy));
  };
  const vaultOf = (b: Record<string, unknown>) => (b['vaults'] as Record<string, unknown>[])[0]!;
  const cases: Record<string, Uint8Array> = {
    'not JSON': utf8('nope'),
    'an unknown top-level field': body((b) => (b['note'] = 'x')),
    'no recovery': body((b) => delete b['recovery']),
    'a short recovery seed': body(
      (b) => ((b['recovery'] as Record<string, unknown>)['signingSeed'] = toBase64(randomBytes(31))),
    ),
    'a device that is not an identity string': body((b) => (b['device'] = 'ab'.repeat(32))),
    'a mistyped identity string': body((b) => (b['device'] = `${shared.device.slice(0, -2)}AA`)),
    'a negative time': body((b) => (b['createdAtMs'] = -1)),
    'an unknown role': body((b) => (vaultOf(b)['role'] = 'owner')),
    'recoverable without being admin': body((b) => (vaultOf(b)['role'] = 'writer')),
    'recoverable not a boolean': body((b) => (vaultOf(b)['recoverable'] = 'yes')),
    'an unknown vault field': body((b) => (vaultOf(b)['comment'] = 'x')),
    'epoch 0 in epochs': body((b) => (vaultOf(b)['epochs'] = [{ epoch: 0, secret: seed }])),
    'one vault twice': body((b) => (b['vaults'] = [vault, { ...vault, name: 'w' }])),
    'two vaults of one name': body((b) => (b['vaults'] = [vault, { ...vault, vaultId: 'cd'.repeat(32) }])),
  };
  for (const [what, bad] of Object.entries(cases)) {
    await t.throwsAsync(
      openBackup(sealRaw(bad), passphrase),
      { code: 'MALFORMED', message: /backup opened but/ },
      what,
    );
  }
  // The control: the same sealing of the valid body opens.
  const opened = await openBackup(sealRaw(body(() => undefined)), passphrase);
  t.is(opened.vaults[0]!.name, 'v');
  t.true(opened.vaults[0]!.recoverable);
});

test('sealing refuses what opening would refuse', async (t) => {
  const ok = contents();
  const bad: Record<string, BackupContents> = {
    'a device that is not an identity string': { ...ok, device: 'me' },
    'a short recovery secret': { ...ok, recovery: { ...ok.recovery, boxSecret: randomBytes(8) } },
    'recoverable for a reader': { ...ok, vaults: [{ ...ok.vaults[1]!, role: 'reader', recoverable: true }] },
    'a fractional time': { ...ok, createdAtMs: 1.5 },
  };
  for (const [what, contents] of Object.entries(bad)) {
    await t.throwsAsync(sealBackup(contents, passphrase, MINIMUM), { code: 'INVALID_ARGUMENT' }, what);
  }
  await t.throwsAsync(sealBackup(ok, '', MINIMUM), { code: 'INVALID_ARGUMENT', message: /backup needs a passphrase/ });
});
