import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import type { Language, OutputStream, Params, ProcessInfo, ProcExit, Result, RunParams } from '../src/protocol/worker.js';
import type { Client } from './clients.js';
import { WorkerError } from './errors.js';
import { childEnv, groupAlive, Job, JobTable, killGroup } from './jobs.js';
import type { WorkerLogger } from './log.js';
import { Ring } from './ring.js';
import type { SandboxUser } from './user.js';

/** How each language runs a source file. node is the worker's own binary: every image has it. */
const INTERPRETERS: Record<Language, { command: string; file: string }> = {
  python: { command: 'python3', file: 'main.py' },
  node: { command: process.execPath, file: 'main.mjs' },
  bash: { command: 'bash', file: 'main.sh' },
};

/**
 * After the main process exits, how long to wait for its pipes to close. A
 * background grandchild can hold them open forever; its output after this is
 * not collected.
 */
const PIPE_DRAIN_MS = 500;

class Proc extends Job {
  readonly ring: Ring<OutputStream>;
  exit: ProcExit | null = null;
  timedOut = false;
  private readonly done: Promise<void>;
  private timer: NodeJS.Timeout | null = null;
  private watch: NodeJS.Timeout | null = null;

  constructor(
    id: string,
    readonly child: ChildProcess & { pid: number },
    readonly spec: { language: Language | null; command: string; args: string[]; cwd: string },
    scrollback: number,
    timeoutMs: number | undefined,
    onExit: (p: Proc) => void,
  ) {
    super(id);
    this.ring = new Ring(scrollback);
    for (const stream of ['stdout', 'stderr'] as const) {
      const decoder = new StringDecoder('utf8');
      const event = stream === 'stdout' ? 'proc.stdout' : 'proc.stderr';
      child[stream]!.on('data', (chunk: Buffer) => {
        const data = decoder.write(chunk);
        if (!data) return;
        this.ring.push(data, stream);
        this.emit(event, { procId: id, data });
      });
    }
    // Writing to a program that closed its stdin must not throw EPIPE at the worker.
    child.stdin?.on('error', () => {});
    if (timeoutMs) {
      this.timer = setTimeout(() => {
        this.dropDeadline();
        if (!this.exit) this.timedOut = true;
        killGroup(child.pid, 'SIGKILL');
      }, timeoutMs).unref();
    }
    this.done = new Promise((resolve) => {
      let finished = false;
      const finish = (code: number | null, signal: NodeJS.Signals | null) => {
        if (finished) return;
        finished = true;
        if (this.timer) this.lingerUntilDeadline();
        child.stdout?.destroy();
        child.stderr?.destroy();
        this.exitedAt = Date.now();
        this.exit = { exitCode: code, signal, timedOut: this.timedOut, durationMs: this.exitedAt - this.startedAt };
        this.emit('proc.exit', { procId: id, ...this.exit });
        onExit(this);
        resolve();
      };
      child.on('close', finish);
      child.on('exit', (code, signal) => setTimeout(() => finish(code, signal), PIPE_DRAIN_MS).unref());
    });
  }

  /**
   * The time limit ends everything the run started, not just its main
   * process: what it left running in its group (a fork bomb, a job put in the
   * background) is killed at the deadline too. The group is checked each
   * second, and the deadline dropped once it is empty, so that its number,
   * free again, is never signalled.
   */
  private lingerUntilDeadline(): void {
    if (!groupAlive(this.child.pid)) return this.dropDeadline();
    this.watch = setInterval(() => {
      if (!groupAlive(this.child.pid)) this.dropDeadline();
    }, 1000).unref();
  }

  private dropDeadline(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.watch) clearInterval(this.watch);
    this.timer = this.watch = null;
  }

  info(): ProcessInfo {
    return { procId: this.id, pid: this.child.pid, ...this.spec, startedAt: this.startedAt, attached: this.subscribers.size, exit: this.exit };
  }

  kill(signal: NodeJS.Signals): void {
    if (!this.exit) killGroup(this.child.pid, signal);
  }

  /** The program leads its own process group (spawned detached), so this ends everything it started. */
  async terminate(graceMs: number): Promise<void> {
    if (this.exit) return;
    killGroup(this.child.pid, 'SIGTERM');
    const timer = setTimeout(() => killGroup(this.child.pid, 'SIGKILL'), graceMs);
    await this.done;
    clearTimeout(timer);
  }
}

