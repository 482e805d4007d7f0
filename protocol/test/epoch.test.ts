import test from 'ava';
import fc from 'fast-check';
import { compareBytes, toHex } from '../src/bytes.js';
import { ed25519PublicKeyFromSeed } from '../src/crypto/ed25519.js';
import { deriveEpochCheck } from '../src/crypto/kdf.js';
import { newEphemeralKeyPair, wrapSecret, x25519PublicKey } from '../src/crypto/wrap.js';
import { decodeEntry, encodeEntry, type EpochEntry } from '../src/entry.js';
import { epochWrapContext, openEpochRecord, sealEpochRecord, type SealEpochRecordOptions } from '../src/epoch.js';
import { codeOf } from '../../test/support/errors.js';

function member(n: number) {
  const boxSecret = new Uint8Array(32).fill(n);
  return {
    signingKey: ed25519PublicKeyFromSeed(new Uint8Array(32).fill(100 + n)),
    boxKey: x25519PublicKey(boxSecret),
    boxSecret,
  };
}

const [admin, alice, bob, outsider] = [member(1), member(2), member(3), member(4)];
const vaultId = new Uint8Array(32).fill(0x77);
const secret = new Uint8Array(32).fill(0x55);

function options(overrides: Partial<SealEpochRecordOptions> = {}): SealEpochRecordOptions {
  return {
    vaultId,
    device: admin.signingKey,
    index: 4n,
    epoch: 1,
    clock: { wallMs: 1_767_225_600_000n, counter: 0 },
    context: [],
    secret,
    recipients: [bob, admin, alice],
    ...overrides,
  };
}

test('every recipient opens S_e, sorted by member key; others get undefined', (t) => {
  const record = sealEpochRecord(options());
  t.is(record.type, 'epoch');
  t.deepEqual(
    record.recipients.map((r) => toHex(r.member)),
    [admin, alice, bob].map((m) => toHex(m.signingKey)).sort(),
  );
  t.is(toHex(record.check), toHex(deriveEpochCheck(secret, vaultId, 1)));
  const decoded = decodeEntry(encodeEntry(record)) as EpochEntry;
  for (const m of [admin, alice, bob]) t.is(toHex(openEpochRecord(decoded, m)!), toHex(secret));
  t.is(openEpochRecord(decoded, outsider), undefined);
});

test('seal and open round-trip for any secret, epoch and set of recipients', (t) => {
  const pool = [admin, alice, bob, outsider];
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.integer({ min: 1, max: 0xffffffff }),
      fc.subarray(pool, { minLength: 1 }),
      (s, epoch, recipients) => {
        const record = sealEpochRecord(options({ secret: s, epoch, recipients }));
        const decoded = decodeEntry(encodeEntry(record)) as EpochEntry;
        for (const m of pool) {
          const opened = openEpochRecord(decoded, m);
          t.is(opened === undefined ? undefined : toHex(opened), recipients.includes(m) ? toHex(s) : undefined);
        }
        for (let i = 1; i < decoded.recipients.length; i++) {
          t.true(compareBytes(decoded.recipients[i - 1]!.member, decoded.recipients[i]!.member) < 0);
        }
      },
    ),
    { numRuns: 25 },
  );
});

test('each record has its own ephemeral key and nonces', (t) => {
  const a = sealEpochRecord(options());
  const b = sealEpochRecord(options());
  t.not(toHex(a.ephemeral), toHex(b.ephemeral));
  t.not(toHex(a.recipients[0]!.wrapped), toHex(b.recipients[0]!.wrapped));
});

test('a wrap moved to another member, epoch or vault does not open', (t) => {
  const record = sealEpochRecord(options());
  const [first, second] = record.recipients as [EpochEntry['recipients'][0], EpochEntry['recipients'][0]];
  const swapped: EpochEntry = {
    ...record,
    recipients: [
      { member: first.member, wrapped: second.wrapped },
      { member: second.member, wrapped: first.wrapped },
      ...record.recipients.slice(2),
    ],
  };
  const firstMember = [admin, alice, bob].find((m) => toHex(m.signingKey) === toHex(first.member))!;
  t.is(
    codeOf(() => openEpochRecord(swapped, firstMember)),
    'DECRYPT_FAILED',
  );
  t.is(
    codeOf(() => openEpochRecord({ ...record, epoch: 2 }, admin)),
    'DECRYPT_FAILED',
    'replayed as epoch 2',
  );
  t.is(
    codeOf(() => openEpochRecord({ ...record, vaultId: new Uint8Array(32) }, admin)),
    'DECRYPT_FAILED',
  );
  const flipped = record.recipients.map((r) => ({ ...r, wrapped: r.wrapped.map((b, i) => (i === 30 ? b ^ 1 : b)) }));
  t.is(
    codeOf(() => openEpochRecord({ ...record, recipients: flipped }, alice)),
    'DECRYPT_FAILED',
  );
  t.is(
    codeOf(() => openEpochRecord(record, { ...alice, boxSecret: bob.boxSecret })),
    'DECRYPT_FAILED',
  );
});

test('a wrap that opens to a secret other than check(e) commits to is INTEGRITY', (t) => {
  const record = sealEpochRecord(options());
  const wrongCheck = record.check.map((b, i) => (i === 0 ? b ^ 1 : b));
  t.is(
    codeOf(() => openEpochRecord({ ...record, check: wrongCheck }, bob)),
    'INTEGRITY',
  );
  // A dishonest admin wraps another secret for alice only, under the record's own E.
  const ephemeral = newEphemeralKeyPair();
  const honest = sealEpochRecord(options());
  const context = epochWrapContext(vaultId, 1);
  const recipients = [admin, alice, bob]
    .map((m) => ({
      member: m.signingKey,
      wrapped: wrapSecret(m === alice ? new Uint8Array(32).fill(1) : secret, m.boxKey, ephemeral, context),
    }))
    .sort((a, b) => compareBytes(a.member, b.member));
  const forked: EpochEntry = { ...honest, ephemeral: ephemeral.publicKey, recipients };
  t.is(toHex(openEpochRecord(forked, bob)!), toHex(secret));
  t.is(
    codeOf(() => openEpochRecord(forked, alice)),
    'INTEGRITY',
  );
});

test('sealing refuses what no record may hold', (t) => {
  t.is(
    codeOf(() => sealEpochRecord(options({ epoch: 0 }))),
    'INVALID_ARGUMENT',
  );
  t.is(
    codeOf(() => sealEpochRecord(options({ epoch: 2 ** 32 }))),
    'INVALID_ARGUMENT',
  );
  t.is(
    codeOf(() => sealEpochRecord(options({ recipients: [] }))),
    'INVALID_ARGUMENT',
  );
  t.is(
    codeOf(() => sealEpochRecord(options({ recipients: [alice, bob, alice] }))),
    'INVALID_ARGUMENT',
  );
  t.is(
    codeOf(() => sealEpochRecord(options({ secret: new Uint8Array(31) }))),
    'INVALID_ARGUMENT',
  );
  t.is(
    codeOf(() => sealEpochRecord(options({ recipients: [{ ...alice, boxKey: new Uint8Array(32) }] }))),
    'BAD_KEY',
  );
  const many = Array.from({ length: 1025 }, (_, i) => ({
    signingKey: Uint8Array.of(i >> 8, i & 255, ...new Uint8Array(30)),
    boxKey: alice.boxKey,
  }));
  t.is(
    codeOf(() => sealEpochRecord(options({ recipients: many }))),
    'TOO_LARGE',
  );
});
