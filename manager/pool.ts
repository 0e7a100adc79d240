import type { Logger } from '../src/log.js';

export interface WarmContainer {
  template: string;
  containerId: string;
  /** Where the manager and the ingress reach its worker (see RunningContainer). */
  address: string;
  /** Its own address on its network (the firewall's name for it). */
  ip: string;
  hostPort: number;
  volume: string;
  claimSecret: string;
}

/** How long after a take its refill starts (see take()). */
const REFILL_DELAY_MS = 150;

/**
 * Containers started and healthy ahead of demand, per template. A create
 * takes one (the token is handed over at claim time, so a warm container
 * serves no one before); refilling happens in the background.
 */
export class WarmPool {
  private readonly ready = new Map<string, WarmContainer[]>();
  private readonly filling = new Map<string, number>();
  private stopped = false;
  private failures = new Map<string, number>();
  /** A template whose last start failed is not started again before this (ms). */
  private readonly retryAt = new Map<string, number>();
  private readonly starting = new Set<Promise<void>>();

  constructor(
    private readonly sizes: Record<string, number>,
    private readonly startOne: (template: string) => Promise<WarmContainer>,
    private readonly discard: (c: WarmContainer) => Promise<void>,
    private readonly log: Logger,
    /** Starts in flight at most, over every template (the host's cores are shared with the creates being served). */
    private readonly parallel = Infinity,
  ) {}

  /**
   * A warm container for a create, or undefined. Its refill starts a moment
   * later (REFILL_DELAY_MS after the first take since the last refill), not
   * at once: a container start takes most of a core, and a burst's other
   * creates, arriving within milliseconds, are served faster without it.
   */
  take(template: string): WarmContainer | undefined {
    const c = this.ready.get(template)?.shift();
    if (!c) this.fill(); // nothing warm: the refill is what the next create needs most
    else if (!this.refillTimer) {
      this.refillTimer = setTimeout(() => {
        this.refillTimer = null;
        this.fill();
      }, REFILL_DELAY_MS);
      this.refillTimer.unref();
    }
    return c;
  }

  private refillTimer: NodeJS.Timeout | null = null;

  owns(containerId: string): boolean {
    for (const list of this.ready.values()) if (list.some((c) => c.containerId === containerId)) return true;
    return false;
  }

  /** Warm containers and those being started, per template. */
  stats(): Record<string, { ready: number; starting: number; target: number }> {
    const out: Record<string, { ready: number; starting: number; target: number }> = {};
    for (const [t, target] of Object.entries(this.sizes)) {
      out[t] = { ready: this.ready.get(t)?.length ?? 0, starting: this.filling.get(t) ?? 0, target };
    }
    return out;
  }

  /**
   * Start what is missing, in the background, at most `parallel` at a
   * time (each start that ends calls this again). Templates take turns, so
   * one large pool does not starve another. Safe to call any time.
   */
  fill(): void {
    if (this.stopped) return;
    const entries = Object.entries(this.sizes);
    for (let more = true; more && this.starting.size < this.parallel; ) {
      more = false;
      for (let i = 0; i < entries.length; i++) {
        if (this.starting.size >= this.parallel) break;
        const [t, target] = entries[(this.turn + i) % entries.length]!;
        const have = (this.ready.get(t)?.length ?? 0) + (this.filling.get(t) ?? 0);
        if (have >= target || Date.now() < (this.retryAt.get(t) ?? 0)) continue;
        const p = this.startFor(t).finally(() => {
          this.starting.delete(p);
          this.fill();
        });
        this.starting.add(p);
        this.turn = (this.turn + i + 1) % entries.length;
        more = true;
        break;
      }
    }
  }

  /** The template the next refill looks at first (round robin). */
  private turn = 0;

  /** Resolves once every template's pool is full (for start-up and tests); bounded by the caller. */
  async whenFull(): Promise<void> {
    for (;;) {
      const s = this.stats();
      if (Object.values(s).every((x) => x.ready >= x.target) || this.stopped) return;
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  private async startFor(template: string): Promise<void> {
    this.filling.set(template, (this.filling.get(template) ?? 0) + 1);
    try {
      const c = await this.startOne(template);
      if (this.stopped) {
        await this.discard(c).catch((err: unknown) => this.log.warn({ err, template }, 'removing a warm container after the stop failed; the next start reconciles it'));
        return;
      }
      const list = this.ready.get(template) ?? [];
      list.push(c);
      this.ready.set(template, list);
      this.failures.set(template, 0);
    } catch (err) {
      // Report it and retry later with a growing delay; a create falls back to a cold start meanwhile.
      const n = (this.failures.get(template) ?? 0) + 1;
      this.failures.set(template, n);
      this.log.error({ err, template, attempt: n }, 'could not start a warm container');
      const delay = Math.min(500 * 2 ** n, 60_000);
      this.retryAt.set(template, Date.now() + delay);
      setTimeout(() => this.fill(), delay).unref();
    } finally {
      this.filling.set(template, (this.filling.get(template) ?? 1) - 1);
    }
  }

  /** Stop refilling and remove every warm container, those still starting too (each removes itself once up). */
  async drain(): Promise<void> {
    this.stopped = true;
    if (this.refillTimer) clearTimeout(this.refillTimer);
    await Promise.allSettled([...this.starting]);
    const all = [...this.ready.values()].flat();
    this.ready.clear();
    await Promise.allSettled(all.map((c) => this.discard(c)));
  }
}
