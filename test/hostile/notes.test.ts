/**
 * Hostile replica, malformed signed notes: every spelling SPEC.md sections 10
 * and 11 forbid, served as the checkpoint of an entries page. The protocol
 * package names each rule (MALFORMED, NON_CANONICAL, TOO_LARGE); the SDK reports
 * a checkpoint that does not even parse as INTEGRITY (a broken answer), with the
 * rule in its message and the protocol's error as its cause. Rules about the
 * checkpoint body can only be reached by a note the device really signed, so
 * those rows have the test play the device (a faulty or hostile member).
 */
import test, { type ExecutionContext } from 'ava';
import { E2ekvError, toBase64, type ErrorCode } from '../../protocol/src/index.js';
import { createClient, createIdentity, publicIdentity, type Identity, type Vault } from '../../sdk/src/index.js';
import { HostileReplica, hex, rejects, sharedServer, signLogAs, type EntriesJson } from '../support/hostile-replica.js';

const server = sharedServer(test);

interface Scene {
  replica: HostileReplica;
  vaultId: string;
  alice: { identity: Identity; hex: string };
  bob: { hex: string; vault: Vault };
}

/** Alice adds reader Bob and sets k; Bob pins her log at 2; Alice writes twice more. */
async function scene(t: ExecutionContext): Promise<Scene> {
  const replica = await HostileReplica.start(server());
  t.teardown(() => replica.close());
  const [aliceId, bobId] = [createIdentity(), createIdentity()];
  const { vault: a, access } = await (await createClient({ identity: aliceId, servers: [replica.url] })).createVault();
  await a.addMember(publicIdentity(bobId), 'reader');
  await a.set('k', 'v1');
  const b = await (await createClient({ identity: bobId, servers: [replica.url] })).openVault(access);
  await a.set('k', 'v2');
  await a.set('k', 'v3');
  return {
    replica,
    vaultId: access.vaultId,
    alice: { identity: aliceId, hex: hex(publicIdentity(aliceId).signingKey) },
    bob: { hex: hex(publicIdentity(bobId).signingKey), vault: b },
  };
}

/** Checks Bob's read is refused as `code` (caused by the protocol's `cause`), and nothing moved. */
async function refused(
  t: ExecutionContext,
  s: Scene,
  changed: () => number,
  code: ErrorCode,
  cause: ErrorCode | undefined,
  message: RegExp,
): Promise<void> {
  const error = await rejects(t, s.bob.vault.get('k', { read: 'one' }), code, message);
  if (cause !== undefined) {
    t.true(error.cause instanceof E2ekvError, 'the protocol error is the cause');
    t.is((error.cause as E2ekvError).code, cause);
  }
  t.true(changed() > 0, 'the attack changed what the client received');
  t.is(await s.bob.vault.get('k'), 'v1');
  t.is(s.bob.vault.status().logs.find((l) => l.device === s.alice.hex)?.entries, 2);
}

const malformed = test.macro({
  async exec(
    t,
    edit: (note: string, s: Scene) => string | Promise<string>,
    code: ErrorCode,
    cause: ErrorCode | undefined,
    message: RegExp,
  ) {
    const s = await scene(t);
    const hook = s.replica.rewriteEntriesCheckpoint({ log: s.alice.hex, client: s.bob.hex }, (note) => edit(note, s));
    await refused(t, s, () => hook.changed, code, cause, message);
  },
  title: (title = '', _edit: unknown, code: ErrorCode, cause: ErrorCode | undefined) =>
    `a checkpoint note with ${title} is ${code}${cause === undefined ? '' : ` (${cause})`}`,
});

const doesNotVerify = (inner: string) =>
  new RegExp(`sent a checkpoint of device [0-9a-f]{16} that does not verify \\(.*${inner}.*\\): use another replica`);

/** Signature lines of a note (everything after the blank line), and what comes before. */
function split(note: string): { text: string; lines: string[] } {
  const at = note.lastIndexOf('\n\n');
  return { text: note.slice(0, at + 1), lines: note.slice(at + 2, -1).split('\n') };
}

const join = (text: string, lines: readonly string[]) => `${text}\n${lines.join('\n')}\n`;

/**
 * Base64 of 3n + 2 bytes ends in one '=' after a character with 2 unused bits,
 * zero in the canonical spelling: set one and the bytes stay the same.
 */
function nonCanonical(base64: string): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  if (!/[^=]=$/.test(base64)) throw new Error('expected base64 ending in one padding character');
  return `${base64.slice(0, -2)}${alphabet[alphabet.indexOf(base64.at(-2)!) + 1]!}=`;
}

