import type { EventName, Events, WorkerErrorCode } from '../src/protocol/worker.js';
import type { Client } from './clients.js';
import { WorkerError } from './errors.js';

/** What terminals and processes share: an id, attached clients, and whether they have exited. */
export abstract class Job {
  readonly subscribers = new Set<Client>();
  readonly startedAt = Date.now();
  exitedAt: number | null = null;

  constructor(readonly id: string) {}

  attach(client: Client): void {
    this.subscribers.add(client);
    client.onClose(`job:${this.id}`, () => this.subscribers.delete(client));
  }

  detach(client: Client): void {
    this.subscribers.delete(client);
    client.offClose(`job:${this.id}`);
  }

  emit<E extends EventName>(event: E, data: Events[E]): void {
    for (const c of this.subscribers) c.send(event, data);
  }

  /** Force it to end (process group killed) and resolve once it has. */
  abstract terminate(graceMs: number): Promise<void>;
}

/**
 * The terminals or processes of the worker: running ones until they exit,
 * then the latest `keepExited` exited ones so a client that comes back can
 * still read how they ended.
 */
export class JobTable<J extends Job> {
  private readonly jobs = new Map<string, J>();
  private next = 1;

  constructor(
    private readonly prefix: string,
    private readonly missing: WorkerErrorCode,
    private readonly keepExited: number,
  ) {}

  newId(): string {
    return `${this.prefix}${this.next++}`;
  }

  add(job: J): void {
    this.jobs.set(job.id, job);
  }

  get(id: string): J {
    const job = this.jobs.get(id);
    if (!job) throw new WorkerError(this.missing, `${this.missing === 'NO_SUCH_TERMINAL' ? 'no such terminal' : 'no such process'}: ${id}`);
    return job;
  }

  remove(id: string): void {
    this.jobs.delete(id);
  }

  get running(): number {
    let n = 0;
    for (const j of this.jobs.values()) if (j.exitedAt === null) n++;
    return n;
  }

  list(): J[] {
    return [...this.jobs.values()];
  }

  /** Called when a job exits: drop the oldest exited ones beyond the bound. */
  exited(): void {
    const done = this.list().filter((j) => j.exitedAt !== null);
    done.sort((a, b) => a.exitedAt! - b.exitedAt!);
    for (const j of done.slice(0, Math.max(0, done.length - this.keepExited))) this.jobs.delete(j.id);
  }

  async terminateAll(graceMs: number): Promise<void> {
    await Promise.all(this.list().map((j) => j.terminate(graceMs)));
  }
}

/** A signal number as its name ("SIGKILL"), or null. */
export function signalName(n: number | null | undefined, names: Record<string, number>): string | null {
  if (!n) return null;
  for (const [name, num] of Object.entries(names)) if (num === n) return name;
  return `SIG${n}`;
}

/** Send `signal` to a whole process group; ESRCH (already gone) is fine. */
export function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

/** Whether a process group still has a member. */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (err) {
    // EPERM: a member exists but is not ours to signal.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The sandbox's own variables (the create's `env`, set by its claim). */
let sandboxEnv: Record<string, string> = {};

export function setSandboxEnv(env: Record<string, string>): void {
  sandboxEnv = { ...env };
}

/** Environment for user programs: the worker's own minus its secrets and settings, then the sandbox's, then the call's. */
export function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('OMEGA_')) env[k] = v;
  return { ...env, ...sandboxEnv, ...extra };
}

/** A create's `env`: names a shell can use (none of Omega's own OMEGA_*), at most 128, values up to 32 KiB; the problem, or null. */
export function checkSandboxEnv(env: unknown): string | null {
  if (env === null || typeof env !== 'object' || Array.isArray(env)) return 'env must be an object of NAME: value';
  const entries = Object.entries(env as Record<string, unknown>);
  if (entries.length > 128) return 'env may have at most 128 variables';
  for (const [k, v] of entries) {
    if (!/^[A-Za-z_][A-Za-z0-9_]{0,127}$/.test(k)) return `env: ${JSON.stringify(k)} is not a variable name`;
    if (k.startsWith('OMEGA_')) return `env: ${k}: OMEGA_ names are the agent's own`;
    if (typeof v !== 'string' || v.length > 32768 || v.includes('\0')) return `env: ${k} must be a string of at most 32768 characters without NUL`;
  }
  return null;
}
