import type { Test } from 'tap';
import WebSocket from 'ws';
import type { EventMessage, EventName, Events, Method, Params, Response } from '../../src/protocol/worker.js';

/** A protocol client: call() returns the response; events are collected and waited for. */
export class TestClient {
  readonly events: EventMessage[] = [];
  private nextId = 1;
  private readonly pending = new Map<number, (r: Response) => void>();
  private readonly waiters = new Set<() => void>();
  readonly closed: Promise<{ code: number }>;

  constructor(readonly ws: WebSocket) {
    ws.on('message', (raw) => {
      const msg = JSON.parse(raw.toString()) as Response | EventMessage;
      if ('event' in msg) {
        this.events.push(msg);
        for (const w of this.waiters) w();
      } else {
        this.pending.get(msg.id as number)?.(msg);
        this.pending.delete(msg.id as number);
      }
    });
    this.closed = new Promise((resolve) => ws.on('close', (code) => resolve({ code })));
  }

  get clientId(): string {
    return (this.events.find((e) => e.event === 'hello')!.data as Events['hello']).clientId;
  }

  /** The raw response (result or error). */
  request(method: string, params?: unknown): Promise<Response> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  /** The result; throws with the error code when the call fails. */
  async call<M extends Method>(method: M, params?: Params<M>): Promise<any> {
    const r = await this.request(method, params);
    if ('error' in r) throw Object.assign(new Error(`${method}: ${r.error.code}: ${r.error.message}`), { code: r.error.code });
    return r.result;
  }

  /** The error code a call fails with (or 'OK'). */
  async code(method: string, params?: unknown): Promise<string> {
    const r = await this.request(method, params);
    return 'error' in r ? r.error.code : 'OK';
  }

  /** The first collected event of `name` for which `pred` holds (earlier ones count too). */
  waitEvent<E extends EventName>(name: E, pred: (d: Events[E]) => boolean = () => true, timeoutMs = 5000): Promise<Events[E]> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const hit = this.events.find((e) => e.event === name && pred(e.data as Events[E]));
        if (hit) {
          clearTimeout(timer);
          this.waiters.delete(check);
          resolve(hit.data as Events[E]);
        }
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`no ${name} event within ${timeoutMs} ms; got ${JSON.stringify(this.events.map((e) => e.event))}`));
      }, timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  /** Everything `name` carried so far for one terminal or process, concatenated. */
  output(name: 'term.output' | 'proc.stdout' | 'proc.stderr', id: string): string {
    return this.events
      .filter((e) => e.event === name && ((e.data as { termId?: string }).termId === id || (e.data as { procId?: string }).procId === id))
      .map((e) => (e.data as { data: string }).data)
      .join('');
  }

  /** Run a process to its end: everything it wrote, and its exit event. */
  async runToEnd(params: Params<'proc.run'>, timeoutMs = 30_000): Promise<{ stdout: string; stderr: string; exit: Events['proc.exit'] }> {
    const { procId } = (await this.call('proc.run', params)) as { procId: string };
    const exit = await this.waitEvent('proc.exit', (d) => d.procId === procId, timeoutMs);
    return { stdout: this.output('proc.stdout', procId), stderr: this.output('proc.stderr', procId), exit };
  }

  close(): Promise<{ code: number }> {
    this.ws.close();
    return this.closed;
  }
}

/**
 * Open a worker WebSocket at `url` with `token` (a bearer header, a subprotocol or
 * ?token=); resolves after the hello event, rejects with `upgrade refused: <status>`.
 */
export async function connectWorker(t: Test | null, url: string, token: string | null, via: 'header' | 'protocol' | 'query' = 'header'): Promise<TestClient> {
  const target = via === 'query' && token ? `${url}${url.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}` : url;
  const ws =
    via === 'protocol' && token
      ? new WebSocket(target, ['omega.v1', `omega.token.${token}`])
      : new WebSocket(target, { headers: via === 'header' && token ? { authorization: `Bearer ${token}` } : {} });
  const client = new TestClient(ws);
  t?.teardown(() => {
    if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.terminate();
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`upgrade refused: ${res.statusCode}`), { status: res.statusCode })));
  });
  await client.waitEvent('hello');
  return client;
}

/** The HTTP status with which an upgrade is refused, and the body sent with it. */
export function upgradeStatus(port: number, headers: Record<string, string> = {}, pathAndQuery = '/'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${pathAndQuery}`, { headers });
    ws.once('open', () => {
      ws.terminate();
      resolve({ status: 101, body: '' });
    });
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    ws.once('error', reject);
  });
}
