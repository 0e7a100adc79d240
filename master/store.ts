import { OmegaError } from '../src/errors.js';
import type { RedisClient } from '../src/redis/connection.js';
import { hostKeyPrefix, hostKeys, type HostKeys } from '../src/redis/keys.js';
import { AllocateFailure, defineScripts, RELEASE_NOT_DELETING } from '../src/redis/scripts.js';
import type { ContainerEntry, SandboxSize } from '../src/protocol/manager.js';

import { SANDBOX_STATES, type PauseKind, type SandboxState, type SnapshotKind, type SnapshotView } from '../src/protocol/master.js';

export type { PauseKind, SandboxState };

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
  /** The host's TLS ingress port, when TLS is on: the sandbox is reached through it, by name. */
  ingressPort: number | null;
  containerId: string | null;
  /** Whether its DNS records may exist (written, not yet removed). */
  dns: boolean;
  /** An internal sandbox of POST /v1/run: no DNS name, never listed. */
  internal: boolean;
  lostAtMs: number | null;
  lostReason: string | null;
  stateSinceMs: number;
  /** The master creating or deleting it (while creating or deleting). */
  owner: string | null;
  /** A deleting sandbox: the state its delete began from. */
  deletedFrom: SandboxState | null;
  onTimeout: 'delete' | 'pause';
  onIdle: 'delete' | 'pause';
  /** A connection to it while paused resumes it (through its host's ingress). */
  autoResume: boolean;
  /** Every preview open without the token (kept for a restore elsewhere). */
  publicPreviews: boolean;
  /** Its time limit, ms: what a sandbox paused by it has again once resumed. */
  lifetimeMs: number | null;
  /** Pausing or paused: how. */
  pauseKind: PauseKind | null;
  pausedAtMs: number | null;
  /** Pausing, paused or resuming: the time it had left when paused (its expiry once resumed is now + this). */
  remainingMs: number | null;
  /** Resuming onto a host from a snapshot (moveSandbox): what it was before, to go back to if that fails. */
  movedFrom: 'lost' | 'archived' | null;
  /** Its latest snapshot: what it is restored from once lost or archived. */
  snapshot: string | null;
  /** false: created without outbound network (kept for a restore elsewhere). */
  internet: boolean | null;
  /** The create's environment for its programs (kept for a restore elsewhere); never shown. */
  env: Record<string, string> | null;
  /** The named workspace it has. */
  workspace: string | null;
  /** What its container may use, as its host said (null: a host of an earlier version, or not started yet). */
  size: SandboxSize | null;
  /** The token its worker is claimed with (a restore on another host claims a new worker with it); never shown. */
  token: string | null;
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
  /** Its manager stopped on purpose (deregistered); its sandboxes keep running. */
  stoppedAtMs: number | null;
  /** How long its heartbeat key lives (its manager's setting). */
  heartbeatTtlMs: number | null;
}

/** A snapshot's fields as its hash keeps them (createdAtMs apart). */
function snapshotFields(s: SnapshotView): string[] {
  return ['sandboxId', s.sandboxId, 'template', s.template, 'bytes', String(s.bytes), 'kind', s.kind, ...(s.workspace ? ['workspace', s.workspace] : [])];
}

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
    ingressPort: num(h.ingressPort),
    containerId: h.containerId ?? null,
    dns: h.dns === '1',
    internal: h.internal === '1',
    lostAtMs: num(h.lostAtMs),
    lostReason: h.lostReason ?? null,
    stateSinceMs: Number(h.stateSinceMs ?? h.createdAtMs ?? 0),
    owner: h.owner || null,
    deletedFrom: (h.deletedFrom as SandboxState | undefined) ?? null,
    onTimeout: h.onTimeout === 'pause' ? 'pause' : 'delete',
    onIdle: h.onIdle === 'pause' ? 'pause' : 'delete',
    autoResume: h.autoResume === '1',
    publicPreviews: h.publicPreviews === '1',
    lifetimeMs: num(h.lifetimeMs),
    pauseKind: (h.pauseKind as PauseKind | undefined) ?? null,
    pausedAtMs: num(h.pausedAtMs),
    remainingMs: num(h.remainingMs),
    movedFrom: (h.movedFrom as 'lost' | 'archived' | undefined) ?? null,
    snapshot: h.snapshot || null,
    token: h.token || null,
    workspace: h.workspace || null,
    internet: h.internet === '0' ? false : null,
    env: h.env ? (JSON.parse(h.env) as Record<string, string>) : null,
    size: h.size ? (JSON.parse(h.size) as SandboxSize) : null,
  };
}

function snapshotView(id: string, h: Record<string, string>): SnapshotView {
  return { id, sandboxId: h.sandboxId ?? '', template: h.template ?? '', bytes: Number(h.bytes ?? 0), createdAt: new Date(Number(h.createdAtMs ?? 0)).toISOString(), kind: (h.kind as SnapshotKind | undefined) ?? 'manual', ...(h.workspace ? { workspace: h.workspace } : {}) };
}

