/**
 * The master's /v1 API, same origin, with the API token as a bearer. The
 * shapes are the server's own (src/protocol/master.ts, which imports nothing).
 */
import type { Created, SandboxState, SandboxView } from '../src/protocol/master.js';

export type { Created, SandboxState, SandboxView };

/** A failed call: `status` 0 when the master could not be reached at all. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export class MasterApi {
  constructor(private readonly token: () => string | null) {}

  async call<T>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = {};
    const token = this.token();
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
    } catch (err) {
      throw new ApiError(0, 'UNREACHABLE', `the master did not answer: ${(err as Error).message}`);
    }
    const text = await res.text();
    let parsed: any = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      // not JSON: a proxy's error page, say
    }
    if (!res.ok) {
      if (res.status === 401) {
        throw new ApiError(401, 'UNAUTHORIZED', token ? 'the master refused the API token' : 'the master needs an API token');
      }
      throw new ApiError(res.status, parsed?.code ?? `HTTP_${res.status}`, parsed?.message ?? (text.slice(0, 200) || res.statusText));
    }
    return parsed as T;
  }

  async templates(): Promise<string[]> {
    return (await this.call<{ templates: string[] }>('GET', '/v1/templates')).templates;
  }

  create(template: string): Promise<Created> {
    return this.call<Created>('POST', '/v1/sandboxes', { template });
  }

  get(id: string): Promise<SandboxView> {
    return this.call<SandboxView>('GET', `/v1/sandboxes/${encodeURIComponent(id)}`);
  }

  pause(id: string): Promise<SandboxView> {
    return this.call<SandboxView>('POST', `/v1/sandboxes/${encodeURIComponent(id)}/pause`, {});
  }

  resume(id: string): Promise<SandboxView> {
    return this.call<SandboxView>('POST', `/v1/sandboxes/${encodeURIComponent(id)}/resume`, {});
  }

  delete(id: string): Promise<{ id: string; deleted: boolean }> {
    return this.call('DELETE', `/v1/sandboxes/${encodeURIComponent(id)}`);
  }
}
