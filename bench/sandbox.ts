/**
 * `make bench-sandbox`: how fast a sandbox is ready, over 30 creates each.
 *
 *   bare   a plain container of the same image started through the Docker API
 *          (no volume, no limits, no claim) until its /healthz answers: the
 *          reference, measured in the same run;
 *   cold   POST /v1/sandboxes on a manager with no warm pool;
 *   warm   POST /v1/sandboxes with the pool warm (the pool refills between
 *          creates, outside the measured time);
 *   open   the same cold and warm creates with the isolation off
 *          (OMEGA_SANDBOX_NETWORK=bridge: Docker's default bridge, no
 *          firewall; OMEGA_SANDBOX_DISK_MB=0: a plain volume), beside the
 *          isolated ones: what the network and the quota cost;
 *   pernet the alternative not taken, one network per sandbox: what creating
 *          and removing a bridge network adds to each create.
 *
 * Prints p50/p99 of each and cold/bare. Targets: cold within 1.3 x bare,
 * warm p50 under 50 ms. Needs the Docker engine and `make images`.
 */
import { randomBytes } from 'node:crypto';
import Docker from 'dockerode';
import { request } from 'undici';
import { loadConfig } from '../manager/config.js';
import { ManagerServer } from '../manager/server.js';
import { createLogger } from '../src/log.js';
import { TestRedis } from '../test/helpers/redis.js';
import { pct } from './stats.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 30);
const TEMPLATE = process.env.BENCH_TEMPLATE ?? 'python';
const IMAGE = `omega/sandbox-${TEMPLATE}:latest`;
const TOKEN = randomBytes(16).toString('hex');

const fmt = (xs: number[]) => `p50=${pct(xs, 50).toFixed(1)}ms p99=${pct(xs, 99).toFixed(1)}ms (n=${xs.length})`;

