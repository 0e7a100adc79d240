import type { FastifyInstance } from 'fastify';
import { once, type Component } from '../src/lifecycle.js';
import type { Logger } from '../src/log.js';
import { safeUrl } from '../src/log.js';
import { closeRedis, createRedis, type RedisClient } from '../src/redis/connection.js';
import { watchRedis } from '../src/redis/errors.js';
import { dnsKeys } from '../src/redis/keys.js';
import { buildDnsApi } from './api.js';
import type { DnsConfig } from './config.js';
import { joinHostPort } from '../src/config/settings.js';
import { ZoneFeed } from './feed.js';
import { createDnsMetrics, DnsCounters } from './metrics.js';
import { Responder } from './responder.js';
import { ResponseRateLimiter } from './rrl.js';
import { SnapshotKeeper } from './snapshot-file.js';
import { RecordStore } from './store.js';
import { TcpServer } from './tcp.js';
import { UdpServer } from './udp.js';
import { Zone } from './zone.js';

export interface DnsAddresses {
  host: string;
  /** The same port serves UDP and TCP. */
  port: number;
  apiUrl: string;
}

const BIND_ATTEMPTS = 20;

/** `omega dns`: the UDP/TCP responder, the record API and the zone feed, as one component. */
export class DnsServer implements Component {
  readonly zone: Zone;
  readonly counters = new DnsCounters();
  readonly redis: RedisClient;
  private readonly feedRedis: RedisClient;
  private readonly store: RecordStore;
  private readonly feed: ZoneFeed;
  private readonly snapshot: SnapshotKeeper | null;
  private readonly responder: Responder;
  private readonly udp: UdpServer;
  private readonly tcp: TcpServer;
  readonly api: FastifyInstance;
  private addrs: DnsAddresses | null = null;

  constructor(
    private readonly config: DnsConfig,
    private readonly log: Logger,
  ) {
    this.zone = new Zone(config.zone);
    this.redis = createRedis(config.redisUrl, { connectionName: 'omega-dns-api', failFast: true });
    this.feedRedis = createRedis(config.redisUrl, { connectionName: 'omega-dns-feed', failFast: true });
    // The API answers 503 and the feed serves the zone as last known while Redis is away; these say so once.
    watchRedis(this.redis, log, 'omega-dns-api');
    watchRedis(this.feedRedis, log, 'omega-dns-feed');
    const keys = dnsKeys(config.redisPrefix);
    this.store = new RecordStore(this.redis, keys);
    // The lag histogram lives in the registry built below; the feed reports into it from its first entry on.
    let feedLag: { observe(seconds: number): void } | null = null;
    this.feed = new ZoneFeed(this.store, this.feedRedis, this.zone, log.child({ component: 'feed' }), (s) => feedLag?.observe(s));
    this.snapshot = config.snapshotFile
      ? new SnapshotKeeper(config.snapshotFile, this.zone, config.snapshotIntervalMs, log.child({ component: 'snapshot' }))
      : null;
    this.responder = new Responder({
      zone: this.zone,
      nameservers: config.nameservers,
      fixed: [{ name: config.apiName, addresses: config.apiAddresses }],
      soaRname: config.soaRname,
      defaultTtl: config.ttl,
      negativeTtl: config.negativeTtl,
      maxUdpPayload: config.maxUdpPayload,
      cacheEntries: config.cacheEntries,
      counters: this.counters,
    });
    const rrl = new ResponseRateLimiter(config.rrlPerSecond, config.rrlSlip);
    this.udp = new UdpServer(this.responder, rrl, this.counters, log.child({ component: 'udp' }));
    this.tcp = new TcpServer(
      this.responder,
      this.counters,
      { idleTimeoutMs: config.tcpIdleTimeoutMs, maxConnections: config.tcpMaxConnections },
      log.child({ component: 'tcp' }),
    );
    const metrics = createDnsMetrics({
      counters: this.counters,
      cacheSize: () => this.responder.cacheSize,
      zoneNames: () => this.zone.size,
      zoneSerial: () => this.zone.serial,
      zoneLoadSeconds: () => this.feed.lastLoadMs / 1000,
      redisErrors: () => this.store.errors + this.feed.errors,
    });
    const { registry, apiChanges } = metrics;
    feedLag = metrics.feedLag;
    const inZone = (name: string) => name.endsWith(`.${config.zone}`);
    const reserved = new Set(
      [...config.nameservers.map((ns) => ns.name), ...(config.apiAddresses.length ? [config.apiName] : [])]
        .filter(inZone)
        .map((name) => name.slice(0, -(config.zone.length + 1))),
    );
    this.api = buildDnsApi({
      zone: this.zone,
      store: this.store,
      token: config.token,
      maxConnectionsPerSource: config.maxConnectionsPerSource,
      defaultTtl: config.ttl,
      reserved,
      registry,
      apiChanges,
      redisReady: () => this.redis.status === 'ready',
      log: log.child({ component: 'api' }),
    });
  }

  get addresses(): DnsAddresses {
    if (!this.addrs) throw new Error('not started');
    return this.addrs;
  }

  /**
   * Take the zone from the snapshot file if there is one (answering from it
   * at once, while the feed catches it up), bind the sockets (answering
   * SERVFAIL until the zone is loaded), then wait for the first load.
   */
  async start(): Promise<void> {
    const { listen, apiListen } = this.config;
    if (!this.config.token) this.log.warn('record API runs WITHOUT a token (dev run); never expose it');
    const copy = await this.snapshot?.read();
    if (copy) {
      this.zone.replace(copy.data, copy.serial, copy.feedId, false);
      this.log.info({ names: this.zone.size, serial: copy.serial }, 'zone taken from the snapshot file; catching up with redis');
    }
    const port = await this.bindDns(listen.host, listen.port);
    await this.api.listen({ host: apiListen.host, port: apiListen.port });
    const apiPort = (this.api.server.address() as { port: number }).port;
    this.addrs = { host: listen.host, port, apiUrl: `http://${joinHostPort(apiListen.host, apiPort)}` };
    this.log.info(
      { zone: this.config.zone, dns: `${listen.host}:${port}`, api: this.addrs.apiUrl, redis: safeUrl(this.config.redisUrl) },
      'dns server listening',
    );
    await this.feed.start();
    this.snapshot?.start();
  }

  /** UDP and TCP on one port; with port 0, retry until both get the same free port. */
  private async bindDns(host: string, port: number): Promise<number> {
    for (let attempt = 1; ; attempt++) {
      const udpPort = await this.udp.listen(host, port);
      try {
        await this.tcp.listen(host, udpPort);
        return udpPort;
      } catch (err) {
        await this.udp.close();
        if (port !== 0 || attempt >= BIND_ATTEMPTS || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
      }
    }
  }

  /** Stop taking work, close listeners, then Redis. Safe to call more than once. */
  readonly stop = once(async () => {
    await Promise.allSettled([this.udp.close(), this.tcp.close(), this.api.close()]);
    await this.feed.stop();
    // After the feed: the last snapshot is the zone as it stands.
    await this.snapshot?.stop();
    await closeRedis(this.redis);
    await closeRedis(this.feedRedis);
  });
}
