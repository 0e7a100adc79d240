import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { freePort, waitFor } from './ports.js';

/**
 * Real Redis Sentinel and Redis Cluster setups of a test's own, on free
 * loopback ports, with their files in a temp dir, in the style of
 * TestRedis (redis.ts). `destroy()` kills every process it started and
 * removes the dir; call it from t.teardown so a failing test stops them too.
 */

/** A process of the setup, and how it is told apart in errors. */
interface Proc {
  name: string;
  port: number;
  child: ChildProcess;
}

function start(name: string, port: number, cmd: string, args: string[]): Proc {
  const child = spawn(cmd, args, { stdio: 'ignore' });
  // A binary that cannot start must fail the test (its wait times out), not crash it: said here with its cause.
  child.on('error', (err) => console.error(`${name} (${cmd}) could not start: ${err.message}`));
  return { name, port, child };
}

function kill(p: Proc, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    p.child.once('exit', () => resolve());
    p.child.kill(signal);
  });
}

/** One short-lived connection: answers `fn`, or throws when the server does not answer. */
async function ask<T>(port: number, fn: (c: Redis) => Promise<T>): Promise<T> {
  const c = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1000 });
  // A failure reaches the caller as connect()'s or fn's rejection; the event would only repeat it (and crash unheard).
  c.on('error', () => {});
  try {
    await c.connect();
    return await fn(c);
  } finally {
    c.disconnect();
  }
}

const redisArgs = (port: number, dir: string) => [
  '--port', String(port),
  '--bind', '127.0.0.1',
  '--dir', dir,
  '--save', '',
  '--appendonly', 'no',
  '--dbfilename', `dump-${port}.rdb`,
  // A replica syncs straight over the socket, at once, not after the default 5 s wait for more replicas.
  '--repl-diskless-sync', 'yes',
  '--repl-diskless-sync-delay', '0',
];

/**
 * One primary, its replicas (one unless asked for more) and three sentinels
 * watching them (quorum 2), tuned so a failover takes a second or three:
 * the primary is subjectively down after 500 ms, and a failover that stalls
 * is retried after 2 s.
 */
export class TestSentinel {
  static readonly NAME = 'omega';
  readonly dir = mkdtempSync(join(tmpdir(), 'omega-sentinel-'));
  private readonly procs: Proc[] = [];
  /** The primary now: after waitForPromotion(), the promoted replica. */
  primaryPort = 0;
  /** The replicas now (the dead primary is none of them). */
  replicaPorts: number[] = [];
  sentinelPorts: number[] = [];
  private constructor() {}

  static async create(opts: { replicas?: number; downAfterMs?: number; failoverTimeoutMs?: number } = {}): Promise<TestSentinel> {
    const s = new TestSentinel();
    try {
      await s.start(opts.replicas ?? 1, opts.downAfterMs ?? 500, opts.failoverTimeoutMs ?? 2000);
    } catch (err) {
      await s.destroy();
      throw err;
    }
    return s;
  }

  get url(): string {
    return `redis+sentinel://${this.sentinelPorts.map((p) => `127.0.0.1:${p}`).join(',')}/${TestSentinel.NAME}`;
  }

  /** The first replica (of one, usually). */
  get replicaPort(): number {
    return this.replicaPorts[0]!;
  }

