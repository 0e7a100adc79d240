/**
 * `make bench-dns`: omega dns against NSD serving the same 10,000-name zone
 * (dnsperf over UDP on loopback), then how long a record update takes from
 * the API's reply to the first DNS answer carrying it.
 *
 * Starts its own redis-server, omega dns and nsd on free 127.0.0.1 ports and
 * stops them, and removes its temp dir, whatever happens. Exits 0 when it ran
 * (missed targets are printed as MISSED), non-zero when something failed.
 *
 * OMEGA_BENCH_CPU_PROF=<dir> runs omega dns with `node --cpu-prof` into <dir>.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const HOST = '127.0.0.1';
const ZONE = 'sandbox.test';
const NAMES = 10_000;
const BATCH = 1000;
const TTL = 60;
const TOKEN = `bench-${randomBytes(12).toString('hex')}`;
const BENCH_SECONDS = 10;
/** dnsperf's -Q: high enough never to be the limit. */
const MAX_QPS = 1_000_000;
/**
 * Of the settings tried on a 2-core machine (-c 1..20, -T 1..2, -q 100..1000),
 * these gave NSD the most answers per second; both servers get the same.
 */
const DNSPERF_FLAGS = ['-c', '10', '-T', '2', '-q', '200'];
/** Cores used by anything but the server and dnsperf above which a run is called noisy. */
const NOISE_CORES = 0.15;
const UPDATES = 200;
const UPDATE_WAIT_MS = 2000;
const PROBE_TIMEOUT_MS = 50;
const TARGET_RATIO = 0.6;
const TARGET_P99_MS = 20;

const TMP = mkdtempSync(join(tmpdir(), 'omega-bench-dns-'));

// ---- child processes -------------------------------------------------------

interface Child {
  name: string;
  proc: ChildProcess;
  exited: Promise<void>;
  /** The last few KB of its stdout and stderr, for error reports. */
  output(): string;
}

const children = new Set<Child>();
const OUTPUT_KEEP = 8192;

function alive(c: Child): boolean {
  return c.proc.exitCode === null && c.proc.signalCode === null;
}

