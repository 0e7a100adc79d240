/**
 * `make bench-dns-scale`: the DNS side of a control plane at 100,000 sandboxes
 * (issue 15). Names are two per sandbox, as the master writes them (`<id>`
 * and `*.<id>`, an A record with the host's address, 1,000 hosts).
 *
 * For each zone size it seeds a real redis-server (its own, on a free port)
 * through the DNS server's own write path (RecordStore: the Lua script), then
 * starts real `omega dns` programs (the built dist/, three on the one Redis)
 * and measures:
 *  - memory per name: RSS and V8 heap after a full GC, beside a server with
 *    an empty zone (a preload answers SIGUSR2 with process.memoryUsage());
 *  - cold start: all servers spawned at once, to /healthz 200, with no local
 *    copy of the zone;
 *  - propagation: feed entries written at --rate a second (each a sandbox's
 *    two names, created or deleted), one in --probe-every asked for at every
 *    server about every millisecond until the answer is the new one, from
 *    the script's reply; beside it the probes' own round trip (the floor the
 *    machine puts under every figure), each server's own feed lag histogram
 *    (/metrics) and its CPU;
 *  - restart: one server stopped (SIGTERM) and started again, with the
 *    snapshot file it wrote at stop and then without one, asked for a sample
 *    of names across the zone from the moment it is spawned: time to the
 *    first right answer, SERVFAILs, unanswered queries (before it binds), and
 *    any wrong answer after that (there must be none: the zone appears whole).
 *
 * OMEGA_BENCH_CPU_PROF=<dir> runs the servers with `node --cpu-prof` into <dir>;
 * OMEGA_BENCH_NO_SNAPSHOT=1 runs them without a snapshot file (what its
 * periodic writes cost the feed); OMEGA_DNS_* settings pass through.
 *
 * Everything runs on this machine: the figures include whatever else it
 * runs, which the probes' round trip and the servers' event loop delay show.
 *
 * `--base <git ref>` builds that commit in a temp dir and measures it in the
 * same run, beside this tree's build: the before and after of one machine.
 *
 *   node --import=tsx bench/dns-scale.ts [--names 200,20000,200000] [--servers 3]
 *        [--rate 1000] [--seconds 10] [--base main]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Change } from '../src/protocol/dns.js';
import { closeRedis, createRedis, whenReady } from '../src/redis/connection.js';
import { dnsKeys } from '../src/redis/keys.js';
import { RecordStore } from '../dns/store.js';
import { TestRedis } from '../test/helpers/redis.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const HOST = '127.0.0.1';
const ZONE = 'sandbox.test';
const TOKEN = `bench-${randomBytes(12).toString('hex')}`;
const HOSTS = 1000;
const SEED_BATCH = 1000;
const SAMPLE = 2000;
const PROBE_TIMEOUT_MS = 100;
const PROPAGATION_WAIT_MS = 2000;
const TARGET = { bytesPerName: 300, restartMs: 2000, propagationP99Ms: 10 };

const { values: args } = parseArgs({
  options: {
    names: { type: 'string', default: '200000' },
    servers: { type: 'string', default: '3' },
    rate: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '10' },
    'probe-every': { type: 'string', default: '10' },
    base: { type: 'string' },
  },
});
const SIZES = args.names!.split(',').map(Number);
const SERVERS = Number(args.servers);
const RATE = Number(args.rate);
const SECONDS = Number(args.seconds);
const PROBE_EVERY = Number(args['probe-every']);
const TMP = mkdtempSync(join(tmpdir(), 'omega-bench-dns-scale-'));

// ---- names ------------------------------------------------------------------

/** A sandbox id shaped like the master's (16 characters of a base-32 alphabet). */
const idOf = (i: number) => `sb${i.toString(32).padStart(14, '0')}`;
const addressOf = (i: number) => {
  const h = i % HOSTS;
  return `10.${(h >> 8) + 1}.${h & 255}.1`;
};
const sandboxChanges = (id: string, address: string | null): Change[] =>
  address === null
    ? [id, `*.${id}`].map((name) => ({ action: 'DELETE' as const, name, ifExists: true }))
    : [id, `*.${id}`].map((name) => ({ action: 'UPSERT' as const, name, type: 'A' as const, ttl: 60, values: [address] }));

