import test from 'ava';
import type { ExecutionContext } from 'ava';
import type { ErrorCode } from '@e2ekv/protocol';
import {
  E2ekvError,
  formatAuthorization,
  parseAuthorization,
  randomBytes,
  requestSignatureInput,
  signRequest,
  utf8,
} from '@e2ekv/protocol';
import { RequestAuthenticator } from '../src/auth.js';
import { TestDevice } from './support/writer.js';

const WINDOW = 5 * 60 * 1000;
const T0 = 1_800_000_000_000;

async function setup(options: { maxRememberedNonces?: number } = {}) {
  const clock = { now: T0 };
  const audience = randomBytes(32);
  const auth = new RequestAuthenticator({ audience, windowMs: WINDOW, now: () => clock.now, ...options });
  const device = await TestDevice.create();
  const body = utf8('{"start":0}');
  const request = { method: 'POST', path: '/v1/vaults/abc/logs/def/append?x=1', body };
  const sign = (overrides: { audience?: Uint8Array; at?: number } = {}) =>
    signRequest(
      device.signer,
      { audience: overrides.audience ?? audience, ...request },
      () => overrides.at ?? clock.now,
    );
  return { clock, audience, auth, device, request, sign };
}

async function refusal(t: ExecutionContext, promise: Promise<unknown>, code: ErrorCode) {
  const error = await t.throwsAsync(promise, { instanceOf: E2ekvError });
  t.is(error?.code, code, error?.message);
  return error!;
}

test('a request signed by a device for this server authenticates that device', async (t) => {
  const { auth, device, request, sign } = await setup();
  const result = await auth.authenticate({ ...request, authorization: await sign() });
  t.deepEqual(result.device, device.publicKey);
  t.is(result.deviceHex, device.hex);
  t.is(auth.rememberedNonces, 1);
});

test('a missing Authorization header is UNAUTHENTICATED and says what is needed', async (t) => {
  const { auth, request } = await setup();
  const error = await refusal(t, auth.authenticate({ ...request, authorization: undefined }), 'UNAUTHENTICATED');
  t.regex(error.message, /Authorization header/);
  await refusal(t, auth.authenticate({ ...request, authorization: '' }), 'UNAUTHENTICATED');
});

test('a malformed header is UNAUTHENTICATED with the parser message', async (t) => {
  const { auth, request, sign } = await setup();
  const good = await sign();
  for (const header of [
    'Bearer abc',
    good.replace('e2ekv-v1 ', 'e2ekv-v2 '),
    good.replace(',ts=', ', ts='),
    good.toUpperCase(),
    good + ' ',
  ]) {
    const error = await refusal(t, auth.authenticate({ ...request, authorization: header }), 'UNAUTHENTICATED');
    t.regex(error.message, /Authorization header must be/);
  }
  t.is(auth.rememberedNonces, 0);
});

