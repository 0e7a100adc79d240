/**
 * A small JSON-lines logger to stderr with pino's call shape
 * (`log.info({ field }, 'message')`), so the worker bundle carries no pino.
 * Secrets are blanked by key name wherever they appear in the fields.
 */

export type Level = 'error' | 'warn' | 'info' | 'debug' | 'silent';
const RANK: Record<Level, number> = { error: 50, warn: 40, info: 30, debug: 20, silent: 100 };
const SECRET_KEYS = new Set(['token', 'claimsecret', 'authorization', 'cookie', 'password', 'secret']);

type LogFn = (fields: Record<string, unknown> | string, msg?: string) => void;
export interface WorkerLogger {
  error: LogFn;
  warn: LogFn;
  info: LogFn;
  debug: LogFn;
  child(fields: Record<string, unknown>): WorkerLogger;
}

function redact(value: unknown, depth = 0): unknown {
  if (value instanceof Error) return { type: value.name, message: value.message, code: (value as { code?: unknown }).code, stack: value.stack };
  if (value === null || typeof value !== 'object' || depth > 4) return value;
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = SECRET_KEYS.has(k.toLowerCase()) ? '[redacted]' : redact(v, depth + 1);
  return out;
}

export function createWorkerLogger(level: Level = 'info', write: (line: string) => void = (l) => process.stderr.write(l), base: Record<string, unknown> = { service: 'worker' }): WorkerLogger {
  const at = (name: Exclude<Level, 'silent'>): LogFn => {
    if (RANK[name] < RANK[level]) return () => {};
    return (fields, msg) => {
      const f = typeof fields === 'string' ? {} : (redact(fields) as Record<string, unknown>);
      const text = typeof fields === 'string' ? fields : msg;
      write(`${JSON.stringify({ level: name, time: new Date().toISOString(), ...base, ...f, msg: text })}\n`);
    };
  };
  return {
    error: at('error'),
    warn: at('warn'),
    info: at('info'),
    debug: at('debug'),
    child: (fields) => createWorkerLogger(level, write, { ...base, ...fields }),
  };
}

export const silentLogger = createWorkerLogger('silent');
