/**
 * `make bench-pause`: how fast a paused sandbox comes back, through the
 * master (one Redis script to take the resume, the manager's call, one to
 * settle it), beside `docker unpause` alone on a container of the same
 * image (the reference, same run):
 *
 *   frozen   paused with memory (the cgroup freezer); resume until the API answers
 *   stopped  paused without memory (the container stopped); resume until the
 *            API answers, its worker claimed again and answering
 *
 * Targets: frozen p50 < 50 ms, stopped < 400 ms.
 */
import { execFileSync } from 'node:child_process';
import { request } from 'undici';
import { TestRedis } from '../test/helpers/redis.js';
import { startStack } from './stack.js';
import { pct } from './stats.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 20);
const fmt = (xs: number[]) => `p50=${pct(xs, 50).toFixed(1)}ms p99=${pct(xs, 99).toFixed(1)}ms (n=${xs.length})`;

async function main(): Promise<void> {
  const redis = await TestRedis.create();
  const stack = await startStack(redis.url, { manager: { OMEGA_TEMPLATES: 'node', OMEGA_POOL_SIZE: '0' }, master: { OMEGA_TEMPLATES: 'node' } });
  const call = async (method: string, path: string, body?: unknown) => {
    const r = await request(`${stack.master.apiUrl}${path}`, { method: method as 'POST', headers: { authorization: `Bearer ${stack.apiToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, body: body === undefined ? undefined : JSON.stringify(body) });
    const json = (await r.body.json()) as Record<string, any>;
    if (r.statusCode >= 300) throw new Error(`${method} ${path}: ${r.statusCode} ${JSON.stringify(json)}`);
    return json;
  };
  const reference = execFileSync('docker', ['run', '-d', '--rm', '--entrypoint', 'sleep', 'omega/sandbox-node:latest', '600'], { encoding: 'utf8' }).trim();
  try {
    const sb = await call('POST', '/v1/sandboxes', { template: 'node' });
    const unpause: number[] = [];
    const frozen: number[] = [];
    const stopped: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      execFileSync('docker', ['pause', reference]);
      let t0 = performance.now();
      execFileSync('docker', ['unpause', reference]);
      unpause.push(performance.now() - t0);
      await call('POST', `/v1/sandboxes/${sb.id}/pause`, { memory: true });
      t0 = performance.now();
      await call('POST', `/v1/sandboxes/${sb.id}/resume`, {});
      frozen.push(performance.now() - t0);
      await call('POST', `/v1/sandboxes/${sb.id}/pause`, { memory: false });
      t0 = performance.now();
      await call('POST', `/v1/sandboxes/${sb.id}/resume`, {});
      stopped.push(performance.now() - t0);
      process.stderr.write('.');
    }
    process.stderr.write('\n');
    console.log(`docker unpause (CLI, reference)  ${fmt(unpause)}`);
    console.log(`resume frozen  (master API)      ${fmt(frozen)}  target p50 < 50 ms: ${pct(frozen, 50) < 50 ? 'ok' : 'MISSED'}`);
    console.log(`resume stopped (master API)      ${fmt(stopped)}  target p50 < 400 ms: ${pct(stopped, 50) < 400 ? 'ok' : 'MISSED'}`);
    await call('DELETE', `/v1/sandboxes/${sb.id}`);
  } finally {
    execFileSync('docker', ['rm', '-f', reference], { stdio: 'ignore' });
    await stack.stop();
    await redis.destroy();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
