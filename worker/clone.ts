import { spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { safeUrl } from '../src/config/settings.js';
import type { CloneStatus } from '../src/protocol/worker.js';
import { childEnv, killGroup } from './jobs.js';
import type { WorkerLogger } from './log.js';
import type { SandboxUser } from './user.js';

/** Schemes a claim may clone from; file:// is for tests and local mirrors. */
const SCHEMES = new Set(['https:', 'http:', 'git:', 'ssh:', 'file:']);

export function checkRepoUrl(raw: string): string | null {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return 'gitRepo must be a URL';
  }
  if (!SCHEMES.has(u.protocol)) return `gitRepo scheme must be one of ${[...SCHEMES].join(' ')}`;
  if (raw.length > 2048) return 'gitRepo is too long';
  return null;
}

/** `text` without the user name and password of `url`, wherever git repeated them. */
export function withoutCredentials(text: string, url: string): string {
  let out = text.replace(/\/\/[^/@\s]+@/g, '//');
  try {
    const u = new URL(url);
    for (const secret of [u.username && u.password ? `${u.username}:${u.password}` : '', u.password, u.username].filter((s) => s.length >= 3)) {
      out = out.split(secret).join('***').split(decodeURIComponent(secret)).join('***');
    }
  } catch {
    // not a URL: the pattern above is all there is
  }
  return out;
}

/**
 * `git clone <url> .` into the workspace, in the background, when the
 * workspace is empty. Progress and the outcome go to `report`; git's
 * carriage-return progress lines are parsed for a percentage.
 */
export class Clone {
  status: CloneStatus = { state: 'none' };
  private pid: number | null = null;

  constructor(
    private readonly workspace: string,
    private readonly timeoutMs: number,
    private readonly report: (s: CloneStatus) => void,
    private readonly log: WorkerLogger,
    private readonly user: SandboxUser,
  ) {}

  /** Clone `url` (at `ref`, a branch or tag, `depth` commits deep); resolves with how it ended. */
  async start(url: string, opts: { ref?: string; depth?: number } = {}): Promise<CloneStatus> {
    const shown = safeUrl(url);
    const existing = await readdir(this.workspace).catch(() => []);
    if (existing.length > 0) {
      this.set({ state: 'skipped', url: shown, message: 'the workspace is not empty' });
      return this.status;
    }
    this.set({ state: 'running', url: shown, percent: 0 });
    const ended = new Promise<CloneStatus>((resolve) => (this.ended = resolve));
    const args = ['clone', '--progress', ...(opts.ref ? ['--branch', opts.ref] : []), ...(opts.depth ? ['--depth', String(opts.depth)] : []), '--', url, '.'];
    const child = spawn('git', args, {
      cwd: this.workspace,
      // Never wait on a credential prompt nobody can answer.
      env: childEnv({ GIT_TERMINAL_PROMPT: '0', GIT_ASKPASS: 'true', GIT_SSH_COMMAND: 'ssh -o BatchMode=yes' }),
      stdio: ['ignore', 'ignore', 'pipe'],
      detached: true,
      ...this.user.spawnOptions(),
    });
    this.pid = child.pid ?? null;
    let tail = '';
    let lastReport = 0;
    child.stderr.on('data', (chunk: Buffer) => {
      tail = (tail + chunk.toString('utf8')).slice(-4096);
      const lines = tail.split(/[\r\n]+/).filter(Boolean);
      const line = lines[lines.length - 1] ?? '';
      const pct = /(\d{1,3})% \(/.exec(line);
      // At most a few progress events a second.
      if (pct && Date.now() - lastReport > 250) {
        lastReport = Date.now();
        this.set({ state: 'running', url: shown, message: line.trim(), percent: Number(pct[1]) });
      }
    });
    const timer = setTimeout(() => {
      if (this.pid) killGroup(this.pid, 'SIGKILL');
    }, this.timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      this.set({ state: 'failed', url: shown, message: `git could not start: ${err.message}` });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      this.pid = null;
      if (code === 0) {
        this.set({ state: 'done', url: shown, percent: 100 });
        return;
      }
      const why = signal ? `git was killed (${signal}${signal === 'SIGKILL' ? ', time limit' : ''})` : `git exited ${code}`;
      const lastLines = tail.split(/[\r\n]+/).filter((l) => l.trim() && !/%/.test(l)).slice(-3).join(' | ');
      // git may name the URL it was given, credentials and all: they go.
      this.set({ state: 'failed', url: shown, message: withoutCredentials(`${why}: ${lastLines}`, url).slice(0, 1000) });
    });
    return ended;
  }

  stop(): void {
    if (this.pid) killGroup(this.pid, 'SIGKILL');
  }

  private ended: ((s: CloneStatus) => void) | null = null;

  private set(s: CloneStatus): void {
    this.status = s;
    if (s.state !== 'running' && this.ended) {
      this.ended(s);
      this.ended = null;
    }
    if (s.state === 'failed') this.log.warn({ clone: s }, 'git clone failed');
    else if (s.state !== 'running') this.log.info({ clone: s }, `git clone ${s.state}`);
    this.report(s);
  }
}
