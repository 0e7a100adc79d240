/**
 * `make bench-tls`: what TLS and the per-host ingress cost, against the plain
 * path in the same run.
 *
 *   connect   create -> connected (POST /v1/sandboxes to the worker's hello)
 *             over wss through the ingress vs ws straight to the worker's
 *             port, warm pool, alternating, p50 ratio (target <= 1.1);
 *   handshake TLS handshakes to the ingress one after another (no session
 *             reuse), p50/p99, beside a plain TCP connect to the same host;
 *   read      a 1 MiB file read over one open wss vs ws connection, p50;
 *   idle      1,000 WebSockets opened through one ingress at 200 a second
 *             (handshake p99 at that rate), then held idle: the manager's
 *             RSS growth (it is a process of its own here; the ingress lives
 *             in it);
 *   haproxy   the same handshake, read and idle figures through Debian's
 *             HAProxy terminating TLS in front of the same worker (mode tcp,
 *             the same certificate): the reference the ingress was chosen
 *             against;
 *   acme      Pebble (a real ACME CA) issuing *.<zone> through Omega's DNS:
 *             the first order and forced renewals.
 *
 * Needs the Docker engine, `make images`, Debian's pebble and haproxy.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { Agent, request } from 'undici';
import { loadConfig as loadDnsConfig } from '../dns/config.js';
import { DnsServer } from '../dns/server.js';
import { loadConfig as loadMasterConfig } from '../master/config.js';
import { MasterServer } from '../master/server.js';
import { createLogger } from '../src/log.js';
import { connectWorker, type WorkerConnection } from '../src/protocol/worker-client.js';
import { spawn } from 'node:child_process';
import { createLocalCa, issueFromLocalCa } from '../src/tls/local-ca.js';
import { startPebble } from '../test/helpers/pebble.js';
import { freePort, sleep } from '../test/helpers/ports.js';
import { Program } from '../test/helpers/programs.js';
import { TestRedis } from '../test/helpers/redis.js';
import { sweepDocker } from '../test/helpers/whole.js';
import { pct } from './stats.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 20);
const IDLE = Number(process.env.BENCH_IDLE_SOCKETS ?? 1000);
const RATE = Number(process.env.BENCH_CONNECT_RATE ?? 200);
const ms = (x: number) => `${x.toFixed(2)} ms`;
const silent = (name: string) => createLogger(name, { level: process.env.BENCH_LOG_LEVEL ?? 'silent' });
const token = () => randomBytes(18).toString('base64url');
const rssKb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);

const cleanups: Array<() => unknown> = [];
const teardown = { teardown: (fn: () => unknown) => void cleanups.unshift(fn) };

interface Stack {
  master: MasterServer;
  manager: Program;
  api: (method: string, path: string, body?: unknown) => Promise<any>;
  ingressPort: number;
}

/** DNS and master in this process, the manager (and so the ingress) as a process of its own. */
async function stack(redisUrl: string, tlsMode: 'local' | 'off', ca: { certFile: string; keyFile: string; pem: string }): Promise<Stack> {
  const prefix = `benchtls${tlsMode}${randomBytes(2).toString('hex')}`;
  const [dnsToken, managerToken, apiToken] = [token(), token(), token()];
  const dns = new DnsServer(loadDnsConfig({ env: { OMEGA_REDIS_URL: redisUrl, OMEGA_REDIS_PREFIX: prefix, OMEGA_DNS_LISTEN: '127.0.0.1:0', OMEGA_DNS_API_LISTEN: '127.0.0.1:0', OMEGA_DNS_TOKEN: dnsToken } }), silent('dns'));
  await dns.start();
  cleanups.unshift(() => dns.stop());
  const master = new MasterServer(
    loadMasterConfig({
      env: {
        OMEGA_REDIS_URL: redisUrl,
        OMEGA_REDIS_PREFIX: prefix,
        OMEGA_MASTER_LISTEN: '127.0.0.1:0',
        OMEGA_API_TOKEN: apiToken,
        OMEGA_DNS_API_URL: dns.addresses.apiUrl,
        OMEGA_DNS_TOKEN: dnsToken,
        OMEGA_MANAGER_TOKEN: managerToken,
        OMEGA_TEMPLATES: 'node',
        OMEGA_TLS: tlsMode,
        ...(tlsMode === 'local' ? { OMEGA_TLS_CA_CERT_FILE: ca.certFile, OMEGA_TLS_CA_KEY_FILE: ca.keyFile } : {}),
      },
    }),
    silent('master'),
  );
  await master.start();
  cleanups.unshift(() => master.stop());
  const [managerPort, ingressPort] = [await freePort(), await freePort()];
  const hostId = `bench-${prefix}`;
  const manager = new Program(
    'manager',
    'manager',
    {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      OMEGA_REDIS_URL: redisUrl,
      OMEGA_REDIS_PREFIX: prefix,
      OMEGA_HOST_IP: '127.0.0.1',
      OMEGA_HOST_ID: hostId,
      OMEGA_MANAGER_LISTEN: `127.0.0.1:${managerPort}`,
      OMEGA_MANAGER_TOKEN: managerToken,
      OMEGA_TEMPLATES: 'node',
      OMEGA_POOL_SIZE: '3',
      OMEGA_ORPHAN_GRACE_MS: '0',
      OMEGA_TLS: tlsMode,
      OMEGA_INGRESS_LISTEN: `127.0.0.1:${ingressPort}`,
      OMEGA_LOG_LEVEL: 'warn',
    },
    { restartDelayMs: 1000 },
  );
  manager.start();
  // After it stops: whatever it left (its pool's volumes when Redis went first).
  cleanups.push(() => sweepDocker([hostId]));
  cleanups.unshift(() => manager.stop());
  await manager.ready(`http://127.0.0.1:${managerPort}/healthz`);
  const agent = new Agent({ connect: { ca: ca.pem } });
  cleanups.unshift(() => agent.close());
  const api = async (method: string, path: string, body?: unknown) => {
    const res = await request(`${master.apiUrl}${path}`, {
      method: method as 'GET',
      dispatcher: agent,
      headers: { authorization: `Bearer ${apiToken}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await res.body.text();
    if (res.statusCode >= 300) throw new Error(`${method} ${path}: ${res.statusCode} ${text}`);
    return text ? JSON.parse(text) : null;
  };
  // The host is registered and its pool warm before anything is measured.
  for (let i = 0; i < 600; i++) {
    const h = await request(`http://127.0.0.1:${managerPort}/healthz`).then((r) => r.body.json() as Promise<any>);
    if (h.registered && (h.pool?.node?.ready ?? 0) >= 3) break;
    await sleep(100);
  }
  return { master, manager, api, ingressPort };
}

/**
 * ws options that reach `<id>.<zone>` at 127.0.0.1 (what the zone's DNS
 * answers here), trusting the CA. One TLS context for every connection, as a
 * browser keeps one: building it (parsing the CA) is the client's cost, not
 * the ingress's.
 */
const contexts = new Map<string, tls.SecureContext>();
const contextFor = (caPem: string) => contexts.get(caPem) ?? contexts.set(caPem, tls.createSecureContext({ ca: caPem })).get(caPem)!;
const socketOpts = (caPem: string) => ({ secureContext: contextFor(caPem), lookup: ((_h: string, o: any, cb: any) => (o?.all ? cb(null, [{ address: '127.0.0.1', family: 4 }]) : cb(null, '127.0.0.1', 4))) as any });

async function createConnected(s: Stack, caPem: string): Promise<{ ms: number; createMs: number; conn: WorkerConnection; id: string; url: string; token: string }> {
  const t0 = performance.now();
  const sb = await s.api('POST', '/v1/sandboxes', { template: 'node' });
  const createMs = performance.now() - t0;
  const conn = await connectWorker(sb.url, { token: sb.token, timeoutMs: 10_000, socket: socketOpts(caPem) });
  return { ms: performance.now() - t0, createMs, conn, id: sb.id, url: sb.url, token: sb.token };
}

/** Where the ingress reaches a sandbox's worker: its row in the host's container table. */
async function ingressTarget(id: string, redisUrl: string): Promise<string> {
  const { createRedis } = await import('../src/redis/connection.js');
  const rc = createRedis(redisUrl);
  try {
    for (const key of await rc.keys('benchtlslocal*:{hosts}:host:*:containers')) {
      const row = await rc.hget(key, id);
      if (row) {
        const e = JSON.parse(row) as { address: string; hostPort: number };
        return `${e.address}:${e.hostPort}`;
      }
    }
    throw new Error(`no container row for ${id}`);
  } finally {
    rc.disconnect();
  }
}

/**
 * Handshakes, a 1 MiB read and 1,000 idle WebSockets through one TLS front
 * (the ingress or HAProxy) at `port`, beside the plain connection `plainConn`;
 * `pid` is the process that holds the connections.
 */
async function measureFront(
  label: string,
  port: number,
  name: string,
  sb: { url: string; token: string; conn: WorkerConnection },
  plainConn: WorkerConnection,
  caPem: string,
  pid: number,
  conn: WorkerConnection = sb.conn,
): Promise<{ hs: number; read: number; kib: number }> {
  const hs: number[] = [];
  const tcp: number[] = [];
  for (let i = 0; i < 200; i++) {
    const t0 = performance.now();
    await new Promise<void>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, servername: name, secureContext: contextFor(caPem) }, () => {
        hs.push(performance.now() - t0);
        s.destroy();
        resolve();
      });
      s.once('error', reject);
    });
    const t1 = performance.now();
    await new Promise<void>((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => {
        tcp.push(performance.now() - t1);
        s.destroy();
        resolve();
      });
      s.once('error', reject);
    });
  }
  console.log(`${label.padEnd(9)} TLS 1.3 handshake (ECDSA P-256): p50 ${ms(pct(hs, 50))} p99 ${ms(pct(hs, 99))}; TCP connect alone p50 ${ms(pct(tcp, 50))}`);

  const mib = randomBytes(768 * 1024).toString('base64'); // 1 MiB of text
  await conn.call('fs.write', { path: 'big.txt', content: mib });
  await plainConn.call('fs.write', { path: 'big.txt', content: mib });
  const reads = { tls: [] as number[], ws: [] as number[] };
  for (let i = 0; i < 30; i++) {
    for (const [n, c] of [['tls', conn], ['ws', plainConn]] as const) {
      const t0 = performance.now();
      const r = await c.call('fs.read', { path: 'big.txt' });
      if (r.size !== mib.length) throw new Error(`read ${r.size} bytes, wrote ${mib.length}`);
      reads[n].push(performance.now() - t0);
    }
  }
  console.log(`${label.padEnd(9)} 1 MiB file read: wss p50 ${ms(pct(reads.tls, 50))}, ws direct p50 ${ms(pct(reads.ws, 50))}; ratio ${(pct(reads.tls, 50) / pct(reads.ws, 50)).toFixed(2)}`);

  await sleep(1000);
  const before = rssKb(pid);
  const opens: number[] = [];
  const t0 = performance.now();
  const opening: Array<Promise<WorkerConnection>> = [];
  for (let i = 0; i < IDLE; i++) {
    const wait = t0 + (i * 1000) / RATE - performance.now();
    if (wait > 0) await sleep(wait);
    const started = performance.now();
    opening.push(
      connectWorker(`wss://127.0.0.1:${port}/`, { token: sb.token, timeoutMs: 30_000, socket: { secureContext: contextFor(caPem), servername: name, headers: { host: name } } }).then((c) => {
        opens.push(performance.now() - started);
        return c;
      }),
    );
  }
  const idle = await Promise.all(opening);
  const openMs = performance.now() - t0;
  await sleep(2000);
  const after = rssKb(pid);
  const kib = (after - before) / IDLE;
  console.log(
    `${label.padEnd(9)} ${IDLE} WebSockets opened at ${RATE}/s (all open after ${(openMs / 1000).toFixed(1)} s): TLS + upgrade + hello p50 ${ms(pct(opens, 50))} p99 ${ms(pct(opens, 99))}; RSS of the process holding them ${(before / 1024).toFixed(0)} -> ${(after / 1024).toFixed(0)} MiB (+${kib.toFixed(1)} KiB a connection)`,
  );
  for (const c of idle) c.close();
  await sleep(500);
  return { hs: pct(hs, 50), read: pct(reads.tls, 50), kib };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'omega-bench-tls-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const ca = await createLocalCa('Omega bench CA');
  writeFileSync(join(dir, 'ca.pem'), ca.certPem);
  writeFileSync(join(dir, 'ca-key.pem'), ca.keyPem, { mode: 0o600 });
  const caFiles = { certFile: join(dir, 'ca.pem'), keyFile: join(dir, 'ca-key.pem'), pem: ca.certPem };
  const redis = await TestRedis.create();
  cleanups.push(() => redis.destroy());

  const secure = await stack(redis.url, 'local', caFiles);
  const plain = await stack(redis.url, 'off', caFiles);

  // create -> connected, alternating so both see the same machine.
  const times = { wss: [] as number[], ws: [] as number[] };
  const creates = { wss: [] as number[], ws: [] as number[] };
  for (let i = 0; i < RUNS; i++) {
    for (const [name, s] of [['wss', secure], ['ws', plain]] as const) {
      const r = await createConnected(s, ca.certPem);
      times[name].push(r.ms);
      creates[name].push(r.createMs);
      r.conn.close();
      await s.api('DELETE', `/v1/sandboxes/${r.id}`);
    }
    await sleep(700); // the pools refill between rounds (not measured)
  }
  const ratio = pct(times.wss, 50) / pct(times.ws, 50);
  console.log(`connect   create -> connected: wss via ingress p50 ${ms(pct(times.wss, 50))} p99 ${ms(pct(times.wss, 99))}; ws direct p50 ${ms(pct(times.ws, 50))} p99 ${ms(pct(times.ws, 99))}; ratio ${ratio.toFixed(2)} (target <= 1.1); of which the create's answer p50 ${ms(pct(creates.wss, 50))} (https API) vs ${ms(pct(creates.ws, 50))} (http)`);

  // One sandbox on each path for the rest.
  const a = await createConnected(secure, ca.certPem);
  const b = await createConnected(plain, ca.certPem);
  const name = `${a.id}.sandbox.test`;

  const ingress = await measureFront('ingress', secure.ingressPort, name, a, b.conn, ca.certPem, secure.manager.pid!);

  // HAProxy in front of the same worker, with the same certificate, as the reference.
  const workerAddress = await ingressTarget(a.id, redis.url);
  const leaf = await issueFromLocalCa(ca, { names: ['*.sandbox.test', 'sandbox.test'], lifetimeDays: 1 });
  writeFileSync(join(dir, 'haproxy.pem'), `${leaf.certPem.trim()}\n${leaf.keyPem}`, { mode: 0o600 });
  const hport = await freePort();
  writeFileSync(
    join(dir, 'haproxy.cfg'),
    [
      'global',
      '  maxconn 5000',
      'defaults',
      '  mode tcp',
      '  timeout connect 5s',
      '  timeout client 1h',
      '  timeout server 1h',
      'frontend tls',
      `  bind 127.0.0.1:${hport} ssl crt ${join(dir, 'haproxy.pem')} alpn http/1.1`,
      '  default_backend worker',
      'backend worker',
      `  server w ${workerAddress}`,
      '',
    ].join('\n'),
  );
  const haproxy = spawn('haproxy', ['-db', '-f', join(dir, 'haproxy.cfg')], { stdio: ['ignore', 'inherit', 'inherit'] });
  cleanups.unshift(() => haproxy.kill('SIGTERM'));
  const listening = () =>
    new Promise<boolean>((r) => {
      const c = net.connect(hport, '127.0.0.1');
      c.once('connect', () => (c.destroy(), r(true)));
      c.once('error', () => r(false));
    });
  for (let i = 0; !(await listening()); i++) {
    if (haproxy.exitCode !== null || i > 100) throw new Error(`haproxy did not start (exit ${haproxy.exitCode})`);
    await sleep(50);
  }
  const viaHaproxy = await connectWorker(`wss://127.0.0.1:${hport}/`, { token: a.token, timeoutMs: 10_000, socket: { secureContext: contextFor(ca.certPem), servername: name, headers: { host: name } } });
  const hap = await measureFront('haproxy', hport, name, a, b.conn, ca.certPem, haproxy.pid!, viaHaproxy);
  viaHaproxy.close();
  console.log(`choice    ingress vs HAProxy: handshake p50 ${ms(ingress.hs)} vs ${ms(hap.hs)}; 1 MiB read p50 ${ms(ingress.read)} vs ${ms(hap.read)}; per idle connection ${ingress.kib.toFixed(1)} vs ${hap.kib.toFixed(1)} KiB`);
  a.conn.close();
  b.conn.close();

  // Pebble issuing the wildcard through Omega's DNS.
  const dns = new DnsServer(loadDnsConfig({ env: { OMEGA_REDIS_URL: redis.url, OMEGA_REDIS_PREFIX: 'benchacme', OMEGA_DNS_LISTEN: '127.0.0.1:0', OMEGA_DNS_API_LISTEN: '127.0.0.1:0', OMEGA_DNS_TOKEN: 'bench-dns-token-0123456789' } }), silent('dns'));
  await dns.start();
  cleanups.unshift(() => dns.stop());
  const pebble = await startPebble(teardown as never, `127.0.0.1:${dns.addresses.port}`);
  const acmeMaster = new MasterServer(
    loadMasterConfig({
      env: {
        OMEGA_REDIS_URL: redis.url,
        OMEGA_REDIS_PREFIX: 'benchacme',
        OMEGA_MASTER_LISTEN: '127.0.0.1:0',
        OMEGA_DEV: '1',
        OMEGA_DNS_API_URL: dns.addresses.apiUrl,
        OMEGA_DNS_TOKEN: 'bench-dns-token-0123456789',
        OMEGA_TLS: 'acme',
        OMEGA_ACME_DIRECTORY_URL: pebble.directoryUrl,
        OMEGA_ACME_EMAIL: 'bench@sandbox.test',
        OMEGA_ACME_CA_FILE: pebble.httpsCaFile,
        OMEGA_ACME_DNS_SERVERS: `127.0.0.1:${dns.addresses.port}`,
      },
    }),
    silent('master'),
  );
  const s0 = performance.now();
  await acmeMaster.start();
  cleanups.unshift(() => acmeMaster.stop());
  const first = performance.now() - s0;
  const renewals: number[] = [];
  for (let i = 0; i < 5; i++) {
    const r0 = performance.now();
    await acmeMaster.certificates!.renewSoon();
    renewals.push(performance.now() - r0);
  }
  console.log(`acme      Pebble issues *.sandbox.test and sandbox.test through Omega's DNS (DNS-01, both authorizations): master start to certificate ${ms(first)}; forced renewals p50 ${ms(pct(renewals, 50))} (n=5)`);
}

try {
  await main();
} finally {
  for (const c of cleanups) await Promise.resolve(c()).catch((err: unknown) => console.error('cleanup failed:', err));
}
