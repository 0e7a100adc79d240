import type { FastifyInstance } from 'fastify';
import { once, type Component } from '../src/lifecycle.js';
import type { Logger } from '../src/log.js';
import { safeUrl } from '../src/log.js';
import type { RedisClient } from '../src/redis/connection.js';
import { joinHostPort } from '../src/config/settings.js';
import type { DnsBackend } from './backend.js';
import type { DnsConfig } from './config.js';
import { DnsCounters } from './counters.js';
import { Responder } from './responder.js';
import { ResponseRateLimiter } from './rrl.js';
import { SnapshotKeeper } from './snapshot-file.js';
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

/**
 * `omega dns`: the UDP/TCP responder, the record API and the zone feed, as
 * one component. The responder and the zone are here; what talks to Redis
 * and HTTP is the backend (dns/backend.ts), imported and built once the
 * sockets answer.
 */
export class DnsServer implements Component {
  readonly zone: Zone;
  readonly counters = new DnsCounters();
  private readonly snapshot: SnapshotKeeper | null;
  private readonly responder: Responder;
  private readonly udp: UdpServer;
  private readonly tcp: TcpServer;
  private backend: DnsBackend | null = null;
  private stopping = false;
  private addrs: DnsAddresses | null = null;

  constructor(
    private readonly config: DnsConfig,
    private readonly log: Logger,
  ) {
    this.zone = new Zone(config.zone);
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
  }

  get addresses(): DnsAddresses {
    if (!this.addrs) throw new Error('not started');
    return this.addrs;
  }

  /** The API's Redis connection (after start). */
  get redis(): RedisClient {
    return this.started().redis;
  }

  /** The record API (after start). */
  get api(): FastifyInstance {
    return this.started().api;
  }

  /**
   * Take the zone from the snapshot file if there is one and bind the
   * sockets, which then answer from it at once (SERVFAIL when there is none,
   * until the first load); then the backend: the API, and the feed that
   * catches the zone up or loads it. Resolves once the zone is loaded.
   */
  async start(): Promise<void> {
    try {
      await this.startAll();
    } catch (err) {
      // A start that fails half way (a port taken) closes what it opened, so the process can end.
      await this.stop();
      throw err;
    }
  }

  private async startAll(): Promise<void> {
    const { listen, apiListen } = this.config;
    if (!this.config.token) this.log.warn('record API runs WITHOUT a token (dev run); never expose it');
    const copy = await this.snapshot?.read();
    if (copy) {
      this.zone.replace(copy.data, copy.serial, copy.feedId, false);
      this.log.info({ names: this.zone.size, serial: copy.serial }, 'zone taken from the snapshot file; catching up with redis');
    }
    const port = await this.bindDns(listen.host, listen.port);
    const { DnsBackend } = await import('./backend.js');
    if (this.stopping) return;
    const backend = new DnsBackend(this.config, this.zone, this.counters, () => this.responder.cacheSize, this.log);
    this.backend = backend;
    await backend.api.listen({ host: apiListen.host, port: apiListen.port });
    const apiPort = (backend.api.server.address() as { port: number }).port;
    this.addrs = { host: listen.host, port, apiUrl: `http://${joinHostPort(apiListen.host, apiPort)}` };
    this.log.info(
      { zone: this.config.zone, dns: `${listen.host}:${port}`, api: this.addrs.apiUrl, redis: safeUrl(this.config.redisUrl) },
      'dns server listening',
    );
    await backend.feed.start();
    if (!this.stopping) this.snapshot?.start();
  }

  private started(): DnsBackend {
    if (!this.backend) throw new Error('not started');
    return this.backend;
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
    this.stopping = true;
    const backend = this.backend;
    await Promise.allSettled([this.udp.close(), this.tcp.close(), backend?.api.close()]);
    await backend?.stop();
    // After the feed: the last snapshot is the zone as it stands.
    await this.snapshot?.stop();
    await backend?.closeRedis();
  });
}
