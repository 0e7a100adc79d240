import { randomBytes } from 'node:crypto';
import { Code, ConnectError } from '@connectrpc/connect';
import type { EventName, Events } from '../../src/protocol/worker.js';
import type { Client } from '../clients.js';

/** What a stream does with one worker event: a message to send (its size in bytes for the queue bound), or nothing. */
export type EventMapper<T> = <E extends EventName>(event: E, data: Events[E]) => { message: T; bytes: number; last?: boolean } | null;

/**
 * One server-streaming RPC as a client of the worker's core: terminals,
 * processes and the watcher send it events as they send a WebSocket session
 * theirs, and the RPC's handler drains them as messages. Closed when the RPC
 * ends, which detaches it from whatever it was attached to.
 */
export class StreamClient<T> implements Client {
  readonly id = `e${randomBytes(6).toString('hex')}`;
  private readonly closers = new Map<string, () => void>();
  private readonly queue: T[] = [];
  private queuedBytes = 0;
  private wake: (() => void) | null = null;
  private ended = false;
  private overflowed = false;
  private isClosed = false;

  constructor(
    private readonly map: EventMapper<T>,
    /** Bytes queued for a client that does not read before the stream is ended (as a slow WebSocket client is dropped). */
    private readonly maxQueuedBytes: number,
  ) {}

  get closed(): boolean {
    return this.isClosed;
  }

  send<E extends EventName>(event: E, data: Events[E]): void {
    if (this.ended || this.isClosed) return;
    const m = this.map(event, data);
    if (!m) return;
    this.push(m.message, m.bytes);
    if (m.last) this.ended = true;
  }

  /** Queue a message of the handler's own (the first `start`). */
  push(message: T, bytes = 0): void {
    this.queuedBytes += bytes;
    if (this.queuedBytes > this.maxQueuedBytes) this.overflowed = true;
    else this.queue.push(message);
    this.wake?.();
  }

  /** End the stream after what is queued. */
  end(): void {
    this.ended = true;
    this.wake?.();
  }

  onClose(key: string, fn: () => void): void {
    this.closers.set(key, fn);
  }

  offClose(key: string): void {
    this.closers.delete(key);
  }

  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    const fns = [...this.closers.values()];
    this.closers.clear();
    for (const fn of fns) fn();
    this.wake?.();
  }

  /**
   * The queued messages, then each as it comes, until the stream ends, the
   * RPC is cancelled (`signal`) or the client falls too far behind; a
   * null (a keepalive) after each `keepaliveMs` without one, so proxies keep
   * a quiet stream open. Closes the client when done.
   */
  async *drain(signal: AbortSignal, keepaliveMs: number): AsyncGenerator<T | null> {
    const onAbort = () => this.wake?.();
    signal.addEventListener('abort', onAbort);
    try {
      for (;;) {
        if (this.overflowed) throw new ConnectError('the client reads more slowly than the events come; reconnect', Code.ResourceExhausted);
        const next = this.queue.shift();
        if (next !== undefined) {
          yield next;
          continue;
        }
        if (this.ended || this.isClosed || signal.aborted) return;
        this.queuedBytes = 0;
        const timedOut = await new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => resolve(true), keepaliveMs);
          this.wake = () => {
            clearTimeout(timer);
            resolve(false);
          };
        });
        this.wake = null;
        if (timedOut) yield null;
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      this.close();
    }
  }
}

/** The keepalive interval a client asks for (`Keepalive-Ping-Interval`, seconds), within 1 s to 5 min; 50 s without. */
export function keepaliveMs(headers: Headers): number {
  const s = Number(headers.get('keepalive-ping-interval'));
  return Number.isFinite(s) && s >= 1 ? Math.min(s, 300) * 1000 : 50_000;
}
