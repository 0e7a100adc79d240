import { isIP } from 'node:net';
import { Periodic } from '../src/lifecycle.js';
import type { Logger } from '../src/log.js';
import type { DnsClient } from './clients.js';
import type { HostEvents } from './host-events.js';
import { describe, type Sandboxes } from './sandboxes.js';
import { SANDBOX_ID_FORMAT } from '../src/ids.js';
import type { HostView, SandboxRecord, Store } from './store.js';
import { MAX_VALUES, type Change } from '../src/protocol/dns.js';
import type { ContainerEntry } from '../src/protocol/manager.js';

export interface MasterReconcileReport {
  /** Index entries without a record, dropped. */
  dropped: string[];
  /** Creates and deletes abandoned by their master (gone, or stuck past their time), finished (deleted). */
  finished: string[];
  /** Running sandboxes whose container is gone from their host, marked lost. */
  lost: string[];
  /** Lost sandboxes kept past retention, deleted with their workspace. */
  purged: string[];
  /** DNS names of sandboxes that are gone, removed. */
  names: string[];
  /** Hosts that registered and were put in the load set. */
  admitted: string[];
  /** Running sandboxes whose names were missing from the zone, written again. */
  rewritten: string[];
  /** Running sandboxes put back on the periodic snapshot schedule (a master died between their create and it). */
  scheduled: string[];
  /** Periodic and archive snapshots of sandboxes that are gone (their delete did not get to them), removed. */
  snapshots: string[];
  /** The zone's wildcard, when it changed: the addresses it answers now. */
  wildcard: string[];
}

/**
 * A deleting sandbox whose master is alive and still working on it is left
 * to it this long before it is taken over (one whose step failed is given
 * up by its master, owned by no one, and taken over at once).
 */
const DELETE_STUCK_MS = 60_000;

/**
 * The one authority over what a sandbox's record says against what runs:
 * it compares the master's records with the managers' container tables (in
 * Redis, written by each manager alone) and with the DNS zone, and heals
 * what a crash between two steps leaves. It also turns the containers that
 * managers report stopped (host events) into `lost` sandboxes at once.
 * Safe to run from several masters at once: every step is a script that
 * checks the state it expects, or idempotent.
 */
export class MasterReconciler {
  private readonly task: Periodic<MasterReconcileReport>;

  constructor(
    private readonly store: Store,
    private readonly sandboxes: Sandboxes,
    private readonly dns: DnsClient,
    private readonly events: HostEvents,
    private readonly zone: string,
    private readonly opts: { intervalMs: number; createTimeoutMs: number; lostRetentionSeconds: number; /** Hosts have a TLS ingress: the zone's wildcard points at them. */ wildcard?: { ttl: number } },
    private readonly log: Logger,
  ) {
    this.task = new Periodic(opts.intervalMs, () => this.pass(), (err) => this.log.warn({ err }, 'reconcile failed'));
  }

  start(): void {
    this.task.start();
    this.events.start((e) => (e.state === 'wake' ? this.wake(e.sandbox, e.host) : this.containerStopped(e.sandbox, e.host, e.why)));
  }

  async stop(): Promise<void> {
    await this.events.stop();
    await this.task.stop();
  }

  /** One pass; concurrent calls share it. */
  run(): Promise<MasterReconcileReport> {
    return this.task.run();
  }

  /** A manager says the container of `id` stopped: lost, and its names go now. True if it was running there. */
  /**
   * A connection reached a paused sandbox created with autoResume (its
   * host's ingress said so): resumed, once, by the master that took the
   * event; the ingress waits for it and then serves the connection.
   */
  private async wake(id: string, host: string): Promise<void> {
    const r = await this.store.get(id);
    if (!r || r.host !== host || r.state !== 'paused' || !r.autoResume) return;
    try {
      await this.sandboxes.resume(id);
      this.log.info({ sandboxId: id }, 'woken by a connection');
    } catch (err) {
      this.log.warn({ sandboxId: id, err: describe(err) }, 'waking a paused sandbox failed');
    }
  }

  async containerStopped(id: string, hostId: string, why: string): Promise<boolean> {
    if (!(await this.store.markLost(id, hostId, why))) return false;
    this.log.warn({ sandboxId: id, hostId, why }, 'sandbox container stopped; marked lost');
    await this.sandboxes.removeNames(id);
    return true;
  }

