import { request } from 'undici';
import { Periodic } from '../src/lifecycle.js';
import type { Logger } from '../src/log.js';
import type { Sandboxes } from './sandboxes.js';
import { describe } from './sandboxes.js';
import type { Store } from './store.js';
import { joinHostPort } from '../src/config/settings.js';

/** How long a failed expiry waits before it is tried again. */
const RETRY_MS = 5000;

/**
 * Ends what must end, on timers:
 *  - sandboxes past their expiry (one master wins each, by removing it from
 *    the expiry set first);
 *  - sandboxes idle past their idleSeconds (the worker's /healthz says how long);
 *  - hosts whose heartbeat lapsed: their sandboxes are marked lost and their
 *    names removed at once; a host silent for hostForgetSeconds is dropped.
 */
export class Reaper {
  private readonly tasks: Array<Periodic<unknown>>;
  lostMarked = 0;

  constructor(
    private readonly store: Store,
    private readonly sandboxes: Sandboxes,
    private readonly opts: { reapIntervalMs: number; idleCheckIntervalMs: number; hostForgetSeconds: number },
    private readonly log: Logger,
  ) {
    const task = (ms: number, name: string, pass: () => Promise<unknown>) =>
      new Periodic(ms, pass, (err) => this.log.warn({ err: describe(err), task: name }, 'reaper pass failed'));
    this.tasks = [
      task(opts.reapIntervalMs, 'expiry', () => this.reapExpired()),
      task(opts.reapIntervalMs, 'hosts', () => this.checkHosts()),
      task(opts.idleCheckIntervalMs, 'idle', () => this.reapIdle()),
    ];
  }

  start(): void {
    for (const t of this.tasks) t.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.tasks.map((t) => t.stop()));
  }

  async reapExpired(): Promise<string[]> {
    const done: string[] = [];
    for (const id of await this.store.expired(Date.now())) {
      if (!(await this.store.claimExpired(id))) continue; // another master has it
      try {
        await this.sandboxes.delete(id, 'expired');
        done.push(id);
      } catch (err) {
        this.log.warn({ sandboxId: id, err: describe(err) }, 'expiry failed; retrying shortly');
        await this.store.setExpiry(id, Date.now() + RETRY_MS).catch(() => {});
      }
    }
    return done;
  }

  async reapIdle(): Promise<string[]> {
    const ids = await this.store.allIds();
    const recs = await this.store.getMany(ids);
    const done: string[] = [];
    await Promise.all(
      recs.map(async (r) => {
        if (!r || r.state !== 'running' || !r.idleSeconds || !r.hostPort) return;
        const idleMs = await workerIdleMs(r.address, r.hostPort);
        if (idleMs === null || idleMs < r.idleSeconds * 1000) return;
        if (!(await this.store.claimExpired(r.id))) return;
        try {
          await this.sandboxes.delete(r.id, 'idle');
          done.push(r.id);
        } catch (err) {
          await this.store.setExpiry(r.id, Date.now() + RETRY_MS).catch(() => {});
          this.log.warn({ sandboxId: r.id, err: describe(err) }, 'idle delete failed; retrying shortly');
        }
      }),
    );
    return done;
  }

  async checkHosts(): Promise<void> {
    const now = Date.now();
    for (const h of await this.store.hosts()) {
      if (h.alive) {
        if (h.lostAtMs) {
          await this.store.hostBack(h.hostId);
          this.log.info({ hostId: h.hostId }, 'host is back; its manager reaps the containers of its lost sandboxes');
        }
        continue;
      }
      if (h.lostAtMs === null) {
        const ids = await this.store.markHostLost(h.hostId);
        this.lostMarked += ids.length;
        this.log.warn({ hostId: h.hostId, sandboxes: ids.length }, 'host heartbeat lapsed; its sandboxes are lost');
        for (const id of ids) {
          await this.sandboxes
            .removeDns(id)
            .then(() => this.store.setFields(id, { dns: '0' }))
            .catch((err: unknown) => this.log.warn({ sandboxId: id, err: describe(err) }, 'removing a lost sandbox\'s names failed; the reconciler retries'));
        }
      } else if (now - h.lostAtMs > this.opts.hostForgetSeconds * 1000) {
        await this.store.forgetHost(h.hostId);
        this.log.info({ hostId: h.hostId }, 'silent host forgotten');
      }
    }
  }
}

/** The worker's idle time in ms, or null if it does not answer. */
async function workerIdleMs(address: string, port: number): Promise<number | null> {
  try {
    const res = await request(`http://${joinHostPort(address, port)}/healthz`, { headersTimeout: 2000, bodyTimeout: 2000 });
    if (res.statusCode !== 200) {
      await res.body.dump();
      return null;
    }
    const body = (await res.body.json()) as { idleMs?: number };
    return typeof body.idleMs === 'number' ? body.idleMs : null;
  } catch {
    return null;
  }
}
