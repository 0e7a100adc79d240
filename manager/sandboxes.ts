import { randomBytes } from 'node:crypto';
import { OmegaError } from '../src/errors.js';
import type { Logger } from '../src/log.js';
import type { ContainerEntry, CreateSandboxRequest, SandboxInfo, SandboxMetrics, SandboxSize } from '../src/protocol/manager.js';
import type { ManagerConfig } from './config.js';
import type { WarmContainer, WarmPool } from './pool.js';
import type { HostRegistry } from './registry.js';
import { LABELS, type DockerRuntime } from './runtime/docker.js';
import type { WorkerClient } from './worker-client.js';
import type { SandboxNetwork } from './runtime/network.js';
import { archiveOrNothing, openVolume, readArchive, writeArchive } from './runtime/archive.js';
import { workspaceSpace } from './runtime/disk.js';
import type { SnapshotStore } from '../src/snapshot-store.js';
import { isWorkspaceVolume, workspaceVolume } from './workspaces.js';
import type { DirectPorts } from './direct-ports.js';

/** How old a sandbox's last CPU reading may be to measure its CPU use since. */
const CPU_READ_AGE_MS = 60_000;

/** Row states that hold one of the host's slots. */
const HOLDS_SLOT = new Set(['running', 'paused', 'stopped']);

/**
 * Creating, deleting and listing the sandboxes of this host. Every create
 * goes through a claim (warm or freshly started container alike), so a
 * sandbox token is never part of a container's configuration.
 */
export class Sandboxes {
  /** Creates in progress by sandbox id: a repeated create joins the first. */
  private readonly inflight = new Map<string, Promise<SandboxInfo>>();
  pool!: WarmPool;
  /** The isolated network, for sandboxes created without internet (null: Docker's default bridge). */
  network: SandboxNetwork | null = null;
  /** The TLS ingress port of this host once it listens (null: TLS off): every answer names it. */
  ingressPort: number | null = null;
  /** Where workspace snapshots are written and read. */
  snapshots: SnapshotStore | null = null;
  /** With TLS off: the manager's own ports of sandboxes created with autoResume (null with the ingress). */
  direct: DirectPorts | null = null;

  constructor(
    private readonly config: ManagerConfig,
    private readonly runtime: DockerRuntime,
    private readonly workers: WorkerClient,
    private readonly registry: HostRegistry,
    private readonly log: Logger,
  ) {}

  image(template: string): string {
    return `${this.config.imagePrefix}${template}:latest`;
  }

  isInflight(containerOrSandbox: string): boolean {
    return this.inflight.has(containerOrSandbox) || this.deleting.has(containerOrSandbox) || this.changes.has(containerOrSandbox) || this.startingContainers.has(containerOrSandbox);
  }

  private readonly startingContainers = new Set<string>();

  create(req: CreateSandboxRequest): Promise<SandboxInfo> {
    const running = this.inflight.get(req.id);
    if (running) return running;
    const p = this.doCreate(req).finally(() => this.inflight.delete(req.id));
    this.inflight.set(req.id, p);
    return p;
  }

