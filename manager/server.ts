import type { FastifyInstance } from 'fastify';
import { once, Periodic, type Component } from '../src/lifecycle.js';
import type { Logger } from '../src/log.js';
import { safeUrl } from '../src/log.js';
import { closeRedis, createRedis, type RedisClient } from '../src/redis/connection.js';
import { watchRedis } from '../src/redis/errors.js';
import { hostKeys, tlsKeys } from '../src/redis/keys.js';
import { describe } from '../src/tls/bundle.js';
import { CertFollower, CertStore } from '../src/tls/store.js';
import { Ingress } from './ingress.js';
import { buildManagerApi } from './api.js';
import type { ManagerConfig } from './config.js';
import { joinHostPort } from '../src/config/settings.js';
import { WarmPool } from './pool.js';
import { IdleWatch } from './idle.js';
import { Reconciler } from './reconciler.js';
import { HostRegistry } from './registry.js';
import { DockerRuntime, LABELS } from './runtime/docker.js';
import { DEFAULT_BLOCKED_CIDRS, hostResolvers, SandboxNetwork } from './runtime/network.js';
import { WorkspaceDisks } from './runtime/disk.js';
import { join } from 'node:path';
import { Sandboxes } from './sandboxes.js';
import { Workspaces } from './workspaces.js';
import { DirectPorts } from './direct-ports.js';
import { openSnapshotStore } from '../src/snapshot-store.js';
import { WorkerClient } from './worker-client.js';

const DOCKER_RETRY_MS = 2000;
/** One network for every manager on an engine (several share one under `omega up`). */
const SANDBOX_NETWORK = 'omega-sandboxes';
const SANDBOX_BRIDGE = 'omega0';
const NETWORK_CHECK_MS = 10_000;

/**
 * `omega manager`: one per host. Serves its API at once; registers the host
 * for work only while the Docker engine answers, so a host without a working
 * engine is never chosen.
 */
export class ManagerServer implements Component {
  readonly redis: RedisClient;
  readonly runtime: DockerRuntime;
  readonly registry: HostRegistry;
  readonly sandboxes: Sandboxes;
  readonly workspaces: Workspaces;
  readonly pool: WarmPool;
  readonly reconciler: Reconciler;
  readonly idle: IdleWatch;
  readonly api: FastifyInstance;
  /** The host's TLS ingress and what feeds it the certificate (null when TLS is off). */
  readonly ingress: Ingress | null = null;
  private readonly certs: CertFollower | null = null;
  /** The isolated sandbox network and its firewall (null: Docker's default bridge). */
  readonly network: SandboxNetwork | null = null;
  private networkCheck: Periodic<void> | null = null;
  /** Fixed-size workspaces (null: OMEGA_SANDBOX_DISK_MB=0). */
  readonly disks: WorkspaceDisks | null;
  private dockerUp = false;
  private stopping = false;
  private dockerTimer: NodeJS.Timeout | null = null;
  private unwatch: (() => void) | null = null;
  private url = '';

