import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort, waitFor } from './ports.js';

/** What the start helpers need of a Redis: its URL (a TestRedis, or a TestSentinel or TestCluster of redis-ha.ts). */
/** Each connection's address -> its name ('' when unnamed), from CLIENT LIST: who sent what in MONITOR's output. */
export async function clientNames(client: { call: (...args: string[]) => Promise<unknown> }): Promise<Map<string, string>> {
  const names = new Map<string, string>();
  for (const line of String(await client.call('CLIENT', 'LIST')).split('\n')) {
    const addr = /addr=(\S+)/.exec(line)?.[1];
    if (addr) names.set(addr, /name=(\S*)/.exec(line)?.[1] ?? '');
  }
  return names;
}

export interface RedisUnderTest {
  readonly url: string;
}

/**
 * A real redis-server of the test's own, on a free port (never 6379), with its
 * data in a temp dir. `stop()` shuts it down (saving, so `start()` brings the
 * same data back), `start()` starts it again on the same port.
 */
export class TestRedis {
  readonly dir = mkdtempSync(join(tmpdir(), 'omega-redis-'));
  private proc: ChildProcess | null = null;
  private constructor(readonly port: number) {}

  static async create(): Promise<TestRedis> {
    const r = new TestRedis(await freePort());
    await r.start();
    return r;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.proc = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir, '--save', '', '--appendonly', 'no', '--dbfilename', 'dump.rdb'],
      { stdio: 'ignore' },
    );
    await waitFor(`redis on ${this.port}`, () => this.ping(), 10_000, 25);
  }

  /** SHUTDOWN SAVE: the data comes back with `start()`. */
  async stop(opts: { keepData?: boolean } = { keepData: true }): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    const c = new Redis(this.port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    try {
      await c.connect();
      await c.call('SHUTDOWN', opts.keepData ? 'SAVE' : 'NOSAVE');
    } catch {
      // the connection drops as the server goes away
    } finally {
      c.disconnect();
    }
    await exited;
    this.proc = null;
  }

  client(): Redis {
    return new Redis(this.port, '127.0.0.1', { maxRetriesPerRequest: 1 });
  }

  private async ping(): Promise<boolean> {
    const c = new Redis(this.port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    c.on('error', () => {});
    try {
      await c.connect();
      return (await c.ping()) === 'PONG';
    } catch {
      return false;
    } finally {
      c.disconnect();
    }
  }

  async destroy(): Promise<void> {
    await this.stop({ keepData: false });
    rmSync(this.dir, { recursive: true, force: true });
  }
}
