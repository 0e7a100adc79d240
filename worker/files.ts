import { lstat, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Entry, Params, Result } from '../src/protocol/worker.js';
import { fsError, WorkerError } from './errors.js';
import type { Workspace } from './paths.js';
import type { SandboxUser } from './user.js';
import { entryType, type Attribution } from './watch.js';

/** Entries returned by one fs.list at most; `truncated` says when there were more. */
const MAX_LIST = 10_000;

/**
 * The fs.* methods. Every path goes through Workspace.resolve; every change
 * is marked with its author first, so the watcher's event for it carries the
 * client id and skips that client.
 */
export class Files {
  constructor(
    private readonly ws: Workspace,
    private readonly attribution: Attribution,
    private readonly maxFileBytes: number,
    private readonly user: SandboxUser,
  ) {}

  async list(p: Params<'fs.list'>): Promise<Result<'fs.list'>> {
    const dir = await this.ws.resolve(p.path);
    const names = await guard(p.path, () => readdir(dir));
    names.sort();
    const shown = names.slice(0, MAX_LIST);
    const entries = await Promise.all(
      shown.map(async (name): Promise<Entry | null> => {
        try {
          const st = await lstat(path.join(dir, name));
          return { name, type: entryType(st), size: st.size, mtimeMs: Math.round(st.mtimeMs) };
        } catch {
          return null; // removed between readdir and lstat
        }
      }),
    );
    return { entries: entries.filter((e): e is Entry => e !== null), truncated: names.length > shown.length };
  }

  async read(p: Params<'fs.read'>): Promise<Result<'fs.read'>> {
    const { file, size, mtimeMs } = await this.openForRead(p.path);
    if (size > this.maxFileBytes) throw new WorkerError('FILE_TOO_LARGE', `${p.path} is ${size} bytes; at most ${this.maxFileBytes} are sent`);
    const buf = await guard(p.path, () => readFile(file));
    const encoding = p.encoding ?? 'utf8';
    return { content: buf.toString(encoding), encoding, size: buf.length, mtimeMs };
  }

  /** A file to read, by its real path: NOT_FOUND, IS_A_DIRECTORY or outside the workspace are refused here (HTTP downloads stream it). */
  async openForRead(rel: string): Promise<{ file: string; size: number; mtimeMs: number }> {
    const file = await this.ws.resolve(rel);
    const st = await guard(rel, () => stat(file));
    if (st.isDirectory()) throw new WorkerError('IS_A_DIRECTORY', `${rel} is a directory`);
    return { file, size: st.size, mtimeMs: Math.round(st.mtimeMs) };
  }

  async write(p: Params<'fs.write'>, clientId: string): Promise<Result<'fs.write'>> {
    return this.writeBytes(p.path, Buffer.from(p.content, p.encoding ?? 'utf8'), clientId);
  }

  /** Create or replace a file with `data` (and its missing parents), as fs.write does; HTTP uploads come here with their bytes. */
  async writeBytes(relPath: string, data: Buffer, clientId: string): Promise<Result<'fs.write'>> {
    const rel = this.ws.normalize(relPath);
    if (rel === '') throw new WorkerError('IS_A_DIRECTORY', 'the workspace root is a directory');
    const file = await this.ws.resolve(rel);
    if (data.length > this.maxFileBytes) throw new WorkerError('FILE_TOO_LARGE', `${relPath}: ${data.length} bytes; at most ${this.maxFileBytes} are accepted`);
    const existed = await lstat(file).then(
      () => true,
      () => false,
    );
    await this.makeParents(file, relPath, clientId);
    this.attribution.mark(this.ws.relative(file), clientId);
    await guard(relPath, () => writeFile(file, data));
    if (!existed) await guard(relPath, () => this.user.own(file));
    const st = await guard(relPath, () => stat(file));
    return { size: st.size, mtimeMs: Math.round(st.mtimeMs), created: !existed };
  }

  /** The largest file read or written in one call. */
  get fileLimit(): number {
    return this.maxFileBytes;
  }

  /** Where a workspace-relative path leads (links followed but for the last one when `followLast` is false); the path rules apply. */
  resolve(rel: string, followLast = true): Promise<string> {
    return this.ws.resolve(rel, followLast);
  }

  async mkdir(p: Params<'fs.mkdir'>, clientId: string): Promise<Result<'fs.mkdir'>> {
    const dir = await this.ws.resolve(p.path);
    this.attribution.mark(this.ws.relative(dir), clientId, true);
    const first = await guard(p.path, () => mkdir(dir, { recursive: true }));
    if (first) {
      this.attribution.mark(this.ws.relative(first), clientId, true);
      await guard(p.path, () => this.user.ownDown(first, dir));
    }
    return { created: first !== undefined };
  }

  async rename(p: Params<'fs.rename'>, clientId: string): Promise<Result<'fs.rename'>> {
    const from = await this.ws.resolve(p.from, false);
    const to = await this.ws.resolve(p.to, false);
    if (from === this.ws.root || to === this.ws.root) throw new WorkerError('INVALID_PARAMS', 'the workspace root cannot be renamed or replaced');
    await guard(p.from, () => lstat(from));
    if (!p.overwrite && (await lstat(to).then(() => true, () => false))) throw new WorkerError('ALREADY_EXISTS', `${p.to} already exists (pass overwrite: true to replace it)`);
    await this.makeParents(to, p.to, clientId);
    this.attribution.mark(this.ws.relative(from), clientId, true);
    this.attribution.mark(this.ws.relative(to), clientId, true);
    await guard(p.from, () => rename(from, to));
    return {};
  }

  async delete(p: Params<'fs.delete'>, clientId: string): Promise<Result<'fs.delete'>> {
    const target = await this.ws.resolve(p.path, false);
    if (target === this.ws.root) throw new WorkerError('INVALID_PARAMS', 'the workspace root cannot be deleted');
    await guard(p.path, () => lstat(target));
    this.attribution.mark(this.ws.relative(target), clientId, true);
    await guard(p.path, () => rm(target, { recursive: true, force: false }));
    return {};
  }

  async stat(p: Params<'fs.stat'>): Promise<Result<'fs.stat'>> {
    const target = await this.ws.resolve(p.path, false);
    const st = await guard(p.path, () => lstat(target));
    return { path: this.ws.relative(target), type: entryType(st), size: st.size, mtimeMs: Math.round(st.mtimeMs), mode: st.mode & 0o7777 };
  }

  /** An existing directory for a program's cwd. */
  async directory(rel: string): Promise<string> {
    const dir = await this.ws.resolve(rel);
    const st = await guard(rel, () => stat(dir));
    if (!st.isDirectory()) throw new WorkerError('NOT_A_DIRECTORY', `${rel} is not a directory`);
    return dir;
  }

  private async makeParents(file: string, shown: string, clientId: string): Promise<void> {
    const dir = path.dirname(file);
    const first = await guard(shown, () => mkdir(dir, { recursive: true }));
    if (first) {
      this.attribution.mark(this.ws.relative(first), clientId, true);
      await guard(shown, () => this.user.ownDown(first, dir));
    }
  }
}

/** Run a file operation, turning errno failures into protocol codes that name the client's path. */
async function guard<T>(shown: string, op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (err) {
    throw fsError(err, shown);
  }
}
