import { readFileSync } from 'node:fs';
import net from 'node:net';
import { join, resolve } from 'node:path';
import { rootCertificates } from 'node:tls';
import { Agent, request } from 'undici';
import { loadConfig as loadDnsConfig } from '../../dns/config.js';
import { loadConfig as loadManagerConfig } from '../../manager/config.js';
import { loadConfig as loadMasterConfig } from '../../master/config.js';
import { createLogger, safeUrl, type Logger } from '../../src/log.js';
import { selfCommand } from '../../src/self.js';
import { nextSteps } from './banner.js';
import { MasterClient } from '../client/master-client.js';
import { deleteSandboxes, hostIds, hosts as listHosts, removeLeftovers } from './cleanup.js';
import { LogStream } from './logstream.js';
import { ownRedis, redisAnswers, redisConfPath, redisServer, shutdownRedis } from './redis.js';
import type { UpConfig } from './settings.js';
import { claimStateDir, prepareLocalCa, prepareState, releaseStateDir, writeMasterUrl, type Tokens } from './state.js';
import { Supervised, type ChildSpec } from './supervisor.js';
import { joinHostPort, type HostPort } from '../../src/config/settings.js';

const hp = (a: HostPort) => joinHostPort(a.host, a.port);

/**
 * The port every host's ingress takes: the one asked for (443) when this
 * process may bind it on the first host's address, else 8443, else one the
 * kernel picks; with why, when it is not the one asked for. The managers the
 * master starts later use the same port on their own addresses.
 */
async function ingressPort(address: string, wanted: number): Promise<{ port: number; why: string | null }> {
  const tryBind = (port: number) =>
    new Promise<number | string>((resolve) => {
      const srv = net.createServer();
      srv.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
      srv.listen(port, address, () => {
        const got = (srv.address() as net.AddressInfo).port;
        srv.close(() => resolve(got));
      });
    });
  const first = await tryBind(wanted);
  if (typeof first === 'number') return { port: first, why: null };
  for (const port of [8443, 0]) {
    const r = await tryBind(port);
    if (typeof r === 'number') return { port: r, why: `the ingress cannot take port ${wanted} on ${address} (${first}${first === 'EACCES' ? ': binding ports below 1024 needs root or CAP_NET_BIND_SERVICE' : ''}); it uses ${r}, so sandbox URLs carry :${r}` };
  }
  return { port: wanted, why: `no port could be bound on ${address} for the ingress (${first}); the managers will say why` };
}

/**
 * `omega up`: a whole Omega on one machine, as one supervised process tree
 * with one log stream: Redis (the one at OMEGA_REDIS_URL, or our own), the
 * DNS server, the first manager, and the master with the local provider
 * (which starts more managers on the next loopback addresses as needed).
 * Stopping deletes every sandbox first, so nothing is left running.
 *
 * An earlier `up` with the same state directory that was killed (or whose
 * cleanup failed) is finished on start: its redis-server, if it still runs,
 * is shut down (SAVE) and started again under this `up`, and once the master
 * answers, the sandboxes it left are deleted and the containers of its hosts
 * that no manager runs now are removed. A Redis at OMEGA_REDIS_URL that no
 * `up` started is used as it is.
 */
export class Up {
  readonly logs: LogStream;
  readonly log: Logger;
  readonly stateDir: string;
  readonly masterUrl: string;
  private readonly children: Supervised[] = [];
  private tokens!: Tokens;
  /** The master's API, with the API token (made once the tokens are). */
  private master: MasterClient | null = null;
  private dockerSocket = '/var/run/docker.sock';
  private managerHostId: string;
  /** Every host this run has had, for the last sweep of containers. */
  private readonly hosts = new Set<string>();
  private stopping: Promise<void> | null = null;
  /** TLS on: the local CA's files, and the port every host's ingress listens on. */
  private ca: { certFile: string; keyFile: string; made: boolean } | null = null;
  private ingressPort = 0;
  /** What reaches the master: trusting the local CA beside the system's roots. */
  private agent: Agent | undefined;
  /** The state directory is this process's (claimStateDir): only then may stop() clean up. */
  private claimed = false;
  /** An earlier run's leftovers not yet cleaned up: the state directory keeps saying so (up.pid) until they are. */
  private unfinished = false;
  /** Settled when a child keeps crashing: `up` then stops everything. */
  readonly failed: Promise<string>;
  private fail!: (name: string) => void;