  /**
   * A pause, resume, archive or restore its master left half done: settled
   * by what the host's own row says it did. A restore whose sandbox runs on
   * its new host is finished; one that does not is taken back (what it
   * started there removed). An archive whose container is gone is finished
   * (its snapshot was recorded before the container was removed); one whose
   * container is still there is taken back to stopped.
   */
  private async settleAbandoned(r: SandboxRecord, entry: ContainerEntry | undefined): Promise<boolean> {
    if (r.state === 'resuming' && r.movedFrom) {
      if (entry?.state === 'running') {
        return !!(await this.store.settle(r.id, 'resuming', 'running', { hostPort: String(entry.hostPort), containerId: entry.containerId }, ''));
      }
      await this.sandboxes.persistence.back(r.id, r.managerUrl, this.log.child({ sandboxId: r.id }), '');
      return true;
    }
    if (r.state === 'pausing' && r.pauseKind === 'archived') {
      if (!entry || entry.state === 'removed') return 'record' in (await this.store.move(r.id, 'archive', ''));
      return !!(await this.store.settle(r.id, 'pausing', 'paused', { pauseKind: 'stopped' }, ''));
    }
    const to = entry?.state === 'paused' || entry?.state === 'stopped' ? 'paused' : 'running';
    return !!(await this.store.settle(r.id, r.state as 'pausing' | 'resuming', to, {}, ''));
  }

  private async pass(): Promise<MasterReconcileReport> {
    const report: MasterReconcileReport = { dropped: [], finished: [], lost: [], purged: [], names: [], admitted: [], rewritten: [], scheduled: [], snapshots: [], wildcard: [] };
    const now = Date.now();
    report.admitted = await this.store.admitHosts();
    const ids = await this.store.allIds();
    const recs = await this.store.getMany(ids);
    const hosts = await this.store.hosts();
    const alive = new Set(hosts.filter((h) => h.alive).map((h) => h.hostId));
    // Read after the records: a sandbox created since is in its table already (the manager writes it before answering).
    const tables = new Map(await Promise.all([...alive].map(async (h) => [h, await this.store.containers(h)] as const)));
    const owners = await this.store.mastersAlive(recs.flatMap((r) => (r?.owner ? [r.owner] : [])));
    const unindexed = await this.store.withoutExpiry(recs.flatMap((r) => (r?.state === 'running' ? [r.id] : [])));

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
      const abandoned = r.owner !== null && !owners.has(r.owner);
      try {
        if (r.state === 'creating' && (abandoned || age > 2 * this.opts.createTimeoutMs)) {
          await this.sandboxes.delete(id, abandoned ? 'its create was abandoned by a master that is gone' : 'stuck creating');
          report.finished.push(id);
        } else if (r.state === 'deleting' && (abandoned || r.owner === null || age > DELETE_STUCK_MS)) {
          await this.sandboxes.delete(id, 'an unfinished delete');
          report.finished.push(id);
        } else if ((r.state === 'pausing' || r.state === 'resuming') && (abandoned || age > 2 * this.opts.createTimeoutMs)) {
          if (await this.settleAbandoned(r, tables.get(r.host)?.get(id))) report.finished.push(id);
        } else if (r.state === 'lost') {
          if (r.lostAtMs && now - r.lostAtMs > this.opts.lostRetentionSeconds * 1000) {
            await this.sandboxes.delete(id, 'lost past its retention');
            report.purged.push(id);
          } else if (r.dns) {
            await this.sandboxes.removeNames(id);
          }
        } else if (r.state === 'running') {
          const entry = tables.get(r.host)?.get(id);
          if (tables.has(r.host) && entry?.state !== 'running') {
            if (await this.containerStopped(id, r.host, entry?.why ?? (entry ? `container ${entry.state}` : 'no container on its host'))) report.lost.push(id);
          } else if (unindexed.has(id)) {
            // An expiry claimed by a master that failed before its delete began: it must expire again.
            await this.store.setExpiry(id, r.expiresAtMs);
          }
        }
      } catch (err) {
        this.log.warn({ sandboxId: id, err: describe(err) }, 'reconciling a sandbox failed; next pass retries');
      }
    }

