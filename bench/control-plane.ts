/**
 * `make bench-control-plane`: the control plane at scale, measured before it
 * is changed. The real `omega master` and `omega dns` (child processes) on a
 * real Redis, with BENCH_HOSTS (1,000) simulated hosts (bench/sim-host.ts,
 * in this process, on loopback addresses) standing in for the managers. At
 * each level of BENCH_LEVELS running sandboxes (100, 1,000, 10,000):
 *
 *   create   200 creates one after another through the master: p50, p99
 *   list     a page of 100 (GET /v1/sandboxes), the first and one 20 pages in
 *   idle     the master's CPU over 10 s with nothing asked of it (its timers:
 *            expiry, idleness, hosts, reconciliation, metrics)
 *   metrics  one /metrics scrape of the master
 *   redis    used_memory per sandbox, MEMORY USAGE of a sandbox record and a
 *            host's container table
 *   dns      the DNS server's RSS
 */
import { readFileSync } from 'node:fs';
import { request } from 'undici';
import { createRedis } from '../src/redis/connection.js';
import { hostKeys } from '../src/redis/keys.js';
import { freePort, sleep, waitFor } from '../test/helpers/ports.js';
import { Program } from '../test/helpers/programs.js';
import { TestRedis } from '../test/helpers/redis.js';
import { SimulatedHost } from './sim-host.js';
import { pct } from './stats.js';

const HOSTS = Number(process.env.BENCH_HOSTS ?? 1000);
const LEVELS = (process.env.BENCH_LEVELS ?? '100,1000,10000').split(',').map(Number);
const CAPACITY = Math.max(20, Math.ceil((Math.max(...LEVELS) * 1.2) / HOSTS));
const PREFIX = 'cp';
const TOKENS = { api: 'bench-api-token-0123456789', dns: 'bench-dns-token-0123456789', manager: 'bench-manager-token-0123456789' };

/** CPU seconds a process has used (utime + stime, clock ticks of 10 ms). */
function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

function rssMiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
}

