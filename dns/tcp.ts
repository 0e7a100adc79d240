import net from 'node:net';
import type { Logger } from '../src/log.js';
import type { DnsCounters } from './counters.js';
import type { Responder } from './responder.js';

export interface TcpOptions {
  idleTimeoutMs: number;
  maxConnections: number;
}

/**
 * DNS over TCP (RFC 1035 §4.2.2, RFC 7766): two-octet length-prefixed
 * messages, any number of queries per connection answered in order, an idle
 * timeout, and back-pressure when a client stops reading.
 */
export class TcpServer {
  private server: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();

  constructor(
    private readonly responder: Responder,
    private readonly counters: DnsCounters,
    private readonly opts: TcpOptions,
    private readonly log: Logger,
  ) {}

  listen(host: string, port: number): Promise<number> {
    const server = net.createServer({ noDelay: true }, (sock) => this.serve(sock));
    server.maxConnections = this.opts.maxConnections;
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port, exclusive: true }, () => {
        server.off('error', reject);
        resolve((server.address() as net.AddressInfo).port);
      });
    });
  }

  private serve(sock: net.Socket): void {
    this.sockets.add(sock);
    sock.setTimeout(this.opts.idleTimeoutMs, () => sock.destroy());
    sock.on('close', () => this.sockets.delete(sock));
    sock.on('error', () => sock.destroy());
    let pending = Buffer.alloc(0);
    sock.on('data', (chunk) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      while (pending.length >= 2) {
        const len = pending.readUInt16BE(0);
        if (pending.length < 2 + len) break;
        const msg = pending.subarray(2, 2 + len);
        pending = pending.subarray(2 + len);
        let out: Buffer | null;
        try {
          out = this.responder.handle(msg, true);
        } catch (err) {
          this.log.error({ err }, 'failed to answer a TCP query');
          out = null;
        }
        if (!out) {
          // Not even a header to answer: the stream cannot be trusted further.
          this.counters.dropped++;
          sock.destroy();
          return;
        }
        const frame = Buffer.allocUnsafe(2 + out.length);
        frame.writeUInt16BE(out.length, 0);
        out.copy(frame, 2);
        if (!sock.write(frame)) {
          sock.pause();
          sock.once('drain', () => sock.resume());
        }
      }
    });
  }

  close(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return Promise.resolve();
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => server.close(() => resolve()));
  }
}
