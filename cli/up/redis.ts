import { once } from 'node:events';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { safeUrl } from '../../src/log.js';
import { createRedis, type RedisClient } from '../../src/redis/connection.js';
import { isLoopbackHost, parseRedisUrl } from '../../src/redis/url.js';
import type { ChildSpec } from './supervisor.js';

/** `fn` on a connection to `url` once it is ready within `timeoutMs`; null when no Redis answers there (or fn fails). */
async function probe<T>(url: string, timeoutMs: number, fn: (client: RedisClient) => Promise<T>): Promise<T | null> {
  let client;
  try {
    client = createRedis(url, { connectionName: 'omega-up' });
  } catch {
    return null;
  }
  client.on('error', () => {}); // a refused connection is the answer, not a crash
  try {
    const ready = once(client, 'ready').then(() => true);
    const late = new Promise<false>((r) => setTimeout(() => r(false), timeoutMs).unref());
    if (!(await Promise.race([ready, late]))) return null;
    return await fn(client);
  } catch {
    return null;
  } finally {
    client.disconnect();
  }
}

/** Whether a Redis answers PING at `url` within `timeoutMs`. */
export async function redisAnswers(url: string, timeoutMs = 1500): Promise<boolean> {
  return (await probe(url, timeoutMs, async (c) => (await c.ping()) === 'PONG')) ?? false;
}

/**
 * What the Redis at `url` says of itself (INFO server): its pid and the
 * config file it was started with, by which `omega up` knows a redis-server
 * it started (its redis.conf is in the state directory). Null when it does
 * not answer, or is not a single server.
 */
export async function redisServer(url: string, timeoutMs = 1500): Promise<{ pid: number; configFile: string } | null> {
  return probe(url, timeoutMs, async (c) => {
    if (!(c instanceof Redis)) return null;
    const info = await c.info('server');
    const field = (name: string) => new RegExp(`^${name}:(.*)$`, 'm').exec(info)?.[1]?.trim() ?? '';
    return { pid: Number(field('process_id')), configFile: field('config_file') };
  });
}

/**
 * SHUTDOWN SAVE the redis-server at `url` (its data is kept in its RDB
 * file, for the next one to load) and wait until it no longer answers.
 * Rejects with Redis's refusal (it could not save) or when it still answers
 * after `timeoutMs`.
 */
export async function shutdownRedis(url: string, timeoutMs = 10_000): Promise<void> {
  // No reconnects and no resending: the connection is meant to drop as the server exits.
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, autoResendUnfulfilledCommands: false });
  client.on('error', () => {}); // the drop is the answer
  try {
    await client.connect();
    await client.call('SHUTDOWN', 'SAVE').catch((err: Error) => {
      // A reply is a refusal ("Errors trying to SHUTDOWN"); a closed connection is the shutdown.
      if (/^ERR/.test(err.message)) throw new Error(`the redis-server refused SHUTDOWN SAVE: ${err.message}`, { cause: err });
    });
  } finally {
    client.disconnect();
  }
  const deadline = Date.now() + timeoutMs;
  while (await redisAnswers(url, 500)) {
    if (Date.now() > deadline) throw new Error(`the redis-server still answers ${timeoutMs} ms after SHUTDOWN SAVE`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The config file of `omega up`'s own redis-server: how it knows one it started (INFO server names it). */
export function redisConfPath(stateDir: string): string {
  return join(stateDir, 'redis.conf');
}

/**
 * A `redis-server` of our own for a redis:// URL on this machine, with its
 * data (an RDB snapshot) under the state directory. Anything else (another
 * machine, TLS, Sentinel, Cluster) must already answer.
 */
export function ownRedis(url: string, stateDir: string): ChildSpec | { error: string } {
  const u = parseRedisUrl(url);
  const { host, port } = u.hosts[0]!;
  if (u.scheme !== 'redis:' || !isLoopbackHost(host)) {
    return { error: `no Redis answers at ${safeUrl(url)}; omega up starts its own only for a redis:// URL on this machine` };
  }
  // A config file rather than flags: a password on the command line would show in `ps`.
  const conf = redisConfPath(stateDir);
  const lines = [
    `port ${port}`,
    `bind ${host}`,
    `dir ${JSON.stringify(stateDir)}`,
    'dbfilename redis.rdb',
    'save 60 1',
    'appendonly no',
    'logfile ""',
    'loglevel warning',
    'daemonize no',
  ];
  if (u.password) lines.push(`requirepass ${JSON.stringify(u.password)}`);
  writeFileSync(conf, lines.join('\n') + '\n', { mode: 0o600 });
  chmodSync(conf, 0o600);
  const args = [conf];
  return { name: 'redis', cmd: 'redis-server', args, env: { PATH: process.env.PATH }, stopGraceMs: 10_000 };
}
