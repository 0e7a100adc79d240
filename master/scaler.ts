import { randomBytes } from 'node:crypto';
import { OmegaError, isOmegaError } from '../src/errors.js';
import type { Logger } from '../src/log.js';
import type { LostHostAction, Provider } from './providers/provider.js';
import type { Store } from './store.js';

export interface Slot {
  hostId: string;
  address: string;
  managerUrl: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A lost host as this master follows it: since when, what its provider last did, the last failure said. */
interface LostHost {
  lostAtMs: number;
  action: LostHostAction;
  failure: string | null;
}

/**
 * Scale-out, scale-in, and the hosts that die. When no host has room, one master at a time (a
 * Redis lock) asks the provider for one host and waits for its manager to
 * register; every create waiting meanwhile, in any master, retries the
 * allocation until the new host takes it or the wait runs out. So a burst of
 * creates on full hosts starts one host, then another only if that one
 * fills up too. A host found lost goes to its provider (handleLostHosts).
 */
/** How long after a launched host registered the creates waiting for it try it before another host is launched. */
const REGISTERED_GRACE_MS = 2000;

export class Scaler {
  private readonly owner = randomBytes(8).toString('hex');
  private launching: Promise<void> | null = null;
  /** A provider refusal (at its maximum, or failing), shared with every waiter for a moment. */
  private refusal: { err: OmegaError; untilMs: number } | null = null;
  private readonly emptySince = new Map<string, number>();
  private readonly lost = new Map<string, LostHost>();
  private readonly now: () => number;
  launches = 0;
  private registeredAtMs = 0;
  /** Lost hosts by what was done about them, each host counted once per loss (for the metrics). */
  readonly lostHosts: Record<Exclude<LostHostAction, 'none'>, number> = { restarted: 0, terminated: 0, reported: 0 };

  constructor(
    private readonly store: Store,
    private readonly provider: Provider | null,
    private readonly opts: { waitMs: number; /** Clock of scale-in and lost hosts, for tests. */ now?: () => number },
    private readonly log: Logger,
  ) {
    this.now = opts.now ?? Date.now;
  }

  /** A slot from `tryAllocate`, adding a host when there is no room; NO_CAPACITY when none can be had in time. */
  async allocate(tryAllocate: () => Promise<Slot | null>): Promise<Slot> {
    const first = await tryAllocate();
    if (first) return first;
    if (!this.provider) throw noCapacity('every host is full and no provider is configured to add one (OMEGA_PROVIDER=none)', 5);
    const deadline = Date.now() + this.opts.waitMs;
    let pause = 50;
    while (Date.now() < deadline) {
      if (this.refusal && this.refusal.untilMs > Date.now()) throw this.refusal.err;
      // A host that has just registered gets a moment to be admitted and allocated from before another is launched.
      const settling = Date.now() - this.registeredAtMs < REGISTERED_GRACE_MS;
      if (!this.launching && !settling && (await this.store.tryScaleOutLock(this.owner, this.opts.waitMs))) {
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
          this.registeredAtMs = Date.now();
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
      this.log.warn({ err: e, code: e.code }, 'scale-out refused');
    } finally {
      // The lock expires by itself (after waitMs); until then no other master scales out.
      await this.store.releaseScaleOutLock(this.owner).catch((err: unknown) => this.log.warn({ err }, 'scale-out: could not release the lock; it expires by itself'));
    }
  }

  /**
   * Scale-in: a host of the provider's that has been empty for its
   * scaleIn.idleSeconds is drained (atomically, only while still empty) and
   * terminated, never going below scaleIn.minHosts live hosts.
   */
  async scaleIn(): Promise<string[]> {
    if (!this.provider || this.provider.scaleIn.idleSeconds <= 0) return [];
    const { idleSeconds, minHosts } = this.provider.scaleIn;
    const now = this.now();
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
      if (now - since < idleSeconds * 1000 || live <= minHosts) continue;
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
        this.log.warn({ hostId: h.hostId, err }, 'scale-in: terminate failed');
      }
    }
    return out;
  }

  /**
   * Dead hosts: each host the reaper has marked lost goes to its provider on
   * every pass while it stays lost, to be restarted, terminated (then
   * forgotten here) or reported; with no provider it is reported. What was
   * done is logged and counted once per host and loss. A host the reaper
   * forgets (OMEGA_HOST_FORGET_SECONDS) before its provider is done with it
   * is still followed here, from memory.
   */
  async handleLostHosts(): Promise<Map<string, LostHostAction>> {
    const now = this.now();
    const out = new Map<string, LostHostAction>();
    const listed = new Set<string>();
    // The hosts marked lost and those this follows from an earlier pass: not every host.
    for (const h of await this.store.lostHostViews([...this.lost.keys()])) {
      listed.add(h.hostId);
      if (h.alive || h.lostAtMs === null) this.lost.delete(h.hostId);
      else out.set(h.hostId, await this.lostHost(h.hostId, h.lostAtMs, now, true));
    }
    for (const [hostId, l] of this.lost) {
      if (listed.has(hostId)) continue;
      // Forgotten: followed only while its provider has something to end (when it cannot tell, hostLost says why).
      const owned = this.provider ? await Promise.resolve(this.provider.owns(hostId)).catch(() => true) : false;
      if (!owned) this.lost.delete(hostId);
      else out.set(hostId, await this.lostHost(hostId, l.lostAtMs, now, false));
    }
    return out;
  }

  private async lostHost(hostId: string, lostAtMs: number, now: number, listed: boolean): Promise<LostHostAction> {
    let l = this.lost.get(hostId);
    if (!l || l.lostAtMs !== lostAtMs) {
      l = { lostAtMs, action: 'none', failure: null };
      this.lost.set(hostId, l);
    }
    const provider = this.provider?.name ?? 'none';
    const lostForMs = now - lostAtMs;
    let action: LostHostAction;
    try {
      action = this.provider ? await this.provider.hostLost(hostId, lostForMs) : 'reported';
      if (action === 'terminated' && listed) await this.store.forgetHost(hostId);
    } catch (err) {
      const failure = isOmegaError(err) ? `${err.code}: ${err.message}` : String(err);
      if (failure !== l.failure) this.log.warn({ hostId, provider, err }, 'lost host: its provider failed; tried again on the next pass');
      l.failure = failure;
      return 'none';
    }
    l.failure = null;
    if (action !== 'none' && action !== l.action) {
      this.lostHosts[action]++;
      const fields = { hostId, provider, lostSeconds: Math.round(lostForMs / 1000) };
      if (action === 'restarted') this.log.info(fields, 'lost host: its provider is restarting its manager');
      else if (action === 'terminated') this.log.warn(fields, 'lost host: terminated by its provider, and forgotten');
      else this.log.warn(fields, 'lost host: no provider can restart or replace it; it needs an operator');
    }
    l.action = action;
    if (action === 'terminated' || (!listed && action !== 'none')) this.lost.delete(hostId);
    return action;
  }

  async stop(): Promise<void> {
    await this.launching; // launchOne settles its own failures (logged, and answered to the creates waiting)
  }
}

function noCapacity(message: string, retryAfterSeconds: number): OmegaError {
  return new OmegaError('NO_CAPACITY', message, { details: { retryAfterSeconds } });
}
