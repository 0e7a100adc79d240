import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { waitFor } from './ports.js';

/** What the gate does with one request: forward it, or hold it before or after its upstream answered. */
export type GateAction = 'pass' | 'hold-request' | 'hold-response';

export interface HeldCall {
  method: string;
  path: string;
  /** Which hold: before it reached upstream, or after upstream answered (upstream acted on it). */
  held: 'request' | 'response';
  /** A held request goes upstream now (its caller may be gone); a held response is delivered. */
  release(): Promise<void>;
  /** The caller's connection is cut, as a process that died mid-call would leave it. */
  drop(): void;
}

/**
 * An HTTP proxy in front of one of Omega's APIs (a manager's), so a test can
 * stop a call at an exact step: a request held before it reaches upstream,
 * or after upstream acted on it with its answer held back. Point the
 * callers at `url`; `rule` decides per request.
 */
export class Gate {
  readonly held: HeldCall[] = [];
  rule: (method: string, path: string) => GateAction = () => 'pass';
  private constructor(
    private readonly server: http.Server,
    private readonly upstream: string,
  ) {}

  static async start(upstream: string): Promise<Gate> {
    const server = http.createServer();
    const gate = new Gate(server, upstream);
    server.on('request', (req, res) => void gate.handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return gate;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  private async forward(method: string, path: string, headers: http.IncomingHttpHeaders, body: Buffer) {
    const res = await request(`${this.upstream}${path}`, {
      method: method as 'GET',
      headers: { ...(headers.authorization ? { authorization: headers.authorization } : {}), ...(headers['content-type'] ? { 'content-type': headers['content-type'] } : {}) },
      body: body.length ? body : undefined,
    });
    return { status: res.statusCode, type: String(res.headers['content-type'] ?? 'application/json'), text: await res.body.text() };
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const method = req.method ?? 'GET';
    const path = req.url ?? '/';
    const body = Buffer.concat(chunks);
    const deliver = (a: { status: number; type: string; text: string }) => {
      if (!res.destroyed) res.writeHead(a.status, { 'content-type': a.type }).end(a.text);
    };
    const drop = () => void req.socket.destroy();
    const answer = async () => {
      try {
        deliver(await this.forward(method, path, req.headers, body));
      } catch {
        drop(); // upstream unreachable: the caller sees its connection cut
      }
    };
    const action = this.rule(method, path);
    if (action === 'pass') return answer();
    if (action === 'hold-request') {
      this.held.push({ method, path, held: 'request', release: answer, drop });
      return;
    }
    let answered: Awaited<ReturnType<Gate['forward']>>;
    try {
      answered = await this.forward(method, path, req.headers, body);
    } catch {
      return drop();
    }
    this.held.push({ method, path, held: 'response', release: async () => deliver(answered), drop });
  }

  /** Resolves once `n` calls are held. */
  async whenHeld(n: number, timeoutMs = 30_000): Promise<HeldCall[]> {
    await waitFor(`${n} held call(s) at the gate`, () => this.held.length >= n, timeoutMs, 20);
    return this.held;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
