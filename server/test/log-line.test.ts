/**
 * The JSON log line (log.ts) is built without copying the fields into a new
 * object; these check it is byte for byte the line the spread gave, and that a
 * level that is off costs no line.
 */
import test from 'ava';
import { formatLogLine, jsonLogger, silentLogger, type LogLevel } from '../src/log.js';

const TIME = '2026-12-03T18:00:00.000Z';

function spread(level: LogLevel, message: string, fields: Record<string, unknown> = {}): string {
  return JSON.stringify({ time: TIME, level, msg: message, ...fields });
}

test('the line is the one JSON.stringify of the spread gives', (t) => {
  const cases: [LogLevel, string, Record<string, unknown> | undefined][] = [
    ['info', 'request', { requestId: 'abc', method: 'POST', route: 'append', status: 200, ms: 1.234, device: 'ff' }],
    ['error', 'request failed', { requestId: 'x', error: 'Error: "quoted"\n', stack: undefined }],
    ['warn', 'no fields', undefined],
    ['debug', 'empty fields', {}],
    ['info', 'unicode \u2028 and "quotes" and \\', { nested: { a: [1, 2, { b: null }] }, s: '\u0000\ud800' }],
    ['info', 'undefined only', { gone: undefined }],
    ['info', 'undefined first', { gone: undefined, kept: 1 }],
    // Fields the fast path leaves to the spread: they would replace or reorder the head.
    ['info', 'shadowing', { msg: 'other', level: 'x', time: 'y', extra: true }],
    ['info', 'integer keys', { b: 1, 2: 'two', 1: 'one' }],
    ['info', 'toJSON', { toJSON: () => ({ replaced: true }), a: 1 }],
    ['info', 'null prototype', Object.assign(Object.create(null) as Record<string, unknown>, { a: 1, b: 'two' })],
  ];
  for (const [level, message, fields] of cases) {
    t.is(formatLogLine(TIME, level, message, fields), spread(level, message, fields), message);
  }
  // A class instance: its own fields, as the spread copies them.
  class Fields {
    a = 1;
    toJSON() {
      return { other: true };
    }
  }
  const instance = new Fields() as unknown as Record<string, unknown>;
  t.is(formatLogLine(TIME, 'info', 'instance', instance), spread('info', 'instance', instance));
  // What cannot be stringified still throws, as it did.
  t.throws(() => formatLogLine(TIME, 'info', 'bigint', { n: 1n }));
});

test('jsonLogger writes one line per call at or above its level, and says which levels are on', (t) => {
  const lines: string[] = [];
  const logger = jsonLogger('warn', (line) => lines.push(line));
  t.false(logger.enabled!('debug'));
  t.false(logger.enabled!('info'));
  t.true(logger.enabled!('warn'));
  t.true(logger.enabled!('error'));
  logger.log('info', 'dropped', { a: 1 });
  logger.log('warn', 'kept', { a: 1 });
  logger.log('error', 'kept too');
  t.is(lines.length, 2);
  t.true(lines.every((l) => l.endsWith('}\n') && !l.slice(0, -1).includes('\n')));
  const [first, second] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  t.deepEqual(Object.keys(first!), ['time', 'level', 'msg', 'a']);
  t.like(first, { level: 'warn', msg: 'kept', a: 1 });
  t.deepEqual(Object.keys(second!), ['time', 'level', 'msg']);
  t.false(Number.isNaN(Date.parse(first!['time'] as string)));
  t.false(silentLogger.enabled!('error'));
});