async function main(): Promise<void> {
  const redis = await TestRedis.create();
  const rc = createRedis(redis.url);
  const [dnsPort, dnsApiPort, masterPort] = await Promise.all([freePort(), freePort(), freePort()]);
  const base = { PATH: process.env.PATH, HOME: process.env.HOME, OMEGA_REDIS_URL: redis.url, OMEGA_REDIS_PREFIX: PREFIX, OMEGA_LOG_LEVEL: 'warn' };
  const dns = new Program('dns', 'dns', { ...base, OMEGA_DNS_LISTEN: `127.0.0.1:${dnsPort}`, OMEGA_DNS_API_LISTEN: `127.0.0.1:${dnsApiPort}`, OMEGA_DNS_TOKEN: TOKENS.dns }, { restartDelayMs: 1000 });
  const master = new Program(
    'master',
    'master',
    {
      ...base,
      OMEGA_MASTER_LISTEN: `127.0.0.1:${masterPort}`,
      OMEGA_API_TOKEN: TOKENS.api,
      OMEGA_DNS_API_URL: `http://127.0.0.1:${dnsApiPort}`,
      OMEGA_DNS_TOKEN: TOKENS.dns,
      OMEGA_MANAGER_TOKEN: TOKENS.manager,
      OMEGA_PROVIDER: 'none',
      OMEGA_TEMPLATES: 'python',
      OMEGA_DEFAULT_TIMEOUT_SECONDS: '86400',
      OMEGA_MAX_TIMEOUT_SECONDS: '86400',
    },
    { restartDelayMs: 1000 },
  );
  const hosts: SimulatedHost[] = [];
  const apiUrl = `http://127.0.0.1:${masterPort}`;
  const call = async (method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown) => {
    const r = await request(`${apiUrl}${path}`, { method, headers: { authorization: `Bearer ${TOKENS.api}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.body.text();
    if (r.statusCode >= 300) throw new Error(`${method} ${path}: ${r.statusCode} ${text.slice(0, 300)}`);
    return text ? (JSON.parse(text) as Record<string, any>) : {};
  };
  try {
    dns.start();
    await waitFor('dns', async () => (await request(`http://127.0.0.1:${dnsApiPort}/healthz`).then((r) => (r.body.dump(), r.statusCode)).catch(() => 0)) === 200, 30_000, 100);
    for (let i = 0; i < HOSTS; i++) {
      const h = new SimulatedHost({ redis: rc, prefix: PREFIX, hostId: `sim-${i}`, address: `127.1.${(i + 1) >> 8}.${(i + 1) & 255}`, capacity: CAPACITY, createDelayMs: 2, managerToken: TOKENS.manager });
      await h.start();
      hosts.push(h);
    }
    master.start();
    await waitFor('master', async () => (await request(`${apiUrl}/healthz`).then((r) => (r.body.dump(), r.statusCode)).catch(() => 0)) === 200, 30_000, 100);
    await waitFor('every host admitted', async () => (await rc.zcard(hostKeys(PREFIX).load)) === HOSTS, 60_000, 200);
    const baseMemory = Number(/used_memory:(\d+)/.exec(await rc.info('memory'))![1]);

    console.log(`| sandboxes | create p50 | create p99 | list page 1 / page 21 | master CPU idle | /metrics scrape | Redis per sandbox | sandbox record / a host's table | DNS RSS |`);
    console.log('|---|---|---|---|---|---|---|---|---|');
    let running = 0;
    for (const level of LEVELS) {
      // Up to the level, 32 creates at a time.
      const queue = Array.from({ length: level - running }, (_, i) => i);
      await Promise.all(
        Array.from({ length: 32 }, async () => {
          while (queue.pop() !== undefined) await call('POST', '/v1/sandboxes', { template: 'python' });
        }),
      );
      running = level;
      await sleep(2000);
      const times: number[] = [];
      const made: string[] = [];
      for (let i = 0; i < 200; i++) {
        const t0 = performance.now();
        made.push((await call('POST', '/v1/sandboxes', { template: 'python' })).id);
        times.push(performance.now() - t0);
      }
      for (const id of made) await call('DELETE', `/v1/sandboxes/${id}`);
      let t0 = performance.now();
      let page = await call('GET', '/v1/sandboxes?limit=100');
      const firstMs = performance.now() - t0;
      let deepMs = NaN;
      for (let p = 2; p <= 21 && page.nextCursor; p++) {
        t0 = performance.now();
        page = await call('GET', `/v1/sandboxes?limit=100&cursor=${page.nextCursor}`);
        if (p === 21) deepMs = performance.now() - t0;
      }
      t0 = performance.now();
      await request(`${apiUrl}/metrics`).then((r) => r.body.text());
      const metricsMs = performance.now() - t0;
      const cpu0 = cpuSeconds(master.pid!);
      await sleep(10_000);
      const idleCpu = (cpuSeconds(master.pid!) - cpu0) / 10;
      const used = Number(/used_memory:(\d+)/.exec(await rc.info('memory'))![1]);
      const anyId = (await rc.zrange(hostKeys(PREFIX).sandboxes, '0', '0'))[0]!;
      const recBytes = Number(await rc.call('MEMORY', 'USAGE', hostKeys(PREFIX).sandbox(anyId)));
      const tableBytes = Number(await rc.call('MEMORY', 'USAGE', hostKeys(PREFIX).containers('sim-0')));
      console.log(
        `| ${level.toLocaleString('en')} | ${pct(times, 50).toFixed(1)} ms | ${pct(times, 99).toFixed(1)} ms | ${firstMs.toFixed(1)} / ${deepMs.toFixed(1)} ms | ${(idleCpu * 100).toFixed(1)}% of a core | ${metricsMs.toFixed(0)} ms | ${((used - baseMemory) / level).toFixed(0)} B | ${recBytes} B / ${tableBytes} B | ${rssMiB(dns.pid!).toFixed(0)} MiB |`,
      );
    }
  } finally {
    await master.stop();
    for (const h of hosts) await h.stop().catch(() => undefined);
    await dns.stop();
    rc.disconnect();
    await redis.destroy();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
