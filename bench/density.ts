/**
 * `make bench-density`: what a host holds. One host (a manager with no warm
 * pool) is filled with idle sandboxes of each template, one create after
 * another through the master, until BENCH_DENSITY_N (default 60) or until
 * the machine's available memory falls under 2 GiB. Then, with every
 * sandbox idle:
 *
 *   cgroup  what the kernel charges each sandbox's memory cgroup (cgroup v1:
 *           usage, and its rss + cache from memory.stat)
 *   RSS     the resident memory of its processes, summed
 *   PSS     the same with every shared page divided among its sharers (the
 *           image's node or python binary, libraries): summed over every
 *           sandbox, shared pages count once
 *   agent   the worker process alone (RSS, PSS)
 *   create  the create's time as the host fills (first ten, last ten)
 *
 * and how many such sandboxes fit in 24 GiB: by what they use idle (PSS plus
 * the kernel's share of the cgroup), and by their memory limit (what a host
 * must hold if every sandbox used all it may).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'undici';
import { TestRedis } from '../test/helpers/redis.js';
import { startStack } from './stack.js';
import { pct } from './stats.js';

const N = Number(process.env.BENCH_DENSITY_N ?? 60);
const MEMORY_MB = 512;
const HOST_GIB = 24;
const MiB = 1024 * 1024;

const availableBytes = () => Number(/MemAvailable:\s+(\d+) kB/.exec(readFileSync('/proc/meminfo', 'utf8'))![1]) * 1024;
const mib = (b: number) => `${(b / MiB).toFixed(1)}`;

/** A container's memory cgroup (cgroup v1, Docker's cgroupfs driver). */
function cgroup(containerId: string): { usage: number; rss: number; cache: number } {
  const dir = `/sys/fs/cgroup/memory/docker/${containerId}`;
  const stat = Object.fromEntries(
    readFileSync(`${dir}/memory.stat`, 'utf8')
      .trim()
      .split('\n')
      .map((l) => l.split(' ') as [string, string]),
  );
  return { usage: Number(readFileSync(`${dir}/memory.usage_in_bytes`, 'utf8')), rss: Number(stat.total_rss ?? stat.rss), cache: Number(stat.total_cache ?? stat.cache) };
}

/** Rss and Pss of a host process, from smaps_rollup (bytes). */
function smaps(pid: number): { rss: number; pss: number } {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0) * 1024;
  return { rss: kb('Rss'), pss: kb('Pss') };
}

/** The host pids and commands of a container's processes. */
function processes(containerId: string): Array<{ pid: number; command: string }> {
  const out = execFileSync('docker', ['top', containerId, '-eo', 'pid,args'], { encoding: 'utf8' }).trim().split('\n').slice(1);
  return out.map((l) => {
    const m = /^\s*(\d+)\s+(.*)$/.exec(l)!;
    return { pid: Number(m[1]), command: m[2]! };
  });
}

async function main(): Promise<void> {
  const redis = await TestRedis.create();
  const templates = ['node', 'python'];
  const settings = { OMEGA_TEMPLATES: templates.join(','), OMEGA_POOL_SIZE: '0', OMEGA_POOL_MAX: '0', OMEGA_CAPACITY: String(N * templates.length + 1), OMEGA_SANDBOX_MEMORY_MB: String(MEMORY_MB) };
  const stack = await startStack(redis.url, { manager: settings, master: { OMEGA_TEMPLATES: templates.join(','), OMEGA_DEFAULT_TIMEOUT_SECONDS: '3600' } });
  const call = async (method: 'POST' | 'DELETE', path: string, body?: unknown) => {
    const r = await request(`${stack.master.apiUrl}${path}`, { method, headers: { authorization: `Bearer ${stack.apiToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, body: body === undefined ? undefined : JSON.stringify(body) });
    const json = (await r.body.json()) as Record<string, any>;
    if (r.statusCode >= 300) throw new Error(`${method} ${path}: ${r.statusCode} ${JSON.stringify(json)}`);
    return json;
  };
  const rows: string[] = [];
  try {
    for (const template of templates) {
      const made: Array<{ id: string; containerId: string }> = [];
      const createMs: number[] = [];
      let why = `BENCH_DENSITY_N=${N}`;
      for (let i = 0; i < N; i++) {
        if (availableBytes() < 2 * 1024 * MiB) {
          why = 'memory pressure (under 2 GiB available)';
          break;
        }
        const t0 = performance.now();
        const sb = await call('POST', '/v1/sandboxes', { template });
        createMs.push(performance.now() - t0);
        made.push({ id: sb.id, containerId: (await stack.master.store.get(sb.id))!.containerId! });
        process.stderr.write('.');
      }
      process.stderr.write('\n');
      // Idle: let the start's page cache and the agent's start-up garbage settle.
      await new Promise((r) => setTimeout(r, 5000));
      let usage = 0;
      let cgRss = 0;
      let cache = 0;
      let rss = 0;
      let pss = 0;
      let agentRss = 0;
      let agentPss = 0;
      for (const m of made) {
        const cg = cgroup(m.containerId);
        usage += cg.usage;
        cgRss += cg.rss;
        cache += cg.cache;
        for (const p of processes(m.containerId)) {
          const s = smaps(p.pid);
          rss += s.rss;
          pss += s.pss;
          if (p.command.includes('worker.mjs')) {
            agentRss += s.rss;
            agentPss += s.pss;
          }
        }
      }
      const n = made.length;
      const perSandbox = pss / n + Math.max(0, usage - cgRss - cache) / n;
      const first = createMs.slice(0, 10);
      const last = createMs.slice(-10);
      rows.push(
        `| ${template} | ${n} (${why}) | ${mib(usage / n)} (rss ${mib(cgRss / n)}, cache ${mib(cache / n)}) | ${mib(rss / n)} | ${mib(pss / n)} | ${mib(agentRss / n)} / ${mib(agentPss / n)} | ${pct(first, 50).toFixed(0)} / ${pct(last, 50).toFixed(0)} ms | ${Math.floor((HOST_GIB * 1024 * MiB) / perSandbox)} | ${Math.floor((HOST_GIB * 1024) / MEMORY_MB)} |`,
      );
      for (const m of made) await call('DELETE', `/v1/sandboxes/${m.id}`);
    }
    console.log('| template | idle sandboxes | cgroup MiB each | RSS MiB each | PSS MiB each | agent RSS / PSS MiB | create p50, first 10 / last 10 | fit in 24 GiB idle | fit by the 512 MiB limit |');
    console.log('|---|---|---|---|---|---|---|---|---|');
    for (const r of rows) console.log(r);
  } finally {
    await stack.stop();
    await redis.destroy();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
