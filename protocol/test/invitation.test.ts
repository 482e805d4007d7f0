import test from 'ava';
import fc from 'fast-check';
import { toHex } from '../src/bytes.js';
import { ed25519Signer, type Ed25519Signer } from '../src/crypto/ed25519.js';
import { wrapSecretWithNonce, x25519PublicKey } from '../src/crypto/wrap.js';
import type { Role } from '../src/entry.js';
import {
  createInvitation,
  MAX_INVITATION_SECRETS,
  openInvitation,
  readInvitation,
  type CreateInvitationOptions,
} from '../src/invitation.js';
import { asyncCodeOf } from '../../test/support/errors.js';

async function device(n: number) {
  const boxSecret = new Uint8Array(32).fill(n);
  const signer = await ed25519Signer(new Uint8Array(32).fill(100 + n));
  return { signer, signingKey: signer.publicKey, boxKey: x25519PublicKey(boxSecret), boxSecret };
}

const vaultId = new Uint8Array(32).fill(0x42);
const secrets = [
  { epoch: 1, secret: new Uint8Array(32).fill(0x11) },
  { epoch: 0, secret: new Uint8Array(32).fill(0x10) },
];

async function setup() {
  const [inviter, invitee, other] = await Promise.all([device(1), device(2), device(3)]);
  const options = (o: Partial<CreateInvitationOptions> = {}): CreateInvitationOptions => ({
    vaultId,
    inviter: inviter.signer,
    invitee,
    role: 'writer',
    secrets,
    servers: ['https://replica1.example:7400', 'http://127.0.0.1:7401'],
    ...o,
  });
  return { inviter, invitee, other, options, token: await createInvitation(options()) };
}

interface HandMade {
  tag?: string;
  vaultId?: Uint8Array;
  inviter: Uint8Array;
  invitee: Uint8Array;
  inviteeBoxKey: Uint8Array;
  role?: number;
  ephemeralSecret?: Uint8Array;
  /** The secrets plaintext to seal (SPEC 21.4 layout), or raw sealed bytes. */
  plaintext?: Uint8Array;
  sealed?: Uint8Array;
  servers?: string[];
  serverCount?: number;
}

const u16 = (n: number) => Buffer.from([n >> 8, n & 255]);
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};

/** Secrets plaintext as SPEC 21.4 spells it. */
function secretsPlaintext(list: { epoch: number; secret: Uint8Array }[], count = list.length): Uint8Array {
  return Buffer.concat([u16(count), ...list.flatMap((s) => [u32(s.epoch), Buffer.from(s.secret)])]);
}

/** An invitation built from SPEC 21.4 by hand, signed by `signer` (whatever it says). */
async function handMade(signer: Ed25519Signer, f: HandMade): Promise<string> {
  const ephemeralSecret = f.ephemeralSecret ?? new Uint8Array(32).fill(0x33);
  const ephemeral = x25519PublicKey(ephemeralSecret);
  const sealed =
    f.sealed ??
    wrapSecretWithNonce(
      f.plaintext ?? secretsPlaintext([...secrets].reverse()),
      f.inviteeBoxKey,
      { publicKey: ephemeral, secretKey: ephemeralSecret },
      { vaultId: f.vaultId ?? vaultId, label: 'e2ekv/v1 invitation', extra: f.invitee },
      new Uint8Array(24).fill(0x44),
    );
  const servers = (f.servers ?? []).map((s) => Buffer.from(s, 'utf8'));
  const body = Buffer.concat([
    Buffer.from(f.tag ?? 'e2ekv/v1/invitation\0', 'latin1'),
    f.vaultId ?? vaultId,
    f.inviter,
    f.invitee,
    f.inviteeBoxKey,
    Buffer.from([f.role ?? 2]),
    ephemeral,
    u16(sealed.length),
    sealed,
    Buffer.from([f.serverCount ?? servers.length]),
    ...servers.flatMap((s) => [u16(s.length), s]),
  ]);
  const signature = await signer.sign(body);
  return 'e2ekv-invite1-' + Buffer.concat([body, signature]).toString('base64url');
}

