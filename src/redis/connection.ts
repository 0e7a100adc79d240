import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';

/** A single Redis, a Sentinel-managed primary, or a Cluster: callers use the common command set. */
export type RedisClient = Redis | Cluster;

export interface RedisConnectOptions {
  /** Name shown in `CLIENT LIST`, to tell Omega's connections apart. */
  connectionName?: string;
  /**
   * Fail commands at once while disconnected instead of queueing them. APIs
   * want this (answer 503 now, not after a reconnect); background loops retry.
   */
  failFast?: boolean;
}

/**
 * Build an ioredis client from one URL:
 *   redis://[:password@]host:port[/db]         a single server (rediss:// for TLS)
 *   redis+sentinel://[:password@]h1:p1,h2:p2/primaryName[?db=N]
 *   redis+cluster://[:password@]h1:p1,h2:p2
 * Sentinel and Cluster are how Omega's state grows past one box; every key
 * Omega uses carries a hash tag so multi-key scripts stay in one slot.
 */
export function createRedis(url: string, opts: RedisConnectOptions = {}): RedisClient {
  // WHATWG URL rejects a comma list of hosts, so the authority of the
  // multi-host schemes is split off by hand and a placeholder parsed instead.
  const m = /^([a-z+]+:)\/\/(?:([^@/]*)@)?([^/?#]*)(.*)$/i.exec(url);
  if (!m) throw new Error('invalid Redis URL');
  const authority = m[3] ?? '';
  const u = new URL(`${m[1]}//${m[2] ? `${m[2]}@` : ''}${authority.includes(',') ? 'multi' : authority}${m[4] ?? ''}`);
  const password = u.password ? decodeURIComponent(u.password) : undefined;
  const username = u.username ? decodeURIComponent(u.username) : undefined;
  const common: RedisOptions = {
    connectionName: opts.connectionName,
    password,
    username,
    lazyConnect: false,
    // Reconnect forever with a capped backoff: Omega's servers keep serving
    // what they know while Redis is away, and resume when it is back.
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 5), 1000),
    ...(opts.failFast ? { enableOfflineQueue: false, maxRetriesPerRequest: 0 } : { maxRetriesPerRequest: null }),
  };
  const hosts = () =>
    authority.split(',').map((hp) => {
      const i = hp.lastIndexOf(':');
      return i > 0 ? { host: hp.slice(0, i), port: Number(hp.slice(i + 1)) } : { host: hp, port: 6379 };
    });
  switch (u.protocol) {
    case 'redis:':
    case 'rediss:': {
      const db = u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0;
      return new Redis({
        ...common,
        host: u.hostname || '127.0.0.1',
        port: u.port ? Number(u.port) : 6379,
        db,
        ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
      });
    }
    case 'redis+sentinel:': {
      const name = u.pathname.slice(1);
      if (!name) throw new Error('a redis+sentinel URL must name the primary: redis+sentinel://h:26379/mymaster');
      return new Redis({
        ...common,
        sentinels: hosts(),
        name,
        db: Number(u.searchParams.get('db') ?? 0),
      });
    }
    case 'redis+cluster:': {
      const clusterOpts: ClusterOptions = {
        redisOptions: { password, username, connectionName: opts.connectionName },
        enableOfflineQueue: !opts.failFast,
        clusterRetryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 5), 1000),
      };
      return new Cluster(hosts(), clusterOpts);
    }
    default:
      throw new Error(`unsupported Redis URL scheme ${u.protocol}`);
  }
}

/** Close a client without waiting on blocked commands (XREAD BLOCK) to return. */
export async function closeRedis(client: RedisClient): Promise<void> {
  if (client.status === 'end') return;
  try {
    await Promise.race([client.quit(), new Promise((r) => setTimeout(r, 500))]);
  } catch {
    // already closing
  }
  client.disconnect();
}