/** Each child leads its own process group, so a kill also reaches what it forks (nsd's server and xfrd). */
function start(name: string, cmd: string, args: string[], env?: NodeJS.ProcessEnv): Child {
  const proc = spawn(cmd, args, { cwd: ROOT, env: env ?? process.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let tail = '';
  const keep = (chunk: Buffer) => {
    tail = (tail + chunk.toString('utf8')).slice(-OUTPUT_KEEP);
  };
  proc.stdout?.on('data', keep);
  proc.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => {
    proc.once('error', (err) => {
      keep(Buffer.from(`spawn failed: ${err.message}\n`));
      resolve();
    });
    proc.once('close', () => resolve());
  });
  const child: Child = { name, proc, exited, output: () => tail };
  children.add(child);
  void exited.then(() => children.delete(child));
  return child;
}

function signalGroup(c: Child, signal: NodeJS.Signals): void {
  if (c.proc.pid === undefined || !alive(c)) return;
  try {
    process.kill(-c.proc.pid, signal);
  } catch {
    // already gone
  }
}

function groupExists(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * SIGTERM to the leader alone lets nsd stop its own children; the group is
 * killed if the leader hangs or something it forked outlives it.
 */
async function stop(c: Child, graceMs = 5000): Promise<void> {
  const pgid = c.proc.pid;
  if (alive(c)) c.proc.kill('SIGTERM');
  if (!(await within(c.exited, graceMs))) {
    signalGroup(c, 'SIGKILL');
    await within(c.exited, 2000);
  }
  if (pgid === undefined) return;
  for (let i = 0; i < 40 && groupExists(pgid); i++) await sleep(50);
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    // the group is gone
  }
}

interface RunResult {
  code: number | null;
  output: string;
}

/** Run a command to completion (killed after `timeoutMs`). */
async function run(name: string, cmd: string, args: string[], timeoutMs: number): Promise<RunResult> {
  const c = start(name, cmd, args);
  let out = '';
  c.proc.stdout?.on('data', (b: Buffer) => (out += b.toString('utf8')));
  c.proc.stderr?.on('data', (b: Buffer) => (out += b.toString('utf8')));
  if (!(await within(c.exited, timeoutMs))) {
    await stop(c, 1000);
    throw new Error(`${name} did not finish within ${timeoutMs} ms`);
  }
  return { code: c.proc.exitCode, output: out };
}

async function runOk(name: string, cmd: string, args: string[], timeoutMs: number): Promise<string> {
  const r = await run(name, cmd, args, timeoutMs);
  if (r.code !== 0) throw new Error(`${name} exited with ${r.code}:\n${r.output.slice(-4000)}`);
  return r.output;
}

let cleaned: Promise<void> | null = null;
function cleanup(): Promise<void> {
  cleaned ??= (async () => {
    await Promise.allSettled([...children].map((c) => stop(c)));
    rmSync(TMP, { recursive: true, force: true });
  })();
  return cleaned;
}

// Last resort if the process goes down without awaiting cleanup().
process.on('exit', () => {
  for (const c of children) signalGroup(c, 'SIGKILL');
  rmSync(TMP, { recursive: true, force: true });
});

// ---- small helpers -----------------------------------------------------------

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** True if `p` settled within `ms`. */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((r) => (timer = setTimeout(() => r(false), ms)));
  try {
    return await Promise.race([p.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Poll `check` until it returns a value, the child dies, or `timeoutMs` passes. */
async function waitFor<T>(what: string, check: () => Promise<T | null>, timeoutMs: number, child?: Child): Promise<T> {
  const end = performance.now() + timeoutMs;
  let last = '';
  while (performance.now() < end) {
    if (child && !alive(child)) throw new Error(`${child.name} exited while waiting for ${what}:\n${child.output()}`);
    try {
      const v = await check();
      if (v !== null) return v;
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(50);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (${last})` : ''}`);
}

/** A port free on 127.0.0.1 for both TCP and UDP (a DNS server needs both). */
async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const tcp = net.createServer();
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen(0, HOST, resolve);
    });
    const port = (tcp.address() as net.AddressInfo).port;
    const udp = dgram.createSocket('udp4');
    const udpOk = await new Promise<boolean>((resolve) => {
      udp.once('error', () => resolve(false));
      udp.bind(port, HOST, () => resolve(true));
    });
    await new Promise<void>((r) => tcp.close(() => r()));
    if (udpOk) await new Promise<void>((r) => udp.close(() => r()));
    if (udpOk && port !== 6379) return port;
  }
  throw new Error('found no free port');
}

const pad5 = (i: number) => String(i).padStart(5, '0');
const hostName = (i: number) => `h${pad5(i)}`;
const hostAddress = (i: number) => `10.1.${i >> 8}.${i & 255}`;

function percentile(sorted: number[], q: number): number {
  return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)] ?? NaN;
}

function shuffled<T>(items: T[]): T[] {
  const a = [...items];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

// ---- build ---------------------------------------------------------------------

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) newest = Math.max(newest, statSync(join(entry.parentPath ?? entry.path, entry.name)).mtimeMs);
  }
  return newest;
}

async function buildIfStale(): Promise<void> {
  const cli = join(ROOT, 'dist/cli/cli.js');
  const sources = Math.max(...['src', 'dns'].map((d) => newestMtime(join(ROOT, d))), statSync(join(ROOT, 'tsconfig.build.json')).mtimeMs);
  if (existsSync(cli) && statSync(cli).mtimeMs >= sources) return;
  console.log('building (npm run build)...');
  await runOk('npm run build', 'npm', ['run', 'build'], 300_000);
}

// ---- redis ----------------------------------------------------------------------

function redisPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, HOST);
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(500, () => done(false));
    s.once('error', () => done(false));
    s.once('connect', () => s.write('PING\r\n'));
    s.once('data', (b) => done(b.toString().startsWith('+PONG')));
  });
}

