import { isIP } from 'node:net';
import { OmegaError, isOmegaError } from '../src/errors.js';
import type { Logger } from '../src/log.js';
import type { DnsClient, ManagerClient } from './clients.js';
import { notDelivered, UpstreamError } from './clients.js';
import type { MasterConfig } from './config.js';
import type { Scaler } from './scaler.js';
import { newSandboxId, newSandboxToken } from '../src/ids.js';
import type { PauseKind, SandboxRecord, SandboxState, Store } from './store.js';
import type { Created, GitSource, SandboxView } from '../src/protocol/master.js';
import type { SandboxMetrics } from '../src/protocol/manager.js';
import type { SnapshotStore } from '../src/snapshot-store.js';
import { Persistence } from './persistence.js';
import { Workspaces, type WorkspacePlan } from './workspaces.js';

export interface CreateRequest {
  template: string;
  timeoutSeconds?: number;
  idleSeconds?: number;
  metadata?: Record<string, string>;
  /** For POST /v1/run: no DNS name, not listed. */
  internal?: boolean;
  /** false: no outbound network at all; absent: OMEGA_SANDBOX_INTERNET. */
  internet?: boolean;
  onTimeout?: 'delete' | 'pause';
  onIdle?: 'delete' | 'pause';
  /** The environment of its terminals and processes. */
  env?: Record<string, string>;
  /** A repository cloned into its workspace before the create answers. */
  git?: GitSource;
  /** A snapshot id: the workspace starts as it. */
  snapshot?: string;
  autoResume?: boolean;
  /** Every preview open without the token, as E2B's are. */
  publicPreviews?: boolean;
  /** A named workspace that outlives the sandbox. */
  workspace?: string;
}

export type { Created, SandboxView };

/** A manager's refusals that another host would give too: the create fails at once with them. */
const NOT_THE_HOSTS_FAULT = new Set(['GIT_FAILED', 'SNAPSHOT_FAILED', 'SNAPSHOT_NOT_FOUND']);

/** Hosts tried for one create before giving up. */
const MAX_ATTEMPTS = 4;

type Slot = { hostId: string; address: string; managerUrl: string };

/**
 * The sandbox lifecycle, in the order the steps must happen so that a crash
 * at any point leaves something the reconciler can finish:
 *
 *   create: allocate (Lua: a slot, the record `creating`, owned by this
 *           master, flagged as having names) -> in parallel, the manager
 *           starts it (and writes its own container table) and the DNS
 *           server gets its names (the address is known from the slot) ->
 *           finishCreate (Lua: `running`, expiry, the view back).
 *           Redis round trips on the master: 2 (plus WAIT in the second's
 *           pipeline when replicas must have it); HTTP: manager and DNS at once.
 *   delete: beginDelete (Lua: `deleting`, owned, out of expiry) -> in
 *           parallel, every name removed in one idempotent batch and the
 *           manager removes container and volume -> release (Lua: forgotten,
 *           slot given back, id tombstoned).
 * A step that fails leaves the record `deleting` (or `creating`) owned by
 * this master; the reconciler takes it over once it is stuck or this master
 * is gone (its liveness key lapsed).
 */
export class Sandboxes {
  /** Snapshots, archives and restores. */
  readonly persistence: Persistence;
  /** Named workspaces. */
  readonly workspaces: Workspaces;

  constructor(
    private readonly config: MasterConfig,
    private readonly store: Store,
    private readonly managers: ManagerClient,
    private readonly dns: DnsClient,
    private readonly scaler: Scaler,
    private readonly log: Logger,
    /** Where snapshots' archives are (to delete them); the managers write and read them. */
    snapshots: SnapshotStore | null = null,
  ) {
    this.persistence = new Persistence(config, store, managers, this, scaler, log.child({ component: 'persistence' }), snapshots);
    this.workspaces = new Workspaces(store, managers, this.persistence, log.child({ component: 'workspaces' }));
  }

  hostname(id: string): string {
    return `${id}.${this.config.zone}`;
  }

