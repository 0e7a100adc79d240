import { spawn } from 'node:child_process';
import { Writable } from 'node:stream';
import t from 'tap';
import { Cluster } from 'ioredis';
import { dnsSettings, loadConfig } from '../../dns/config.js';
import { ConfigError } from '../../src/config/settings.js';
import { createLogger } from '../../src/log.js';
import { createRedis } from '../../src/redis/connection.js';
import { dig } from '../helpers/dns.js';
import { freePort, waitFor } from '../helpers/ports.js';
import { TestRedis } from '../helpers/redis.js';

const CLI = new URL('../../cli/cli.ts', import.meta.url).pathname;

function omega(args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, ['--import=tsx', CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.on('exit', (code) => resolve({ code, stdout, stderr })),
  );
  return { child, done, out: () => stdout };
}

t.test('omega --help lists the programs; omega dns --help lists every setting with its default', async (t) => {
  const top = await omega(['--help']).done;
  t.equal(top.code, 0);
  t.match(top.stdout, /dns\s+Authoritative DNS server/);
  const help = await omega(['dns', '--help']).done;
  t.equal(help.code, 0);
  for (const s of Object.values(dnsSettings)) {
    t.match(help.stdout, `--${s.flag}`, `flag --${s.flag}`);
    t.match(help.stdout, s.env, s.env);
  }
  t.match(help.stdout, /OMEGA_DNS_LISTEN.*\[default: 127\.0\.0\.1:5353\]/);
  t.match(help.stdout, /OMEGA_ZONE.*\[default: sandbox\.test\]/);
  const unknown = await omega(['nope']).done;
  t.equal(unknown.code, 2);
  t.match(unknown.stderr, /unknown program "nope"/);
});

t.test('bad settings: every problem named by its variable, exit 1, secrets not echoed', async (t) => {
  const r = await omega(['dns', '--ttl', 'soon'], { OMEGA_DNS_LISTEN: 'nowhere', OMEGA_DNS_TOKEN: 'short-secret', OMEGA_REDIS_URL: 'http://x' }).done;
  t.equal(r.code, 1);
  t.match(r.stderr, /OMEGA_DNS_TTL \/ --ttl: must be a whole number \(got "soon"\)/);
  t.match(r.stderr, /OMEGA_DNS_LISTEN \/ --listen: must be host:port/);
  t.match(r.stderr, /OMEGA_REDIS_URL \/ --redis-url: scheme must be one of/);
  t.match(r.stderr, /OMEGA_DNS_TOKEN \/ --token: must be at least 16 characters/);
  t.notMatch(r.stderr, /short-secret/, 'the token value is not printed');
});

t.test('loadConfig: defaults, flags over environment, a token unless --dev', async (t) => {
  const c = loadConfig({ env: { OMEGA_DEV: '1', OMEGA_ZONE: 'Play.Example.' }, argv: ['--negative-ttl', '3'] });
  t.equal(c.zone, 'play.example');
  t.equal(c.negativeTtl, 3);
  t.same(c.listen, { host: '127.0.0.1', port: 5353 });
  t.same(c.nameservers, [{ name: 'ns1.play.example', addresses: ['127.0.0.1'] }]);
  t.equal(c.soaRname, 'hostmaster.play.example');
  t.ok(Object.isFrozen(c));
  t.throws(() => loadConfig({ env: {} }), ConfigError, 'no token and no --dev');
  t.throws(() => loadConfig({ env: { OMEGA_DEV: '1', OMEGA_DNS_NS: 'ns1' } }), /needs a glue address/);
  const ext = loadConfig({ env: { OMEGA_DEV: '1', OMEGA_DNS_NS: 'ns1=10.0.0.1+2001:db8::1,ns.example.net.' } });
  t.same(ext.nameservers, [
    { name: 'ns1.sandbox.test', addresses: ['10.0.0.1', '2001:db8::1'] },
    { name: 'ns.example.net', addresses: [] },
  ]);
});

t.test('the logger redacts tokens wherever they appear', async (t) => {
  let out = '';
  const sink = new Writable({ write(chunk, _enc, cb) { out += chunk; cb(); } });
  const log = createLogger('test', { destination: sink });
  log.info({ token: 'sekret-1', config: { dnsToken: 'sekret-2', redisUrl: 'redis://:sekret-3@h:1' }, req: { headers: { authorization: 'Bearer sekret-4' } } }, 'hello');
  t.match(out, /"msg":"hello"/);
  t.notMatch(out, /sekret/);
});

t.test('Redis URLs: single, Sentinel and Cluster forms are understood', async (t) => {
  const single = createRedis('redis://:pw@127.0.0.1:1/2', { failFast: true });
  t.match(single.options, { host: '127.0.0.1', port: 1, db: 2, password: 'pw' });
  single.disconnect();
  const sentinel = createRedis('redis+sentinel://127.0.0.1:1,127.0.0.1:2/mymaster?db=3', { failFast: true });
  t.match(sentinel.options, { name: 'mymaster', db: 3, sentinels: [{ host: '127.0.0.1', port: 1 }, { host: '127.0.0.1', port: 2 }] });
  sentinel.disconnect();
  const cluster = createRedis('redis+cluster://127.0.0.1:1,127.0.0.1:2', { failFast: true });
  cluster.on('error', () => {});
  t.ok(cluster instanceof Cluster, 'a Cluster client');
  t.same((cluster as unknown as { startupNodes: unknown }).startupNodes, [{ host: '127.0.0.1', port: 1 }, { host: '127.0.0.1', port: 2 }]);
  cluster.disconnect();
  t.throws(() => createRedis('redis+sentinel://127.0.0.1:1'), /must name the primary/);
});

t.test('a real omega dns process serves, then stops cleanly on SIGTERM', async (t) => {
  const redis = await TestRedis.create();
  t.teardown(() => redis.destroy());
  const port = await freePort();
  const apiPort = await freePort();
  const p = omega(['dns', '--listen', `127.0.0.1:${port}`], {
    OMEGA_REDIS_URL: redis.url,
    OMEGA_REDIS_PREFIX: 'cli',
    OMEGA_DNS_API_LISTEN: `127.0.0.1:${apiPort}`,
    OMEGA_DNS_TOKEN: 'a-long-enough-secret-token',
  });
  t.teardown(() => p.child.kill('SIGKILL'));
  await waitFor('zone loaded', () => /zone loaded/.test(p.out()), 15_000, 50);
  t.equal((await dig(port, ['sandbox.test', 'SOA'])).status, 'NOERROR');
  t.notMatch(p.out(), /a-long-enough-secret-token/, 'the token is never logged');
  p.child.kill('SIGTERM');
  const r = await p.done;
  t.equal(r.code, 0, 'exit 0 after a graceful stop');
  t.match(r.stdout, /"msg":"stopping"/);
  t.match(r.stdout, /"msg":"stopped"/);
});
