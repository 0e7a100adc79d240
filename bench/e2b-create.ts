/**
 * `make bench-e2b-create`: `Sandbox.create()` to the end of the first
 * `commands.run('echo hi')` through the real `e2b` SDK, p50/p99, beside
 * Omega's own client doing the same in the same run (POST /v1/sandboxes, the
 * WebSocket, proc.run of the same `bash -l -c 'echo hi'` the SDK runs, to its
 * exit). The SDK twice: on the `e2b` template (made for E2B clients: its
 * worker loads the E2B agent at start) and on `node` (the agent loads on its
 * first request, so a sandbox never spoken to through E2B does not carry it;
 * that first request, the SDK's Start, waits for the load). One
 * master, manager and DNS server in this process with a warm pool of each
 * template, TLS off: the SDK reaches the agent on the worker's published port
 * (its sandboxUrl option), which it learns from one GET of
 * /v1/sandboxes/:id, counted in its time. The worker is this checkout's,
 * overlaid on the images (test/helpers/e2b-image.ts). Between measured runs
 * the pools refill (not measured). Target: p50 under 50 ms.
 */
import { Sandbox } from 'e2b';
import { e2bApiKey } from '../src/e2b-key.js';
import { ENVD_VERSION } from '../src/protocol/envd/version.js';
import { overlayWorkerImage } from '../test/helpers/e2b-image.js';
import { TestRedis } from '../test/helpers/redis.js';
import { connectWorker } from '../test/helpers/worker-client.js';
import { startStack } from './stack.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 50);
const TEMPLATES = ['e2b', 'node'] as const;
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};
const fmt = (xs: number[]) => `p50=${pct(xs, 50).toFixed(1)}ms p99=${pct(xs, 99).toFixed(1)}ms (n=${xs.length})`;

const teardowns: Array<() => void> = [];
// Before Redis starts: a failed build (no Docker engine) then leaves no redis-server behind.
const imagePrefix = overlayWorkerImage({ teardown: (fn) => teardowns.push(fn) }, [...TEMPLATES]);
const redis = await TestRedis.create();
const stack = await startStack(redis.url, {
  manager: { OMEGA_TEMPLATES: TEMPLATES.join(','), OMEGA_POOL_SIZE: TEMPLATES.map((t) => `${t}=2`).join(','), OMEGA_IMAGE_PREFIX: imagePrefix, OMEGA_HOST_ID: 'bench-e2b' },
  master: { OMEGA_TEMPLATES: TEMPLATES.join(',') },
});
try {
  const api = stack.master.apiUrl;
  const opts = { apiKey: e2bApiKey(stack.apiToken), apiUrl: api, domain: 'sandbox.test' };
  const auth = { authorization: `Bearer ${stack.apiToken}` };
  const poolsReady = async () => {
    for (;;) {
      const stats = stack.manager.pool.stats();
      if (TEMPLATES.every((t) => stats[t]!.starting === 0 && stats[t]!.ready >= 2)) return;
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const sdk: Record<(typeof TEMPLATES)[number], number[]> = { e2b: [], node: [] };
  const own: number[] = [];
  for (let i = 0; i <= RUNS; i++) {
    for (const template of TEMPLATES) {
      await poolsReady();
      const t0 = performance.now();
      const created = await Sandbox.create(template, opts);
      const { port } = (await (await fetch(`${api}/v1/sandboxes/${created.sandboxId}`, { headers: auth })).json()) as { port: number };
      const sbx = new Sandbox({ sandboxId: created.sandboxId, envdVersion: ENVD_VERSION, envdAccessToken: (created as unknown as { envdAccessToken: string }).envdAccessToken, sandboxUrl: `http://127.0.0.1:${port}`, ...opts });
      if ((await sbx.commands.run('echo hi')).stdout !== 'hi\n') throw new Error('the SDK run said something else');
      if (i > 0) sdk[template].push(performance.now() - t0);
      await sbx.kill();
    }

    await poolsReady();
    const t0 = performance.now();
    const res = await fetch(`${api}/v1/sandboxes`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '{"template":"node"}' });
    const sb = (await res.json()) as { id: string; port: number; token: string };
    const ws = await connectWorker(null, `ws://127.0.0.1:${sb.port}/`, sb.token);
    if ((await ws.runToEnd({ command: '/bin/bash', args: ['-l', '-c', 'echo hi'] })).stdout !== 'hi\n') throw new Error('the WebSocket run said something else');
    if (i > 0) own.push(performance.now() - t0);
    ws.terminate();
    await fetch(`${api}/v1/sandboxes/${sb.id}`, { method: 'DELETE', headers: auth });
  }
  console.log(`create to the end of the first echo hi, warm pool, ${RUNS} runs each (the first of each unmeasured)`);
  console.log(`  e2b SDK  Sandbox.create + commands.run, e2b template    ${fmt(sdk.e2b)}`);
  console.log(`  e2b SDK  Sandbox.create + commands.run, node template   ${fmt(sdk.node)}`);
  console.log(`  Omega    POST /v1/sandboxes + WS proc.run, node          ${fmt(own)}`);
} finally {
  await stack.stop();
  await redis.destroy();
  for (const fn of teardowns) fn();
}
