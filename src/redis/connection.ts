import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { parseRedisUrl } from './url.js';

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

/** Reconnect delay: 100 ms, 200 ms, ... at most 1 s, forever. */
const backoff = (times: number) => Math.min(50 * 2 ** Math.min(times, 5), 1000);

/**
 * Build an ioredis client from one URL (the forms: src/redis/url.ts).
 * Sentinel and Cluster are how Omega's state grows past one box; every key
 * Omega uses carries a hash tag so multi-key scripts stay in one slot.
 */
export function createRedis(url: string, opts: RedisConnectOptions = {}): RedisClient {
  const u = parseRedisUrl(url);
  const common: RedisOptions = {
    connectionName: opts.connectionName,
    password: u.password,
    username: u.username,
    lazyConnect: false,
    // Reconnect forever with a capped backoff: Omega's servers keep serving
    // what they know while Redis is away, and resume when it is back.
    retryStrategy: backoff,
    ...(opts.failFast ? { enableOfflineQueue: false, maxRetriesPerRequest: 0 } : { maxRetriesPerRequest: null }),
  };
  switch (u.scheme) {
    case 'redis:':
    case 'rediss:':
      return new Redis({ ...common, ...u.hosts[0]!, db: u.db, ...(u.tls ? { tls: {} } : {}) });
    case 'redis+sentinel:':
      return new Redis({
        ...common,
        sentinels: u.hosts,
        name: u.sentinelName,
        db: u.db,
        // Every reconnect asks the sentinels for the primary again, and the
        // ready check (role: 'master') refuses a server that is a replica now.
        // A demoted primary that is still up loses its clients to the
        // sentinels' CLIENT KILL, so the reconnect finds the new one.
        role: 'master',
        // Not ioredis' failoverDetector: its +switch-master handler
        // disconnects the connector, and when that lands while a reconnect is
        // resolving the primary (the usual case when the primary died), the
        // client ends for good ("Connection is closed." for every command):
        // 5 of 30 clients in one failover here.
        failoverDetector: false,
        // All sentinels unreachable: keep asking, with the same capped backoff.
        sentinelRetryStrategy: backoff,
        // A command that reaches a demoted primary did nothing: reconnect (to
        // the primary the sentinels name now) and send it again.
        reconnectOnError: (err) => (err.message.startsWith('READONLY') ? 2 : false),
      });
    case 'redis+cluster:': {
      const clusterOpts: ClusterOptions = {
        redisOptions: { password: u.password, username: u.username, connectionName: opts.connectionName },
        enableOfflineQueue: !opts.failFast,
        clusterRetryStrategy: backoff,
      };
      return new Cluster(u.hosts, clusterOpts);
    }
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

/** Resolve once the client is connected (or ended), or after `timeoutMs` whatever its state. */
export function whenReady(client: RedisClient, timeoutMs: number): Promise<void> {
  if (client.status === 'ready' || client.status === 'end') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      client.off('ready', done);
      client.off('end', done);
      resolve();
    };
    const timer = setTimeout(done, timeoutMs);
    client.once('ready', done);
    client.once('end', done);
  });
}

/**
 * WAIT until `n` replicas have every write this client made before it, or
 * `timeoutMs` passes; resolves with how many have them (fewer than `n` after
 * a timeout). With `n` 0 it sends nothing and resolves 0. WAIT counts the
 * writes of one connection to one primary, so on a Cluster it goes to the
 * node serving `key` (the key just written), on the connection the client
 * wrote it on; a pipeline that also reads the key takes it there.
 *
 * Replication is asynchronous: a write the primary acknowledged is lost if
 * the primary dies before a replica has it and the replica is promoted.
 * After WAIT returned n, a failover to one of those n replicas keeps it.
 */
export async function waitReplicas(client: RedisClient, n: number, timeoutMs: number, key?: string): Promise<number> {
  if (n <= 0) return 0;
  if (client instanceof Cluster) {
    if (key === undefined) throw new Error('waitReplicas on a Cluster needs the key whose primary to ask');
    const res = await client.pipeline().exists(key).call('WAIT', n, timeoutMs).exec();
    const [err, replicas] = res?.[1] ?? [new Error('WAIT got no reply')];
    if (err) throw err;
    return Number(replicas);
  }
  return Number(await client.call('WAIT', n, timeoutMs));
}

/** Replies that mean "not now" (a failover under way, a replica loading, a cluster without a majority), not a bad command. */
const UNAVAILABLE_REPLY = /^(?:READONLY|LOADING|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|NOREPLICAS)\b/;
/**
 * What ioredis rejects a command with when it has no connection to send it
 * on, or lost the one it was sent on. Matched on ioredis' own wording (not on
 * errno codes: a Docker or HTTP ECONNREFUSED is no Redis outage).
 */
const UNAVAILABLE_MESSAGE =
  /^(?:Connection is closed\.$|Stream isn't writeable and enableOfflineQueue|Cluster isn't ready and enableOfflineQueue|Cluster is (?:disconnected|disconnecting|ended)\.$|Command aborted due to connection close$|None of startup nodes is available$|Too many Cluster redirections|Failed to refresh slots cache|All sentinels are unreachable)/;

/**
 * Whether `err` (or an error in its cause chain) says Redis cannot be reached
 * right now: no connection, a connection lost with the command on it, a
 * failover under way. An API answers that with 503 REDIS_UNAVAILABLE and a
 * retry hint, not 500; any other reply error is a bug and stays a 500.
 */
export function isRedisUnavailable(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e.name === 'ReplyError') {
      if (UNAVAILABLE_REPLY.test(e.message)) return true;
      continue;
    }
    if (e.name === 'MaxRetriesPerRequestError' || e.name === 'ClusterAllFailedError') return true;
    if (UNAVAILABLE_MESSAGE.test(e.message)) return true;
  }
  return false;
}
