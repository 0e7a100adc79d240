import { Counter } from 'prom-client';
import type { Logger } from '../log.js';
import type { RedisClient } from './connection.js';

/**
 * Errors of the Redis connections this process watches, by connection name.
 * One counter for the process, which each program's /metrics registers: the
 * connections are made before, and apart from, the registry its API builds.
 */
export const redisConnectionErrors = new Counter({
  name: 'omega_redis_connection_errors_total',
  help: 'Errors of Redis connections (refused, reset, timed out), by connection',
  labelNames: ['connection'] as const,
  registers: [],
});

export interface RedisWatch {
  /** Errors seen since the watch began. */
  readonly errors: number;
  /** Whether the connection is failing now: an error since it was last ready. */
  readonly down: boolean;
}

export interface WatchOptions {
  /** While an outage lasts, at most one line this often, saying how many errors it did not log. */
  repeatMs?: number;
  now?: () => number;
}

const REPEAT_MS = 60_000;

/**
 * Count and log a connection's `error` events rather than drop them: the
 * first of an outage with its cause, then at most one line per `repeatMs`
 * while it lasts (ioredis retries about every second, each attempt an
 * error), and one line when the connection is ready again. Reconnecting is
 * ioredis's; this makes the outage seen. `name` labels the lines and the
 * counter (the connection's CLIENT SETNAME name, say).
 */
export function watchRedis(client: RedisClient, log: Logger, name: string, opts: WatchOptions = {}): RedisWatch {
  const repeatMs = opts.repeatMs ?? REPEAT_MS;
  const now = opts.now ?? Date.now;
  const state = { errors: 0, down: false };
  let downSince = 0;
  let lastLine = 0;
  let unlogged = 0;
  client.on('error', (err: Error) => {
    state.errors++;
    redisConnectionErrors.inc({ connection: name });
    const t = now();
    if (!state.down) {
      state.down = true;
      downSince = lastLine = t;
      unlogged = 0;
      log.error({ err, redis: name }, 'redis connection failed; retrying');
    } else if (t - lastLine >= repeatMs) {
      log.warn({ err, redis: name, downMs: t - downSince, errorsNotLogged: unlogged }, 'redis still unreachable');
      lastLine = t;
      unlogged = 0;
    } else {
      unlogged++;
    }
  });
  client.on('ready', () => {
    if (!state.down) return;
    state.down = false;
    log.info({ redis: name, downMs: now() - downSince }, 'redis connection back');
  });
  return state;
}
