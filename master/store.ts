import { randomBytes } from 'node:crypto';
import { OmegaError } from '../src/errors.js';
import type { RedisClient } from '../src/redis/connection.js';
import { hostKeyPrefix, hostKeys, type HostKeys } from '../src/redis/keys.js';
import { AllocateFailure, defineScripts } from '../src/redis/scripts.js';

import type { SandboxState } from '../src/protocol/master.js';

export type { SandboxState };

/** A sandbox as the master keeps it (the hash under hostKeys().sandbox(id)). */
export interface SandboxRecord {
  id: string;
  state: SandboxState;
  template: string;
  host: string;
  address: string;
  managerUrl: string;
  createdAtMs: number;
  expiresAtMs: number;
  idleSeconds: number | null;
  metadata: Record<string, string>;
  /** From the manager once started. */
  hostPort: number | null;
  containerId: string | null;
  /** Whether its DNS records may exist (written, not yet removed). */
  dns: boolean;
  /** An internal sandbox of POST /v1/run: no DNS name, never listed. */
  internal: boolean;
  lostAtMs: number | null;
  stateSinceMs: number;
}

export interface HostView {
  hostId: string;
  address: string;
  managerUrl: string;
  capacity: number;
  load: number;
  alive: boolean;
  draining: boolean;
  lostAtMs: number | null;
  startedAt: string | null;
}

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

/** A random DNS label of 16 base32 characters: 80 bits, lowercase, a letter first. */
export function newSandboxId(): string {
  const bytes = randomBytes(16);
  let out = BASE32[bytes[0]! % 26]!;
  for (let i = 1; i < 16; i++) out += BASE32[bytes[i]! & 31]!;
  return out;
}

/** What the worker accepts: 256 random bits. */
export function newSandboxToken(): string {
  return randomBytes(32).toString('base64url');
}

export const SANDBOX_ID_FORMAT = /^[a-z][a-z2-7]{15}$/;

function parse(id: string, h: Record<string, string>): SandboxRecord | null {
  if (!h.state) return null;
  const num = (v: string | undefined) => (v === undefined || v === '' ? null : Number(v));
  return {
    id,
    state: h.state as SandboxState,
    template: h.template ?? '',
    host: h.host ?? '',
    address: h.address ?? '',
    managerUrl: h.managerUrl ?? '',
    createdAtMs: Number(h.createdAtMs ?? 0),
    expiresAtMs: Number(h.expiresAtMs ?? 0),
    idleSeconds: num(h.idleSeconds),
    metadata: h.metadata ? (JSON.parse(h.metadata) as Record<string, string>) : {},
    hostPort: num(h.hostPort),
    containerId: h.containerId ?? null,
    dns: h.dns === '1',
    internal: h.internal === '1',
    lostAtMs: num(h.lostAtMs),
    stateSinceMs: Number(h.stateSinceMs ?? h.createdAtMs ?? 0),
  };
}

/**
 * The master's state in Redis: hosts, sandboxes and their indexes, changed
 * only through the Lua scripts where more than one key must move together.
 */
export class Store {
  readonly keys: HostKeys;
  private readonly prefix: string;

  constructor(
    readonly redis: RedisClient,
    redisPrefix: string,
    private readonly tombSeconds: number,
  ) {
    this.keys = hostKeys(redisPrefix);
    this.prefix = hostKeyPrefix(redisPrefix);
    defineScripts(redis);
  }

  /**
   * Reserve a slot on the least-loaded live host with room; null when none
   * has room. The sandbox is recorded as `creating` on that host.
   */
  async allocate(
    id: string,
    fields: { template: string; expiresAtMs: number; idleSeconds?: number; metadata?: Record<string, string>; internal?: boolean },
    excluded: string[] = [],
  ): Promise<{ hostId: string; address: string; managerUrl: string } | null> {
    const extra = ['template', fields.template, 'expiresAtMs', String(fields.expiresAtMs), 'stateSinceMs', String(Date.now())];
    if (fields.idleSeconds) extra.push('idleSeconds', String(fields.idleSeconds));
    if (fields.metadata && Object.keys(fields.metadata).length) extra.push('metadata', JSON.stringify(fields.metadata));
    if (fields.internal) extra.push('internal', '1');
    const k = this.keys;
    const r = await this.redis.allocateSandbox(k.load, k.sandboxes, this.prefix, id, Date.now(), excluded.join(','), ...extra);
    if (r === AllocateFailure.NoRoom) return null;
    if (r === AllocateFailure.IdInUse) throw new OmegaError('INTERNAL', `sandbox id ${id} is in use`);
    const [hostId, address, managerUrl] = r as [string, string, string];
    return { hostId, address, managerUrl };
  }

  /** Give the slot back and forget the sandbox; its id stays unused for a while. */
  release(id: string): Promise<number> {
    const k = this.keys;
    return this.redis.releaseSandbox(k.load, k.sandboxes, k.expiry, this.prefix, id, this.tombSeconds);
  }

  /** Move between states only from the expected ones; false if it was not in one of them. */
  async transition(id: string, from: SandboxState[], to: SandboxState, fields: Record<string, string> = {}): Promise<boolean> {
    const flat = Object.entries({ ...fields, stateSinceMs: String(Date.now()) }).flat();
    return (await this.redis.transitionSandbox(this.keys.sandbox(id), from.join(','), to, ...flat)) === 1;
  }

  async setFields(id: string, fields: Record<string, string>): Promise<void> {
    await this.redis.hset(this.keys.sandbox(id), fields);
  }

  async get(id: string): Promise<SandboxRecord | null> {
    return parse(id, await this.redis.hgetall(this.keys.sandbox(id)));
  }

