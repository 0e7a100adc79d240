import type { ClientRequestArgs } from 'node:http';
import type { SecureContext } from 'node:tls';
import WebSocket, { type ClientOptions } from 'ws';
import {
  EVENT_NAMES,
  SUBPROTOCOL,
  TOKEN_SUBPROTOCOL_PREFIX,
  WORKER_ERRORS,
  type EventMessage,
  type EventName,
  type Events,
  type Method,
  type Params,
  type Response,
  type Result,
  type WorkerErrorCode,
} from './worker.js';

/**
 * A client of the worker protocol (docs/worker-protocol.md) for Node
 * programs: the master's POST /v1/run, and the tests. Requests are matched to
 * responses by id and events go to handlers, all typed by src/protocol/worker.ts;
 * a failure is one of two errors, each with a stable code. It depends on the
 * protocol and `ws` only. (The web client has its own over the browser's
 * WebSocket, which reconnects.)
 */

/** The worker answered a request with an error; `code` is from WORKER_ERRORS. */
export class WorkerCallError extends Error {
  /** The status the worker gives the code (what it means for HTTP). */
  readonly status: number;
  constructor(
    readonly method: string,
    readonly code: WorkerErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'WorkerCallError';
    this.status = WORKER_ERRORS[code]?.status ?? 500;
  }
}

export type ConnectionFailure =
  /** The worker refused the WebSocket upgrade; `status` says why (401: the token). */
  | 'UPGRADE_REFUSED'
  /** The socket failed (refused, reset, unreachable). */
  | 'SOCKET_ERROR'
  /** The connection closed before the answer. */
  | 'CLOSED'
  /** No answer (upgrade, hello, response or event) in time. */
  | 'TIMEOUT'
  /** The worker sent what is not the protocol. */
  | 'PROTOCOL_ERROR';

/** The connection failed, so there is no answer of the worker's to report. */
export class WorkerConnectionError extends Error {
  readonly status: number | undefined;
  constructor(
    readonly code: ConnectionFailure,
    message: string,
    options: { cause?: unknown; status?: number } = {},
  ) {
    super(message, options.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = 'WorkerConnectionError';
    this.status = options.status;
  }
}

export interface ConnectOptions {
  /** The sandbox token; null connects without one (to see the refusal). */
  token: string | null;
  /** How it travels: an Authorization header (the default), the `omega.token.<token>` subprotocol as a browser sends it, or `?token=`. */
  via?: 'header' | 'protocol' | 'query';
  /** Time limit of the upgrade and the hello. */
  timeoutMs?: number;
  /** More options for ws (a DNS lookup of one's own, a CA; the TLS server name when the URL names an address). */
  socket?: ClientOptions & Pick<ClientRequestArgs, 'lookup'> & { servername?: string; secureContext?: SecureContext };
}

const DEFAULT_CONNECT_MS = 10_000;
const DEFAULT_CALL_MS = 30_000;

/** The WebSocket to the worker at `url` (`ws://host:port/`), the token placed as `opts.via` says. */
export function workerSocket(url: string, opts: Omit<ConnectOptions, 'timeoutMs'>): WebSocket {
  const { token } = opts;
  const via = opts.via ?? 'header';
  const target = via === 'query' && token ? `${url}${url.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}` : url;
  const protocols = via === 'protocol' && token ? [SUBPROTOCOL, `${TOKEN_SUBPROTOCOL_PREFIX}${token}`] : [];
  const headers = { ...opts.socket?.headers, ...(via === 'header' && token ? { authorization: `Bearer ${token}` } : {}) };
  return new WebSocket(target, protocols, { ...opts.socket, headers });
}

/** Open a connection to the worker at `url`; resolves after its hello. */
export async function connectWorker(url: string, opts: ConnectOptions): Promise<WorkerConnection> {
  const conn = new WorkerConnection(workerSocket(url, opts));
  await conn.ready(opts.timeoutMs);
  return conn;
}

type CallArgs<M extends Method> = {} extends Params<M> ? [params?: Params<M>, timeoutMs?: number] : [params: Params<M>, timeoutMs?: number];

interface Pending {
  method: string;
  resolve(r: Response): void;
  reject(err: Error): void;
}

export class WorkerConnection {
  /** The worker's greeting (this client's id, the sandbox, the clone), once it came. */
  hello: Events['hello'] | null = null;
  /** Settles when the socket has closed, with the close code. */
  readonly closed: Promise<{ code: number }>;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly handlers = new Map<EventName, Set<(data: never) => void>>();
  /** Why the connection ended, for what still waits on it. */
  private failure: WorkerConnectionError | null = null;
  private readonly opened: Promise<void>;