  constructor(
    private readonly config: UpConfig,
    private readonly env: NodeJS.ProcessEnv,
    out: NodeJS.WritableStream = process.stdout,
  ) {
    this.logs = new LogStream(out);
    this.log = createLogger('up', { level: config.logLevel === 'silent' ? 'info' : config.logLevel, destination: this.logs.destination('up') });
    this.stateDir = resolve(config.stateDir);
    const m = config.masterListen;
    const host = m.host === '0.0.0.0' ? '127.0.0.1' : m.host === '::' ? '::1' : m.host;
    this.masterUrl = `${config.tls === 'local' ? 'https' : 'http'}://${hp({ host, port: m.port })}`;
    this.managerHostId = config.firstAddress;
    this.hosts.add(config.firstAddress);
    this.failed = new Promise((r) => (this.fail = r));
  }

  /** The environments of the three programs, checked with their own config loaders before anything starts. */
  private environments(redisUrl: string) {
    const c = this.config;
    const t = this.tokens;
    const base: NodeJS.ProcessEnv = { ...this.env, OMEGA_REDIS_URL: redisUrl, OMEGA_REDIS_PREFIX: c.redisPrefix, OMEGA_ZONE: c.zone, OMEGA_LOG_LEVEL: c.logLevel };
    delete base.OMEGA_DEV; // every API here has a token
    const masterHost = new URL(this.masterUrl).hostname.replace(/^\[|\]$/g, '');
    const tls = this.ca
      ? {
          master: { OMEGA_TLS: 'local', OMEGA_TLS_CA_CERT_FILE: this.ca.certFile, OMEGA_TLS_CA_KEY_FILE: this.ca.keyFile, OMEGA_LOCAL_INGRESS_PORT: String(this.ingressPort) },
          manager: { OMEGA_TLS: 'local', OMEGA_INGRESS_LISTEN: `${c.firstAddress}:${this.ingressPort}` },
          // api.<zone> answers where the master listens.
          dns: net.isIP(masterHost) ? { OMEGA_API_ADDRESSES: masterHost } : {},
        }
      : { master: { OMEGA_TLS: 'off' }, manager: { OMEGA_TLS: 'off' }, dns: {} };
    // Its zone kept in the state directory: a restart answers at once from it, then catches up (docs/dns-scale.md).
    const snapshot = { OMEGA_DNS_SNAPSHOT_FILE: base.OMEGA_DNS_SNAPSHOT_FILE || join(this.stateDir, 'dns-zone.snapshot') };
    const dns = { ...base, OMEGA_DNS_LISTEN: hp(c.dnsListen), OMEGA_DNS_API_LISTEN: hp(c.dnsApiListen), OMEGA_DNS_TOKEN: t.dns, ...snapshot, ...tls.dns };
    const dnsApi = c.dnsApiListen.host === '0.0.0.0' ? { ...c.dnsApiListen, host: '127.0.0.1' } : c.dnsApiListen;
    const master = {
      ...base,
      OMEGA_MASTER_LISTEN: hp(c.masterListen),
      OMEGA_API_TOKEN: t.api,
      OMEGA_DNS_API_URL: `http://${hp(dnsApi)}`,
      OMEGA_DNS_TOKEN: t.dns,
      OMEGA_MANAGER_TOKEN: t.manager,
      OMEGA_PROVIDER: 'local',
      OMEGA_LOCAL_FIRST_ADDRESS: c.firstAddress,
      OMEGA_LOCAL_MANAGER_PORT: String(c.managerPort),
      ...tls.master,
    };
    const masterConfig = loadMasterConfig({ env: master });
    const manager = {
      ...base,
      OMEGA_HOST_IP: c.firstAddress,
      OMEGA_HOST_ID: c.firstAddress,
      OMEGA_MANAGER_LISTEN: `${c.firstAddress}:${c.managerPort}`,
      OMEGA_MANAGER_TOKEN: t.manager,
      OMEGA_CAPACITY: String(masterConfig.localCapacity),
      OMEGA_POOL_SIZE: masterConfig.localPoolSize,
      ...tls.manager,
    };
    loadDnsConfig({ env: dns });
    this.dockerSocket = loadManagerConfig({ env: manager }).dockerSocket;
    return { dns, master, manager };
  }

  private supervise(spec: ChildSpec): Supervised {
    const child = new Supervised(spec, (source, line) => this.logs.line(source, line), this.log, (name) => this.fail(name));
    this.children.push(child);
    child.start();
    return child;
  }

