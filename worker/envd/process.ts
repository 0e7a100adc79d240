import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from '@connectrpc/connect';
import {
  Process,
  ProcessEventSchema,
  Signal,
  type ProcessConfig,
  type ProcessEvent,
  type ProcessInfoSchema,
  type ProcessSelector,
} from '../../src/protocol/envd/gen/process_pb.js';
import { PARAM_SCHEMAS, type EventName, type Events, type Method } from '../../src/protocol/worker.js';
import type { Processes } from '../processes.js';
import type { Terminals } from '../terminals.js';
import { validate } from '../validate.js';
import type { Home } from './home.js';
import { keepaliveMs, StreamClient, type EventMapper } from './stream.js';

/** A terminal or a piped process of the core, as the agent names it. */
interface Job {
  kind: 'term' | 'proc';
  id: string;
  pid: number;
  exited: boolean;
}

export interface ProcessDeps {
  processes: Processes;
  terminals: Terminals;
  home: Home;
  maxQueuedBytes: number;
}

const event = (e: MessageInitShape<typeof ProcessEventSchema>['event']) => create(ProcessEventSchema, { event: e });
const startEvent = (pid: number) => event({ case: 'start', value: { pid } });

/** envd's end event: a signal's end is `exited: false`, exit code -1 and Go's wording. */
function endEvent(exitCode: number | null, signal: string | null): ProcessEvent {
  const exited = signal === null;
  const code = exitCode ?? -1;
  return event({ case: 'end', value: { exitCode: code, exited, status: exited ? `exit status ${code}` : `signal: ${signal}` } });
}

/** The core's events of one job as the agent's process events; the exit is the stream's last. */
const mapper: EventMapper<ProcessEvent> = <E extends EventName>(name: E, data: Events[E]) => {
  const d = data as { data?: string; exitCode?: number | null; signal?: string | null };
  const bytes = (s: string) => Buffer.from(s, 'utf8');
  switch (name) {
    case 'proc.stdout':
      return { message: event({ case: 'data', value: { output: { case: 'stdout', value: bytes(d.data!) } } }), bytes: d.data!.length };
    case 'proc.stderr':
      return { message: event({ case: 'data', value: { output: { case: 'stderr', value: bytes(d.data!) } } }), bytes: d.data!.length };
    case 'term.output':
      return { message: event({ case: 'data', value: { output: { case: 'pty', value: bytes(d.data!) } } }), bytes: d.data!.length };
    case 'proc.exit':
    case 'term.exit':
      return { message: endEvent(d.exitCode ?? null, d.signal ?? null), bytes: 0, last: true };
    default:
      return null;
  }
};

/**
 * process.Process over the worker's Processes (piped) and Terminals (a PTY):
 * the same programs the WebSocket's proc.* and term.* methods run and list,
 * named by pid (or the tag given at start) instead of procId and termId.
 */
