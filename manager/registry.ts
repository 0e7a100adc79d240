import type { Logger } from '../src/log.js';
import type { ContainerEntry } from '../src/protocol/manager.js';
import type { RedisClient } from '../src/redis/connection.js';
import type { HostKeys } from '../src/redis/keys.js';
import { defineScripts } from '../src/redis/scripts.js';

export interface HostRecord {
  hostId: string;
  address: string;
  managerUrl: string;
  capacity: number;
}

/** Host events kept in the stream (approximately): far more than masters fall behind by. */
const KEEP_EVENTS = 10_000;

/** What the manager reads of a master's sandbox record to tell whether a container is still wanted. */
export interface SandboxOwner {
  state: string;
  host: string;
  /** Its idle limit (0: none). */
  idleSeconds: number;
}

/**
 * This host in Redis, through the keys the manager alone writes: its record
 * and heartbeat (a key with an expiry the master checks before allocating),
 * the index of hosts, and its container table (what runs here for which
 * sandbox). It reads the master's sandbox records and never writes them.
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
  /**
   * The container table as last written or read: the manager is its one
   * writer, so a create need not read it back from Redis. Each write that
   * succeeds is applied to it; one whose outcome is unknown (it failed)
   * drops it, and the next read reloads it (the reconciler reloads it each pass).
   */
  private table: Map<string, ContainerEntry> | null = null;
  /** Writes begun so far: a read of the table that overlapped one is taken again. */
  private writes = 0;
  private readonly startedAt = new Date().toISOString();
  private failing = false;

  get hostId(): string {
    return this.host.hostId;
  }

  private beat(): Promise<number> {
    const { hostId, address, managerUrl, capacity } = this.host;
    const k = this.keys;
    return this.redis.heartbeat(k.alive(hostId), k.host(hostId), k.hosts, k.beats, this.heartbeat.ttlMs, hostId, address, managerUrl, capacity, this.startedAt);
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
        .then(() => {
          if (this.failing) this.log.info('heartbeat is back');
          this.failing = false;
        })
        .catch((err: unknown) => {
          // Once per outage: every beat of a Redis that is away fails the same way.
          if (!this.failing) this.log.warn({ err }, 'heartbeat failed; retrying every beat');
          this.failing = true;
        })
        .finally(() => (this.beating = null));
    }, this.heartbeat.intervalMs);
    this.timer.unref();
    const { hostId, address, capacity } = this.host;
    this.log.info({ hostId, address, capacity }, 'host registered');
  }

  /**
   * Stop heart-beating and say the manager stopped on purpose: no new work
   * arrives (allocation needs the heartbeat), and the master keeps this
   * host's sandboxes running (their containers run on) instead of marking
   * them lost, until the host has been silent for its forget time.
   */
  async deregister(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    // A beat in flight would put the host back after we leave.
    await this.beating;
    if (!this.registered) return;
    this.registered = false;
    const { hostId } = this.host;
    const multi = this.redis.multi().del(this.keys.alive(hostId)).hset(this.keys.host(hostId), 'stoppedAtMs', String(Date.now()));
    // Its warm containers go with it: no create is placed here for them.
    for (const t of this.warmTemplates) multi.zrem(this.keys.warm(t), hostId);
    await multi.exec();
    this.log.info({ hostId }, 'host deregistered');
  }

  /** Tell the masters something of a sandbox that changes nothing in its row (it is idle). */
  async event(id: string, state: string, why: string): Promise<void> {
    await this.redis.xadd(this.keys.hostEvents, 'MAXLEN', '~', KEEP_EVENTS, '*', 'host', this.host.hostId, 'sandbox', id, 'state', state, 'why', why);
  }

  /** Record what runs for a sandbox (before its create is answered: the master reads it to tell running from lost). */
  async put(id: string, entry: ContainerEntry): Promise<void> {
    await this.report(id, entry);
  }

  /**
   * Change a sandbox's row; with `event`, the master hears of it in the same
   * step (a container that stopped on its own).
   */
  async report(id: string, entry: ContainerEntry | null, event?: { state: string; why: string }): Promise<void> {
    const k = this.keys;
    this.writes++;
    try {
      await this.redis.reportContainer(
        k.containers(this.host.hostId),
        k.hostEvents,
        id,
        entry ? JSON.stringify(entry) : '',
        this.host.hostId,
        event?.state ?? '',
        event?.why ?? '',
        KEEP_EVENTS,
      );
    } catch (err) {
      this.table = null; // it may or may not have been written
      throw err;
    }
    if (entry) this.table?.set(id, entry);
    else this.table?.delete(id);
  }

  async get(id: string): Promise<ContainerEntry | null> {
    // The table as known (every connection through the ingress asks): no copy of it.
    if (this.table) return this.table.get(id) ?? null;
    return (await this.entries()).get(id) ?? null;
  }

  async remove(id: string): Promise<void> {
    await this.report(id, null);
  }

  /** The sandbox whose row names this container, in the table as it is now. */
  async sandboxOf(containerId: string): Promise<string | undefined> {
    if (!this.table) await this.entries();
    for (const [id, e] of this.table!) if (e.containerId === containerId) return id;
    return undefined;
  }

  /** The whole table (a copy): sandbox id -> entry. `fresh` reads it from Redis again. */
  async entries(fresh = false): Promise<Map<string, ContainerEntry>> {
    while (!this.table || fresh) {
      const before = this.writes;
      const raw = await this.redis.hgetall(this.keys.containers(this.host.hostId));
      if (this.writes !== before) continue; // a write overlapped the read: it may be missing from it
      this.table = new Map(Object.entries(raw).map(([id, json]) => [id, JSON.parse(json) as ContainerEntry]));
      fresh = false;
    }
    return new Map(this.table);
  }

  /**
   * Say how many warm containers of a template are ready here (placement
   * prefers a host with one). Changes within a tick are written once; a
   * failed write is left to the next change (it is a hint: the create
   * finds the pool as it is).
   */
  publishWarm(template: string, ready: number): void {
    if (!this.registered) return;
    this.warmTemplates.add(template);
    const pending = this.warmPending.size > 0;
    this.warmPending.set(template, ready);
    if (pending) return;
    setImmediate(() => {
      const changes = [...this.warmPending];
      this.warmPending.clear();
      const pipe = this.redis.pipeline();
      if (!this.registered) return;
      for (const [t, n] of changes) {
        if (n > 0) pipe.zadd(this.keys.warm(t), n, this.host.hostId);
        else pipe.zrem(this.keys.warm(t), this.host.hostId);
      }
      pipe.exec().catch((err: unknown) => this.log.warn({ err }, 'publishing the warm pool failed; the next change retries'));
    });
  }

  private readonly warmPending = new Map<string, number>();
  private readonly warmTemplates = new Set<string>();

  /** The named workspaces the master places on this host (their volumes are kept here). */
  workspacesHere(): Promise<string[]> {
    return this.redis.smembers(this.keys.workspacesOn(this.host.hostId));
  }

  /** The master's view of these sandboxes (state, host, idle limit), null for those it has no record of. */
  async owners(ids: string[]): Promise<Map<string, SandboxOwner | null>> {
    const out = new Map<string, SandboxOwner | null>();
    if (!ids.length) return out;
    const pipe = this.redis.pipeline();
    for (const id of ids) pipe.hmget(this.keys.sandbox(id), 'state', 'host', 'idleSeconds');
    const res = (await pipe.exec()) ?? [];
    ids.forEach((id, i) => {
      const [state, host, idle] = (res[i]?.[1] as Array<string | null> | undefined) ?? [];
      out.set(id, state && host ? { state, host, idleSeconds: Number(idle ?? 0) || 0 } : null);
    });
    return out;
  }
}
