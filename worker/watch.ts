import { watch, type FSWatcher } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import path from 'node:path';
import type { ChangeKind, EntryType } from '../src/protocol/worker.js';
import type { WorkerLogger } from './log.js';

/**
 * A recursive watcher built from one non-recursive fs.watch per directory.
 * `fs.watch(dir, {recursive: true})` is not usable here: on Linux it arrived
 * only in Node 19.1/20 (and the sandbox may run Node 18).
 *
 * Each watched directory remembers its entries, so a burst of inotify events
 * is reduced (after `debounceMs`) to what changed: created, modified or
 * deleted. A new directory is watched and its contents reported as created
 * (they may have appeared before the watch was in place). `.git` and
 * `node_modules` are reported as entries but not descended into; past
 * `maxDirs` watched directories, deeper changes go unreported.
 */

export const IGNORED_DIRS = new Set(['.git', 'node_modules']);

export type ChangeListener = (rel: string, kind: ChangeKind, type: EntryType | null) => void;

interface Dir {
  watcher: FSWatcher;
  entries: Map<string, EntryType>;
}

export function entryType(st: { isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean }): EntryType {
  return st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'other';
}

export class TreeWatcher {
  private readonly dirs = new Map<string, Dir>();
  /** Per directory, the names to look at again; null means the whole directory. */
  private readonly pending = new Map<string, Set<string> | null>();
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private warnedLimit = false;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly root: string,
    private readonly onChange: ChangeListener,
    private readonly log: WorkerLogger,
    private readonly maxDirs = 4096,
    private readonly debounceMs = 40,
  ) {}

  async start(): Promise<void> {
    await this.watchDir('', false);
  }

  get watchedDirs(): number {
    return this.dirs.size;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    for (const d of this.dirs.values()) d.watcher.close();
    this.dirs.clear();
  }

  private abs(rel: string): string {
    return rel === '' ? this.root : path.join(this.root, rel);
  }

  private async watchDir(rel: string, announce: boolean): Promise<void> {
    if (this.stopped || this.dirs.has(rel)) return;
    if (this.dirs.size >= this.maxDirs) {
      if (!this.warnedLimit) this.log.warn({ maxDirs: this.maxDirs, dir: rel }, 'watch limit reached; deeper changes are not reported');
      this.warnedLimit = true;
      return;
    }
    let watcher: FSWatcher;
    try {
      watcher = watch(this.abs(rel), { persistent: false }, (_type, name) => this.queue(rel, name ? String(name) : null));
    } catch (err) {
      this.log.debug({ err, dir: rel }, 'cannot watch directory');
      return;
    }
    // A directory removed under its watcher ends it with an error on some kernels; the parent reports the deletion.
    watcher.on('error', () => this.unwatch(rel));
    const dir: Dir = { watcher, entries: new Map() };
    this.dirs.set(rel, dir);
    let list;
    try {
      list = await readdir(this.abs(rel), { withFileTypes: true });
    } catch {
      this.unwatch(rel);
      return;
    }
    for (const e of list) {
      const childRel = rel === '' ? e.name : `${rel}/${e.name}`;
      const type = entryType(e);
      dir.entries.set(e.name, type);
      if (announce) this.onChange(childRel, 'created', type);
      if (type === 'dir' && !IGNORED_DIRS.has(e.name)) await this.watchDir(childRel, announce);
    }
  }

  private unwatch(rel: string): void {
    for (const [r, d] of this.dirs) {
      if (r === rel || r.startsWith(`${rel}/`) || rel === '') {
        d.watcher.close();
        this.dirs.delete(r);
        this.pending.delete(r);
      }
    }
  }

  private queue(dir: string, name: string | null): void {
    if (this.stopped) return;
    const cur = this.pending.get(dir);
    if (name === null) this.pending.set(dir, null);
    else if (cur === undefined) this.pending.set(dir, new Set([name]));
    else if (cur !== null) cur.add(name);
    this.timer ??= setTimeout(() => {
      this.timer = null;
      // One flush at a time, so two never compare against half-updated entries.
      this.flushing = this.flushing.then(() => this.flush()).catch((err) => this.log.warn({ err }, 'watch flush failed'));
    }, this.debounceMs);
  }

  private async flush(): Promise<void> {
    const batch = [...this.pending];
    this.pending.clear();
    for (const [rel, names] of batch) {
      const dir = this.dirs.get(rel);
      if (!dir) continue;
      let look: Iterable<string>;
      if (names === null) {
        const now = await readdir(this.abs(rel)).catch(() => [] as string[]);
        look = new Set([...dir.entries.keys(), ...now]);
      } else {
        look = names;
      }
      for (const name of look) await this.check(rel, dir, name);
    }
  }

  private async check(rel: string, dir: Dir, name: string): Promise<void> {
    const childRel = rel === '' ? name : `${rel}/${name}`;
    const before = dir.entries.get(name);
    let now: EntryType | null = null;
    try {
      now = entryType(await lstat(path.join(this.abs(rel), name)));
    } catch {
      // gone
    }
    if (before && (!now || now !== before)) {
      dir.entries.delete(name);
      if (before === 'dir') this.unwatch(childRel);
      this.onChange(childRel, 'deleted', before);
    }
    if (now && (!before || now !== before)) {
      dir.entries.set(name, now);
      this.onChange(childRel, 'created', now);
      if (now === 'dir' && !IGNORED_DIRS.has(name)) await this.watchDir(childRel, true);
    } else if (now && now === before && now !== 'dir') {
      this.onChange(childRel, 'modified', now);
    }
  }
}

/**
 * Who made a change: file operations mark the paths they are about to touch
 * with the client's id, and events the watcher then sees for those paths
 * (within `windowMs`) are attributed to that client, who is not sent them.
 */
export class Attribution {
  private readonly marks = new Map<string, { clientId: string; until: number; subtree: boolean }>();

  constructor(private readonly windowMs = 2000) {}

  mark(rel: string, clientId: string, subtree = false): void {
    const now = Date.now();
    if (this.marks.size > 1000) for (const [k, m] of this.marks) if (m.until < now) this.marks.delete(k);
    this.marks.set(rel, { clientId, until: now + this.windowMs, subtree });
  }

  /** The client that marked `rel` (or a marked-subtree ancestor) recently, or null for a change from inside the sandbox. */
  author(rel: string): string | null {
    const now = Date.now();
    let p = rel;
    let exact = true;
    for (;;) {
      const m = this.marks.get(p);
      if (m && m.until >= now && (exact || m.subtree)) return m.clientId;
      if (p === '') return null;
      const i = p.lastIndexOf('/');
      p = i < 0 ? '' : p.slice(0, i);
      exact = false;
    }
  }
}
