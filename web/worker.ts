import {
  SUBPROTOCOL,
  TOKEN_SUBPROTOCOL_PREFIX,
  type ErrorBody,
  type EventName,
  type Events,
  type Method,
  type Params,
  type Result,
} from '../src/protocol/worker.js';

/**
 * One sandbox's worker over its WebSocket (docs/worker-protocol.md):
 * requests matched to responses by id, events to handlers, and a reconnect
 * with backoff whenever the connection drops. Before each new attempt the
 * owner is asked (onDrop) whether to go on: the sandbox may be gone.
 */

export class WorkerError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'WorkerError';
  }
}

export type ConnState =
  | { state: 'connecting'; attempt: number }
  | { state: 'connected'; clientId: string }
  /** Waiting `retryInMs` before the next attempt. `reachable`: whether the worker's HTTP port answered (null: not probed). */
  | { state: 'waiting'; retryInMs: number; everOpened: boolean; reachable: boolean | null; code: number }
  | { state: 'stopped' };

export interface WorkerSocketOptions {
  /** The agent's URL as the master gives it: wss://<id>.<zone>/ (ws://<id>.<zone>:<port> with TLS off). */
  url: string;
  token: string;
  onState(s: ConnState): void;
  /** A connection closed or failed; resolve false to stop for good. */
  onDrop(info: { code: number; opened: boolean }): Promise<boolean>;
}

// RFC 7230 §3.2.6 token characters: what a browser accepts in a subprotocol name.
const SUBPROTOCOL_SAFE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const PING_EVERY_MS = 15_000;
const PING_TIMEOUT_MS = 10_000;

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

export class WorkerSocket {
  clientId: string | null = null;
  private ws: WebSocket | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly handlers = new Map<string, Set<(data: never) => void>>();
  private attempt = 0;
  private everOpened = false;
  private stopped = false;
  private pingTimer: ReturnType<typeof setInterval> | null = null;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(private readonly opts: WorkerSocketOptions) {}

  get url(): string {
    return this.opts.url;
  }

  get connected(): boolean {
    return this.clientId !== null;
  }

  start(): void {
    // Back online (or the laptop woke up): try now rather than at the end of the backoff.
    window.addEventListener('online', this.retryNow);
    this.open();
  }

  private readonly retryNow = (): void => {
    if (this.stopped || !this.retryTimer) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.open();
  };

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    window.removeEventListener('online', this.retryNow);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    const ws = this.ws;
    this.teardown();
    ws?.close(1000, 'client closing');
    this.opts.onState({ state: 'stopped' });
  }

  on<E extends EventName>(event: E, fn: (data: Events[E]) => void): () => void {
    let set = this.handlers.get(event);
    if (!set) this.handlers.set(event, (set = new Set()));
    set.add(fn as (data: never) => void);
    return () => set.delete(fn as (data: never) => void);
  }

  request<M extends Method>(method: M, params?: Params<M>, timeoutMs = 30_000): Promise<Result<M>> {
    const ws = this.ws;
    if (!ws || !this.connected) return Promise.reject(new WorkerError('OFFLINE', 'not connected to the sandbox'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new WorkerError('TIMEOUT', `${method}: no answer in ${timeoutMs / 1000} s`));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      ws.send(JSON.stringify(params === undefined ? { id, method } : { id, method, params }));
    });
  }

  private open(): void {
    if (this.stopped) return;
    this.opts.onState({ state: 'connecting', attempt: this.attempt });
    // The token as a subprotocol keeps it out of the URL (and out of logs); the query is the fallback.
    const safe = SUBPROTOCOL_SAFE.test(this.opts.token);
    const url = safe ? this.url : `${this.url}?token=${encodeURIComponent(this.opts.token)}`;
    const protocols = safe ? [SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX + this.opts.token] : [SUBPROTOCOL];
    let ws: WebSocket;
    try {
      ws = new WebSocket(url, protocols);
    } catch {
      void this.dropped(1006, false);
      return;
    }
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.attempt = 0;
      this.everOpened = true;
      this.pingTimer = setInterval(() => this.ping(ws), PING_EVERY_MS);
    };
    ws.onmessage = (ev) => this.receive(ev.data);
    ws.onclose = (ev) => {
      if (this.ws === ws) void this.dropped(ev.code, opened);
    };
  }

  private receive(raw: unknown): void {
    if (typeof raw !== 'string') return;
    let msg: any;
    try {
      msg = JSON.parse(raw);
    } catch {
      return;
    }
    if (typeof msg?.event === 'string') {
      if (msg.event === 'hello') {
        this.clientId = msg.data.clientId;
        this.opts.onState({ state: 'connected', clientId: msg.data.clientId });
      }
      for (const fn of this.handlers.get(msg.event) ?? []) fn(msg.data as never);
      return;
    }
    const p = this.pending.get(msg?.id);
    if (!p) return;
    this.pending.delete(msg.id);
    clearTimeout(p.timer);
    if (msg.error) p.reject(new WorkerError((msg.error as ErrorBody).code, (msg.error as ErrorBody).message));
    else p.resolve(msg.result);
  }

  /** A browser sees a dead peer only when it writes: ping, and give the connection up when no answer comes. */
  private ping(ws: WebSocket): void {
    this.request('ping', undefined, PING_TIMEOUT_MS).catch(() => {
      if (this.ws !== ws) return;
      ws.close();
      void this.dropped(1006, true);
    });
  }

  private teardown(): void {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = null;
    if (this.ws) this.ws.onopen = this.ws.onmessage = this.ws.onclose = null;
    this.ws = null;
    this.clientId = null;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new WorkerError('OFFLINE', 'the connection to the sandbox closed'));
    }
    this.pending.clear();
  }

  private async dropped(code: number, opened: boolean): Promise<void> {
    this.teardown();
    if (this.stopped) return;
    const goOn = await this.opts.onDrop({ code, opened }).catch(() => true);
    if (!goOn || this.stopped) return;
    this.attempt++;
    // Straight back after losing a working connection; growing waits while it keeps failing.
    const retryInMs = opened ? 300 : Math.round(Math.min(10_000, 500 * 2 ** Math.min(this.attempt - 1, 5)) * (0.8 + Math.random() * 0.4));
    const reachable = opened ? null : await this.probe();
    if (this.stopped) return;
    this.opts.onState({ state: 'waiting', retryInMs, everOpened: this.everOpened, reachable, code });
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.open();
    }, retryInMs);
  }

  /**
   * Whether anything answers HTTP at the worker's name and port. A browser does not say
   * why a WebSocket failed; this tells "the name does not resolve or nothing
   * listens" (false) from "the worker answered but refused the upgrade" (true).
   */
  private async probe(): Promise<boolean> {
    try {
      await fetch(new URL('/healthz', this.opts.url.replace(/^ws/, 'http')).href, { mode: 'no-cors', cache: 'no-store', signal: AbortSignal.timeout(5000) });
      return true;
    } catch {
      return false;
    }
  }
}