/** A named workspace as the master keeps it (the hash under hostKeys().workspace(name)). */
export interface WorkspaceRecord {
  name: string;
  template: string;
  host: string | null;
  sandbox: string | null;
  snapshot: string | null;
  createdAtMs: number;
}

function workspaceRecord(name: string, h: Record<string, string>): WorkspaceRecord {
  return { name, template: h.template ?? '', host: h.host || null, sandbox: h.sandbox || null, snapshot: h.snapshot || null, createdAtMs: Number(h.createdAtMs ?? 0) };
}

/** A script's HGETALL answer (field, value, ...) as an object. */
function pairs(flat: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i]!] = flat[i + 1]!;
  return out;
}

/**
 * The master's state in Redis: hosts, sandboxes and their indexes. The
 * master is the one writer of a sandbox's record, the per-host sandbox sets
 * and the load, and changes them only through the scripts in
 * src/redis/lua/, each checking the state it expects. It reads what the
 * managers own (host records, heartbeats, container tables) and never
 * writes it, but to forget a host whose manager is gone.
 */
export class Store {
  readonly keys: HostKeys;
  private readonly prefix: string;

  constructor(
    readonly redis: RedisClient,
    redisPrefix: string,
    private readonly tombSeconds: number,
    /** This master's id: the owner of the creates and deletes it runs. */
    readonly masterId: string,
    /** Replicas that must have an answered create before it is answered (WAIT); 0 for none. */
    private readonly waitReplicas: { count: number; timeoutMs: number } = { count: 0, timeoutMs: 0 },
  ) {
    this.keys = hostKeys(redisPrefix);
    this.prefix = hostKeyPrefix(redisPrefix);
    defineScripts(redis);
  }

  /**
   * Reserve a slot on the least-loaded live host with room; null when none
   * has room. The sandbox is recorded as `creating` on that host, owned by
   * this master. A miss first admits hosts that registered since the last
   * admission, then tries once more.
   */
  async allocate(
    id: string,
    fields: { template: string; expiresAtMs: number; idleSeconds?: number; metadata?: Record<string, string>; internal?: boolean; onTimeout?: 'delete' | 'pause'; onIdle?: 'delete' | 'pause'; lifetimeMs?: number; autoResume?: boolean; token?: string; internet?: boolean; env?: Record<string, string>; workspace?: string; publicPreviews?: boolean },
    excluded: string[] = [],
    /** A host to try first (where a named workspace's volume is); '' for none. */
    preferred = '',
  ): Promise<{ hostId: string; address: string; managerUrl: string } | null> {
    const extra = ['template', fields.template, 'expiresAtMs', String(fields.expiresAtMs)];
    if (fields.token) extra.push('token', fields.token);
    if (fields.internet === false) extra.push('internet', '0');
    if (fields.workspace) extra.push('workspace', fields.workspace);
    if (fields.env && Object.keys(fields.env).length) extra.push('env', JSON.stringify(fields.env));
    if (fields.idleSeconds) extra.push('idleSeconds', String(fields.idleSeconds));
    if (fields.onTimeout === 'pause') extra.push('onTimeout', 'pause');
    if (fields.onIdle === 'pause') extra.push('onIdle', 'pause');
    if (fields.autoResume) extra.push('autoResume', '1');
    if (fields.publicPreviews) extra.push('publicPreviews', '1');
    if (fields.lifetimeMs) extra.push('lifetimeMs', String(fields.lifetimeMs));
    if (fields.metadata && Object.keys(fields.metadata).length) extra.push('metadata', JSON.stringify(fields.metadata));
    // Marked before the names are written (right after this), so a crash in between leaves a reason to remove them.
    extra.push(...(fields.internal ? ['internal', '1'] : ['dns', '1']));
    const k = this.keys;
    // Hosts with a warm container of the template come first (a hint the managers publish; load stays the sorted set's).
    const warm = k.warm(fields.template);
    const once = () => this.redis.allocateSandbox(k.load, k.sandboxes, this.prefix, id, Date.now(), excluded.join(','), this.masterId, preferred, warm, ...extra);
    let r = await once();
    if (r === AllocateFailure.NoRoom && (await this.admitHosts()).length) r = await once();
    if (r === AllocateFailure.NoRoom) return null;
    if (r === AllocateFailure.IdInUse) throw new OmegaError('INTERNAL', `sandbox id ${id} is in use`);
    const [hostId, address, managerUrl] = r as [string, string, string];
    return { hostId, address, managerUrl };
  }