// Note-level rules: checked before any signature, so a replica alone can break them.

test(
  'CRLF line endings',
  malformed,
  (note) => note.replace(/\n/g, '\r\n'),
  'INTEGRITY',
  'MALFORMED',
  doesNotVerify('control character U\\+000D .*a CR: lines end with LF only'),
);
test(
  'a control character in the text',
  malformed,
  (note) => note.replace('\n', '\u0001\n'),
  'INTEGRITY',
  'MALFORMED',
  doesNotVerify('control character U\\+0001'),
);
test(
  'a TAB in a signature line',
  malformed,
  (note) => {
    const { text, lines } = split(note);
    return join(text, [lines[0]!.replace(' ', '\t'), ...lines.slice(1)]);
  },
  'INTEGRITY',
  'MALFORMED',
  doesNotVerify('control character U\\+0009'),
);
test(
  'an unpaired surrogate',
  malformed,
  (note) => note.replace('e2ekv/v1/', 'e2ekv/v1/\ud800'),
  'INTEGRITY',
  'MALFORMED',
  doesNotVerify('unpaired surrogate'),
);
test(
  'a duplicated signature line',
  malformed,
  (note) => {
    const { text, lines } = split(note);
    return join(text, [...lines, lines[0]!]);
  },
  'INTEGRITY',
  'MALFORMED',
  doesNotVerify('two signatures by the same key'),
);
test(
  '33 signature lines',
  malformed,
  (note) => {
    const { text, lines } = split(note);
    const others = Array.from(
      { length: 31 },
      (_, i) => `\u2014 other${i}.example ${toBase64(new Uint8Array(68).fill(i))}`,
    );
    return join(text, [...lines, ...others]);
  },
  'INTEGRITY',
  'TOO_LARGE',
  doesNotVerify('33 signatures, more than 32'),
);
test(
  'more than 16384 bytes',
  malformed,
  (note) => {
    const { text, lines } = split(note);
    return join(text, [...lines, `\u2014 big.example ${toBase64(new Uint8Array(12_300))}`]);
  },
  'INTEGRITY',
  'TOO_LARGE',
  doesNotVerify('larger than 16384 bytes'),
);
test(
  'non-canonical base64 in a signature (non-zero trailing bits)',
  malformed,
  (note) => {
    const { text, lines } = split(note);
    // 68 bytes encode to 92 characters ending in one '=': the character before it has 2 unused bits.
    return join(text, [nonCanonical(lines[0]!), ...lines.slice(1)]);
  },
  'INTEGRITY',
  'NON_CANONICAL',
  doesNotVerify('not canonical base64'),
);
test(
  'base64 without its padding',
  malformed,
  (note) => {
    const { text, lines } = split(note);
    return join(text, [lines[0]!.replace(/=+$/, ''), ...lines.slice(1)]);
  },
  'INTEGRITY',
  'MALFORMED',
  doesNotVerify('not padded base64'),
);
test(
  'a hyphen for the em dash',
  malformed,
  (note) => note.replace('\u2014', '-'),
  'INTEGRITY',
  'MALFORMED',
  doesNotVerify('does not start with an em dash'),
);
test(
  'no blank line before the signatures',
  malformed,
  (note) => note.replace('\n\n', '\n'),
  'INTEGRITY',
  'MALFORMED',
  doesNotVerify('no blank line before its signatures'),
);
test(
  'no final newline',
  malformed,
  (note) => note.slice(0, -1),
  'INTEGRITY',
  'MALFORMED',
  doesNotVerify('does not end with a newline'),
);

// Checkpoint-body rules: checked after the device's signature, so only a note
// the device signed reaches them. The test signs as Alice, the replica cosigns.

/** A checkpoint text Alice signs, from the lines of the current one, cosigned by the replica. */
function signedBody(edit: (origin: string, size: string, root: string) => string) {
  return async (note: string, s: Scene) => {
    const [origin, size, root] = split(note).text.split('\n') as [string, string, string];
    return s.replica.cosign(await signLogAs(s.alice.identity, s.vaultId, { text: edit(origin, size, root) }));
  };
}