export interface ProcessOptions {
  scrollbackBytes: number;
  keepExited: number;
  checkLimit(): void;
  resolveDir(rel: string): Promise<string>;
  user: SandboxUser;
  log: WorkerLogger;
}

/** Programs run by `proc.run`: piped, time-limited, outliving the client that started them. */
export class Processes {
  readonly table: JobTable<Proc>;

  constructor(private readonly opts: ProcessOptions) {
    this.table = new JobTable('p', 'NO_SUCH_PROCESS', opts.keepExited);
  }

  async run(p: RunParams, client: Client): Promise<Result<'proc.run'>> {
    this.opts.checkLimit();
    const cwd = await this.opts.resolveDir(p.cwd ?? '');
    let command: string;
    let args: string[];
    let language: Language | null = null;
    let scratch: string | null = null;
    if ('language' in p) {
      // The source goes to a private temp dir (/tmp is the sandbox's writable tmpfs), removed on exit.
      language = p.language;
      const interp = INTERPRETERS[p.language];
      scratch = await mkdtemp(path.join(tmpdir(), 'omega-run-'));
      const file = path.join(scratch, interp.file);
      await writeFile(file, p.code);
      // Readable by the program only: the directory is private (0700) to the user it runs as.
      await this.opts.user.own(scratch);
      await this.opts.user.own(file);
      command = interp.command;
      args = [file];
    } else {
      command = p.command;
      args = p.args ?? [];
    }
    const cleanup = () => {
      // The file holds the user's code: say so when it stays behind in /tmp.
      if (scratch) rm(scratch, { recursive: true, force: true }).catch((err: unknown) => this.opts.log.warn({ err, dir: scratch }, 'removing a run\'s source file failed'));
    };
    const child = spawn(command, args, {
      cwd,
      env: childEnv({ PYTHONUNBUFFERED: '1', ...p.env }),
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
      ...this.opts.user.spawnOptions(),
    });
    try {
      await new Promise<void>((resolve, reject) => {
        child.once('spawn', resolve);
        child.once('error', reject);
      });
    } catch (err) {
      cleanup();
      throw new WorkerError('SPAWN_FAILED', `could not start ${command}: ${(err as Error).message}`, { cause: err });
    }
    const id = this.table.newId();
    const shownCommand = language ? language : command;
    const proc = new Proc(id, child as ChildProcess & { pid: number }, { language, command: shownCommand, args: language ? [] : args, cwd }, this.opts.scrollbackBytes, p.timeoutMs, (done) => {
      cleanup();
      this.opts.log.info({ procId: id, exitCode: done.exit?.exitCode, signal: done.exit?.signal, timedOut: done.timedOut }, 'process exited');
      this.table.exited();
    });
    this.table.add(proc);
    proc.attach(client);
    if (p.stdin !== undefined) child.stdin!.write(p.stdin);
    if (!p.interactive) child.stdin!.end();
    this.opts.log.info({ procId: id, pid: child.pid, command: shownCommand }, 'process started');
    return { procId: id, pid: child.pid! };
  }

  input(p: Params<'proc.input'>): Result<'proc.input'> {
    const proc = this.table.get(p.procId);
    const stdin = proc.child.stdin!;
    if (proc.exit || stdin.writableEnded) throw new WorkerError('PROCESS_EXITED', `process ${p.procId} has exited or its stdin is closed`);
    if (p.data) stdin.write(p.data);
    if (p.eof) stdin.end();
    return {};
  }

  kill(p: Params<'proc.kill'>): Result<'proc.kill'> {
    this.table.get(p.procId).kill(p.signal ?? 'SIGTERM');
    return {};
  }

  list(): Result<'proc.list'> {
    return { processes: this.table.list().map((p) => p.info()) };
  }

  attach(p: Params<'proc.attach'>, client: Client): Result<'proc.attach'> {
    const proc = this.table.get(p.procId);
    proc.attach(client);
    return { procId: proc.id, output: proc.ring.entries().map((e) => ({ stream: e.tag, data: e.data })), truncated: proc.ring.truncated, exit: proc.exit };
  }

  detach(p: Params<'proc.detach'>, client: Client): Result<'proc.detach'> {
    this.table.get(p.procId).detach(client);
    return {};
  }
}