async function startRedis(): Promise<{ child: Child; url: string }> {
  const port = await freePort();
  const dir = join(TMP, 'redis');
  freshDir(dir);
  const args = ['--port', String(port), '--bind', HOST, '--dir', dir, '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--loglevel', 'warning'];
  const child = start('redis-server', 'redis-server', args);
  await waitFor('redis-server', async () => ((await redisPing(port)) ? true : null), 10_000, child);
  return { child, url: `redis://${HOST}:${port}` };
}

/** A fresh, empty directory. */
function freshDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
}

// ---- omega dns --------------------------------------------------------------------

interface Omega {
  child: Child;
  dnsPort: number;
  api: string;
}

async function startOmega(redisUrl: string): Promise<Omega> {
  const dnsPort = await freePort();
  const apiPort = await freePort();
  const prof = process.env.OMEGA_BENCH_CPU_PROF;
  const nodeArgs = prof ? ['--cpu-prof', '--cpu-prof-dir', prof] : [];
  const env = {
    ...process.env,
    OMEGA_REDIS_URL: redisUrl,
    OMEGA_REDIS_PREFIX: `bench${randomBytes(4).toString('hex')}`,
    OMEGA_ZONE: ZONE,
    OMEGA_DNS_LISTEN: `${HOST}:${dnsPort}`,
    OMEGA_DNS_API_LISTEN: `${HOST}:${apiPort}`,
    OMEGA_DNS_TOKEN: TOKEN,
    OMEGA_LOG_LEVEL: 'warn',
  };
  const child = start('omega dns', process.execPath, [...nodeArgs, 'dist/cli/cli.js', 'dns'], env);
  const api = `http://${HOST}:${apiPort}`;
  const healthy = async () => ((await fetch(`${api}/healthz`, { signal: AbortSignal.timeout(2000) })).status === 200 ? true : null);
  await waitFor('omega dns /healthz', healthy, 20_000, child);
  return { child, dnsPort, api };
}

async function callApi(api: string, method: string, path: string, body: unknown): Promise<unknown> {
  const res = await fetch(`${api}${path}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status} ${text.slice(0, 500)}`);
  return JSON.parse(text) as unknown;
}

async function loadNames(o: Omega): Promise<void> {
  for (let from = 0; from < NAMES; from += BATCH) {
    const changes = [];
    for (let i = from; i < Math.min(from + BATCH, NAMES); i++) {
      changes.push({ action: 'UPSERT', name: hostName(i), type: 'A', values: [hostAddress(i)], ttl: TTL });
    }
    await callApi(o.api, 'POST', '/v1/changes', { changes });
  }
  await waitFor(
    `${NAMES} names in the served zone`,
    async () => {
      const res = await fetch(`${o.api}/healthz`, { signal: AbortSignal.timeout(2000) });
      const h = (await res.json()) as { zone?: { names?: number } };
      return res.status === 200 && (h.zone?.names ?? 0) >= NAMES ? true : null;
    },
    20_000,
    o.child,
  );
}

// ---- dig -----------------------------------------------------------------------------

async function digA(port: number, name: string): Promise<string> {
  const out = await runOk('dig', 'dig', [`@${HOST}`, '-p', String(port), '+norec', '+short', '+time=1', '+tries=1', `${name}.${ZONE}`, 'A'], 10_000);
  return out.trim().split('\n')[0] ?? '';
}

async function expectAnswer(server: string, port: number, child: Child): Promise<void> {
  const i = NAMES - 1;
  const want = hostAddress(i);
  await waitFor(`${server} to answer ${hostName(i)}.${ZONE} A ${want} (dig)`, async () => ((await digA(port, hostName(i))) === want ? true : null), 15_000, child);
}

// ---- nsd ------------------------------------------------------------------------------

function zoneFile(): string {
  const lines = [
    `$ORIGIN ${ZONE}.`,
    `$TTL ${TTL}`,
    `@ IN SOA ns1.${ZONE}. hostmaster.${ZONE}. 1 3600 600 604800 5`,
    `@ IN NS ns1.${ZONE}.`,
    `ns1 3600 IN A ${HOST}`,
  ];
  for (let i = 0; i < NAMES; i++) lines.push(`${hostName(i)} ${TTL} IN A ${hostAddress(i)}`);
  return `${lines.join('\n')}\n`;
}

