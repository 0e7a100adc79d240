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
 *   acme      Pebble (a real ACME CA) issuing *.<zone> through Omega's DNS:
 *             the first order and forced renewals.
 *
 * Needs the Docker engine, `make images` and Debian's pebble.
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
import { createLocalCa } from '../src/tls/local-ca.js';
import { startPebble } from '../test/helpers/pebble.js';
import { freePort, sleep } from '../test/helpers/ports.js';
import { Program } from '../test/helpers/programs.js';
import { TestRedis } from '../test/helpers/redis.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 20);
const IDLE = Number(process.env.BENCH_IDLE_SOCKETS ?? 1000);
const RATE = Number(process.env.BENCH_CONNECT_RATE ?? 200);
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};
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

/** ws options that reach `<id>.<zone>` at 127.0.0.1 (what the zone's DNS answers here), trusting the CA. */
const socketOpts = (caPem: string) => ({ ca: caPem, lookup: ((_h: string, o: any, cb: any) => (o?.all ? cb(null, [{ address: '127.0.0.1', family: 4 }]) : cb(null, '127.0.0.1', 4))) as any });

async function createConnected(s: Stack, caPem: string): Promise<{ ms: number; conn: WorkerConnection; id: string; url: string; token: string }> {
  const t0 = performance.now();
  const sb = await s.api('POST', '/v1/sandboxes', { template: 'node' });
  const conn = await connectWorker(sb.url, { token: sb.token, timeoutMs: 10_000, socket: socketOpts(caPem) });
  return { ms: performance.now() - t0, conn, id: sb.id, url: sb.url, token: sb.token };
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
  for (let i = 0; i < RUNS; i++) {
    for (const [name, s] of [['wss', secure], ['ws', plain]] as const) {
      const r = await createConnected(s, ca.certPem);
      times[name].push(r.ms);
      r.conn.close();
      await s.api('DELETE', `/v1/sandboxes/${r.id}`);
    }
    await sleep(700); // the pools refill between rounds (not measured)
  }
  const ratio = pct(times.wss, 50) / pct(times.ws, 50);
  console.log(`connect   create -> connected: wss via ingress p50 ${ms(pct(times.wss, 50))} p99 ${ms(pct(times.wss, 99))}; ws direct p50 ${ms(pct(times.ws, 50))} p99 ${ms(pct(times.ws, 99))}; ratio ${ratio.toFixed(2)} (target <= 1.1)`);

  // One sandbox on each path for the rest.
  const a = await createConnected(secure, ca.certPem);
  const b = await createConnected(plain, ca.certPem);
  const name = `${a.id}.sandbox.test`;

  // TLS handshakes, one after another, no resumption; TCP connects as the reference.
  const hs: number[] = [];
  const tcp: number[] = [];
  for (let i = 0; i < 200; i++) {
    const t0 = performance.now();
    await new Promise<void>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port: secure.ingressPort, servername: name, ca: ca.certPem, session: undefined }, () => {
        hs.push(performance.now() - t0);
        s.destroy();
        resolve();
      });
      s.once('error', reject);
    });
    const t1 = performance.now();
    await new Promise<void>((resolve, reject) => {
      const s = net.connect(secure.ingressPort, '127.0.0.1', () => {
        tcp.push(performance.now() - t1);
        s.destroy();
        resolve();
      });
      s.once('error', reject);
    });
  }
  console.log(`handshake TLS 1.3 ECDSA P-256 to the ingress: p50 ${ms(pct(hs, 50))} p99 ${ms(pct(hs, 99))}; TCP connect alone p50 ${ms(pct(tcp, 50))}`);

  // A 1 MiB file read over each connection.
  const mib = randomBytes(768 * 1024).toString('base64'); // 1 MiB of text
  for (const c of [a.conn, b.conn]) await c.call('fs.write', { path: 'big.txt', content: mib });
  const reads = { wss: [] as number[], ws: [] as number[] };
  for (let i = 0; i < 30; i++) {
    for (const [n, c] of [['wss', a.conn], ['ws', b.conn]] as const) {
      const t0 = performance.now();
      const r = await c.call('fs.read', { path: 'big.txt' });
      if (r.size !== mib.length) throw new Error(`read ${r.size} bytes, wrote ${mib.length}`);
      reads[n].push(performance.now() - t0);
    }
  }
  console.log(`read      1 MiB file: wss p50 ${ms(pct(reads.wss, 50))}, ws p50 ${ms(pct(reads.ws, 50))}; ratio ${(pct(reads.wss, 50) / pct(reads.ws, 50)).toFixed(2)}`);

  // 1,000 WebSockets at 200 a second through the ingress (TLS and the upgrade each), then idle.
  const pid = secure.manager.pid!;
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
      connectWorker(a.url, { token: a.token, timeoutMs: 30_000, socket: socketOpts(ca.certPem) }).then((c) => {
        opens.push(performance.now() - started);
        return c;
      }),
    );
  }
  const idle = await Promise.all(opening);
  const openMs = performance.now() - t0;
  await sleep(2000);
  const after = rssKb(pid);
  console.log(
    `idle      ${IDLE} WebSockets through one ingress opened at ${RATE}/s (all open after ${(openMs / 1000).toFixed(1)} s): TLS handshake + upgrade + hello p50 ${ms(pct(opens, 50))} p99 ${ms(pct(opens, 99))}; the manager's RSS ${(before / 1024).toFixed(0)} -> ${(after / 1024).toFixed(0)} MiB (+${((after - before) / IDLE).toFixed(1)} KiB a connection)`,
  );
  for (const c of idle) c.close();
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
