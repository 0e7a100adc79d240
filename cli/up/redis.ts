import { once } from 'node:events';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRedis } from '../../src/redis/connection.js';
import type { ChildSpec } from './supervisor.js';

/** Whether a Redis answers PING at `url` within `timeoutMs`. */
export async function redisAnswers(url: string, timeoutMs = 1500): Promise<boolean> {
  let client;
  try {
    client = createRedis(url, { connectionName: 'omega-up' });
  } catch {
    return false;
  }
  client.on('error', () => {}); // a refused connection is the answer, not a crash
  try {
    const ready = once(client, 'ready').then(() => true);
    const late = new Promise<false>((r) => setTimeout(() => r(false), timeoutMs).unref());
    if (!(await Promise.race([ready, late]))) return false;
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

/**
 * A `redis-server` of our own for a redis:// URL on this machine, with its
 * data (an RDB snapshot) under the state directory. Anything else (another
 * machine, TLS, Sentinel, Cluster) must already answer.
 */
export function ownRedis(url: string, stateDir: string): ChildSpec | { error: string } {
  const u = new URL(url);
  const host = u.hostname || '127.0.0.1';
  if (u.protocol !== 'redis:' || !/^(127\.|localhost$|\[::1\]$)/.test(host)) {
    return { error: `no Redis answers at ${u.protocol}//${host}:${u.port || 6379}; omega up starts its own only for a redis:// URL on this machine` };
  }
  // A config file rather than flags: a password on the command line would show in `ps`.
  const conf = join(stateDir, 'redis.conf');
  const lines = [
    `port ${u.port || '6379'}`,
    `bind ${host.replace(/^\[|\]$/g, '')}`,
    `dir ${JSON.stringify(stateDir)}`,
    'dbfilename redis.rdb',
    'save 60 1',
    'appendonly no',
    'logfile ""',
    'loglevel warning',
    'daemonize no',
  ];
  if (u.password) lines.push(`requirepass ${JSON.stringify(decodeURIComponent(u.password))}`);
  writeFileSync(conf, lines.join('\n') + '\n', { mode: 0o600 });
  chmodSync(conf, 0o600);
  const args = [conf];
  return { name: 'redis', cmd: 'redis-server', args, env: { PATH: process.env.PATH }, stopGraceMs: 10_000 };
}
