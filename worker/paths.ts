import { lstat, readlink, realpath } from 'node:fs/promises';
import path from 'node:path';
import { WorkerError } from './errors.js';

/**
 * Confinement of client paths to the workspace.
 *
 * Paths are relative to the workspace root, '/'-separated. Absolute paths and
 * paths that climb out with '..' are refused outright. Symlinks are followed
 * one component at a time, as the kernel would, and each target is checked to
 * stay inside, so a link to /etc (or to a dangling path outside, which a
 * write would create) is refused rather than used.
 *
 * This is the API's contract more than a security boundary: the sandbox user
 * has a shell, and a link swapped in between the check and the use could at
 * most make the agent (root in its container, see user.ts) touch the
 * container's own /tmp or /proc: the root file system is read-only and the
 * agent holds nothing of value but the sandbox's own token.
 */
export class Workspace {
  private constructor(readonly root: string) {}

  /** The workspace at `dir`, created if missing, by its real path. */
  static async open(dir: string): Promise<Workspace> {
    const { mkdir } = await import('node:fs/promises');
    await mkdir(dir, { recursive: true });
    return new Workspace(await realpath(dir));
  }

  /** `rel` normalized: '' is the root. Throws PATH_OUTSIDE_WORKSPACE or INVALID_PARAMS. */
  normalize(rel: string): string {
    if (rel.includes('\0')) throw new WorkerError('INVALID_PARAMS', 'a path may not contain NUL');
    if (rel.startsWith('/') || /^[A-Za-z]:[\\/]/.test(rel)) throw new WorkerError('PATH_OUTSIDE_WORKSPACE', `absolute paths are not accepted: ${rel}`);
    const n = path.posix.normalize(rel === '' ? '.' : rel).replace(/\/+$/, '');
    if (n === '..' || n.startsWith('../')) throw new WorkerError('PATH_OUTSIDE_WORKSPACE', `the path leads outside the workspace: ${rel}`);
    return n === '.' ? '' : n;
  }

  /** Workspace-relative form of an absolute path inside the root. */
  relative(abs: string): string {
    return path.relative(this.root, abs).split(path.sep).join('/');
  }

  contains(abs: string): boolean {
    return abs === this.root || abs.startsWith(this.root + path.sep);
  }

  /**
   * The real absolute path for `rel`. With `followLast` false the last
   * component is not dereferenced (rename, delete and stat act on a link itself).
   */
  async resolve(rel: string, followLast = true): Promise<string> {
    return this.walk(this.normalize(rel), followLast, 0, rel);
  }

  private async walk(rel: string, followLast: boolean, hops: number, shown: string): Promise<string> {
    const segs = rel === '' ? [] : rel.split('/');
    let cur = this.root;
    for (let i = 0; i < segs.length; i++) {
      const next = path.join(cur, segs[i]!);
      const last = i === segs.length - 1;
      let st;
      try {
        st = await lstat(next);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        // Nothing below a missing component exists, so no link can lead further.
        if (code === 'ENOENT') return path.join(cur, ...segs.slice(i));
        if (code === 'ENOTDIR') return path.join(cur, ...segs.slice(i));
        throw err;
      }
      if (st.isSymbolicLink() && (!last || followLast)) {
        if (hops >= 40) throw new WorkerError('PATH_OUTSIDE_WORKSPACE', `too many symbolic links: ${shown}`);
        const target = await this.linkTarget(next, cur, shown);
        const rest = [this.relative(target), ...segs.slice(i + 1)].filter((s) => s !== '').join('/');
        return this.walk(rest, followLast, hops + 1, shown);
      }
      cur = next;
    }
    return cur;
  }

  /** Where a link points, as an absolute path that must lie inside the root. */
  private async linkTarget(link: string, dir: string, shown: string): Promise<string> {
    const target = path.resolve(dir, await readlink(link));
    if (this.contains(target)) return target;
    // Textually outside; it may still reach the root by another name (a link to the workspace's own path).
    try {
      const real = await realpath(target);
      if (this.contains(real)) return real;
    } catch {
      // dangling and outside
    }
    throw new WorkerError('PATH_OUTSIDE_WORKSPACE', `a symbolic link leads outside the workspace: ${shown}`);
  }
}
