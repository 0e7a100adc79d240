import { isIP } from 'node:net';
import { Periodic } from '../src/lifecycle.js';
import type { Logger } from '../src/log.js';
import type { DnsClient } from './clients.js';
import type { HostEvents } from './host-events.js';
import { describe, type Sandboxes } from './sandboxes.js';
import { SANDBOX_ID_FORMAT } from '../src/ids.js';
import type { SandboxRecord, Store } from './store.js';
import type { SnapshotView } from '../src/protocol/master.js';
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
 * The reconciler's work is three sweeps (the sandbox records, the DNS zone,
 * the snapshots), each a cursor in Redis that the masters share: at each
 * TICK_MS a master takes a sweep's lease, works its next PAGE entries and
 * moves its cursor. So the work of a tick is bounded whatever the number of
 * sandboxes, and several masters split a cycle instead of each repeating it
 * (at 100,000 sandboxes a cycle is 200 pages: 200 s with one master, half
 * with two). A sweep begins a new cycle at most every intervalMs.
 */
const PAGE = 500;
const TICK_MS = 1000;
/** A lease outlives any page's work; a master that died holding it delays that sweep this long. */
const LEASE_MS = 30_000;

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
    private readonly opts: {
      intervalMs: number;
      createTimeoutMs: number;
      lostRetentionSeconds: number;
      /** A host reports a sandbox idle past its limit. */
      onIdle?: (id: string, host: string, why: string) => Promise<unknown>;
      /** Hosts have a TLS ingress: the zone's wildcard points at them. */
      wildcard?: { ttl: number };
    },
    private readonly log: Logger,
  ) {
    this.task = new Periodic(Math.min(TICK_MS, opts.intervalMs), () => this.step(), (err) => this.log.warn({ err }, 'reconcile failed'));
  }

  start(): void {
    this.task.start();
    this.events.start(async (e) => {
      if (e.state === 'wake') return this.wake(e.sandbox, e.host);
      if (e.state === 'idle') return this.opts.onIdle?.(e.sandbox, e.host, e.why);
      return this.containerStopped(e.sandbox, e.host, e.why);
    });
  }

  async stop(): Promise<void> {
    await this.events.stop();
    await this.task.stop();
  }

  private fullPass: Promise<MasterReconcileReport> | null = null;

  /** One step of the shared sweeps (what a tick does), now. */
  tick(): Promise<MasterReconcileReport> {
    return this.task.run();
  }

  /** A whole pass of every sweep by this master, now; concurrent calls share it. */
  run(): Promise<MasterReconcileReport> {
    return (this.fullPass ??= this.full().finally(() => (this.fullPass = null)));
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

  /**
   * One tick: the next page of each sweep whose lease this master takes
   * (another master may be working another sweep meanwhile). A sweep
   * begins a cycle at most every intervalMs; a page is PAGE entries.
   * (Hosts are admitted by the reaper's host check, each of its ticks.)
   */
  private async step(): Promise<MasterReconcileReport> {
    const report = emptyReport();
    for (const sweep of SWEEPS) {
      if (!(await this.store.takeSweep(sweep, LEASE_MS))) continue;
      try {
        const at = await this.store.sweepAt(sweep);
        if (!at.cursor && Date.now() < at.nextCycleAtMs) continue;
        const next = await this.page(sweep, at.cursor, report);
        await this.store.moveSweep(sweep, next, at.cursor ? undefined : Date.now() + this.opts.intervalMs);
      } finally {
        await this.store.leaveSweep(sweep);
      }
    }
    this.logReport(report);
    return report;
  }

  /** Every sweep from start to end, now, by this master alone (at start, and on demand). */
  private async full(): Promise<MasterReconcileReport> {
    const report = emptyReport();
    report.admitted = await this.store.admitHosts();
    for (const sweep of SWEEPS) {
      let cursor = '';
      do cursor = await this.page(sweep, cursor, report);
      while (cursor);
      // A whole cycle: the shared sweep need not begin another for intervalMs (where it stands is left as it is).
      await this.store.deferSweep(sweep, Date.now() + this.opts.intervalMs);
    }
    this.logReport(report);
    return report;
  }

  private logReport(report: MasterReconcileReport): void {
    if (Object.values(report).some((v) => v.length > 0)) this.log.info({ ...Object.fromEntries(Object.entries(report).map(([k, v]) => [k, v.length])) }, 'reconciled');
  }

  /** One page of a sweep from `cursor` ('' its start); the cursor after it, '' at its end. */
  private async page(sweep: Sweep, cursor: string, report: MasterReconcileReport): Promise<string> {
    if (sweep === 'names') {
      // Once a cycle: the zone's wildcard against the live hosts.
      if (!cursor && this.opts.wildcard) report.wildcard = await this.sweepWildcard(this.opts.wildcard.ttl);
      const page = await this.dns.list('', cursor || undefined);
      await this.namePage(page.records.map((r) => r.name), report);
      return page.nextCursor ?? '';
    }
    const at = decodeSweepCursor(cursor);
    const items = sweep === 'sandboxes' ? await this.store.page(at, PAGE) : await this.store.snapshotPage(at, PAGE);
    if (sweep === 'sandboxes') await this.sandboxPage(items.map((i) => i.id), report);
    else await this.snapshotPage(items.map((i) => i.id), report);
    const last = items.at(-1);
    return items.length < PAGE || !last ? '' : `${last.ms}:${last.id}`;
  }

  /**
   * Records against their hosts' tables: creates and deletes abandoned by
   * their master finished, running sandboxes whose container is gone marked
   * lost, lost ones past retention purged, a running one off the expiry
   * index put back on it, missing names written again, the snapshot
   * schedule kept. Reads only what these sandboxes touch.
   */
  private async sandboxPage(ids: string[], report: MasterReconcileReport): Promise<void> {
    if (!ids.length) return;
    const now = Date.now();
    const recs = await this.store.getMany(ids);
    const onHost = new Map<string, string[]>();
    for (const r of recs) if (r?.host) onHost.set(r.host, [...(onHost.get(r.host) ?? []), r.id]);
    const alive = await this.store.aliveOf([...onHost.keys()]);
    // Read after the records: a sandbox created since is in its table already (the manager writes it before answering).
    const tables = new Map(await Promise.all([...alive].map(async (h) => [h, await this.store.containerRows(h, onHost.get(h)!)] as const)));
    const owners = await this.store.mastersAlive(recs.flatMap((r) => (r?.owner ? [r.owner] : [])));
    const unindexed = await this.store.withoutExpiry(recs.flatMap((r) => (r?.state === 'running' ? [r.id] : [])));

    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      const r = recs[i];
      if (!r) {
        await this.store.dropIndex(id);
        report.dropped.push(id);
        continue;
      }
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

    const running = recs.filter((r): r is SandboxRecord => r?.state === 'running');
    await this.rewriteMissingNames(running.filter((r) => r.dns), report);
    report.scheduled.push(...(await this.sandboxes.persistence.reschedule(running.filter((r) => !r.internal).map((r) => r.id))));
  }

  /**
   * A running sandbox whose names are missing from the zone gets them
   * again (a DNS write lost in a Redis failover: the zone's keys may live on
   * another Cluster node than the records, which WAIT does not cover).
   */
  private async rewriteMissingNames(running: SandboxRecord[], report: MasterReconcileReport): Promise<void> {
    if (!running.length) return;
    const present = await this.dns.present(running.flatMap((r) => this.sandboxes.names(r.id)));
    for (const r of running) {
      if (this.sandboxes.names(r.id).every((n) => present.has(n))) continue;
      // Still running now (not deleted since the page was read)? Then its names are written again.
      const now = await this.store.get(r.id);
      if (now?.state !== 'running') continue;
      await this.sandboxes.writeNames(now);
      this.log.warn({ sandboxId: r.id }, 'a running sandbox\'s names were missing; written again');
      report.rewritten.push(r.id);
    }
  }

  /** Names in the zone whose sandbox is gone (or lost) are removed; the records are read after the names were listed. */
  private async namePage(names: string[], report: MasterReconcileReport): Promise<void> {
    const suffix = `.${this.zone}`;
    const ours = names.flatMap((n) => {
      const name = n.replace(/\.$/, '');
      if (!name.endsWith(suffix)) return [];
      const rel = name.slice(0, -suffix.length);
      const id = rel.startsWith('*.') ? rel.slice(2) : rel;
      return SANDBOX_ID_FORMAT.test(id) ? [{ rel, id }] : [];
    });
    if (!ours.length) return;
    const recs = await this.store.getMany(ours.map((o) => o.id));
    const stale = ours.filter((_, i) => !recs[i] || recs[i]!.state === 'lost').map((o) => o.rel);
    if (stale.length) await this.dns.removeNames(stale);
    report.names.push(...stale);
  }

  /** Periodic and archive snapshots whose sandbox is gone (and that are no workspace's latest) are removed. */
  private async snapshotPage(ids: string[], report: MasterReconcileReport): Promise<void> {
    const snaps = (await this.store.getSnapshots(ids)).filter((s): s is SnapshotView => !!s && s.kind !== 'manual' && s.kind !== 'workspace');
    if (!snaps.length) return;
    // Read after the snapshots: one made since for a sandbox created since finds its record.
    const owners = await this.store.getMany(snaps.map((s) => s.sandboxId));
    for (let i = 0; i < snaps.length; i++) {
      if (owners[i]) continue;
      await this.sandboxes.persistence.dropIfOwned(snaps[i]!.id);
      report.snapshots.push(snaps[i]!.id);
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
  private async sweepWildcard(ttl: number): Promise<string[]> {
    const hosts = await this.store.hosts();
    const live = [...new Set(hosts.filter((h) => h.alive && !h.stoppedAtMs && isIP(h.address)).map((h) => h.address))].sort();
    const current = new Map(((await this.dns.get('*'))?.records ?? []).map((r) => [r.type, [...r.values].sort()] as const));
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

type Sweep = 'sandboxes' | 'names' | 'snapshots';
const SWEEPS: Sweep[] = ['sandboxes', 'names', 'snapshots'];

function emptyReport(): MasterReconcileReport {
  return { dropped: [], finished: [], lost: [], purged: [], names: [], admitted: [], rewritten: [], scheduled: [], snapshots: [], wildcard: [] };
}

function decodeSweepCursor(cursor: string): { ms: number; id: string } | null {
  const i = cursor.indexOf(':');
  return i > 0 ? { ms: Number(cursor.slice(0, i)), id: cursor.slice(i + 1) } : null;
}