  view(r: SandboxRecord): SandboxView {
    const hostname = this.hostname(r.id);
    return {
      id: r.id,
      state: r.state,
      template: r.template,
      hostname,
      ...endpoints(hostname, r, this.config.zone),
      host: r.host,
      address: r.address,
      createdAt: new Date(r.createdAtMs).toISOString(),
      expiresAt: new Date(r.expiresAtMs).toISOString(),
      idleSeconds: r.idleSeconds,
      metadata: r.metadata,
      ...(r.onTimeout === 'pause' ? { onTimeout: 'pause' as const } : {}),
      ...(r.onIdle === 'pause' ? { onIdle: 'pause' as const } : {}),
      ...(r.autoResume ? { autoResume: true as const } : {}),
      ...(r.publicPreviews ? { publicPreviews: true as const } : {}),
      ...(r.state === 'lost' && r.lostAtMs ? { lostAt: new Date(r.lostAtMs).toISOString(), lostReason: r.lostReason ?? 'unknown' } : {}),
      ...(r.workspace ? { workspace: r.workspace } : {}),
      ...(r.size ? { size: r.size } : {}),
      ...(r.state === 'paused' && r.pauseKind ? { paused: { kind: r.pauseKind, since: new Date(r.pausedAtMs ?? r.stateSinceMs).toISOString(), remainingSeconds: Math.round((r.remainingMs ?? 0) / 1000) } } : {}),
    };
  }

  /** Both names of a sandbox, pointing at its host's address, in one batch. */
  writeNames(r: { id: string; address: string }): Promise<void> {
    const type = isIP(r.address) === 6 ? 'AAAA' : 'A';
    return this.dns.change(this.names(r.id).map((name) => ({ action: 'UPSERT' as const, name, type, values: [r.address], ttl: this.config.dnsTtl })));
  }

  /** Every DNS name of a sandbox: the agent's and the previews' wildcard. */
  names(id: string): string[] {
    return [id, `*.${id}`];
  }