test('timestamps outside the window either side are refused, with the skew in the message', async (t) => {
  const { auth, request, sign } = await setup();
  const old = await refusal(
    t,
    auth.authenticate({ ...request, authorization: await sign({ at: T0 - WINDOW - 1000 }) }),
    'UNAUTHENTICATED',
  );
  t.regex(old.message, /301 s behind this server's clock: check the device clock/);
  const future = await refusal(
    t,
    auth.authenticate({ ...request, authorization: await sign({ at: T0 + WINDOW + 1000 }) }),
    'UNAUTHENTICATED',
  );
  t.regex(future.message, /301 s ahead of/);
  // The edges of the window are inside it.
  await t.notThrowsAsync(auth.authenticate({ ...request, authorization: await sign({ at: T0 - WINDOW }) }));
  await t.notThrowsAsync(auth.authenticate({ ...request, authorization: await sign({ at: T0 + WINDOW }) }));
});

test('a signature for another server, body, path or method does not verify', async (t) => {
  const { auth, request, sign } = await setup();
  const header = await sign();
  await refusal(
    t,
    auth.authenticate({ ...request, authorization: await sign({ audience: randomBytes(32) }) }),
    'UNAUTHENTICATED',
  );
  await refusal(
    t,
    auth.authenticate({ ...request, body: utf8('{"start":1}'), authorization: header }),
    'UNAUTHENTICATED',
  );
  await refusal(t, auth.authenticate({ ...request, body: new Uint8Array(), authorization: header }), 'UNAUTHENTICATED');
  await refusal(
    t,
    auth.authenticate({ ...request, path: '/v1/vaults/abc/logs/def/append', authorization: header }),
    'UNAUTHENTICATED',
  );
  await refusal(t, auth.authenticate({ ...request, method: 'PUT', authorization: header }), 'UNAUTHENTICATED');
  await refusal(t, auth.authenticate({ ...request, method: 'post', authorization: header }), 'UNAUTHENTICATED');
  // A signature by another key under this device's name.
  const other = await TestDevice.create();
  const forged = parseAuthorization(
    await signRequest(other.signer, { audience: randomBytes(32), ...request }, () => T0),
  );
  const ours = parseAuthorization(header);
  await refusal(
    t,
    auth.authenticate({ ...request, authorization: formatAuthorization({ ...ours, signature: forged.signature }) }),
    'UNAUTHENTICATED',
  );
  // None of these were remembered: unauthenticated traffic cannot fill the nonce memory.
  t.is(auth.rememberedNonces, 0);
  await t.notThrowsAsync(auth.authenticate({ ...request, authorization: header }));
});

test('a replayed request is refused, also when both copies arrive together', async (t) => {
  const { auth, request, sign } = await setup();
  const header = await sign();
  await auth.authenticate({ ...request, authorization: header });
  const error = await refusal(t, auth.authenticate({ ...request, authorization: header }), 'UNAUTHENTICATED');
  t.regex(error.message, /replayed request/);

  const twin = await sign();
  const results = await Promise.allSettled([
    auth.authenticate({ ...request, authorization: twin }),
    auth.authenticate({ ...request, authorization: twin }),
  ]);
  t.deepEqual(results.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
  const rejected = results.find((r) => r.status === 'rejected');
  t.is((rejected?.reason as E2ekvError).code, 'UNAUTHENTICATED');
});

test('the same nonce from another device is not a replay', async (t) => {
  const { auth, audience, request, sign } = await setup();
  const first = parseAuthorization(await sign());
  await auth.authenticate({ ...request, authorization: formatAuthorization(first) });
  const other = await TestDevice.create();
  const timestampMs = BigInt(T0);
  const signature = await other.signer.sign(
    requestSignatureInput({ audience, device: other.publicKey, timestampMs, nonce: first.nonce, ...request }),
  );
  const header = formatAuthorization({ device: other.publicKey, timestampMs, nonce: first.nonce, signature });
  t.is((await auth.authenticate({ ...request, authorization: header })).deviceHex, other.hex);
});

test('a device key that fails the enrolment checks is UNAUTHENTICATED', async (t) => {
  const { auth, request } = await setup();
  // The identity point (small order): any signature verifies under it for some messages, so it is refused first.
  const identity = new Uint8Array(32);
  identity[0] = 1;
  const header = formatAuthorization({
    device: identity,
    timestampMs: BigInt(T0),
    nonce: randomBytes(16),
    signature: new Uint8Array(64),
  });
  const error = await refusal(t, auth.authenticate({ ...request, authorization: header }), 'UNAUTHENTICATED');
  t.regex(error.message, /small order/);
  // Not a curve point at all.
  const notPoint = formatAuthorization({
    device: Uint8Array.from({ length: 32 }, () => 0xff),
    timestampMs: BigInt(T0),
    nonce: randomBytes(16),
    signature: new Uint8Array(64),
  });
  await refusal(t, auth.authenticate({ ...request, authorization: notPoint }), 'UNAUTHENTICATED');
});

test('nonces are forgotten after twice the window, and a full memory refuses rather than forgets', async (t) => {
  const { auth, clock, request, sign } = await setup({ maxRememberedNonces: 2 });
  await auth.authenticate({ ...request, authorization: await sign() });
  clock.now += 1000;
  const second = await sign();
  await auth.authenticate({ ...request, authorization: second });
  const full = await refusal(t, auth.authenticate({ ...request, authorization: await sign() }), 'RATE_LIMITED');
  t.regex(full.message, /retry/);
  t.is(auth.rememberedNonces, 2);
  // A replay stays a replay when memory is full.
  await refusal(t, auth.authenticate({ ...request, authorization: second }), 'UNAUTHENTICATED');

  // The first nonce expires 2 x window after it arrived; the second one second later.
  clock.now = T0 + 2 * WINDOW;
  await auth.authenticate({ ...request, authorization: await sign() });
  t.is(auth.rememberedNonces, 2);
  await refusal(t, auth.authenticate({ ...request, authorization: await sign() }), 'RATE_LIMITED');
  clock.now = T0 + 2 * WINDOW + 1000;
  await auth.authenticate({ ...request, authorization: await sign() });
  t.is(auth.rememberedNonces, 2);
});

test('a remembered nonce outlives the window in which its request could be replayed', async (t) => {
  const { auth, clock, request, sign } = await setup();
  // Signed as far ahead as the window allows, so it stays acceptable for two windows.
  const header = await sign({ at: T0 + WINDOW });
  await auth.authenticate({ ...request, authorization: header });
  clock.now = T0 + 2 * WINDOW - 1;
  await refusal(t, auth.authenticate({ ...request, authorization: header }), 'UNAUTHENTICATED');
  clock.now = T0 + 2 * WINDOW + 1;
  const late = await refusal(t, auth.authenticate({ ...request, authorization: header }), 'UNAUTHENTICATED');
  t.regex(late.message, /behind/);
});

test('a large body (a 1,024-entry append is about 2 MB) authenticates, and one changed byte in it does not', async (t) => {
  const { auth, audience, device } = await setup();
  const body = new Uint8Array(2 * 1024 * 1024 + 7);
  for (let i = 0; i < body.length; i += 65536) body.set(randomBytes(Math.min(65536, body.length - i)), i);
  const request = { method: 'POST', path: '/v1/vaults/abc/logs/def/append', body };
  const header = await signRequest(device.signer, { audience, ...request }, () => T0);
  const altered = body.slice();
  altered[1_000_000] = altered[1_000_000]! ^ 1;
  await refusal(t, auth.authenticate({ ...request, body: altered, authorization: header }), 'UNAUTHENTICATED');
  const result = await auth.authenticate({ ...request, authorization: header });
  t.is(result.deviceHex, device.hex);
});
