import { spawn, type ChildProcess } from 'node:child_process';
import { OmegaError } from '../../src/errors.js';
import type { Logger } from '../../src/log.js';
import { RESTART_POLICY, RestartBackoff } from '../../src/restarts.js';
import { selfCommand } from '../../src/self.js';
import type { LaunchedHost, LostHostAction, Provider } from './provider.js';

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
  /** OMEGA_TLS of the managers: off, or their ingress on `<address>:<ingressPort>`. */
  tls: string;
  ingressPort: number;
  /** Scale-in (OMEGA_MIN_HOSTS, OMEGA_HOST_IDLE_SECONDS). */
  scaleIn: { minHosts: number; idleSeconds: number };
  /** How long a manager just (re)started has to register before a lost host is blamed on it (OMEGA_SCALE_OUT_WAIT_MS). */
  registerWaitMs: number;
  /** Addresses already taken by hosts this provider did not start (read at launch). */
  takenAddresses(): Promise<string[]>;
}

/** Settings a manager shares with whoever starts it, handed on as they are. */
const PASSED_ON = /^OMEGA_(SANDBOX_|HEARTBEAT_|INGRESS_(MAX_CONNECTIONS|HANDSHAKE_TIMEOUT_MS)$|TLS_RELOAD_INTERVAL_MS$|POOL_(MAX|DEMAND_WINDOW_MS|REFILL_PARALLEL)$|DOCKER_SOCKET$|IMAGE_PREFIX$|TEMPLATES$|TEMPLATE_REPOS$|ORPHAN_GRACE_MS$|IDLE_CHECK_INTERVAL_MS$|READY_TIMEOUT_MS$|SNAPSHOT_STORE$|S3_(ENDPOINT|REGION)$)/;

/** Time a manager has to stop on SIGTERM (it drains its warm pool) before SIGKILL. */
const STOP_GRACE_MS = 35_000;

/** One host's manager process, kept across its restarts. */
interface Manager {
  hostId: string;
  env: NodeJS.ProcessEnv;
  proc: ChildProcess;
  startedAtMs: number;
  /** Times it was started again after exiting unasked. */
  restarts: number;
  backoff: RestartBackoff;
  restartTimer: NodeJS.Timeout | null;
  /** Asked to stop (terminate, stop): its exit is not a crash. */
  stopping: boolean;
  exited: Promise<void>;
}

const running = (p: ChildProcess) => p.exitCode === null && p.signalCode === null;

/**
 * Development and tests: a new host is a new `omega manager` process on the
 * next loopback address (127.0.0.2, 127.0.0.3, ...), whose containers publish
 * their ports on that address, as an EC2 instance's would on its own.
 *
 * The provider supervises what it starts. A manager that exits unasked
 * (crash, SIGKILL) is started again with the same environment on the same
 * address, after the pauses of src/restarts.ts; the fifth exit within a
 * minute gives up on the host (then reported as lost for good). The manager
 * reconciles its containers with Redis when it starts, so what the dead one
 * ran is taken back or removed. Each manager has an IPC channel to the
 * master: when the master dies, the channel closes and the manager stops
 * itself (cli/cli.ts), rather than run on with no one to supervise it.
 */
export class LocalProvider implements Provider {
  readonly name = 'local';
  readonly scaleIn: { readonly minHosts: number; readonly idleSeconds: number };
  private readonly managers = new Map<string, Manager>();
  /** Hosts whose manager kept exiting: not restarted again. */
  private readonly gaveUp = new Set<string>();
  private stopped = false;

  constructor(
    private readonly opts: LocalProviderOptions,
    private readonly log: Logger,
  ) {
    this.scaleIn = Object.freeze({ ...opts.scaleIn });
  }

  private async nextAddress(): Promise<string> {
    const taken = new Set([...(await this.opts.takenAddresses()), ...this.managers.keys()]);
    const [a, b, c, d] = this.opts.firstAddress.split('.').map(Number) as [number, number, number, number];
    for (let i = 0; i < 250; i++) {
      const addr = `${a}.${b}.${c}.${d + i}`;
      if (d + i > 254) break;
      if (!taken.has(addr)) return addr;
    }
    throw new OmegaError('NO_CAPACITY', `no free loopback address from ${this.opts.firstAddress}`);
  }

