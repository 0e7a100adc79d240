import { Periodic } from '../src/lifecycle.js';
import type { Logger } from '../src/log.js';
import type { DnsClient, ManagerClient } from './clients.js';
import { describe, type Sandboxes } from './sandboxes.js';
import { SANDBOX_ID_FORMAT, type SandboxRecord, type Store } from './store.js';

export interface MasterReconcileReport {
  /** Index entries without a record, dropped. */
  dropped: string[];
  /** Stuck creates and deletes finished (deleted). */
  finished: string[];
  /** Running sandboxes whose host no longer has them. */
  lost: string[];
  /** Lost sandboxes kept past retention, forgotten. */
  purged: string[];
  /** Containers a manager runs for sandboxes the master does not know, removed. */
  strays: string[];
  /** DNS names of sandboxes that are gone, removed. */
  names: string[];
}

/**
 * Heals what a crash between two steps of a create or delete leaves, by
 * comparing Redis with what the managers and the DNS server report. Safe to
 * run from several masters at once: every step it takes is idempotent.
 */
export class MasterReconciler {
  private readonly task: Periodic<MasterReconcileReport>;

  constructor(
    private readonly store: Store,
    private readonly sandboxes: Sandboxes,
    private readonly managers: ManagerClient,
    private readonly dns: DnsClient,
    private readonly zone: string,
    private readonly opts: { intervalMs: number; createTimeoutMs: number; lostRetentionSeconds: number },
    private readonly log: Logger,
  ) {
    this.task = new Periodic(opts.intervalMs, () => this.pass(), (err) => this.log.warn({ err: describe(err) }, 'reconcile failed'));
  }

  start(): void {
    this.task.start();
  }

  stop(): Promise<void> {
    return this.task.stop();
  }

  /** One pass; concurrent calls share it. */
  run(): Promise<MasterReconcileReport> {
    return this.task.run();
  }

  private async pass(): Promise<MasterReconcileReport> {
    const report: MasterReconcileReport = { dropped: [], finished: [], lost: [], purged: [], strays: [], names: [] };
    const now = Date.now();
    const hosts = await this.store.hosts();
    const alive = new Map(hosts.filter((h) => h.alive).map((h) => [h.hostId, h]));
    // What each live host's manager runs (null: it did not answer, so judge nothing by it).
    const onHost = new Map<string, Map<string, { createdAt: string }> | null>();
    await Promise.all(
      [...alive.values()].map(async (h) => {
        try {
          onHost.set(h.hostId, new Map((await this.managers.list(h.managerUrl)).map((s) => [s.id, s])));
        } catch (err) {
          onHost.set(h.hostId, null);
          this.log.warn({ hostId: h.hostId, err: describe(err) }, 'manager did not list its sandboxes');
        }
      }),
    );

    const ids = await this.store.allIds();
    const recs = await this.store.getMany(ids);
    const known = new Map<string, SandboxRecord>();
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      const r = recs[i];
      if (!r) {
        await this.store.dropIndex(id);
        report.dropped.push(id);
        continue;
      }
      known.set(id, r);
      const age = now - r.stateSinceMs;
      try {
        if ((r.state === 'creating' && age > 2 * this.opts.createTimeoutMs) || (r.state === 'deleting' && age > 60_000)) {
          await this.sandboxes.delete(id, `stuck ${r.state}`);
          report.finished.push(id);
        } else if (r.state === 'lost') {
          if (r.dns) {
            await this.sandboxes.removeDns(id);
            await this.store.setFields(id, { dns: '0' });
          }
          if (r.lostAtMs && now - r.lostAtMs > this.opts.lostRetentionSeconds * 1000) {
            await this.store.release(id);
            report.purged.push(id);
          }
        } else if (r.state === 'running') {
          const listed = onHost.get(r.host);
          if (listed && !listed.has(id) && age > 10_000) {
            // Its container is gone (the manager forgot it): lost, and its names go.
            if (await this.store.transition(id, ['running'], 'lost', { lostAtMs: String(now) })) {
              this.log.warn({ sandboxId: id, hostId: r.host }, 'sandbox missing on its host; marked lost');
              await this.sandboxes.removeDns(id);
              await this.store.setFields(id, { dns: '0' });
              await this.store.leaveHost(id, r.host);
              report.lost.push(id);
            }
          } else if (!(await this.store.redis.zscore(this.store.keys.expiry, id))) {
            await this.store.setExpiry(id, r.expiresAtMs);
          }
        }
      } catch (err) {
        this.log.warn({ sandboxId: id, err: describe(err) }, 'reconciling a sandbox failed; next pass retries');
      }
    }

    // Containers a manager runs that the master has no live record of (a create that lost its master).
    for (const [hostId, listed] of onHost) {
      if (!listed) continue;
      for (const [id, s] of listed) {
        const r = known.get(id);
        if (r && r.host === hostId && r.state !== 'lost') continue;
        if (now - Date.parse(s.createdAt) < this.opts.createTimeoutMs) continue;
        try {
          await this.managers.delete(alive.get(hostId)!.managerUrl, id);
          report.strays.push(id);
          this.log.warn({ sandboxId: id, hostId }, 'removed a sandbox the master has no record of');
        } catch (err) {
          this.log.warn({ sandboxId: id, err: describe(err) }, 'removing a stray sandbox failed');
        }
      }
    }

    // Names of sandboxes that are gone.
    report.names = await this.sweepDns(known);
    const changed = Object.values(report).some((v) => v.length > 0);
    if (changed) this.log.info({ ...Object.fromEntries(Object.entries(report).map(([k, v]) => [k, v.length])) }, 'reconciled');
    return report;
  }

  private async sweepDns(known: Map<string, SandboxRecord>): Promise<string[]> {
    const removed: string[] = [];
    const suffix = `.${this.zone}`;
    let cursor: string | undefined;
    do {
      const page = await this.dns.list('', cursor);
      for (const record of page.records) {
        const name = record.name.replace(/\.$/, '');
        if (!name.endsWith(suffix)) continue;
        const rel = name.slice(0, -suffix.length);
        const id = rel.startsWith('*.') ? rel.slice(2) : rel;
        if (!SANDBOX_ID_FORMAT.test(id)) continue;
        const r = known.get(id);
        if (r && r.state !== 'lost') continue;
        // Created since this pass read the index? Look again before removing its name.
        const now = await this.store.get(id);
        if (now && now.state !== 'lost') continue;
        await this.dns.remove(rel);
        removed.push(rel);
      }
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    return removed;
  }
}
