/**
 * Minimal leveled logger. Library code logs through this (never `console` directly), writing
 * to stderr so stdout stays free for data (JSON Lines). The level comes from the CLI, which
 * reads `EDGEKD_LOG_LEVEL`; library code never reads the environment.
 */

export type LogLevel = 'error' | 'warn' | 'info' | 'debug' | 'silent';
const ORDER: Record<LogLevel, number> = { silent: -1, error: 0, warn: 1, info: 2, debug: 3 };

let current: LogLevel = 'info';
let sink: (line: string) => void = (line) => process.stderr.write(line + '\n');

/** Sets the global log level. */
export function setLogLevel(level: LogLevel): void {
  if (!(level in ORDER))
    throw new RangeError(`'level' must be one of ${Object.keys(ORDER).join(', ')}, got ${level}`);
  current = level;
}

/** Redirects log lines (tests capture them; the progress bar routes them above itself). */
export function setLogSink(fn: (line: string) => void): void {
  sink = fn;
}

function emit(level: LogLevel, msg: string): void {
  if (ORDER[level] <= ORDER[current]) sink(level === 'info' ? msg : `${level}: ${msg}`);
}

export const log = {
  error: (msg: string) => emit('error', msg),
  warn: (msg: string) => emit('warn', msg),
  info: (msg: string) => emit('info', msg),
  debug: (msg: string) => emit('debug', msg),
};