function nsdConf(dir: string, port: number): string {
  const q = (p: string) => JSON.stringify(join(dir, p));
  return `server:
  server-count: 1
  ip-address: ${HOST}
  port: ${port}
  do-ip6: no
  username: ""
  chroot: ""
  zonesdir: ${JSON.stringify(dir)}
  database: ""
  zonelistfile: ${q('zone.list')}
  xfrdfile: ${q('xfrd.state')}
  xfrdir: ${JSON.stringify(dir)}
  pidfile: ${q('nsd.pid')}
  logfile: ${q('nsd.log')}
  verbosity: 0
  hide-version: yes
  # NSD's default RRL answers one source 200 qps at most, which would be the whole result.
  rrl-ratelimit: 0
  rrl-whitelist-ratelimit: 0
  # Omega sends no authority/additional section for a positive answer; neither should NSD.
  minimal-responses: yes

remote-control:
  control-enable: no

zone:
  name: ${ZONE}
  zonefile: ${q(`${ZONE}.zone`)}
`;
}

async function startNsd(): Promise<{ child: Child; port: number }> {
  const dir = join(TMP, 'nsd');
  freshDir(dir);
  const port = await freePort();
  const conf = join(dir, 'nsd.conf');
  writeFileSync(join(dir, `${ZONE}.zone`), zoneFile());
  writeFileSync(conf, nsdConf(dir, port));
  await runOk('nsd-checkconf', 'nsd-checkconf', [conf], 10_000);
  const child = start('nsd', 'nsd', ['-d', '-c', conf]);
  try {
    await expectAnswer('nsd', port, child);
  } catch (err) {
    throw new Error(`${(err as Error).message}\nnsd.log: ${readLog(join(dir, 'nsd.log'))}`);
  }
  return { child, port };
}

function readLog(path: string): string {
  try {
    return readFileSync(path, 'utf8').slice(-4000);
  } catch {
    return '(none)';
  }
}

// ---- dnsperf ----------------------------------------------------------------------------

/**
 * CPU use from /proc, in clock ticks (USER_HZ, 100 on Linux): the figures
 * show whether the server was the bottleneck and whether other processes
 * on the machine competed with the run.
 */
const TICKS_PER_SECOND = 100;

function procStat(pid: string): { pgrp: number; ticks: number } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { pgrp: Number(f[2]), ticks: Number(f[11]) + Number(f[12]) };
  } catch {
    return null;
  }
}

/** Every process of the group counts: nsd answers from a forked child. */
function groupTicks(pgid: number): number {
  let sum = 0;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const p = procStat(pid);
    if (p?.pgrp === pgid) sum += p.ticks;
  }
  return sum;
}

