import type { ApiError, MasterApi, SandboxView } from './api.js';
import { byTestId, debounce, notice } from './dom.js';
import { Editor, type SaveState } from './editor.js';
import { Previews } from './previews.js';
import { StatusLine } from './status.js';
import { store } from './store.js';
import { runCommand, starterFor } from './templates.js';
import { Term } from './terminal.js';
import { FileTree } from './tree.js';
import { SandboxWatch } from './watch.js';
import { WorkerSocket, type ConnState } from './worker.js';

/**
 * One open sandbox: its worker connection and everything on it (file tree,
 * editor, terminal, previews), the master's view of it (time left, gone),
 * and the buttons. `dispose()` when the page switches to another one.
 */

export interface SessionOptions {
  api: MasterApi;
  /** Created by this page just now: write the template's starter file. */
  fresh: boolean;
  /** The create's answer when `fresh`: the sandbox as the master sees it, so connecting need not wait for a GET. */
  created?: SandboxView;
  onGone(id: string, reason: string, view: SandboxView | null): void;
  /** Open this sandbox afresh (after a resume). */
  reopen?(): void;
}

const SAVE_TEXT: Record<SaveState, string> = { saved: 'saved', unsaved: 'edited', saving: 'saving…', error: 'not saved', none: '' };

export class Session {
  private readonly abort = new AbortController();
  private readonly watch: SandboxWatch;
  private readonly tree: FileTree;
  private readonly editor: Editor;
  private socket: WorkerSocket | null = null;
  private term: Term | null = null;
  private previews: Previews | null = null;
  private template = '';
  private firstConnect = true;
  private readonly status = new StatusLine();
  private disposed = false;
  private deleting = false;

