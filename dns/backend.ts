import type { FastifyInstance } from 'fastify';
import type { Logger } from '../src/log.js';
import { closeRedis, createRedis, type RedisClient } from '../src/redis/connection.js';
import { watchRedis } from '../src/redis/errors.js';
import { dnsKeys } from '../src/redis/keys.js';
import { buildDnsApi } from './api.js';
import type { DnsConfig } from './config.js';
import type { DnsCounters } from './counters.js';
import { ZoneFeed } from './feed.js';
import { createDnsMetrics } from './metrics.js';
import { RecordStore } from './store.js';
import type { Zone } from './zone.js';

/**
 * The half of `omega dns` that talks to Redis and HTTP: the record API,
 * /healthz and /metrics, and the feed that keeps the zone. Its own module,
 * imported once the DNS sockets answer: fastify, ioredis and prom-client take
 * a good part of a second to import, which a restart answering from its
 * snapshot file need not wait for.
 */
export class DnsBackend {
  readonly redis: RedisClient;
  private readonly feedRedis: RedisClient;
  private readonly store: RecordStore;
  readonly feed: ZoneFeed;
  readonly api: FastifyInstance;

  constructor(config: DnsConfig, zone: Zone, counters: DnsCounters, cacheSize: () => number, log: Logger) {
    this.redis = createRedis(config.redisUrl, { connectionName: 'omega-dns-api', failFast: true });
    this.feedRedis = createRedis(config.redisUrl, { connectionName: 'omega-dns-feed', failFast: true });
    // The API answers 503 and the feed serves the zone as last known while Redis is away; these say so once.
    watchRedis(this.redis, log, 'omega-dns-api');
    watchRedis(this.feedRedis, log, 'omega-dns-feed');
    this.store = new RecordStore(this.redis, dnsKeys(config.redisPrefix));
    // The lag histogram lives in the registry built below; the feed reports into it from its first entry on.
    let feedLag: { observe(seconds: number): void } | null = null;
    this.feed = new ZoneFeed(this.store, this.feedRedis, zone, log.child({ component: 'feed' }), (s) => feedLag?.observe(s));
    const metrics = createDnsMetrics({
      counters,
      cacheSize,
      zoneNames: () => zone.size,
      zoneSerial: () => zone.serial,
      zoneCurrent: () => (zone.current ? 1 : 0),
      zoneLoadSeconds: () => this.feed.lastLoadMs / 1000,
      redisErrors: () => this.store.errors + this.feed.errors,
    });
    feedLag = metrics.feedLag;
    const inZone = (name: string) => name.endsWith(`.${config.zone}`);
    const reserved = new Set(
      [...config.nameservers.map((ns) => ns.name), ...(config.apiAddresses.length ? [config.apiName] : [])]
        .filter(inZone)
        .map((name) => name.slice(0, -(config.zone.length + 1))),
    );
    this.api = buildDnsApi({
      zone,
      store: this.store,
      token: config.token,
      maxConnectionsPerSource: config.maxConnectionsPerSource,
      defaultTtl: config.ttl,
      reserved,
      registry: metrics.registry,
      apiChanges: metrics.apiChanges,
      redisReady: () => this.redis.status === 'ready',
      log: log.child({ component: 'api' }),
    });
  }

  /** The feed stops before Redis closes; the caller has closed the API. */
  async stop(): Promise<void> {
    await this.feed.stop();
  }

  async closeRedis(): Promise<void> {
    await closeRedis(this.redis);
    await closeRedis(this.feedRedis);
  }
}
