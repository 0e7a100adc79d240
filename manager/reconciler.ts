import { Periodic } from '../src/lifecycle.js';
import { workspaceVolume } from './workspaces.js';
import type { Logger } from '../src/log.js';
import type { WarmPool } from './pool.js';
import type { HostRegistry } from './registry.js';
import { LABELS, type DockerRuntime } from './runtime/docker.js';
import type { Sandboxes } from './sandboxes.js';

export interface ReconcileReport {
  /** Containers (and their volumes) of sandboxes that are not this host's any more, or of no one, removed. */
  removed: string[];
  /** Sandboxes whose container stopped on its own, reported to the master. */
  exited: string[];
  /** Lost sandboxes whose container was removed, their workspace kept for the master's retention. */
  kept: string[];
  /** Volumes no container and no row refers to, removed. */
  volumes: string[];
  /** Rows of this host's table that refer to nothing the master still knows here, dropped. */
  rows: string[];
}

/** Master states in which a sandbox placed on this host still wants its container. */
const WANTED = new Set(['creating', 'running', 'pausing', 'paused', 'resuming', 'deleting']);

/**
 * Makes what runs on this host agree with what the master decided, changing
 * only what the manager owns (its containers, volumes and table):
 *  - a sandbox's container is kept while the master's record places the
 *    sandbox here and wants it (creating, running, deleting); one that
 *    stopped on its own is reported (row `exited` + a host event);
 *  - a sandbox the master marked lost here: its container is removed and
 *    its workspace volume kept (row `removed`) until the master deletes it;
 *  - anything else (no record, placed elsewhere, a pool container the pool
 *    does not know) is removed with its volume once older than the grace
 *    period, and so is a volume of Omega's that nothing refers to.
 * In-flight creates and deletes are left alone.
 */
export class Reconciler {
  private readonly task: Periodic<ReconcileReport>;

  constructor(
    private readonly runtime: DockerRuntime,
    private readonly registry: HostRegistry,
    private readonly sandboxes: Sandboxes,
    private readonly pool: WarmPool,
    private readonly opts: { intervalMs: number; graceMs: number },
    private readonly log: Logger,
  ) {
    this.task = new Periodic(opts.intervalMs, () => this.pass(), (err) => this.log.warn({ err }, 'reconcile failed'));
  }

  start(): void {
    this.task.start();
  }

  stop(): Promise<void> {
    return this.task.stop();
  }

  /** One pass; concurrent calls share it. */
  run(): Promise<ReconcileReport> {
    return this.task.run();
  }

  private async pass(): Promise<ReconcileReport> {
    const report: ReconcileReport = { removed: [], exited: [], kept: [], volumes: [], rows: [] };
    const [containers, rows] = await Promise.all([this.runtime.list(), this.registry.entries(true)]);
    const rowOf = new Map([...rows].map(([id, e]) => [e.containerId, id]));
    const bySandbox = new Map<string, typeof containers>();
    for (const c of containers) {
      const id = c.labels[LABELS.sandbox] ?? rowOf.get(c.id);
      if (!id) continue;
      bySandbox.set(id, [...(bySandbox.get(id) ?? []), c]);
    }
    const ids = [...new Set([...rows.keys(), ...bySandbox.keys()])];
    const owners = await this.registry.owners(ids);
    const now = Date.now();
    const me = this.registry.hostId;

    for (const id of ids) {
      if (this.sandboxes.isInflight(id)) continue;
      const row = rows.get(id);
      const owner = owners.get(id);
      const theirs = bySandbox.get(id) ?? [];
      const here = owner?.host === me;
      if (here && WANTED.has(owner!.state)) {
        const c = theirs.find((x) => x.id === row?.containerId);
        if (row?.state === 'running' && (!c || c.state !== 'running')) {
          if (await this.sandboxes.exited(id, row.containerId, c ? `container ${c.state}` : 'container gone')) report.exited.push(id);
        }
        continue;
      }
      if (here && owner!.state === 'lost') {
        if (theirs.length || row?.state !== 'removed') {
          await this.sandboxes.delete(id, true);
          report.kept.push(id);
        }
        continue;
      }
      // Not this host's: past the grace period (a create may be on its way), everything of it goes.
      const youngest = Math.max(row?.createdAtMs ?? 0, ...theirs.map((c) => c.createdMs));
      if (now - youngest < this.opts.graceMs) continue;
      this.log.info({ sandboxId: id, master: owner ? `${owner.state} on ${owner.host}` : 'no record' }, 'removing a sandbox that is not this host\'s');
      await this.sandboxes.delete(id, false);
      if (theirs.length) report.removed.push(...theirs.map((c) => c.name));
      else report.rows.push(id);
    }

    // Pool containers the pool does not know (a previous run's), past the grace period. The checks go
    // pool, then in flight, then the table as it is now: a claim moves a container from one to the next.
    for (const c of containers) {
      if (c.labels[LABELS.sandbox] || rowOf.has(c.id)) continue;
      if (this.pool.owns(c.id) || this.sandboxes.isInflight(c.id) || now - c.createdMs < this.opts.graceMs) continue;
      if (await this.registry.sandboxOf(c.id)) continue;
      this.log.info({ container: c.name }, 'removing a container no sandbox or pool slot owns');
      await this.runtime.remove(c.id);
      const volume = c.labels[LABELS.volume];
      if (volume) await this.runtime.removeVolume(volume);
      report.removed.push(c.name);
    }

    // Volumes nothing refers to (a manager killed between creating a volume and its container).
    const [after, rowsAfter] = await Promise.all([this.runtime.list(), this.registry.entries()]);
    const referenced = new Set([...after.map((c) => c.labels[LABELS.volume]), ...[...rowsAfter.values()].map((e) => e.volume), ...(await this.registry.workspacesHere()).map((n) => workspaceVolume(this.registry.hostId, n))]);
    for (const v of await this.runtime.volumes()) {
      if (referenced.has(v.name) || now - v.createdMs < this.opts.graceMs) continue;
      await this.runtime.removeVolume(v.name);
      report.volumes.push(v.name);
    }
    // Workspace images whose volume someone else removed.
    report.volumes.push(...(await this.runtime.sweepDisks(this.opts.graceMs)));

    const changed = Object.values(report).some((v) => v.length > 0);
    if (changed) this.log.info(Object.fromEntries(Object.entries(report).map(([k, v]) => [k, v.length])), 'reconciled');
    return report;
  }
}
