/**
 * `make bench-control-plane`: the control plane at scale. The real
 * `omega master` and `omega dns` (child processes) on a real Redis, with
 * BENCH_HOSTS (1,000) simulated hosts (bench/sim-host.ts, in this process,
 * on loopback addresses) standing in for the managers. At each level of
 * BENCH_LEVELS running sandboxes (100, 10,000, 100,000):
 *
 *   create   200 creates one after another through the master: p50, p99
 *   list     a page of 100 (GET /v1/sandboxes), the first and one 20 pages in,
 *            and a filtered one that matches nothing (the most a page looks at)
 *   idle     over 30 s (a reconcile period) with nothing asked of the
 *            master: its CPU, and the Redis commands its timers send a
 *            second (expiry, hosts, reconciliation sweeps, snapshots;
 *            MONITOR, by connection name, a script's own calls counted too)
 *   metrics  one /metrics scrape of the master
 *   redis    used_memory per sandbox, MEMORY USAGE of a sandbox record and a
 *            host's container table
 *   dns      the DNS server's RSS, and a restart: until it answers a
 *            sandbox's name again (OMEGA_DNS_SNAPSHOT_FILE set, as `omega up` does)
 *
 * Then, at the last level: 10,000 sandboxes expire in the same second; the
 * time until all are deleted, and creates' p50/p99 meanwhile.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { connect } from 'node:net';
import { request } from 'undici';
import { createRedis } from '../src/redis/connection.js';
import { hostKeys } from '../src/redis/keys.js';
import { dig } from '../test/helpers/dns.js';
import { freePort, sleep, waitFor } from '../test/helpers/ports.js';
import { Program } from '../test/helpers/programs.js';
import { clientNames, TestRedis } from '../test/helpers/redis.js';
import { SimulatedHost } from './sim-host.js';
import { pct } from './stats.js';

const HOSTS = Number(process.env.BENCH_HOSTS ?? 1000);
const LEVELS = (process.env.BENCH_LEVELS ?? '100,10000,100000').split(',').map(Number);
const STORM = Number(process.env.BENCH_STORM ?? 10_000);
/** The idle window: the master's reconcile period (its default), so a window holds the start of a cycle. */
const IDLE_MS = 30_000;
const CAPACITY = Math.max(20, Math.ceil((Math.max(...LEVELS) * 1.2) / HOSTS));
const PREFIX = 'cp';
const TOKENS = { api: 'bench-api-token-0123456789', dns: 'bench-dns-token-0123456789', manager: 'bench-manager-token-0123456789' };

/** CPU seconds a process has used (utime + stime, clock ticks of 10 ms). */
function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

/**
 * Redis commands the master sends over `ms` (its connections are named
 * omega-master; a script's own calls follow its EVALSHA in MONITOR's
 * output, from "lua"), per second. MONITOR is read from a plain socket:
 * ioredis's MONITOR mode throws from its parser on a busy server ("Command
 * queue state error").
 */
async function masterCommandsPerSecond(port: number, rc: { call: (...a: string[]) => Promise<unknown> }, ms: number): Promise<number> {
  const names = await clientNames(rc);
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.write('MONITOR\r\n');
  let count = 0;
  let lastFromMaster = false;
  let rest = '';
  const byName = new Map<string, number>();
  socket.on('data', (chunk: Buffer) => {
    const lines = (rest + chunk.toString('latin1')).split('\r\n');
    rest = lines.pop()!;
    for (const line of lines) {
      // +1796624129.357560 [0 127.0.0.1:5555] "SET" "key" ...
      const m = /^\+[\d.]+ \[\d+ (\S+)\] "([^"]*)"/.exec(line);
      if (!m) continue;
      const [, source, command] = m as unknown as [string, string, string];
      if (source !== 'lua') lastFromMaster = (names.get(source) ?? '').startsWith('omega-master');
      if (!lastFromMaster) continue;
      count++;
      const name = `${source === 'lua' ? 'lua ' : ''}${command.toLowerCase()}`;
      byName.set(name, (byName.get(name) ?? 0) + 1);
    }
  });
  await sleep(ms);
  socket.destroy();
  if (process.env.BENCH_VERBOSE) console.error(`# the master's commands: ${JSON.stringify(Object.fromEntries([...byName].sort((a, b) => b[1] - a[1]).slice(0, 12)))}`);
  return count / (ms / 1000);
}

function rssMiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
}

