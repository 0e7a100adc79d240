import { lchown } from 'node:fs/promises';
import path from 'node:path';

/** A uid and gid user code runs as. */
export interface RunAs {
  uid: number;
  gid: number;
}

/** Parse `uid:gid` (OMEGA_WORKER_USER). */
export function runAsOf(raw: string): RunAs {
  const m = /^(\d{1,10}):(\d{1,10})$/.exec(raw.trim());
  if (!m) throw new Error('must be uid:gid, e.g. 1000:1000');
  const [uid, gid] = [Number(m[1]), Number(m[2])];
  if (uid === 0 || gid === 0) throw new Error('user code may not run as root');
  if (uid > 0xfffffffe || gid > 0xfffffffe) throw new Error('uid and gid must be below 2^32 - 1');
  return { uid, gid };
}

/**
 * Who user code runs as, apart from the agent.
 *
 * With a `RunAs`, the worker itself is root in its container (with only the
 * capabilities the manager leaves it: CHOWN, DAC_OVERRIDE, FOWNER, SETUID,
 * SETGID, KILL; no-new-privileges) and every program it starts (processes,
 * terminals, the clone) switches to that uid and gid before it executes.
 * User code then cannot signal, trace or read the memory or environment of
 * the agent that serves it: the kernel allows those only to the same uid or
 * to root. Files the agent creates for a client are given to that user, so
 * the user's programs own what their IDE wrote.
 *
 * Without one (a worker started by hand, the tests), programs run as the
 * worker's own user, as before.
 */
export class SandboxUser {
  private constructor(readonly runAs: RunAs | null) {}

  /** The worker's user for `runAs`; with one, drops the agent's supplementary groups so no child inherits them. */
  static start(runAs: RunAs | undefined): SandboxUser {
    if (!runAs) return new SandboxUser(null);
    if (process.getuid?.() !== 0) {
      throw new Error(`OMEGA_WORKER_USER ${runAs.uid}:${runAs.gid} needs the worker to run as root (it runs as uid ${process.getuid?.()})`);
    }
    // node-pty switches uid and gid but not the supplementary groups: none are left to inherit.
    process.setgroups?.([]);
    return new SandboxUser(runAs);
  }

  /** What to add to spawn()'s and node-pty's options. */
  spawnOptions(): { uid?: number; gid?: number } {
    return this.runAs ? { uid: this.runAs.uid, gid: this.runAs.gid } : {};
  }

  /** Give a path the agent created to the user (the link itself for a symlink: never a target it leads to). */
  async own(p: string): Promise<void> {
    if (this.runAs) await lchown(p, this.runAs.uid, this.runAs.gid);
  }

  /** Give `dir` and every directory between it and `top` (both inclusive: what mkdir -p created) to the user. */
  async ownDown(top: string, dir: string): Promise<void> {
    if (!this.runAs) return;
    for (let d = dir; ; d = path.dirname(d)) {
      await this.own(d);
      if (d === top || d === path.dirname(d) || !d.startsWith(top)) return;
    }
  }
}