test('an invitation round-trips: read shows what it says, open gives the sorted secrets', async (t) => {
  const { inviter, invitee, token } = await setup();
  t.regex(token, /^e2ekv-invite1-[A-Za-z0-9_-]+$/);
  const info = await readInvitation(token);
  t.is(toHex(info.vaultId), toHex(vaultId));
  t.is(toHex(info.inviter), toHex(inviter.signingKey));
  t.is(toHex(info.invitee.signingKey), toHex(invitee.signingKey));
  t.is(toHex(info.invitee.boxKey), toHex(invitee.boxKey));
  t.is(info.role, 'writer');
  t.deepEqual(info.servers, ['https://replica1.example:7400', 'http://127.0.0.1:7401']);
  t.false('secrets' in info);
  const opened = await openInvitation(token, invitee);
  t.is(toHex(opened.inviter), toHex(inviter.signingKey));
  t.is(opened.role, 'writer');
  t.deepEqual(
    opened.secrets.map((s) => [s.epoch, toHex(s.secret)]),
    [
      [0, '10'.repeat(32)],
      [1, '11'.repeat(32)],
    ],
  );
});

test('the token is exactly the SPEC 21.4 layout', async (t) => {
  const { inviter, invitee, options } = await setup();
  const { createInvitationDeterministic } = await import('../src/invitation.js');
  const ephemeralSecret = new Uint8Array(32).fill(0x33);
  const built = await createInvitationDeterministic(
    options({ servers: ['https://r.example'] }),
    ephemeralSecret,
    new Uint8Array(24).fill(0x44),
  );
  const expected = await handMade(inviter.signer, {
    inviter: inviter.signingKey,
    invitee: invitee.signingKey,
    inviteeBoxKey: invitee.boxKey,
    servers: ['https://r.example'],
  });
  t.is(built, expected);
});

test('any role, servers and secrets round-trip', async (t) => {
  const { inviter, invitee } = await setup();
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom<Role>('reader', 'writer', 'admin'),
      fc.array(fc.string({ minLength: 1, maxLength: 40 }), { maxLength: 16 }),
      fc.uniqueArray(fc.tuple(fc.nat(0xffffffff), fc.uint8Array({ minLength: 32, maxLength: 32 })), {
        minLength: 0,
        maxLength: 8,
        selector: ([e, s]) => `${e}/${toHex(s)}`,
      }),
      async (role, servers, extra) => {
        const list = [
          { epoch: 0, secret: new Uint8Array(32).fill(1) },
          ...extra.map(([epoch, secret]) => ({ epoch, secret })),
        ];
        if (list.filter((s) => s.epoch === 0).length > 1) return; // the first must be epoch 0's smallest
        const token = await createInvitation({
          vaultId,
          inviter: inviter.signer,
          invitee,
          role,
          secrets: list,
          servers,
        });
        const info = await readInvitation(token);
        t.is(info.role, role);
        t.deepEqual(info.servers, servers);
        const opened = await openInvitation(token, invitee);
        const sorted = [...list].sort((a, b) => a.epoch - b.epoch || Buffer.compare(a.secret, b.secret));
        t.deepEqual(
          opened.secrets.map((s) => `${s.epoch}/${toHex(s.secret)}`),
          sorted.map((s) => `${s.epoch}/${toHex(s.secret)}`),
        );
      },
    ),
    { numRuns: 20 },
  );
});

test('two secrets of one epoch (concurrent epoch records) both travel', async (t) => {
  const { inviter, invitee } = await setup();
  const both = [
    { epoch: 0, secret: new Uint8Array(32).fill(1) },
    { epoch: 3, secret: new Uint8Array(32).fill(9) },
    { epoch: 3, secret: new Uint8Array(32).fill(4) },
  ];
  const token = await createInvitation({
    vaultId,
    inviter: inviter.signer,
    invitee,
    role: 'reader',
    secrets: both,
    servers: [],
  });
  const opened = await openInvitation(token, invitee);
  t.deepEqual(
    opened.secrets.map((s) => [s.epoch, s.secret[0]]),
    [
      [0, 1],
      [3, 4],
      [3, 9],
    ],
  );
});

test('a token for another device is PERMISSION_DENIED', async (t) => {
  const { invitee, other, token } = await setup();
  t.is(await asyncCodeOf(() => openInvitation(token, other)), 'PERMISSION_DENIED');
  t.is(await asyncCodeOf(() => openInvitation(token, { ...invitee, boxKey: other.boxKey })), 'PERMISSION_DENIED');
  // The right keys but the wrong secret: the wrap does not open.
  t.is(await asyncCodeOf(() => openInvitation(token, { ...invitee, boxSecret: other.boxSecret })), 'DECRYPT_FAILED');
});