  private async doCreate(req: CreateSandboxRequest): Promise<SandboxInfo> {
    if (!this.config.templates.includes(req.template)) {
      throw new OmegaError('UNKNOWN_TEMPLATE', `unknown template "${req.template}"; this host offers ${this.config.templates.join(', ')}`);
    }
    const table = await this.registry.entries();
    const existing = table.get(req.id);
    if (existing?.containerId) {
      if (existing.template !== req.template) throw new OmegaError('SANDBOX_EXISTS');
      if (existing.state === 'running' && (await this.runtime.running(existing.containerId))) return this.info(req.id, existing);
    }
    // A paused or stopped sandbox keeps its slot (it resumes in place).
    const others = [...table].filter(([id, e]) => id !== req.id && HOLDS_SLOT.has(e.state)).length;
    if (others >= this.config.capacity) {
      throw new OmegaError('HOST_AT_CAPACITY', `this host runs ${others} of ${this.config.capacity} sandboxes`);
    }
    const log = this.log.child({ sandboxId: req.id, template: req.template });
    const gitRepo = this.config.templateRepos[req.template];
    // The create's own repository, else the template's (cloned in the background).
    const claim = { sandboxId: req.id, token: req.token, ...(req.git ? { git: req.git } : gitRepo ? { gitRepo } : {}), ...(req.env ? { env: req.env } : {}), ...(req.publicPreviews ? { publicPreviews: true as const } : {}) };

    // A named workspace's volume is mounted when its container starts: no warm container has it.
    const got = req.limits || req.workspace ? undefined : await this.pool.acquire(req.template);
    let warm = got?.container;
    // Out of the pool and not yet in the table: marked in flight in the same tick, so a reconcile pass leaves it alone.
    if (warm) this.startingContainers.add(warm.containerId);
    const claimed = warm?.containerId;
    try {
      // A container the pool started for this create (in turn, under a burst) cost it a start: cold.
      let source: SandboxInfo['source'] = got?.warm ? 'pool' : 'cold';
      if (warm) {
        try {
          await this.workers.claim(warm.address, warm.hostPort, warm.claimSecret, claim);
        } catch (err) {
          // The repository is at fault, not the container: a cold start would fail the same way.
          if (err instanceof OmegaError && err.code === 'GIT_FAILED') {
            await this.discardLogged(warm, log);
            throw err;
          }
          log.warn({ err }, 'warm container refused its claim; starting one cold');
          await this.discardLogged(warm, log);
          warm = undefined;
        }
      }
      if (!warm) {
        source = 'cold';
        // A workspace that comes here from a snapshot starts from it alone, not over what an old volume of its name kept.
        if (req.workspace && req.snapshot) await this.runtime.removeVolume(workspaceVolume(this.config.hostId, req.workspace));
        warm = await this.startContainer(req.template, { sandbox: req.id }, req.limits, req.workspace ? workspaceVolume(this.config.hostId, req.workspace) : undefined);
        try {
          await this.workers.claim(warm.address, warm.hostPort, warm.claimSecret, claim);
        } catch (err) {
          await this.discardLogged(warm, log);
          throw err;
        }
      }
      if (req.snapshot) {
        // Before the claim: the worker's first client sees the snapshot's files, and no clone starts over them.
        try {
          await this.restore(warm, req.snapshot);
        } catch (err) {
          await this.discardLogged(warm, log);
          throw err;
        }
      }
      if (req.internet === false) {
        // Before the answer, so the sandbox's user never runs with a network.
        if (!this.network || !warm.ip) {
          await this.discardLogged(warm, log);
          throw new OmegaError('VALIDATION_FAILED', 'internet: false needs the isolated sandbox network (OMEGA_SANDBOX_NETWORK=isolated) on this host');
        }
        try {
          await this.network.setOffline(warm.ip, true);
        } catch (err) {
          await this.discardLogged(warm, log);
          throw err;
        }
      }
      // Reached at a port of the manager's own that wakes it when paused (no ingress to do it).
      let directPort: number | undefined;
      if (req.autoResume && this.direct) {
        try {
          directPort = await this.direct.open(req.id);
        } catch (err) {
          await this.discardLogged(warm, log);
          throw err;
        }
      }
      const entry: ContainerEntry = {
        containerId: warm.containerId,
        address: warm.address,
        hostPort: warm.hostPort,
        volume: warm.volume,
        template: req.template,
        source,
        state: 'running',
        ...(req.internet === false ? { internet: false as const, ip: warm.ip } : {}),
        token: req.token,
        claimSecret: warm.claimSecret,
        ...(req.env ? { env: req.env } : {}),
        ...(req.autoResume ? { autoResume: true as const } : {}),
        ...(req.publicPreviews ? { publicPreviews: true as const } : {}),
        ...(directPort ? { directPort } : {}),
        size: warm.size,
        createdAtMs: Date.now(),
      };
      try {
        // Before the answer: the master reads the table to tell a running sandbox from a lost one.
        await this.registry.put(req.id, entry);
      } catch (err) {
        // Not recorded means nobody could find it again: leave nothing behind.
        if (directPort) await this.direct?.close(req.id);
        await this.discardLogged(warm, log);
        throw new OmegaError('REDIS_UNAVAILABLE', undefined, { cause: err });
      }
      if (existing && existing.containerId !== entry.containerId) await this.dropReplaced(req.id, existing, log);
      log.info({ containerId: entry.containerId.slice(0, 12), hostPort: entry.hostPort, source }, 'sandbox started');
      return this.info(req.id, entry);
    } finally {
      if (claimed) this.startingContainers.delete(claimed);
    }
  }