// ---- processes -------------------------------------------------------------------

interface Program {
  label: string;
  /** The directory holding dist/cli/cli.js. */
  dir: string;
}

const children = new Set<ChildProcess>();

function run(cmd: string, argv: string[], cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, argv, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (b: Buffer) => (out += b));
    p.stderr.on('data', (b: Buffer) => (out += b));
    p.once('error', reject);
    p.once('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${argv.join(' ')}: exit ${code}\n${out.slice(-3000)}`))));
  });
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (e.isFile()) newest = Math.max(newest, statSync(join(e.parentPath ?? e.path, e.name)).mtimeMs);
  }
  return newest;
}

async function buildHere(): Promise<Program> {
  const cli = join(ROOT, 'dist/cli/cli.js');
  const newest = Math.max(...['src', 'dns', 'cli'].map((d) => newestMtime(join(ROOT, d))));
  if (!existsSync(cli) || statSync(cli).mtimeMs < newest) {
    console.log('building this tree (npm run build)...');
    await run('npm', ['run', 'build'], ROOT);
  }
  return { label: 'this tree', dir: ROOT };
}

/** The commit `ref` built in a temp dir (its own tsc run, this tree's node_modules). */
async function buildRef(ref: string): Promise<Program> {
  const dir = join(TMP, 'base');
  mkdirSync(dir);
  const sha = (await run('git', ['rev-parse', '--short', ref], ROOT)).trim();
  console.log(`building ${ref} (${sha}) in ${dir}...`);
  await run('sh', ['-c', `git archive ${sha} | tar -x -C ${JSON.stringify(dir)}`], ROOT);
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  await run('npm', ['run', 'build'], dir);
  return { label: `${ref} ${sha}`, dir };
}

/** Reports memory after a full GC on SIGUSR2; loaded into the server with --import, so the program is unchanged. */
const MEMORY_PRELOAD =
  'data:text/javascript,process.on("SIGUSR2",()=>{globalThis.gc();' +
  'process.stderr.write("BENCH_MEMORY "+JSON.stringify(process.memoryUsage())+"\\n")})';

interface Server {
  proc: ChildProcess;
  port: number;
  api: string;
  env: NodeJS.ProcessEnv;
  program: Program;
  spawnedAt: number;
  stderr: string;
  exited: Promise<void>;
}

/** Ports handed out in this run: a port just closed may come back from listen(0) at once. */
const handedOut = new Set<number>();

