import { Agent, request, type Dispatcher } from 'undici';
import type { Created, SandboxView, SnapshotView, WorkspaceView } from '../../src/protocol/master.js';

export type { Created, SandboxView, SnapshotView, WorkspaceView };

/** One host of `GET /v1/hosts`. */
export interface HostInfo {
  id: string;
  address: string;
  managerUrl: string;
  load: number;
  capacity: number;
  health: 'alive' | 'draining' | 'stopped' | 'lost';
  startedAt: string | null;
  lostAt: string | null;
}

export interface CreateOptions {
  template: string;
  timeoutSeconds?: number;
  idleSeconds?: number;
  metadata?: Record<string, string>;
  workspace?: string;
}

export interface ListFilter {
  state?: string;
  metadata?: Record<string, string>;
}

/** The master answered with an error: its status and its `{code, message}` body, as sent. */
export class MasterApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** The master's error JSON as it came (or a stand-in when the body was not JSON). */
    readonly body: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'MasterApiError';
  }
}

/** Nothing answered at the master's URL (refused, unresolvable, timed out). */
export class MasterUnreachableError extends Error {
  readonly code = 'MASTER_UNREACHABLE';
  constructor(
    readonly url: string,
    /** The network's own code, e.g. ECONNREFUSED, ENOTFOUND, UND_ERR_HEADERS_TIMEOUT. */
    readonly reason: string,
    options: { cause: unknown },
  ) {
    super(`cannot reach the master at ${url}: ${reason}`, options);
    this.name = 'MasterUnreachableError';
  }
}

/** A create may wait for a new host (the master's OMEGA_SCALE_OUT_WAIT_MS) and a cold start. */
const CREATE_TIMEOUT_MS = 300_000;
const TIMEOUT_MS = 60_000;
/** The master's largest page (listQuerySchema). */
export const MAX_PAGE = 1000;

/** The first network error code found in an error, its causes or an AggregateError's members. */
function networkCode(err: unknown, depth = 0): string | undefined {
  if (!err || typeof err !== 'object' || depth > 4) return undefined;
  const e = err as { code?: unknown; cause?: unknown; errors?: unknown[]; name?: string };
  if (typeof e.code === 'string') return e.code;
  if (e.name === 'TimeoutError') return 'timed out';
  for (const inner of e.errors ?? []) {
    const c = networkCode(inner, depth + 1);
    if (c) return c;
  }
  return networkCode(e.cause, depth + 1);
}

/**
 * The master's public API over HTTP (undici, one keep-alive agent).
 * Every answer is returned as the master sent it; every failure is one of
 * the two errors above.
 */
export class MasterClient {
  private readonly agent: Dispatcher;

  constructor(
    readonly url: string,
    private readonly token: string | undefined,
    agent?: Dispatcher,
    /** Each call's time limit unless the call gives its own. */
    private readonly timeoutMs = TIMEOUT_MS,
  ) {
    this.agent = agent ?? new Agent({ keepAliveTimeout: 5_000 });
  }

  async call<T>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown, timeoutMs = this.timeoutMs): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Dispatcher.ResponseData;
    try {
      res = await request(`${this.url}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        dispatcher: this.agent,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      throw new MasterUnreachableError(this.url, networkCode(err) ?? (err as Error).message, { cause: err });
    }
    const text = await res.body.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      parsed = undefined;
    }
    if (res.statusCode >= 400) {
      const b = (parsed && typeof parsed === 'object' ? parsed : { statusCode: res.statusCode, message: text.slice(0, 200) }) as Record<string, unknown>;
      const code = typeof b.code === 'string' ? b.code : `HTTP_${res.statusCode}`;
      const message = typeof b.message === 'string' && b.message ? b.message : `${method} ${path} answered ${res.statusCode}`;
      throw new MasterApiError(res.statusCode, code, message, b);
    }
    if (parsed === undefined) {
      throw new MasterApiError(res.statusCode, 'MASTER_BAD_RESPONSE', `${method} ${path} answered ${res.statusCode} with a body that is not JSON; is ${this.url} an Omega master?`, {});
    }
    return parsed as T;
  }

  create(o: CreateOptions): Promise<Created> {
    return this.call('POST', '/v1/sandboxes', o, CREATE_TIMEOUT_MS);
  }

  get(id: string): Promise<SandboxView> {
    return this.call('GET', `/v1/sandboxes/${encodeURIComponent(id)}`);
  }

  delete(id: string): Promise<{ id: string; deleted: boolean }> {
    return this.call('DELETE', `/v1/sandboxes/${encodeURIComponent(id)}`);
  }

  snapshot(id: string): Promise<SnapshotView> {
    return this.call('POST', `/v1/sandboxes/${encodeURIComponent(id)}/snapshots`, undefined, CREATE_TIMEOUT_MS);
  }

  snapshots(): Promise<{ snapshots: SnapshotView[] }> {
    return this.call('GET', '/v1/snapshots');
  }

  deleteSnapshot(id: string): Promise<{ id: string; deleted: boolean }> {
    return this.call('DELETE', `/v1/snapshots/${encodeURIComponent(id)}`);
  }

  workspaces(): Promise<{ workspaces: WorkspaceView[] }> {
    return this.call('GET', '/v1/workspaces');
  }

  deleteWorkspace(name: string): Promise<{ name: string; deleted: boolean }> {
    return this.call('DELETE', `/v1/workspaces/${encodeURIComponent(name)}`, undefined, CREATE_TIMEOUT_MS);
  }

  pause(id: string, memory: boolean): Promise<SandboxView> {
    return this.call('POST', `/v1/sandboxes/${encodeURIComponent(id)}/pause`, { memory }, CREATE_TIMEOUT_MS);
  }

  resume(id: string): Promise<SandboxView> {
    return this.call('POST', `/v1/sandboxes/${encodeURIComponent(id)}/resume`, {}, CREATE_TIMEOUT_MS);
  }

  hosts(): Promise<{ hosts: HostInfo[] }> {
    return this.call('GET', '/v1/hosts');
  }

  /** One page of the listing, from `cursor`. */
  page(filter: ListFilter, limit: number, cursor?: string): Promise<{ sandboxes: SandboxView[]; nextCursor: string | null }> {
    const q = new URLSearchParams({ limit: String(limit) });
    if (filter.state) q.set('state', filter.state);
    for (const [k, v] of Object.entries(filter.metadata ?? {})) q.set(`metadata.${k}`, v);
    if (cursor) q.set('cursor', cursor);
    return this.call('GET', `/v1/sandboxes?${q}`);
  }

  /** Every sandbox that matches, following the master's cursor, or the first `limit` of them. */
  async list(filter: ListFilter, limit = Infinity, pageSize = MAX_PAGE): Promise<SandboxView[]> {
    const out: SandboxView[] = [];
    let cursor: string | undefined;
    while (out.length < limit) {
      const page = await this.page(filter, Math.min(pageSize, limit - out.length), cursor);
      out.push(...page.sandboxes);
      if (!page.nextCursor) break;
      cursor = page.nextCursor;
    }
    return out;
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}