/** Busy ticks of all CPUs together, including time the hypervisor stole. */
function machineTicks(): number {
  const fields = (readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = fields;
  return user + nice + system + irq + softirq + steal;
}

interface CpuSample {
  at: number;
  machine: number;
  server: number;
  client: number;
}

function cpuSample(server: Child, client: Child): CpuSample | null {
  const c = procStat(String(client.proc.pid));
  if (!c || server.proc.pid === undefined) return null;
  return { at: performance.now(), machine: machineTicks(), server: groupTicks(server.proc.pid), client: c.ticks };
}

interface CpuUse {
  /** Cores busy on average over the run. */
  server: number;
  dnsperf: number;
  others: number;
}

function cpuUse(a: CpuSample, b: CpuSample): CpuUse {
  const ticks = ((b.at - a.at) / 1000) * TICKS_PER_SECOND;
  const server = (b.server - a.server) / ticks;
  const dnsperf = (b.client - a.client) / ticks;
  return { server, dnsperf, others: Math.max(0, (b.machine - a.machine) / ticks - server - dnsperf) };
}

interface PerfResult {
  qps: number;
  sent: number;
  completed: number;
  lost: number;
  avgLatencyMs: number;
  responseBytes: number;
  responseCodes: string;
  cpu: CpuUse;
}

function writeQueryFile(): string {
  const file = join(TMP, 'queries.txt');
  const names = Array.from({ length: NAMES }, (_, i) => `${hostName(i)}.${ZONE} A`);
  writeFileSync(file, `${shuffled(names).join('\n')}\n`);
  return file;
}

function parseDnsperf(out: string): Omit<PerfResult, 'cpu'> {
  const num = (pattern: string) => {
    const m = new RegExp(`${pattern}\\s+([0-9.]+)`).exec(out);
    if (!m) throw new Error(`dnsperf output has no "${pattern}":\n${out.slice(-2000)}`);
    return Number(m[1]);
  };
  return {
    qps: num('Queries per second:'),
    sent: num('Queries sent:'),
    completed: num('Queries completed:'),
    lost: num('Queries lost:'),
    avgLatencyMs: num('Average Latency \\(s\\):') * 1000,
    responseBytes: num('Average packet size:.*response'),
    responseCodes: /Response codes:\s+(.*)/.exec(out)?.[1]?.trim() ?? '',
  };
}

async function dnsperf(port: number, server: Child, queries: string): Promise<PerfResult> {
  const args = ['-s', HOST, '-p', String(port), '-d', queries, '-l', String(BENCH_SECONDS), '-Q', String(MAX_QPS), ...DNSPERF_FLAGS];
  const client = start('dnsperf', 'dnsperf', args);
  let out = '';
  client.proc.stdout?.on('data', (b: Buffer) => (out += b.toString('utf8')));
  client.proc.stderr?.on('data', (b: Buffer) => (out += b.toString('utf8')));
  const first = cpuSample(server, client);
  let last = first;
  // dnsperf waits up to its 5 s query timeout for stragglers after the run.
  const end = performance.now() + (BENCH_SECONDS + 20) * 1000;
  while (alive(client) && performance.now() < end) {
    await within(client.exited, 250);
    last = cpuSample(server, client) ?? last;
  }
  if (!(await within(client.exited, 1000))) {
    await stop(client, 1000);
    throw new Error(`dnsperf did not finish within ${BENCH_SECONDS + 20} s`);
  }
  if (client.proc.exitCode !== 0) throw new Error(`dnsperf exited with ${client.proc.exitCode}:\n${out.slice(-4000)}`);
  if (!first || !last || last.at - first.at < 1000) throw new Error('could not follow dnsperf in /proc');
  const r = { ...parseDnsperf(out), cpu: cpuUse(first, last) };
  if (r.completed > 0 && !/^NOERROR \d+ \(100\.00%\)$/.test(r.responseCodes)) {
    throw new Error(`dnsperf got answers other than NOERROR: ${r.responseCodes}`);
  }
  return r;
}

// ---- propagation ------------------------------------------------------------------------

function encodeQuery(id: number, name: string): Buffer {
  const labels = name.split('.').map((l) => Buffer.from(l, 'ascii'));
  const qname = Buffer.concat([...labels.flatMap((l) => [Buffer.from([l.length]), l]), Buffer.from([0])]);
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(1, 4); // QDCOUNT; no RD: it is an authoritative server
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(1, 0); // A
  tail.writeUInt16BE(1, 2); // IN
  return Buffer.concat([header, qname, tail]);
}

function skipName(msg: Buffer, off: number): number {
  for (let hops = 0; hops < 128; hops++) {
    const len = msg[off];
    if (len === undefined) throw new RangeError('truncated name');
    if ((len & 0xc0) === 0xc0) return off + 2;
    if (len === 0) return off + 1;
    off += len + 1;
  }
  throw new RangeError('name too long');
}

/** The first A record's address in a response, or null. */
function firstA(msg: Buffer): string | null {
  try {
    const qd = msg.readUInt16BE(4);
    const an = msg.readUInt16BE(6);
    let off = 12;
    for (let i = 0; i < qd; i++) off = skipName(msg, off) + 4;
    for (let i = 0; i < an; i++) {
      off = skipName(msg, off);
      const type = msg.readUInt16BE(off);
      const rdlen = msg.readUInt16BE(off + 8);
      off += 10;
      if (type === 1 && rdlen === 4) return `${msg[off]}.${msg[off + 1]}.${msg[off + 2]}.${msg[off + 3]}`;
      off += rdlen;
    }
  } catch {
    // malformed or truncated: no address
  }
  return null;
}

/** One UDP socket asking one question at a time. */
class UdpProbe {
  private nextId = 1;
  private waiting: { id: number; done: (reply: Buffer | null) => void } | null = null;

  private constructor(
    private readonly socket: dgram.Socket,
    private readonly port: number,
  ) {
    socket.on('message', (msg) => {
      const w = this.waiting;
      if (w && msg.length >= 12 && msg.readUInt16BE(0) === w.id) w.done(msg);
    });
  }

  static async open(port: number): Promise<UdpProbe> {
    const socket = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, HOST, resolve));
    return new UdpProbe(socket, port);
  }

  ask(name: string): Promise<Buffer | null> {
    const id = this.nextId;
    this.nextId = (this.nextId + 1) & 0xffff || 1;
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(null), PROBE_TIMEOUT_MS);
      const done = (reply: Buffer | null) => {
        clearTimeout(timer);
        this.waiting = null;
        resolve(reply);
      };
      this.waiting = { id, done };
      this.socket.send(encodeQuery(id, name), this.port, HOST);
    });
  }

  /** performance.now() of the first answer carrying `address`, or null after `timeoutMs`. */
  async until(name: string, address: string, timeoutMs: number): Promise<number | null> {
    const end = performance.now() + timeoutMs;
    while (performance.now() < end) {
      const reply = await this.ask(name);
      if (reply && firstA(reply) === address) return performance.now();
    }
    return null;
  }

  close(): void {
    this.socket.close();
  }
}