    await this.sweepDns(known, hosts, report);
    await this.sweepSnapshots(known, report);
    const changed = Object.values(report).some((v) => v.length > 0);
    if (changed) this.log.info({ ...Object.fromEntries(Object.entries(report).map(([k, v]) => [k, v.length])) }, 'reconciled');
    return report;
  }

  /**
   * Snapshots against the records: a running sandbox off the periodic
   * schedule is put back on it, and a periodic or archive snapshot whose
   * sandbox is gone (and is no workspace's latest) is removed.
   */
  private async sweepSnapshots(known: Map<string, SandboxRecord>, report: MasterReconcileReport): Promise<void> {
    const running = [...known.values()].filter((r) => r.state === 'running' && !r.internal).map((r) => r.id);
    report.scheduled = await this.sandboxes.persistence.reschedule(running);
    for (const s of await this.store.listSnapshots()) {
      if (s.kind === 'manual' || s.kind === 'workspace' || known.has(s.sandboxId)) continue;
      // Made since this pass read the index? Look again before removing it.
      if (await this.store.get(s.sandboxId)) continue;
      await this.sandboxes.persistence.dropIfOwned(s.id);
      report.snapshots.push(s.id);
    }
  }

  /**
   * The zone against the records: names of sandboxes that are gone (or
   * lost) are removed, and a running sandbox whose names are missing gets
   * them again (a DNS write lost in a Redis failover: the zone's keys may
   * live on another Cluster node than the records, which WAIT does not cover).
   */
  private async sweepDns(known: Map<string, SandboxRecord>, hosts: HostView[], report: MasterReconcileReport): Promise<void> {
    const stale: string[] = [];
    const present = new Set<string>();
    const wildcard = new Map<string, string[]>();
    const suffix = `.${this.zone}`;
    let cursor: string | undefined;
    do {
      const page = await this.dns.list('', cursor);
      for (const record of page.records) {
        const name = record.name.replace(/\.$/, '');
        if (!name.endsWith(suffix)) continue;
        const rel = name.slice(0, -suffix.length);
        present.add(rel);
        if (rel === '*') for (const r of record.records) wildcard.set(r.type, [...r.values].sort());
        const id = rel.startsWith('*.') ? rel.slice(2) : rel;
        if (!SANDBOX_ID_FORMAT.test(id)) continue;
        const r = known.get(id);
        if (r && r.state !== 'lost') continue;
        // Created since this pass read the index? Look again before removing its name.
        const now = await this.store.get(id);
        if (now && now.state !== 'lost') continue;
        stale.push(rel);
      }
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    if (stale.length) await this.dns.removeNames(stale);
    report.names = stale;
    if (this.opts.wildcard) report.wildcard = await this.sweepWildcard(hosts, wildcard, this.opts.wildcard.ttl);
    const missing: SandboxRecord[] = [];
    for (const r of known.values()) {
      if (r.state === 'running' && r.dns && this.sandboxes.names(r.id).some((n) => !present.has(n))) missing.push(r);
    }
    for (const r of missing) {
      // Still running now (not deleted since the pass read it)? Then its names are written again.
      const now = await this.store.get(r.id);
      if (now?.state !== 'running') continue;
      await this.sandboxes.writeNames(now);
      this.log.warn({ sandboxId: r.id }, 'a running sandbox\'s names were missing; written again');
      report.rewritten.push(r.id);
    }
  }

  /**
   * The zone's wildcard `*.<zone>` answers the live hosts' addresses, as
   * E2B's wildcard name answers its proxy: a name no sandbox has (one deleted
   * or expired, an id never made) then reaches an ingress, which says 502
   * "The sandbox was not found" (the E2B SDK turns that into its own errors)
   * instead of leaving the client with NXDOMAIN, a network failure to it. A
   * sandbox's own names are exact and come first, and so do its
   * `<port>-<id>` previews (the DNS server's preview rule). Written only when
   * it differs from what the zone has; the addresses written, or [].
   */
  private async sweepWildcard(hosts: HostView[], current: Map<string, string[]>, ttl: number): Promise<string[]> {
    const live = [...new Set(hosts.filter((h) => h.alive && !h.stoppedAtMs && isIP(h.address)).map((h) => h.address))].sort();
    const changes: Change[] = [];
    for (const [type, family] of [['A', 4], ['AAAA', 6]] as const) {
      const want = live.filter((a) => isIP(a) === family).slice(0, MAX_VALUES);
      const have = current.get(type) ?? [];
      if (want.length === have.length && want.every((a, i) => a === have[i])) continue;
      changes.push(want.length ? { action: 'UPSERT', name: '*', type, ttl, values: want } : { action: 'DELETE', name: '*', type, ifExists: true });
    }
    if (!changes.length) return [];
    await this.dns.change(changes);
    this.log.info({ addresses: live }, 'the zone\'s wildcard points at the live hosts');
    return live;
  }
}
