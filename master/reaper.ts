import { Periodic } from '../src/lifecycle.js';
import { forEachLimit } from '../src/limit.js';
import type { Logger } from '../src/log.js';
import type { Sandboxes } from './sandboxes.js';
import { describe } from './sandboxes.js';
import type { SandboxRecord, Store } from './store.js';

/** Expired sandboxes taken off the index at once, ended at once, and batches a pass. */
const EXPIRY_BATCH = 200;
const EXPIRY_PARALLEL = 32;
const EXPIRY_BATCHES = 10;

/** How often the lost-host check looks at every host, not only those its index points at. */
const FULL_HOST_CHECK_MS = 60_000;

/** A host that does not say its heartbeat TTL (an older manager): the managers' default. */
const DEFAULT_HEARTBEAT_TTL_MS = 10_000;

/**
 * Ends what must end, on timers:
 *  - sandboxes past their expiry (one master wins each, by removing it from
 *    the expiry set first);
 *  - sandboxes idle past their idleSeconds, as their host reports them (idle());
 *  - hosts whose heartbeat lapsed: their sandboxes are marked lost and their
 *    names removed at once; a host silent for hostForgetSeconds is dropped.
 *    A host whose manager stopped on purpose (it deregistered) keeps its
 *    sandboxes running (its containers run on) until it has been silent for
 *    hostForgetSeconds; then they are lost too.
 * A delete that fails stays `deleting`, owned by this master: the
 * reconciler finishes it.
 */
export class Reaper {
  private readonly tasks: Array<Periodic<unknown>>;
  lostMarked = 0;
  /** Hosts the last lost-host check looked at. */
  hostsChecked = 0;

  constructor(
    private readonly store: Store,
    private readonly sandboxes: Sandboxes,
    private readonly opts: {
      reapIntervalMs: number;
      hostForgetSeconds: number;
      /** A host its provider still holds (an instance it will terminate): not forgotten here, its provider forgets it. */
      heldByProvider?: (hostId: string) => boolean | Promise<boolean>;
      /**
       * Since when this master's Redis connection is up (ms). While Redis was
       * away no manager could beat either: a heartbeat is judged lapsed only
       * once the connection has been up for that host's heartbeat TTL.
       */
      redisUpSinceMs?: () => number;
      /** Seconds a sandbox may stay frozen with its memory before it is stopped (0: never). */
      frozenSeconds?: number;
      /** Seconds a sandbox may stay stopped before it is archived (0: never). */
      stoppedSeconds?: number;
    },
    private readonly log: Logger,
  ) {
    const task = (ms: number, name: string, pass: () => Promise<unknown>) =>
      new Periodic(ms, pass, (err) => this.log.warn({ err: describe(err), task: name }, 'reaper pass failed'));
    this.tasks = [
      task(opts.reapIntervalMs, 'expiry', () => this.reapExpired()),
      task(opts.reapIntervalMs, 'hosts', () => this.checkHosts()),
      task(opts.reapIntervalMs, 'frozen', () => this.stopFrozen()),
      task(opts.reapIntervalMs, 'stopped', () => this.archiveStopped()),
      task(opts.reapIntervalMs, 'snapshots', () => this.sandboxes.persistence.takeDue()),
      task(opts.reapIntervalMs, 'abandoned snapshots', () => this.sandboxes.persistence.sweepAbandoned()),
    ];
  }

