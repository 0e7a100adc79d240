import { Periodic } from '../src/lifecycle.js';
import type { Logger } from '../src/log.js';
import type { HostRegistry } from './registry.js';
import type { WorkerClient } from './worker-client.js';

/** Workers asked at once (each a loopback request). */
const PARALLEL = 16;
/** A sandbox reported idle and still running this long after is reported again (the master's handling failed or was lost). */
const REPORT_AGAIN_MS = 60_000;

/**
 * Idleness is measured where the sandboxes are: each host asks its own
 * running sandboxes that have an idle limit how long they have been idle
 * (a loopback request per sandbox per interval, bounded by the host's
 * capacity) and tells the masters, through the host events stream, of
 * those past their limit. A master then takes each once (the stream's
 * consumer group) and ends it by its onIdle rule. Before, every master
 * polled every such sandbox over the network each interval: work that grew
 * with the whole fleet and was repeated by each master.
 */
export class IdleWatch {
  private readonly task: Periodic<string[]>;
  /** Sandbox id -> when it was last reported idle. */
  private readonly reported = new Map<string, number>();

  constructor(
    private readonly registry: HostRegistry,
    private readonly workers: WorkerClient,
    intervalMs: number,
    private readonly log: Logger,
  ) {
    this.task = new Periodic(intervalMs, () => this.pass(), (err) => this.log.warn({ err }, 'idle check failed'));
  }

  start(): void {
    this.task.start();
  }

  stop(): Promise<void> {
    return this.task.stop();
  }

  /** One pass; the ids reported idle. Concurrent calls share it. */
  run(): Promise<string[]> {
    return this.task.run();
  }

  private async pass(): Promise<string[]> {
    const rows = [...(await this.registry.entries())].filter(([, e]) => e.state === 'running' && e.address);
    const owners = await this.registry.owners(rows.map(([id]) => id));
    const me = this.registry.hostId;
    const now = Date.now();
    for (const id of this.reported.keys()) if (!owners.get(id)) this.reported.delete(id);
    const watched = rows.flatMap(([id, e]) => {
      const o = owners.get(id);
      if (!o || o.state !== 'running' || o.host !== me || !o.idleSeconds) return [];
      if (now - (this.reported.get(id) ?? -Infinity) < REPORT_AGAIN_MS) return [];
      return [{ id, address: e.address!, port: e.hostPort, limitMs: o.idleSeconds * 1000 }];
    });
    const idle: string[] = [];
    for (let i = 0; i < watched.length; i += PARALLEL) {
      await Promise.all(
        watched.slice(i, i + PARALLEL).map(async (w) => {
          const ms = await this.workers.idleMs(w.address, w.port);
          if (ms === null || ms < w.limitMs) return;
          try {
            await this.registry.event(w.id, 'idle', `no activity for ${Math.round(ms / 1000)} s (its limit: ${w.limitMs / 1000} s)`);
            this.reported.set(w.id, Date.now());
            idle.push(w.id);
          } catch (err) {
            this.log.warn({ sandboxId: w.id, err }, 'reporting an idle sandbox failed; the next pass reports it');
          }
        }),
      );
    }
    return idle;
  }
}
