import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Logger } from '../../src/log.js';
import { RestartBackoff } from '../../src/restarts.js';

export interface ChildSpec {
  /** The name its plain lines are marked with (its JSON lines name their own service). */
  name: string;
  cmd: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  /** Time SIGTERM has before SIGKILL. */
  stopGraceMs: number;
  /**
   * An IPC channel to the child (Omega's own programs): if `up` dies without
   * stopping it (SIGKILL, a crash), the channel closes and the child stops
   * itself rather than run on unsupervised (cli/cli.ts).
   */
  ipc?: boolean;
}

/**
 * One supervised child: its output lines go to the log stream; if it exits
 * without being asked to, it is restarted with a growing pause, and after too
 * many crashes in a minute (src/restarts.ts) `onGiveUp` is called (`up` then
 * stops everything).
 */
export class Supervised {
  private proc: ChildProcess | null = null;
  private stopping = false;
  private readonly backoff = new RestartBackoff();
  private restartTimer: NodeJS.Timeout | null = null;
  private exited: Promise<void> = Promise.resolve();

  constructor(
    readonly spec: ChildSpec,
    private readonly sink: (source: string, line: string) => void,
    private readonly log: Logger,
    private readonly onGiveUp: (name: string) => void,
  ) {}

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  get running(): boolean {
    return this.proc !== null && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  start(): void {
    const { name, cmd, args, env } = this.spec;
    // detached: its own process group, so the terminal's Ctrl-C reaches only
    // `up`, which then stops the children in order (sandboxes first).
    const proc = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe', ...(this.spec.ipc ? (['ipc'] as const) : [])], detached: true });
    this.proc = proc;
    for (const stream of [proc.stdout, proc.stderr]) {
      createInterface({ input: stream!, crlfDelay: Infinity }).on('line', (line) => this.sink(name, line));
    }
    this.exited = new Promise((resolve) => {
      proc.once('exit', (code, signal) => {
        resolve();
        if (this.stopping) return;
        this.log.warn({ child: name, code, signal }, `${name} exited`);
        this.crashed();
      });
    });
    proc.once('error', (err) => this.log.error({ child: name, err: err.message }, `${name} could not start`));
  }

  private crashed(): void {
    const delayMs = this.backoff.exited();
    if (delayMs === null) {
      this.log.error({ child: this.spec.name, crashes: this.backoff.recent }, `${this.spec.name} keeps exiting; giving up`);
      this.onGiveUp(this.spec.name);
      return;
    }
    this.log.info({ child: this.spec.name, delayMs }, `restarting ${this.spec.name}`);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (!this.stopping) this.start();
    }, delayMs);
  }

  /** SIGTERM, then SIGKILL after the grace time; resolves once it has exited. No restart afterwards. */
  async stop(graceMs = this.spec.stopGraceMs): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    if (!this.running) return;
    this.proc!.kill('SIGTERM');
    const timer = setTimeout(() => {
      this.log.warn({ child: this.spec.name, graceMs }, `${this.spec.name} did not stop in time; killing it`);
      this.kill();
    }, graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** SIGKILL to its whole process group (a master's local managers too). */
  kill(): void {
    this.stopping = true;
    const pid = this.proc?.pid;
    if (!pid || !this.running) return;
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      this.proc!.kill('SIGKILL');
    }
  }
}