export function processService({ processes, terminals, home, maxQueuedBytes }: ProcessDeps): ServiceImpl<typeof Process> {
  /** What a start said that the core does not keep: its tag and its config as given. */
  const started = new Map<number, { tag?: string; config: ProcessConfig }>();

  const jobs = (): Job[] => [
    ...processes.list().processes.map((p) => ({ kind: 'proc' as const, id: p.procId, pid: p.pid, exited: p.exit !== null })),
    ...terminals.list().terminals.map((t) => ({ kind: 'term' as const, id: t.termId, pid: t.pid, exited: t.exit !== null })),
  ];

  const find = (sel: ProcessSelector | undefined): Job => {
    const s = sel?.selector;
    if (!s?.case) throw new ConnectError('process: a pid or a tag is required', Code.InvalidArgument);
    // Running ones only: as for envd, a process that has ended is gone (the WebSocket's attach still reads it).
    const found = jobs().find((j) => !j.exited && (s.case === 'pid' ? j.pid === s.value : started.get(j.pid)?.tag === s.value));
    if (!found) throw new ConnectError(`no process with ${s.case} ${s.value}`, Code.NotFound);
    return found;
  };

  const check = (method: Method, params: object) => {
    const problem = validate(PARAM_SCHEMAS[method], params);
    if (problem) throw new ConnectError(problem, Code.InvalidArgument);
  };

  /** Stream a job's events to the client until it ends; the client is detached when the RPC ends, the job goes on. */
  async function* follow(client: StreamClient<ProcessEvent>, ctx: HandlerContext, pid: number, exit: { exitCode: number | null; signal: string | null } | null) {
    try {
      yield { event: startEvent(pid) };
      if (exit) return void (yield { event: endEvent(exit.exitCode, exit.signal) });
      for await (const ev of client.drain(ctx.signal, keepaliveMs(ctx.requestHeader))) yield { event: ev ?? event({ case: 'keepalive', value: {} }) };
    } finally {
      client.close();
    }
  }

  return {
    async *start(req, ctx) {
      const cfg = req.process;
      if (!cfg?.cmd) throw new ConnectError('process.cmd is required', Code.InvalidArgument);
      const client = new StreamClient(mapper, maxQueuedBytes);
      const { pid } = await (async () => {
        const cwd = cfg.cwd ? home.rel(cfg.cwd) : '';
        // As the client names the directory (the home may be a link to the workspace): what `pwd` says.
        const env = { PWD: home.abs(cwd), ...cfg.envs };
        check('proc.run', { command: cfg.cmd, args: cfg.args, cwd, env });
        if (req.pty) {
          const size = { cols: req.pty.size?.cols ?? 80, rows: req.pty.size?.rows ?? 24 };
          check('term.open', { ...size, cwd, env });
          return terminals.open({ ...size, cwd, env }, client, { command: cfg.cmd, args: cfg.args });
        }
        return processes.run({ command: cfg.cmd, args: cfg.args, cwd, env, interactive: req.stdin !== false }, client);
      })().catch((err: unknown) => {
        client.close();
        throw err;
      });
      // What the core has dropped is dropped here too, so the map stays as small as its tables.
      const known = new Set(jobs().map((j) => j.pid));
      for (const p of started.keys()) if (!known.has(p)) started.delete(p);
      started.set(pid, { ...(req.tag !== undefined ? { tag: req.tag } : {}), config: cfg });
      yield* follow(client, ctx, pid, null);
    },

    async *connect(req, ctx) {
      const job = find(req.process);
      const client = new StreamClient(mapper, maxQueuedBytes);
      const { exit } = job.kind === 'proc' ? processes.attach({ procId: job.id }, client) : terminals.attach({ termId: job.id }, client);
      yield* follow(client, ctx, job.pid, exit);
    },

    async list(_req, ctx) {
      const running = new Set(jobs().filter((j) => !j.exited).map((j) => j.pid));
      const out: Array<MessageInitShape<typeof ProcessInfoSchema>> = [];
      for (const p of processes.list().processes) if (running.has(p.pid)) out.push(info(p.pid, { cmd: p.command, args: p.args, cwd: p.cwd }));
      for (const t of terminals.list().terminals) if (running.has(t.pid)) out.push(info(t.pid, { cmd: 'bash', args: ['-l'], cwd: t.cwd }));
      return { processes: out };

      function info(pid: number, fallback: { cmd: string; args: string[]; cwd: string }) {
        const s = started.get(pid);
        return { pid, config: s?.config ?? { ...fallback, envs: {} }, ...(s?.tag !== undefined ? { tag: s.tag } : {}) };
      }
    },

    async sendInput(req, ctx) {
      const job = find(req.process);
      const input = req.input?.input;
      if (!input?.case) throw new ConnectError('input: stdin or pty data is required', Code.InvalidArgument);
      const data = Buffer.from(input.value).toString('utf8');
      if (job.kind === 'term') terminals.input({ termId: job.id, data });
      else processes.input({ procId: job.id, data });
      return {};
    },

    async streamInput(reqs, ctx) {
      let job: Job | null = null;
      for await (const r of reqs) {
        if (r.event.case === 'start') job = find(r.event.value.process);
        else if (r.event.case === 'data') {
          if (!job) throw new ConnectError('the first message must name the process', Code.InvalidArgument);
          const input = r.event.value.input?.input;
          if (!input?.case) continue;
          const data = Buffer.from(input.value).toString('utf8');
          if (job.kind === 'term') terminals.input({ termId: job.id, data });
          else processes.input({ procId: job.id, data });
        }
      }
      return {};
    },

    async sendSignal(req, ctx) {
      const job = find(req.process);
      const signal = req.signal === Signal.SIGKILL ? 'SIGKILL' : req.signal === Signal.SIGTERM ? 'SIGTERM' : null;
      if (!signal) throw new ConnectError('signal: SIGTERM or SIGKILL', Code.InvalidArgument);
      if (job.kind === 'term') terminals.signal(job.id, signal);
      else processes.kill({ procId: job.id, signal });
      return {};
    },

    async update(req, ctx) {
      const job = find(req.process);
      if (!req.pty?.size) return {};
      if (job.kind !== 'term') throw new ConnectError(`process ${job.pid} has no terminal to resize`, Code.InvalidArgument);
      const params = { termId: job.id, cols: req.pty.size.cols, rows: req.pty.size.rows };
      check('term.resize', params);
      terminals.resize(params);
      return {};
    },

    async closeStdin(req, ctx) {
      const job = find(req.process);
      if (job.kind === 'term') throw new ConnectError(`process ${job.pid} reads a terminal: send Ctrl-D (\\x04) instead`, Code.InvalidArgument);
      processes.input({ procId: job.id, eof: true });
      return {};
    },
  };
}

