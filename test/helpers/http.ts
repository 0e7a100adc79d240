import { Agent, fetch as undiciFetch } from 'undici';

/** The answer of one API call in a test: status, body (parsed JSON, else text) and headers. */
export interface CallResult {
  status: number;
  body: any;
  headers: Headers;
}

export type Call = (method: string, path: string, body?: unknown, token?: string | null) => Promise<CallResult>;

/**
 * A caller of one of Omega's HTTP APIs at `base`, sending `token` as a bearer
 * unless a call gives another (or null for none).
 */
export function apiCaller(base: string, token: string, opts: { ca?: string } = {}): Call {
  // An https API is checked against the test's CA only (and nothing else is trusted).
  const dispatcher = opts.ca ? new Agent({ connect: { ca: opts.ca } }) : undefined;
  return async (method, path, body, callToken = token) => {
    const headers: Record<string, string> = {};
    if (callToken) headers.authorization = `Bearer ${callToken}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const init = { method, headers, body: body === undefined ? undefined : JSON.stringify(body) };
    const res = dispatcher ? await undiciFetch(`${base}${path}`, { ...init, dispatcher }) : await fetch(`${base}${path}`, init);
    const text = await res.text();
    let parsed: any = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // metrics and other text bodies
    }
    return { status: res.status, body: parsed, headers: res.headers };
  };
}