test('altered tokens fail their signature; bad text fails to parse', async (t) => {
  const { token, invitee } = await setup();
  const bytes = Buffer.from(token.slice(14), 'base64url');
  const retoken = (b: Uint8Array) => 'e2ekv-invite1-' + Buffer.from(b).toString('base64url');
  for (const [what, at] of [
    ['vault id', 20],
    ['inviter', 52],
    ['role', 20 + 32 * 4],
    ['sealed', 20 + 32 * 4 + 1 + 32 + 2 + 5],
    ['signature', bytes.length - 1],
  ] as const) {
    const altered = Uint8Array.from(bytes);
    altered[at]! ^= at === 20 + 32 * 4 ? 0x03 : 0x01; // role 2 -> 1
    const code = await asyncCodeOf(() => readInvitation(retoken(altered)));
    t.true(code === 'BAD_SIGNATURE' || code === 'BAD_KEY', `${what}: ${code}`);
  }
  const roleToReader = Uint8Array.from(bytes);
  roleToReader[20 + 32 * 4] = 1;
  t.is(await asyncCodeOf(() => openInvitation(retoken(roleToReader), invitee)), 'BAD_SIGNATURE');
  t.is(await asyncCodeOf(() => readInvitation(retoken(bytes.subarray(0, bytes.length - 1)))), 'MALFORMED', 'truncated');
  t.is(await asyncCodeOf(() => readInvitation(retoken(Buffer.concat([bytes, Buffer.of(0)])))), 'MALFORMED', 'trailing');
  t.is(
    await asyncCodeOf(() => readInvitation(token.replace('e2ekv-invite1-', 'e2ekv-invite2-'))),
    'UNSUPPORTED_VERSION',
  );
  t.is(await asyncCodeOf(() => readInvitation(token.replace('e2ekv-invite1-', 'e2ekv-id1-'))), 'MALFORMED');
  t.is(await asyncCodeOf(() => readInvitation(token + '=')), 'MALFORMED', 'padding');
  t.is(
    await asyncCodeOf(() => readInvitation(token.slice(0, 20) + '+' + token.slice(21))),
    'MALFORMED',
    'standard alphabet',
  );
  t.is(await asyncCodeOf(() => readInvitation(token + '\n')), 'MALFORMED');
  t.is(await asyncCodeOf(() => readInvitation('e2ekv-invite1-' + 'A'.repeat(200_000))), 'TOO_LARGE');
});

test('non-canonical base64url (unused bits set) is NON_CANONICAL', async (t) => {
  const { token } = await setup();
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const payloadLength = Buffer.from(token.slice(14), 'base64url').length;
  if (payloadLength % 3 === 0) {
    t.pass('no unused bits at this length');
    return;
  }
  const last = alphabet.indexOf(token[token.length - 1]!);
  t.is(await asyncCodeOf(() => readInvitation(token.slice(0, -1) + alphabet[last | 1]!)), 'NON_CANONICAL');
});