  constructor(
    readonly id: string,
    private readonly opts: SessionOptions,
  ) {
    this.watch = new SandboxWatch(opts.api, id, byTestId('time-left'), {
      // An answer may arrive after the page moved on to another sandbox.
      onView: (v) => this.disposed || this.showView(v),
      onGone: (reason) => this.disposed || this.gone(reason),
      onError: (err) => this.disposed || this.masterError(err),
    });
    this.tree = new FileTree(byTestId('file-tree'), {
      list: async (path) => (await this.request('fs.list', { path })).entries,
      onOpenFile: (path) => void this.openFile(path),
    });
    this.editor = new Editor(byTestId('editor'), {
      read: async (path) => (await this.request('fs.read', { path })).content,
      write: async (path, content) => void (await this.request('fs.write', { path, content })),
      onSaveState: (state, detail) => {
        const s = byTestId('save-state');
        s.dataset.state = state;
        s.textContent = SAVE_TEXT[state];
        s.title = detail ?? '';
      },
    });
    const on = (id: string, fn: () => void) => byTestId(id).addEventListener('click', fn, { signal: this.abort.signal });
    on('run', () => void this.run());
    on('delete', () => void this.delete());
    on('pause', () => void this.pauseOrResume());
    on('new-file', () => this.toggleNewFile());
    byTestId('new-file-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      void this.newFile();
    }, { signal: this.abort.signal });
  }

  private request: WorkerSocket['request'] = (method, params) => {
    if (!this.socket) return Promise.reject(new Error('not connected to the sandbox'));
    return this.socket.request(method, params);
  };

  async start(): Promise<void> {
    document.body.dataset.view = 'sandbox';
    byTestId('pause').textContent = 'Pause';
    this.setButtons(false);
    byTestId('hostname').textContent = this.id;
    this.status.set('connecting', 'looking up the sandbox…');
    if (this.opts.created) this.watch.seed(this.opts.created);
    // Until the master answers (it may be unreachable, or want a token first).
    while (!this.watch.view) {
      if (!(await this.watch.check()) || this.disposed) return;
      if (!this.watch.view) await new Promise((r) => setTimeout(r, 3000));
    }
    this.template = this.watch.view.template;
    if (this.watch.view.state === 'paused') {
      // Opened while paused: brought back first (its frozen programs go on), then connected as usual.
      this.status.set('resuming', 'resuming the paused sandbox…');
      try {
        this.watch.view = await this.opts.api.resume(this.id);
      } catch (err) {
        this.status.set('error', 'resume failed');
        notice('The master did not resume the sandbox', 'error', (err as Error).message);
        return;
      }
    }
    const saved = store.sandbox(this.id);
    if (!saved) {
      this.status.set('error', 'no token for this sandbox');
      notice(`This browser has no token for sandbox ${this.id}.`, 'error', 'The master shows a sandbox\'s token only once, when it is created: open it in the browser that created it.');
      this.watch.start();
      return;
    }
    let view = this.watch.view!;
    while (!view.port) {
      // Still being created by another tab or client.
      await new Promise((r) => setTimeout(r, 1000));
      if (!(await this.watch.check()) || this.disposed) return;
      view = this.watch.view!;
    }
    if (location.protocol === 'https:' && view.url?.startsWith('ws:')) {
      notice('This page was loaded over https, but this Omega serves its sandboxes over plain ws://, which the browser will block.', 'error', 'Run it with OMEGA_TLS=local (the default of make run), or open the page over http.');
    }
    const socket = new WorkerSocket({
      url: view.url!,
      token: saved.token,
      onState: (s) => this.connState(s),
      onDrop: () => this.watch.check(),
    });
    this.socket = socket;
    socket.on('fs.changed', (c) => {
      this.refreshTree();
      const open = this.editor.path;
      if (!open) return;
      if (c.path === open || open.startsWith(`${c.path}/`)) {
        if (c.kind === 'deleted') this.editorNote(`${open} was deleted in the sandbox; typing here writes it again`);
        else void this.editor.reload().catch(() => {});
      }
    });
    // Connecting first: building the terminal and previews overlaps the handshake (nothing arrives before this returns).
    socket.start();
    this.term = new Term(byTestId('terminal'), this.id, socket);
    this.previews = new Previews(byTestId('preview-links'), { id: this.id, previewUrl: view.previewUrl!, token: saved.token }, socket);
    this.watch.start();
  }

  private readonly refreshTree = debounce(() => void this.tree.refresh(), 100);

  private showView(v: SandboxView): void {
    const h = byTestId('hostname');
    h.textContent = v.hostname;
    h.title = `the master reports address ${v.address}, worker port ${v.port ?? '-'}; template ${v.template}`;
    byTestId('template-name').textContent = v.template;
  }

  private setButtons(enabled: boolean): void {
    for (const id of ['run', 'new-file']) (byTestId(id) as HTMLButtonElement).disabled = !enabled;
    (byTestId('delete') as HTMLButtonElement).disabled = this.watch.gone !== null;
  }

  private connState(s: ConnState): void {
    if (this.watch.gone || this.disposed || s.state === 'stopped') return;
    // A connection that drops half way through is caught up on the next one.
    if (s.state === 'connected') return void this.connected().catch(() => {});
    if (s.state === 'waiting') this.setButtons(false);
    this.status.connection(s, this.watch.view!, this.firstConnect);
  }

  private async connected(): Promise<void> {
    this.status.connected();
    this.setButtons(true);
    await Promise.all([this.tree.refresh(), this.term!.attach(), this.previews!.refresh()]);
    if (this.firstConnect) {
      this.firstConnect = false;
      await this.openInitial();
    } else if (this.editor.dirty) {
      await this.editor.flush();
    } else {
      await this.editor.reload().catch(() => {});
    }
  }

  private async openInitial(): Promise<void> {
    const starter = starterFor(this.template);
    if (this.opts.fresh && starter && !this.tree.has(starter.file)) {
      await this.request('fs.write', { path: starter.file, content: starter.content });
      await this.tree.refresh();
    }
    const remembered = store.openFile(this.id);
    const first = [remembered, starter?.file].find((p) => p && this.tree.has(p));
    if (first) await this.openFile(first);
  }

  private async openFile(path: string): Promise<void> {
    try {
      await this.editor.open(path);
      byTestId('file-name').textContent = path;
      byTestId('editor').dataset.path = path;
      store.setOpenFile(this.id, path);
      this.tree.setActive(path);
    } catch (err) {
      notice(`Could not open ${path}`, 'error', (err as Error).message);
    }
  }

  private editorNote(text: string): void {
    const s = byTestId('save-state');
    s.dataset.state = 'deleted';
    s.textContent = 'deleted';
    s.title = text;
  }

  private async run(): Promise<void> {
    if (!this.socket?.connected || !this.term) return;
    await this.editor.flush();
    const command = runCommand(this.editor.path, this.template);
    if (!command) {
      notice('Nothing to run', 'info', 'Open a .py, .js or .sh file, or type the command in the terminal.');
      return;
    }
    this.term.focus();
    await this.term.run(command);
  }

  private toggleNewFile(): void {
    const form = byTestId('new-file-form');
    form.hidden = !form.hidden;
    if (!form.hidden) byTestId<HTMLInputElement>('new-file-name').focus();
  }

  private async newFile(): Promise<void> {
    const input = byTestId<HTMLInputElement>('new-file-name');
    const path = input.value.trim().replace(/^\/+/, '');
    if (!path) return;
    try {
      if (!this.tree.has(path)) await this.request('fs.write', { path, content: '' });
      await this.tree.reveal(path);
      await this.openFile(path);
      input.value = '';
      byTestId('new-file-form').hidden = true;
    } catch (err) {
      notice(`Could not create ${path}`, 'error', (err as Error).message);
    }
  }

  /**
   * Pause: the editor saved, the sandbox frozen (the worker too, so the
   * connection is closed first, not left to time out), the button offering
   * Resume, which reopens the sandbox where it was.
   */
  private async pauseOrResume(): Promise<void> {
    const button = byTestId('pause') as HTMLButtonElement;
    button.disabled = true;
    try {
      if (this.paused) {
        this.status.set('resuming', 'resuming…');
        await this.opts.api.resume(this.id);
        this.opts.reopen?.();
        return;
      }
      // A save that fails shows as "not saved" in the editor (onSaveState); the pause goes on regardless.
      await this.editor.flush().catch(() => {});
      this.paused = true;
      this.socket?.stop();
      this.setButtons(false);
      await this.opts.api.pause(this.id);
      this.status.set('paused', 'paused: its programs are frozen and its time limit waits');
      button.textContent = 'Resume';
    } catch (err) {
      notice(this.paused ? 'The master did not pause the sandbox' : 'The master did not resume the sandbox', 'error', (err as Error).message);
    } finally {
      button.disabled = false;
    }
  }

  private paused = false;

  private async delete(): Promise<void> {
    if (!confirm(`Delete sandbox ${this.id}? Its files and processes go with it.`)) return;
    // The worker's connection closes before the master answers: that is this deletion, not a surprise.
    this.deleting = true;
    this.status.set('deleting', 'deleting…');
    try {
      await this.editor.flush().catch(() => {});
      await this.opts.api.delete(this.id);
      this.watch.markGone('deleted');
    } catch (err) {
      this.deleting = false;
      if (this.watch.gone) return;
      this.status.set('error', 'delete failed');
      notice('The master did not delete the sandbox', 'error', (err as Error).message);
    }
  }

  private masterError(err: ApiError): void {
    if (!this.watch.view) this.status.set('error', err.status === 401 ? 'the master wants the API token' : 'the master does not answer');
    if (err.status === 401) notice('The master refused the API token (401).', 'error', 'Enter the token above (make run keeps it in .omega/api-token).');
  }

  private gone(why: string): void {
    const reason = this.deleting ? 'deleted' : why;
    this.status.set('gone', `gone: ${reason}`);
    this.socket?.stop();
    this.editor.setReadOnly(true);
    this.setButtons(false);
    this.term?.xterm.write(`\r\n\x1b[2m[the sandbox is gone: ${reason}]\x1b[0m\r\n`);
    document.body.dataset.gone = 'true';
    notice(`Sandbox ${this.id} is gone: ${reason}.`, 'info', 'Its files and processes went with it. Create a new sandbox above.');
    this.opts.onGone(this.id, reason, this.watch.view);
  }

  dispose(): void {
    this.disposed = true;
    this.abort.abort();
    this.watch.stop();
    this.socket?.stop();
    this.term?.destroy();
    this.previews?.destroy();
    this.editor.destroy();
    this.refreshTree.cancel();
    byTestId('file-tree').replaceChildren();
    delete document.body.dataset.gone;
    delete byTestId('editor').dataset.path;
    for (const id of ['file-name', 'save-state', 'hostname', 'time-left', 'status', 'template-name']) byTestId(id).textContent = '';
  }
}
