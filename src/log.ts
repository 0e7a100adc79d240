import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

/**
 * Paths pino blanks before a line is written. Tokens reach logs through
 * config objects, request headers and error details; all are covered here so
 * no call site has to remember.
 */
export const REDACT_PATHS = [
  'token',
  '*.token',
  '*.*.token',
  'apiToken',
  '*.apiToken',
  'dnsToken',
  '*.dnsToken',
  'authorization',
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'password',
  '*.password',
  'redisUrl',
  '*.redisUrl',
];

export interface LogOptions {
  level?: string;
  /** Where lines go; tests pass a stream to read what was logged. */
  destination?: NodeJS.WritableStream | { write(chunk: string): void };
}

export function createLogger(service: string, opts: LogOptions = {}): Logger {
  const options: LoggerOptions = {
    level: opts.level ?? 'info',
    base: { service },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return opts.destination ? pino(options, opts.destination as pino.DestinationStream) : pino(options);
}

/** A URL (a Redis URL too, with several hosts) without its user:password@, for log lines. */
export { safeUrl } from './config/settings.js';
