/**
 * `make bench-chaos`: how an Omega heals by itself when its programs are
 * killed in the middle of work.
 *
 * A real Redis, `omega dns`, one `omega master` (no provider) and two
 * `omega manager`s (127.0.0.1 and 127.0.0.2) run as child processes with
 * short reconcile, heartbeat and orphan-grace times, restarted after a kill
 * as systemd would (Restart=always, RestartSec=BENCH_RESTART_MS). After a
 * first batch of creates, BENCH_BURSTS bursts of BENCH_PER_BURST concurrent
 * creates and of as many concurrent deletes (of at most half the sandboxes,
 * so some remain) take turns; during each, at a random moment, the master,
 * one manager, or the master and one manager get `kill -9`. Then it prints
 *   - the seconds until the state is whole again (test/helpers/whole.ts says
 *     what whole means: every running sandbox with its container and both
 *     names, nothing creating or deleting, each host's load what runs there,
 *     no container or volume or name that is no one's);
 *   - what was healed (the programs' 'reconciled' log lines, summed, and the
 *     other repairs they logged);
 *   - what became of the creates answered 201 (running, lost and why, gone
 *     and why, or deleted by the bench, and in what state);
 *   - the seconds until nothing is left after deleting everything through
 *     the API, and after stopping the managers.
 * Every process, container and volume it started is removed, even on
 * failure (SIGINT/SIGTERM included). The programs' logs stay in a temp dir.
 */
import { createWriteStream, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { hostKeys } from '../src/redis/keys.js';
import { Cluster } from '../test/helpers/cluster.js';
import { sleep } from '../test/helpers/ports.js';
import type { Program } from '../test/helpers/programs.js';
import { TestRedis } from '../test/helpers/redis.js';
import { leftovers, listAll, lookAtState, type StateLook } from '../test/helpers/whole.js';

const env = (name: string, dflt: number) => Number(process.env[name] ?? dflt);
const BURSTS = env('BENCH_BURSTS', 5);
const PER_BURST = env('BENCH_PER_BURST', 10);
const POOL = env('BENCH_POOL_SIZE', 2);
const RESTART_MS = env('BENCH_RESTART_MS', 1000);
const RECONCILE_MS = env('BENCH_RECONCILE_MS', 2000);
const HEARTBEAT_TTL_MS = env('BENCH_HEARTBEAT_TTL_MS', 6000);
const GRACE_MS = env('BENCH_ORPHAN_GRACE_MS', 5000);
const HEAL_LIMIT_MS = env('BENCH_HEAL_LIMIT_MS', 180_000);
const SEED = env('BENCH_SEED', Date.now() % 100_000);

/** mulberry32: a small seeded generator, so a run can be repeated (BENCH_SEED). */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = random(SEED);
const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)]!;

interface Outcome {
  ok: boolean;
  /** 201/200, another status with the master's code, or the network's failure. */
  what: string;
  id?: string;
}

async function call(c: Cluster, method: string, path: string, body?: unknown): Promise<Outcome & { body?: any }> {
  try {
    const res = await c.api(method, path, body);
    const ok = res.status === 201 || res.status === 200;
    return { ok, what: ok ? String(res.status) : `${res.status} ${res.body?.code ?? ''}`.trim(), body: res.body };
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    return { ok: false, what: `no answer (${cause?.code ?? cause?.message ?? (err as Error).message})` };
  }
}

const tally = (xs: string[]) => Object.entries(xs.reduce<Record<string, number>>((m, x) => ((m[x] = (m[x] ?? 0) + 1), m), {})).map(([k, n]) => `${n} ${k}`).join(', ');

/** One burst of concurrent calls with `kill -9` of `victims` at a random moment of its expected length. */
async function burst(c: Cluster, calls: Array<() => Promise<Outcome>>, victims: Program[], expectedMs: number) {
  let inFlight = calls.length;
  const killAtMs = Math.round(rand() * expectedMs * 0.8);
  let during = false;
  const t0 = Date.now();
  const killed = sleep(killAtMs).then(async () => {
    during = inFlight > 0;
    await Promise.all(victims.map((v) => v.kill()));
  });
  const outcomes = await Promise.all(calls.map((f) => f().finally(() => inFlight--)));
  const ms = Date.now() - t0;
  await killed;
  return { outcomes, ms, killAtMs, during };
}

/**
 * Poll until `look` finds nothing wrong; the time it took, or null past
 * `limitMs` (with the last problems). Every 15 s it says what is still wrong.
 */
async function until(limitMs: number, look: () => Promise<string[]>, say = false): Promise<{ ms: number | null; last: string[]; looks: number }> {
  const t0 = Date.now();
  let last: string[] = [];
  let looks = 0;
  let nextSay = t0 + 15_000;
  while (Date.now() - t0 < limitMs) {
    looks++;
    try {
      last = await look();
    } catch (err) {
      last = [`looking failed: ${(err as Error).message}`];
    }
    if (!last.length) return { ms: Date.now() - t0, last, looks };
    if (say && Date.now() > nextSay) {
      nextSay += 15_000;
      console.log(`  still wrong after ${Math.round((Date.now() - t0) / 1000)} s: ${last.slice(0, 3).join('; ')}${last.length > 3 ? ` (+${last.length - 3})` : ''}`);
    }
    await sleep(500);
  }
  return { ms: null, last, looks };
}