interface Propagation {
  delaysMs: number[];
  failures: number;
}

async function measurePropagation(o: Omega): Promise<Propagation> {
  const probe = await UdpProbe.open(o.dnsPort);
  const delaysMs: number[] = [];
  let failures = 0;
  try {
    for (let i = 0; i < UPDATES; i++) {
      const name = `p${i}`;
      const address = `172.16.${1 + (i >> 8)}.${i & 255}`;
      await callApi(o.api, 'PUT', `/v1/records/${name}`, { type: 'A', values: [address] });
      const acked = performance.now();
      const seen = await probe.until(`${name}.${ZONE}`, address, UPDATE_WAIT_MS);
      if (seen === null) failures++;
      else delaysMs.push(seen - acked);
    }
  } finally {
    probe.close();
  }
  return { delaysMs, failures };
}

// ---- report --------------------------------------------------------------------------------

interface Results {
  omega: PerfResult;
  nsd: PerfResult;
  propagation: Propagation;
}

const round3 = (n: number) => Math.round(n * 1000) / 1000;
const mark = (ok: boolean) => (ok ? 'ok' : 'MISSED');

function perfLines(name: string, p: PerfResult): string {
  const c = p.cpu;
  const noisy = c.others > NOISE_CORES ? '  NOISY: other processes competed' : '';
  return (
    `${name.padEnd(10)} qps=${p.qps.toFixed(0).padStart(7)}  lost=${p.lost}` +
    `  (sent ${p.sent}, completed ${p.completed}, avg latency ${p.avgLatencyMs.toFixed(3)} ms, response ${p.responseBytes} B)\n` +
    `${''.padEnd(10)} cpu cores: server ${c.server.toFixed(2)}, dnsperf ${c.dnsperf.toFixed(2)}, others ${c.others.toFixed(2)}` +
    `; ${(p.qps / c.server).toFixed(0)} qps per server core${noisy}`
  );
}

function perfJson(p: PerfResult) {
  return {
    ...p,
    qps: Math.round(p.qps),
    avgLatencyMs: round3(p.avgLatencyMs),
    cpu: { server: round3(p.cpu.server), dnsperf: round3(p.cpu.dnsperf), others: round3(p.cpu.others) },
  };
}

