import { openSnapshotStore } from '../src/snapshot-store.js';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { Server as HttpsServer } from 'node:https';
import type { FastifyInstance } from 'fastify';
import { Agent } from 'undici';
import { once, Periodic, type Component } from '../src/lifecycle.js';
import type { Logger } from '../src/log.js';
import { safeUrl } from '../src/log.js';
import { closeRedis, createRedis, whenReady, type RedisClient } from '../src/redis/connection.js';
import { watchRedis } from '../src/redis/errors.js';
import { buildMasterApi } from './api.js';
import { DnsClient, ManagerClient } from './clients.js';
import type { MasterConfig } from './config.js';
import { Ec2Provider } from './providers/ec2/provider.js';
import { LocalProvider } from './providers/local.js';
import type { Provider } from './providers/provider.js';
import { HostEvents } from './host-events.js';
import { Reaper } from './reaper.js';
import { MasterReconciler } from './reconciler.js';
import { Runner } from './runner.js';
import { Sandboxes } from './sandboxes.js';
import { Scaler } from './scaler.js';
import { Store } from './store.js';
import { defaultWebDir } from './web.js';
import { joinHostPort } from '../src/config/settings.js';
import { describe } from '../src/tls/bundle.js';
import { checkLocalCa } from '../src/tls/local-ca.js';
import { CertStore } from '../src/tls/store.js';
import { tlsKeys } from '../src/redis/keys.js';
import { AcmeIssuer } from './acme.js';
import { certificateNames, Certificates, FileIssuer, LocalIssuer, type Issuer } from './certificates.js';
import { WorkerRoutes } from './worker-route.js';

/** This master's liveness key is refreshed this often, and lapses after LIVENESS_TTL_MS without it. */
const LIVENESS_INTERVAL_MS = 2000;
const LIVENESS_TTL_MS = 6000;
/** How long start() waits for Redis before its first reconcile (which is retried on the timer anyway). */
const REDIS_START_WAIT_MS = 5000;
/** How long start() waits for a first certificate (an ACME order goes on behind if it takes longer). */
const CERTIFICATE_START_WAIT_MS = 30_000;
/** How often a master that found another counting the records of an earlier version looks again (that master's lock lapses after COUNTS_LOCK_MS if it died). */
const RECOUNT_RETRY_MS = 30_000;
const COUNTS_LOCK_MS = 60_000;

/**
 * `omega master`: the public API, and the timers that keep the system
 * honest (expiry, lapsed hosts, reconciliation, scale-in). Any number may run
 * on one Redis.
 */
export class MasterServer implements Component {
  readonly redis: RedisClient;
  readonly store: Store;
  readonly agent = new Agent({ keepAliveTimeout: 30_000, connections: 64 });
  readonly managers: ManagerClient;
  readonly dns: DnsClient;
  readonly provider: Provider | null;
  readonly scaler: Scaler;
  readonly sandboxes: Sandboxes;
  readonly runner: Runner;
  /** How the master reaches workers (through the ingresses with TLS on). */
  readonly routes: WorkerRoutes;
  readonly reaper: Reaper;
  readonly reconciler: MasterReconciler;
  readonly api: FastifyInstance;
  /** The certificate keeper (OMEGA_TLS other than off). */
  readonly certificates: Certificates | null;
  private readonly scaleIn: Periodic<string[]>;
  private readonly liveness: Periodic<void>;
  private readonly lostHosts: Periodic<unknown>;
  private readonly recount: Periodic<void>;
  /** The counts by state are complete (no record of an earlier version left uncounted): the recount has nothing more to do. */
  private counted = false;
  private readonly recountFailed = (err: unknown) => this.log.warn({ err }, 'counting the sandboxes by state failed; retried on the timer');
  /** This master's id: the owner of the creates and deletes it runs, alive while its liveness key is. */
  readonly masterId = randomBytes(8).toString('hex');
  private url = '';
  /** Since when the Redis connection is up (Infinity while it is down). */
  private redisUpSinceMs = Infinity;

