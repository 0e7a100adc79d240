import { Periodic } from '../src/lifecycle.js';
import type { Logger } from '../src/log.js';
import type { WarmPool } from './pool.js';
import type { HostRegistry } from './registry.js';
import { LABELS, type DockerRuntime } from './runtime/docker.js';
import type { Sandboxes } from './sandboxes.js';

export interface ReconcileReport {
  removed: string[];
  lost: string[];
  count: number;
}

/**
 * Makes what runs on this host and what Redis says agree:
 *  - a container of Omega's that no sandbox owns (none, or one gone from
 *    Redis) and that is not warm nor starting is removed once it is older
 *    than the grace period;
 *  - a recorded sandbox whose container is gone is forgotten (lost);
 *  - the host's load score is set to what is actually recorded.
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
    const [containers, recs] = await Promise.all([this.runtime.list(), this.registry.sandboxes()]);
    const owned = new Map<string, string>();
    for (const [id, rec] of recs) if (rec?.containerId) owned.set(rec.containerId, id);
    const now = Date.now();
    const removed: string[] = [];
    for (const c of containers) {
      if (owned.has(c.id) || this.pool.owns(c.id) || this.sandboxes.isInflight(c.id)) continue;
      const sandbox = c.labels[LABELS.sandbox];
      if (sandbox && this.sandboxes.isInflight(sandbox)) continue;
      if (now - c.createdMs < this.opts.graceMs) continue;
      this.log.info({ container: c.name, sandboxId: sandbox }, 'removing a container no sandbox owns');
      await this.runtime.remove(c.id);
      const volume = c.labels[LABELS.volume];
      if (volume) await this.runtime.removeVolume(volume);
      removed.push(c.name);
    }
    const live = new Set(containers.filter((c) => c.state === 'running').map((c) => c.id));
    const lost: string[] = [];
    for (const [id, rec] of recs) {
      if (this.sandboxes.isInflight(id)) continue;
      if (!rec) {
        // In the host's set without a record: a reservation that never completed.
        await this.registry.forget(id);
        continue;
      }
      if (rec.containerId && !live.has(rec.containerId)) {
        // The lists above may predate a delete that has finished since: look again.
        const now = await this.registry.get(id);
        if (!now || now.containerId !== rec.containerId || this.sandboxes.isInflight(id) || (await this.runtime.running(rec.containerId))) continue;
        this.log.warn({ sandboxId: id }, 'sandbox container is gone; forgetting the sandbox');
        await this.sandboxes.delete(id, true).catch(() => {});
        await this.registry.forget(id);
        lost.push(id);
      }
    }
    const count = this.registry.registered ? await this.registry.syncLoad() : recs.size;
    return { removed, lost, count };
  }
}