/** The repairs the programs logged: their 'reconciled' lines summed per field, and the other repair messages counted. */
function healed(c: Cluster): string[] {
  const out: string[] = [];
  for (const kind of ['master', 'manager']) {
    const lines = c.logged('reconciled').filter((l) => l.program.startsWith(kind));
    const sums: Record<string, number> = {};
    for (const l of lines) for (const [k, v] of Object.entries(l)) if (typeof v === 'number' && !['level', 'pid', 'time'].includes(k)) sums[k] = (sums[k] ?? 0) + v;
    out.push(`${kind} reconcilers: ${lines.length} passes that changed something; ${Object.entries(sums).map(([k, n]) => `${k} ${n}`).join(', ') || 'nothing'}`);
  }
  for (const msg of [
    'create undone',
    'undoing the create failed; the reconciler finishes it',
    'host heartbeat lapsed; its sandboxes are lost',
    'sandbox container stopped; marked lost',
    "removing a sandbox that is not this host's",
    'removing a container no sandbox or pool slot owns',
  ]) {
    const n = c.logged(msg).length;
    if (n) out.push(`${n} x "${msg}"`);
  }
  return out;
}

/** Why a sandbox the master no longer has is gone, from the master's log lines about it. */
function whyGone(c: Cluster, id: string): string {
  const lines = c.master.lines.filter((l) => l.json?.sandboxId === id && (l.json.msg === 'sandbox deleted' || l.json.msg === 'create undone'));
  const last = lines.at(-1)?.json;
  return last ? String(last.why ?? last.msg) : 'no line says';
}

