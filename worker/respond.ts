import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { WorkerErrorCode } from '../src/protocol/worker.js';

/** A JSON response; no caching, as every answer here is about live state. */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

/** The worker's HTTP error shape: `{code, message}` with a code from the protocol registry. */
export function sendError(res: ServerResponse, status: number, code: WorkerErrorCode, message: string): void {
  if (status === 401 && !res.headersSent) res.setHeader('www-authenticate', 'Bearer');
  sendJson(res, status, { code, message });
}

/** End a refused upgrade with a plain HTTP response; nothing else is sent. */
export function refuse(socket: Duplex, status: number, reason: string, body = ''): void {
  if (socket.destroyed) return;
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
}