function report(r: Results): void {
  const ratio = r.omega.qps / r.nsd.qps;
  const perCoreRatio = r.omega.qps / r.omega.cpu.server / (r.nsd.qps / r.nsd.cpu.server);
  const sorted = [...r.propagation.delaysMs].sort((a, b) => a - b);
  const p50 = percentile(sorted, 0.5);
  const p99 = percentile(sorted, 0.99);
  const max = sorted[sorted.length - 1] ?? NaN;
  const ratioOk = ratio >= TARGET_RATIO && r.omega.lost === 0;
  const propOk = r.propagation.failures === 0 && p99 < TARGET_P99_MS;
  console.log('');
  console.log(`dnsperf -l ${BENCH_SECONDS} -Q ${MAX_QPS} ${DNSPERF_FLAGS.join(' ')}: ${NAMES} names, A over UDP on ${HOST}`);
  console.log(perfLines('omega dns', r.omega));
  console.log(perfLines('nsd', r.nsd));
  console.log(
    `ratio omega/nsd = ${ratio.toFixed(2)} (target >= ${TARGET_RATIO}, no lost queries) ${mark(ratioOk)}` +
      `; per server core ${perCoreRatio.toFixed(2)}`,
  );
  console.log(
    `propagation p50=${p50.toFixed(3)}ms p99=${p99.toFixed(3)}ms max=${max.toFixed(3)}ms over ${UPDATES} updates` +
      ` (target p99 < ${TARGET_P99_MS} ms) ${mark(propOk)}` +
      (r.propagation.failures ? `; ${r.propagation.failures} not seen within ${UPDATE_WAIT_MS} ms` : ''),
  );
  console.log(
    JSON.stringify({
      dnsperf: ['-l', String(BENCH_SECONDS), '-Q', String(MAX_QPS), ...DNSPERF_FLAGS].join(' '),
      names: NAMES,
      omega: perfJson(r.omega),
      nsd: perfJson(r.nsd),
      ratio: round3(ratio),
      ratioPerServerCore: round3(perCoreRatio),
      propagation: { updates: UPDATES, failures: r.propagation.failures, p50Ms: round3(p50), p99Ms: round3(p99), maxMs: round3(max) },
      targetsMet: { ratio: ratioOk, propagation: propOk },
    }),
  );
}

// ---- main ----------------------------------------------------------------------------------

async function main(): Promise<void> {
  await buildIfStale();
  const redis = await startRedis();
  const omega = await startOmega(redis.url);
  console.log(`omega dns on ${HOST}:${omega.dnsPort}, api ${omega.api}; loading ${NAMES} names...`);
  await loadNames(omega);
  await expectAnswer('omega dns', omega.dnsPort, omega.child);
  const nsd = await startNsd();
  console.log(`nsd on ${HOST}:${nsd.port}`);
  const queries = writeQueryFile();

  console.log(`dnsperf against omega dns (${BENCH_SECONDS} s)...`);
  const omegaPerf = await dnsperf(omega.dnsPort, omega.child, queries);
  console.log(`dnsperf against nsd (${BENCH_SECONDS} s)...`);
  const nsdPerf = await dnsperf(nsd.port, nsd.child, queries);
  await stop(nsd.child);

  console.log(`measuring propagation (${UPDATES} updates)...`);
  const propagation = await measurePropagation(omega);
  report({ omega: omegaPerf, nsd: nsdPerf, propagation });
}

let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (interrupted) return;
    interrupted = true;
    console.error(`\n${signal}: stopping`);
    void cleanup().finally(() => process.exit(130));
  });
}

main().then(
  async () => {
    await cleanup();
    process.exit(0);
  },
  async (err: unknown) => {
    if (interrupted) return;
    console.error(`bench-dns failed: ${(err as Error).stack ?? String(err)}`);
    for (const c of children) if (c.name === 'omega dns' && c.output()) console.error(`--- omega dns output ---\n${c.output()}`);
    await cleanup();
    process.exit(1);
  },
);