  constructor(
    private readonly config: MasterConfig,
    private readonly log: Logger,
    provider?: Provider | null,
  ) {
    // Fail fast: while Redis is away (a failover) an API call answers 503 at
    // once instead of waiting in a queue; the timers retry on their next pass.
    this.redis = createRedis(config.redisUrl, { connectionName: 'omega-master', failFast: true });
    watchRedis(this.redis, log, 'omega-master');
    this.redis.on('ready', () => (this.redisUpSinceMs = Date.now()));
    this.redis.on('close', () => (this.redisUpSinceMs = Infinity));
    // An id stays out of use for twice its records' TTL after deletion (negative answers are cached less).
    this.store = new Store(this.redis, config.redisPrefix, Math.max(60, 2 * config.dnsTtl), this.masterId, {
      count: config.redisWaitReplicas,
      timeoutMs: config.redisWaitTimeoutMs,
    });
    this.liveness = new Periodic(
      LIVENESS_INTERVAL_MS,
      () => this.store.beat(LIVENESS_TTL_MS),
      (err) => this.log.warn({ err }, 'refreshing this master\'s liveness key failed'),
    );
    this.managers = new ManagerClient(this.agent, config.managerToken);
    this.dns = new DnsClient(this.agent, config.dnsToken, config.dnsApiUrl);
    this.provider = provider !== undefined ? provider : this.makeProvider();
    this.scaler = new Scaler(this.store, this.provider, { waitMs: config.scaleOutWaitMs }, log.child({ component: 'scaler' }));
    this.sandboxes = new Sandboxes(config, this.store, this.managers, this.dns, this.scaler, log.child({ component: 'sandboxes' }), openSnapshotStore(config.snapshotStore, { endpoint: config.s3Endpoint, region: config.s3Region }));
    const idleSeconds = this.provider?.scaleIn.idleSeconds ?? 0;
    this.scaleIn = new Periodic(
      Math.max(1000, Math.min(config.reconcileIntervalMs, idleSeconds * 500 || 30_000)),
      () => this.scaler.scaleIn(),
      (err) => this.log.warn({ err }, 'scale-in failed'),
    );
    // As often as the reaper looks for lapsed hosts: a dead local manager is restarted within a pass of being marked lost.
    this.lostHosts = new Periodic(config.reapIntervalMs, () => this.scaler.handleLostHosts(), (err) => this.log.warn({ err }, 'lost-host pass failed'));
    this.recount = new Periodic(
      RECOUNT_RETRY_MS,
      async () => {
        if (this.counted) return;
        this.counted = await this.store.countUncounted(COUNTS_LOCK_MS);
        if (this.counted) this.log.debug('sandbox counts by state complete');
      },
      this.recountFailed,
    );
    this.routes = new WorkerRoutes(config.zone, config.tls === 'off' ? null : this.ingressTrust());
    this.runner = new Runner(config, this.sandboxes, this.routes, log.child({ component: 'run' }));
    this.reaper = new Reaper(
      this.store,
      this.sandboxes,
      {
        reapIntervalMs: config.reapIntervalMs,
        frozenSeconds: config.frozenSeconds,
        stoppedSeconds: config.stoppedSeconds,
        hostForgetSeconds: config.hostForgetSeconds,
        heldByProvider: (hostId) => this.provider?.owns(hostId) ?? false,
        redisUpSinceMs: () => this.redisUpSinceMs,
      },
      log.child({ component: 'reaper' }),
    );
    this.reconciler = new MasterReconciler(
      this.store,
      this.sandboxes,
      this.dns,
      new HostEvents(this.redis, this.store.keys.hostEvents, this.masterId, log.child({ component: 'host-events' })),
      config.zone,
      {
        intervalMs: config.reconcileIntervalMs,
        createTimeoutMs: config.createTimeoutMs,
        lostRetentionSeconds: config.lostRetentionSeconds,
        onIdle: (id, host, why) => this.reaper.idle(id, host, why),
        ...(config.tls === 'off' ? {} : { wildcard: { ttl: config.dnsTtl } }),
      },
      log.child({ component: 'reconciler' }),
    );
    this.certificates = config.tls === 'off' ? null : this.makeCertificates();
    this.api = buildMasterApi({
      sandboxes: this.sandboxes,
      runner: this.runner,
      store: this.store,
      token: config.token,
      maxConnectionsPerSource: config.maxConnectionsPerSource,
      e2b: { zone: config.zone, baseTemplate: config.e2bBaseTemplate },
      status: async () => ({ redis: this.redis.status === 'ready', dns: await this.dns.healthy() }),
      templates: config.templates,
      webDir: config.webDir || defaultWebDir(),
      lostHosts: () => this.scaler.lostHosts,
      https: this.certificates !== null,
      certificate: this.certificates
        ? () => {
            const c = this.certificates!;
            return { notAfterMs: c.certificate?.notAfterMs ?? null, failures: c.failures, ...c.counts };
          }
        : undefined,
      log: log.child({ component: 'api' }),
    });
  }

  /** CAs the master trusts beside the system's when it reaches an ingress: the local CA, and any the settings name. */
  private ingressTrust(): string[] {
    const c = this.config;
    const pems: string[] = [];
    if (c.tls === 'local') pems.push(readFileSync(c.tlsCaCertFile, 'utf8'));
    if (c.tlsTrustFile) pems.push(readFileSync(c.tlsTrustFile, 'utf8'));
    return pems;
  }