  async create(req: CreateRequest): Promise<Created> {
    if (!this.config.templates.includes(req.template)) {
      throw new OmegaError('UNKNOWN_TEMPLATE', `unknown template "${req.template}"; choose one of ${this.config.templates.join(', ')}`);
    }
    if (req.snapshot) {
      const snap = await this.store.getSnapshot(req.snapshot);
      if (!snap) throw new OmegaError('SNAPSHOT_NOT_FOUND', `no snapshot ${req.snapshot}`);
      if (snap.template !== req.template) throw new OmegaError('VALIDATION_FAILED', `snapshot ${snap.id} is of a ${snap.template} sandbox; create a ${snap.template} one from it`);
    }
    // Where a named workspace's volume is: the host tried first (the attach below is what counts).
    const wsHint = req.workspace ? await this.store.getWorkspace(req.workspace) : null;
    if (wsHint && (wsHint.host || wsHint.snapshot) && (req.snapshot || req.git)) {
      throw new OmegaError('VALIDATION_FAILED', `workspace ${req.workspace} exists with its files; snapshot and git start a new workspace only`);
    }
    const timeoutSeconds = Math.min(req.timeoutSeconds ?? this.config.defaultTimeoutSeconds, this.config.maxTimeoutSeconds);
    const token = newSandboxToken();
    const excluded: string[] = [];
    let lastError: unknown = null;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      // A fresh id per attempt: a host that failed may still start the old one; the undo below removes it.
      const id = newSandboxId();
      const fields = { template: req.template, expiresAtMs: Date.now() + timeoutSeconds * 1000, idleSeconds: req.idleSeconds, metadata: req.metadata, internal: req.internal, onTimeout: req.onTimeout, onIdle: req.onIdle, lifetimeMs: timeoutSeconds * 1000, autoResume: req.autoResume, token, internet: req.internet ?? this.config.sandboxInternet, env: req.env, workspace: req.workspace, publicPreviews: req.publicPreviews };
      const slot = await this.scaler.allocate(() => this.store.allocate(id, fields, excluded, wsHint?.host ?? ''));
      const log = this.log.child({ sandboxId: id, host: slot.hostId });
      let plan: WorkspacePlan | null = null;
      if (req.workspace) {
        // After the allocation: a sandbox that exists (creating) holds the workspace against racing creates.
        try {
          plan = await this.workspaces.plan(await this.workspaces.attach(req.workspace, id, req.template), id, slot);
        } catch (err) {
          await this.undo(id, slot, log, 'the workspace could not be attached', { names: false, container: false });
          throw err;
        }
      }
      const snapshot = plan?.snapshot ?? req.snapshot;
      const [started, named] = await Promise.allSettled([
        this.managers.create(
          slot.managerUrl,
          { id, template: req.template, token, ...((req.internet ?? this.config.sandboxInternet) ? {} : { internet: false as const }), ...(req.env ? { env: req.env } : {}), ...(req.git ? { git: req.git } : {}), ...(snapshot ? { snapshot } : {}), ...(req.autoResume ? { autoResume: true as const } : {}), ...(req.publicPreviews ? { publicPreviews: true as const } : {}), ...(plan ? { workspace: plan.workspace } : {}) },
          this.config.createTimeoutMs,
        ),
        req.internal ? Promise.resolve() : this.writeNames({ id, address: slot.address }),
      ]);
      if (started.status === 'rejected' && started.reason instanceof UpstreamError && NOT_THE_HOSTS_FAULT.has(started.reason.code)) {
        // The repository or the snapshot is at fault, not the host: no other host would do better.
        await this.undo(id, slot, log, `the manager said ${started.reason.code}`, { names: named.status === 'fulfilled' || !notDelivered(named.reason), container: true });
        throw new OmegaError(started.reason.code as 'GIT_FAILED', started.reason.upstreamMessage);
      }
      if (started.status === 'rejected') {
        lastError = started.reason;
        log.warn({ err: describe(started.reason) }, 'the manager could not start the sandbox; trying another host');
        excluded.push(slot.hostId);
        await this.undo(id, slot, log, 'the manager could not start it', { names: named.status === 'fulfilled' || !notDelivered(named.reason), container: !notDelivered(started.reason) });
        continue;
      }
      if (named.status === 'rejected') {
        await this.undo(id, slot, log, 'DNS write failed', { names: !notDelivered(named.reason), container: true });
        const err = named.reason;
        if (isOmegaError(err)) throw err;
        throw new OmegaError('DNS_UNAVAILABLE', describe(err), { cause: err });
      }
      const info = started.value;
      if (plan) {
        try {
          await this.workspaces.placed(plan, id, slot.hostId);
        } catch (err) {
          await this.undo(id, slot, log, 'the workspace was taken meanwhile');
          throw err;
        }
      }
      const { record: rec, replicated } = await this.store.finishCreate(id, { expiresAtMs: Date.now() + timeoutSeconds * 1000, hostPort: info.hostPort, ingressPort: info.ingressPort, containerId: info.containerId, ...(info.size ? { size: info.size } : {}) });
      if (rec && !replicated) {
        // Not answered unless it would survive a failover: undone, and the client may retry.
        await this.undo(id, slot, log, 'Redis replicas did not acknowledge it in time');
        throw new OmegaError('REDIS_UNAVAILABLE', `the create did not reach ${this.config.redisWaitReplicas} Redis replica(s) within ${this.config.redisWaitTimeoutMs} ms`);
      }
      if (!rec) {
        // Deleted, lost (its host's heartbeat lapsed), or taken over while we were creating it;
        // or its record is gone altogether (a Redis failover lost the allocation): worth a retry.
        const gone = (await this.store.get(id)) === null;
        await this.undo(id, slot, log, gone ? 'its record is gone' : 'the sandbox left the creating state meanwhile');
        if (gone) throw new OmegaError('REDIS_UNAVAILABLE', 'the sandbox\'s record was lost while it was being created (a Redis failover?); try again');
        throw new OmegaError('MANAGER_UNAVAILABLE', 'the sandbox\'s host was lost, or the sandbox deleted, while it was being created');
      }
      if (!req.internal) await this.scheduleSnapshots(id);
      log.info({ hostPort: info.hostPort, source: info.source }, 'sandbox created');
      return { ...this.view(rec), token, source: info.source };
    }
    throw new OmegaError('MANAGER_UNAVAILABLE', `no host could start the sandbox: ${describe(lastError)}`, { cause: lastError });
  }

  /**
   * Take back a create that cannot finish: the delete path, from the slot
   * we know. A step that fails is logged with its cause and leaves the
   * record `deleting` for the reconciler, which finishes it.
   */
  private async undo(id: string, slot: Slot, log: Logger, why: string, what: { names: boolean; container: boolean } = { names: true, container: true }): Promise<void> {
    try {
      const rec = await this.store.beginDelete(id);
      // No record at all (lost in a Redis failover): what it started is removed all the same.
      await this.removeEverything({ id, dns: (rec ? rec.dns : true) && what.names }, slot, log, what.container);
      if (rec) await this.store.release(id);
      if (rec?.workspace) await this.workspaces.detach(rec.workspace, id);
      log.warn({ why }, 'create undone');
    } catch (err) {
      log.warn({ why, err }, 'undoing the create failed; the reconciler finishes it');
      await this.store.disown(id).catch((e: unknown) => log.warn({ err: e }, 'could not give the undo up; it is taken over once stuck'));
    }
  }

  /** The names (one batch) and the container with its volume, at once; throws the first failure. */
  private async removeEverything(r: { id: string; dns: boolean }, slot: Slot, log: Logger, container = true): Promise<void> {
    const [names, removed] = await Promise.allSettled([
      r.dns ? this.removeNamesOnly(r.id) : Promise.resolve(),
      container ? this.managers.delete(slot.managerUrl, r.id) : Promise.resolve(false),
    ]);
    if (removed.status === 'rejected') {
      // A host that is gone cannot be asked; its manager, if it returns, reaps what no record owns.
      if (await this.store.hostAlive(slot.hostId)) {
        const err = removed.reason;
        log.warn({ err: describe(err) }, 'the manager did not remove the sandbox; it stays deleting and is retried');
        throw err instanceof UpstreamError ? new OmegaError('MANAGER_UNAVAILABLE', err.message, { cause: err }) : err;
      }
    }
    if (names.status === 'rejected') {
      const err = names.reason;
      throw isOmegaError(err) ? err : new OmegaError('DNS_UNAVAILABLE', describe(err), { cause: err });
    }
  }

  async get(id: string): Promise<SandboxView> {
    const r = await this.store.get(id);
    if (!r || r.internal) throw new OmegaError('SANDBOX_NOT_FOUND', `no sandbox ${id}`);
    return this.view(r);
  }

  /** Delete everything of a sandbox; false when there was nothing. Safe to repeat and to race. */
  async delete(id: string, why = 'deleted'): Promise<boolean> {
    const r = await this.store.beginDelete(id);
    if (!r) {
      await this.store.dropIndex(id);
      return false;
    }
    const log = this.log.child({ sandboxId: id });
    try {
      await this.removeEverything(r, { hostId: r.host, address: r.address, managerUrl: r.managerUrl }, log);
    } catch (err) {
      // No one works on it any more: the reconciler's next pass takes it over, not a minute later.
      await this.store.disown(id).catch((e: unknown) => log.warn({ err: e }, 'could not give the delete up; it is taken over once stuck'));
      throw err;
    }
    await this.store.release(id);
    // Its workspace stays, free for the next sandbox (a crash before this leaves it held by a sandbox that is gone: free too).
    if (r.workspace) await this.workspaces.detach(r.workspace, id);
    // Its periodic or archive snapshot goes with it (one asked for stays); a failure here is retried by the reconciler's sweep.
    if (r.snapshot) await this.persistence.dropIfOwned(r.snapshot);
    log.info({ why, from: r.deletedFrom }, 'sandbox deleted');
    return true;
  }

  /** Put a sandbox that runs on the periodic snapshot schedule (when OMEGA_SNAPSHOT_INTERVAL_SECONDS is set). */
  async scheduleSnapshots(id: string): Promise<void> {
    if (this.config.snapshotIntervalSeconds) await this.store.scheduleSnapshot(id, Date.now() + this.config.snapshotIntervalSeconds * 1000);
  }

  /** Both names of a sandbox removed (one idempotent batch). */
  removeNamesOnly(id: string): Promise<void> {
    return this.dns.removeNames(this.names(id));
  }

  /** A lost sandbox's names, removed at once (its record says lost; the names would point at nothing). */
  async removeNames(id: string): Promise<void> {
    await this.removeNamesOnly(id);
    await this.store.update(id, 'lost', { dns: '0' });
  }

  /** What a running or frozen sandbox uses now, as its host measures it (SandboxMetrics). */
  async metrics(id: string): Promise<SandboxMetrics & { sandboxId: string }> {
    const r = await this.store.get(id);
    if (!r || r.internal || r.state === 'deleting') throw new OmegaError('SANDBOX_NOT_FOUND', `no sandbox ${id}`);
    if (!(r.state === 'running' || (r.state === 'paused' && r.pauseKind === 'memory'))) {
      throw new OmegaError('SANDBOX_BUSY', `sandbox ${id} is ${r.state}${r.pauseKind && r.state === 'paused' ? ` (${r.pauseKind})` : ''}: only a running or frozen one has a container to measure`);
    }
    try {
      return { sandboxId: id, ...(await this.managers.metrics(r.managerUrl, id)) };
    } catch (err) {
      if (err instanceof UpstreamError && (err.code === 'SANDBOX_NOT_FOUND' || err.code === 'SANDBOX_BUSY')) throw new OmegaError(err.code, err.upstreamMessage, { cause: err });
      throw err instanceof UpstreamError ? new OmegaError('MANAGER_UNAVAILABLE', err.message, { cause: err }) : err;
    }
  }

  /** Set the sandbox to live `seconds` more from now. */
  async extend(id: string, seconds: number): Promise<SandboxView> {
    const r = await this.store.get(id);
    if (!r || r.internal || r.state === 'deleting' || r.state === 'lost') throw new OmegaError('SANDBOX_NOT_FOUND', `no live sandbox ${id}`);
    const expiresAtMs = Date.now() + Math.min(seconds, this.config.maxTimeoutSeconds) * 1000;
    if (!(await this.store.setExpiry(id, expiresAtMs))) throw new OmegaError('SANDBOX_NOT_FOUND', `no running sandbox ${id}`);
    return this.view({ ...r, expiresAtMs });
  }

  /**
   * Pause a running sandbox: frozen with its memory (`docker pause`: its
   * processes keep their state and use no CPU) or stopped (only its
   * workspace kept). Its time limit is suspended until it resumes. One
   * master takes the step (Lua: running -> pausing, owned), the manager
   * acts, and the step ends (pausing -> paused) only if nobody (a delete)
   * took the sandbox meanwhile. Pausing a paused sandbox is a no-op.
   * Both kinds keep their slot on the host: a frozen one holds its memory,
   * a stopped one its disk, and either resumes in place.
   */
  async pause(id: string, kind: Exclude<PauseKind, 'archived'>, opts: { timeLeftMs?: number; why?: string } = {}): Promise<SandboxView> {
    const begun = await this.store.beginPause(id, 'pause', kind, opts.timeLeftMs);
    if (!('record' in begun)) {
      const r = begun.state === 'paused' ? await this.store.get(id) : null;
      if (r && !r.internal) return this.view(r);
      throw this.notPausable(id, begun.state === 'archived' ? 'paused' : begun.state, 'paused');
    }
    const r = begun.record;
    const log = this.log.child({ sandboxId: id });
    try {
      await this.managers.pause(r.managerUrl, id, kind);
    } catch (err) {
      // Back where it was: running (its time left its expiry again), or frozen when it was being stopped.
      return this.takeBack(r.pausedAtMs ? this.store.settle(id, 'pausing', 'paused', { pauseKind: 'memory' }) : this.store.settle(id, 'pausing', 'running'), id, err, 'paused', log);
    }
    const done = await this.store.settle(id, 'pausing', 'paused');
    if (!done) throw new OmegaError('SANDBOX_NOT_FOUND', `sandbox ${id} was deleted while it was being paused`);
    log.info({ kind, why: opts.why ?? 'asked' }, 'sandbox paused');
    return this.view(done);
  }

  /**
   * Resume a paused sandbox where it was: same id, name and token, files
   * intact; a running one is a no-op. An archived one, or one lost with its
   * host, comes back from its latest snapshot on a host with room.
   */
  async resume(id: string): Promise<SandboxView> {
    const begun = await this.store.beginPause(id, 'resume');
    if (!('record' in begun) && (begun.state === 'archived' || begun.state === 'lost')) {
      const r = await this.persistence.restore(id, (await this.store.get(id))?.host ?? '');
      if (r.internal) throw new OmegaError('SANDBOX_NOT_FOUND', `no sandbox ${id}`);
      return this.view(r);
    }
    if (!('record' in begun)) {
      const r = begun.state === 'running' ? await this.store.get(id) : null;
      if (r && !r.internal) return this.view(r);
      throw this.notPausable(id, begun.state === 'archived' ? 'paused' : begun.state, 'resumed');
    }
    const r = begun.record;
    const log = this.log.child({ sandboxId: id });
    let info;
    try {
      info = await this.managers.resume(r.managerUrl, id);
    } catch (err) {
      return this.takeBack(this.store.settle(id, 'resuming', 'paused'), id, err, 'resumed', log);
    }
    const done = await this.store.settle(id, 'resuming', 'running', { hostPort: String(info.hostPort), containerId: info.containerId });
    if (!done) throw new OmegaError('SANDBOX_NOT_FOUND', `sandbox ${id} was deleted while it was being resumed`);
    log.info({ kind: r.pauseKind }, 'sandbox resumed');
    return this.view(done);
  }

  /**
   * A pause or resume its host's manager failed, taken back (`settled`).
   * When a delete took the sandbox meanwhile (the manager then finds no
   * container), the answer is that it is gone; otherwise the manager's failure.
   */
  private async takeBack(settled: Promise<SandboxRecord | null>, id: string, err: unknown, what: 'paused' | 'resumed', log: Logger): Promise<never> {
    const back = await settled.catch((e: unknown) => {
      log.warn({ err: e }, 'could not take a failed change back; the reconciler does');
      return undefined;
    });
    if (back === null) {
      const now = await this.store.get(id);
      if (!now || now.state === 'deleting') throw new OmegaError('SANDBOX_NOT_FOUND', `sandbox ${id} was deleted while it was being ${what}`, { cause: err });
    }
    throw err instanceof UpstreamError ? new OmegaError('MANAGER_UNAVAILABLE', err.message, { cause: err }) : err;
  }

  notPausable(id: string, state: SandboxState | null, what: string): OmegaError {
    if (state === null || state === 'deleting') return new OmegaError('SANDBOX_NOT_FOUND', `no sandbox ${id}`);
    return new OmegaError('SANDBOX_BUSY', `sandbox ${id} is ${state}; it can be ${what} once it is ${what === 'paused' ? 'running' : 'paused'}`);
  }

  /**
   * A page of sandboxes in creation order, filtered; `cursor` continues the
   * previous page. A request looks at most LIST_SCAN_MAX index entries: a
   * filter that matches few of many sandboxes answers a short (even empty)
   * page with a cursor to go on from, so each request costs the same
   * however many sandboxes there are (as DynamoDB's filtered scan does).
   */
  async list(filter: { state?: SandboxState; metadata?: Record<string, string> }, limit: number, cursor?: string, scanMax = LIST_SCAN_MAX): Promise<{ sandboxes: SandboxView[]; nextCursor: string | null }> {
    let at = cursor ? decodeCursor(cursor) : null;
    const out: SandboxView[] = [];
    let scanned = 0;
    for (;;) {
      const page = await this.store.page(at, Math.min(200, scanMax - scanned));
      if (!page.length) return { sandboxes: out, nextCursor: null };
      scanned += page.length;
      const recs = await this.store.getMany(page.map((p) => p.id));
      for (let i = 0; i < page.length; i++) {
        at = page[i]!;
        const r = recs[i];
        if (!r || r.internal) continue;
        if (filter.state && r.state !== filter.state) continue;
        if (filter.metadata && !Object.entries(filter.metadata).every(([k, v]) => r.metadata[k] === v)) continue;
        out.push(this.view(r));
        if (out.length === limit) {
          const more = i < page.length - 1 || (await this.store.page(at, 1)).length > 0;
          return { sandboxes: out, nextCursor: more ? encodeCursor(at) : null };
        }
      }
      if (scanned >= scanMax) {
        const more = (await this.store.page(at, 1)).length > 0;
        return { sandboxes: out, nextCursor: more ? encodeCursor(at!) : null };
      }
    }
  }
}

