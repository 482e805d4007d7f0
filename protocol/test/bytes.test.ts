import test from 'ava';
import fc from 'fast-check';
import {
  ByteReader,
  ByteWriter,
  compareBytes,
  constantTimeEqual,
  fromBase64,
  fromHex,
  fromUtf8,
  isWellFormedString,
  MAX_I64,
  parseDecimal,
  toBase64,
  toHex,
} from '../src/bytes.js';

test('base64 matches the platform encoder and round-trips', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      const text = toBase64(bytes);
      t.is(text, Buffer.from(bytes).toString('base64'));
      t.deepEqual(fromBase64(text), bytes);
    }),
  );
});

test('hex round-trips and only lowercase is accepted', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => {
      t.deepEqual(fromHex(toHex(bytes)), bytes);
    }),
  );
  t.is(t.throws(() => fromHex('AB'))?.message, 'hex string is not lowercase hex of whole bytes');
  t.throws(() => fromHex('abc'));
});

test('strict base64 rejects every other spelling', (t) => {
  const code = (text: string) => {
    try {
      fromBase64(text);
      return 'accepted';
    } catch (error) {
      return (error as { code: string }).code;
    }
  };
  t.is(code('AQ=='), 'accepted');
  t.is(code('AR=='), 'NON_CANONICAL'); // non-zero trailing bits
  t.is(code('AQI='), 'accepted');
  t.is(code('AQJ='), 'NON_CANONICAL');
  t.is(code('AQ'), 'MALFORMED'); // missing padding
  t.is(code('AQ=\n'), 'MALFORMED');
  t.is(code('A Q='), 'MALFORMED');
  t.is(code('-_=='), 'MALFORMED'); // URL-safe alphabet
  t.is(code('A==='), 'MALFORMED');
  t.is(code('=AAA'), 'MALFORMED');
  t.is(code('AA=A'), 'MALFORMED');
  t.is(code('é==='), 'MALFORMED');
});

test('strict base64 rejects random non-canonical mutations of canonical text', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 1, maxLength: 50 }), fc.nat(), (bytes, seed) => {
      const text = toBase64(bytes);
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
      const i = seed % text.length;
      const replacement = alphabet[(alphabet.indexOf(text[i]!) + 1 + (seed % 63)) % 64] ?? 'A';
      const mutated = text.slice(0, i) + replacement + text.slice(i + 1);
      if (text[i] === '=') return; // padding positions are covered above
      try {
        const decoded = fromBase64(mutated);
        // A mutation that still decodes must decode to different bytes.
        t.notDeepEqual(decoded, bytes);
      } catch (error) {
        t.true(['NON_CANONICAL', 'MALFORMED'].includes((error as { code: string }).code));
      }
    }),
  );
});

test('strict UTF-8 rejects invalid sequences', (t) => {
  t.is(fromUtf8(Uint8Array.of(0xe2, 0x80, 0x94)), '—');
  for (const bad of [[0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xe2, 0x80]]) {
    t.is(t.throws(() => fromUtf8(Uint8Array.from(bad)))?.message, 'text is not valid UTF-8');
  }
  t.true(isWellFormedString('a😀b'));
  t.false(isWellFormedString('a\ud800b'));
  t.false(isWellFormedString('\udc00'));
});

test('decimals: no leading zeros, no sign, bounded', (t) => {
  t.is(parseDecimal('0', MAX_I64, 'n'), 0n);
  t.is(parseDecimal('9223372036854775807', MAX_I64, 'n'), MAX_I64);
  t.is(t.throws(() => parseDecimal('9223372036854775808', MAX_I64, 'n'))?.message.includes('exceeds'), true);
  for (const [text, code] of [
    ['007', 'NON_CANONICAL'],
    ['00', 'NON_CANONICAL'],
    ['-1', 'MALFORMED'],
    ['+1', 'MALFORMED'],
    ['1e3', 'MALFORMED'],
    ['', 'MALFORMED'],
    [' 1', 'MALFORMED'],
    ['18446744073709551616', 'MALFORMED'],
  ] as const) {
    t.is((t.throws(() => parseDecimal(text, MAX_I64, 'n')) as { code?: string })?.code, code, text);
  }
});

test('ByteWriter and ByteReader round-trip every field type and reject truncation and trailing bytes', (t) => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 255 }),
      fc.integer({ min: 0, max: 65535 }),
      fc.integer({ min: 0, max: 0xffffffff }),
      fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
      fc.uint8Array({ maxLength: 300 }),
      (a, b, c, d, v) => {
        const bytes = new ByteWriter().u8(a).u16(b).u32(c).u64(d).vec16(v, 'v').vec32(v).finish();
        const r = new ByteReader(bytes, 'test');
        t.is(r.u8('a'), a);
        t.is(r.u16('b'), b);
        t.is(r.u32('c'), c);
        t.is(r.u64('d'), d);
        t.deepEqual(r.vec16('v'), v);
        t.deepEqual(r.vec32('v'), v);
        t.notThrows(() => r.end());
        const truncated = new ByteReader(bytes.subarray(0, bytes.length - 1), 'test');
        t.throws(() => {
          truncated.u8('a');
          truncated.u16('b');
          truncated.u32('c');
          truncated.u64('d');
          truncated.vec16('v');
          truncated.vec32('v');
        });
      },
    ),
  );
  const r = new ByteReader(Uint8Array.of(1, 2), 'thing');
  r.u8('x');
  t.is(t.throws(() => r.end())?.message, 'thing has 1 trailing bytes');
  t.throws(() => new ByteWriter().u16(65536));
  t.throws(() => new ByteWriter().u64(-1n));
});

test('comparisons', (t) => {
  t.true(constantTimeEqual(Uint8Array.of(1, 2), Uint8Array.of(1, 2)));
  t.false(constantTimeEqual(Uint8Array.of(1, 2), Uint8Array.of(1, 3)));
  t.false(constantTimeEqual(Uint8Array.of(1), Uint8Array.of(1, 0)));
  t.true(compareBytes(Uint8Array.of(1), Uint8Array.of(1, 0)) < 0);
  t.true(compareBytes(Uint8Array.of(2), Uint8Array.of(1, 9)) > 0);
  t.is(compareBytes(Uint8Array.of(), Uint8Array.of()), 0);
});
