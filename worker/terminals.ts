import { createRequire } from 'node:module';
import { constants } from 'node:os';
import type { IPty } from 'node-pty';
import type { ExitStatus, Params, Result, TerminalInfo } from '../src/protocol/worker.js';
import type { Client } from './clients.js';
import { WorkerError } from './errors.js';
import { childEnv, Job, JobTable, killGroup, signalName } from './jobs.js';
import type { WorkerLogger } from './log.js';
import { Ring } from './ring.js';
import type { SandboxUser } from './user.js';

type PtyModule = typeof import('node-pty');
let ptyModule: PtyModule | null = null;

/** node-pty is native and external to the bundle; load it on first use so the worker starts without it. */
function loadPty(): PtyModule {
  ptyModule ??= createRequire(import.meta.url)('node-pty') as PtyModule;
  return ptyModule;
}

class Terminal extends Job {
  readonly ring: Ring;
  exit: ExitStatus | null = null;
  private readonly exitedPromise: Promise<void>;

  constructor(
    id: string,
    readonly pty: IPty,
    readonly cwd: string,
    scrollback: number,
    onExit: () => void,
  ) {
    super(id);
    this.ring = new Ring(scrollback);
    pty.onData((data) => {
      this.ring.push(data, undefined);
      this.emit('term.output', { termId: id, data });
    });
    this.exitedPromise = new Promise((resolve) =>
      pty.onExit(({ exitCode, signal }) => {
        this.exit = { exitCode: signal ? null : exitCode, signal: signalName(signal, constants.signals) };
        this.exitedAt = Date.now();
        this.emit('term.exit', { termId: id, ...this.exit });
        onExit();
        resolve();
      }),
    );
  }

  info(): TerminalInfo {
    return { termId: this.id, pid: this.pty.pid, cols: this.pty.cols, rows: this.pty.rows, cwd: this.cwd, startedAt: this.startedAt, attached: this.subscribers.size, exit: this.exit };
  }

  /** The shell is a session leader (node-pty calls setsid), so its group holds its jobs: hang them all up. */
  async terminate(graceMs: number): Promise<void> {
    if (this.exit) return;
    killGroup(this.pty.pid, 'SIGHUP');
    const timer = setTimeout(() => killGroup(this.pty.pid, 'SIGKILL'), graceMs);
    await this.exitedPromise;
    clearTimeout(timer);
  }
}

export interface TerminalOptions {
  scrollbackBytes: number;
  keepExited: number;
  /** Throws LIMIT_REACHED when no more terminals or processes may start. */
  checkLimit(): void;
  /** Resolve a workspace-relative directory for cwd. */
  resolveDir(rel: string): Promise<string>;
  user: SandboxUser;
  log: WorkerLogger;
}

/** Terminals: bash in a PTY each, outliving the client that opened them. */
export class Terminals {
  readonly table: JobTable<Terminal>;

  constructor(private readonly opts: TerminalOptions) {
    this.table = new JobTable('t', 'NO_SUCH_TERMINAL', opts.keepExited);
  }

  /** `program` replaces the login shell (the E2B agent starts the command its client names in the PTY). */
  async open(p: Params<'term.open'>, client: Client, program: { command: string; args: string[] } = { command: 'bash', args: ['-l'] }): Promise<Result<'term.open'>> {
    this.opts.checkLimit();
    const cwd = await this.opts.resolveDir(p.cwd ?? '');
    let pty: IPty;
    try {
      pty = loadPty().spawn(program.command, program.args, {
        name: 'xterm-256color',
        cols: p.cols,
        rows: p.rows,
        cwd,
        env: childEnv({ TERM: 'xterm-256color', COLORTERM: 'truecolor', ...p.env }) as Record<string, string>,
        ...this.opts.user.spawnOptions(),
      });
    } catch (err) {
      throw new WorkerError('SPAWN_FAILED', `could not start a terminal: ${(err as Error).message}`, { cause: err });
    }
    const id = this.table.newId();
    const term = new Terminal(id, pty, cwd, this.opts.scrollbackBytes, () => this.table.exited());
    this.table.add(term);
    term.attach(client);
    this.opts.log.info({ termId: id, pid: pty.pid }, 'terminal opened');
    return { termId: id, pid: pty.pid };
  }

  input(p: Params<'term.input'>): Result<'term.input'> {
    const t = this.running(p.termId);
    t.pty.write(p.data);
    return {};
  }

  resize(p: Params<'term.resize'>): Result<'term.resize'> {
    this.running(p.termId).pty.resize(p.cols, p.rows);
    return {};
  }

  /** Hang up the terminal and forget it. */
  async close(p: Params<'term.close'>): Promise<Result<'term.close'>> {
    const t = this.table.get(p.termId);
    await t.terminate(2000);
    this.table.remove(t.id);
    return {};
  }

  /** Signal the terminal's process group (the E2B agent's SendSignal); nothing for one that has exited. */
  signal(termId: string, signal: NodeJS.Signals): void {
    const t = this.table.get(termId);
    if (!t.exit) killGroup(t.pty.pid, signal);
  }

  list(): Result<'term.list'> {
    return { terminals: this.table.list().map((t) => t.info()) };
  }

  /** The scrollback goes in the result and the client is subscribed in the same tick, so no output falls between. */
  attach(p: Params<'term.attach'>, client: Client): Result<'term.attach'> {
    const t = this.table.get(p.termId);
    t.attach(client);
    return { termId: t.id, scrollback: t.ring.text(), truncated: t.ring.truncated, exit: t.exit };
  }

  detach(p: Params<'term.detach'>, client: Client): Result<'term.detach'> {
    this.table.get(p.termId).detach(client);
    return {};
  }

  private running(id: string): Terminal {
    const t = this.table.get(id);
    if (t.exit) throw new WorkerError('PROCESS_EXITED', `terminal ${id} has exited`);
    return t;
  }
}