  private async start(replicas: number, downAfterMs: number, failoverTimeoutMs: number): Promise<void> {
    this.primaryPort = await freePort();
    this.procs.push(start('primary', this.primaryPort, 'redis-server', redisArgs(this.primaryPort, this.dir)));
    for (let i = 0; i < replicas; i++) {
      const port = await freePort();
      this.replicaPorts.push(port);
      this.procs.push(start(`replica ${i + 1}`, port, 'redis-server', [...redisArgs(port, this.dir), '--replicaof', '127.0.0.1', String(this.primaryPort)]));
    }
    await this.waitUp(this.primaryPort);
    for (const port of this.replicaPorts) {
      await this.waitUp(port);
      await waitFor(`the replica on ${port} in sync`, () => ask(port, async (c) => /master_link_status:up/.test(await c.info('replication'))), 10_000, 25);
    }
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      this.sentinelPorts.push(port);
      // Sentinel rewrites its config file (it records what it learns), so each has its own.
      const conf = join(this.dir, `sentinel-${port}.conf`);
      writeFileSync(
        conf,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          `dir ${this.dir}`,
          `sentinel monitor ${TestSentinel.NAME} 127.0.0.1 ${this.primaryPort} 2`,
          `sentinel down-after-milliseconds ${TestSentinel.NAME} ${downAfterMs}`,
          `sentinel failover-timeout ${TestSentinel.NAME} ${failoverTimeoutMs}`,
          `sentinel parallel-syncs ${TestSentinel.NAME} ${replicas}`,
          '',
        ].join('\n'),
      );
      // `redis-server --sentinel` is what Debian's redis-sentinel runs; it works without that package too.
      this.procs.push(start(`sentinel ${i + 1}`, port, 'redis-server', [conf, '--sentinel']));
    }
    // Ready when every sentinel knows the primary, every replica and the other two sentinels.
    for (const port of this.sentinelPorts) {
      await waitFor(
        `sentinel on ${port} to see the whole setup`,
        () =>
          ask(port, async (c) => {
            const f = fields((await c.call('SENTINEL', 'MASTER', TestSentinel.NAME)) as string[]);
            return f['num-slaves'] === String(replicas) && f['num-other-sentinels'] === '2';
          }),
        15_000,
        50,
      );
    }
  }

  private waitUp(port: number): Promise<unknown> {
    return waitFor(`redis on ${port}`, () => ask(port, async (c) => (await c.ping()) === 'PONG'), 10_000, 25);
  }

  /** The primary each sentinel names now, as a port (0 for a sentinel that does not answer). */
  async primaryAsSeen(): Promise<number[]> {
    return Promise.all(
      this.sentinelPorts.map((p) =>
        ask(p, async (c) => Number(((await c.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', TestSentinel.NAME)) as string[])[1])).catch(() => 0),
      ),
    );
  }

  /**
   * Hold every replica back: each is stopped (SIGSTOP) and the replication
   * stream filled past what the sockets buffer, so what the primary writes
   * next stays in the primary's memory, lost if it dies: replicas that lag.
   * They answer nothing until the returned function resumes them.
   */
  async stallReplicas(): Promise<() => void> {
    const stalled = this.procs.filter((x) => this.replicaPorts.includes(x.port));
    for (const p of stalled) p.child.kill('SIGSTOP');
    // 64 MiB: more than the loopback socket buffers take (tcp_rmem grows to 32 MiB).
    await ask(this.primaryPort, (c) => c.set('omega-test:replication-filler', Buffer.alloc(64 << 20, 120)));
    return () => {
      for (const p of stalled) p.child.kill('SIGCONT');
    };
  }

  /** SIGKILL the primary: no shutdown, no last save, connections dropped. */
  async killPrimary(): Promise<void> {
    const p = this.procs.find((x) => x.port === this.primaryPort);
    if (p) await kill(p);
  }

  /**
   * Until every sentinel names one of the replicas as the primary and that
   * server says it is one (accepts writes); it is the primary from then on.
   * Resolves with its port.
   */
  async waitForPromotion(timeoutMs = 30_000): Promise<number> {
    const promoted = await waitFor(
      'a replica promoted',
      async () => {
        const seen = await this.primaryAsSeen();
        const p = seen[0]!;
        if (!this.replicaPorts.includes(p) || !seen.every((x) => x === p)) return 0;
        return (await ask(p, async (c) => ((await c.call('ROLE')) as string[])[0] === 'master')) ? p : 0;
      },
      timeoutMs,
      50,
    );
    // The old primary is dead: it is no replica.
    this.primaryPort = promoted;
    this.replicaPorts = this.replicaPorts.filter((p) => p !== promoted);
    return promoted;
  }

  /** Until the primary has `n` replicas online and in step (after a failover, the others follow the new one). */
  async waitForReplicas(n: number, timeoutMs = 30_000): Promise<void> {
    await waitFor(
      `${n} replicas online`,
      () => ask(this.primaryPort, async (c) => [...(await c.info('replication')).matchAll(/^slave\d+:.*state=online/gm)].length >= n),
      timeoutMs,
      50,
    );
  }

  /** A plain client of the current primary (for checking what a test wrote). */
  primaryClient(): Redis {
    return new Redis(this.primaryPort, '127.0.0.1', { maxRetriesPerRequest: 1 });
  }

  async destroy(): Promise<void> {
    await Promise.all(this.procs.map((p) => kill(p)));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** SENTINEL MASTER's flat [k, v, k, v] reply as an object. */
function fields(flat: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i]!] = flat[i + 1]!;
  return out;
}

/**
 * Three `redis-server --cluster-enabled yes` nodes joined by
 * `redis-cli --cluster create` with no replicas: every slot is served, each
 * node a third of them. Each node's cluster bus has its own free port
 * (cluster-port), not port + 10000, which may be taken or past 65535.
 */
export class TestCluster {
  readonly dir = mkdtempSync(join(tmpdir(), 'omega-cluster-'));
  private readonly procs: Proc[] = [];
  private readonly nodeArgs = new Map<number, string[]>();
  ports: number[] = [];
  private constructor() {}

  static async create(): Promise<TestCluster> {
    const c = new TestCluster();
    try {
      await c.start();
    } catch (err) {
      await c.destroy();
      throw err;
    }
    return c;
  }

  get url(): string {
    return `redis+cluster://${this.ports.map((p) => `127.0.0.1:${p}`).join(',')}`;
  }

  private async start(): Promise<void> {
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      const bus = await freePort();
      this.ports.push(port);
      this.nodeArgs.set(port, [
        ...redisArgs(port, this.dir),
        '--cluster-enabled', 'yes',
        '--cluster-config-file', join(this.dir, `nodes-${port}.conf`),
        '--cluster-port', String(bus),
        '--cluster-node-timeout', '2000',
      ]);
      this.procs.push(start(`node ${i + 1}`, port, 'redis-server', this.nodeArgs.get(port)!));
    }
    for (const port of this.ports) {
      await waitFor(`cluster node on ${port}`, () => ask(port, async (c) => (await c.ping()) === 'PONG'), 10_000, 25);
    }
    await promisify(execFile)('redis-cli', ['--cluster', 'create', ...this.ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'], {
      timeout: 30_000,
    });
    for (const port of this.ports) {
      await waitFor(`cluster state ok on ${port}`, () => ask(port, async (c) => /cluster_state:ok/.test((await c.call('CLUSTER', 'INFO')) as string)), 15_000, 50);
    }
  }

  /** CLUSTER KEYSLOT, asked of a node. */
  keyslot(key: string): Promise<number> {
    return ask(this.ports[0]!, async (c) => Number(await c.call('CLUSTER', 'KEYSLOT', key)));
  }

  /** The port of the node serving `key`'s slot. */
  async nodeOf(key: string): Promise<number> {
    const slot = await this.keyslot(key);
    const ranges = (await ask(this.ports[0]!, (c) => c.call('CLUSTER', 'SLOTS'))) as Array<[number, number, [string, number, ...unknown[]]]>;
    const r = ranges.find(([lo, hi]) => slot >= lo && slot <= hi);
    if (!r) throw new Error(`no node serves slot ${slot}`);
    return Number(r[2][1]);
  }

  /** INFO `section` of one node. */
  info(port: number, section: string): Promise<string> {
    return ask(port, (c) => c.info(section));
  }

  /**
   * Stop one node (SHUTDOWN SAVE, so its data and its place in the cluster
   * come back), and start it again when `down` resolves. Until then the
   * cluster is down: its slots have no other node.
   */
  async restartNode(port: number, down: () => Promise<void>): Promise<void> {
    const i = this.procs.findIndex((p) => p.port === port);
    const p = this.procs[i]!;
    const exited = new Promise((r) => p.child.once('exit', r));
    await ask(port, (c) => c.call('SHUTDOWN', 'SAVE')).catch(() => {}); // the connection drops as it goes
    await exited;
    await down();
    this.procs[i] = start(p.name, port, 'redis-server', this.nodeArgs.get(port)!);
    await waitFor(`cluster state ok on ${port}`, () => ask(port, async (c) => /cluster_state:ok/.test((await c.call('CLUSTER', 'INFO')) as string)), 15_000, 50);
  }

  async destroy(): Promise<void> {
    await Promise.all(this.procs.map((p) => kill(p)));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
