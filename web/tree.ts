import type { Entry } from '../src/protocol/worker.js';
import { el } from './dom.js';

/**
 * The workspace's files: the root listed, directories listed when opened
 * (lazily: node_modules can be huge). `refresh()` lists the root and every
 * open directory again; the session calls it on fs.changed.
 */

export interface FileTreeOptions {
  list(path: string): Promise<Entry[]>;
  onOpenFile(path: string): void;
}

const join = (dir: string, name: string) => (dir ? `${dir}/${name}` : name);

export class FileTree {
  private readonly listings = new Map<string, Entry[]>();
  private readonly expanded = new Set<string>(['']);
  private active: string | null = null;
  private refreshing: Promise<void> | null = null;
  private again = false;

  constructor(
    private readonly root: HTMLElement,
    private readonly opts: FileTreeOptions,
  ) {}

  /** Lists the root and the open directories again; calls made meanwhile are folded into one more pass. */
  refresh(): Promise<void> {
    if (this.refreshing) {
      this.again = true;
      return this.refreshing;
    }
    this.refreshing = (async () => {
      do {
        this.again = false;
        await this.load();
      } while (this.again);
    })().finally(() => (this.refreshing = null));
    return this.refreshing;
  }

  setActive(path: string | null): void {
    this.active = path;
    for (const b of this.root.querySelectorAll<HTMLElement>('.entry.active')) b.classList.remove('active');
    if (path) this.root.querySelector(`[data-testid="file-${CSS.escape(path)}"]`)?.classList.add('active');
  }

  /** The files (not directories) known, for "is this name taken". */
  has(path: string): boolean {
    const slash = path.lastIndexOf('/');
    const dir = slash < 0 ? '' : path.slice(0, slash);
    return this.listings.get(dir)?.some((e) => join(dir, e.name) === path) ?? false;
  }

  /** Opens the directories above `path` so it shows. */
  reveal(path: string): Promise<void> {
    const parts = path.split('/').slice(0, -1);
    for (let i = 1; i <= parts.length; i++) this.expanded.add(parts.slice(0, i).join('/'));
    return this.refresh();
  }

  private async load(): Promise<void> {
    const dirs = [...this.expanded];
    const results = await Promise.all(dirs.map(async (d) => [d, await this.opts.list(d).catch(() => null)] as const));
    for (const [dir, entries] of results) {
      if (entries) this.listings.set(dir, entries);
      else if (dir !== '') {
        // Gone (or no longer a directory): close it.
        this.expanded.delete(dir);
        this.listings.delete(dir);
      }
    }
    this.render();
  }

  private render(): void {
    this.root.replaceChildren(this.renderDir(''));
    this.setActive(this.active);
  }

  private renderDir(dir: string): HTMLUListElement {
    const ul = el('ul', { className: 'tree' });
    const entries = [...(this.listings.get(dir) ?? [])].sort((a, b) => Number(b.type === 'dir') - Number(a.type === 'dir') || a.name.localeCompare(b.name));
    for (const e of entries) {
      const path = join(dir, e.name);
      const isDir = e.type === 'dir';
      const open = isDir && this.expanded.has(path);
      const button = el('button', {
        className: `entry ${isDir ? 'dir' : 'file'}${e.name.startsWith('.') ? ' hidden-file' : ''}${open ? ' open' : ''}`,
        text: e.name,
        testid: `file-${path}`,
        title: path,
        attrs: { type: 'button', 'data-type': e.type, style: `padding-left: ${0.6 + dir.split('/').filter(Boolean).length * 0.9}rem` },
      });
      button.addEventListener('click', () => (isDir ? this.toggle(path) : this.opts.onOpenFile(path)));
      const li = el('li', {}, button);
      if (open) li.append(this.renderDir(path));
      ul.append(li);
    }
    if (dir === '' && entries.length === 0) ul.append(el('li', { className: 'tree-empty', text: 'The workspace is empty.' }));
    return ul;
  }

  private toggle(path: string): void {
    if (this.expanded.has(path)) {
      this.expanded.delete(path);
      for (const d of [...this.expanded]) if (d.startsWith(`${path}/`)) this.expanded.delete(d);
      this.render();
    } else {
      this.expanded.add(path);
      void this.refresh();
    }
  }
}
