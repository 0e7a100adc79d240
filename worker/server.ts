import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { parseProxyLine } from '../src/protocol/proxy.js';
import { PROTOCOL_VERSION, SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX, type Health } from '../src/protocol/worker.js';
import { ConnectionCounts, FailureLimiter } from '../src/throttle.js';
import { bearer, Credentials, upgradeToken } from './auth.js';
import { handleClaim } from './claim.js';
import { Clients } from './clients.js';
import { Clone } from './clone.js';
import type { WorkerConfig } from './config.js';
import { Dispatcher } from './dispatch.js';
import { ENVD_PORT } from '../src/protocol/envd/version.js';
import { LazyEnvd } from './envd/lazy.js';
import { WorkerError } from './errors.js';
import { Files } from './files.js';
import type { WorkerLogger } from './log.js';
import { methods } from './methods.js';
import { Workspace } from './paths.js';
import { Preview, type PreviewTarget } from './preview.js';
import { Processes } from './processes.js';
import { refuse, sendError, sendJson } from './respond.js';
import { Session } from './session.js';
import { Terminals } from './terminals.js';
import { SandboxUser } from './user.js';
import { Attribution, TreeWatcher } from './watch.js';

/** How long stop() gives programs between SIGTERM/SIGHUP and SIGKILL. */
const STOP_GRACE_MS = 2000;

/** Time for a connection through the ingress to send its PROXY line and first bytes. */
const FIRST_BYTES_TIMEOUT_MS = 10_000;

/**
 * The in-sandbox worker: one port serving /healthz, the claim, the
 * authenticated WebSocket protocol and preview proxying. Built here, started
 * by start(), stopped once by stop().
 */
export class Worker {
  readonly creds: Credentials;
  private lastActivityMs = Date.now();
  private server: Server | null = null;
  /** The port: connections are counted per source and handed to `server`. */
  private listener: net.Server | null = null;
  /** Each connection's client: the PROXY line's source behind the ingress, else the peer. */
  private readonly sources = new WeakMap<object, string>();
  private readonly connectionsPerSource = new ConnectionCounts();
  private readonly authFailures = new FailureLimiter();
  private wss: WebSocketServer | null = null;
  private watcher: TreeWatcher | null = null;
  private clone: Clone | null = null;
  private terminals: Terminals | null = null;
  private processes: Processes | null = null;
  private envd: LazyEnvd | null = null;
  private readonly clients = new Clients();
  private readonly sessions = new Set<Session>();
  private stopping: Promise<void> | null = null;

  constructor(
    private readonly config: WorkerConfig,
    private readonly log: WorkerLogger,
  ) {
    this.creds = new Credentials(config.token, config.sandboxId);
  }