  constructor(
    private readonly config: ManagerConfig,
    private readonly log: Logger,
  ) {
    this.redis = createRedis(config.redisUrl, { connectionName: 'omega-manager' });
    watchRedis(this.redis, log, 'omega-manager');
    const isolated = config.sandboxNetwork === 'isolated';
    this.disks = Object.values(config.diskMb).some((mb) => mb > 0) ? new WorkspaceDisks(join(config.workspaceImageDir, config.hostId)) : null;
    this.runtime = new DockerRuntime(config.dockerSocket, config.hostId, config.publishIp, isolated ? SANDBOX_NETWORK : null, this.disks, config.sandboxRuntime || null);
    if (isolated) {
      const network = new SandboxNetwork(
        this.runtime.docker,
        { name: SANDBOX_NETWORK, bridge: SANDBOX_BRIDGE, blockedCidrs: [...DEFAULT_BLOCKED_CIDRS, ...config.sandboxBlockedCidrs], resolvers: hostResolvers() },
        log.child({ component: 'network' }),
      );
      this.network = network;
      // Puts the rules back if something removed them (a flush, a Docker restart that rebuilt its chains),
      // with the offline sandboxes as the container table has them (it survives a manager restart).
      this.networkCheck = new Periodic(NETWORK_CHECK_MS, async () => network.ensure(await this.offlineAddresses()), (err) => log.error({ err }, 'the sandbox firewall could not be checked'));
    }
    this.registry = new HostRegistry(
      this.redis,
      hostKeys(config.redisPrefix),
      { hostId: config.hostId, address: config.hostIp, managerUrl: `http://${joinHostPort(config.listen.host, config.listen.port)}`, capacity: config.capacity },
      { intervalMs: config.heartbeatIntervalMs, ttlMs: config.heartbeatTtlMs },
      log.child({ component: 'registry' }),
    );
    const workers = new WorkerClient();
    this.sandboxes = new Sandboxes(config, this.runtime, workers, this.registry, log.child({ component: 'sandboxes' }));
    this.idle = new IdleWatch(this.registry, workers, config.idleCheckIntervalMs, log.child({ component: 'idle' }));
    this.sandboxes.snapshots = openSnapshotStore(config.snapshotStore, { endpoint: config.s3Endpoint, region: config.s3Region });
    this.pool = new WarmPool(
      config.poolBounds,
      (t) => this.sandboxes.startContainer(t, { pool: true }),
      (c) => this.sandboxes.discard(c),
      log.child({ component: 'pool' }),
      config.poolRefillParallel,
      { demandWindowMs: config.poolDemandWindowMs, onReady: (t, n) => this.registry.publishWarm(t, n) },
    );
    this.sandboxes.pool = this.pool;
    this.workspaces = new Workspaces(this.runtime, config.hostId, () => this.sandboxes.snapshots, log.child({ component: 'workspaces' }));
    this.sandboxes.network = this.network;
    this.reconciler = new Reconciler(
      this.runtime,
      this.registry,
      this.sandboxes,
      this.pool,
      { intervalMs: config.reconcileIntervalMs, graceMs: config.orphanGraceMs },
      log.child({ component: 'reconciler' }),
    );
    if (!config.ingressListen) {
      this.sandboxes.direct = new DirectPorts(
        config.publishIp ?? config.hostIp,
        async (id) => {
          const e = await this.sandboxes.routeWaking(id, config.readyTimeoutMs);
          return e?.state === 'running' ? e : null;
        },
        log.child({ component: 'direct-ports' }),
      );
    }
    if (config.ingressListen) {
      const ingress = new Ingress(
        {
          listen: config.ingressListen,
          zone: config.zone,
          handshakeTimeoutMs: config.ingressHandshakeTimeoutMs,
          maxConnections: config.ingressMaxConnections,
          maxConnectionsPerSource: config.ingressMaxConnectionsPerSource,
          route: async (id) => {
            // A paused sandbox with autoResume is woken and served once it runs.
            const e = await this.sandboxes.routeWaking(id, config.readyTimeoutMs);
            return e && e.state === 'running' ? { host: e.address ?? config.publishIp ?? config.hostIp, port: e.hostPort } : null;
          },
        },
        log.child({ component: 'ingress' }),
      );
      this.ingress = ingress;
      this.certs = new CertFollower(
        new CertStore(this.redis, tlsKeys(config.redisPrefix)),
        config.tlsReloadIntervalMs,
        (b) => {
          ingress.setCertificate(b);
          log.info(describe(b), 'ingress serves certificate');
        },
        (err, recovered) =>
          recovered ? log.info('certificate reads are back') : log.warn({ err }, 'reading the certificate from Redis failed; the one in use stays'),
      );
    }
    this.api = buildManagerApi({
      sandboxes: this.sandboxes,
      workspaces: this.workspaces,
      pool: this.pool,
      token: config.token,
      maxConnectionsPerSource: config.maxConnectionsPerSource,
      status: () => ({ docker: this.dockerUp, redis: this.redis.status === 'ready', registered: this.registry.registered, hostId: config.hostId }),
      log: log.child({ component: 'api' }),
    });
  }

  /** Addresses of this host's running sandboxes that were created without internet. */
  private async offlineAddresses(): Promise<string[]> {
    const out: string[] = [];
    for (const e of (await this.registry.entries()).values()) if (e.internet === false && e.state === 'running' && e.ip) out.push(e.ip);
    return out;
  }

  get apiUrl(): string {
    return this.url;
  }

  async start(): Promise<void> {
    if (!this.config.token) this.log.warn('manager API runs WITHOUT a token (dev run); never expose it');
    await this.api.listen({ host: this.config.listen.host, port: this.config.listen.port });
    const port = (this.api.server.address() as { port: number }).port;
    this.url = `http://${joinHostPort(this.config.listen.host, port)}`;
    this.registry.setManagerUrl(this.url);
    this.log.info({ api: this.url, hostId: this.config.hostId, hostIp: this.config.hostIp, redis: safeUrl(this.config.redisUrl) }, 'manager listening');
    if (this.ingress && this.certs) {
      await this.certs.start();
      if (!this.certs.fingerprint) this.log.warn('no certificate in Redis yet (the master stores it): the ingress refuses TLS until one is there');
      await this.ingress.start();
      this.sandboxes.ingressPort = this.ingress.port;
      this.log.info({ ingress: `${this.config.ingressListen!.host}:${this.ingress.port}` }, 'ingress listening');
    }
    await this.connectDocker();
  }