async function healthy(port: number): Promise<void> {
  for (;;) {
    try {
      const r = await request(`http://127.0.0.1:${port}/healthz`, { headersTimeout: 1000 });
      await r.body.dump();
      if (r.statusCode === 200) return;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function bare(docker: Docker): Promise<number> {
  const t0 = performance.now();
  const c = await docker.createContainer({
    Image: IMAGE,
    Env: [`OMEGA_WORKER_CLAIM_SECRET=${TOKEN}`],
    ExposedPorts: { '8080/tcp': {} },
    HostConfig: { PortBindings: { '8080/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] } },
  });
  await c.start();
  const port = Number((await c.inspect()).NetworkSettings.Ports['8080/tcp']![0]!.HostPort);
  await healthy(port);
  const ms = performance.now() - t0;
  await c.remove({ force: true });
  return ms;
}

async function manager(redis: TestRedis, pool: number, network: 'isolated' | 'bridge' = 'isolated') {
  const config = loadConfig({
    env: {
      OMEGA_REDIS_URL: redis.url,
      OMEGA_REDIS_PREFIX: `bench${pool}${network}`,
      OMEGA_HOST_ID: `bench-${pool}-${network}`,
      OMEGA_SANDBOX_NETWORK: network,
      // Isolation off is the network and the workspace's own filesystem both off.
      ...(network === 'bridge' ? { OMEGA_SANDBOX_DISK_MB: '0' } : {}),
      OMEGA_MANAGER_LISTEN: '127.0.0.1:0',
      OMEGA_MANAGER_TOKEN: TOKEN,
      OMEGA_TEMPLATES: TEMPLATE,
      OMEGA_POOL_SIZE: String(pool),
      OMEGA_CAPACITY: '1000',
    },
  });
  const m = new ManagerServer(config, createLogger('manager', { level: 'warn' }));
  await m.start();
  return m;
}

async function create(m: ManagerServer, id: string): Promise<number> {
  const t0 = performance.now();
  const r = await request(`${m.apiUrl}/v1/sandboxes`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ id, template: TEMPLATE, token: TOKEN }),
  });
  const body = await r.body.text();
  if (r.statusCode !== 201) throw new Error(`create failed: ${r.statusCode} ${body}`);
  return performance.now() - t0;
}

async function remove(m: ManagerServer, id: string): Promise<void> {
  const r = await request(`${m.apiUrl}/v1/sandboxes/${id}`, { method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}` } });
  await r.body.dump();
}

async function main(): Promise<void> {
  const docker = new Docker();
  await docker.getImage(IMAGE).inspect();
  const redis = await TestRedis.create();
  const cold = await manager(redis, 0);
  const warm = await manager(redis, 1);
  const coldOpen = await manager(redis, 0, 'bridge');
  const warmOpen = await manager(redis, 1, 'bridge');
  try {
    await warm.pool.whenFull();
    await warmOpen.pool.whenFull();
    const bares: number[] = [];
    const colds: number[] = [];
    const warms: number[] = [];
    const coldOpens: number[] = [];
    const warmOpens: number[] = [];
    // Interleaved, so drift on the machine touches all three alike.
    for (let i = 0; i < RUNS; i++) {
      bares.push(await bare(docker));
      const c = `bc${i}${randomBytes(3).toString('hex')}`;
      colds.push(await create(cold, c));
      await remove(cold, c);
      await warm.pool.whenFull();
      const w = `bw${i}${randomBytes(3).toString('hex')}`;
      warms.push(await create(warm, w));
      await remove(warm, w);
      const co = `bo${i}${randomBytes(3).toString('hex')}`;
      coldOpens.push(await create(coldOpen, co));
      await remove(coldOpen, co);
      await warmOpen.pool.whenFull();
      const wo = `bp${i}${randomBytes(3).toString('hex')}`;
      warmOpens.push(await create(warmOpen, wo));
      await remove(warmOpen, wo);
      process.stderr.write('.');
    }
    process.stderr.write('\n');
    const ratio = pct(colds, 50) / pct(bares, 50);
    console.log(`template ${TEMPLATE}, ${RUNS} creates each`);
    console.log(`bare docker run to healthy  ${fmt(bares)}`);
    console.log(`cold create (manager)       ${fmt(colds)}`);
    console.log(`warm create (pool)          ${fmt(warms)}`);
    console.log(`isolation off (bridge): cold ${fmt(coldOpens)}, warm ${fmt(warmOpens)}`);
    const nets: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const t0 = performance.now();
      const n = await docker.createNetwork({ Name: `omega-bench-net-${i}-${randomBytes(3).toString('hex')}`, Driver: 'bridge', Options: { 'com.docker.network.bridge.enable_icc': 'false' } });
      const created = performance.now() - t0;
      await n.remove();
      nets.push(created);
    }
    console.log(`one network per sandbox: creating it ${fmt(nets)} more per create (and its removal after)`);
    console.log(`isolated/open p50: cold ${(pct(colds, 50) / pct(coldOpens, 50)).toFixed(2)}, warm ${(pct(warms, 50) / pct(warmOpens, 50)).toFixed(2)}`);
    console.log(`cold/bare p50 = ${ratio.toFixed(2)} (target <= 1.3) ${ratio <= 1.3 ? 'ok' : 'MISSED'}`);
    console.log(`warm p50 ${pct(warms, 50).toFixed(1)} ms (target < 50 ms) ${pct(warms, 50) < 50 ? 'ok' : 'MISSED'}`);
    console.log(JSON.stringify({ template: TEMPLATE, runs: RUNS, bare: { p50: pct(bares, 50), p99: pct(bares, 99) }, cold: { p50: pct(colds, 50), p99: pct(colds, 99) }, warm: { p50: pct(warms, 50), p99: pct(warms, 99) }, ratio }));
  } finally {
    await cold.stop();
    await warm.stop();
    await coldOpen.stop();
    await warmOpen.stop();
    await redis.destroy();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