  private program(name: string, env: NodeJS.ProcessEnv, stopGraceMs: number): ChildSpec {
    const { cmd, args } = selfCommand(name);
    return { name, cmd, args, env, stopGraceMs, ipc: true };
  }

  /** Poll `check` until it is true; fail early when `child` has exited and is not coming back. */
  private async ready(what: string, check: () => Promise<boolean>, child?: Supervised): Promise<void> {
    const deadline = Date.now() + this.config.startTimeoutMs;
    let last: unknown = null; // not ready yet is the expected answer; the last one is said if it never is
    for (;;) {
      if (await check().catch((err: unknown) => ((last = err), false))) return;
      if (Date.now() > deadline) {
        throw new Error(`${what} is not ready after ${this.config.startTimeoutMs} ms${last ? ` (last: ${(last as Error).message})` : ''}; see its log above`, { cause: last });
      }
      if (this.stopping) throw new Error('stopping');
      await new Promise((r) => setTimeout(r, child && !child.running ? 500 : 100));
    }
  }

  async start(): Promise<void> {
    this.tokens = prepareState(this.stateDir);
    const earlierUp = claimStateDir(this.stateDir); // throws if another up runs with it: nothing of this one is started
    this.claimed = true;
    this.unfinished = earlierUp !== null;
    if (earlierUp !== null) this.log.warn({ pid: earlierUp }, `an earlier omega up (pid ${earlierUp}) with this state directory did not stop cleanly; what it left is cleaned up once everything runs`);
    writeMasterUrl(this.stateDir, this.masterUrl);
    if (this.config.tls === 'local') {
      this.ca = await prepareLocalCa(this.stateDir);
      if (this.ca.made) this.log.info(`made a local CA for this machine's Omega: ${this.ca.certFile} (its key beside it, mode 600)`);
      const chosen = await ingressPort(this.config.firstAddress, this.config.ingressPort);
      this.ingressPort = chosen.port;
      if (chosen.why) this.log.warn(chosen.why);
      this.agent = new Agent({ connect: { ca: [...rootCertificates, readFileSync(this.ca.certFile, 'utf8')] } });
    }
    this.master = new MasterClient(this.masterUrl, this.tokens.api, this.agent, 30_000);
    const c = this.config;
    const redisUrl = c.redisUrl;
    const env = this.environments(redisUrl);

    if (await redisAnswers(redisUrl)) {
      const server = await redisServer(redisUrl);
      if (server && server.configFile === redisConfPath(this.stateDir)) {
        // Its own redis-server, left by an up that was killed: not to be adopted unsupervised, with that run's state in it.
        this.log.warn(
          { pid: server.pid },
          `the redis-server an earlier omega up started (pid ${server.pid}) still runs at ${safeUrl(redisUrl)}, with that run's hosts and sandboxes; shutting it down (SAVE) to start it again under this up`,
        );
        await shutdownRedis(redisUrl);
        this.unfinished = true;
      } else {
        this.log.info(`using the Redis that answers at ${safeUrl(redisUrl)}`);
      }
    }
    if (!(await redisAnswers(redisUrl, 500))) {
      const spec = ownRedis(redisUrl, this.stateDir);
      if ('error' in spec) throw new Error(spec.error);
      this.log.info(`starting redis-server for ${safeUrl(redisUrl)} (data in ${this.stateDir})`);
      const redis = this.supervise(spec);
      await this.ready('redis-server', () => redisAnswers(redisUrl, 500), redis);
    }

    const dns = this.supervise(this.program('dns', env.dns, 10_000));
    const manager = this.supervise(this.program('manager', env.manager, 35_000));
    await this.ready('omega dns', async () => (await fetch(`${env.master.OMEGA_DNS_API_URL}/healthz`)).ok, dns);
    await this.ready(`the manager on ${c.firstAddress}`, async () => (await fetch(`http://${env.manager.OMEGA_MANAGER_LISTEN}/healthz`)).ok, manager);
    // The master stops its own managers, and may take its time deleting what it was creating.
    const master = this.supervise(this.program('master', env.master, 65_000));
    await this.ready('omega master', async () => {
      const res = await request(`${this.masterUrl}/healthz`, { dispatcher: this.agent });
      await res.body.dump();
      return res.statusCode === 200;
    }, master);
    await this.ready('the first host', async () => (await hostIds(this.master!)).includes(this.managerHostId), manager);
    if (this.unfinished) await this.finishEarlierRun();
    await this.warnOfStrangers();
    process.stdout.write(
      nextSteps(
        { masterUrl: this.masterUrl, stateDir: c.stateDir, dnsListen: c.dnsListen, zone: c.zone, apiToken: this.tokens.api, caFile: this.ca?.certFile ?? null, ingressPort: this.ca ? this.ingressPort : null },
        this.logs.colorize,
      ),
    );
  }

