import { randomBytes } from 'node:crypto';
import Docker from 'dockerode';
import { apiCaller, type Call } from './http.js';
import { freePort } from './ports.js';
import { Program, type LogLine } from './programs.js';
import type { TestRedis } from './redis.js';
import { sweepDocker, type Scope } from './whole.js';

export interface ClusterHost {
  hostId: string;
  address: string;
  managerUrl: string;
  manager: Program;
}

export interface ClusterOptions {
  /** One manager per address (127.0.0.x), each with its own host id. */
  addresses: string[];
  /** Warm containers per host (of the one template). */
  poolSize: number;
  capacity?: number;
  template?: string;
  restartDelayMs?: number;
  /** More settings of every master / every manager (e.g. short intervals). */
  masterEnv?: Record<string, string>;
  managerEnv?: Record<string, string>;
  onLine?: (l: LogLine) => void;
}

/**
 * A whole Omega of real child processes (`omega dns`, one `omega master`
 * with no provider, a `omega manager` per address) on a test's Redis, each
 * restarted after a kill like systemd would. Everything is labelled with
 * this run's own host ids, so `sweep()` removes exactly what it left in
 * Docker.
 */
export class Cluster implements Scope {
  readonly tag = randomBytes(3).toString('hex');
  readonly prefix = `chaos${this.tag}`;
  readonly zone = 'sandbox.test';
  readonly apiToken = randomBytes(16).toString('hex');
  private readonly dnsToken = randomBytes(16).toString('hex');
  private readonly managerToken = randomBytes(16).toString('hex');
  readonly docker = new Docker();
  dns!: Program;
  master!: Program;
  hosts: ClusterHost[] = [];
  masterUrl = '';
  dnsApiUrl = '';
  dnsPort = 0;
  api!: Call;
  readonly template: string;

  constructor(
    readonly redis: TestRedis,
    private readonly opts: ClusterOptions,
  ) {
    this.template = opts.template ?? 'python';
  }

  get programs(): Program[] {
    return [this.dns, this.master, ...this.hosts.map((h) => h.manager)].filter(Boolean);
  }

  private base(): NodeJS.ProcessEnv {
    return {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      OMEGA_REDIS_URL: this.redis.url,
      OMEGA_REDIS_PREFIX: this.prefix,
      OMEGA_ZONE: this.zone,
      OMEGA_TEMPLATES: this.template,
      OMEGA_LOG_LEVEL: 'info',
    };
  }

  private program(name: string, program: string, env: NodeJS.ProcessEnv): Program {
    return new Program(name, program, env, { restartDelayMs: this.opts.restartDelayMs ?? 1000, onLine: this.opts.onLine });
  }

  /** Start every program and wait until each answers (the managers registered, the master listening). */
  async start(): Promise<void> {
    const [dnsPort, dnsApiPort, masterPort, ...managerPorts] = await Promise.all([freePort(), freePort(), freePort(), ...this.opts.addresses.map(() => freePort())]);
    this.dnsPort = dnsPort;
    this.dnsApiUrl = `http://127.0.0.1:${dnsApiPort}`;
    this.masterUrl = `http://127.0.0.1:${masterPort}`;
    this.api = apiCaller(this.masterUrl, this.apiToken);
    this.dns = this.program('dns', 'dns', {
      ...this.base(),
      OMEGA_DNS_LISTEN: `127.0.0.1:${dnsPort}`,
      OMEGA_DNS_API_LISTEN: `127.0.0.1:${dnsApiPort}`,
      OMEGA_DNS_TOKEN: this.dnsToken,
    });
    this.hosts = this.opts.addresses.map((address, i) => {
      const hostId = `${this.prefix}-${String.fromCharCode(97 + i)}`;
      const managerUrl = `http://${address}:${managerPorts[i]}`;
      const manager = this.program(`manager ${hostId}`, 'manager', {
        ...this.base(),
        OMEGA_HOST_IP: address,
        OMEGA_HOST_ID: hostId,
        OMEGA_MANAGER_LISTEN: `${address}:${managerPorts[i]}`,
        OMEGA_MANAGER_TOKEN: this.managerToken,
        OMEGA_CAPACITY: String(this.opts.capacity ?? 20),
        OMEGA_POOL_SIZE: String(this.opts.poolSize),
        OMEGA_POOL_MAX: '0',
        OMEGA_SANDBOX_MEMORY_MB: '256',
        OMEGA_SANDBOX_CPUS: '0.5',
        OMEGA_SANDBOX_PIDS: '128',
        ...this.opts.managerEnv,
      });
      return { hostId, address, managerUrl, manager };
    });
    this.master = this.program('master', 'master', {
      ...this.base(),
      OMEGA_PROVIDER: 'none',
      OMEGA_MASTER_LISTEN: `127.0.0.1:${masterPort}`,
      OMEGA_API_TOKEN: this.apiToken,
      OMEGA_DNS_API_URL: this.dnsApiUrl,
      OMEGA_DNS_TOKEN: this.dnsToken,
      OMEGA_MANAGER_TOKEN: this.managerToken,
      ...this.opts.masterEnv,
    });
    this.dns.start();
    for (const h of this.hosts) h.manager.start();
    await this.dns.ready(`${this.dnsApiUrl}/healthz`);
    this.master.start();
    await this.ready();
  }

  /** Every program answers (after a restart: its new process), and the master sees every host alive. */
  async ready(timeoutMs = 60_000): Promise<void> {
    await Promise.all([
      this.dns.ready(`${this.dnsApiUrl}/healthz`, timeoutMs),
      this.master.ready(`${this.masterUrl}/healthz`, timeoutMs),
      ...this.hosts.map((h) => h.manager.ready(`${h.managerUrl}/healthz`, timeoutMs)),
    ]);
  }

  /** The manager of a host, by host id. */
  host(hostId: string): ClusterHost {
    const h = this.hosts.find((x) => x.hostId === hostId);
    if (!h) throw new Error(`no host ${hostId} in this cluster`);
    return h;
  }

  /** Every program's log lines whose msg is `msg`. */
  logged(msg: string): Array<Record<string, unknown> & { program: string }> {
    return this.programs.flatMap((p) => p.logged(msg).map((j) => ({ ...j, program: p.name })));
  }

  /** Stop every program (no restarts), gracefully, or at once with `kill`. */
  async stop(opts: { kill?: boolean } = {}): Promise<void> {
    if (opts.kill) {
      await Promise.all(this.programs.map((p) => p.stop(0)));
      return;
    }
    await this.master?.stop();
    await Promise.all(this.hosts.map((h) => h.manager.stop()));
    await this.dns?.stop();
  }

  /** Remove every container and volume of this run's hosts still in Docker (the programs stopped first). */
  sweep(): Promise<{ containers: number; volumes: number }> {
    return sweepDocker(this.hosts.map((h) => h.hostId), this.docker);
  }
}