  constructor(readonly ws: WebSocket) {
    this.opened = new Promise((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('unexpected-response', (_req, res) => {
        const status = res.statusCode ?? 0;
        this.end(new WorkerConnectionError('UPGRADE_REFUSED', `upgrade refused: ${status}`, { status }));
        reject(this.failure);
        ws.terminate();
      });
      ws.once('close', () => reject(this.failure));
    });
    // Nobody may be waiting on it yet; a failure reaches them through what they await.
    this.opened.catch(() => {});
    ws.on('error', (err) => this.end(new WorkerConnectionError('SOCKET_ERROR', `the worker's socket: ${err.message}`, { cause: err })));
    ws.on('message', (raw) => this.receive(String(raw)));
    this.closed = new Promise((resolve) =>
      ws.on('close', (code) => {
        this.end(new WorkerConnectionError('CLOSED', `the worker closed the connection (${code})`));
        resolve({ code });
      }),
    );
  }

  /** Open, and greeted with the hello event, within `timeoutMs`; else the socket is dropped. */
  async ready(timeoutMs = DEFAULT_CONNECT_MS): Promise<Events['hello']> {
    try {
      await withTimeout(this.opened, timeoutMs, 'the WebSocket upgrade');
      return this.hello ?? (await this.next('hello', () => true, timeoutMs));
    } catch (err) {
      this.terminate();
      throw err;
    }
  }

  /** Handle every `event` from now on; returns the function that stops it. */
  on<E extends EventName>(event: E, fn: (data: Events[E]) => void): () => void {
    let set = this.handlers.get(event);
    if (!set) this.handlers.set(event, (set = new Set()));
    set.add(fn as (data: never) => void);
    return () => set.delete(fn as (data: never) => void);
  }

  /** The next `event` for which `pred` holds; rejects when the connection ends first or `timeoutMs` passes. */
  next<E extends EventName>(event: E, pred: (data: Events[E]) => boolean = () => true, timeoutMs = DEFAULT_CALL_MS): Promise<Events[E]> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const done = () => {
        off();
        this.ws.off('close', closed);
        clearTimeout(timer);
      };
      const off = this.on(event, (data) => {
        if (!pred(data)) return;
        done();
        resolve(data);
      });
      const closed = () => {
        done();
        reject(this.failure);
      };
      const timer = setTimeout(() => {
        done();
        reject(new WorkerConnectionError('TIMEOUT', `no ${event} event within ${timeoutMs} ms`));
      }, timeoutMs);
      this.ws.once('close', closed);
    });
  }

  /**
   * The worker's answer, result or error, as it came. The method and params
   * are not checked here: tests send what the worker must refuse.
   */
  request(method: string, params?: unknown, timeoutMs = DEFAULT_CALL_MS): Promise<Response> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new WorkerConnectionError('TIMEOUT', `${method}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      const settle = <T>(fn: (v: T) => void) => (v: T) => {
        clearTimeout(timer);
        this.pending.delete(id);
        fn(v);
      };
      this.pending.set(id, { method, resolve: settle(resolve), reject: settle(reject) });
      this.ws.send(JSON.stringify(params === undefined ? { id, method } : { id, method, params }));
    });
  }

  /** The result of `method` (params may be left out where none are needed); a WorkerCallError when the worker answers an error. */
  async call<M extends Method>(method: M, ...[params, timeoutMs]: CallArgs<M>): Promise<Result<M>> {
    const r = await this.request(method, params, timeoutMs);
    if ('error' in r) throw new WorkerCallError(method, r.error.code, r.error.message);
    return r.result as Result<M>;
  }

  close(): Promise<{ code: number }> {
    if (this.ws.readyState === WebSocket.CONNECTING) this.ws.terminate();
    else this.ws.close();
    return this.closed;
  }

  terminate(): void {
    this.ws.terminate();
  }

  private receive(text: string): void {
    let msg: Response | EventMessage;
    try {
      msg = JSON.parse(text) as Response | EventMessage;
    } catch (err) {
      this.end(new WorkerConnectionError('PROTOCOL_ERROR', 'the worker sent a message that is not JSON', { cause: err }));
      this.ws.terminate();
      return;
    }
    if ('event' in msg) {
      if (!(EVENT_NAMES as readonly string[]).includes(msg.event)) return; // a newer worker's event: not ours to handle
      if (msg.event === 'hello') this.hello = msg.data as Events['hello'];
      for (const fn of this.handlers.get(msg.event) ?? []) (fn as (data: unknown) => void)(msg.data);
      return;
    }
    // A response with id null answers what the worker could not read; this client sends only what it can.
    if (typeof msg.id === 'number') this.pending.get(msg.id)?.resolve(msg);
  }

  /** The connection is over (or failing): everything still waiting learns why, once. */
  private end(failure: WorkerConnectionError): void {
    this.failure ??= failure;
    for (const p of [...this.pending.values()]) p.reject(this.failure);
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new WorkerConnectionError('TIMEOUT', `${what} took more than ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}
