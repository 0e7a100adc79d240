import { randomBytes } from 'node:crypto';
import { OmegaError } from '../src/errors.js';
import type { Logger } from '../src/log.js';
import type { CreateSandboxRequest, SandboxInfo } from '../src/protocol/manager.js';
import type { ManagerConfig } from './config.js';
import type { WarmContainer, WarmPool } from './pool.js';
import type { HostRegistry } from './registry.js';
import { LABELS, type DockerRuntime } from './runtime/docker.js';
import type { WorkerClient } from './worker-client.js';

/**
 * Creating, deleting and listing the sandboxes of this host. Every create
 * goes through a claim (warm or freshly started container alike), so a
 * sandbox token is never part of a container's configuration.
 */
export class Sandboxes {
  /** Creates in progress by sandbox id: a repeated create joins the first. */
  private readonly inflight = new Map<string, Promise<SandboxInfo>>();
  pool!: WarmPool;

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
    return this.inflight.has(containerOrSandbox) || this.deleting.has(containerOrSandbox) || this.startingContainers.has(containerOrSandbox);
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
    const existing = await this.registry.get(req.id);
    if (existing?.containerId) {
      if (existing.template !== req.template) throw new OmegaError('SANDBOX_EXISTS');
      if (await this.runtime.running(existing.containerId)) return toInfo(req.id, existing);
    }
    const others = [...(await this.registry.sandboxes()).keys()].filter((id) => id !== req.id);
    if (others.length >= this.config.capacity) {
      throw new OmegaError('HOST_AT_CAPACITY', `this host runs ${others.length} of ${this.config.capacity} sandboxes`);
    }
    const log = this.log.child({ sandboxId: req.id, template: req.template });
    const gitRepo = this.config.templateRepos[req.template];
    const claim = { sandboxId: req.id, token: req.token, ...(gitRepo ? { gitRepo } : {}) };

    let warm = req.limits ? undefined : this.pool.take(req.template);
    let source: SandboxInfo['source'] = 'pool';
    if (warm) {
      try {
        await this.workers.claim(warm.hostPort, warm.claimSecret, claim);
      } catch (err) {
        log.warn({ err }, 'warm container refused its claim; starting one cold');
        await this.discard(warm).catch(() => {});
        warm = undefined;
      }
    }
    if (!warm) {
      source = 'cold';
      warm = await this.startContainer(req.template, { sandbox: req.id }, req.limits);
      try {
        await this.workers.claim(warm.hostPort, warm.claimSecret, claim);
      } catch (err) {
        await this.discard(warm).catch(() => {});
        throw err;
      }
    }
    const info: SandboxInfo = {
      id: req.id,
      template: req.template,
      containerId: warm.containerId,
      hostPort: warm.hostPort,
      host: this.config.hostIp,
      volume: warm.volume,
      createdAt: new Date().toISOString(),
      source,
    };
    try {
      await this.registry.record(info);
    } catch (err) {
      // Not recorded means nobody could find it again: leave nothing behind.
      await this.discard(warm).catch(() => {});
      throw new OmegaError('REDIS_UNAVAILABLE', undefined, { cause: err });
    }
    log.info({ containerId: info.containerId.slice(0, 12), hostPort: info.hostPort, source }, 'sandbox started');
    return info;
  }

  /**
   * Start a container and wait for its worker. `owner` labels it with its
   * sandbox (cold start) or as a pool member; a failed start is removed.
   */
  async startContainer(template: string, owner: { sandbox: string } | { pool: true }, limits?: CreateSandboxRequest['limits']): Promise<WarmContainer> {
    const slot = 'sandbox' in owner ? owner.sandbox : `pool-${randomBytes(6).toString('hex')}`;
    const claimSecret = randomBytes(24).toString('base64url');
    const volume = `omega-ws-${slot}`;
    const c = this.config;
    const started = await this.runtime.start({
      name: `omega-${slot}`,
      image: this.image(template),
      template,
      volume,
      labels: 'sandbox' in owner ? { [LABELS.sandbox]: owner.sandbox } : { [LABELS.pool]: template },
      env: {
        OMEGA_WORKER_CLAIM_SECRET: claimSecret,
        OMEGA_ZONE: c.zone,
        ...('sandbox' in owner ? { OMEGA_WORKER_SANDBOX_ID: owner.sandbox } : {}),
      },
      memoryMb: limits?.memoryMb ?? c.memoryMb,
      cpus: limits?.cpus ?? c.cpus,
      pids: limits?.pids ?? c.pids,
      tmpMb: c.tmpMb,
    });
    this.startingContainers.add(started.id);
    const warm: WarmContainer = { template, containerId: started.id, hostPort: started.hostPort, volume, claimSecret };
    try {
      await this.workers.waitHealthy(started.hostPort, c.readyTimeoutMs, () => this.runtime.running(started.id));
      return warm;
    } catch (err) {
      const logs = await this.runtime.logsTail(started.id);
      await this.discard(warm).catch(() => {});
      throw new OmegaError('SANDBOX_START_FAILED', `${(err as Error).message}${logs ? `; container output: ${logs.slice(-500)}` : ''}`, { cause: err });
    } finally {
      this.startingContainers.delete(started.id);
    }
  }

  async discard(c: { containerId: string; volume: string }): Promise<void> {
    await this.runtime.remove(c.containerId);
    await this.runtime.removeVolume(c.volume);
  }

  /** Stop and remove a sandbox (and its volume unless kept). Idempotent: false when there was nothing. */
  async delete(id: string, keepVolume: boolean): Promise<boolean> {
    await this.inflight.get(id)?.catch(() => {});
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
    const rec = await this.registry.get(id);
    const containers = (await this.runtime.list()).filter((c) => c.labels[LABELS.sandbox] === id || c.id === rec?.containerId);
    for (const c of containers) await this.runtime.remove(c.id);
    const volumes = new Set([rec?.volume, ...containers.map((c) => c.labels[LABELS.volume])].filter((v): v is string => !!v));
    if (!keepVolume) for (const v of volumes) await this.runtime.removeVolume(v);
    if (rec) await this.registry.forget(id);
    const found = !!rec || containers.length > 0;
    if (found) this.log.info({ sandboxId: id, keepVolume }, 'sandbox deleted');
    return found;
  }

  async list(): Promise<Array<SandboxInfo & { state: string }>> {
    const [recs, containers] = await Promise.all([this.registry.sandboxes(), this.runtime.list()]);
    const byId = new Map(containers.map((c) => [c.id, c]));
    const out: Array<SandboxInfo & { state: string }> = [];
    for (const [id, rec] of recs) {
      if (!rec?.containerId) continue;
      out.push({ ...toInfo(id, rec), state: byId.get(rec.containerId)?.state ?? 'missing' });
    }
    return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }
}

function toInfo(id: string, rec: Record<string, string>): SandboxInfo {
  return {
    id,
    template: rec.template ?? '',
    containerId: rec.containerId ?? '',
    hostPort: Number(rec.hostPort),
    host: rec.address ?? '',
    volume: rec.volume ?? '',
    createdAt: rec.createdAt ?? '',
    source: (rec.source as SandboxInfo['source']) ?? 'cold',
  };
}
