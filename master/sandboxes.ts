import { isIP } from 'node:net';
import { OmegaError, isOmegaError } from '../src/errors.js';
import type { Logger } from '../src/log.js';
import type { DnsClient, ManagerClient } from './clients.js';
import { UpstreamError } from './clients.js';
import type { MasterConfig } from './config.js';
import type { Scaler } from './scaler.js';
import { newSandboxId, newSandboxToken, type SandboxRecord, type SandboxState, type Store } from './store.js';
import type { Created, SandboxView } from '../src/protocol/master.js';

export interface CreateRequest {
  template: string;
  timeoutSeconds?: number;
  idleSeconds?: number;
  metadata?: Record<string, string>;
  /** For POST /v1/run: no DNS name, not listed. */
  internal?: boolean;
}

export type { Created, SandboxView };

/** Hosts tried for one create before giving up. */
const MAX_ATTEMPTS = 4;

/**
 * The sandbox lifecycle, in the order the steps must happen so that a crash
 * at any point leaves something the reconciler can finish:
 *
 *   create: reserve a slot (Lua, state creating) -> manager starts it ->
 *           mark dns=1, write A records -> creating->running (only if still
 *           creating) -> expiry set
 *   delete: ->deleting -> remove A records -> manager removes it -> release
 */
export class Sandboxes {
  constructor(
    private readonly config: MasterConfig,
    private readonly store: Store,
    private readonly managers: ManagerClient,
    private readonly dns: DnsClient,
    private readonly scaler: Scaler,
    private readonly log: Logger,
  ) {}

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
      port: r.hostPort,
      url: r.hostPort ? `ws://${hostname}:${r.hostPort}` : null,
      host: r.host,
      address: r.address,
      createdAt: new Date(r.createdAtMs).toISOString(),
      expiresAt: new Date(r.expiresAtMs).toISOString(),
      idleSeconds: r.idleSeconds,
      metadata: r.metadata,
    };
  }

  async create(req: CreateRequest): Promise<Created> {
    if (!this.config.templates.includes(req.template)) {
      throw new OmegaError('UNKNOWN_TEMPLATE', `unknown template "${req.template}"; choose one of ${this.config.templates.join(', ')}`);
    }
    const timeoutSeconds = Math.min(req.timeoutSeconds ?? this.config.defaultTimeoutSeconds, this.config.maxTimeoutSeconds);
    const token = newSandboxToken();
    const excluded: string[] = [];
    let lastError: unknown = null;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      // A fresh id per attempt: a host that failed may still start the old one, and its reconciler reaps it.
      const id = newSandboxId();
      const fields = { template: req.template, expiresAtMs: Date.now() + timeoutSeconds * 1000, idleSeconds: req.idleSeconds, metadata: req.metadata, internal: req.internal };
      const slot = await this.scaler.allocate(() => this.store.allocate(id, fields, excluded));
      const log = this.log.child({ sandboxId: id, host: slot.hostId });
      let info;
      try {
        info = await this.managers.create(slot.managerUrl, { id, template: req.template, token }, this.config.createTimeoutMs);
      } catch (err) {
        lastError = err;
        log.warn({ err: describe(err) }, 'the manager could not start the sandbox; trying another host');
        excluded.push(slot.hostId);
        // It may have started it anyway (a timeout); removing it is best effort, its reconciler is the backstop.
        this.managers.delete(slot.managerUrl, id).catch(() => {});
        await this.store.release(id);
        continue;
      }
      return await this.finishCreate(id, slot, info, token, req, timeoutSeconds, log);
    }
    throw new OmegaError('MANAGER_UNAVAILABLE', `no host could start the sandbox: ${describe(lastError)}`, { cause: lastError });
  }

  private async finishCreate(
    id: string,
    slot: { hostId: string; address: string; managerUrl: string },
    info: { containerId: string; hostPort: number; source: 'pool' | 'cold' },
    token: string,
    req: CreateRequest,
    timeoutSeconds: number,
    log: Logger,
  ): Promise<Created> {
    const undo = async (why: string) => {
      if (!req.internal) await this.removeDns(id).catch(() => {});
      await this.managers.delete(slot.managerUrl, id).catch((err: unknown) => log.warn({ err: describe(err) }, 'removing the container failed; the host reconciles it'));
      await this.store.release(id);
      log.warn({ why }, 'create undone');
    };
    if (!req.internal) {
      try {
        // Marked before the write: a crash after it still leaves the reconciler a reason to clean up.
        await this.store.setFields(id, { dns: '1' });
        const type = isIP(slot.address) === 6 ? 'AAAA' : 'A';
        await this.dns.change([
          { action: 'UPSERT', name: id, type, values: [slot.address], ttl: this.config.dnsTtl },
          { action: 'UPSERT', name: `*.${id}`, type, values: [slot.address], ttl: this.config.dnsTtl },
        ]);
      } catch (err) {
        await undo('DNS write failed');
        if (isOmegaError(err)) throw err;
        throw new OmegaError('DNS_UNAVAILABLE', describe(err), { cause: err });
      }
    }
    const expiresAtMs = Date.now() + timeoutSeconds * 1000;
    const moved = await this.store.transition(id, ['creating'], 'running', {
      hostPort: String(info.hostPort),
      containerId: info.containerId,
      expiresAtMs: String(expiresAtMs),
    });
    if (!moved) {
      // Deleted or lost (its host's heartbeat lapsed) while we were creating it.
      await undo('the sandbox left the creating state meanwhile');
      throw new OmegaError('MANAGER_UNAVAILABLE', 'the sandbox\'s host was lost, or the sandbox deleted, while it was being created');
    }
    await this.store.setExpiry(id, expiresAtMs);
    const rec = await this.store.get(id);
    log.info({ hostPort: info.hostPort, source: info.source }, 'sandbox created');
    return { ...this.view(rec!), token, source: info.source };
  }

  async get(id: string): Promise<SandboxView> {
    const r = await this.store.get(id);
    if (!r || r.internal) throw new OmegaError('SANDBOX_NOT_FOUND', `no sandbox ${id}`);
    return this.view(r);
  }

  /** Delete everything of a sandbox; false when there was nothing. Safe to repeat and to race. */
  async delete(id: string, why = 'deleted'): Promise<boolean> {
    const r = await this.store.get(id);
    if (!r) {
      await this.store.dropIndex(id);
      return false;
    }
    const log = this.log.child({ sandboxId: id });
    if (r.state !== 'lost') await this.store.transition(id, ['creating', 'running', 'deleting'], 'deleting');
    if (r.dns) {
      await this.removeDns(id);
      await this.store.setFields(id, { dns: '0' });
    }
    if (r.state !== 'lost') {
      try {
        await this.managers.delete(r.managerUrl, id);
      } catch (err) {
        const host = (await this.store.hosts()).find((h) => h.hostId === r.host);
        // A host that is gone cannot be asked; its manager reaps the container as an orphan if it returns.
        if (host?.alive) {
          log.warn({ err: describe(err) }, 'the manager did not delete the sandbox; it stays deleting and is retried');
          throw err instanceof UpstreamError ? new OmegaError('MANAGER_UNAVAILABLE', err.message, { cause: err }) : err;
        }
      }
    }
    await this.store.release(id);
    log.info({ why }, 'sandbox deleted');
    return true;
  }

  async removeDns(id: string): Promise<void> {
    await this.dns.remove(id);
    await this.dns.remove(`*.${id}`);
  }

  /** Set the sandbox to live `seconds` more from now. */
  async extend(id: string, seconds: number): Promise<SandboxView> {
    const r = await this.store.get(id);
    if (!r || r.internal || r.state === 'deleting' || r.state === 'lost') throw new OmegaError('SANDBOX_NOT_FOUND', `no live sandbox ${id}`);
    const expiresAtMs = Date.now() + Math.min(seconds, this.config.maxTimeoutSeconds) * 1000;
    await this.store.setExpiry(id, expiresAtMs);
    return this.view({ ...r, expiresAtMs });
  }

  /** A page of sandboxes in creation order, filtered; `cursor` continues the previous page. */
  async list(filter: { state?: SandboxState; metadata?: Record<string, string> }, limit: number, cursor?: string): Promise<{ sandboxes: SandboxView[]; nextCursor: string | null }> {
    let at = cursor ? decodeCursor(cursor) : null;
    const out: SandboxView[] = [];
    for (;;) {
      const page = await this.store.page(at, 200);
      if (!page.length) return { sandboxes: out, nextCursor: null };
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
    }
  }
}

function encodeCursor(at: { ms: number; id: string }): string {
  return Buffer.from(`${at.ms}:${at.id}`).toString('base64url');
}

function decodeCursor(c: string): { ms: number; id: string } {
  const m = /^(\d+):([a-z0-9-]+)$/.exec(Buffer.from(c, 'base64url').toString());
  if (!m) throw new OmegaError('VALIDATION_FAILED', 'cursor is not one this API gave out');
  return { ms: Number(m[1]), id: m[2]! };
}

export function describe(err: unknown): string {
  if (err instanceof UpstreamError) return `${err.code}: ${err.message}`;
  if (err instanceof Error) return err.message;
  return String(err);
}
