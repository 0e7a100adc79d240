import { FitAddon } from '@xterm/addon-fit';
import { Terminal } from '@xterm/xterm';
import { store } from './store.js';
import type { WorkerSocket } from './worker.js';

/**
 * xterm.js on one of the worker's terminals. Each tab has its own terminal
 * (its id kept in sessionStorage, so a reload or a reconnect re-attaches to
 * it with its scrollback); when the shell exits, a key opens a new one.
 */
export class Term {
  readonly xterm: Terminal;
  private readonly fit = new FitAddon();
  private termId: string | null = null;
  private opening: Promise<string | null> | null = null;
  /** Output that arrived while term.open was in flight, before we knew our id. */
  private early: Array<{ termId: string; data: string }> = [];
  private readonly resizeObserver: ResizeObserver;
  private readonly offs: Array<() => void> = [];

  constructor(
    private readonly parent: HTMLElement,
    private readonly sandboxId: string,
    private readonly socket: WorkerSocket,
  ) {
    this.xterm = new Terminal({
      fontFamily: '"JetBrains Mono", "Fira Code", "DejaVu Sans Mono", Menlo, Consolas, monospace',
      fontSize: 13,
      cursorBlink: true,
      scrollback: 5000,
      theme: { background: '#1e2127', foreground: '#abb2bf', cursor: '#528bff', selectionBackground: '#3e4451' },
    });
    this.xterm.loadAddon(this.fit);
    this.xterm.open(parent);
    this.refit();
    this.xterm.onData((data) => void this.input(data));
    this.xterm.onResize(({ cols, rows }) => {
      if (this.termId) this.socket.request('term.resize', { termId: this.termId, cols, rows }).catch(() => {});
    });
    this.resizeObserver = new ResizeObserver(() => this.refit());
    this.resizeObserver.observe(parent);
    this.offs.push(
      socket.on('term.output', (d) => {
        if (d.termId === this.termId) this.xterm.write(d.data);
        else if (this.opening) this.early.push(d);
      }),
      socket.on('term.exit', (d) => {
        if (d.termId !== this.termId) return;
        this.forget();
        this.xterm.write(`\r\n\x1b[2m[the shell exited${d.exitCode !== null ? ` with ${d.exitCode}` : ''}; press a key for a new one]\x1b[0m\r\n`);
      }),
    );
  }

  private refit(): void {
    if (this.parent.clientWidth > 0 && this.parent.clientHeight > 0) this.fit.fit();
  }

  /** After each (re)connect: back to this tab's terminal, or a new one. */
  async attach(): Promise<void> {
    const known = this.termId ?? store.termId(this.sandboxId);
    if (known) {
      try {
        const r = await this.socket.request('term.attach', { termId: known });
        if (!r.exit) {
          this.termId = known;
          this.xterm.reset();
          this.xterm.write(r.scrollback);
          await this.socket.request('term.resize', { termId: known, cols: this.xterm.cols, rows: this.xterm.rows }).catch(() => {});
          return;
        }
      } catch {
        // closed or dropped meanwhile: a new one below
      }
      this.forget();
    }
    this.xterm.reset();
    await this.open();
  }

  private forget(): void {
    this.termId = null;
    store.setTermId(this.sandboxId, null);
  }

  private open(): Promise<string | null> {
    if (this.opening) return this.opening;
    this.early = [];
    this.opening = this.socket
      .request('term.open', { cols: this.xterm.cols, rows: this.xterm.rows })
      .then(
        ({ termId }) => {
          this.termId = termId;
          store.setTermId(this.sandboxId, termId);
          for (const d of this.early) if (d.termId === termId) this.xterm.write(d.data);
          return termId;
        },
        (err: Error) => {
          this.xterm.write(`\r\n\x1b[31mcould not open a terminal: ${err.message}\x1b[0m\r\n`);
          return null;
        },
      )
      .finally(() => {
        this.opening = null;
        this.early = [];
      });
    return this.opening;
  }

  private async input(data: string): Promise<void> {
    const termId = this.termId ?? (this.socket.connected ? await this.open() : null);
    if (!termId) return;
    await this.socket.request('term.input', { termId, data }).catch(() => {});
  }

  /** Types `line` and Enter into the terminal, as if the user had. */
  async run(line: string): Promise<void> {
    await this.input(`${line}\r`);
  }

  focus(): void {
    this.xterm.focus();
  }

  destroy(): void {
    for (const off of this.offs) off();
    this.resizeObserver.disconnect();
    this.xterm.dispose();
  }
}
