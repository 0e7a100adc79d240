import { Agent, request } from 'undici';
import { OmegaError, type ErrorCode } from '../src/errors.js';
import type { GitSource, SandboxInfo, SandboxMetrics } from '../src/protocol/manager.js';
import type { Change } from '../src/protocol/dns.js';

/** Most changes in one request to the DNS API (its limit). */
const MAX_CHANGES = 1000;

/** The answer of another Omega API that said no: its status and coded body. */
export class UpstreamError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** The callee's own message, without the call it answered. */
    readonly upstreamMessage = message,
  ) {
    super(message);
    this.name = 'UpstreamError';
  }
}

/**
 * Whether a failed call is known never to have reached its server (the
 * connection was refused or never made), so it changed nothing there and
 * needs no undoing. A timeout or a reset may have been acted on.
 */
export function notDelivered(err: unknown): boolean {
  const cause = (err as { cause?: { code?: string } } | null)?.cause;
  return cause?.code === 'ECONNREFUSED' || cause?.code === 'UND_ERR_CONNECT_TIMEOUT' || cause?.code === 'ENOTFOUND';
}

/**
 * JSON over HTTP to Omega's own APIs (managers, DNS), on one keep-alive
 * agent. Failures keep the callee's code; the network's become `failCode`.
 */
class JsonClient {
  constructor(
    private readonly agent: Agent,
    private readonly token: string | undefined,
    private readonly failCode: ErrorCode,
  ) {}

  async call<T>(method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, body?: unknown, timeoutMs = 10_000): Promise<T> {
    const headers: Record<string, string> = {};
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res;
    try {
      res = await request(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        dispatcher: this.agent,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      throw new OmegaError(this.failCode, `${method} ${new URL(url).origin}: ${(err as Error).message}`, { cause: err });
    }
    const text = await res.body.text();
    let parsed: any = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      parsed = { message: text.slice(0, 200) };
    }
    if (res.statusCode >= 400) {
      throw new UpstreamError(res.statusCode, parsed?.code ?? 'HTTP_' + res.statusCode, `${method} ${new URL(url).pathname}: ${res.statusCode} ${parsed?.message ?? ''}`.trim(), String(parsed?.message ?? ''));
    }
    return parsed as T;
  }
}

export class ManagerClient {
  private readonly http: JsonClient;
  constructor(agent: Agent, token: string | undefined) {
    this.http = new JsonClient(agent, token, 'MANAGER_UNAVAILABLE');
  }

  create(managerUrl: string, body: { id: string; template: string; token: string; internet?: false; env?: Record<string, string>; git?: GitSource; snapshot?: string; autoResume?: true; workspace?: string; publicPreviews?: true }, timeoutMs: number): Promise<SandboxInfo> {
    return this.http.call('POST', `${managerUrl}/v1/sandboxes`, body, timeoutMs);
  }

  async delete(managerUrl: string, id: string, timeoutMs = 30_000): Promise<boolean> {
    const r = await this.http.call<{ deleted: boolean }>('DELETE', `${managerUrl}/v1/sandboxes/${id}`, undefined, timeoutMs);
    return r.deleted;
  }

  /** Write the sandbox's workspace to the snapshot store as `key`. */
  snapshot(managerUrl: string, id: string, key: string, timeoutMs: number): Promise<{ bytes: number }> {
    return this.http.call('POST', `${managerUrl}/v1/sandboxes/${id}/snapshots`, { key }, timeoutMs);
  }

  /** What the sandbox uses now, measured by its host. */
  metrics(managerUrl: string, id: string, timeoutMs = 10_000): Promise<SandboxMetrics> {
    return this.http.call('GET', `${managerUrl}/v1/sandboxes/${id}/metrics`, undefined, timeoutMs);
  }

  /** Freeze (memory) or stop the sandbox's container; idempotent. */
  async pause(managerUrl: string, id: string, kind: 'memory' | 'stopped', timeoutMs = 30_000): Promise<SandboxInfo> {
    return this.http.call('POST', `${managerUrl}/v1/sandboxes/${id}/pause`, { memory: kind === 'memory' }, timeoutMs);
  }

  /** Thaw or start it again (its worker answering); idempotent. The answer's hostPort may be new. */
  async resume(managerUrl: string, id: string, timeoutMs = 60_000): Promise<SandboxInfo> {
    return this.http.call('POST', `${managerUrl}/v1/sandboxes/${id}/resume`, {}, timeoutMs);
  }

  /** Write a named workspace's volume on that host to the snapshot store as `key`. */
  snapshotWorkspace(managerUrl: string, name: string, key: string, timeoutMs: number): Promise<{ bytes: number }> {
    return this.http.call('POST', `${managerUrl}/v1/workspaces/${name}/snapshots`, { key }, timeoutMs);
  }