test('hand-made invitations: each layout and key rule has its code', async (t) => {
  const { inviter, invitee } = await setup();
  const base = { inviter: inviter.signingKey, invitee: invitee.signingKey, inviteeBoxKey: invitee.boxKey };
  const read = async (f: Partial<HandMade>, signer = inviter.signer) =>
    asyncCodeOf(async () => readInvitation(await handMade(signer, { ...base, ...f })));
  const open = async (f: Partial<HandMade>) =>
    asyncCodeOf(async () => openInvitation(await handMade(inviter.signer, { ...base, ...f }), invitee));

  t.is(await open({}), 'ok');
  t.is(await read({ tag: 'e2ekv/v2/invitation\0' }), 'UNSUPPORTED_VERSION');
  t.is(await read({ tag: 'E2EKV/v1/invitation\0' }), 'MALFORMED');
  t.is(await read({ role: 0 }), 'MALFORMED');
  t.is(await read({ role: 4 }), 'MALFORMED');
  t.is(await read({ serverCount: 17, servers: Array.from({ length: 17 }, () => 'x') }), 'TOO_LARGE');
  t.is(await read({ servers: [''] }), 'MALFORMED', 'an empty server URL');
  t.is(await read({ servers: ['x'.repeat(1025)] }), 'TOO_LARGE');
  t.is(await read({ servers: ['x'.repeat(1024)] }), 'ok');
  t.is(await read({ serverCount: 2, servers: ['x'] }), 'MALFORMED', 'fewer servers than counted');
  t.is(await read({ sealed: new Uint8Array(77) }), 'MALFORMED', 'sealed too short for one secret');
  t.is(await read({ inviter: Uint8Array.of(1, ...new Uint8Array(31)) }), 'BAD_KEY', 'small-order inviter');
  t.is(await read({ invitee: Uint8Array.of(1, ...new Uint8Array(31)) }), 'BAD_KEY', 'small-order invitee');
  t.is(await read({ inviteeBoxKey: new Uint8Array(32), sealed: new Uint8Array(80) }), 'BAD_KEY', 'zero box key');
  t.is(await read({ inviter: invitee.signingKey }), 'BAD_SIGNATURE', 'signed by someone else than it names');
  t.is(await read({}, (await device(9)).signer), 'BAD_SIGNATURE');

  // The secrets inside: only the inviter can get these wrong.
  const s = (epoch: number, fill: number) => ({ epoch, secret: new Uint8Array(32).fill(fill) });
  t.is(await open({ plaintext: secretsPlaintext([]) }), 'MALFORMED', 'no secrets');
  t.is(await open({ plaintext: secretsPlaintext([s(1, 1)]) }), 'MALFORMED', 'no epoch 0');
  t.is(await open({ plaintext: secretsPlaintext([s(0, 1), s(2, 1), s(1, 1)]) }), 'MALFORMED', 'unsorted');
  t.is(await open({ plaintext: secretsPlaintext([s(0, 1), s(0, 1)]) }), 'MALFORMED', 'a pair twice');
  t.is(await open({ plaintext: secretsPlaintext([s(0, 2), s(0, 1)]) }), 'MALFORMED', 'one epoch unsorted');
  t.is(await open({ plaintext: secretsPlaintext([s(0, 1), s(0, 2)]) }), 'ok', 'one epoch twice, sorted');
  t.is(await open({ plaintext: secretsPlaintext([s(0, 1)], 2) }), 'MALFORMED', 'count beyond the plaintext');
  t.is(await open({ plaintext: Buffer.concat([secretsPlaintext([s(0, 1)]), Buffer.of(0)]) }), 'MALFORMED');
  t.is(await open({ vaultId: new Uint8Array(32).fill(1) }), 'ok', 'another vault, sealed for it');
  // Sealed for another vault or invitee, then signed: the wrap's context does not match.
  const sealedElsewhere = wrapSecretWithNonce(
    secretsPlaintext([s(0, 1)]),
    invitee.boxKey,
    { publicKey: x25519PublicKey(new Uint8Array(32).fill(0x33)), secretKey: new Uint8Array(32).fill(0x33) },
    { vaultId: new Uint8Array(32).fill(1), label: 'e2ekv/v1 invitation', extra: invitee.signingKey },
    new Uint8Array(24),
  );
  t.is(await open({ sealed: sealedElsewhere }), 'DECRYPT_FAILED');
});

test('createInvitation refuses bad arguments', async (t) => {
  const { options, invitee } = await setup();
  const code = async (o: Partial<CreateInvitationOptions>) => asyncCodeOf(() => createInvitation(options(o)));
  t.is(await code({ secrets: [] }), 'INVALID_ARGUMENT');
  t.is(await code({ secrets: [{ epoch: 1, secret: new Uint8Array(32) }] }), 'INVALID_ARGUMENT');
  t.is(await code({ secrets: [{ epoch: 0, secret: new Uint8Array(31) }] }), 'INVALID_ARGUMENT');
  t.is(await code({ secrets: [secrets[1]!, secrets[1]!] }), 'INVALID_ARGUMENT');
  t.is(await code({ servers: Array.from({ length: 17 }, () => 'https://r') }), 'TOO_LARGE');
  t.is(await code({ servers: [''] }), 'INVALID_ARGUMENT');
  t.is(await code({ invitee: { ...invitee, boxKey: new Uint8Array(32) } }), 'BAD_KEY');
  t.is(await code({ invitee: { ...invitee, signingKey: Uint8Array.of(1, ...new Uint8Array(31)) } }), 'BAD_KEY');
  t.is(await code({ vaultId: new Uint8Array(31) }), 'INVALID_ARGUMENT');
  const many = Array.from({ length: MAX_INVITATION_SECRETS + 1 }, (_, epoch) => ({
    epoch,
    secret: new Uint8Array(32),
  }));
  t.is(await code({ secrets: many }), 'TOO_LARGE');
  t.is(await code({ secrets: many.slice(0, MAX_INVITATION_SECRETS) }), 'ok');
  t.is(MAX_INVITATION_SECRETS, 1819);
});
