import { spawn, type ChildProcess } from 'node:child_process';
import { OmegaError } from '../../src/errors.js';
import type { Logger } from '../../src/log.js';
import { selfCommand } from '../../src/self.js';
import type { LaunchedHost, Provider } from './provider.js';

export interface LocalProviderOptions {
  firstAddress: string;
  maxHosts: number;
  capacity: number;
  /** OMEGA_POOL_SIZE of each manager, e.g. "1" or "python=2,node=1". */
  poolSize: string;
  managerPort: number;
  redisUrl: string;
  redisPrefix: string;
  managerToken: string | undefined;
  zone: string;
  logLevel: string;
  /** Addresses already taken by hosts this provider did not start (read at launch). */
  takenAddresses(): Promise<string[]>;
}

/** Settings a manager shares with whoever starts it, handed on as they are. */
const PASSED_ON = /^OMEGA_(SANDBOX_|HEARTBEAT_|DOCKER_SOCKET$|IMAGE_PREFIX$|TEMPLATES$|TEMPLATE_REPOS$|ORPHAN_GRACE_MS$|READY_TIMEOUT_MS$)/;

/**
 * Development and tests: a new host is a new `omega manager` process on the
 * next loopback address (127.0.0.2, 127.0.0.3, ...), whose containers publish
 * their ports on that address, as an EC2 instance's would on its own.
 */
export class LocalProvider implements Provider {
  readonly name = 'local';
  private readonly children = new Map<string, ChildProcess>();

  constructor(
    private readonly opts: LocalProviderOptions,
    private readonly log: Logger,
  ) {}

  private async nextAddress(): Promise<string> {
    const taken = new Set([...(await this.opts.takenAddresses()), ...this.children.keys()]);
    const [a, b, c, d] = this.opts.firstAddress.split('.').map(Number) as [number, number, number, number];
    for (let i = 0; i < 250; i++) {
      const addr = `${a}.${b}.${c}.${d + i}`;
      if (d + i > 254) break;
      if (!taken.has(addr)) return addr;
    }
    throw new OmegaError('NO_CAPACITY', `no free loopback address from ${this.opts.firstAddress}`);
  }

  async launch(): Promise<LaunchedHost> {
    if (this.children.size >= this.opts.maxHosts) {
      throw new OmegaError('NO_CAPACITY', `the local provider runs its most hosts already (OMEGA_LOCAL_MAX_HOSTS=${this.opts.maxHosts})`);
    }
    const address = await this.nextAddress();
    const o = this.opts;
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME };
    for (const [k, v] of Object.entries(process.env)) if (PASSED_ON.test(k)) env[k] = v;
    Object.assign(env, {
      OMEGA_REDIS_URL: o.redisUrl,
      OMEGA_REDIS_PREFIX: o.redisPrefix,
      OMEGA_HOST_IP: address,
      OMEGA_HOST_ID: address,
      OMEGA_MANAGER_LISTEN: `${address}:${o.managerPort}`,
      OMEGA_CAPACITY: String(o.capacity),
      OMEGA_POOL_SIZE: o.poolSize,
      OMEGA_ZONE: o.zone,
      OMEGA_LOG_LEVEL: o.logLevel,
      ...(o.managerToken ? { OMEGA_MANAGER_TOKEN: o.managerToken } : { OMEGA_DEV: '1' }),
    });
    const { cmd, args } = selfCommand('manager');
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'inherit', 'inherit'] });
    this.children.set(address, child);
    child.once('exit', (code, signal) => {
      this.children.delete(address);
      this.log.info({ hostId: address, code, signal }, 'local manager exited');
    });
    child.once('error', (err) => this.log.error({ hostId: address, err: err.message }, 'local manager could not start'));
    this.log.info({ hostId: address, pid: child.pid }, 'local manager started');
    return { hostId: address, address };
  }

  async terminate(hostId: string): Promise<void> {
    const child = this.children.get(hostId);
    if (!child || child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 35_000);
    await exited;
    clearTimeout(timer);
  }

  /** The manager process of a host this provider started. */
  pid(hostId: string): number | undefined {
    return this.children.get(hostId)?.pid;
  }

  owns(hostId: string): boolean {
    return this.children.has(hostId);
  }

  /** Stop every manager this provider started (their sandboxes keep running, as a manager's stop leaves them). */
  async stop(): Promise<void> {
    await Promise.all([...this.children.keys()].map((h) => this.terminate(h)));
  }
}