  /**
   * A sandbox restored here under its id (from a snapshot, after it was
   * lost) replaces what its old row kept (a crashed container, the
   * workspace kept for a lost sandbox): removed now rather than left to a
   * reconcile pass. A failure is logged: that pass removes it.
   */
  private async dropReplaced(id: string, old: ContainerEntry, log: Logger): Promise<void> {
    try {
      if (old.containerId) await this.runtime.remove(old.containerId);
      if (old.volume && !isWorkspaceVolume(old.volume)) await this.runtime.removeVolume(old.volume);
    } catch (err) {
      log.warn({ err, sandboxId: id }, 'removing what a restored sandbox replaced failed; the reconciler removes it');
    }
  }

  private info(id: string, e: ContainerEntry): SandboxInfo {
    return {
      id,
      template: e.template,
      containerId: e.containerId,
      hostPort: e.directPort ?? e.hostPort,
      ingressPort: this.ingressPort,
      host: this.config.hostIp,
      volume: e.volume,
      createdAt: new Date(e.createdAtMs).toISOString(),
      source: e.source,
      // A row from before sizes were kept: this host's settings for its template, which it was started with unless a create asked for others.
      size: e.size ?? { cpus: this.config.cpus, memoryMb: this.config.memoryMb, diskMb: this.config.diskMb[e.template] ?? 0 },
    };
  }

  /** Remove a container that serves no one, logging (not throwing) a failure: the reconciler removes what is left. */
  private async discardLogged(c: { containerId: string; volume: string }, log: Logger): Promise<void> {
    try {
      await this.discard(c);
    } catch (err) {
      log.warn({ err, containerId: c.containerId.slice(0, 12) }, 'removing a container failed; the reconciler removes it');
    }
  }

  /**
   * Start a container and wait for its worker. `owner` labels it with its
   * sandbox (cold start) or as a pool member; a failed start is removed.
   */
  async startContainer(template: string, owner: { sandbox: string } | { pool: true }, limits?: CreateSandboxRequest['limits'], namedVolume?: string): Promise<WarmContainer> {
    const slot = 'sandbox' in owner ? owner.sandbox : `pool-${randomBytes(6).toString('hex')}`;
    const claimSecret = randomBytes(24).toString('base64url');
    const volume = namedVolume ?? `omega-ws-${slot}`;
    const c = this.config;
    const size: SandboxSize = { cpus: limits?.cpus ?? c.cpus, memoryMb: limits?.memoryMb ?? c.memoryMb, diskMb: c.diskMb[template] ?? 0 };
    const started = await this.runtime.start({
      name: `omega-${slot}`,
      image: this.image(template),
      template,
      volume,
      labels: 'sandbox' in owner ? { [LABELS.sandbox]: owner.sandbox } : { [LABELS.pool]: template },
      env: {
        OMEGA_WORKER_CLAIM_SECRET: claimSecret,
        OMEGA_ZONE: c.zone,
        // Reached only through the TLS ingress: preview cookies are Secure.
        ...(c.tls !== 'off' ? { OMEGA_WORKER_HTTPS: '1' } : {}),
        ...('sandbox' in owner ? { OMEGA_WORKER_SANDBOX_ID: owner.sandbox } : {}),
      },
      memoryMb: size.memoryMb,
      cpus: size.cpus,
      pids: limits?.pids ?? c.pids,
      tmpMb: c.tmpMb,
      diskMb: size.diskMb,
      ...(namedVolume ? { reuseVolume: true } : {}),
      nofile: c.nofile,
    });
    this.startingContainers.add(started.id);
    const warm: WarmContainer = { template, containerId: started.id, address: started.address, ip: started.ip, hostPort: started.hostPort, volume, claimSecret, size };
    try {
      await this.workers.waitHealthy(started.address, started.hostPort, c.readyTimeoutMs, () => this.runtime.running(started.id));
      return warm;
    } catch (err) {
      const logs = await this.runtime.logsTail(started.id);
      await this.discardLogged(warm, this.log);
      throw new OmegaError('SANDBOX_START_FAILED', `${(err as Error).message}${logs ? `; container output: ${logs.slice(-500)}` : ''}`, { cause: err });
    } finally {
      this.startingContainers.delete(started.id);
    }
  }

  /** Remove a container and its volume; a named workspace's volume stays (the workspace outlives its sandboxes). */
  async discard(c: { containerId: string; volume: string }): Promise<void> {
    await this.runtime.remove(c.containerId);
    if (!isWorkspaceVolume(c.volume)) await this.runtime.removeVolume(c.volume);
  }

