/**
 * `make bench-noisy`: what a sandbox writing as fast as it can until its
 * workspace quota costs its neighbour on the same host.
 *
 * Two sandboxes on one manager with the isolation on (their own network,
 * a workspace filesystem each, OMEGA_SANDBOX_DISK_MB=1024). The neighbour
 * measures, first with the writer idle (the reference, same run), then while
 * the writer fills its workspace with dd until ENOSPC, deletes it and starts
 * again:
 *
 *   fsync write  user code in the neighbour writing 64 KiB to its workspace
 *                and fsync-ing it, one after another (the latency of each)
 *   http         GET /healthz of the neighbour's worker from the host (its
 *                agent's responsiveness)
 *
 * Prints p50/p99 of each, idle and noisy, and noisy/idle. Needs the Docker
 * engine, root (loop devices) and `make images`.
 */
import { randomBytes } from 'node:crypto';
import { request } from 'undici';
import { loadConfig } from '../manager/config.js';
import { ManagerServer } from '../manager/server.js';
import { createLogger } from '../src/log.js';
import { TestRedis } from '../test/helpers/redis.js';
import { connectWorker } from '../test/helpers/worker-client.js';
import { pct } from './stats.js';

const TOKEN = randomBytes(16).toString('hex');
const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 300);

const fmt = (xs: number[]) => `p50=${pct(xs, 50).toFixed(2)}ms p99=${pct(xs, 99).toFixed(2)}ms (n=${xs.length})`;

/** User code: SAMPLES writes of 64 KiB, each fsync'd; prints each one's ms as JSON. */
const FSYNC_WRITES = `
const fs = require('fs');
const buf = Buffer.alloc(65536, 7);
const out = [];
for (let i = 0; i < ${SAMPLES}; i++) {
  const t0 = process.hrtime.bigint();
  const fd = fs.openSync('/workspace/probe-' + (i % 8), 'w');
  fs.writeSync(fd, buf);
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  out.push(Number(process.hrtime.bigint() - t0) / 1e6);
}
console.log(JSON.stringify(out));`;

async function main(): Promise<void> {
  const redis = await TestRedis.create();
  const config = loadConfig({
    env: {
      OMEGA_REDIS_URL: redis.url,
      OMEGA_REDIS_PREFIX: 'benchnoisy',
      OMEGA_HOST_ID: 'bench-noisy',
      OMEGA_MANAGER_LISTEN: '127.0.0.1:0',
      OMEGA_MANAGER_TOKEN: TOKEN,
      OMEGA_TEMPLATES: 'node',
      OMEGA_POOL_SIZE: '0',
      OMEGA_SANDBOX_DISK_MB: '1024',
    },
  });
  const m = new ManagerServer(config, createLogger('manager', { level: 'warn' }));
  await m.start();
  const ids: string[] = [];
  const create = async () => {
    const id = `noisy${randomBytes(4).toString('hex')}`;
    const r = await request(`${m.apiUrl}/v1/sandboxes`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ id, template: 'node', token: TOKEN }) });
    const body = (await r.body.json()) as { hostPort: number };
    if (r.statusCode !== 201) throw new Error(`create: ${r.statusCode} ${JSON.stringify(body)}`);
    ids.push(id);
    return { id, port: body.hostPort, client: await connectWorker(null, `ws://127.0.0.1:${body.hostPort}/`, TOKEN) };
  };
  try {
    const writer = await create();
    const neighbour = await create();
    const phase = async (name: string) => {
      const http: number[] = [];
      let done = false;
      const sampling = (async () => {
        while (!done) {
          const t0 = performance.now();
          const r = await request(`http://127.0.0.1:${neighbour.port}/healthz`);
          await r.body.dump();
          http.push(performance.now() - t0);
          await new Promise((r) => setTimeout(r, 10));
        }
      })();
      const r = await neighbour.client.runToEnd({ command: 'node', args: ['-e', FSYNC_WRITES] }, 600_000);
      done = true;
      await sampling;
      const writes = JSON.parse(r.stdout) as number[];
      console.log(`${name.padEnd(6)} fsync write 64 KiB ${fmt(writes)}   http ${fmt(http)}`);
      return { writes, http };
    };
    const idle = await phase('idle');
    // The writer: as fast as dd goes, until ENOSPC, then again.
    const { procId } = await writer.client.call('proc.run', { command: 'sh', args: ['-c', 'while true; do dd if=/dev/zero of=/workspace/fill bs=1M 2>/dev/null; sync; rm -f /workspace/fill; done'] });
    await new Promise((r) => setTimeout(r, 2000));
    const noisy = await phase('noisy');
    const st = (await writer.client.call('proc.list', {})).processes.find((p: { procId: string }) => p.procId === procId);
    await writer.client.call('proc.kill', { procId, signal: 'SIGKILL' });
    const df = await writer.client.runToEnd({ command: 'sh', args: ['-c', "df -k /workspace | awk 'NR==2 {print $2}'"] });
    console.log(`the writer's workspace: ${Math.round(Number(df.stdout) / 1024)} MiB, still running: ${st && !st.exit}`);
    console.log(`noisy/idle p50: fsync write ${(pct(noisy.writes, 50) / pct(idle.writes, 50)).toFixed(2)}, http ${(pct(noisy.http, 50) / pct(idle.http, 50)).toFixed(2)}; p99: fsync write ${(pct(noisy.writes, 99) / pct(idle.writes, 99)).toFixed(2)}, http ${(pct(noisy.http, 99) / pct(idle.http, 99)).toFixed(2)}`);
    await writer.client.close();
    await neighbour.client.close();
  } finally {
    for (const id of ids) await request(`${m.apiUrl}/v1/sandboxes/${id}`, { method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}` } }).then((r) => r.body.dump());
    await m.stop();
    await redis.destroy();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
