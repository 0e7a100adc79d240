import { create } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import type { Stats } from 'node:fs';
import { lstat, readFile, readlink } from 'node:fs/promises';
import path from 'node:path';
import { EntryInfoSchema, FileType, type EntryInfo } from '../../src/protocol/envd/gen/filesystem_pb.js';
import { fsError, WorkerError } from '../errors.js';
import type { Files } from '../files.js';

/** The one user an E2B client may name: Omega runs every program as the sandbox's user, never as root. */
export const ENVD_USER = 'user';

/**
 * The E2B view of the workspace. E2B clients name files by absolute path,
 * relative ones being in the user's home; Omega serves one directory, the
 * workspace, so the workspace is the home (the `base` template mounts it at
 * /home/user) and a path outside it is refused, as the WebSocket protocol
 * refuses one: the same path rules, through the same Files.
 */
export class Home {
  private names: Promise<{ users: Map<number, string>; groups: Map<number, string> }> | null = null;

  constructor(
    /** The home's absolute path as clients see it: the workspace as configured. */
    readonly dir: string,
    /** The workspace's real path, also accepted (a home reached through a link). */
    private readonly realDir: string,
    private readonly files: Files,
  ) {}

  /** A client's path as a workspace-relative one; PATH_OUTSIDE_WORKSPACE when it leads out of the home. */
  rel(p: string): string {
    if (p.includes('\0')) throw new WorkerError('INVALID_PARAMS', 'a path may not contain NUL');
    let abs: string;
    if (p === '' || p === '~') abs = this.dir;
    else if (p.startsWith('~/')) abs = path.posix.join(this.dir, p.slice(2));
    else abs = path.posix.resolve(this.dir, p);
    for (const base of [this.dir, this.realDir]) {
      if (abs === base) return '';
      if (abs.startsWith(`${base}/`)) return abs.slice(base.length + 1);
    }
    throw new WorkerError('PATH_OUTSIDE_WORKSPACE', `${p}: this sandbox serves files in ${this.dir} only`);
  }

  /** A workspace-relative path as clients see it. */
  abs(rel: string): string {
    return rel === '' ? this.dir : `${this.dir}/${rel}`;
  }

  /** What the client's path is (a link itself, not its target), as the agent's EntryInfo. */
  async entry(rel: string): Promise<EntryInfo> {
    const real = await this.files.resolve(rel, false);
    let st: Stats;
    try {
      st = await lstat(real);
    } catch (err) {
      throw fsError(err, this.abs(rel));
    }
    return this.entryOf(rel, real, st);
  }

  async entryOf(rel: string, real: string, st: Stats): Promise<EntryInfo> {
    const { users, groups } = await this.idNames();
    const symlinkTarget = st.isSymbolicLink() ? this.shown(path.resolve(path.dirname(real), await readlink(real).catch(() => ''))) : undefined;
    return create(EntryInfoSchema, {
      name: path.posix.basename(this.abs(rel)),
      type: st.isFile() ? FileType.FILE : st.isDirectory() ? FileType.DIRECTORY : st.isSymbolicLink() ? FileType.SYMLINK : FileType.UNSPECIFIED,
      path: this.abs(rel),
      size: BigInt(st.size),
      mode: st.mode & 0o777,
      permissions: permissions(st),
      owner: users.get(st.uid) ?? String(st.uid),
      group: groups.get(st.gid) ?? String(st.gid),
      modifiedTime: timestampFromMs(Math.floor(st.mtimeMs)),
      ...(symlinkTarget !== undefined ? { symlinkTarget } : {}),
    });
  }

  /** A real path as clients see it: under the home when it is inside the workspace, else as it is. */
  private shown(real: string): string {
    if (real === this.realDir) return this.dir;
    return real.startsWith(`${this.realDir}/`) ? this.abs(real.slice(this.realDir.length + 1)) : real;
  }

  /** User and group names by id, read once from the image's /etc (the sandbox's users never change). */
  private idNames(): Promise<{ users: Map<number, string>; groups: Map<number, string> }> {
    this.names ??= Promise.all([idFile('/etc/passwd'), idFile('/etc/group')]).then(([users, groups]) => ({ users, groups }));
    return this.names;
  }
}

async function idFile(file: string): Promise<Map<number, string>> {
  const out = new Map<number, string>();
  const text = await readFile(file, 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    const [name, , id] = line.split(':');
    if (name && id && /^\d+$/.test(id) && !out.has(Number(id))) out.set(Number(id), name);
  }
  return out;
}

/** The `ls -l` form of a mode as envd (Go's FileMode) writes it: a type letter, then rwx three times. */
function permissions(st: Stats): string {
  const type = st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'L' : st.isFIFO() ? 'p' : st.isSocket() ? 'S' : st.isBlockDevice() ? 'D' : st.isCharacterDevice() ? 'c' : '-';
  let bits = '';
  for (let i = 8; i >= 0; i--) bits += st.mode & (1 << i) ? 'rwx'[(8 - i) % 3] : '-';
  return type + bits;
}

/**
 * The user a request names (HTTP Basic `user:` or `?username=`): unnamed or
 * `user` is the sandbox's user; any other (root among them) is refused.
 */
export function checkUser(authorization: string | null | undefined, username: string | null | undefined): void {
  let name = username ?? undefined;
  const basic = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(authorization ?? '');
  if (basic) name = Buffer.from(basic[1]!, 'base64').toString('utf8').split(':')[0];
  if (!name || name === ENVD_USER) return;
  throw new WorkerError('UNAUTHORIZED', `user ${JSON.stringify(name.slice(0, 64))} is not available: programs here run as the sandbox's one user, ${ENVD_USER}`);
}