  /** Hosts that registered and heart-beat but are not in the load set yet, admitted; their ids. */
  admitHosts(): Promise<string[]> {
    return this.redis.admitHosts(this.keys.hosts, this.keys.load, this.prefix);
  }

  /**
   * The last step of a create: running, with its container and expiry, in
   * one script whose answer is the record (null when the sandbox left
   * `creating` or this master's hands meanwhile). With waitReplicas, WAIT
   * rides in the same pipeline, so an answered create is on the replicas
   * without another round trip.
   */
  async finishCreate(id: string, c: { expiresAtMs: number; hostPort: number; ingressPort: number | null; containerId: string; size?: SandboxSize }): Promise<{ record: SandboxRecord | null; replicated: boolean }> {
    const k = this.keys;
    const pipe = this.redis.pipeline();
    pipe.finishCreate(k.sandbox(id), k.expiry, k.counts, id, this.masterId, Date.now(), c.expiresAtMs, c.hostPort, c.containerId, c.ingressPort ?? '', c.size ? JSON.stringify(c.size) : '');
    const { count, timeoutMs } = this.waitReplicas;
    if (count > 0) pipe.call('WAIT', count, timeoutMs);
    const res = (await pipe.exec()) ?? [];
    const [err, flat] = res[0] ?? [new Error('empty pipeline answer'), null];
    if (err) throw err;
    const replicated = count === 0 || Number(res[1]?.[1] ?? 0) >= count;
    return { record: flat ? parse(id, pairs(flat as string[])) : null, replicated };
  }

  /** The first step of a delete (any state -> deleting, owned by this master); the record, or null if there is none. */
  async beginDelete(id: string): Promise<SandboxRecord | null> {
    const flat = await this.redis.beginDelete(this.keys.sandbox(id), this.keys.expiry, this.keys.counts, id, this.masterId, Date.now());
    return flat ? parse(id, pairs(flat)) : null;
  }

  /**
   * Forget a deleting sandbox: its slot back, out of the indexes, its id
   * kept unused for a while. True if released, false if there was no record;
   * throws if the sandbox is not deleting (a bug: a delete must begin first).
   */
  async release(id: string): Promise<boolean> {
    const k = this.keys;
    const r = await this.redis.releaseSandbox(k.load, k.sandboxes, k.expiry, this.prefix, id, this.tombSeconds);
    if (r === RELEASE_NOT_DELETING) throw new OmegaError('INTERNAL', `sandbox ${id} is not being deleted; not released`);
    return r === 1;
  }

  /**
   * Begin a pause (running -> pausing) or a resume (paused -> resuming),
   * owned by this master; the record when taken, else the state the
   * sandbox is in (null when there is none).
   */
  async beginPause(id: string, op: 'pause' | 'resume', kind: PauseKind = 'memory', timeLeftMs?: number): Promise<{ record: SandboxRecord } | { state: SandboxState | 'archived' | null }> {
    const r = await this.redis.beginPause(this.keys.sandbox(id), this.keys.expiry, this.keys.counts, id, op, this.masterId, Date.now(), kind, timeLeftMs === undefined ? '' : String(timeLeftMs));
    if (typeof r === 'string') return { state: (r || null) as SandboxState | 'archived' | null };
    return { record: parse(id, pairs(r))! };
  }

  /** End a pause or resume (see settleSandbox-5.lua); the record, or null when it left `from` or this master's hands. `owner` '' lets the reconciler take over. */
  async settle(id: string, from: 'pausing' | 'resuming', to: 'paused' | 'running', fields: Record<string, string> = {}, owner = this.masterId): Promise<SandboxRecord | null> {
    const flat = await this.redis.settleSandbox(this.keys.sandbox(id), this.keys.expiry, this.keys.frozen, this.keys.stopped, this.keys.counts, id, from, owner, to, Date.now(), ...Object.entries(fields).flat());
    return flat ? parse(id, pairs(flat)) : null;
  }

  /** A delete this master began and could not finish: owned by no one, so the reconciler takes it over at once. */
  async disown(id: string): Promise<void> {
    await this.update(id, 'deleting', { owner: '' });
  }

  /** A running sandbox on `hostId` whose container is gone becomes lost; false if it was not running there. */
  async markLost(id: string, hostId: string, why: string): Promise<boolean> {
    return (await this.redis.markSandboxLost(this.keys.load, this.keys.expiry, this.prefix, id, hostId, Date.now(), why)) === 1;
  }

  /** Move between states only from the expected ones; false if it was not in one of them. */
  async transition(id: string, from: SandboxState[], to: SandboxState, fields: Record<string, string> = {}): Promise<boolean> {
    const flat = Object.entries({ ...fields, stateSinceMs: String(Date.now()) }).flat();
    return (await this.redis.transitionSandbox(this.keys.sandbox(id), this.keys.counts, from.join(','), to, ...flat)) === 1;
  }