async function main(): Promise<void> {
  const redis = await TestRedis.create();
  const rc = createRedis(redis.url);
  const [dnsPort, dnsApiPort, masterPort] = await Promise.all([freePort(), freePort(), freePort()]);
  const base = { PATH: process.env.PATH, HOME: process.env.HOME, OMEGA_REDIS_URL: redis.url, OMEGA_REDIS_PREFIX: PREFIX, OMEGA_LOG_LEVEL: 'warn' };
  const stateDir = mkdtempSync(join(tmpdir(), 'omega-bench-cp-'));
  const dns = new Program(
    'dns',
    'dns',
    { ...base, OMEGA_DNS_LISTEN: `127.0.0.1:${dnsPort}`, OMEGA_DNS_API_LISTEN: `127.0.0.1:${dnsApiPort}`, OMEGA_DNS_TOKEN: TOKENS.dns, OMEGA_DNS_SNAPSHOT_FILE: join(stateDir, 'zone.snapshot') },
    { restartDelayMs: 1000 },
  );
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
      // Its first cycle through 100,000 sandboxes must not be cut short by a create's own time limit.
      OMEGA_CREATE_TIMEOUT_MS: '60000',
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

    console.log('| sandboxes | create p50 / p99 | list page 1 / page 21 / filtered | master CPU idle | master Redis commands/s idle | /metrics scrape | Redis per sandbox | sandbox record / a host\'s table | DNS RSS | DNS restart to answering |');
    console.log('|---|---|---|---|---|---|---|---|---|---|');
    let running = 0;
    const create = async () => (await call('POST', '/v1/sandboxes', { template: 'python' })).id as string;
    for (const level of LEVELS) {
      // Up to the level, 32 creates at a time.
      const queue = Array.from({ length: level - running }, (_, i) => i);
      const fill0 = performance.now();
      await Promise.all(
        Array.from({ length: 32 }, async () => {
          while (queue.pop() !== undefined) await create();
        }),
      );
      if (level > running) console.error(`# ${(level - running).toLocaleString('en')} creates, 32 at a time: ${((level - running) / ((performance.now() - fill0) / 1000)).toFixed(0)} a second`);
      running = level;
      await sleep(2000);
      const times: number[] = [];
      const made: string[] = [];
      for (let i = 0; i < 200; i++) {
        const t0 = performance.now();
        made.push(await create());
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
      await call('GET', '/v1/sandboxes?limit=100&metadata.owner=nobody');
      const filteredMs = performance.now() - t0;
      t0 = performance.now();
      await request(`${apiUrl}/metrics`).then((r) => r.body.text());
      const metricsMs = performance.now() - t0;
      const cpu0 = cpuSeconds(master.pid!);
      const commands = await masterCommandsPerSecond(redis.port, rc, IDLE_MS);
      const idleCpu = (cpuSeconds(master.pid!) - cpu0) / (IDLE_MS / 1000);
      const used = Number(/used_memory:(\d+)/.exec(await rc.info('memory'))![1]);
      const anyId = (await rc.zrange(hostKeys(PREFIX).sandboxes, '0', '0'))[0]!;
      const recBytes = Number(await rc.call('MEMORY', 'USAGE', hostKeys(PREFIX).sandbox(anyId)));
      const tableBytes = Number(await rc.call('MEMORY', 'USAGE', hostKeys(PREFIX).containers('sim-0')));
      const dnsRss = rssMiB(dns.pid!);
      // A restart of the DNS server: until it answers a sandbox's name with its host's address.
      const host = (await rc.hget(hostKeys(PREFIX).sandbox(anyId), 'address'))!;
      await dns.stop();
      t0 = performance.now();
      dns.start();
      await waitFor('the restarted DNS server answers', async () => {
        const r = await dig(dnsPort, ['+time=1', `${anyId}.sandbox.test`, 'A']).catch(() => null);
        return r?.status === 'NOERROR' && r.answer.some((l) => l.endsWith(host)) ? true : null;
      }, 60_000, 20);
      const restartMs = performance.now() - t0;
      await waitFor('its API', async () => (await request(`http://127.0.0.1:${dnsApiPort}/healthz`).then((r) => (r.body.dump(), r.statusCode)).catch(() => 0)) === 200, 30_000, 50);
      console.log(
        `| ${level.toLocaleString('en')} | ${pct(times, 50).toFixed(1)} / ${pct(times, 99).toFixed(1)} ms | ${firstMs.toFixed(1)} / ${deepMs.toFixed(1)} / ${filteredMs.toFixed(1)} ms | ${(idleCpu * 100).toFixed(1)}% of a core | ${commands.toFixed(0)} | ${metricsMs.toFixed(0)} ms | ${((used - baseMemory) / level).toFixed(0)} B | ${recBytes} B / ${tableBytes} B | ${dnsRss.toFixed(0)} MiB | ${restartMs.toFixed(0)} ms |`,
      );
    }

    // STORM sandboxes expire in the same second; creates go on meanwhile.
    const k = hostKeys(PREFIX);
    const doomed = await rc.zrange(k.sandboxes, '0', String(Math.min(STORM, running) - 1));
    const before: number[] = [];
    for (let i = 0; i < 100; i++) {
      const t1 = performance.now();
      await call('DELETE', `/v1/sandboxes/${await create()}`);
      before.push(performance.now() - t1);
    }
    const now = Date.now();
    const pipe = rc.pipeline();
    for (const id of doomed) pipe.zadd(k.expiry, 'XX', now, id);
    await pipe.exec();
    const t0 = performance.now();
    const during: number[] = [];
    let left = doomed.length;
    const creating = (async () => {
      while (left > 0) {
        const t1 = performance.now();
        const id = await create();
        during.push(performance.now() - t1);
        await call('DELETE', `/v1/sandboxes/${id}`);
      }
    })();
    while (left > 0) {
      await sleep(100);
      const p = rc.pipeline();
      for (const id of doomed) p.exists(k.sandbox(id));
      left = ((await p.exec()) ?? []).filter(([, n]) => n === 1).length;
    }
    const stormMs = performance.now() - t0;
    await creating;
    console.log(
      `\n${doomed.length.toLocaleString('en')} sandboxes expiring in the same second, of ${running.toLocaleString('en')}: all deleted in ${(stormMs / 1000).toFixed(1)} s (${(doomed.length / (stormMs / 1000)).toFixed(0)} a second); creates meanwhile p50 ${pct(during, 50).toFixed(1)} / p99 ${pct(during, 99).toFixed(1)} ms (before: ${pct(before, 50).toFixed(1)} / ${pct(before, 99).toFixed(1)} ms, ${during.length} creates)`,
    );
  } finally {
    await master.stop();
    for (const h of hosts) await h.stop().catch(() => undefined);
    await dns.stop();
    rc.disconnect();
    await redis.destroy();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
