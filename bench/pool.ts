/**
 * `make bench-pool`: a warm pool that keeps up, through the master, on one
 * host (python sandboxes):
 *
 *   stream  20 creates one after another, 50 ms apart, with a floor of 3:
 *           how many were served warm (target: all), and their times
 *   burst   30 creates at once with a pool that had 10: the slowest answer
 *           and how many were warm, with the pool following demand
 *           (OMEGA_POOL_MAX 30) beside the same burst with a fixed pool
 *           (OMEGA_POOL_MAX 10), in the same run; then what each holds
 *           after it and a second burst
 *   starts  the first burst with 1, 2 and 4 starts at once: what this
 *           host bears (OMEGA_POOL_REFILL_PARALLEL)
 */
import { request } from 'undici';
import { TestRedis } from '../test/helpers/redis.js';
import { startStack, type BenchStack } from './stack.js';
import { pct } from './stats.js';


async function withStack<T>(redisUrl: string, manager: Record<string, string>, fn: (stack: BenchStack, create: () => Promise<{ ms: number; source: string; id: string }>) => Promise<T>): Promise<T> {
  const stack = await startStack(redisUrl, { manager: { OMEGA_TEMPLATES: 'python', OMEGA_CAPACITY: '60', ...manager }, master: { OMEGA_TEMPLATES: 'python' } });
  const made: string[] = [];
  const call = async (method: 'POST' | 'DELETE', path: string, body?: unknown) => {
    const r = await request(`${stack.master.apiUrl}${path}`, { method, headers: { authorization: `Bearer ${stack.apiToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, body: body === undefined ? undefined : JSON.stringify(body) });
    const json = (await r.body.json()) as Record<string, any>;
    if (r.statusCode >= 300) throw new Error(`${method} ${path}: ${r.statusCode} ${JSON.stringify(json)}`);
    return json;
  };
  const create = async () => {
    const t0 = performance.now();
    const sb = await call('POST', '/v1/sandboxes', { template: 'python' });
    made.push(sb.id);
    return { ms: performance.now() - t0, source: sb.source as string, id: sb.id as string };
  };
  try {
    await stack.manager.pool.whenFull();
    return await fn(stack, create);
  } finally {
    for (const id of made) await call('DELETE', `/v1/sandboxes/${id}`).catch(() => undefined);
    await stack.stop();
  }
}

async function main(): Promise<void> {
  const redis = await TestRedis.create();
  try {
    const stream = await withStack(redis.url, { OMEGA_POOL_SIZE: '3', OMEGA_POOL_MAX: '20' }, async (stack, create) => {
      const out: Array<{ ms: number; source: string }> = [];
      for (let i = 0; i < 20; i++) {
        out.push(await create());
        await new Promise((r) => setTimeout(r, 50));
      }
      return { out, stats: stack.manager.pool.stats().python! };
    });
    const warm = stream.out.filter((c) => c.source === 'pool').length;
    const ms = stream.out.map((c) => c.ms);
    console.log(`stream: 20 creates 50 ms apart, floor 3: ${warm}/20 warm (${stream.stats.waited} after waiting for a refill in flight); create p50 ${pct(ms, 50).toFixed(0)} ms, p99 ${pct(ms, 99).toFixed(0)} ms, slowest ${Math.max(...ms).toFixed(0)} ms`);

    const line = (out: Array<{ ms: number; source: string }>) => {
      const ms = out.map((c) => c.ms);
      return `slowest ${Math.max(...ms).toFixed(0)} ms, p50 ${pct(ms, 50).toFixed(0)} ms, ${out.filter((c) => c.source === 'pool').length}/30 warm`;
    };
    for (const [name, max] of [
      ['following demand (OMEGA_POOL_MAX=30)', '30'],
      ['fixed (OMEGA_POOL_MAX=10)          ', '10'],
    ] as const) {
      const r = await withStack(redis.url, { OMEGA_POOL_SIZE: '10', OMEGA_POOL_MAX: max }, async (stack, create) => {
        const first = await Promise.all(Array.from({ length: 30 }, create));
        const grown = stack.manager.pool.stats().python!.target;
        await stack.manager.pool.whenFull();
        const ready = stack.manager.pool.stats().python!.ready;
        const second = await Promise.all(Array.from({ length: 30 }, create));
        return { first, second, grown, ready };
      });
      console.log(`burst of 30, pool of 10, ${name}: first ${line(r.first)}; then the pool aims at ${r.grown} and holds ${r.ready}; a second burst: ${line(r.second)}`);
    }
    for (const parallel of ['1', '2', '4']) {
      const out = await withStack(redis.url, { OMEGA_POOL_SIZE: '10', OMEGA_POOL_MAX: '10', OMEGA_POOL_REFILL_PARALLEL: parallel }, (_stack, create) => Promise.all(Array.from({ length: 30 }, create)));
      console.log(`burst of 30, pool of 10, OMEGA_POOL_REFILL_PARALLEL=${parallel}: ${line(out)}`);
    }
  } finally {
    await redis.destroy();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