  /** A restarted manager listens again on the direct ports its sandboxes' rows name (their URLs carry them). */
  private async reopenDirectPorts(): Promise<void> {
    const direct = this.sandboxes.direct;
    if (!direct) return;
    for (const [id, e] of await this.registry.entries(true)) {
      if (!e.directPort || !['running', 'paused', 'stopped'].includes(e.state)) continue;
      await direct.open(id, e.directPort).catch((err: unknown) => this.log.error({ err, sandboxId: id, port: e.directPort }, 'a sandbox\'s direct port could not be opened again; it is reached through the API\'s resume only'));
    }
  }

  /** Take work once the engine answers; until then say so, and keep asking. */
  private async connectDocker(): Promise<void> {
    if (this.stopping) return;
    if (!(await this.runtime.ping())) {
      if (!this.dockerTimer) {
        this.log.error({ socket: this.config.dockerSocket }, 'the Docker engine cannot be reached; not registering for work until it can');
      }
      this.dockerTimer = setTimeout(() => void this.connectDocker(), DOCKER_RETRY_MS);
      this.dockerTimer.unref();
      return;
    }
    this.dockerTimer = null;
    if (this.network) {
      try {
        await this.network.ensure(await this.offlineAddresses());
      } catch (err) {
        // A host whose sandboxes would not be boxed takes no work.
        this.log.error({ err }, 'the sandbox network or its firewall could not be set up; not registering for work until it can');
        this.dockerTimer = setTimeout(() => void this.connectDocker(), DOCKER_RETRY_MS);
        this.dockerTimer.unref();
        return;
      }
      this.networkCheck!.start();
    }
    if (this.disks) {
      try {
        await this.disks.probe();
      } catch (err) {
        this.log.error({ err }, 'workspaces of a fixed size cannot be made here (OMEGA_SANDBOX_DISK_MB=0 runs without a quota); not registering for work until they can');
        this.dockerTimer = setTimeout(() => void this.connectDocker(), DOCKER_RETRY_MS);
        this.dockerTimer.unref();
        return;
      }
    }
    this.dockerUp = true;
    for (const t of this.config.templates) {
      if (!(await this.runtime.imageExists(this.sandboxes.image(t)))) {
        this.log.error({ template: t, image: this.sandboxes.image(t) }, 'image missing: run `make images`');
      }
    }
    // A sandbox's container that stops on its own is reported at once; the reconciler's pass is the backstop.
    this.unwatch = this.runtime.watchExits(
      (e) => {
        const id = e.labels[LABELS.sandbox] ?? null;
        void this.sandboxes.exitedContainer(e.containerId, id, `container exited (code ${e.exitCode || 'unknown'})`).catch((err: unknown) =>
          this.log.warn({ err, containerId: e.containerId.slice(0, 12) }, 'reporting a stopped container failed; the reconciler reports it'),
        );
      },
      (err) => this.log.warn({ err }, 'the Docker event stream failed; re-opening it'),
    );
    await this.reconciler.run();
    await this.reopenDirectPorts();
    await this.registry.register();
    this.reconciler.start();
    this.idle.start();
    this.pool.fill();
  }

  /**
   * Stop taking work (leave the allocation set, close the API), remove the
   * warm pool, then close connections. Sandboxes keep running: they belong
   * to users, and the next start reconciles them.
   */
  readonly stop = once(async () => {
    this.stopping = true;
    if (this.dockerTimer) clearTimeout(this.dockerTimer);
    this.unwatch?.();
    await this.networkCheck?.stop();
    await this.registry.deregister().catch((err: unknown) => this.log.warn({ err }, 'deregister failed'));
    await this.api.close();
    await this.certs?.stop();
    await this.ingress?.stop();
    await this.sandboxes.direct?.closeAll();
    await this.reconciler.stop();
    await this.idle.stop();
    await this.pool.drain();
    // A host whose sandboxes are all gone leaves no directory of its own behind (a test's or a scaled-in host's id is never used again).
    await this.disks?.removeIfEmpty().catch((err: unknown) => this.log.warn({ err }, 'removing the empty workspace image directory failed'));
    await closeRedis(this.redis);
  });
}