/** Index entries one list request looks at, at most. */
const LIST_SCAN_MAX = 2000;

function encodeCursor(at: { ms: number; id: string }): string {
  return Buffer.from(`${at.ms}:${at.id}`).toString('base64url');
}

function decodeCursor(c: string): { ms: number; id: string } {
  const m = /^(\d+):([a-z0-9-]+)$/.exec(Buffer.from(c, 'base64url').toString());
  if (!m) throw new OmegaError('VALIDATION_FAILED', 'cursor is not one this API gave out');
  return { ms: Number(m[1]), id: m[2]! };
}

/** Where a sandbox is reached: through its host's TLS ingress by name when it has one, else its worker's own port. */
function endpoints(hostname: string, r: SandboxRecord, zone: string): Pick<SandboxView, 'port' | 'url' | 'previewUrl'> {
  if (r.ingressPort) {
    const port = r.ingressPort === 443 ? '' : `:${r.ingressPort}`;
    return { port: r.ingressPort, url: `wss://${hostname}${port}/`, previewUrl: `https://{port}-${r.id}.${zone}${port}/` };
  }
  if (r.hostPort) return { port: r.hostPort, url: `ws://${hostname}:${r.hostPort}`, previewUrl: `http://{port}.${hostname}:${r.hostPort}/` };
  return { port: null, url: null, previewUrl: null };
}

export function describe(err: unknown): string {
  if (err instanceof UpstreamError) return `${err.code}: ${err.message}`;
  if (err instanceof Error) return err.message;
  return String(err);
}
