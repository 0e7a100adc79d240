import { EXIT, UsageError, describeFailure, processIo, runCommand, type Command, type Context, type Io, type OptionSpec } from './command.js';
import { MasterApiError, MasterUnreachableError, type SandboxView } from './master-client.js';
import { hostTable, sandboxFields, sandboxTable, snapshotTable, workspaceTable } from './views.js';
import { forEachLimit } from '../../src/limit.js';

/** `omega sandbox create|list|get|delete` and `omega hosts`: the master's API for people (tables) and scripts (--json). */

const json: OptionSpec = { type: 'boolean', description: 'Print the master\'s JSON as it is, for scripts' };

const printJson = (io: Io, value: unknown) => io.out(JSON.stringify(value, null, 2));

/** One sandbox as the master's JSON (--json) or a field a line; the command is done. */
function printSandbox(ctx: Context, s: SandboxView): number {
  if (ctx.values.json) printJson(ctx.io, s);
  else ctx.io.out(sandboxFields(s, { color: ctx.io.color }));
  return EXIT.ok;
}

function wholeNumber(ctx: Context, flag: string): number | undefined {
  const raw = ctx.values[flag];
  if (raw === undefined) return undefined;
  if (typeof raw !== 'string' || !/^\d+$/.test(raw)) throw new UsageError(`--${flag} must be a whole number (got ${JSON.stringify(raw)})`);
  return Number(raw);
}