  async launch(): Promise<LaunchedHost> {
    if (this.stopped) throw new OmegaError('PROVIDER_FAILED', 'the local provider is stopped');
    if (this.managers.size >= this.opts.maxHosts) {
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
      OMEGA_TLS: o.tls,
      ...(o.tls !== 'off' ? { OMEGA_INGRESS_LISTEN: `${address}:${o.ingressPort}` } : {}),
      ...(o.managerToken ? { OMEGA_MANAGER_TOKEN: o.managerToken } : { OMEGA_DEV: '1' }),
    });
    this.gaveUp.delete(address);
    const m: Manager = { hostId: address, env, restarts: 0, backoff: new RestartBackoff(), restartTimer: null, stopping: false, ...this.startProcess(env, (...a) => this.onExit(m, ...a)) };
    this.managers.set(address, m);
    this.log.info({ hostId: address, pid: m.proc.pid }, 'local manager started');
    return { hostId: address, address };
  }

  private startProcess(env: NodeJS.ProcessEnv, onExit: (proc: ChildProcess, code: number | null, signal: NodeJS.Signals | null) => void) {
    const { cmd, args } = selfCommand('manager');
    // The 'ipc' entry: the channel closes when this process dies, and the manager stops then.
    const proc = spawn(cmd, args, { env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    // The channel is for the manager to notice the master's end; it must not keep the master running.
    proc.channel?.unref();
    const exited = new Promise<void>((resolve) => {
      let done = false;
      const end = (code: number | null, signal: NodeJS.Signals | null) => {
        if (done) return;
        done = true;
        resolve();
        onExit(proc, code, signal);
      };
      proc.once('exit', end);
      proc.once('error', (err) => {
        this.log.error({ hostId: env.OMEGA_HOST_ID, err }, 'local manager could not be started');
        if (proc.pid === undefined) end(null, null); // it never ran: no 'exit' follows
      });
    });
    return { proc, exited, startedAtMs: Date.now() };
  }

  /** Drop a manager from the books (unless its address has been launched anew since). */
  private forget(m: Manager): void {
    if (this.managers.get(m.hostId) === m) this.managers.delete(m.hostId);
  }

  private onExit(m: Manager, proc: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (m.proc !== proc) return;
    if (m.stopping || this.stopped) {
      this.forget(m);
      this.log.info({ hostId: m.hostId, code, signal }, 'local manager exited');
      return;
    }
    const delayMs = m.backoff.exited();
    if (delayMs === null) {
      this.forget(m);
      this.gaveUp.add(m.hostId);
      this.log.error(
        { hostId: m.hostId, code, signal, exits: m.backoff.recent, withinMs: RESTART_POLICY.windowMs },
        'local manager keeps exiting; not restarting it again (its host stays lost)',
      );
      return;
    }
    this.log.warn({ hostId: m.hostId, code, signal, delayMs }, 'local manager exited unasked; restarting it');
    m.restartTimer = setTimeout(() => {
      m.restartTimer = null;
      if (m.stopping || this.stopped) {
        this.forget(m);
        return;
      }
      m.restarts++;
      Object.assign(m, this.startProcess(m.env, (...a) => this.onExit(m, ...a)));
      this.log.info({ hostId: m.hostId, pid: m.proc.pid, restarts: m.restarts }, 'local manager restarted');
    }, delayMs);
    m.restartTimer.unref();
  }

  /**
   * A lost host of ours: a manager waiting to be restarted, or started again
   * moments ago, is on its way back. One that has run for longer while its
   * host is lost is hung (a live manager on this machine heart-beats): it is
   * killed, and so restarted.
   */
  async hostLost(hostId: string, lostForMs: number): Promise<LostHostAction> {
    if (this.gaveUp.has(hostId)) return 'reported';
    const m = this.managers.get(hostId);
    if (!m) return 'none'; // not started here: whoever did supervises it (omega up its first manager)
    if (m.stopping || this.stopped) return 'none';
    if (m.restartTimer || !running(m.proc)) return 'restarted';
    if (Date.now() - m.startedAtMs < this.opts.registerWaitMs) return m.restarts > 0 ? 'restarted' : 'none';
    this.log.warn({ hostId, pid: m.proc.pid, lostForMs }, 'local manager runs but its host is lost: killing it, to start it again');
    m.proc.kill('SIGKILL');
    return 'restarted';
  }

  async terminate(hostId: string): Promise<void> {
    const m = this.managers.get(hostId);
    if (!m) return;
    m.stopping = true;
    if (m.restartTimer) {
      clearTimeout(m.restartTimer);
      m.restartTimer = null;
      this.forget(m);
      return;
    }
    if (!running(m.proc)) return;
    m.proc.kill('SIGTERM');
    const timer = setTimeout(() => m.proc.kill('SIGKILL'), STOP_GRACE_MS);
    await m.exited;
    clearTimeout(timer);
  }

  /** The manager process of a host this provider started. */
  pid(hostId: string): number | undefined {
    return this.managers.get(hostId)?.proc.pid;
  }

  owns(hostId: string): boolean {
    return this.managers.has(hostId);
  }

  /** Stop every manager this provider started (their sandboxes keep running, as a manager's stop leaves them). */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all([...this.managers.keys()].map((h) => this.terminate(h)));
  }
}
