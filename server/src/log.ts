/**
 * Structured logs: one JSON object per line on stderr (stdout carries only the
 * "listening" line). Callers pass facts, never secrets; request bodies and
 * Authorization headers are never logged.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const order: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  log(level: LogLevel, message: string, fields?: Record<string, unknown>): void;
}

export function jsonLogger(
  minimum: LogLevel = 'info',
  write: (line: string) => void = (l) => process.stderr.write(l),
): Logger {
  return {
    log(level, message, fields = {}) {
      if (order[level] < order[minimum]) return;
      write(JSON.stringify({ time: new Date().toISOString(), level, msg: message, ...fields }) + '\n');
    },
  };
}

export const silentLogger: Logger = { log() {} };