  async getMany(ids: string[]): Promise<Array<SandboxRecord | null>> {
    if (!ids.length) return [];
    const pipe = this.redis.pipeline();
    for (const id of ids) pipe.hgetall(this.keys.sandbox(id));
    const res = (await pipe.exec()) ?? [];
    return ids.map((id, i) => parse(id, (res[i]?.[1] as Record<string, string>) ?? {}));
  }

  async setExpiry(id: string, expiresAtMs: number): Promise<void> {
    await this.redis.multi().hset(this.keys.sandbox(id), 'expiresAtMs', String(expiresAtMs)).zadd(this.keys.expiry, expiresAtMs, id).exec();
  }

  /** Ids whose time is up, oldest first. */
  expired(nowMs: number, limit = 100): Promise<string[]> {
    return this.redis.zrangebyscore(this.keys.expiry, '-inf', nowMs, 'LIMIT', 0, limit);
  }

  /** Take an expired id for deletion; only one master wins it. */
  async claimExpired(id: string): Promise<boolean> {
    return (await this.redis.zrem(this.keys.expiry, id)) === 1;
  }

  /** A page of the index from `afterMs`/`afterId` on (creation order). */
  async page(cursor: { ms: number; id: string } | null, count: number): Promise<Array<{ id: string; ms: number }>> {
    const min = cursor ? String(cursor.ms) : '-inf';
    const out: Array<{ id: string; ms: number }> = [];
    let offset = 0;
    // Several sandboxes may share a millisecond: skip those at or before the cursor's id.
    for (;;) {
      const raw = await this.redis.zrangebyscore(this.keys.sandboxes, min, '+inf', 'WITHSCORES', 'LIMIT', offset, count + 50);
      if (!raw.length) return out;
      for (let i = 0; i < raw.length; i += 2) {
        const id = raw[i]!;
        const ms = Number(raw[i + 1]);
        if (cursor && ms === cursor.ms && id <= cursor.id) continue;
        out.push({ id, ms });
        if (out.length === count) return out;
      }
      offset += raw.length / 2;
    }
  }

  allIds(): Promise<string[]> {
    return this.redis.zrange(this.keys.sandboxes, '0', '-1');
  }

  /** Drop an index entry that has no record (a crash between steps). */
  async dropIndex(id: string): Promise<void> {
    await this.redis.multi().zrem(this.keys.sandboxes, id).zrem(this.keys.expiry, id).exec();
  }

  async hosts(): Promise<HostView[]> {
    const raw = await this.redis.zrange(this.keys.load, '0', '-1', 'WITHSCORES');
    if (!raw.length) return [];
    const ids: Array<[string, number]> = [];
    for (let i = 0; i < raw.length; i += 2) ids.push([raw[i]!, Number(raw[i + 1])]);
    const pipe = this.redis.pipeline();
    for (const [h] of ids) pipe.hgetall(this.keys.host(h)).exists(this.keys.alive(h));
    const res = (await pipe.exec()) ?? [];
    return ids.map(([hostId, load], i) => {
      const h = (res[2 * i]?.[1] as Record<string, string>) ?? {};
      return {
        hostId,
        address: h.address ?? '',
        managerUrl: h.managerUrl ?? '',
        capacity: Number(h.capacity ?? 0),
        load,
        alive: res[2 * i + 1]?.[1] === 1,
        draining: h.draining === '1',
        lostAtMs: h.lostAtMs ? Number(h.lostAtMs) : null,
        startedAt: h.startedAt ?? null,
      };
    });
  }

  /** Every sandbox on a lapsed host becomes lost; returns their ids ([] if the host is alive again). */
  markHostLost(hostId: string): Promise<string[]> {
    return this.redis.markHostLost(this.keys.load, this.keys.expiry, this.prefix, hostId, Date.now());
  }

  /** Take a sandbox off its host's count (it is lost there), keeping its record. */
  async leaveHost(id: string, hostId: string): Promise<void> {
    await this.redis.srem(this.keys.sandboxesOn(hostId), id);
    await this.redis.syncHostLoad(this.keys.sandboxesOn(hostId), this.keys.load, hostId);
    await this.redis.zrem(this.keys.expiry, id);
  }

  async hostBack(hostId: string): Promise<void> {
    await this.redis.hdel(this.keys.host(hostId), 'lostAtMs');
  }

  async forgetHost(hostId: string): Promise<void> {
    await this.redis.multi().zrem(this.keys.load, hostId).del(this.keys.host(hostId)).del(this.keys.sandboxesOn(hostId)).exec();
  }

  /** Mark an empty host draining (no more sandboxes); false if it has any. */
  async drain(hostId: string): Promise<boolean> {
    return (await this.redis.drainHost(this.keys.host(hostId), this.keys.sandboxesOn(hostId))) === 1;
  }

  async undrain(hostId: string): Promise<void> {
    await this.redis.hdel(this.keys.host(hostId), 'draining');
  }

  sandboxesOn(hostId: string): Promise<string[]> {
    return this.redis.smembers(this.keys.sandboxesOn(hostId));
  }

  /** One scale-out at a time across every master: a lock with an expiry. */
  async tryScaleOutLock(owner: string, ms: number): Promise<boolean> {
    return (await this.redis.set(this.keys.scaleOut, owner, 'PX', ms, 'NX')) === 'OK';
  }

  async releaseScaleOutLock(owner: string): Promise<void> {
    // Only our own lock: compare and delete in one step.
    await this.redis.eval("if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0", 1, this.keys.scaleOut, owner);
  }
}
