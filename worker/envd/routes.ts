import type { ServerResponse } from 'node:http';

/**
 * What the worker needs of the E2B agent before the agent is loaded
 * (worker/envd/lazy.ts): which paths are its, and its error answer. It
 * imports nothing of Connect or protobuf, so it costs the worker nothing.
 */

const RPC_PATH = /^\/(?:filesystem\.Filesystem|process\.Process)\/[A-Za-z]+$/;

/** Whether a path is the agent's (on the worker's own host; on the agent's host every path is). */
export function ownsEnvdPath(path: string): boolean {
  return path === '/health' || path === '/files' || RPC_PATH.test(path);
}

export function isEnvdRpcPath(path: string): boolean {
  return RPC_PATH.test(path);
}

/** The agent's error for plain HTTP routes: E2B's JSON {code, message} with the status. */
export function sendEnvdError(res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void {
  if (res.headersSent) return void res.destroy();
  const body = JSON.stringify({ code: status, message });
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', ...headers });
  res.end(body);
}
