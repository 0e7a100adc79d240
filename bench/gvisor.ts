/**
 * `make bench-gvisor`: sandboxes under gVisor (runsc) beside runc, in the
 * same run: a cold create through the manager until the worker answers, and
 * user code making syscalls (200,000 getpid-class calls: `dd bs=1` of 100,000
 * bytes, a read and a write each) and forking (50 fork+exec of /bin/true).
 * Needs `make runsc` and `make images`.
 */
import { randomBytes } from 'node:crypto';
import { request } from 'undici';
import { loadConfig } from '../manager/config.js';
import { ManagerServer } from '../manager/server.js';
import { createLogger } from '../src/log.js';
import { TestRedis } from '../test/helpers/redis.js';
import { connectWorker } from '../test/helpers/worker-client.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 10);
const TOKEN = randomBytes(16).toString('hex');
const p50 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const redis = await TestRedis.create();
  const managers: Record<string, ManagerServer> = {};
  for (const runtime of ['runc', 'runsc']) {
    const m = new ManagerServer(
      loadConfig({
        env: {
          OMEGA_REDIS_URL: redis.url,
          OMEGA_REDIS_PREFIX: `benchgv${runtime}`,
          OMEGA_HOST_ID: `bench-gv-${runtime}`,
          OMEGA_MANAGER_LISTEN: '127.0.0.1:0',
          OMEGA_MANAGER_TOKEN: TOKEN,
          OMEGA_TEMPLATES: 'node',
          OMEGA_POOL_SIZE: '0',
          OMEGA_SANDBOX_RUNTIME: runtime === 'runc' ? '' : runtime,
        },
      }),
      createLogger('manager', { level: 'warn' }),
    );
    await m.start();
    managers[runtime] = m;
  }
  const results: Record<string, { create: number[]; syscalls: number[]; forks: number[] }> = { runc: { create: [], syscalls: [], forks: [] }, runsc: { create: [], syscalls: [], forks: [] } };
  try {
    for (let i = 0; i < RUNS; i++) {
      for (const runtime of ['runc', 'runsc']) {
        const m = managers[runtime]!;
        const id = `gv${runtime}${i}${randomBytes(3).toString('hex')}`;
        const t0 = performance.now();
        const r = await request(`${m.apiUrl}/v1/sandboxes`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ id, template: 'node', token: TOKEN }) });
        const body = (await r.body.json()) as { hostPort: number };
        if (r.statusCode !== 201) throw new Error(`create ${runtime}: ${r.statusCode} ${JSON.stringify(body)}`);
        results[runtime]!.create.push(performance.now() - t0);
        if (i < 3) {
          const c = await connectWorker(null, `ws://127.0.0.1:${body.hostPort}/`, TOKEN);
          const timed = async (script: string) => {
            const out = await c.runToEnd({ command: 'sh', args: ['-c', `s=$(date +%s%N); ${script}; e=$(date +%s%N); echo $(( (e - s) / 1000000 ))`] }, 600_000);
            return Number(out.stdout.trim().split('\n').pop());
          };
          results[runtime]!.syscalls.push(await timed('dd if=/dev/zero of=/dev/null bs=1 count=100000 2>/dev/null'));
          results[runtime]!.forks.push(await timed('i=0; while [ $i -lt 50 ]; do /bin/true; i=$((i+1)); done'));
          await c.close();
        }
        await request(`${m.apiUrl}/v1/sandboxes/${id}`, { method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}` } }).then((x) => x.body.dump());
        process.stderr.write('.');
      }
    }
    process.stderr.write('\n');
    for (const runtime of ['runc', 'runsc']) {
      const r = results[runtime]!;
      console.log(`${runtime.padEnd(6)} cold create p50 ${p50(r.create).toFixed(0)} ms (n=${r.create.length})   200k syscalls p50 ${p50(r.syscalls)} ms   50 fork+exec p50 ${p50(r.forks)} ms`);
    }
    const [a, b] = [results.runc!, results.runsc!];
    console.log(`runsc/runc: create ${(p50(b.create) / p50(a.create)).toFixed(2)}, syscalls ${(p50(b.syscalls) / p50(a.syscalls)).toFixed(1)}, fork+exec ${(p50(b.forks) / p50(a.forks)).toFixed(1)}`);
  } finally {
    for (const m of Object.values(managers)) await m.stop();
    await redis.destroy();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