  async start(): Promise<void> {
    const { config, log } = this;
    const user = SandboxUser.start(config.user);
    const ws = await Workspace.open(config.workspace);
    // A new workspace filesystem's root is root's: user code (and its clone) must be able to write there.
    await user.own(ws.root);
    const attribution = new Attribution();
    const files = new Files(ws, attribution, config.maxFileBytes, user);
    this.watcher = new TreeWatcher(
      ws.root,
      (path, kind, type) => {
        const by = attribution.author(path);
        this.clients.broadcast('fs.changed', { path, kind, type, by }, by);
      },
      log.child({ component: 'watch' }),
      config.maxWatchedDirs,
    );
    await this.watcher.start();
    const checkLimit = () => {
      if (this.terminals!.table.running + this.processes!.table.running >= config.maxRunning) {
        throw new WorkerError('LIMIT_REACHED', `at most ${config.maxRunning} terminals and processes may run at once`);
      }
    };
    const jobOpts = { scrollbackBytes: config.scrollbackBytes, keepExited: config.keepExited, checkLimit, resolveDir: (rel: string) => files.directory(rel), user };
    this.terminals = new Terminals({ ...jobOpts, log: log.child({ component: 'terminals' }) });
    this.processes = new Processes({ ...jobOpts, log: log.child({ component: 'processes' }) });
    const preview = new Preview(config.zone, this.creds, log.child({ component: 'preview' }), config.https, (req, token) => this.checkToken(req, token));
    this.clone = new Clone(ws.root, config.cloneTimeoutMs, (s) => this.clients.broadcast('git.clone', s), log.child({ component: 'clone' }), user);
    this.envd = new LazyEnvd({
      files,
      processes: this.processes,
      terminals: this.terminals,
      clients: this.clients,
      home: { dir: config.e2bHome ?? path.resolve(config.workspace), realDir: ws.root },
      maxMessageBytes: config.maxMessageBytes,
      maxQueuedBytes: config.maxBufferedBytes,
      maxUploadBytes: config.maxUploadBytes,
      log: log.child({ component: 'envd' }),
    });
    const dispatcher = new Dispatcher(methods({ files, terminals: this.terminals, processes: this.processes, preview, clients: this.clients }), log);

    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: config.maxMessageBytes,
      // A browser that offered subprotocols fails the connection unless one is selected.
      handleProtocols: (offered) => (offered.has(SUBPROTOCOL) ? SUBPROTOCOL : ([...offered].find((p) => p.startsWith(TOKEN_SUBPROTOCOL_PREFIX)) ?? false)),
    });
    this.wss.on('connection', (socket: WebSocket) => this.connected(socket, dispatcher));

    const server = createServer((req, res) => this.onRequest(req, res, preview));
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head, preview));
    server.on('clientError', (_err, socket) => refuse(socket, 400, 'Bad Request'));
    this.server = server;
    const listener = net.createServer({ pauseOnConnect: true, noDelay: true }, (socket) => this.accept(socket));
    this.listener = listener;
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen(config.listen.port, config.listen.host, () => {
        listener.off('error', reject);
        resolve();
      });
    });
    // The HTTP server never listens itself: this starts what its listen would (the header and request timeouts' checks).
    server.emit('listening');
    log.info({ address: this.address, workspace: ws.root, claimed: this.creds.claimed, sandboxId: this.creds.sandboxId }, 'worker listening');
    if (!this.creds.claimed && config.claimSecret) this.warmClaimPath(config.claimSecret);
    const { host, port } = this.address;
    this.envd.listening(host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host, port);
    // A template made for E2B clients (it names their home) loads the agent at once: its first call is on their create's path.
    if (config.e2bHome) this.loadAgent();
  }

  /** Load the E2B agent ahead of its first request; a failure is logged here (that request answers 500 with it). */
  private loadAgent(): void {
    this.envd!.load().catch((err: unknown) => this.log.error({ err }, 'the E2B agent could not be loaded'));
  }

  /**
   * A pool worker's claim is the one request on a create's critical path
   * that its process has never served: its first run costs the interpreter
   * a few ms (on the 2-core development VM, a warm client's claim of an
   * idle pool worker took 9-10 ms cold and ~5 ms after this). So the worker
   * sends itself one claim with no fields, which is refused (400) after
   * going through the same reading, parsing and answering. Its own
   * connection (no agent) closes with the answer; nothing stays open.
   */
  private warmClaimPath(claimSecret: string): void {
    const { host, port } = this.address;
    const body = '{}';
    const req = httpRequest({ host: host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host, port, path: '/_omega/claim', method: 'POST', agent: false, headers: { authorization: `Bearer ${claimSecret}`, 'content-type': 'application/json', 'content-length': body.length } }, (res) => res.resume());
    req.on('error', (err) => this.log.debug({ err }, 'warming the claim path failed'));
    req.end(body);
  }

  /**
   * A new connection. Behind the ingress (https) it may start with a PROXY
   * line naming the client: only the ingress and the manager can reach this
   * port there (no published port, no traffic between sandboxes), so the
   * line is believed. Without the ingress the port is published and the
   * peer's own address is the source.
   */
  private accept(socket: net.Socket): void {
    socket.on('error', () => socket.destroy());
    const peer = socket.remoteAddress ?? '';
    if (!this.config.https) return this.admit(socket, peer, null);
    let buffered = Buffer.alloc(0);
    socket.setTimeout(FIRST_BYTES_TIMEOUT_MS, () => socket.destroy());
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      const p = parseProxyLine(buffered);
      if (p.kind === 'partial') return;
      socket.off('data', onData);
      socket.pause();
      socket.setTimeout(0);
      if (p.kind === 'invalid') {
        this.log.debug({ peer, reason: p.reason }, 'a malformed PROXY line; closed');
        return void socket.destroy();
      }
      if (p.kind === 'none') return this.admit(socket, peer, buffered);
      this.admit(socket, p.source ?? peer, p.rest);
    };
    socket.on('data', onData);
    socket.resume();
  }

  /** Count the connection against its source (closed past the limit), then serve it over HTTP. */
  private admit(socket: net.Socket, source: string, unread: Buffer | null): void {
    if (!this.connectionsPerSource.tryOpen(source, this.config.maxConnectionsPerSource)) {
      this.log.debug({ source }, 'connection past the per-source limit; closed');
      return void socket.destroy();
    }
    socket.once('close', () => this.connectionsPerSource.close(source));
    this.sources.set(socket, source);
    if (unread && unread.length > 0) socket.unshift(unread);
    this.server!.emit('connection', socket);
    socket.resume();
  }

  private sourceOf(req: IncomingMessage): string {
    return this.sources.get(req.socket) ?? req.socket.remoteAddress ?? '';
  }

  /**
   * The sandbox token check of a request: 'ok', 'wrong' (counted against its
   * source) or the seconds to wait when its source has failed too often
   * (the token then not looked at).
   */
  private checkToken(req: IncomingMessage, candidate: string | undefined | ((creds: Credentials) => boolean)): 'ok' | 'wrong' | number {
    const source = this.sourceOf(req);
    const wait = this.authFailures.retryAfterSeconds(source);
    if (wait > 0) return wait;
    if (typeof candidate === 'function' ? candidate(this.creds) : this.creds.check(candidate)) return 'ok';
    this.authFailures.failed(source);
    return 'wrong';
  }

  get address(): { host: string; port: number } {
    const a = this.listener?.address() as AddressInfo | null;
    return { host: a?.address ?? this.config.listen.host, port: a?.port ?? this.config.listen.port };
  }

  health(): Health {
    const now = Date.now();
    // A connected client counts as activity for as long as it stays (an open IDE tab is use);
    // refused requests never do, so a stranger knocking cannot keep a sandbox from idling out.
    if (this.clients.size > 0) this.lastActivityMs = now;
    return { status: 'ok', claimed: this.creds.claimed, sandboxId: this.creds.sandboxId, lastActivityMs: this.lastActivityMs, idleMs: now - this.lastActivityMs, clients: this.clients.size };
  }

  private touch = (): void => {
    this.lastActivityMs = Date.now();
  };

  private onRequest(req: IncomingMessage, res: ServerResponse, preview: Preview): void {
    const target = preview.match(req.headers.host);
    const path = (req.url ?? '/').split('?')[0]!;
    // The E2B agent: its own host 49983-<id> (any path), or its paths on the worker's own host (docs/e2b.md).
    if (this.isEnvdHost(target) || (!target && this.envd!.owns(path))) {
      if (!this.envd!.isWarmUp(req)) this.touch();
      return this.envd!.serve(req, res, (candidate) => this.checkToken(req, candidate));
    }
    if (target) {
      this.touch();
      return preview.handleRequest(req, res, target);
    }
    if (path === '/healthz' && (req.method === 'GET' || req.method === 'HEAD')) return sendJson(res, 200, this.health());
    if (path === '/_omega/claim' && req.method === 'POST') {
      handleClaim(req, res, this.config.claimSecret, this.creds, this.clone!, preview, this.log).catch((err: unknown) => {
        this.log.error({ err }, 'claim failed');
        sendError(res, 500, 'INTERNAL', 'internal error');
      });
      return;
    }
    // Nothing else is served over plain HTTP; say 404 only to those holding the token.
    const auth = this.checkToken(req, bearer(req));
    if (typeof auth === 'number') {
      res.setHeader('retry-after', String(auth));
      return sendError(res, 429, 'TOO_MANY_AUTH_FAILURES', `too many wrong or missing tokens from this address; retry in ${auth} s`);
    }
    if (auth === 'wrong') return sendError(res, 401, 'UNAUTHORIZED', 'a valid sandbox token is required');
    sendError(res, 404, 'NOT_FOUND', `no route ${req.method} ${path}`);
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, preview: Preview): void {
    socket.on('error', () => socket.destroy());
    if (this.stopping) return refuse(socket, 503, 'Service Unavailable');
    const target = preview.match(req.headers.host);
    if (this.isEnvdHost(target)) return refuse(socket, 404, 'Not Found');
    if (target) {
      this.touch();
      return preview.handleUpgrade(req, socket, head, target);
    }
    const auth = this.checkToken(req, upgradeToken(req));
    if (typeof auth === 'number') return refuse(socket, 429, 'Too Many Requests', `too many wrong or missing tokens from this address; retry in ${auth} s\n`);
    if (auth === 'wrong') return refuse(socket, 401, 'Unauthorized');
    if ((req.url ?? '/').split('?')[0] !== '/') return refuse(socket, 404, 'Not Found');
    this.wss!.handleUpgrade(req, socket, head, (ws) => this.wss!.emit('connection', ws, req));
  }

  /** `49983-<this sandbox>`: the agent's host, which the worker serves itself instead of proxying a port. */
  private isEnvdHost(target: PreviewTarget | null): boolean {
    return target !== null && target.port === ENVD_PORT && target.sandboxId === this.creds.sandboxId;
  }

  private connected(socket: WebSocket, dispatcher: Dispatcher): void {
    this.touch();
    const session = new Session(socket, dispatcher, this.config.maxBufferedBytes, this.touch, this.log);
    this.sessions.add(session);
    session.onClose('worker', () => this.sessions.delete(session));
    this.clients.add(session);
    session.send('hello', { clientId: session.id, sandboxId: this.creds.sandboxId, protocol: PROTOCOL_VERSION, clone: this.clone!.status });
    this.log.debug({ clientId: session.id }, 'client connected');
  }

  /** Stop taking connections, close clients, end every program's process group, close the port. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      const closed = this.listener ? new Promise<void>((resolve) => this.listener!.close(() => resolve())) : Promise.resolve();
      for (const s of this.sessions) s.close(1001, 'worker stopping');
      this.watcher?.stop();
      this.clone?.stop();
      this.envd?.stop();
      await Promise.all([this.terminals?.table.terminateAll(STOP_GRACE_MS), this.processes?.table.terminateAll(STOP_GRACE_MS)]);
      this.wss?.close();
      this.server?.closeAllConnections();
      this.server?.close();
      await closed;
    })();
    return this.stopping;
  }
}