  /**
   * What an earlier, killed `up` left: its sandboxes, deleted through the
   * master as its Ctrl-C would have, and the containers of its hosts that
   * are not running now (their managers are gone), removed.
   */
  private async finishEarlierRun(): Promise<void> {
    const { deleted, failed, hosts } = await deleteSandboxes(this.master!, this.log);
    const alive = new Set((await listHosts(this.master!)).filter((h) => h.health === 'alive' || h.health === 'draining').map((h) => h.id));
    const gone = hosts.filter((h) => !alive.has(h));
    for (const h of hosts) this.hosts.add(h);
    const removed = gone.length ? await removeLeftovers(gone, this.dockerSocket, this.log, this.env.OMEGA_WORKSPACE_IMAGE_DIR || undefined) : { containers: 0, volumes: 0 };
    this.log.info({ deleted, ...removed }, `deleted ${deleted} sandbox${deleted === 1 ? '' : 'es'} the earlier omega up left`);
    this.unfinished = failed > 0;
  }

  /** A host alive in this Redis that this `up` does not run (a manager left running by another): said, never used quietly. */
  private async warnOfStrangers(): Promise<void> {
    for (const h of await listHosts(this.master!)) {
      if ((h.health === 'alive' || h.health === 'draining') && h.id !== this.managerHostId) {
        this.log.warn({ hostId: h.id, managerUrl: h.managerUrl }, `host ${h.id} is alive in this Redis but this omega up did not start it; the master will give it sandboxes too`);
      }
    }
  }

  /**
   * Delete the sandboxes through the master, stop the master (and the
   * managers it started) and the first manager, remove anything Omega left
   * on these hosts, then stop DNS and Redis.
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      if (!this.claimed) return; // another up holds the state directory: nothing was started, nothing is ours to stop
      const [redis, dns, manager, master] = ['redis', 'dns', 'manager', 'master'].map((n) => this.children.find((ch) => ch.spec.name === n));
      const hosts = this.hosts;
      // Sandboxes this run may have left in Redis: none if the master never started, else those it could not delete.
      let clean = !master && !this.unfinished;
      if (master?.running && this.master) {
        try {
          for (const h of await hostIds(this.master)) hosts.add(h);
          const { deleted, failed, hosts: on } = await deleteSandboxes(this.master, this.log);
          for (const h of on) hosts.add(h);
          if (deleted) this.log.info(`deleted ${deleted} sandbox${deleted === 1 ? '' : 'es'}`);
          clean = failed === 0;
        } catch (err) {
          this.log.warn({ err }, 'could not delete the sandboxes through the master; removing their containers directly (the next omega up deletes their records)');
        }
      }
      await Promise.all([master?.stop(), manager?.stop()]);
      await this.master?.close().catch((err: unknown) => this.log.warn({ err }, 'could not close the connections to the master'));
      await removeLeftovers([...hosts], this.dockerSocket, this.log, this.env.OMEGA_WORKSPACE_IMAGE_DIR || undefined).catch((err: unknown) => this.log.warn({ err }, 'could not look for containers left behind'));
      await dns?.stop();
      await redis?.stop();
      if (clean) releaseStateDir(this.stateDir);
      this.log.info('stopped');
    })();
    return this.stopping;
  }

  /** A second Ctrl-C: kill every child now (their process groups too), then still remove the containers. */
  async kill(): Promise<void> {
    if (!this.claimed) return;
    const more = this.master
      ? await hostIds(this.master).catch((err: unknown) => {
          this.log.warn({ err }, 'could not ask the master for its hosts; removing the containers of those known here');
          return [];
        })
      : [];
    for (const h of more) this.hosts.add(h);
    for (const ch of this.children) ch.kill();
    await removeLeftovers([...this.hosts], this.dockerSocket, this.log, this.env.OMEGA_WORKSPACE_IMAGE_DIR || undefined).catch((err: unknown) => this.log.warn({ err }, 'could not look for containers left behind'));
  }
}
