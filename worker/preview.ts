import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { DNS_LABEL, PREVIEW_COOKIE, PREVIEW_TOKEN_PARAM } from '../src/protocol/worker.js';
import { bearer, parseCookies, secretEquals, type Credentials } from './auth.js';
import type { WorkerLogger } from './log.js';
import { refuse, sendError } from './respond.js';

/**
 * Preview URLs: a request whose Host is `<port>-<id>.<zone>` (one label,
 * under the zone's wildcard certificate; the TLS path) or `<port>.<id>.<zone>`
 * (the plain-http path) is passed to whatever listens on that port inside
 * the sandbox. Private unless made
 * public with preview.setPublic, or every port public when the sandbox was
 * created with publicPreviews (E2B's previews are public, and its clients
 * open them with no token): the sandbox token as a bearer, or once as
 * `?omega_token=` which trades it for an HttpOnly cookie bound to that host.
 *
 * The upstream sees `Host: localhost:<port>` (dev servers such as Vite and
 * webpack refuse unknown hosts) and the original in X-Forwarded-Host.
 */

export interface PreviewTarget {
  port: number;
  sandboxId: string;
  /** The request's host without any :port, lower case. */
  host: string;
}

// RFC 7230 §6.1: connection-specific headers are not forwarded by a proxy.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade']);
/** `<port>-<id>` or `<port>.<id>` before the zone. */
const PREVIEW_HOST = new RegExp(`^([1-9]\\d{0,4})[-.](${DNS_LABEL})$`);

export class Preview {
  readonly publicPorts = new Set<number>();
  /** Every port public: set by the claim of a sandbox created with publicPreviews, for its life. */
  allPublic = false;

  constructor(
    private readonly zone: string,
    private readonly creds: Credentials,
    private readonly log: WorkerLogger,
    /** Reached only over TLS (through the ingress): say https upstream, and set Secure cookies. */
    private readonly https = false,
    /** A token offered in the URL, checked against its source's failures (the worker's per-source limit); plain check without. */
    private readonly checkOffered: (req: IncomingMessage, token: string) => 'ok' | 'wrong' | number = (_req, token) => (creds.check(token) ? 'ok' : 'wrong'),
  ) {}

  /** The preview a Host header names, or null when it is not a preview host. */
  match(hostHeader: string | undefined): PreviewTarget | null {
    if (!hostHeader) return null;
    const host = hostHeader.toLowerCase().replace(/:\d+$/, '').replace(/\.$/, '');
    const suffix = `.${this.zone}`;
    if (!host.endsWith(suffix)) return null;
    const m = PREVIEW_HOST.exec(host.slice(0, -suffix.length));
    if (!m) return null;
    const port = Number(m[1]);
    if (port < 1 || port > 65535) return null;
    return { port, sandboxId: m[2]!, host };
  }

  handleRequest(req: IncomingMessage, res: ServerResponse, target: PreviewTarget): void {
    if (target.sandboxId !== this.creds.sandboxId) return sendError(res, 404, 'NOT_FOUND', `this worker does not serve sandbox ${target.sandboxId}`);
    const url = new URL(req.url ?? '/', 'http://x');
    const offered = url.searchParams.get(PREVIEW_TOKEN_PARAM);
    if (offered !== null) {
      const auth = this.checkOffered(req, offered);
      if (typeof auth === 'number') {
        res.setHeader('retry-after', String(auth));
        return sendError(res, 429, 'TOO_MANY_AUTH_FAILURES', `too many wrong or missing tokens from this address; retry in ${auth} s`);
      }
      if (auth === 'wrong') return sendError(res, 401, 'UNAUTHORIZED', 'the omega_token is not this sandbox\'s token');
      // Trade the token in the URL for a cookie, and drop it from the address bar (and from history and Referer).
      url.searchParams.delete(PREVIEW_TOKEN_PARAM);
      const secure = this.https || req.headers['x-forwarded-proto'] === 'https' ? '; Secure' : '';
      res.writeHead(302, {
        location: url.pathname + url.search,
        'set-cookie': `${PREVIEW_COOKIE}=${this.creds.previewCookie(target.host)}; Path=/; HttpOnly; SameSite=Lax${secure}`,
        'cache-control': 'no-store',
      });
      res.end();
      return;
    }
    if (!this.allowed(req, target)) {
      return sendError(res, 401, 'UNAUTHORIZED', `port ${target.port} is private: open it with ?${PREVIEW_TOKEN_PARAM}=<sandbox token> or an Authorization: Bearer header`);
    }
    void this.forward(req, res, target);
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, target: PreviewTarget): void {
    socket.on('error', () => socket.destroy());
    if (target.sandboxId !== this.creds.sandboxId) return refuse(socket, 404, 'Not Found');
    const url = new URL(req.url ?? '/', 'http://x');
    const offered = url.searchParams.get(PREVIEW_TOKEN_PARAM);
    // No redirect is possible during an upgrade: a valid ?omega_token= opens this one connection.
    const auth = offered !== null ? this.checkOffered(req, offered) : this.allowed(req, target) ? 'ok' : 'wrong';
    if (typeof auth === 'number') return refuse(socket, 429, 'Too Many Requests', `too many wrong or missing tokens from this address; retry in ${auth} s\n`);
    if (auth === 'wrong') return refuse(socket, 401, 'Unauthorized');
    url.searchParams.delete(PREVIEW_TOKEN_PARAM);
    void connectUpstream(target.port).then(
      (upstream) => {
        const lines = [`${req.method} ${url.pathname}${url.search} HTTP/1.1`];
        for (const [name, value] of Object.entries(this.upstreamHeaders(req, target, true))) {
          for (const v of Array.isArray(value) ? value : [value]) if (v !== undefined) lines.push(`${name}: ${v}`);
        }
        upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
        if (head.length) upstream.write(head);
        upstream.pipe(socket).pipe(upstream);
        upstream.on('error', () => socket.destroy());
        socket.on('close', () => upstream.destroy());
        upstream.on('close', () => socket.destroy());
      },
      () => refuse(socket, 502, 'Bad Gateway', `nothing is listening on port ${target.port} inside the sandbox`),
    );
  }

