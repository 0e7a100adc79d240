import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { once, type Component } from '../src/lifecycle.js';
import type { Logger } from '../src/log.js';
import { splitPortLabel } from '../src/protocol/dns.js';
import { proxyLine } from '../src/protocol/proxy.js';
import { ConnectionCounts, refusalWarner } from '../src/throttle.js';
import type { CertBundle } from '../src/tls/bundle.js';

/**
 * The host's one public port: TLS for every sandbox on the host, routed by
 * the name the client asked for (SNI) to that sandbox's worker.
 *
 *   <id>.<zone>         the sandbox's agent (its worker's HTTP and WebSocket)
 *   <port>-<id>.<zone>  the preview of <port> (the worker proxies it)
 *
 * Past the handshake the worker is told who the client is (a PROXY protocol
 * line: its per-client limits need the client's address, not the
 * ingress's), then the bytes are piped both ways to the worker's port: HTTP/1.1, WebSocket upgrades and streaming all pass as they
 * are, the worker does the HTTP (its preview rules, tokens and Host check),
 * and the ingress parses nothing it need not. A connection carries one
 * sandbox: a request on it naming another (Host) reaches this one's worker,
 * which serves only its own id. What cannot be routed is answered here on the
 * TLS connection, never passed on, as JSON `{code, message}` (the shape of
 * the agent's and E2B's errors): 421 without a name; for a sandbox not
 * running on this host (deleted, expired, paused, or an id never made: the
 * zone's wildcard sends every name no sandbox has to the hosts) 502 with
 * `sandboxId`, which is what E2B's own proxy answers and what its SDK turns
 * into its own errors (a TimeoutError "The sandbox was not found: ...", and
 * SandboxNotFoundError when a command starts), where a 404 would read as a
 * missing file.
 */

export interface IngressRoute {
  /** Where the worker listens, on this machine. */
  host: string;
  port: number;
}

export interface IngressOptions {
  listen: { host: string; port: number };
  zone: string;
  /** Time for the client's first byte and the whole handshake (slow or silent clients are dropped). */
  handshakeTimeoutMs: number;
  maxConnections: number;
  /** Connections one client address may hold open at once; more are closed before their handshake. */
  maxConnectionsPerSource: number;
  /** The worker of a running sandbox on this host, or null. */
  route(sandboxId: string): Promise<IngressRoute | null>;
}


export interface Refusal {
  status: number;
  message: string;
  sandboxId?: string;
}

/** E2B's words for a sandbox that is not running (its SDK prefixes them to its own advice). */
export const SANDBOX_NOT_FOUND = 'The sandbox was not found';

/** The sandbox a TLS server name is for, or why it cannot be served. */
export function sandboxOfName(servername: string | false | null | undefined, zone: string): { sandboxId: string } | Refusal {
  if (!servername) return { status: 421, message: 'no server name (SNI) in the TLS hello: connect by name, https://<id>.' + zone + '/' };
  const name = servername.toLowerCase().replace(/\.$/, '');
  if (!name.endsWith(`.${zone}`)) return { status: 421, message: `${name} is not served here: sandboxes are <id>.${zone}` };
  const label = name.slice(0, -(zone.length + 1));
  if (label.includes('.')) return { status: 404, message: `${name}: previews are <port>-<id>.${zone} (one label) over https` };
  return { sandboxId: splitPortLabel(label)?.base ?? label };
}

export class Ingress implements Component {
  private readonly front: net.Server;
  private readonly tlsServer: tls.Server;
  /** Answers refusals over TLS, as HTTP, so browsers and curl show why. */
  private readonly refusals = createHttpServer({ requestTimeout: 10_000 }, (req, res) => this.refuse(req, res));
  private readonly refused = new WeakMap<object, Refusal>();
  private readonly sockets = new Set<net.Socket>();
  private readonly perSource = new ConnectionCounts();
  private readonly refusedPerSource: (source: string) => void;
  /** Raw sockets whose handshake has not finished, by peer address:port. */
  private readonly raw = new Map<string, net.Socket>();
  private hasCertificate = false;
  port = 0;

  constructor(
    private readonly opts: IngressOptions,
    private readonly log: Logger,
  ) {
    this.tlsServer = tls.createServer({
      handshakeTimeout: opts.handshakeTimeoutMs,
      // The worker speaks HTTP/1.1; saying so keeps a browser from trying h2 on a pipe that cannot carry it.
      ALPNProtocols: ['http/1.1'],
      minVersion: 'TLSv1.2',
    });
    this.tlsServer.on('secureConnection', (s) => void this.routeConnection(s));
    this.tlsServer.on('tlsClientError', (err, s) => this.clientError(err, s));
    this.front = net.createServer({ noDelay: true }, (s) => this.accept(s));
    this.front.maxConnections = opts.maxConnections;
    this.refusedPerSource = refusalWarner((f) => this.log.warn(f, 'ingress: refusing connections past the per-source limit'), opts.maxConnectionsPerSource);
  }

