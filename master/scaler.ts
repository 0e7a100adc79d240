import { randomBytes } from 'node:crypto';
import { OmegaError, isOmegaError } from '../src/errors.js';
import type { Logger } from '../src/log.js';
import type { Provider } from './providers/provider.js';
import type { Store } from './store.js';

export interface Slot {
  hostId: string;
  address: string;
  managerUrl: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Scale-out and scale-in. When no host has room, one master at a time (a
 * Redis lock) asks the provider for one host and waits for its manager to
 * register; every create waiting meanwhile, in any master, retries the
 * allocation until the new host takes it or the wait runs out. So a burst of
 * creates on full hosts starts one host, then another only if that one
 * fills up too.
 */
export class Scaler {
  private readonly owner = randomBytes(8).toString('hex');
  private launching: Promise<void> | null = null;
  /** A provider refusal (at its maximum, or failing), shared with every waiter for a moment. */
  private refusal: { err: OmegaError; untilMs: number } | null = null;
  private readonly emptySince = new Map<string, number>();
  launches = 0;

  constructor(
    private readonly store: Store,
    private readonly provider: Provider | null,
    private readonly opts: { waitMs: number; minHosts: number; hostIdleSeconds: number },
    private readonly log: Logger,
  ) {}

  /** A slot from `tryAllocate`, adding a host when there is no room; NO_CAPACITY when none can be had in time. */
  async allocate(tryAllocate: () => Promise<Slot | null>): Promise<Slot> {
    const first = await tryAllocate();
    if (first) return first;
    if (!this.provider) throw noCapacity('every host is full and no provider is configured to add one (OMEGA_PROVIDER=none)', 5);
    const deadline = Date.now() + this.opts.waitMs;
    let pause = 50;
    while (Date.now() < deadline) {
      if (this.refusal && this.refusal.untilMs > Date.now()) throw this.refusal.err;
      if (!this.launching && (await this.store.tryScaleOutLock(this.owner, this.opts.waitMs))) {
        this.launching = this.launchOne().finally(() => (this.launching = null));
      }
      await sleep(pause);
      pause = Math.min(pause * 2, 400);
      const slot = await tryAllocate();
      if (slot) return slot;
    }
    throw noCapacity(`every host is full and no new host registered within ${this.opts.waitMs} ms`, 10);
  }

  private async launchOne(): Promise<void> {
    const provider = this.provider!;
    try {
      const started = Date.now();
      const host = await provider.launch();
      this.launches++;
      this.log.info({ hostId: host.hostId, address: host.address, provider: provider.name }, 'scale-out: host launched; waiting for its manager');
      const deadline = started + this.opts.waitMs;
      while (Date.now() < deadline) {
        const h = (await this.store.hosts()).find((x) => x.hostId === host.hostId);
        if (h?.alive) {
          this.log.info({ hostId: host.hostId, ms: Date.now() - started }, 'scale-out: host registered');
          return;
        }
        await sleep(100);
      }
      this.log.warn({ hostId: host.hostId }, 'scale-out: the new host did not register in time');
    } catch (err) {
      const e = !isOmegaError(err)
        ? new OmegaError('PROVIDER_FAILED', (err as Error).message, { cause: err })
        : err.code === 'NO_CAPACITY'
          ? noCapacity(`every host is full and the provider can add none: ${err.message}`, 30)
          : err;
      this.refusal = { err: e, untilMs: Date.now() + 2000 };
      this.log.warn({ err: e.message, code: e.code }, 'scale-out refused');
    } finally {
      await this.store.releaseScaleOutLock(this.owner).catch(() => {});
    }
  }

  /**
   * Scale-in: a host of the provider's that has been empty for
   * hostIdleSeconds is drained (atomically, only while still empty) and
   * terminated, never going below minHosts live hosts.
   */
  async scaleIn(): Promise<string[]> {
    if (!this.provider || this.opts.hostIdleSeconds <= 0) return [];
    const now = Date.now();
    const hosts = (await this.store.hosts()).filter((h) => h.alive && !h.draining);
    let live = hosts.length;
    const out: string[] = [];
    for (const h of hosts) {
      if (h.load > 0) {
        this.emptySince.delete(h.hostId);
        continue;
      }
      const since = this.emptySince.get(h.hostId) ?? now;
      this.emptySince.set(h.hostId, since);
      if (now - since < this.opts.hostIdleSeconds * 1000 || live <= this.opts.minHosts) continue;
      if (!(await this.provider.owns(h.hostId))) continue;
      if (!(await this.store.drain(h.hostId))) continue;
      try {
        await this.provider.terminate(h.hostId);
        await this.store.forgetHost(h.hostId);
        this.emptySince.delete(h.hostId);
        live--;
        out.push(h.hostId);
        this.log.info({ hostId: h.hostId, idleSeconds: Math.round((now - since) / 1000) }, 'scale-in: idle host terminated');
      } catch (err) {
        await this.store.undrain(h.hostId);
        this.log.warn({ hostId: h.hostId, err: (err as Error).message }, 'scale-in: terminate failed');
      }
    }
    return out;
  }

  async stop(): Promise<void> {
    await this.launching?.catch(() => {});
  }
}

function noCapacity(message: string, retryAfterSeconds: number): OmegaError {
  return new OmegaError('NO_CAPACITY', message, { details: { retryAfterSeconds } });
}