  /** Remove a named workspace's volume from that host; false when it had none. */
  async deleteWorkspace(managerUrl: string, name: string, timeoutMs = 30_000): Promise<boolean> {
    return (await this.http.call<{ deleted: boolean }>('DELETE', `${managerUrl}/v1/workspaces/${name}`, undefined, timeoutMs)).deleted;
  }

  /** The named workspaces' volumes on that host, with what their files take. */
  async workspaces(managerUrl: string, timeoutMs = 10_000): Promise<Array<{ name: string; bytes: number }>> {
    return (await this.http.call<{ workspaces: Array<{ name: string; bytes: number }> }>('GET', `${managerUrl}/v1/workspaces`, undefined, timeoutMs)).workspaces;
  }

  async list(managerUrl: string): Promise<Array<SandboxInfo & { state: string }>> {
    return (await this.http.call<{ sandboxes: Array<SandboxInfo & { state: string }> }>('GET', `${managerUrl}/v1/sandboxes`)).sandboxes;
  }
}



export class DnsClient {
  private readonly http: JsonClient;
  constructor(
    agent: Agent,
    token: string | undefined,
    private readonly apiUrl: string,
  ) {
    this.http = new JsonClient(agent, token, 'DNS_UNAVAILABLE');
  }

  /** Requests sent to /v1/changes so far (the batching's effect, for tests and benches). */
  changeRequests = 0;
  private readonly pending: Array<{ changes: Change[]; resolve: () => void; reject: (err: unknown) => void }> = [];
  private sending = false;

  /**
   * Apply changes (in one batch of the API, atomically). Changes asked for
   * while a request is in flight go together in the next one (group commit):
   * no wait when it is quiet, and under load, say 10,000 deletes at once, a
   * request a few hundred changes long instead of one per sandbox. Order is
   * kept. A batch the API refuses as bad input is tried again caller by
   * caller, so only the caller whose change is bad fails.
   */
  change(changes: Change[]): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ changes, resolve, reject });
      if (!this.sending) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    this.sending = true;
    while (this.pending.length) {
      const batch = [this.pending.shift()!];
      let size = batch[0]!.changes.length;
      while (this.pending.length && size + this.pending[0]!.changes.length <= MAX_CHANGES) {
        size += this.pending[0]!.changes.length;
        batch.push(this.pending.shift()!);
      }
      try {
        await this.send(batch.flatMap((b) => b.changes));
        for (const b of batch) b.resolve();
      } catch (err) {
        if (batch.length > 1 && err instanceof UpstreamError && err.status < 500) {
          for (const b of batch) await this.send(b.changes).then(b.resolve, b.reject);
        } else {
          for (const b of batch) b.reject(err);
        }
      }
    }
    this.sending = false;
  }

  private async send(changes: Change[]): Promise<void> {
    this.changeRequests++;
    await this.http.call('POST', `${this.apiUrl}/v1/changes`, { changes });
  }

  /** Remove every name in one batch; names already gone are fine. */
  async removeNames(names: string[]): Promise<void> {
    await this.change(names.map((name) => ({ action: 'DELETE', name, ifExists: true })));
  }

  /** Remove a name's records; a name already gone is fine. */
  async remove(name: string): Promise<void> {
    try {
      await this.http.call('DELETE', `${this.apiUrl}/v1/records/${encodeURIComponent(name)}`);
    } catch (err) {
      if (err instanceof UpstreamError && err.status === 404) return;
      throw err;
    }
  }

  /** A name's records, or null when it has none. */
  async get(name: string): Promise<{ records: Array<{ type: string; ttl: number; values: string[] }> } | null> {
    try {
      return await this.http.call('GET', `${this.apiUrl}/v1/records/${encodeURIComponent(name)}`);
    } catch (err) {
      if (err instanceof UpstreamError && err.status === 404) return null;
      throw err;
    }
  }

  /** One page of the names in the zone (relative), from `cursor`. */
  list(prefix: string, cursor?: string): Promise<{ records: Array<{ name: string; records: Array<{ type: string; values: string[] }> }>; nextCursor: string | null }> {
    const q = new URLSearchParams({ prefix, limit: '500', ...(cursor ? { cursor } : {}) });
    return this.http.call('GET', `${this.apiUrl}/v1/records?${q}`);
  }

  /** Which of these names (relative, at most 1,000) have records. */
  async present(names: string[]): Promise<Set<string>> {
    if (!names.length) return new Set();
    const r = await this.http.call<{ present: string[] }>('POST', `${this.apiUrl}/v1/lookup`, { names });
    return new Set(r.present);
  }

  async healthy(): Promise<boolean> {
    try {
      await this.http.call('GET', `${this.apiUrl}/healthz`, undefined, 2000);
      return true;
    } catch {
      return false;
    }
  }
}