  /** Serve this certificate to new handshakes; open connections keep theirs (nothing drops). */
  setCertificate(b: CertBundle): void {
    this.tlsServer.setSecureContext({ cert: b.certPem, key: b.keyPem });
    this.hasCertificate = true;
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.front.once('error', reject);
      this.front.listen(this.opts.listen.port, this.opts.listen.host, () => {
        this.front.off('error', reject);
        resolve();
      });
    });
    this.port = (this.front.address() as net.AddressInfo).port;
    this.front.on('error', (err) => this.log.error({ err }, 'ingress listener failed'));
  }

  /**
   * Hand a connection to TLS, keeping its raw socket by its peer's address
   * and port (the TLS socket has the same), so that a client that speaks
   * plain HTTP to this port can be told so in plain HTTP.
   */
  private accept(s: net.Socket): void {
    const source = s.remoteAddress ?? '';
    if (!this.perSource.tryOpen(source, this.opts.maxConnectionsPerSource)) {
      s.destroy();
      this.refusedPerSource(source);
      return;
    }
    s.once('close', () => this.perSource.close(source));
    this.track(s);
    s.on('error', () => s.destroy());
    if (!this.hasCertificate) {
      this.log.warn('a TLS client came before the first certificate; closed');
      s.destroy();
      return;
    }
    const peer = `${s.remoteAddress}:${s.remotePort}`;
    this.raw.set(peer, s);
    s.once('close', () => this.raw.delete(peer));
    this.tlsServer.emit('connection', s);
  }

  /** A handshake that failed: plain HTTP is answered in plain HTTP, anything else is closed. */
  private clientError(err: Error, s: tls.TLSSocket): void {
    const code = (err as NodeJS.ErrnoException).code;
    const raw = this.raw.get(`${s.remoteAddress}:${s.remotePort}`);
    this.log.debug({ err: { code, message: err.message }, remote: s.remoteAddress }, 'TLS handshake failed');
    if (code === 'ERR_SSL_HTTP_REQUEST' && raw && !raw.destroyed) {
      raw.end('HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nThis port speaks TLS: use https:// or wss://\n');
      return;
    }
    s.destroy();
  }

  private async routeConnection(s: tls.TLSSocket): Promise<void> {
    this.raw.delete(`${s.remoteAddress}:${s.remotePort}`);
    s.on('error', () => s.destroy());
    // The handshake is done; from here the worker's own timeouts govern (a WebSocket may be idle for long).
    s.setTimeout(0);
    const target = sandboxOfName(s.servername, this.opts.zone);
    if ('status' in target) return this.answer(s, target);
    s.pause();
    let route: IngressRoute | null;
    try {
      route = await this.opts.route(target.sandboxId);
    } catch (err) {
      this.log.warn({ err, sandboxId: target.sandboxId }, 'ingress: looking the sandbox up failed');
      return this.answer(s, { status: 503, message: 'this host cannot look the sandbox up right now; retry shortly' });
    }
    if (!route) return this.answer(s, { status: 502, message: SANDBOX_NOT_FOUND, sandboxId: target.sandboxId });
    const up = net.connect({ host: route.host, port: route.port, noDelay: true });
    this.track(up);
    let connected = false;
    up.once('connect', () => {
      connected = true;
      up.write(proxyLine(s.remoteAddress ?? '', s.remotePort ?? 0, s.localAddress ?? '', s.localPort ?? 0));
      s.pipe(up).pipe(s);
      s.resume();
    });
    up.on('error', (err) => {
      if (connected) return s.destroy();
      this.log.warn({ err, sandboxId: target.sandboxId }, 'ingress: the worker did not answer');
      this.answer(s, { status: 502, message: `the worker of sandbox ${target.sandboxId} did not answer`, sandboxId: target.sandboxId });
    });
    up.on('close', () => s.destroy());
    s.on('close', () => up.destroy());
  }

  /** Read the request (so the client sees the answer, not a reset) and refuse it. */
  private answer(s: tls.TLSSocket, why: Refusal): void {
    this.refused.set(s, why);
    this.refusals.emit('connection', s);
    s.resume();
  }

  private refuse(req: IncomingMessage, res: ServerResponse): void {
    const why = this.refused.get(req.socket) ?? { status: 404, message: 'not found' };
    res.writeHead(why.status, { 'content-type': 'application/json', connection: 'close', 'cache-control': 'no-store' });
    res.end(`${JSON.stringify({ code: why.status, message: why.message, ...(why.sandboxId ? { sandboxId: why.sandboxId } : {}) })}\n`);
  }

  private track(s: net.Socket): void {
    this.sockets.add(s);
    s.once('close', () => this.sockets.delete(s));
  }

  get connections(): number {
    return this.sockets.size;
  }

  /** Stop accepting; close what is open (the sandboxes run on; clients reconnect once a manager serves again). */
  readonly stop = once(async () => {
    const closed = new Promise<void>((r) => this.front.close(() => r()));
    for (const s of this.sockets) s.destroy();
    this.refusals.close();
    await closed;
  });
}
