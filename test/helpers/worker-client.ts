import type { Test } from 'tap';
import WebSocket from 'ws';
import { WorkerConnection, workerSocket, type ConnectOptions } from '../../src/protocol/worker-client.js';
import { EVENT_NAMES, type EventMessage, type EventName, type Events, type Params, type Result } from '../../src/protocol/worker.js';

/**
 * The shared protocol client (src/protocol/worker-client.ts) with what tests
 * ask of it besides: every event kept, waited for (earlier ones count too),
 * and the output of one terminal or process read back.
 */
export class TestClient extends WorkerConnection {
  readonly events: EventMessage[] = [];
  private readonly waiters = new Set<() => void>();

  constructor(ws: WebSocket) {
    super(ws);
    for (const event of EVENT_NAMES) {
      this.on(event, (data) => {
        this.events.push({ event, data } as EventMessage);
        for (const w of this.waiters) w();
      });
    }
  }

  get clientId(): string {
    return this.hello!.clientId;
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
    const { procId } = (await this.call('proc.run', params)) as Result<'proc.run'>;
    const exit = await this.waitEvent('proc.exit', (d) => d.procId === procId, timeoutMs);
    return { stdout: this.output('proc.stdout', procId), stderr: this.output('proc.stderr', procId), exit };
  }
}

/**
 * Open a worker WebSocket at `url` with `token` (a bearer header, a subprotocol or
 * ?token=); resolves after the hello event, rejects with `upgrade refused: <status>`.
 */
export async function connectWorker(
  t: Test | null,
  url: string,
  token: string | null,
  via: ConnectOptions['via'] = 'header',
  socket?: ConnectOptions['socket'],
): Promise<TestClient> {
  const client = new TestClient(workerSocket(url, { token, via, socket }));
  t?.teardown(() => client.terminate());
  await client.ready();
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
