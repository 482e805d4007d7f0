/**
 * Structured logs: one JSON object per line on stderr (stdout carries only the
 * "listening" line). Callers pass facts, never secrets; request bodies and
 * Authorization headers are never logged.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const order: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  log(level: LogLevel, message: string, fields?: Record<string, unknown>): void;
  /**
   * Whether a line at `level` would be written, so that callers on hot paths
   * build no fields for a line nobody keeps. A logger without it writes (or
   * drops) whatever it is given.
   */
  enabled?(level: LogLevel): boolean;
}

const ARRAY_INDEX = /^[0-9]+$/;

/**
 * The line JSON.stringify({ time, level, msg, ...fields }) gives, without
 * copying the fields into a new object (one line per request): the fields are
 * stringified on their own and joined after `msg`. Fields that would not land
 * after `msg` in that object, or not as themselves (one named time, level or
 * msg, an integer key, a toJSON method, anything but a plain object), take the
 * spread.
 */
export function formatLogLine(
  time: string,
  level: LogLevel,
  message: string,
  fields?: Record<string, unknown>,
): string {
  const head = `{"time":${JSON.stringify(time)},"level":${JSON.stringify(level)},"msg":${JSON.stringify(message)}`;
  if (fields === undefined) return head + '}';
  const proto: unknown = Object.getPrototypeOf(fields);
  const keys = Object.keys(fields);
  if (
    (proto !== Object.prototype && proto !== null) ||
    'time' in fields ||
    'level' in fields ||
    'msg' in fields ||
    'toJSON' in fields ||
    (keys.length > 0 && ARRAY_INDEX.test(keys[0]!))
  ) {
    return JSON.stringify({ time, level, msg: message, ...fields });
  }
  const rest = JSON.stringify(fields);
  return rest === '{}' ? head + '}' : head + ',' + rest.slice(1);
}

export function jsonLogger(
  minimum: LogLevel = 'info',
  write: (line: string) => void = (l) => process.stderr.write(l),
): Logger {
  const floor = order[minimum];
  return {
    enabled: (level) => order[level] >= floor,
    log(level, message, fields) {
      if (order[level] < floor) return;
      write(formatLogLine(new Date().toISOString(), level, message, fields) + '\n');
    },
  };
}

export const silentLogger: Logger = { log() {}, enabled: () => false };