  /**
   * Stop and remove a sandbox's container, and its volume unless kept (a
   * lost sandbox's workspace, until the master deletes it: its row then
   * says `removed` and keeps the volume's name). Idempotent: false when
   * there was nothing.
   */
  async delete(id: string, keepVolume: boolean): Promise<boolean> {
    // A create in flight finishes first (its failure is its caller's to report), so nothing it starts is left.
    await this.inflight.get(id)?.then(
      () => undefined,
      () => undefined,
    );
    // Marked in flight so a reconcile pass running meanwhile leaves it to us.
    this.deleting.add(id);
    try {
      return await this.doDelete(id, keepVolume);
    } finally {
      this.deleting.delete(id);
    }
  }

  private readonly deleting = new Set<string>();

  private async doDelete(id: string, keepVolume: boolean): Promise<boolean> {
    const entry = await this.registry.get(id);
    const containers = (await this.runtime.list()).filter((c) => c.labels[LABELS.sandbox] === id || c.id === entry?.containerId);
    for (const c of containers) await this.runtime.remove(c.id);
    // Its address may go to the next container: it must not inherit the rule.
    if (entry?.internet === false && entry.ip) await this.network?.setOffline(entry.ip, false);
    const volumes = new Set([entry?.volume, ...containers.map((c) => c.labels[LABELS.volume])].filter((v): v is string => !!v));
    if (keepVolume && entry) {
      await this.registry.report(id, { ...entry, state: 'removed' });
    } else {
      // A named workspace's volume stays: it is removed only with the workspace.
      for (const v of volumes) if (!isWorkspaceVolume(v)) await this.runtime.removeVolume(v);
      if (entry) await this.registry.remove(id);
    }
    await this.direct?.close(id);
    const found = !!entry || containers.length > 0;
    if (found) this.log.info({ sandboxId: id, keepVolume }, 'sandbox deleted');
    return found;
  }

  /**
   * A sandbox's container stopped on its own: its row says so and the
   * master hears of it in the same step (it marks the sandbox lost). Only a
   * row that says running changes; false otherwise.
   */
  async exited(id: string, containerId: string, why: string): Promise<boolean> {
    // Its own delete, pause or resume stops it: not a crash.
    if (this.deleting.has(id) || this.changes.has(id)) return false;
    const entry = await this.registry.get(id);
    if (!entry || entry.containerId !== containerId || entry.state !== 'running') return false;
    await this.registry.report(id, { ...entry, state: 'exited', exitedAtMs: Date.now(), why }, { state: 'exited', why });
    this.log.warn({ sandboxId: id, why }, 'sandbox container stopped');
    return true;
  }

  /**
   * Pause a sandbox: `memory` freezes its container (every process keeps
   * its state and uses no CPU; it still holds its memory), `stopped` stops
   * it (only its workspace is kept; its processes start fresh at resume).
   * The row changes first, so a reconcile pass or the engine's die event
   * meanwhile does not take the container for one that stopped on its own.
   * Idempotent; a stopped sandbox asked to pause in memory stays stopped.
   */
  async pause(id: string, kind: 'memory' | 'stopped'): Promise<SandboxInfo> {
    return this.changing(id, async () => {
      const entry = await this.liveEntry(id);
      if (entry.state === 'stopped' || (entry.state === 'paused' && kind === 'memory')) return this.info(id, entry);
      if (kind === 'memory') {
        await this.registry.put(id, { ...entry, state: 'paused' });
        try {
          await this.runtime.pause(entry.containerId);
        } catch (err) {
          await this.registry.put(id, entry);
          throw err;
        }
      } else {
        await this.registry.put(id, { ...entry, state: 'stopped' });
        // A frozen container cannot be stopped: thawed first, then stopped with its processes' SIGTERM grace.
        if (entry.state === 'paused') await this.runtime.unpause(entry.containerId);
        await this.runtime.stop(entry.containerId);
      }
      this.log.info({ sandboxId: id, kind }, 'sandbox paused');
      return this.info(id, (await this.registry.get(id))!);
    });
  }