  start(): void {
    for (const t of this.tasks) t.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.tasks.map((t) => t.stop()));
  }

  /**
   * Sandboxes past their expiry, ended: taken off the index in batches (one
   * round trip each, disjoint between masters), EXPIRY_PARALLEL ended at
   * once, at most EXPIRY_BATCHES batches a pass, so a second of 10,000
   * expiries is worked off over a few passes while creates go on beside it.
   * A master that dies holding a batch leaves running sandboxes off the
   * index: the reconciler puts them back on it.
   */
  async reapExpired(): Promise<string[]> {
    const done: string[] = [];
    for (let batch = 0; batch < EXPIRY_BATCHES; batch++) {
      const ids = await this.store.takeExpired(Date.now(), EXPIRY_BATCH);
      await forEachLimit(ids, EXPIRY_PARALLEL, async (id) => {
        try {
          await this.end(id, await this.store.get(id), 'onTimeout', 'expired');
          done.push(id);
        } catch (err) {
          this.log.warn({ sandboxId: id, err: describe(err) }, 'expiry failed; the reconciler finishes the delete');
        }
      });
      if (ids.length < EXPIRY_BATCH) break;
    }
    return done;
  }

  /**
   * A host reports a sandbox idle past its limit (a host event, taken by
   * one master): ended by its onIdle rule once its expiry is claimed (so the
   * expiry pass cannot end it too). False when it is no longer running
   * there with an idle limit, or another master took it.
   */
  async idle(id: string, hostId: string, why: string): Promise<boolean> {
    const r = await this.store.get(id);
    if (!r || r.state !== 'running' || r.host !== hostId || !r.idleSeconds) return false;
    if (!(await this.store.claimExpired(id))) return false;
    try {
      await this.end(id, r, 'onIdle', 'idle');
      this.log.info({ sandboxId: id, why }, 'idle past its limit; ended');
    } catch (err) {
      this.log.warn({ sandboxId: id, err: describe(err) }, 'idle delete failed; the reconciler finishes the delete');
    }
    return true;
  }

  /**
   * A sandbox whose time or idleness is up: deleted, or paused with its
   * memory when it was created so (then it has its whole lifetime again once
   * resumed). Its expiry was claimed first, so one master does this.
   */
  private async end(id: string, r: SandboxRecord | null, rule: 'onTimeout' | 'onIdle', why: string): Promise<void> {
    if (r?.[rule] === 'pause') {
      await this.sandboxes.pause(id, 'memory', { timeLeftMs: r.lifetimeMs ?? undefined, why });
      return;
    }
    await this.sandboxes.delete(id, why);
  }

  /**
   * Sandboxes frozen with their memory for longer than frozenSeconds are
   * stopped: a frozen sandbox holds its memory on its host, a stopped one
   * only its disk. Each is taken by one master (the pause's own Lua step).
   */
  async stopFrozen(): Promise<string[]> {
    if (!this.opts.frozenSeconds) return [];
    const done: string[] = [];
    for (const id of await this.store.frozenSince(Date.now() - this.opts.frozenSeconds * 1000)) {
      try {
        const v = await this.sandboxes.pause(id, 'stopped', { why: 'frozen too long' });
        if (v.paused?.kind === 'stopped') done.push(id);
      } catch (err) {
        this.log.warn({ sandboxId: id, err: describe(err) }, 'stopping a sandbox frozen too long failed; retried next pass');
      }
    }
    return done;
  }

  /**
   * Sandboxes stopped for longer than stoppedSeconds are archived: their
   * workspace goes to the snapshot store and their host's disk and slot are
   * freed. Each is taken by one master (its own Lua step).
   */
  async archiveStopped(): Promise<string[]> {
    if (!this.opts.stoppedSeconds) return [];
    const done: string[] = [];
    for (const id of await this.store.stoppedSince(Date.now() - this.opts.stoppedSeconds * 1000)) {
      try {
        if (await this.sandboxes.persistence.archive(id)) done.push(id);
      } catch (err) {
        this.log.warn({ sandboxId: id, err: describe(err) }, 'archiving a sandbox stopped too long failed; retried next pass');
      }
    }
    return done;
  }

  private lastFullHostCheckMs = 0;

  /**
   * Hosts whose heartbeat lapsed: their sandboxes lost; hosts lost and
   * beating again: back; hosts silent past hostForgetSeconds: forgotten.
   * It looks at the hosts the heartbeat index says are past their time and
   * those marked lost, not at every host; every FULL_HOST_CHECK_MS it looks
   * at all of them (a host a manager of an older version registered, with
   * no entry in the index).
   */
  async checkHosts(): Promise<void> {
    const now = Date.now();
    const admitted = await this.store.admitHosts();
    if (admitted.length) this.log.info({ hosts: admitted }, 'hosts admitted for work');
    const full = now - this.lastFullHostCheckMs >= FULL_HOST_CHECK_MS;
    const hosts = full ? await this.store.hosts() : await this.store.hostsToCheck(now);
    if (full) this.lastFullHostCheckMs = now;
    this.hostsChecked = hosts.length;
    for (const h of hosts) {
      if (h.alive) {
        if (h.lostAtMs) {
          await this.store.hostBack(h.hostId);
          this.log.info({ hostId: h.hostId }, 'host is back; its manager reaps the containers of its lost sandboxes');
        }
        continue;
      }
      const silentForMs = now - (h.lostAtMs ?? h.stoppedAtMs ?? now);
      const upForMs = now - (this.opts.redisUpSinceMs?.() ?? 0);
      if (h.lostAtMs === null && upForMs < (h.heartbeatTtlMs ?? DEFAULT_HEARTBEAT_TTL_MS)) continue; // after an outage: let it beat first
      if (h.lostAtMs === null && (h.stoppedAtMs === null || silentForMs > this.opts.hostForgetSeconds * 1000)) {
        const ids = await this.store.markHostLost(h.hostId);
        this.lostMarked += ids.length;
        this.log.warn({ hostId: h.hostId, sandboxes: ids.length, stopped: h.stoppedAtMs !== null }, 'host heartbeat lapsed; its sandboxes are lost');
        for (const id of ids) {
          await this.sandboxes
            .removeNames(id)
            .catch((err: unknown) => this.log.warn({ sandboxId: id, err: describe(err) }, 'removing a lost sandbox\'s names failed; the reconciler retries'));
        }
      } else if (h.lostAtMs !== null && silentForMs > this.opts.hostForgetSeconds * 1000) {
        // Forgotten too early, an instance its provider is to terminate would be forgotten by a master restarted meanwhile, and bill on.
        if (await this.opts.heldByProvider?.(h.hostId)) continue;
        if (await this.store.forgetHost(h.hostId)) this.log.info({ hostId: h.hostId }, 'silent host forgotten');
      }
    }
  }
}
