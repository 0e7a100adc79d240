import type { Logger } from '../src/log.js';
import type { RedisClient } from '../src/redis/connection.js';
import type { HostKeys } from '../src/redis/keys.js';
import { defineScripts } from '../src/redis/scripts.js';
import type { SandboxInfo } from '../src/protocol/manager.js';

export interface HostRecord {
  hostId: string;
  address: string;
  managerUrl: string;
  capacity: number;
}

/**
 * This host in Redis: its record, its heartbeat (a key with an expiry the
 * master checks before allocating), its sandboxes and its load score.
 */
export class HostRegistry {
  private timer: NodeJS.Timeout | null = null;
  registered = false;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: HostKeys,
    private readonly host: HostRecord,
    private readonly heartbeat: { intervalMs: number; ttlMs: number },
    private readonly log: Logger,
  ) {
    defineScripts(redis);
  }

  private beating: Promise<unknown> | null = null;
  private readonly startedAt = new Date().toISOString();

  private beat(): Promise<number> {
    const { hostId, address, managerUrl, capacity } = this.host;
    const k = this.keys;
    return this.redis.heartbeat(k.alive(hostId), k.load, k.sandboxesOn(hostId), k.host(hostId), this.heartbeat.ttlMs, hostId, address, managerUrl, capacity, this.startedAt);
  }

  /** The API's real address, once it listens (the configured port may have been 0). */
  setManagerUrl(url: string): void {
    this.host.managerUrl = url;
  }

  async register(): Promise<void> {
    await this.beat();
    this.registered = true;
    this.timer = setInterval(() => {
      this.beating ??= this.beat()
        .catch((err: Error) => this.log.warn({ err: err.message }, 'heartbeat failed'))
        .finally(() => (this.beating = null));
    }, this.heartbeat.intervalMs);
    this.timer.unref();
    const { hostId, address, capacity } = this.host;
    this.log.info({ hostId, address, capacity }, 'host registered');
  }

  /** Leave the allocation set first, so no new work arrives, then the rest. */
  async deregister(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    // A beat in flight would put the host back after we leave.
    await this.beating;
    if (!this.registered) return;
    this.registered = false;
    const { hostId } = this.host;
    await this.redis.multi().zrem(this.keys.load, hostId).del(this.keys.alive(hostId)).del(this.keys.host(hostId)).exec();
    this.log.info({ hostId }, 'host deregistered');
  }

  async record(info: SandboxInfo): Promise<void> {
    const { hostId } = this.host;
    await this.redis
      .multi()
      .hset(this.keys.sandbox(info.id), {
        host: hostId,
        address: this.host.address,
        containerId: info.containerId,
        hostPort: String(info.hostPort),
        template: info.template,
        volume: info.volume,
        createdAt: info.createdAt,
        source: info.source,
      })
      .sadd(this.keys.sandboxesOn(hostId), info.id)
      .exec();
    await this.syncLoad();
  }

  async get(id: string): Promise<Record<string, string> | null> {
    const h = await this.redis.hgetall(this.keys.sandbox(id));
    return Object.keys(h).length ? h : null;
  }

  async forget(id: string): Promise<void> {
    await this.redis.multi().del(this.keys.sandbox(id)).srem(this.keys.sandboxesOn(this.host.hostId), id).exec();
    await this.syncLoad();
  }

  /** Ids on this host with their records (null for an id whose record is gone). */
  async sandboxes(): Promise<Map<string, Record<string, string> | null>> {
    const ids = await this.redis.smembers(this.keys.sandboxesOn(this.host.hostId));
    const out = new Map<string, Record<string, string> | null>();
    if (!ids.length) return out;
    const pipe = this.redis.pipeline();
    for (const id of ids) pipe.hgetall(this.keys.sandbox(id));
    const res = (await pipe.exec()) ?? [];
    ids.forEach((id, i) => {
      const h = res[i]?.[1] as Record<string, string> | undefined;
      out.set(id, h && Object.keys(h).length ? h : null);
    });
    return out;
  }

  async syncLoad(): Promise<number> {
    const { hostId } = this.host;
    return this.redis.syncHostLoad(this.keys.sandboxesOn(hostId), this.keys.load, hostId);
  }
}