  /** Set fields of a sandbox that is in `state`, its state and since-when unchanged; false if it is not. */
  async update(id: string, state: SandboxState, fields: Record<string, string>): Promise<boolean> {
    return (await this.redis.transitionSandbox(this.keys.sandbox(id), this.keys.counts, state, state, ...Object.entries(fields).flat())) === 1;
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

  /** A running sandbox's new expiry; false if it is not running. */
  async setExpiry(id: string, expiresAtMs: number): Promise<boolean> {
    return (await this.redis.extendSandbox(this.keys.sandbox(id), this.keys.expiry, id, expiresAtMs)) === 1;
  }

  /** Which of these ids have no entry in the expiry index. */
  async withoutExpiry(ids: string[]): Promise<Set<string>> {
    return new Set(await this.notIn(this.keys.expiry, ids));
  }

  /** Which of these ids are not members of the sorted set `key` (one pipeline). */
  private async notIn(key: string, ids: string[]): Promise<string[]> {
    if (!ids.length) return [];
    const pipe = this.redis.pipeline();
    for (const id of ids) pipe.zscore(key, id);
    const res = (await pipe.exec()) ?? [];
    return ids.filter((_, i) => res[i]?.[1] === null);
  }

  /**
   * A snapshot about to be written (its archive is owned by this entry until
   * it is recorded or removed): by `deadlineMs` it is done, or the reaper
   * takes it for abandoned (its master gone) and removes its archive.
   */
  async startSnapshot(id: string, deadlineMs: number): Promise<void> {
    await this.redis.zadd(this.keys.snapshotsWriting, deadlineMs, id);
  }

  /** A snapshot no longer being written, its archive recorded or removed. */
  async endSnapshot(id: string): Promise<void> {
    await this.redis.zrem(this.keys.snapshotsWriting, id);
  }

  /** Snapshots still being written past their deadline, oldest first. */
  abandonedSnapshots(nowMs: number, limit = 50): Promise<string[]> {
    return this.redis.zrangebyscore(this.keys.snapshotsWriting, '-inf', nowMs, 'LIMIT', 0, limit);
  }

  /** Take an abandoned snapshot to remove its archive: true for the one master whose ZREM took it. */
  async claimAbandoned(id: string): Promise<boolean> {
    return (await this.redis.zrem(this.keys.snapshotsWriting, id)) === 1;
  }

  /**
   * Record a snapshot whose archive is in the store and make it its
   * sandbox's latest (taken on `host`): the snapshot that was the latest
   * before ('' none). Or why nothing was recorded: the sandbox is gone or
   * deleting, lost or on another host (moved), or the snapshot was taken
   * for abandoned meanwhile (its archive removed by the reaper). All but an
   * abandoned one are still being written until the caller has removed
   * their archive.
   */
  async noteSnapshot(s: SnapshotView, host: string): Promise<{ before: string } | { refused: 'gone' | 'moved' | 'abandoned' }> {
    const k = this.keys;
    const r = await this.redis.noteSnapshot(k.snapshot(s.id), k.snapshots, k.sandbox(s.sandboxId), k.snapshotsWriting, s.id, Date.parse(s.createdAt), host, ...snapshotFields(s));
    if (typeof r === 'string') return { before: r };
    return { refused: r === 0 ? 'gone' : r === -1 ? 'moved' : 'abandoned' };
  }

  /** Record a snapshot of no sandbox (a workspace's, as it moves): false when it was taken for abandoned meanwhile (nothing recorded). */
  async putSnapshot(s: SnapshotView): Promise<boolean> {
    const k = this.keys;
    return (await this.redis.putSnapshot(k.snapshot(s.id), k.snapshots, k.snapshotsWriting, s.id, Date.parse(s.createdAt), ...snapshotFields(s))) === 1;
  }

  /**
   * Change a named workspace (changeWorkspace-1.lua): its record after the
   * change (forget: before it), or the refusal: 'busy:<sandbox>',
   * 'template:<template>', 'missing'. `snapshot` answers the snapshot that
   * was its latest ('' none).
   */
  async changeWorkspace(name: string, op: 'attach' | 'place' | 'detach' | 'snapshot' | 'forget', arg: string, arg2 = ''): Promise<WorkspaceRecord | string> {
    const r = await this.redis.changeWorkspace(this.keys.workspaces, this.prefix, name, op, arg, arg2, Date.now());
    if (typeof r === 'string') return r;
    return workspaceRecord(name, pairs(r));
  }

  async getWorkspace(name: string): Promise<WorkspaceRecord | null> {
    const h = await this.redis.hgetall(this.keys.workspace(name));
    return h.template ? workspaceRecord(name, h) : null;
  }

  /** Every named workspace, oldest first, at most `limit`. */
  async listWorkspaces(limit = 1000): Promise<WorkspaceRecord[]> {
    const names = await this.redis.zrange(this.keys.workspaces, 0, String(limit - 1));
    if (!names.length) return [];
    const pipe = this.redis.pipeline();
    for (const n of names) pipe.hgetall(this.keys.workspace(n));
    const res = (await pipe.exec()) ?? [];
    return names.flatMap((n, i) => {
      const h = (res[i]?.[1] as Record<string, string>) ?? {};
      return h.template ? [workspaceRecord(n, h)] : [];
    });
  }

  async getSnapshot(id: string): Promise<SnapshotView | null> {
    const h = await this.redis.hgetall(this.keys.snapshot(id));
    return h.template ? snapshotView(id, h) : null;
  }

  /** Every snapshot, newest first, at most `limit`. */
  async listSnapshots(limit = 1000): Promise<SnapshotView[]> {
    const ids = await this.redis.zrevrange(this.keys.snapshots, 0, limit - 1);
    return (await this.getSnapshots(ids)).filter((s): s is SnapshotView => s !== null);
  }

  /** Forget a snapshot (its archive removed from the store first); false when there was none. */
  async forgetSnapshot(id: string): Promise<boolean> {
    const res = (await this.redis.multi().del(this.keys.snapshot(id)).zrem(this.keys.snapshots, id).exec()) ?? [];
    return res[0]?.[1] === 1;
  }

  /**
   * Move a sandbox off its host or onto one (moveSandbox-1.lua): `archive`
   * ends an archive this master began; `begin` takes a lost or archived
   * sandbox to `resuming` on a host with room (`preferred` first); `back`
   * undoes a begin that failed. The record (begin: the host) when taken,
   * else the state it is in (null: none), or 'no-room'.
   */
  async move(id: string, op: 'archive' | 'back', owner?: string): Promise<{ record: SandboxRecord } | { state: SandboxState | 'archived' | null }>;
  async move(id: string, op: 'begin', owner: string, preferred: string, excluded: string[]): Promise<{ slot: { hostId: string; address: string; managerUrl: string } } | { state: SandboxState | 'archived' | null } | 'no-room'>;
  async move(id: string, op: 'archive' | 'begin' | 'back', owner = this.masterId, preferred = '', excluded: string[] = []): Promise<unknown> {
    const r = await this.redis.moveSandbox(this.keys.load, this.prefix, id, op, owner, Date.now(), preferred, excluded.join(','));
    if (r === -1) return 'no-room';
    if (typeof r === 'string') return { state: (r || null) as SandboxState | null };
    if (op === 'begin') return { slot: { hostId: r[0]!, address: r[1]!, managerUrl: r[2]! } };
    return { record: parse(id, pairs(r))! };
  }

  /** Put a running sandbox on the periodic snapshot schedule (a no-op when it is on it). */
  async scheduleSnapshot(id: string, atMs: number): Promise<void> {
    await this.redis.zadd(this.keys.snapshotDue, 'NX', atMs, id);
  }

  /** Sandboxes whose periodic snapshot is due, oldest first. */
  snapshotsDue(nowMs: number, limit = 100): Promise<string[]> {
    return this.redis.zrangebyscore(this.keys.snapshotDue, '-inf', nowMs, 'LIMIT', 0, limit);
  }

  /** Take a due periodic snapshot (only one master wins it), due again at `nextMs`. */
  async claimSnapshotDue(id: string, nowMs: number, nextMs: number): Promise<boolean> {
    return (await this.redis.claimDue(this.keys.snapshotDue, id, nowMs, nextMs)) === 1;
  }

  /** Which of these ids are not on the periodic snapshot schedule. */
  offSchedule(ids: string[]): Promise<string[]> {
    return this.notIn(this.keys.snapshotDue, ids);
  }

  /** Off the periodic schedule (a sandbox that is gone). */
  async unscheduleSnapshot(id: string): Promise<void> {
    await this.redis.zrem(this.keys.snapshotDue, id);
  }

  /** Sandboxes stopped (paused without memory) since before `beforeMs`, oldest first. */
  stoppedSince(beforeMs: number, limit = 100): Promise<string[]> {
    return this.redis.zrangebyscore(this.keys.stopped, '-inf', beforeMs, 'LIMIT', 0, limit);
  }

  /** Sandboxes paused with memory since before `beforeMs`, oldest first. */
  frozenSince(beforeMs: number, limit = 100): Promise<string[]> {
    return this.redis.zrangebyscore(this.keys.frozen, '-inf', beforeMs, 'LIMIT', 0, limit);
  }

  /** Ids whose time is up, oldest first. */
  expired(nowMs: number, limit = 100): Promise<string[]> {
    return this.redis.zrangebyscore(this.keys.expiry, '-inf', nowMs, 'LIMIT', 0, limit);
  }

  /** Ids whose time is up, taken off the expiry index for this master to end (each goes to one master), earliest first. */
  takeExpired(nowMs: number, limit: number): Promise<string[]> {
    return this.redis.takeDue(this.keys.expiry, nowMs, limit);
  }

  /** Take an expired id for deletion; only one master wins it. */
  async claimExpired(id: string): Promise<boolean> {
    return (await this.redis.zrem(this.keys.expiry, id)) === 1;
  }

  /** A page of the index from `afterMs`/`afterId` on (creation order). */
  page(cursor: { ms: number; id: string } | null, count: number): Promise<Array<{ id: string; ms: number }>> {
    return this.pageOf(this.keys.sandboxes, cursor, count);
  }

  /** A page of the snapshot index from `cursor` on (creation order). */
  snapshotPage(cursor: { ms: number; id: string } | null, count: number): Promise<Array<{ id: string; ms: number }>> {
    return this.pageOf(this.keys.snapshots, cursor, count);
  }

  /** Snapshots by id (null where there is none), one pipeline. */
  async getSnapshots(ids: string[]): Promise<Array<SnapshotView | null>> {
    if (!ids.length) return [];
    const pipe = this.redis.pipeline();
    for (const id of ids) pipe.hgetall(this.keys.snapshot(id));
    const res = (await pipe.exec()) ?? [];
    return ids.map((id, i) => {
      const h = (res[i]?.[1] as Record<string, string>) ?? {};
      return h.template ? snapshotView(id, h) : null;
    });
  }

  /** A page of a sorted set scored by ms, after `cursor` (score, then id). */
  private async pageOf(key: string, cursor: { ms: number; id: string } | null, count: number): Promise<Array<{ id: string; ms: number }>> {
    const min = cursor ? String(cursor.ms) : '-inf';
    const out: Array<{ id: string; ms: number }> = [];
    let offset = 0;
    // Several entries may share a millisecond: skip those at or before the cursor's id.
    for (;;) {
      const raw = await this.redis.zrangebyscore(key, min, '+inf', 'WITHSCORES', 'LIMIT', offset, count + 50);
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

  /** How many sandboxes are in each state (every state present; the counts hash, kept by the scripts: one read). */
  async stateCounts(): Promise<Record<SandboxState, number>> {
    const raw = await this.redis.hgetall(this.keys.counts);
    return Object.fromEntries(SANDBOX_STATES.map((s) => [s, Number(raw[s] ?? 0)])) as Record<SandboxState, number>;
  }

  /**
   * Count the records no script has counted yet: those a master of an
   * earlier version wrote, before the counts existed. Once per Redis: the
   * first master to start takes a short lock, pages through the index and
   * marks the counts complete (`recountedAtMs`). True once they are
   * complete, false while another master holds the lock (try again later).
   *
   * Why it is right without stopping anything: setState (the one writer of
   * a state) and countSandboxes both count a record only when it is not yet
   * marked `counted`, each in one script, so a record is counted exactly
   * once whichever comes first, and a state change meanwhile moves its
   * count as usual. Records created during the pass are counted by their
   * create; the index is paged by creation time, not by rank, so a delete
   * meanwhile cannot make the pass skip one. No page is bigger than
   * `pageSize`, so Redis is never held for the whole index. If this master
   * dies midway, the lock lapses and the next master repeats the pass
   * (counting again is a no-op). A master of the earlier version still
   * changing states after the pass (a rolling upgrade) is the one thing it
   * cannot correct: its changes do not move the counts.
   */
  async countUncounted(lockMs = 60_000, pageSize = 500): Promise<boolean> {
    const k = this.keys;
    if (await this.redis.hexists(k.counts, 'recountedAtMs')) return true;
    if ((await this.redis.set(k.countsLock, this.masterId, 'PX', lockMs, 'NX')) !== 'OK') return false;
    try {
      let cursor: { ms: number; id: string } | null = null;
      for (;;) {
        const page = await this.page(cursor, pageSize);
        if (page.length) await this.redis.countSandboxes(k.counts, this.prefix, ...page.map((p) => p.id));
        if (page.length < pageSize) break;
        cursor = page[page.length - 1]!;
      }
      await this.redis.hset(k.counts, 'recountedAtMs', String(Date.now()));
      return true;
    } finally {
      await this.redis.releaseLock(k.countsLock, this.masterId);
    }
  }

  allIds(): Promise<string[]> {
    return this.redis.zrange(this.keys.sandboxes, '0', '-1');
  }

  /** Drop index entries of an id that has no record (a crash between steps; ids are never reused, so none can appear). */
  async dropIndex(id: string): Promise<void> {
    await this.redis.multi().zrem(this.keys.sandboxes, id).zrem(this.keys.expiry, id).exec();
  }

  /**
   * Take the lease on a sweep of the reconciler for `ms`: this master works
   * its next page, no other meanwhile. False when another holds it.
   */
  async takeSweep(name: string, ms: number): Promise<boolean> {
    return (await this.redis.set(this.keys.sweepLease(name), this.masterId, 'PX', ms, 'NX')) === 'OK';
  }

  /** Give a sweep's lease back (only if it is still ours). */
  async leaveSweep(name: string): Promise<void> {
    await this.redis.releaseLock(this.keys.sweepLease(name), this.masterId);
  }

  /** Where a sweep is ('' at the start of a cycle) and when its next cycle may begin. */
  async sweepAt(name: string): Promise<{ cursor: string; nextCycleAtMs: number }> {
    const [cursor, next] = await this.redis.hmget(this.keys.sweep(name), 'cursor', 'nextCycleAtMs');
    return { cursor: cursor ?? '', nextCycleAtMs: Number(next ?? 0) };
  }

  /** A sweep's next cycle may begin no earlier than `atMs` (a whole pass was just made). */
  async deferSweep(name: string, atMs: number): Promise<void> {
    await this.redis.hset(this.keys.sweep(name), 'nextCycleAtMs', String(atMs));
  }

  async moveSweep(name: string, cursor: string, nextCycleAtMs?: number): Promise<void> {
    await this.redis.hset(this.keys.sweep(name), 'cursor', cursor, ...(nextCycleAtMs === undefined ? [] : ['nextCycleAtMs', String(nextCycleAtMs)]));
  }

  /** Of these hosts, those that heart-beat (one pipeline). */
  async aliveOf(hostIds: string[]): Promise<Set<string>> {
    const ids = [...new Set(hostIds)].filter(Boolean);
    if (!ids.length) return new Set();
    const pipe = this.redis.pipeline();
    for (const h of ids) pipe.exists(this.keys.alive(h));
    const res = (await pipe.exec()) ?? [];
    return new Set(ids.filter((_, i) => res[i]?.[1] === 1));
  }

  /** Rows of a host's container table for these sandboxes (HMGET): sandbox id -> entry, absent where there is none. */
  async containerRows(hostId: string, ids: string[]): Promise<Map<string, ContainerEntry>> {
    if (!ids.length) return new Map();
    const raw = await this.redis.hmget(this.keys.containers(hostId), ...ids);
    return new Map(ids.flatMap((id, i) => (raw[i] ? [[id, JSON.parse(raw[i]!) as ContainerEntry] as const] : [])));
  }

  /** Every host that registered or is in the load set, with its manager's record, heartbeat and the master's status. */
  async hosts(): Promise<HostView[]> {
    const k = this.keys;
    const [raw, registered] = await Promise.all([this.redis.zrange(k.load, '0', '-1', 'WITHSCORES'), this.redis.smembers(k.hosts)]);
    const load = new Map<string, number>();
    for (let i = 0; i < raw.length; i += 2) load.set(raw[i]!, Number(raw[i + 1]));
    return this.hostViews([...new Set([...load.keys(), ...registered])], load);
  }

  /**
   * The hosts a lost-host check must look at: those whose heartbeat is past
   * its time by the index the heartbeats keep (at most `limit`, the longest
   * silent first) and those marked lost (to see them back). A host alive
   * and well is in neither: the check's work follows the hosts in trouble.
   */
  async hostsToCheck(nowMs: number, limit = 1000): Promise<HostView[]> {
    const k = this.keys;
    const [lapsed, lost] = await Promise.all([this.redis.zrangebyscore(k.beats, '-inf', nowMs, 'LIMIT', 0, limit), this.redis.smembers(k.lostHosts)]);
    return this.listedViews([...lapsed, ...lost]);
  }

  /**
   * The hosts marked lost, and of `also` those still registered: what the
   * lost-host handling follows, without reading every host.
   */
  async lostHostViews(also: string[] = []): Promise<HostView[]> {
    return this.listedViews([...(await this.redis.smembers(this.keys.lostHosts)), ...also]);
  }

  /** Views of these hosts, of those still listed (registered, or in the load set: a host forgotten is in neither). */
  private async listedViews(hostIds: string[]): Promise<HostView[]> {
    const k = this.keys;
    const ids = [...new Set(hostIds)];
    if (!ids.length) return [];
    const pipe = this.redis.pipeline();
    for (const h of ids) pipe.sismember(k.hosts, h).zscore(k.load, h);
    const res = (await pipe.exec()) ?? [];
    const load = new Map<string, number>();
    const listed = ids.filter((h, i) => {
      const score = res[2 * i + 1]?.[1] as string | null;
      if (score != null) load.set(h, Number(score));
      return res[2 * i]?.[1] === 1 || score != null;
    });
    return this.hostViews(listed, load);
  }

  private async hostViews(ids: string[], load: Map<string, number>): Promise<HostView[]> {
    const k = this.keys;
    if (!ids.length) return [];
    const pipe = this.redis.pipeline();
    for (const h of ids) pipe.hgetall(k.host(h)).exists(k.alive(h)).hgetall(k.hostStatus(h));
    const res = (await pipe.exec()) ?? [];
    return ids.map((hostId, i) => {
      const h = (res[3 * i]?.[1] as Record<string, string>) ?? {};
      const st = (res[3 * i + 2]?.[1] as Record<string, string>) ?? {};
      return {
        hostId,
        address: h.address ?? '',
        managerUrl: h.managerUrl ?? '',
        capacity: Number(h.capacity ?? 0),
        load: load.get(hostId) ?? 0,
        alive: res[3 * i + 1]?.[1] === 1,
        draining: st.draining === '1',
        lostAtMs: st.lostAtMs ? Number(st.lostAtMs) : null,
        startedAt: h.startedAt ?? null,
        stoppedAtMs: h.stoppedAtMs ? Number(h.stoppedAtMs) : null,
        heartbeatTtlMs: h.heartbeatTtlMs ? Number(h.heartbeatTtlMs) : null,
      };
    });
  }

  /** A host's manager URL while it heart-beats, else null (one round trip, whatever the number of hosts). */
  async liveManagerUrl(hostId: string): Promise<string | null> {
    const res = (await this.redis.pipeline().exists(this.keys.alive(hostId)).hget(this.keys.host(hostId), 'managerUrl').exec()) ?? [];
    return res[0]?.[1] === 1 ? ((res[1]?.[1] as string | null) ?? null) : null;
  }

  async hostAlive(hostId: string): Promise<boolean> {
    return (await this.redis.exists(this.keys.alive(hostId))) === 1;
  }

  /** A host's container table as its manager wrote it: sandbox id -> entry. */
  async containers(hostId: string): Promise<Map<string, ContainerEntry>> {
    const raw = await this.redis.hgetall(this.keys.containers(hostId));
    return new Map(Object.entries(raw).map(([id, json]) => [id, JSON.parse(json) as ContainerEntry]));
  }

  /** Every sandbox on a lapsed host becomes lost; returns their ids ([] if the host is alive again). */
  markHostLost(hostId: string): Promise<string[]> {
    return this.redis.markHostLost(this.keys.load, this.keys.expiry, this.prefix, hostId, Date.now());
  }

  async hostBack(hostId: string): Promise<void> {
    await this.redis.multi().hdel(this.keys.hostStatus(hostId), 'lostAtMs').srem(this.keys.lostHosts, hostId).exec();
  }

  /** Forget a host whose manager is gone (silent, or terminated); false if it heart-beats again. */
  async forgetHost(hostId: string): Promise<boolean> {
    return (await this.redis.forgetHost(this.keys.hosts, this.keys.load, this.prefix, hostId)) === 1;
  }

  /** Mark an empty host draining (no more sandboxes); false if it has any. */
  async drain(hostId: string): Promise<boolean> {
    return (await this.redis.drainHost(this.keys.hostStatus(hostId), this.keys.sandboxesOn(hostId), this.keys.load, hostId)) === 1;
  }

  async undrain(hostId: string): Promise<void> {
    await this.redis.undrainHost(this.keys.hostStatus(hostId), this.keys.sandboxesOn(hostId), this.keys.load, hostId);
  }

  /** This master is alive for `ttlMs` more; creates and deletes it owns are left to it meanwhile. */
  async beat(ttlMs: number): Promise<void> {
    await this.redis.set(this.keys.master(this.masterId), String(Date.now()), 'PX', ttlMs);
  }

  /** This master stops: what it owns may be taken over at once. */
  async leave(): Promise<void> {
    await this.redis.del(this.keys.master(this.masterId));
  }

  /** Which of these masters are alive (this one always is). */
  async mastersAlive(ids: string[]): Promise<Set<string>> {
    const others = [...new Set(ids)].filter((id) => id !== this.masterId);
    const alive = new Set([this.masterId]);
    if (!others.length) return alive;
    const pipe = this.redis.pipeline();
    for (const id of others) pipe.exists(this.keys.master(id));
    const res = (await pipe.exec()) ?? [];
    others.forEach((id, i) => {
      if (res[i]?.[1] === 1) alive.add(id);
    });
    return alive;
  }

  /** One scale-out at a time across every master: a lock with an expiry. */
  async tryScaleOutLock(owner: string, ms: number): Promise<boolean> {
    return (await this.redis.set(this.keys.scaleOut, owner, 'PX', ms, 'NX')) === 'OK';
  }

  async releaseScaleOutLock(owner: string): Promise<void> {
    // Only our own lock: compare and delete in one step.
    await this.redis.releaseLock(this.keys.scaleOut, owner);
  }
}
