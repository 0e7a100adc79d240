import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { selfCommand } from '../../src/self.js';
import { sleep } from './ports.js';

/** One line a program printed: its JSON log fields when it is a log line. */
export interface LogLine {
  program: string;
  atMs: number;
  line: string;
  json: Record<string, unknown> | null;
}

export interface ProgramOptions {
  /** How long after an unasked exit it is started again (systemd's RestartSec). */
  restartDelayMs: number;
  /** Every line it prints, as it prints it. */
  onLine?: (l: LogLine) => void;
  /** SIGTERM's time before SIGKILL in stop(). */
  stopGraceMs?: number;
}

/**
 * An `omega <program>` child process with the same settings on every start,
 * restarted after any exit it was not asked for, as systemd's Restart=always
 * would: kill() is a real `kill -9`, and the program comes back
 * `restartDelayMs` later. Its output is kept line by line (and parsed where
 * JSON). The child has an IPC channel, so it stops itself if this process
 * dies without stopping it (cli/cli.ts).
 */
export class Program {
  private proc: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  private restartTimer: NodeJS.Timeout | null = null;
  private stopping = false;
  readonly lines: LogLine[] = [];
  /** How many times it was started, and killed by kill(). */
  starts = 0;
  kills = 0;

  constructor(
    readonly name: string,
    private readonly program: string,
    readonly env: NodeJS.ProcessEnv,
    private readonly opts: ProgramOptions,
  ) {}

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  get running(): boolean {
    return this.proc !== null && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  start(): void {
    this.stopping = false;
    const { cmd, args } = selfCommand(this.program);
    const proc = spawn(cmd, args, { env: this.env, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    this.proc = proc;
    this.starts++;
    for (const stream of [proc.stdout!, proc.stderr!]) {
      createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => {
        let json: Record<string, unknown> | null = null;
        if (line.startsWith('{')) {
          try {
            json = JSON.parse(line) as Record<string, unknown>;
          } catch {
            // a plain line that looks like JSON
          }
        }
        const l = { program: this.name, atMs: Date.now(), line, json };
        this.lines.push(l);
        this.opts.onLine?.(l);
      });
    }
    this.exited = new Promise((resolve) => {
      proc.once('exit', () => {
        resolve();
        if (this.stopping || this.proc !== proc) return;
        this.restartTimer = setTimeout(() => {
          this.restartTimer = null;
          if (!this.stopping) this.start();
        }, this.opts.restartDelayMs);
      });
    });
  }

  /** `kill -9`; resolves once it is dead. It is started again restartDelayMs later, unless `restart` is false. */
  async kill(opts: { restart?: boolean } = {}): Promise<void> {
    if (!this.running) return;
    if (opts.restart === false) this.stopping = true;
    this.kills++;
    const exited = this.exited;
    this.proc!.kill('SIGKILL');
    await exited;
  }

  /** SIGTERM (SIGKILL after the grace time; at once with 0) and no restart; resolves once it has exited. */
  async stop(graceMs = this.opts.stopGraceMs ?? 30_000): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    if (!this.running) return;
    const exited = this.exited;
    const proc = this.proc!;
    proc.kill(graceMs === 0 ? 'SIGKILL' : 'SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }

  /** Poll `url` until it answers 200 (a program's /healthz); throws after `timeoutMs` with its last lines. */
  async ready(url: string, timeoutMs = 60_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
        await res.arrayBuffer();
        if (res.ok) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > end) {
        const tail = this.lines.slice(-20).map((l) => l.line).join('\n');
        throw new Error(`${this.name} is not ready at ${url} after ${timeoutMs} ms; its last lines:\n${tail}`);
      }
      await sleep(100);
    }
  }

  /** Its log lines whose `msg` is `msg`. */
  logged(msg: string): Array<Record<string, unknown>> {
    return this.lines.flatMap((l) => (l.json && l.json.msg === msg ? [l.json] : []));
  }
}
