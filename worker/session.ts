import { randomBytes } from 'node:crypto';
import type { WebSocket } from 'ws';
import type { EventName, Events } from '../src/protocol/worker.js';
import type { Client } from './clients.js';
import type { Dispatcher } from './dispatch.js';
import type { WorkerLogger } from './log.js';

/** One WebSocket client: requests to the dispatcher, responses and events back, bounded queue. */
export class Session implements Client {
  readonly id = `c${randomBytes(6).toString('hex')}`;
  private readonly closers = new Map<string, () => void>();
  private isClosed = false;

  constructor(
    private readonly ws: WebSocket,
    private readonly dispatcher: Dispatcher,
    private readonly maxBufferedBytes: number,
    private readonly onActivity: () => void,
    private readonly log: WorkerLogger,
  ) {
    ws.on('message', (data, isBinary) => {
      this.onActivity();
      const text = isBinary ? Buffer.from(data as Buffer).toString('utf8') : data.toString();
      void this.dispatcher.handle(text, this).then((res) => this.write(res));
    });
    ws.on('error', (err) => this.log.debug({ err, clientId: this.id }, 'client socket error'));
    ws.on('close', () => this.closed_());
  }

  get closed(): boolean {
    return this.isClosed;
  }

  send<E extends EventName>(event: E, data: Events[E]): void {
    this.write({ event, data });
  }

  onClose(key: string, fn: () => void): void {
    this.closers.set(key, fn);
  }

  offClose(key: string): void {
    this.closers.delete(key);
  }

  close(code: number, reason: string): void {
    if (this.isClosed) return;
    this.ws.close(code, reason);
    this.closed_();
  }

  private write(msg: unknown): void {
    if (this.isClosed) return;
    // A client that stops reading (or reads slower than `yes` writes) would grow this queue without bound:
    // drop it; on reconnect it re-attaches and gets the scrollback.
    if (this.ws.bufferedAmount > this.maxBufferedBytes) {
      this.log.warn({ clientId: this.id, buffered: this.ws.bufferedAmount }, 'disconnecting a slow client');
      this.ws.terminate();
      this.closed_();
      return;
    }
    this.ws.send(JSON.stringify(msg));
  }

  private closed_(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    const fns = [...this.closers.values()];
    this.closers.clear();
    for (const fn of fns) fn();
    this.onActivity();
  }
}