async function main(): Promise<void> {
  const logDir = mkdtempSync(join(tmpdir(), 'omega-chaos-'));
  const logFile = createWriteStream(join(logDir, 'programs.log'));
  const redis = await TestRedis.create();
  const c = new Cluster(redis, {
    addresses: ['127.0.0.1', '127.0.0.2'],
    poolSize: POOL,
    restartDelayMs: RESTART_MS,
    masterEnv: { OMEGA_RECONCILE_INTERVAL_MS: String(RECONCILE_MS) },
    managerEnv: {
      OMEGA_RECONCILE_INTERVAL_MS: String(RECONCILE_MS),
      OMEGA_HEARTBEAT_INTERVAL_MS: String(Math.min(1000, HEARTBEAT_TTL_MS / 3)),
      OMEGA_HEARTBEAT_TTL_MS: String(HEARTBEAT_TTL_MS),
      OMEGA_ORPHAN_GRACE_MS: String(GRACE_MS),
    },
    onLine: (l) => logFile.write(`${l.program}\t${l.line}\n`),
  });
  let rc: Redis | null = null;
  let cleaning: Promise<void> | null = null;
  const cleanup = () =>
    (cleaning ??= (async () => {
      await c.stop({ kill: true });
      const swept = await c.sweep();
      if (swept.containers || swept.volumes) console.log(`cleanup removed ${swept.containers} container(s) and ${swept.volumes} volume(s) left behind`);
      rc?.disconnect();
      await redis.destroy();
      logFile.end();
    })());
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      console.error(`\n${signal}: cleaning up`);
      void cleanup().finally(() => process.exit(130));
    });
  }
  try {
    console.log(`seed ${SEED}; ${BURSTS} x ${PER_BURST} creates and deletes; restart after ${RESTART_MS} ms; reconcile every ${RECONCILE_MS} ms; heartbeat TTL ${HEARTBEAT_TTL_MS} ms; orphan grace ${GRACE_MS} ms; pool ${POOL} per host`);
    console.log(`logs in ${logDir}`);
    const t0 = Date.now();
    await c.start();
    rc = redis.client();
    const redisClient = rc;
    const look = async (): Promise<StateLook> => lookAtState(c, redisClient, POOL);
    const started = await until(60_000, async () => (await look()).problems);
    console.log(`started and whole in ${((Date.now() - t0) / 1000).toFixed(1)} s${started.ms === null ? ` (NOT whole: ${started.last.join('; ')})` : ''}`);

    const answered = new Map<string, string>(); // id -> burst that created it
    const askedToDelete = new Map<string, string>(); // id -> its state when the bench deleted it
    const create = (label: string) => async (): Promise<Outcome> => {
      const r = await call(c, 'POST', '/v1/sandboxes', { template: c.template });
      if (r.ok) answered.set(r.body.id, label);
      return { ...r, id: r.body?.id };
    };
    for (const r of await Promise.all(Array.from({ length: PER_BURST }, create('first')))) if (!r.ok) console.log(`first batch: a create failed: ${r.what}`);

    const managers = c.hosts.map((h) => h.manager);
    const victimSets: Array<() => Program[]> = [() => [c.master], () => [pick(managers)], () => [c.master, pick(managers)]];
    const expected = { create: 4000, delete: 1500 };
    console.log('burst      calls  ok  failed                                  killed (at ms, during?)       ms');
    for (let i = 0; i < BURSTS; i++) {
      for (const kind of ['create', 'delete'] as const) {
        await c.ready();
        let calls: Array<() => Promise<Outcome>>;
        if (kind === 'create') {
          calls = Array.from({ length: PER_BURST }, () => create(`create ${i + 1}`));
        } else {
          // At most half of what lives, so sandboxes remain for the look at the end.
          const live = (await listAll(c)).filter((s) => s.state === 'running' || s.state === 'lost');
          const chosen = live.sort(() => rand() - 0.5).slice(0, Math.min(PER_BURST, Math.ceil(live.length / 2)));
          calls = chosen.map((s) => () => {
            askedToDelete.set(s.id, s.state === 'lost' ? `lost (${s.lostReason}) when deleted` : `${s.state} when deleted`);
            return call(c, 'DELETE', `/v1/sandboxes/${s.id}`);
          });
        }
        const victims = pick(victimSets)();
        const b = await burst(c, calls, victims, expected[kind]);
        expected[kind] = Math.max(500, b.ms);
        const failed = b.outcomes.filter((o) => !o.ok).map((o) => o.what);
        const killed = `${victims.map((v) => v.name).join(' + ')} (${b.killAtMs}, ${b.during ? 'during' : 'after'})`;
        console.log(`${`${kind} ${i + 1}`.padEnd(11)}${String(calls.length).padStart(5)}  ${String(calls.length - failed.length).padStart(2)}  ${(tally(failed) || '-').padEnd(40)}${killed.padEnd(30)}${String(b.ms).padStart(5)}`);
      }
    }

    console.log('');
    const healedAt = await until(HEAL_LIMIT_MS, async () => (await look()).problems, true);
    const state = await look().catch(() => null);
    if (healedAt.ms === null) {
      console.log(`NOT whole after ${HEAL_LIMIT_MS / 1000} s; what is still wrong:`);
      for (const p of healedAt.last) console.log(`  ${p}`);
    } else {
      console.log(`whole again ${(healedAt.ms / 1000).toFixed(1)} s after the last burst (${healedAt.looks} looks)`);
    }
    if (state) console.log(`sandboxes: ${JSON.stringify(state.byState)}; hosts: ${JSON.stringify(state.hosts)}`);
    console.log(`kills: ${c.programs.map((p) => `${p.name} ${p.kills}`).join(', ')}`);
    console.log('healed:');
    for (const l of healed(c)) console.log(`  ${l}`);

    // What became of every create answered 201.
    const fates: string[] = [];
    const details: string[] = [];
    for (const [id, label] of answered) {
      const r = await redisClient.hgetall(hostKeys(c.prefix).sandbox(id));
      const deleted = askedToDelete.get(id);
      if (deleted) {
        fates.push(r.state ? `${deleted}, now ${r.state}` : `${deleted}, gone`);
        if (deleted.startsWith('lost')) details.push(`${id} (${label}) ${deleted}`);
      } else if (!r.state) {
        fates.push('gone');
        details.push(`${id} (${label}) gone: ${whyGone(c, id)}`);
      } else if (r.state === 'lost') {
        fates.push('lost');
        details.push(`${id} (${label}) lost: ${r.lostReason}`);
      } else fates.push(r.state);
    }
    console.log(`answered 201: ${answered.size}; now ${tally(fates)}`);
    for (const d of details) console.log(`  ${d}`);

    // Delete everything through the API; time until nothing is left but the warm pools.
    const t1 = Date.now();
    const emptied = await until(HEAL_LIMIT_MS, async () => {
      const live = (await listAll(c)).filter((s) => s.state !== 'deleting');
      await Promise.all(live.map((s) => call(c, 'DELETE', `/v1/sandboxes/${s.id}`)));
      return leftovers(c, redisClient, POOL);
    });
    console.log(
      emptied.ms === null
        ? `NOT empty ${HEAL_LIMIT_MS / 1000} s after deleting everything: ${emptied.last.join('; ')}`
        : `deleted everything through the API: nothing left (no container, volume, name, record; load 0) after ${((Date.now() - t1) / 1000).toFixed(1)} s`,
    );
    const t2 = Date.now();
    await Promise.all(c.hosts.map((h) => h.manager.stop()));
    const drained = await until(30_000, () => leftovers(c, redisClient, 0));
    console.log(
      drained.ms === null
        ? `after the managers stopped, still left: ${drained.last.join('; ')}`
        : `managers stopped: no container or volume of this run's hosts after ${((Date.now() - t2) / 1000).toFixed(1)} s`,
    );
    console.log(
      JSON.stringify({
        seed: SEED,
        wholeAgainS: healedAt.ms === null ? null : healedAt.ms / 1000,
        answered201: answered.size,
        fates: tally(fates),
        emptyS: emptied.ms === null ? null : emptied.ms / 1000,
      }),
    );
    if (healedAt.ms === null || emptied.ms === null || drained.ms === null) process.exitCode = 1;
  } finally {
    await cleanup();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