/** `--metadata k=v`, repeatable; the value may hold `=`. */
function metadata(ctx: Context): Record<string, string> | undefined {
  const raw = ctx.values.metadata as string[] | undefined;
  if (!raw?.length) return undefined;
  const out: Record<string, string> = {};
  for (const item of raw) {
    const eq = item.indexOf('=');
    if (eq < 1) throw new UsageError(`--metadata must be key=value (got ${JSON.stringify(item)})`);
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

const create: Command = {
  args: '[options]',
  summary: 'Create a sandbox and print where it is. Its token (what the sandbox\'s worker accepts) is shown only with --show-token or --json: the master gives it out once, here.',
  options: {
    template: { type: 'string', value: '<name>', description: 'Template of the sandbox [default: python]' },
    'timeout-seconds': { type: 'string', value: '<n>', description: 'Lifetime [default: the master\'s OMEGA_DEFAULT_TIMEOUT_SECONDS]' },
    'idle-seconds': { type: 'string', value: '<n>', description: 'Delete it after this long without activity' },
    metadata: { type: 'string', multiple: true, value: '<key=value>', description: 'Metadata to list it by' },
    workspace: { type: 'string', value: '<name>', description: 'A named workspace that outlives the sandbox (made when new)' },
    'show-token': { type: 'boolean', description: 'Print the sandbox\'s token in the table' },
    json,
  },
  positionals: { min: 0, max: 0 },
  async run(ctx) {
    const body = {
      template: (ctx.values.template as string | undefined) ?? 'python',
      timeoutSeconds: wholeNumber(ctx, 'timeout-seconds'),
      idleSeconds: wholeNumber(ctx, 'idle-seconds'),
      metadata: metadata(ctx),
      workspace: ctx.values.workspace as string | undefined,
    };
    const created = await ctx.client.create(body);
    if (ctx.values.json) printJson(ctx.io, created);
    else ctx.io.out(sandboxFields(created, { color: ctx.io.color, token: ctx.values['show-token'] ? 'show' : 'hide' }));
    return EXIT.ok;
  },
};

const list: Command = {
  args: '[options]',
  summary: 'List sandboxes in the order they were created, following the master\'s pages to the end (or to --limit).',
  options: {
    state: { type: 'string', value: '<state>', description: 'Only those in this state: creating, running, pausing, paused, resuming, deleting or lost' },
    metadata: { type: 'string', multiple: true, value: '<key=value>', description: 'Only those with this metadata' },
    limit: { type: 'string', value: '<n>', description: 'At most this many [default: all]' },
    json: { ...json, description: 'Print every sandbox as one JSON array (the master\'s items as they are)' },
  },
  positionals: { min: 0, max: 0 },
  async run(ctx) {
    const limit = wholeNumber(ctx, 'limit');
    if (limit === 0) throw new UsageError('--limit must be at least 1');
    const sandboxes: SandboxView[] = await ctx.client.list({ state: ctx.values.state as string | undefined, metadata: metadata(ctx) }, limit);
    if (ctx.values.json) printJson(ctx.io, sandboxes);
    else ctx.io.out(sandboxTable(sandboxes, { color: ctx.io.color }));
    return EXIT.ok;
  },
};

const get: Command = {
  args: '<id> [options]',
  summary: 'Show one sandbox.',
  options: { json },
  positionals: { min: 1, max: 1 },
  async run(ctx) {
    const s = await ctx.client.get(ctx.positionals[0]!);
    return printSandbox(ctx, s);
  },
};

/** Deletes in flight at once: a few, so a long list goes faster without a burst at the master. */
const DELETE_CONCURRENCY = 4;

const del: Command = {
  args: '<id>... [options]',
  summary: 'Delete sandboxes: each is reported deleted or already gone; the exit code is 1 if any could not be deleted.',
  options: { json: { ...json, description: 'Print one JSON array: the master\'s answer per id, or {id, error} with its error' } },
  positionals: { min: 1, max: Infinity },
  async run(ctx) {
    const ids = ctx.positionals;
    type Result = { id: string; deleted: boolean } | { id: string; error: unknown };
    const results: Array<Result | undefined> = new Array(ids.length);
    let printed = 0;
    let fatal: unknown;
    // Printed in the order given, each as soon as those before it are done.
    const flush = () => {
      while (printed < ids.length && results[printed] && fatal === undefined) {
        const r = results[printed++]!;
        if (ctx.values.json) continue;
        if ('error' in r) ctx.io.err(`${ctx.prefix}: ${r.id}: ${describeFailure(r.error, ctx.config)}`);
        else ctx.io.out(`${r.id}  ${r.deleted ? 'deleted' : 'was already gone'}`);
      }
    };
    await forEachLimit(ids, DELETE_CONCURRENCY, async (id, i) => {
      if (fatal !== undefined) return;
      try {
        results[i] = await ctx.client.delete(id);
      } catch (err) {
        // No master, or not allowed: every other id would fail the same way; said once, below.
        if (err instanceof MasterUnreachableError || (err instanceof MasterApiError && err.status === 401)) fatal ??= err;
        results[i] = { id, error: err };
      }
      flush();
    });
    if (fatal !== undefined) throw fatal;
    const done = results as Result[];
    if (ctx.values.json) {
      const errorJson = (err: unknown) => (err instanceof MasterApiError ? err.body : { code: 'INTERNAL', message: (err as Error).message });
      printJson(ctx.io, done.map((r) => ('error' in r ? { id: r.id, error: errorJson(r.error) } : r)));
      for (const r of done) if ('error' in r) ctx.io.err(`${ctx.prefix}: ${r.id}: ${describeFailure(r.error, ctx.config)}`);
    }
    return done.some((r) => 'error' in r) ? EXIT.failed : EXIT.ok;
  },
};

const pause: Command = {
  args: '<id> [options]',
  summary: 'Pause a sandbox: frozen with its memory (its programs go on at resume), or with --stop its container stopped and only its files kept. Its time limit waits meanwhile.',
  options: { stop: { type: 'boolean', description: 'Stop its container instead of freezing it (frees CPU and memory; programs start fresh at resume)' }, json },
  positionals: { min: 1, max: 1 },
  async run(ctx) {
    const s = await ctx.client.pause(ctx.positionals[0]!, !ctx.values.stop);
    return printSandbox(ctx, s);
  },
};

const resume: Command = {
  args: '<id> [options]',
  summary: 'Resume a paused sandbox where it was: same name and token, its files, frozen programs going on.',
  options: { json },
  positionals: { min: 1, max: 1 },
  async run(ctx) {
    const s = await ctx.client.resume(ctx.positionals[0]!);
    return printSandbox(ctx, s);
  },
};

const snapshot: Command = {
  args: '<id> [options]',
  summary: 'Write a sandbox\'s workspace to the snapshot store; prints the snapshot (create a sandbox from it with the API\'s {snapshot}).',
  options: { json },
  positionals: { min: 1, max: 1 },
  async run(ctx) {
    const s = await ctx.client.snapshot(ctx.positionals[0]!);
    if (ctx.values.json) printJson(ctx.io, s);
    else ctx.io.out(snapshotTable([s], { color: ctx.io.color }));
    return EXIT.ok;
  },
};

const snapshotList: Command = {
  args: '[options]',
  summary: 'List the snapshots, newest first.',
  options: { json: { ...json, description: 'Print the master\'s JSON as it is ({snapshots: [...]})' } },
  positionals: { min: 0, max: 0 },
  async run(ctx) {
    const r = await ctx.client.snapshots();
    if (ctx.values.json) printJson(ctx.io, r);
    else ctx.io.out(snapshotTable(r.snapshots, { color: ctx.io.color }));
    return EXIT.ok;
  },
};

const snapshotDelete: Command = {
  args: '<id>... [options]',
  summary: 'Delete snapshots, their archives from the store first; each is reported deleted or already gone.',
  options: {},
  positionals: { min: 1, max: Infinity },
  async run(ctx) {
    for (const id of ctx.positionals) {
      const r = await ctx.client.deleteSnapshot(id);
      ctx.io.out(`${r.id}  ${r.deleted ? 'deleted' : 'was already gone'}`);
    }
    return EXIT.ok;
  },
};

export const SNAPSHOT_COMMANDS: Record<string, Command> = { list: snapshotList, delete: snapshotDelete };

const workspaceList: Command = {
  args: '[options]',
  summary: 'List the named workspaces: where each lives, the sandbox that has it, its size and latest snapshot.',
  options: { json: { ...json, description: 'Print the master\'s JSON as it is ({workspaces: [...]})' } },
  positionals: { min: 0, max: 0 },
  async run(ctx) {
    const r = await ctx.client.workspaces();
    if (ctx.values.json) printJson(ctx.io, r);
    else ctx.io.out(workspaceTable(r.workspaces, { color: ctx.io.color }));
    return EXIT.ok;
  },
};

const workspaceDelete: Command = {
  args: '<name>... [options]',
  summary: 'Delete named workspaces everywhere (their volume and snapshots); each is reported deleted or already gone.',
  options: {},
  positionals: { min: 1, max: Infinity },
  async run(ctx) {
    for (const name of ctx.positionals) {
      const r = await ctx.client.deleteWorkspace(name);
      ctx.io.out(`${r.name}  ${r.deleted ? 'deleted' : 'was already gone'}`);
    }
    return EXIT.ok;
  },
};

export const WORKSPACE_COMMANDS: Record<string, Command> = { list: workspaceList, delete: workspaceDelete };

/** `omega <group> <command> ...` for a group of commands (snapshot, workspace): 0 done, 1 failed, 2 a usage mistake. */
async function runGroup(group: string, commands: Record<string, Command>, argv: string[], io: Io, env: NodeJS.ProcessEnv): Promise<number> {
  const [name, ...rest] = argv;
  const usage = [`Usage: omega ${group} <command> [options]`, '', 'Commands:', ...Object.entries(commands).map(([n, c]) => `  ${n.padEnd(9)}${c.summary.split('. ')[0]!.replace(/\.$/, '')}`)].join('\n');
  if (name === '--help' || name === '-h' || name === 'help') {
    io.out(usage);
    return EXIT.ok;
  }
  const cmd = name && Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (!cmd) {
    io.err(name ? `omega ${group}: unknown command "${name}"\n\n${usage}` : usage);
    return EXIT.usage;
  }
  return runCommand(`omega ${group} ${name}`, cmd, rest, io, env);
}

/** `omega snapshot list|delete`. */
export function runSnapshot(argv: string[], io: Io = processIo(), env: NodeJS.ProcessEnv = process.env): Promise<number> {
  return runGroup('snapshot', SNAPSHOT_COMMANDS, argv, io, env);
}

/** `omega workspace list|delete`. */
export function runWorkspace(argv: string[], io: Io = processIo(), env: NodeJS.ProcessEnv = process.env): Promise<number> {
  return runGroup('workspace', WORKSPACE_COMMANDS, argv, io, env);
}

const hosts: Command = {
  args: '[options]',
  summary: 'List the hosts the master knows: address, sandboxes on it and room, health, when its manager started.',
  options: { json: { ...json, description: 'Print the master\'s JSON as it is ({hosts: [...]})' } },
  positionals: { min: 0, max: 0 },
  async run(ctx) {
    const r = await ctx.client.hosts();
    if (ctx.values.json) printJson(ctx.io, r);
    else ctx.io.out(hostTable(r.hosts, { color: ctx.io.color }));
    return EXIT.ok;
  },
};

export const SANDBOX_COMMANDS: Record<string, Command> = { create, list, get, pause, resume, snapshot, delete: del };

export const SANDBOX_SUMMARY = 'Create, list, show, pause, resume and delete sandboxes through the master\'s API';
export const HOSTS_SUMMARY = 'List the master\'s hosts with their load, capacity and health';

function sandboxUsage(): string {
  const width = Math.max(...Object.keys(SANDBOX_COMMANDS).map((n) => n.length)) + 3;
  return [
    'Usage: omega sandbox <command> [options]',
    '',
    `${SANDBOX_SUMMARY}.`,
    '',
    'Commands:',
    ...Object.entries(SANDBOX_COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}${c.summary.split('. ')[0]!.replace(/\.$/, '')}`),
    '',
    'Run `omega sandbox <command> --help` for its options and settings.',
  ].join('\n');
}

/** `omega sandbox <command> ...`: 0 done, 1 failed, 2 a usage mistake. */
export async function runSandbox(argv: string[], io: Io = processIo(), env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '--help' || name === '-h' || name === 'help') {
    io.out(sandboxUsage());
    return EXIT.ok;
  }
  if (!name) {
    io.err(sandboxUsage());
    return EXIT.usage;
  }
  const cmd = Object.hasOwn(SANDBOX_COMMANDS, name) ? SANDBOX_COMMANDS[name] : undefined;
  if (!cmd) {
    io.err(`omega sandbox: unknown command "${name}"\n\n${sandboxUsage()}`);
    return EXIT.usage;
  }
  return runCommand(`omega sandbox ${name}`, cmd, rest, io, env);
}

/** `omega hosts`. */
export function runHosts(argv: string[], io: Io = processIo(), env: NodeJS.ProcessEnv = process.env): Promise<number> {
  return runCommand('omega hosts', hosts, argv, io, env);
}
