import { ApiError, type MasterApi, type SandboxView } from './api.js';
import { formatDuration } from './dom.js';

/**
 * The sandbox as the master sees it: asked every few seconds (and whenever
 * the worker connection drops), it drives the time-left countdown and says
 * when the sandbox is gone: 404 (deleted, expired), deleting, or lost.
 */

const POLL_MS = 5000;

export interface WatchOptions {
  onView(view: SandboxView): void;
  onGone(reason: string): void;
  /** The master could not be asked (unreachable, token refused): the sandbox may still be fine. */
  onError(err: ApiError): void;
}

export function goneReason(view: SandboxView): string | null {
  if (view.state === 'deleting') return 'it is being deleted';
  if (view.state === 'lost') return 'lost: its host stopped answering';
  return null;
}

export class SandboxWatch {
  view: SandboxView | null = null;
  gone: string | null = null;
  private tick: ReturnType<typeof setInterval> | null = null;
  private poll: ReturnType<typeof setInterval> | null = null;

  constructor(
    private readonly api: MasterApi,
    private readonly id: string,
    private readonly timeLeft: HTMLElement,
    private readonly opts: WatchOptions,
  ) {}

  start(): void {
    this.tick = setInterval(() => this.render(), 1000);
    this.poll = setInterval(() => void this.check(), POLL_MS);
  }

  /** What the master already said (the create's answer), so the page need not ask again before connecting. */
  seed(view: SandboxView): void {
    if (this.view || this.gone) return;
    this.view = view;
    this.opts.onView(view);
    this.render();
  }

  /** Asks the master; false when the sandbox is gone. */
  async check(): Promise<boolean> {
    if (this.gone) return false;
    try {
      const view = await this.api.get(this.id);
      if (this.gone) return false;
      this.view = view;
      this.opts.onView(view);
      const reason = goneReason(view);
      if (reason) this.markGone(reason);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) this.markGone('deleted or expired');
      else if (err instanceof ApiError) this.opts.onError(err);
      else throw err;
    }
    this.render();
    return !this.gone;
  }

  markGone(reason: string): void {
    if (this.gone) return;
    this.gone = reason;
    this.stop();
    this.render();
    this.opts.onGone(reason);
  }

  private render(): void {
    const t = this.timeLeft;
    if (this.gone) {
      t.textContent = '—';
      t.dataset.ms = '0';
      return;
    }
    if (!this.view) {
      t.textContent = '…';
      return;
    }
    const left = Date.parse(this.view.expiresAt) - Date.now();
    t.dataset.ms = String(Math.max(0, left));
    t.textContent = left > 0 ? formatDuration(left) : 'expiring…';
    t.title = `expires at ${new Date(this.view.expiresAt).toLocaleString()}`;
    t.classList.toggle('soon', left < 60_000);
  }

  stop(): void {
    if (this.tick) clearInterval(this.tick);
    if (this.poll) clearInterval(this.poll);
    this.tick = this.poll = null;
  }
}