  /**
   * Resume a paused sandbox in place. A frozen one thaws (its processes go
   * on); a stopped one starts again: the worker starts unclaimed, so it is
   * claimed again with the sandbox's token (kept in the row), its address
   * and published port may be new, and an offline sandbox's firewall rule
   * moves to its new address before the claim. Idempotent.
   */
  async resume(id: string): Promise<SandboxInfo> {
    return this.changing(id, async () => {
      const entry = await this.liveEntry(id);
      if (entry.state === 'running') return this.info(id, entry);
      if (entry.state === 'paused') {
        await this.runtime.unpause(entry.containerId);
        const running: ContainerEntry = { ...entry, state: 'running' };
        await this.registry.put(id, running);
        this.log.info({ sandboxId: id, kind: 'memory' }, 'sandbox resumed');
        return this.info(id, running);
      }
      if (!entry.token || !entry.claimSecret) throw new OmegaError('SANDBOX_START_FAILED', `sandbox ${id} was stopped without the token its worker needs to be claimed again (a row from before pause existed)`);
      const started = await this.runtime.restart(entry.containerId);
      await this.workers.waitHealthy(started.address, started.hostPort, this.config.readyTimeoutMs, () => this.runtime.running(started.id));
      if (entry.internet === false) {
        if (entry.ip && entry.ip !== started.ip) await this.network?.setOffline(entry.ip, false);
        await this.network?.setOffline(started.ip, true);
      }
      await this.workers.claim(started.address, started.hostPort, entry.claimSecret, { sandboxId: id, token: entry.token, ...(entry.env ? { env: entry.env } : {}), ...(entry.publicPreviews ? { publicPreviews: true as const } : {}) });
      const running: ContainerEntry = { ...entry, state: 'running', address: started.address, hostPort: started.hostPort, ...(entry.internet === false ? { ip: started.ip } : {}) };
      await this.registry.put(id, running);
      this.log.info({ sandboxId: id, kind: 'stopped', hostPort: running.hostPort }, 'sandbox resumed');
      return this.info(id, running);
    });
  }

  /**
   * Write a sandbox's workspace to the snapshot store as `key`. A running
   * sandbox is frozen meanwhile (its files do not change under tar; its
   * programs go on after), a paused or stopped one is read as it is. One
   * at a time with its pauses and resumes.
   */
  async snapshot(id: string, key: string, signal?: AbortSignal): Promise<{ bytes: number }> {
    const store = this.snapshots;
    if (!store) throw new OmegaError('SNAPSHOT_FAILED', 'this host has no snapshot store');
    return this.changing(id, () => archiveOrNothing(store, key, () => this.writeSnapshot(id, store, key, signal), signal));
  }

  private async writeSnapshot(id: string, store: SnapshotStore, key: string, signal?: AbortSignal): Promise<{ bytes: number }> {
    // Gone before its turn (a pause or another snapshot of it first): nothing to write.
    signal?.throwIfAborted();
    const entry = await this.liveEntry(id);
    const freeze = entry.state === 'running';
    if (freeze) await this.runtime.pause(entry.containerId);
    try {
      const volume = await openVolume(await this.runtime.volumeInfo(entry.volume), false);
      try {
        const t0 = Date.now();
        const r = await writeArchive(volume.dir, store, key, signal);
        this.log.info({ sandboxId: id, key, bytes: r.bytes, ms: Date.now() - t0, frozen: freeze }, 'snapshot written');
        return r;
      } finally {
        await volume.close();
      }
    } finally {
      if (freeze) await this.runtime.unpause(entry.containerId);
    }
  }

  /** Each sandbox's CPU time at its last metrics read: the next read's CPU use is the average since (a minute back at most). */
  private readonly cpuReads = new Map<string, { cpuNs: number; atMs: number }>();

  /**
   * What a running or frozen sandbox uses now: its CPU (the share of its
   * CPUs used since its previous read within a minute, else over 200 ms),
   * its memory and its workspace's space.
   */
  async metrics(id: string): Promise<SandboxMetrics> {
    const entry = await this.liveEntry(id);
    if (entry.state === 'stopped') throw new OmegaError('SANDBOX_BUSY', `sandbox ${id} is stopped: it runs nothing to measure`);
    const [first, disk] = await Promise.all([this.runtime.usage(entry.containerId), this.space(entry.volume)]);
    let now = first;
    let before = this.cpuReads.get(id);
    if (!before || now.atMs - before.atMs > CPU_READ_AGE_MS || now.cpuNs < before.cpuNs || now.atMs <= before.atMs) {
      before = now;
      await new Promise((r) => setTimeout(r, 200));
      now = await this.runtime.usage(entry.containerId);
    }
    for (const [k, v] of this.cpuReads) if (now.atMs - v.atMs > CPU_READ_AGE_MS) this.cpuReads.delete(k);
    this.cpuReads.set(id, { cpuNs: now.cpuNs, atMs: now.atMs });
    const wallNs = (now.atMs - before.atMs) * 1e6;
    const pct = wallNs > 0 ? ((now.cpuNs - before.cpuNs) / (wallNs * now.cpus)) * 100 : 0;
    return {
      atMs: now.atMs,
      cpuUsedPct: Math.round(Math.min(100, Math.max(0, pct)) * 100) / 100,
      cpuCount: Math.ceil(now.cpus),
      memUsed: now.memUsed,
      memCache: now.memCache,
      memTotal: now.memLimit,
      diskUsed: disk.used,
      diskTotal: disk.total,
    };
  }