  isPublic(port: number): boolean {
    return this.allPublic || this.publicPorts.has(port);
  }

  private allowed(req: IncomingMessage, target: PreviewTarget): boolean {
    if (this.isPublic(target.port)) return true;
    if (this.creds.check(bearer(req))) return true;
    return secretEquals(parseCookies(req.headers.cookie).get(PREVIEW_COOKIE), this.creds.previewCookie(target.host));
  }

  private async forward(req: IncomingMessage, res: ServerResponse, target: PreviewTarget): Promise<void> {
    let upstream: net.Socket;
    try {
      upstream = await connectUpstream(target.port);
    } catch {
      return sendError(res, 502, 'PREVIEW_UNREACHABLE', `nothing is listening on port ${target.port} inside the sandbox`);
    }
    const proxyReq = httpRequest({
      method: req.method,
      path: req.url,
      headers: this.upstreamHeaders(req, target, false),
      createConnection: () => upstream,
    });
    proxyReq.on('response', (up) => {
      const headers: IncomingHttpHeaders = {};
      for (const [k, v] of Object.entries(up.headers)) if (!HOP_BY_HOP.has(k)) headers[k] = v;
      res.writeHead(up.statusCode ?? 502, up.statusMessage, headers as Record<string, string | string[]>);
      up.pipe(res);
      up.on('error', () => res.destroy());
    });
    proxyReq.on('error', (err) => {
      this.log.debug({ err, port: target.port }, 'preview request failed');
      if (!res.headersSent) sendError(res, 502, 'PREVIEW_UNREACHABLE', `the server on port ${target.port} closed the connection: ${err.message}`);
      else res.destroy();
    });
    res.on('close', () => {
      if (!res.writableFinished) proxyReq.destroy();
    });
    req.pipe(proxyReq);
  }

  /** The client's headers minus hop-by-hop ones and the worker's own credentials, plus X-Forwarded-*. */
  private upstreamHeaders(req: IncomingMessage, target: PreviewTarget, upgrade: boolean): IncomingHttpHeaders {
    const out: IncomingHttpHeaders = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (k === 'host' || (!upgrade && HOP_BY_HOP.has(k))) continue;
      if (k === 'authorization' && this.creds.check(bearer(req))) continue;
      if (k === 'cookie') {
        const rest = String(v)
          .split(';')
          .filter((c) => c.split('=')[0]!.trim() !== PREVIEW_COOKIE)
          .join(';')
          .trim();
        if (rest) out.cookie = rest;
        continue;
      }
      out[k] = v;
    }
    out.host = `localhost:${target.port}`;
    out['x-forwarded-host'] = req.headers.host;
    out['x-forwarded-proto'] = this.https ? 'https' : (req.headers['x-forwarded-proto'] ?? 'http');
    out['x-forwarded-for'] = [req.headers['x-forwarded-for'], req.socket.remoteAddress].filter(Boolean).join(', ');
    return out;
  }
}

/** A connection to the port on the loopback: IPv4 first, then ::1 (Node's `localhost` may bind only that). */
function connectUpstream(port: number): Promise<net.Socket> {
  const attempt = (host: string) =>
    new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host, port });
      s.once('connect', () => {
        s.removeListener('error', reject);
        resolve(s);
      });
      s.once('error', reject);
    });
  return attempt('127.0.0.1').catch(() => attempt('::1'));
}
