import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rm, rmdir, stat, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { OmegaError } from '../../src/errors.js';

const run = promisify(execFile);

/** Where a manager keeps the images unless OMEGA_WORKSPACE_IMAGE_DIR says otherwise (a directory per host id under it). */
export const DEFAULT_WORKSPACE_IMAGE_DIR = '/var/lib/omega/workspaces';

/** What the files under `dir` take on disk, in bytes (du: sparse files count what they hold). */
export async function bytesUnder(dir: string): Promise<number> {
  const { stdout } = await run('du', ['-s', '--block-size=1', dir]);
  return Number(stdout.split('\t')[0]);
}

/**
 * A workspace's space, its files at `dir`: a fixed-size one's filesystem is
 * its own (what it holds and its size, one statfs); a plain volume's files
 * are counted (du) on the host's disk, whose size is the most it can take.
 */
export async function workspaceSpace(dir: string, fixedSize: boolean): Promise<{ used: number; total: number }> {
  const fs = await statfs(dir);
  const total = fs.blocks * fs.bsize;
  return { used: fixedSize ? (fs.blocks - fs.bfree) * fs.bsize : await bytesUnder(dir), total };
}

/**
 * A workspace of a fixed size: one ext4 filesystem image per sandbox volume,
 * attached to a loop device and mounted by Docker's local volume driver as
 * the sandbox's /workspace. Writing past its size fails in the sandbox with
 * ENOSPC, its inodes are the filesystem's (one per 16 KiB), and nothing of
 * the host's disk or another sandbox's is touched.
 *
 * Why images and not quotas: this kernel (and many cloud kernels) is built
 * without CONFIG_QUOTA, so neither XFS project quotas nor ext4 quotas exist;
 * overlay2's size option needs XFS with project quotas too. An image works on
 * any kernel with loop devices, costs ~10 ms to make (mkfs with lazy init on a
 * sparse file) and survives a manager restart (the loop device and the image
 * stay; only a reboot detaches them). The images are sparse: they take what
 * is written, so the host's disk can be overcommitted by many full
 * workspaces, never by one.
 */
export class WorkspaceDisks {
  constructor(
    /** Where the images live (created if missing). */
    private readonly dir: string,
  ) {}

  image(volume: string): string {
    return join(this.dir, `${volume}.img`);
  }

  /** Make the volume's filesystem and attach it: the block device Docker mounts. */
  async create(volume: string, sizeMb: number): Promise<string> {
    const img = this.image(volume);
    try {
      // A leftover of an attempt cut short is made again from nothing (one losetup call only when there is one).
      if (existsSync(img)) await this.release(volume);
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      await run('truncate', ['-s', `${sizeMb}M`, img]);
      // No reserved blocks (no root inside); the root directory the sandbox's user's; lazy init: ~10 ms.
      await run('mkfs.ext4', ['-q', '-F', '-m', '0', '-E', 'root_owner=1000:1000,lazy_itable_init=1,lazy_journal_init=1', img]);
      // An empty workspace is empty: no lost+found (a repository is cloned only into an empty one; e2fsck makes it again if it needs it). ~7 ms.
      await run('debugfs', ['-w', '-R', 'rmdir lost+found', img]);
      const { stdout } = await run('losetup', ['--find', '--show', img]);
      return stdout.trim();
    } catch (err) {
      const failure = new OmegaError('SANDBOX_START_FAILED', `making the workspace filesystem for ${volume} failed (needs root, losetup and mkfs.ext4): ${(err as Error).message}`, { cause: err });
      throw await this.releaseAfter(volume, failure);
    }
  }

  /** Make and release one workspace: whether this host can (root, loop devices, mkfs.ext4). Throws why not. */
  async probe(): Promise<void> {
    const name = `omega-probe-${process.pid}`;
    await this.create(name, 16);
    await this.release(name);
  }

  /**
   * Release what a failed start left; the error to throw: `failure`, or, if
   * the release fails too, both joined (the reconciler's sweep retries it).
   */
  async releaseAfter(volume: string, failure: OmegaError): Promise<OmegaError> {
    try {
      await this.release(volume);
      return failure;
    } catch (err) {
      return new OmegaError(failure.code, `${failure.message}; releasing its image failed too: ${(err as Error).message}`, {
        cause: new AggregateError([failure.cause ?? failure, err], 'the start and the release failed'),
      });
    }
  }

  /** Detach and delete the volume's image (after Docker has removed the volume); nothing there is fine. */
  async release(volume: string): Promise<void> {
    const img = this.image(volume);
    const { stdout } = await run('losetup', ['--associated', img, '--noheadings', '--output', 'NAME']).catch(() => ({ stdout: '' }));
    for (const dev of stdout.split('\n').map((l) => l.trim()).filter(Boolean)) await run('losetup', ['--detach', dev]);
    await rm(img, { force: true });
  }

  /** Remove this host's directory of images when none is left in it (a manager stopping with no sandbox); true when removed. */
  async removeIfEmpty(): Promise<boolean> {
    try {
      await rmdir(this.dir);
      return true;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOTEMPTY' || code === 'EEXIST' || code === 'ENOENT') return false;
      throw err;
    }
  }

  /** Images whose volume is gone (removed by someone else), older than `graceMs`: released. */
  async sweep(volumes: Set<string>, graceMs: number, now = Date.now()): Promise<string[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return [];
    }
    const released: string[] = [];
    for (const f of names) {
      if (!f.endsWith('.img')) continue;
      const volume = f.slice(0, -'.img'.length);
      if (volumes.has(volume)) continue;
      const st = await stat(join(this.dir, f)).catch(() => null);
      if (!st || now - st.mtimeMs < graceMs) continue;
      await this.release(volume);
      released.push(volume);
    }
    return released;
  }
}