  private async space(volume: string): Promise<{ used: number; total: number }> {
    const info = await this.runtime.volumeInfo(volume);
    const open = await openVolume(info, false);
    try {
      return await workspaceSpace(open.dir, !!info.Options?.device);
    } finally {
      await open.close();
    }
  }

  private async restore(c: WarmContainer, key: string): Promise<void> {
    if (!this.snapshots) throw new OmegaError('SNAPSHOT_FAILED', 'this host has no snapshot store');
    const volume = await openVolume(await this.runtime.volumeInfo(c.volume), true);
    try {
      await readArchive(this.snapshots, key, volume.dir);
    } finally {
      await volume.close();
    }
  }

  /** The row of a sandbox that has a container to pause or resume; SANDBOX_NOT_FOUND otherwise. */
  private async liveEntry(id: string): Promise<ContainerEntry> {
    const entry = await this.registry.get(id);
    if (!entry || !['running', 'paused', 'stopped'].includes(entry.state)) throw new OmegaError('SANDBOX_NOT_FOUND', `no sandbox ${id} with a container on this host`);
    return entry;
  }

  /** One pause or resume of a sandbox at a time on this host, after any create of it; a reconcile pass leaves it alone meanwhile. */
  private async changing<T>(id: string, fn: () => Promise<T>): Promise<T> {
    await this.inflight.get(id)?.then(
      () => undefined,
      () => undefined,
    );
    const before = this.changes.get(id) ?? Promise.resolve();
    const p = before.then(fn, fn);
    const settled = p.then(
      () => undefined,
      () => undefined,
    );
    this.changes.set(id, settled);
    try {
      return await p;
    } finally {
      if (this.changes.get(id) === settled) this.changes.delete(id);
    }
  }

  private readonly changes = new Map<string, Promise<void>>();

  /**
   * Where the ingress reaches a sandbox's worker, waking it first when it
   * is paused and was created with autoResume: a `wake` host event asks the
   * masters (one of them resumes it, as an API call would), and the
   * connection waits, up to `waitMs`, for this host's row to say running.
   * null when the sandbox is not here, or paused without autoResume.
   */
  async routeWaking(id: string, waitMs: number): Promise<ContainerEntry | null> {
    let e = await this.registry.get(id);
    if (!e || e.state === 'running') return e;
    if ((e.state !== 'paused' && e.state !== 'stopped') || !e.autoResume) return null;
    const last = this.wakes.get(id) ?? 0;
    if (Date.now() - last > 5000) {
      this.wakes.set(id, Date.now());
      await this.registry.report(id, e, { state: 'wake', why: 'a connection came while it was paused' });
      this.log.info({ sandboxId: id }, 'waking a paused sandbox for a connection');
    }
    const until = Date.now() + waitMs;
    while (Date.now() < until) {
      await new Promise((r) => setTimeout(r, 5));
      e = await this.registry.get(id);
      if (!e) return null;
      if (e.state === 'running') {
        this.wakes.delete(id);
        return e;
      }
    }
    return null;
  }

  private readonly wakes = new Map<string, number>();

  /** A container of this host stopped (the engine's event): report it if it served a sandbox. */
  async exitedContainer(containerId: string, sandboxId: string | null, why: string): Promise<boolean> {
    // A claimed pool container carries no sandbox label: its row names it.
    const id = sandboxId ?? (await this.registry.sandboxOf(containerId));
    return id ? this.exited(id, containerId, why) : false;
  }

  async list(): Promise<Array<SandboxInfo & { state: string }>> {
    const [entries, containers] = await Promise.all([this.registry.entries(), this.runtime.list()]);
    const byId = new Map(containers.map((c) => [c.id, c]));
    const out: Array<SandboxInfo & { state: string }> = [];
    for (const [id, e] of entries) {
      out.push({ ...this.info(id, e), state: e.state === 'running' ? (byId.get(e.containerId)?.state ?? 'missing') : e.state });
    }
    return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }
}
