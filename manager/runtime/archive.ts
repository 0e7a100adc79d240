import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { promisify } from 'node:util';
import { isOmegaError, OmegaError } from '../../src/errors.js';
import type { SnapshotStore } from '../../src/snapshot-store.js';

const run = promisify(execFile);

/**
 * A workspace volume written to and read from the snapshot store as a
 * gzipped tar, by GNU tar on the host (the manager is root there): sparse
 * files stay sparse, symbolic links stay links (never followed),
 * permissions and numeric owners are kept. Nothing passes through the
 * sandbox: a frozen or stopped sandbox is snapshotted the same way.
 */

/** Where a volume's files are on this host; `close` undoes a mount made for it. */
export interface OpenVolume {
  dir: string;
  close(): Promise<void>;
}

/**
 * The volume's files on the host: its mountpoint while a container uses it
 * (or always, for a plain volume), else its filesystem image's block
 * device mounted for the moment (a stopped sandbox's workspace).
 */
export async function openVolume(info: { Mountpoint: string; Options?: Record<string, string> | null }, writable: boolean): Promise<OpenVolume> {
  const device = info.Options?.device;
  if (!device || (await mounted(info.Mountpoint))) return { dir: info.Mountpoint, close: async () => {} };
  const dir = await mkdtemp(join(tmpdir(), 'omega-volume-'));
  await run('mount', ['-t', info.Options?.type ?? 'ext4', '-o', writable ? 'rw' : 'ro', device, dir]);
  return {
    dir,
    close: async () => {
      await run('umount', [dir]);
      await rmdir(dir);
    },
  };
}

async function mounted(path: string): Promise<boolean> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  return info.split('\n').some((l) => l.split(' ')[4] === path);
}

/** Write the files under `dir` to the store as `key`; their compressed size. A failed or aborted archive is deleted from the store. */
export async function writeArchive(dir: string, store: SnapshotStore, key: string, signal?: AbortSignal): Promise<{ bytes: number }> {
  signal?.throwIfAborted();
  const tar = spawn('tar', ['--create', '--gzip', '--sparse', '--numeric-owner', '--acls', '--xattrs', '--directory', dir, '.'], { stdio: ['ignore', 'pipe', 'pipe'] });
  // Read from now on: Node throws away the output of a child that exits before its stdout has a reader, and a store
  // may take a moment (a mkdir, a connection) before it reads; a small workspace's tar is done by then (it was, in CI:
  // an archive of 0 bytes). The pipe holds tar back as the store does.
  const out = new PassThrough();
  tar.stdout.pipe(out);
  // Both settle before either's failure is acted on: a tar that dies ends its output as a finished one does, and a
  // store still writing would otherwise put that truncated archive under the key after it was deleted. A store
  // that fails stops tar (it would wait on a pipe nobody reads).
  const stop = () => tar.kill('SIGKILL');
  const putting = store.put(key, out).catch((e: unknown) => {
    stop();
    throw e;
  });
  signal?.addEventListener('abort', stop, { once: true });
  const [put, exited] = await Promise.allSettled([putting, exitOf(tar, 'tar --create')]);
  signal?.removeEventListener('abort', stop);
  // Why it was stopped, then the store's failure: tar killed for either says less.
  let err: unknown = signal?.aborted ? signal.reason : put.status === 'rejected' ? put.reason : exited.status === 'rejected' ? exited.reason : null;
  // A gzip stream is never empty (header and trailer): nothing written is a failure, never a snapshot.
  if (!err && put.status === 'fulfilled' && put.value.bytes === 0) err = new Error('tar wrote nothing');
  if (!err && put.status === 'fulfilled') return put.value;
  throw await removedAfter(store, key, new OmegaError('SNAPSHOT_FAILED', `writing the workspace to ${store.shown} failed: ${(err as Error).message}`, { cause: err }));
}

/**
 * Remove what was written under `key` after `failure` (half an archive, or
 * one nobody will record); the error to throw: `failure`, or, when the
 * removal fails too, one that says so as well.
 */
async function removedAfter(store: SnapshotStore, key: string, failure: unknown): Promise<unknown> {
  try {
    await store.delete(key);
    return failure;
  } catch (e) {
    return new OmegaError(isOmegaError(failure) ? failure.code : 'SNAPSHOT_FAILED', `${(failure as Error).message}; removing what was written failed too: ${(e as Error).message}`, { cause: failure });
  }
}

/**
 * Take a snapshot as `key` with `take` (which writes it, and around that
 * opens a volume, freezes a container, ...): if any of it fails, even after
 * the archive is whole (a thaw or an unmount failing once the sandbox is
 * being deleted), or its caller goes away (`signal`), the key is removed,
 * so an error answer never leaves an archive behind that its caller, told
 * it failed or gone, would record nowhere.
 */
export async function archiveOrNothing<T>(store: SnapshotStore, key: string, take: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  try {
    const done = await take();
    // Its caller gone meanwhile: nobody records it.
    signal?.throwIfAborted();
    return done;
  } catch (err) {
    throw await removedAfter(store, key, err);
  }
}

/** Unpack snapshot `key` from the store into `dir` (an empty workspace). */
export async function readArchive(store: SnapshotStore, key: string, dir: string): Promise<void> {
  const body: Readable = await store.get(key);
  const tar = spawn('tar', ['--extract', '--gzip', '--numeric-owner', '--same-owner', '--same-permissions', '--acls', '--xattrs', '--directory', dir], { stdio: ['pipe', 'ignore', 'pipe'] });
  const exited = exitOf(tar, 'tar --extract');
  body.on('error', (err) => tar.stdin.destroy(err));
  body.pipe(tar.stdin);
  try {
    await exited;
  } catch (err) {
    body.destroy();
    throw new OmegaError('SNAPSHOT_FAILED', `restoring snapshot ${key} from ${store.shown} failed: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * The process's end: 0 is done. tar's 1 (a file changed or vanished as it
 * was read) is a failure too: a frozen or stopped sandbox's files do not
 * change, so it means the workspace went away under it (its host being torn
 * down), and what was written is not the workspace; the next snapshot is
 * taken whole.
 */
function exitOf(p: ReturnType<typeof spawn>, what: string): Promise<void> {
  let stderr = '';
  p.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString('utf8')).slice(-2000)));
  return new Promise((resolve, reject) => {
    p.once('error', reject);
    p.once('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${what} ${signal ? `killed (${signal})` : `exited ${code}`}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`));
    });
  });
}
