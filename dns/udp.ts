import dgram from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { isIP, isIPv6 } from 'node:net';
import type { Logger } from '../src/log.js';
import type { DnsCounters } from './counters.js';
import type { Responder } from './responder.js';
import type { ResponseRateLimiter } from './rrl.js';
import { slipOf } from './wire.js';

const SEND_ERROR_LOG_INTERVAL_MS = 60_000;

/** The UDP responder: one socket, one synchronous handler, no awaits on the query path. */
export class UdpServer {
  private socket: dgram.Socket | null = null;

  constructor(
    private readonly responder: Responder,
    private readonly rrl: ResponseRateLimiter,
    private readonly counters: DnsCounters,
    private readonly log: Logger,
  ) {}

  async listen(bindHost: string, port: number): Promise<number> {
    const host = isIP(bindHost) ? bindHost : (await lookup(bindHost)).address;
    const family = isIPv6(host) ? 6 : 4;
    const socket = dgram.createSocket({
      type: family === 6 ? 'udp6' : 'udp4',
      recvBufferSize: 4 << 20,
      sendBufferSize: 4 << 20,
      // Replies go to the literal address a query came from: skip the
      // dns.lookup() and extra tick dgram.send() would spend per packet.
      lookup: (address, _opts, cb) => cb(null, address, family),
    });
    this.socket = socket;
    socket.on('message', (msg, rinfo) => {
      let out: Buffer | null;
      try {
        out = this.responder.handle(msg, false);
      } catch (err) {
        // A bug must not take the server down; the packet goes unanswered.
        this.counters.dropped++;
        this.log.error({ err }, 'failed to answer a UDP query');
        return;
      }
      if (!out) return;
      if (this.rrl.enabled) {
        const verdict = this.rrl.check(rinfo.address, Date.now());
        if (verdict !== 'send') {
          this.counters.rateLimited++;
          if (verdict === 'drop') return;
          out = slipOf(out);
        }
      }
      // No callback: Node then tries a synchronous uv_udp_try_send and skips
      // a JS completion callback per packet; failures arrive as 'error'.
      socket.send(out, rinfo.port, rinfo.address);
    });
    return new Promise((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(port, host, () => {
        socket.off('error', reject);
        // Send failures (a full socket buffer under a flood) are counted, and
        // logged at most once a minute so a flood cannot flood the log too.
        let lastLog = 0;
        socket.on('error', (err) => {
          this.counters.sendErrors++;
          const now = Date.now();
          if (now - lastLog < SEND_ERROR_LOG_INTERVAL_MS) return;
          lastLog = now;
          this.log.warn({ err, sendErrors: this.counters.sendErrors }, 'udp send failing');
        });
        resolve(socket.address().port);
      });
    });
  }

  close(): Promise<void> {
    const s = this.socket;
    this.socket = null;
    if (!s) return Promise.resolve();
    return new Promise((resolve) => s.close(() => resolve()));
  }
}