async function freeDnsPort(): Promise<number> {
  for (;;) {
    const tcp = net.createServer();
    await new Promise<void>((r) => tcp.listen(0, HOST, r));
    const port = (tcp.address() as net.AddressInfo).port;
    const udp = dgram.createSocket('udp4');
    const ok = await new Promise<boolean>((r) => {
      udp.once('error', () => r(false));
      udp.bind(port, HOST, () => r(true));
    });
    await new Promise<void>((r) => tcp.close(() => r()));
    if (ok) await new Promise<void>((r) => udp.close(() => r()));
    if (ok && port !== 6379 && !handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
}

async function serverEnv(redisUrl: string, prefix: string, snapshotFile: string): Promise<NodeJS.ProcessEnv> {
  return {
    ...process.env,
    OMEGA_REDIS_URL: redisUrl,
    OMEGA_REDIS_PREFIX: prefix,
    OMEGA_ZONE: ZONE,
    OMEGA_DNS_LISTEN: `${HOST}:${await freeDnsPort()}`,
    OMEGA_DNS_API_LISTEN: `${HOST}:${await freeDnsPort()}`,
    OMEGA_DNS_TOKEN: TOKEN,
    OMEGA_DNS_SNAPSHOT_FILE: process.env.OMEGA_BENCH_NO_SNAPSHOT ? '' : snapshotFile,
    OMEGA_LOG_LEVEL: 'warn',
  };
}

function spawnServer(program: Program, env: NodeJS.ProcessEnv): Server {
  const spawnedAt = performance.now();
  const prof = process.env.OMEGA_BENCH_CPU_PROF;
  const profArgs = prof ? ['--cpu-prof', '--cpu-prof-dir', prof] : [];
  const proc = spawn(process.execPath, [...profArgs, '--expose-gc', '--import', MEMORY_PRELOAD, join(program.dir, 'dist/cli/cli.js'), 'dns'], {
    cwd: program.dir,
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.add(proc);
  const s: Server = {
    proc,
    port: Number(env.OMEGA_DNS_LISTEN!.split(':')[1]),
    api: `http://${env.OMEGA_DNS_API_LISTEN}`,
    env,
    program,
    spawnedAt,
    stderr: '',
    exited: new Promise((r) => proc.once('close', () => r())),
  };
  proc.stderr!.on('data', (b: Buffer) => (s.stderr = (s.stderr + b.toString()).slice(-65536)));
  void s.exited.then(() => children.delete(proc));
  return s;
}

async function waitHealthy(s: Server, timeoutMs = 120_000): Promise<number> {
  const end = performance.now() + timeoutMs;
  while (performance.now() < end) {
    if (s.proc.exitCode !== null) throw new Error(`omega dns exited ${s.proc.exitCode}:\n${s.stderr}`);
    try {
      const res = await fetch(`${s.api}/healthz`, { signal: AbortSignal.timeout(1000) });
      if (res.status === 200) return performance.now() - s.spawnedAt;
    } catch {
      // not listening yet
    }
    await sleep(20);
  }
  throw new Error(`omega dns not healthy after ${timeoutMs} ms:\n${s.stderr}`);
}

async function stopServer(s: Server): Promise<void> {
  if (s.proc.exitCode === null) s.proc.kill('SIGTERM');
  await s.exited;
}

interface Memory {
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

async function memoryOf(s: Server): Promise<Memory> {
  const from = s.stderr.length;
  s.proc.kill('SIGUSR2');
  for (let i = 0; i < 200; i++) {
    const m = /BENCH_MEMORY (\{.*\})/.exec(s.stderr.slice(Math.max(0, from - 1)));
    if (m) return JSON.parse(m[1]!) as Memory;
    await sleep(25);
  }
  throw new Error(`no memory report:\n${s.stderr}`);
}

// ---- DNS over UDP -------------------------------------------------------------------

function encodeQuery(id: number, name: string): Buffer {
  const parts: number[] = [id >> 8, id & 255, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
  for (const label of name.split('.')) parts.push(label.length, ...Buffer.from(label, 'ascii'));
  parts.push(0, 0, 1, 0, 1); // A, IN
  return Buffer.from(parts);
}

interface Reply {
  rcode: number;
  /** The first A record's address. */
  a: string | null;
}

function parseReply(msg: Buffer): Reply {
  const rcode = msg[3]! & 0xf;
  let off = 12;
  const skip = () => {
    for (;;) {
      const len = msg[off]!;
      if ((len & 0xc0) === 0xc0) return void (off += 2);
      off += len + 1;
      if (len === 0) return;
    }
  };
  for (let i = msg.readUInt16BE(4); i > 0; i--) (skip(), (off += 4));
  for (let i = msg.readUInt16BE(6); i > 0; i--) {
    skip();
    const type = msg.readUInt16BE(off);
    const len = msg.readUInt16BE(off + 8);
    off += 10;
    if (type === 1 && len === 4) return { rcode, a: `${msg[off]}.${msg[off + 1]}.${msg[off + 2]}.${msg[off + 3]}` };
    off += len;
  }
  return { rcode, a: null };
}

/** One UDP socket with many questions in flight, matched by id. */
class Asker {
  private nextId = 1;
  private readonly waiting = new Map<number, (r: Reply | null) => void>();

  private constructor(
    private readonly socket: dgram.Socket,
    private readonly port: number,
  ) {
    socket.on('message', (msg) => {
      if (msg.length < 12) return;
      const done = this.waiting.get(msg.readUInt16BE(0));
      if (done) done(parseReply(msg));
    });
    // An ICMP port unreachable before the server binds is only a lost question.
    socket.on('error', () => {});
  }

  static async open(port: number): Promise<Asker> {
    const socket = dgram.createSocket('udp4');
    await new Promise<void>((r) => socket.bind(0, HOST, r));
    return new Asker(socket, port);
  }

  ask(name: string, timeoutMs = PROBE_TIMEOUT_MS): Promise<Reply | null> {
    let id = this.nextId;
    while (this.waiting.has(id)) id = (id % 0xffff) + 1;
    this.nextId = (id % 0xffff) + 1;
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(null), timeoutMs);
      const done = (r: Reply | null) => {
        clearTimeout(timer);
        this.waiting.delete(id);
        resolve(r);
      };
      this.waiting.set(id, done);
      this.socket.send(encodeQuery(id, name), this.port, HOST);
    });
  }

  close(): void {
    this.socket.close();
  }
}

// ---- seeding -------------------------------------------------------------------------

async function seed(redisUrl: string, prefix: string, sandboxes: number): Promise<void> {
  const redis = createRedis(redisUrl);
  const store = new RecordStore(redis, dnsKeys(prefix));
  try {
    await whenReady(redis, 5000);
    const inFlight: Array<Promise<number>> = [];
    for (let from = 0; from < sandboxes; from += SEED_BATCH / 2) {
      const changes: Change[] = [];
      for (let i = from; i < Math.min(from + SEED_BATCH / 2, sandboxes); i++) changes.push(...sandboxChanges(idOf(i), addressOf(i)));
      inFlight.push(store.apply(changes));
      if (inFlight.length >= 8) await inFlight.shift();
    }
    await Promise.all(inFlight);
  } finally {
    await closeRedis(redis);
  }
}

// ---- measurements --------------------------------------------------------------------

function percentile(sorted: number[], q: number): number {
  return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)] ?? NaN;
}

interface Propagation {
  p50: number;
  p99: number;
  max: number;
  samples: number;
  missed: number;
  entriesPerSecond: number;
  /** Round trip of the probes' queries (any answer): the floor this machine puts under every figure. */
  rttP99: number;
  /** The server's own omega_dns_feed_lag_seconds: entries applied within 10 ms of their append, and the bucket holding the 99th percentile. */
  lagWithin10ms: number;
  lagP99Bucket: string;
  /** Cores the server used while the feed ran (from /proc: utime + stime). */
  cpuCores: number;
  /** The server's event loop delay over the run (prom-client's nodejs_eventloop_lag_*), ms. */
  loopP99: number;
  loopMax: number;
}

/** CPU seconds a process has used (Linux /proc, USER_HZ = 100). */
function cpuSeconds(pid: number | undefined): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return NaN;
  }
}