  private makeCertificates(): Certificates {
    const c = this.config;
    const store = new CertStore(this.redis, tlsKeys(c.redisPrefix));
    let issuer: Issuer;
    const extra = [...c.tlsNames];
    if (c.tls === 'local') {
      const ca = { certPem: readFileSync(c.tlsCaCertFile, 'utf8'), keyPem: readFileSync(c.tlsCaKeyFile, 'utf8') };
      checkLocalCa(ca);
      // A client on this machine reaches the master by its address, without DNS.
      if (isIP(c.listen.host) && !extra.includes(c.listen.host)) extra.push(c.listen.host);
      issuer = new LocalIssuer(ca, c.tlsLocalDays);
    } else if (c.tls === 'files') {
      issuer = new FileIssuer(c.tlsCertFile, c.tlsKeyFile);
    } else {
      issuer = new AcmeIssuer(
        {
          directoryUrl: c.acmeDirectoryUrl,
          email: c.acmeEmail,
          ...(c.acmeEabKid ? { eab: { kid: c.acmeEabKid, hmacKey: c.acmeEabHmacKey } } : {}),
          ...(c.acmeCaFile ? { caPem: readFileSync(c.acmeCaFile, 'utf8') } : {}),
          dnsServers: c.acmeDnsServers,
          propagationTimeoutMs: c.acmePropagationTimeoutMs,
        },
        this.dns,
        store.acmeAccount,
        this.log.child({ component: 'acme' }),
      );
    }
    return new Certificates(
      store,
      issuer,
      { names: certificateNames(c.zone, c.apiName, extra), intervalMs: c.tlsReloadIntervalMs, renewNow: c.tlsRenewNow },
      (b) => {
        // New handshakes get the new certificate; open connections keep theirs.
        (this.api.server as unknown as HttpsServer).setSecureContext({ cert: b.certPem, key: b.keyPem });
        this.log.info(describe(b), 'serving certificate');
      },
      this.log.child({ component: 'certificates' }),
    );
  }

  private makeProvider(): Provider | null {
    const c = this.config;
    if (c.provider === 'local') {
      return new LocalProvider(
        {
          firstAddress: c.localFirstAddress,
          maxHosts: c.localMaxHosts,
          capacity: c.localCapacity,
          poolSize: c.localPoolSize,
          managerPort: c.localManagerPort,
          redisUrl: c.redisUrl,
          redisPrefix: c.redisPrefix,
          managerToken: c.managerToken,
          zone: c.zone,
          logLevel: c.logLevel,
          tls: c.tls,
          ingressPort: c.localIngressPort,
          scaleIn: { minHosts: c.minHosts, idleSeconds: c.hostIdleSeconds },
          registerWaitMs: c.scaleOutWaitMs,
          takenAddresses: async () => (await this.store.hosts()).map((h) => h.address),
        },
        this.log.child({ component: 'provider' }),
      );
    }
    if (c.provider === 'ec2') {
      // Its module is light; the AWS SDK (about a second to load) is imported by this constructor.
      return new Ec2Provider(c.ec2!, {
        log: this.log,
        cluster: { redisUrl: c.redisUrl, redisPrefix: c.redisPrefix, managerToken: c.managerToken ?? '', zone: c.zone, tls: c.tls },
      });
    }
    return null;
  }

  get apiUrl(): string {
    return this.url;
  }

  async start(): Promise<void> {
    if (!this.config.token) this.log.warn('public API runs WITHOUT a token (dev run); never expose it');
    if (this.certificates) {
      // Redis first: the certificate is kept there. An ACME order that fails
      // (or takes long) does not hold the API back: it listens, and answers
      // TLS once a certificate is there.
      await whenReady(this.redis, REDIS_START_WAIT_MS);
      await this.certificates.start(CERTIFICATE_START_WAIT_MS);
      if (!this.certificates.certificate) this.log.error('no certificate yet: TLS handshakes fail until one is obtained (retrying)');
    }
    await this.api.listen({ host: this.config.listen.host, port: this.config.listen.port });
    const port = (this.api.server.address() as { port: number }).port;
    this.url = `${this.certificates ? 'https' : 'http'}://${joinHostPort(this.config.listen.host, port)}`;
    this.log.info({ api: this.url, masterId: this.masterId, zone: this.config.zone, provider: this.config.provider, redis: safeUrl(this.config.redisUrl) }, 'master listening');
    // Commands fail at once until the connection is up, so give it a moment before the first pass.
    await whenReady(this.redis, REDIS_START_WAIT_MS);
    await this.liveness.run().catch((err: unknown) => this.log.warn({ err }, 'first liveness beat failed; retried on the timer'));
    this.liveness.start();
    // One step of the shared sweeps at once (bounded: not a whole pass, which at 100,000 sandboxes would hold the start up), then each tick.
    await this.reconciler.tick().catch((err: unknown) => this.log.warn({ err }, 'first reconcile failed; retried on the timer'));
    this.reconciler.start();
    this.reaper.start();
    this.scaleIn.start();
    this.lostHosts.start();
    // Not awaited: at 100,000 records of an earlier version it takes a moment, and nothing waits for it but /metrics.
    void this.recount.run().catch(this.recountFailed);
    this.recount.start();
  }

  /** Stop taking requests, let timers finish their pass, stop the provider's hosts, close connections. */
  readonly stop = once(async () => {
    await this.api.close();
    await this.certificates?.stop();
    await this.scaleIn.stop();
    await this.lostHosts.stop();
    await this.recount.stop();
    await this.reaper.stop();
    await this.reconciler.stop();
    await this.scaler.stop();
    await this.liveness.stop();
    // What this master still owns (a create or delete cut short by the stop) can be taken over at once.
    await this.store.leave().catch((err: unknown) => this.log.warn({ err }, 'removing this master\'s liveness key failed; it lapses by itself'));
    await this.provider?.stop();
    await this.agent.close();
    await this.routes.close();
    await closeRedis(this.redis);
  });
}
