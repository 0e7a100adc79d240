import { Counter, Histogram } from 'prom-client';
import type { Logger } from '../src/log.js';
import type { SandboxSize } from '../src/protocol/manager.js';
import { Demand, type PoolBounds } from './demand.js';

/** How long creates waited for a refill in flight (registered by the manager's API). */
export const poolWaitSeconds = new Histogram({
  name: 'omega_manager_pool_wait_seconds',
  help: 'Time a create that found the pool empty waited for a refill in flight, by template',
  labelNames: ['template'] as const,
  buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5],
  registers: [],
});

/** What each create found in its pool (registered by the manager's API). */
export const poolCreates = new Counter({
  name: 'omega_manager_pool_creates_total',
  help: 'Creates by template and what they found: hit (a warm container), waited (one a refill already in flight brought), queued (one the pool started for it, in turn), miss (started cold by the create)',
  labelNames: ['template', 'outcome'] as const,
  registers: [],
});

/** How often the targets are looked at again (a quiet pool shrinks back to its floor, one container a tick). */
const TICK_MS = 1000;
/** A create waits for a refill in flight at most this many average start times, then starts one cold. */
const WAIT_STARTS = 3;

/** What a create got from the pool: a container, and whether it was warm (ready, or already on its way when the create came). */
export interface Acquired {
  container: WarmContainer;
  warm: boolean;
}

export interface PoolStats {
  ready: number;
  starting: number;
  target: number;
  floor: number;
  ceiling: number;
  /** Creates served warm (a refill already in flight included), served by a start begun for them or cold, and served after a wait. */
  hits: number;
  misses: number;
  waited: number;
}

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
  /** The limits it was started with. */
  size: SandboxSize;
}

/** How long after a take its refill starts (see take()). */
const REFILL_DELAY_MS = 150;

/**
 * Containers started and healthy ahead of demand, per template. A create
 * takes one (the token is handed over at claim time, so a warm container
 * serves no one before); refilling happens in the background. Each pool's
 * size follows demand between a floor and a ceiling (manager/demand.ts): a
 * burst or a steady stream raises it, a quiet spell brings it back to the
 * floor. A create that finds its pool empty while refills are in flight
 * waits for the next one rather than starting a container of its own,
 * which would take longer and slow the refills down.
 */
export class WarmPool {
  private readonly ready = new Map<string, WarmContainer[]>();
  private readonly filling = new Map<string, number>();
  private stopped = false;
  private failures = new Map<string, number>();
  /** A template whose last start failed is not started again before this (ms). */
  private readonly retryAt = new Map<string, number>();
  private readonly starting = new Set<Promise<void>>();
  private readonly demand = new Map<string, Demand>();
  /** Creates waiting for a refill in flight, first come first served. */
  private readonly waiters = new Map<string, Array<(c: WarmContainer | undefined) => void>>();
  private readonly counts = new Map<string, { hits: number; misses: number; waited: number }>();
  private readonly ticker: NodeJS.Timeout;

  constructor(
    /** Per template: a fixed size, or the floor and ceiling its size moves between. */
    sizes: Record<string, number | PoolBounds>,
    private readonly startOne: (template: string) => Promise<WarmContainer>,
    private readonly discard: (c: WarmContainer) => Promise<void>,
    private readonly log: Logger,
    /** Starts in flight at most, over every template (the host's cores are shared with the creates being served). */
    private readonly parallel = Infinity,
    opts: {
      /** How far back creates count toward demand. */
      demandWindowMs?: number;
      /** Called when a template's number of ready containers changes (the manager publishes it for placement). */
      onReady?: (template: string, ready: number) => void;
    } = {},
  ) {
    for (const [t, size] of Object.entries(sizes)) {
      const bounds = typeof size === 'number' ? { floor: size, ceiling: size } : { floor: size.floor, ceiling: Math.max(size.floor, size.ceiling) };
      this.demand.set(t, new Demand(bounds, opts.demandWindowMs ?? 60_000));
      this.counts.set(t, { hits: 0, misses: 0, waited: 0 });
    }
    this.onReady = opts.onReady ?? (() => {});
    this.ticker = setInterval(() => this.tick(), TICK_MS);
    this.ticker.unref();
  }

  private readonly onReady: (template: string, ready: number) => void;