/** The server's lag histogram, from /metrics: cumulative counts by upper bound (and its event loop's delay since the last scrape). */
async function feedLag(s: Server): Promise<Map<string, number>> {
  const text = await (await fetch(`${s.api}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
  const out = new Map<string, number>();
  for (const m of text.matchAll(/^nodejs_eventloop_lag_(p99|max)_seconds (\S+)$/gm)) out.set(`loop_${m[1]}`, Number(m[2]));
  for (const m of text.matchAll(/omega_dns_feed_lag_seconds_bucket\{le="([^"]+)"\} (\d+)/g)) out.set(m[1]!, Number(m[2]));
  return out;
}

function lagFigures(before: Map<string, number>, after: Map<string, number>): { within10: number; p99: string } {
  const d = (le: string) => (after.get(le) ?? 0) - (before.get(le) ?? 0);
  const total = d('+Inf');
  let p99 = '+Inf';
  for (const le of after.keys()) {
    if (le.startsWith('loop_')) continue;
    if (d(le) >= 0.99 * total) {
      p99 = `<= ${Number(le) * 1000} ms`;
      break;
    }
  }
  return { within10: total ? d('0.01') / total : NaN, p99 };
}

/** Ask `name` at one server, about every millisecond, until `want` (an address, or null for NXDOMAIN); ms after `from`. */
async function seen(asker: Asker, name: string, want: string | null, from: number, rtts: number[]): Promise<number | null> {
  const end = from + PROPAGATION_WAIT_MS;
  while (performance.now() < end) {
    const sent = performance.now();
    const r = await asker.ask(name, 50);
    if (r) rtts.push(performance.now() - sent);
    if (r && (want === null ? r.rcode === 3 : r.a === want)) return performance.now() - from;
    // A breath between asks: probes asking back to back load the machine they measure.
    await sleep(1);
  }
  return null;
}

async function propagation(redisUrl: string, prefix: string, servers: Server[], base: number): Promise<Propagation[]> {
  const redis = createRedis(redisUrl);
  const store = new RecordStore(redis, dnsKeys(prefix));
  await whenReady(redis, 5000);
  const askers = await Promise.all(servers.map((s) => Asker.open(s.port)));
  const delays: number[][] = servers.map(() => []);
  const missed = servers.map(() => 0);
  const rtts: number[][] = servers.map(() => []);
  const lagBefore = await Promise.all(servers.map(feedLag));
  const cpuBefore = servers.map((s) => cpuSeconds(s.proc.pid));
  const probes: Array<Promise<void>> = [];
  const total = RATE * SECONDS;
  const started = performance.now();
  let sent = 0;
  let writes: Array<Promise<void>> = [];
  try {
    while (sent < total) {
      const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * RATE) + 1);
      for (; sent < due; sent++) {
        // Even entries create sandbox base+k, odd ones delete the one created 500 entries before.
        const k = sent >> 1;
        const create = (sent & 1) === 0;
        const i = create ? base + k : base + k - 250;
        if (!create && i < base) continue;
        const id = idOf(i);
        const want = create ? addressOf(i) : null;
        const probe = sent % PROBE_EVERY === 0;
        writes.push(
          store.apply(sandboxChanges(id, want)).then(() => {
            if (!probe) return;
            const acked = performance.now();
            probes.push(
              ...askers.map(async (asker, n) => {
                const ms = await seen(asker, `${id}.${ZONE}`, want, acked, rtts[n]!);
                if (ms === null) missed[n]!++;
                else delays[n]!.push(ms);
              }),
            );
          }),
        );
      }
      if (writes.length > 1000) writes = [Promise.all(writes).then(() => undefined)];
      await sleep(1);
    }
    await Promise.all(writes);
    const seconds = (performance.now() - started) / 1000;
    await Promise.all(probes);
    const cpuAfter = servers.map((s) => cpuSeconds(s.proc.pid));
    const lagAfter = await Promise.all(servers.map(feedLag));
    return delays.map((d, n) => {
      const sorted = d.sort((a, b) => a - b);
      const lag = lagFigures(lagBefore[n]!, lagAfter[n]!);
      return {
        cpuCores: (cpuAfter[n]! - cpuBefore[n]!) / seconds,
        loopP99: (lagAfter[n]!.get('loop_p99') ?? NaN) * 1000,
        loopMax: (lagAfter[n]!.get('loop_max') ?? NaN) * 1000,
        rttP99: percentile(rtts[n]!.sort((a, b) => a - b), 0.99),
        lagWithin10ms: lag.within10,
        lagP99Bucket: lag.p99,
        p50: percentile(sorted, 0.5),
        p99: percentile(sorted, 0.99),
        max: sorted[sorted.length - 1] ?? NaN,
        samples: sorted.length,
        missed: missed[n]!,
        entriesPerSecond: total / seconds,
      };
    });
  } finally {
    for (const a of askers) a.close();
    await closeRedis(redis);
  }
}

interface Restart {
  /** Spawn to the first right answer. */
  answeringMs: number;
  /** Spawn to /healthz 200. */
  healthyMs: number;
  servfail: number;
  unanswered: number;
  /** Wrong answers (NXDOMAIN, another address) after the first right one: must be 0. */
  wrongAfter: number;
  sampled: number;
  /** The server's own omega_dns_zone_load_seconds after it: the load from Redis alone, without the process's start (NaN for a program without it). */
  loadMs: number;
}

/** Stop `s`, start it again, and ask for a sample of the zone from the moment it is spawned. */
async function restart(s: Server, sandboxes: number, keepSnapshot: boolean): Promise<{ server: Server; result: Restart }> {
  await stopServer(s);
  if (!keepSnapshot) rmSync(s.env.OMEGA_DNS_SNAPSHOT_FILE!, { force: true });
  const asker = await Asker.open(s.port);
  const sample = Array.from({ length: Math.min(SAMPLE, sandboxes) }, (_, k) => Math.floor((k * sandboxes) / Math.min(SAMPLE, sandboxes)));
  const next = spawnServer(s.program, s.env);
  const r: Restart = { answeringMs: NaN, healthyMs: NaN, servfail: 0, unanswered: 0, wrongAfter: 0, sampled: 0, loadMs: NaN };
  let answering = false;
  let sweptAfter = 0;
  const healthy = waitHealthy(next).then((ms) => (r.healthyMs = ms));
  try {
    let cursor = 0;
    const worker = async () => {
      while (sweptAfter < sample.length) {
        if (next.proc.exitCode !== null) throw new Error(`omega dns exited:\n${next.stderr}`);
        const i = sample[cursor++ % sample.length]!;
        const reply = await asker.ask(`${idOf(i)}.${ZONE}`);
        if (!reply) r.unanswered++;
        else if (reply.rcode === 2) r.servfail++;
        if (reply?.a === addressOf(i)) {
          if (!answering) r.answeringMs = performance.now() - next.spawnedAt;
          answering = true;
        } else if (answering && reply) r.wrongAfter++;
        if (answering) sweptAfter++;
        r.sampled++;
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    await healthy;
    const metrics = await (await fetch(`${next.api}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
    const load = /^omega_dns_zone_load_seconds (\S+)$/m.exec(metrics);
    if (load && Number(load[1]) > 0) r.loadMs = Number(load[1]) * 1000;
  } finally {
    asker.close();
  }
  return { server: next, result: r };
}

// ---- one program at one size --------------------------------------------------------

interface Row {
  program: string;
  names: number;
  rssBytesPerName: number;
  heapBytesPerName: number;
  rssMiB: number;
  coldMs: number;
  /** With the snapshot file it wrote at stop (a program without one: the same as restartCold). */
  restart: Restart;
  /** With its snapshot file removed: a load from Redis. */
  restartCold: Restart;
  propagation: Propagation[];
}

async function measure(program: Program, redis: TestRedis, prefix: string, sandboxes: number, base: number): Promise<Row> {
  const names = sandboxes * 2;
  const snapshots = join(TMP, `snap-${randomBytes(4).toString('hex')}`);
  mkdirSync(snapshots);
  // A server with an empty zone: the figure every per-name cost is taken against.
  const empty = spawnServer(program, await serverEnv(redis.url, `${prefix}-empty`, join(snapshots, 'empty.zone')));
  await waitHealthy(empty);
  await sleep(500);
  const m0 = await memoryOf(empty);
  await stopServer(empty);

  const servers: Server[] = [];
  for (let n = 0; n < SERVERS; n++) servers.push(spawnServer(program, await serverEnv(redis.url, prefix, join(snapshots, `s${n}.zone`))));
  try {
    const cold = await Promise.all(servers.map((s) => waitHealthy(s)));
    await sleep(500);
    const mems = [];
    for (const s of servers) mems.push(await memoryOf(s));
    const m = mems.reduce((a, b) => (a.rss > b.rss ? a : b));
    console.log(`  ${program.label}, ${names} names: cold start ${cold.map((c) => c.toFixed(0)).join(' / ')} ms; measuring propagation...`);
    const prop = await propagation(redis.url, prefix, servers, base);
    console.log('  restarting one server, with its snapshot file and without...');
    const last = servers.length - 1;
    const warm = await restart(servers[last]!, sandboxes, true);
    servers[last] = warm.server;
    const loaded = await restart(servers[last]!, sandboxes, false);
    servers[last] = loaded.server;
    return {
      program: program.label,
      names,
      rssBytesPerName: (m.rss - m0.rss) / names,
      heapBytesPerName: (m.heapUsed + m.external - m0.heapUsed - m0.external) / names,
      rssMiB: m.rss / 2 ** 20,
      coldMs: Math.max(...cold),
      restart: warm.result,
      restartCold: loaded.result,
      propagation: prop,
    };
  } finally {
    await Promise.all(servers.map(stopServer));
  }
}

// ---- report -----------------------------------------------------------------------------

function report(rows: Row[]): void {
  const f = (n: number, d = 0) => (Number.isFinite(n) ? n.toFixed(d) : '-');
  const mark = (ok: boolean) => (ok ? '' : ' MISSED');
  console.log('');
  console.log(
    `${SERVERS} servers on one Redis; feed at ${RATE} entries/s (each one sandbox's 2 names) for ${SECONDS} s, 1 in ${PROBE_EVERY} asked for at every server`,
  );
  console.log(
    '| program | names | RSS B/name | heap B/name | RSS MiB | cold start ms (all at once) | restart: answering ms | SERVFAIL | unanswered | wrong after | restart without snapshot: answering ms / SERVFAIL (its load alone ms) | propagation p50 / p99 / max ms (worst server) | query RTT p99 ms | feed lag <= 10 ms (server\'s own, worst) | server CPU cores | server event loop delay p99 / max ms |',
  );
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|---:|---|');
  for (const r of rows) {
    const worst = r.propagation.reduce((a, b) => (b.p99 > a.p99 ? b : a));
    const missed = r.propagation.reduce((a, b) => a + b.missed, 0);
    const bigEnough = r.names >= 100_000;
    console.log(
      `| ${r.program} | ${r.names} | ${f(r.rssBytesPerName)}${mark(!bigEnough || r.rssBytesPerName < TARGET.bytesPerName)} | ${f(r.heapBytesPerName)} | ${f(r.rssMiB)} | ${f(r.coldMs)} | ` +
        `${f(r.restart.answeringMs)}${mark(r.restart.answeringMs < TARGET.restartMs)} | ${r.restart.servfail} | ${r.restart.unanswered} | ${r.restart.wrongAfter}${mark(r.restart.wrongAfter === 0)} | ` +
        `${f(r.restartCold.answeringMs)} / ${r.restartCold.servfail} (${f(r.restartCold.loadMs)})${mark(r.restartCold.wrongAfter === 0)} | ` +
        `${f(worst.p50, 2)} / ${f(worst.p99, 2)} / ${f(worst.max, 2)}${mark(worst.p99 < TARGET.propagationP99Ms && missed === 0)}` +
        `${missed ? ` (${missed} not seen in ${PROPAGATION_WAIT_MS} ms)` : ''} at ${f(worst.entriesPerSecond)}/s | ` +
        `${f(Math.max(...r.propagation.map((p) => p.rttP99)), 2)} | ` +
        `${(() => {
          const w = r.propagation.reduce((a, b) => (b.lagWithin10ms < a.lagWithin10ms ? b : a));
          return `${(w.lagWithin10ms * 100).toFixed(2)}% (p99 ${w.lagP99Bucket})`;
        })()} | ${f(Math.max(...r.propagation.map((p) => p.cpuCores)), 2)} | ` +
        `${f(Math.max(...r.propagation.map((p) => p.loopP99)), 1)} / ${f(Math.max(...r.propagation.map((p) => p.loopMax)), 1)} |`,
    );
  }
  console.log(`targets: < ${TARGET.bytesPerName} B per name (at 100,000+ names), restart answering < ${TARGET.restartMs} ms, propagation p99 < ${TARGET.propagationP99Ms} ms`);
  console.log(JSON.stringify({ servers: SERVERS, rate: RATE, seconds: SECONDS, rows }));
}

// ---- main -------------------------------------------------------------------------------

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const programs = [await buildHere()];
  if (args.base) programs.unshift(await buildRef(args.base));
  const redis = await TestRedis.create();
  const rows: Row[] = [];
  try {
    for (const names of SIZES) {
      const sandboxes = Math.floor(names / 2);
      const prefix = `bench${randomBytes(4).toString('hex')}`;
      console.log(`seeding ${names} names (${sandboxes} sandboxes)...`);
      const t0 = performance.now();
      await seed(redis.url, prefix, sandboxes);
      console.log(`  seeded in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      // Each program's propagation run creates its own sandboxes past the seeded ones.
      let base = sandboxes;
      for (const p of programs) {
        rows.push(await measure(p, redis, prefix, sandboxes, base));
        base += RATE * SECONDS;
      }
      const c = redis.client();
      await c.flushall();
      c.disconnect();
    }
  } finally {
    await redis.destroy();
  }
  report(rows);
}

async function cleanup(): Promise<void> {
  for (const c of children) c.kill('SIGKILL');
  rmSync(TMP, { recursive: true, force: true });
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => void cleanup().finally(() => process.exit(130)));

main().then(
  async () => {
    await cleanup();
    process.exit(0);
  },
  async (err: unknown) => {
    console.error(`bench-dns-scale failed: ${(err as Error).stack ?? String(err)}`);
    await cleanup();
    process.exit(1);
  },
);