test(
  'a tree size with a leading zero',
  malformed,
  signedBody((o, n, r) => `${o}\n0${n}\n${r}\n`),
  'INTEGRITY',
  'NON_CANONICAL',
  doesNotVerify('checkpoint tree size has leading zeros'),
);
test(
  'a tree size of 2^63',
  malformed,
  signedBody((o, _n, r) => `${o}\n9223372036854775808\n${r}\n`),
  'INTEGRITY',
  'MALFORMED',
  doesNotVerify('exceeds the maximum'),
);
test(
  'a tree size of 2^64',
  malformed,
  signedBody((o, _n, r) => `${o}\n18446744073709551616\n${r}\n`),
  'INTEGRITY',
  'MALFORMED',
  doesNotVerify('exceeds the maximum'),
);
test(
  'a tree size of 21 digits',
  malformed,
  signedBody((o, _n, r) => `${o}\n100000000000000000000\n${r}\n`),
  'INTEGRITY',
  'MALFORMED',
  doesNotVerify('out of range'),
);
test(
  'a negative tree size',
  malformed,
  signedBody((o, _n, r) => `${o}\n-4\n${r}\n`),
  'INTEGRITY',
  'MALFORMED',
  doesNotVerify('not a decimal number'),
);
test(
  'a root hash of 31 bytes',
  malformed,
  signedBody((o, n) => `${o}\n${n}\n${toBase64(new Uint8Array(31))}\n`),
  'INTEGRITY',
  'MALFORMED',
  doesNotVerify('root hash is 31 bytes, not 32'),
);
test(
  'a root hash in non-canonical base64',
  malformed,
  signedBody((o, n, r) => `${o}\n${n}\n${nonCanonical(r)}\n`),
  'INTEGRITY',
  'NON_CANONICAL',
  doesNotVerify('not canonical base64'),
);
test(
  'an extension line',
  malformed,
  signedBody((o, n, r) => `${o}\n${n}\n${r}\nextra\n`),
  'INTEGRITY',
  'MALFORMED',
  doesNotVerify('must not have extension lines'),
);
test(
  'an origin in uppercase hex (signed under the real key name)',
  malformed,
  signedBody((o, n, r) => `${o.toUpperCase().replace('E2EKV/V1/', 'e2ekv/v1/')}\n${n}\n${r}\n`),
  'INTEGRITY',
  undefined,
  doesNotVerify('signed a checkpoint of another origin'),
);

test('a checkpoint note with a tree size of 2^63 - 1 (valid, but more than a client can hold) is INTEGRITY', async (t) => {
  const s = await scene(t);
  const hook = s.replica.rewriteEntriesCheckpoint({ log: s.alice.hex, client: s.bob.hex }, (note) =>
    signedBody((o, _n, r) => `${o}\n9223372036854775807\n${r}\n`)(note, s),
  );
  await refused(
    t,
    s,
    () => hook.changed,
    'INTEGRITY',
    undefined,
    /claims 9223372036854775807 entries, more than a client can hold/,
  );
});

test('a checkpoint note whose answer is not UTF-8 is INTEGRITY', async (t) => {
  const s = await scene(t);
  const hook = s.replica.intercept(
    { route: 'entries', log: s.alice.hex, client: s.bob.hex },
    async (_request, forward) => {
      const answer = await forward();
      // The em dash of the first signature line (E2 80 94), its lead byte made invalid.
      const at = answer.body.indexOf(Buffer.from('\u2014', 'utf8'));
      const body = Buffer.from(answer.body);
      body[at] = 0xff;
      return { ...answer, body };
    },
  );
  await refused(t, s, () => hook.changed, 'INTEGRITY', undefined, /sent a malformed answer/);
});

test('a checkpoint note with 30 signature lines of unknown keys is accepted (they are ignored)', async (t) => {
  const s = await scene(t);
  const hook = s.replica.rewriteEntriesCheckpoint({ log: s.alice.hex, client: s.bob.hex }, (note) => {
    const { text, lines } = split(note);
    const others = Array.from(
      { length: 30 },
      (_, i) => `\u2014 other${i}.example ${toBase64(new Uint8Array(68).fill(i))}`,
    );
    return join(text, [...lines, ...others]);
  });
  t.is(await s.bob.vault.get('k', { read: 'one' }), 'v3');
  t.true(hook.changed > 0);
});

test('harness: the notes the page carries parse as the tests expect', async (t) => {
  const s = await scene(t);
  await s.bob.vault.get('k', { read: 'one' });
  const page = s.replica.recorded({ route: 'entries', log: s.alice.hex, client: s.bob.hex }).at(-1)!;
  const { lines } = split((JSON.parse(page.answer.body.toString('utf8')) as EntriesJson).checkpoint);
  t.is(lines.length, 2);
  t.regex(lines[0]!, /^\u2014 e2ekv\/v1\/[0-9a-f]{64}\/[0-9a-f]{64} [A-Za-z0-9+/]{90}[A-Za-z0-9+/]=$/);
});