  /**
   * A warm container for a create, or undefined. Its refill starts a moment
   * later (REFILL_DELAY_MS after the first take since the last refill), not
   * at once: a container start takes most of a core, and a burst's other
   * creates, arriving within milliseconds, are served faster without it.
   */
  take(template: string): WarmContainer | undefined {
    const c = this.ready.get(template)?.shift();
    if (c) this.onReady(template, this.ready.get(template)!.length);
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

  /**
   * A create's container from the pool: one ready (a hit); else the next
   * one the pool brings, in the order creates arrive (a refill already in
   * flight when this create came is as good as warm: it comes sooner than a
   * cold start would; one the pool starts for it is a cold start, made in
   * turn with the refills, at most `parallel` at once, so that a burst
   * larger than the pool is served at the rate the host can start
   * containers instead of all of them slowing each other down). Undefined
   * when the template has no pool, or the wait ran past a few start times
   * (the create then starts its own). Counts the create toward demand.
   */
  async acquire(template: string): Promise<Acquired | undefined> {
    const demand = this.demand.get(template);
    const counts = this.counts.get(template);
    if (!demand || !counts) return undefined;
    demand.created();
    const inFlight = this.filling.get(template) ?? 0;
    const c = this.take(template);
    if (c) {
      counts.hits++;
      poolCreates.inc({ template, outcome: 'hit' });
      return { container: c, warm: true };
    }
    if (this.stopped || demand.bounds.ceiling === 0) {
      counts.misses++;
      poolCreates.inc({ template, outcome: 'miss' });
      return undefined;
    }
    const queue = this.waiters.get(template) ?? [];
    this.waiters.set(template, queue);
    const position = queue.length;
    // Warm when a refill that was already on its way is its to take.
    const warm = position < inFlight;
    const t0 = performance.now();
    const got = await new Promise<WarmContainer | undefined>((resolve) => {
      const waiter = (c: WarmContainer | undefined) => {
        clearTimeout(timer);
        resolve(c);
      };
      const timer = setTimeout(
        () => {
          const i = queue.indexOf(waiter);
          if (i >= 0) queue.splice(i, 1);
          resolve(undefined);
        },
        WAIT_STARTS * demand.startMs * (1 + Math.floor(position / Math.min(this.parallel, 64))),
      );
      timer.unref();
      queue.push(waiter);
      // Counted as missing, the waiters have refills started for them.
      this.fill();
    });
    if (!got) {
      counts.misses++;
      poolCreates.inc({ template, outcome: 'miss' });
      return undefined;
    }
    counts.waited++;
    if (warm) counts.hits++;
    else counts.misses++;
    poolCreates.inc({ template, outcome: warm ? 'waited' : 'queued' });
    poolWaitSeconds.observe({ template }, (performance.now() - t0) / 1000);
    return { container: got, warm };
  }

  private refillTimer: NodeJS.Timeout | null = null;

  owns(containerId: string): boolean {
    for (const list of this.ready.values()) if (list.some((c) => c.containerId === containerId)) return true;
    return false;
  }

  /** Warm containers and those being started, per template, with the target and what creates found. */
  stats(): Record<string, PoolStats> {
    const out: Record<string, PoolStats> = {};
    for (const [t, d] of this.demand) {
      out[t] = { ready: this.ready.get(t)?.length ?? 0, starting: this.filling.get(t) ?? 0, target: d.target(), ...d.bounds, ...this.counts.get(t)! };
    }
    return out;
  }

  /** Targets looked at again: what a quiet pool holds over its target goes, one container a tick; what it lacks is started. */
  private tick(): void {
    if (this.stopped) return;
    for (const [t, d] of this.demand) {
      const list = this.ready.get(t);
      if (!list || list.length <= d.target()) continue;
      const extra = list.shift()!;
      this.onReady(t, list.length);
      this.discard(extra).catch((err: unknown) => this.log.warn({ err, template: t }, 'removing a warm container the pool no longer needs failed; the reconciler removes it'));
    }
    this.fill();
  }

  /**
   * Start what is missing, in the background, at most `parallel` at a
   * time (each start that ends calls this again). Templates take turns, so
   * one large pool does not starve another. Safe to call any time.
   */
  fill(): void {
    if (this.stopped) return;
    const entries = [...this.demand].map(([t, d]) => [t, d.target()] as const);
    for (let more = true; more && this.starting.size < this.parallel; ) {
      more = false;
      for (let i = 0; i < entries.length; i++) {
        if (this.starting.size >= this.parallel) break;
        const [t, target] = entries[(this.turn + i) % entries.length]!;
        // Creates waiting for a refill count as missing containers.
        const have = (this.ready.get(t)?.length ?? 0) + (this.filling.get(t) ?? 0) - (this.waiters.get(t)?.length ?? 0);
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
      const t0 = performance.now();
      const c = await this.startOne(template);
      this.demand.get(template)?.started(performance.now() - t0);
      if (this.stopped) {
        await this.discard(c).catch((err: unknown) => this.log.warn({ err, template }, 'removing a warm container after the stop failed; the next start reconciles it'));
        return;
      }
      this.failures.set(template, 0);
      // A create waiting for it takes it at once; else it joins the ready ones.
      const waiter = this.waiters.get(template)?.shift();
      if (waiter) {
        waiter(c);
        return;
      }
      const list = this.ready.get(template) ?? [];
      list.push(c);
      this.ready.set(template, list);
      this.onReady(template, list.length);
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
    clearInterval(this.ticker);
    if (this.refillTimer) clearTimeout(this.refillTimer);
    for (const queue of this.waiters.values()) for (const w of queue.splice(0)) w(undefined);
    await Promise.allSettled([...this.starting]);
    const all = [...this.ready.values()].flat();
    this.ready.clear();
    for (const t of this.demand.keys()) this.onReady(t, 0);
    await Promise.allSettled(all.map((c) => this.discard(c)));
  }
}
