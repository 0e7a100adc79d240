import t from 'tap';
import { dig, startDns } from '../helpers/dns.js';
import { waitFor } from '../helpers/ports.js';
import { TestRedis } from '../helpers/redis.js';
import { dnsKeys } from '../../src/redis/keys.js';

t.test('several servers on one Redis answer a change made through any one of them', async (t) => {
  const redis = await TestRedis.create();
  t.teardown(() => redis.destroy());
  const a = await startDns(t, redis);
  const b = await startDns(t, redis, { OMEGA_REDIS_PREFIX: a.prefix });
  const c = await startDns(t, redis, { OMEGA_REDIS_PREFIX: a.prefix });
  t.equal((await a.call('PUT', '/v1/records/shared', { type: 'A', values: ['10.20.0.1'] })).status, 200);
  for (const s of [a, b, c]) {
    const answer = await waitFor('answer', async () => (await dig(s.port, ['shared.sandbox.test', 'A', '+short'])).raw.trim(), 3000);
    t.equal(answer, '10.20.0.1', `server on ${s.port}`);
  }
  t.equal((await c.call('DELETE', '/v1/records/shared')).status, 200);
  for (const s of [a, b, c]) {
    t.equal(await waitFor('nxdomain', async () => {
      const st = (await dig(s.port, ['shared.sandbox.test', 'A'])).status;
      return st === 'NXDOMAIN' ? st : '';
    }, 3000), 'NXDOMAIN');
  }
  // A server started later loads what is already there.
  await b.call('PUT', '/v1/records/late', { type: 'TXT', values: ['hi'] });
  const d = await startDns(t, redis, { OMEGA_REDIS_PREFIX: a.prefix });
  t.equal((await dig(d.port, ['late.sandbox.test', 'TXT', '+short'])).raw.trim(), '"hi"');
  t.equal(d.server.zone.serial, a.server.zone.serial);
});

t.test('while Redis is down: queries still answer, the API says 503; after: the zone reloads', async (t) => {
  const redis = await TestRedis.create();
  t.teardown(() => redis.destroy());
  const s = await startDns(t, redis);
  await s.call('PUT', '/v1/records/kept', { type: 'A', values: ['10.30.0.1'] });
  await s.call('PUT', '/v1/records/dropped', { type: 'A', values: ['10.30.0.2'] });
  await waitFor('both loaded', () => s.server.zone.size === 2, 2000);

  await redis.stop({ keepData: false });
  await waitFor('redis seen down', () => s.server.redis.status !== 'ready', 5000);
  t.equal((await dig(s.port, ['kept.sandbox.test', 'A', '+short'])).raw.trim(), '10.30.0.1', 'answers from memory');
  const put = await s.call('PUT', '/v1/records/new', { type: 'A', values: ['10.30.0.3'] });
  t.equal(put.status, 503);
  t.equal(put.body.code, 'REDIS_UNAVAILABLE');
  t.equal(put.headers.get('retry-after'), '1');
  t.equal((await s.call('GET', '/v1/records/kept')).status, 503);
  const health = await s.call('GET', '/healthz');
  t.equal(health.status, 200, 'still serving');
  t.equal(health.body.redis, 'down');
  t.equal(health.body.status, 'degraded');

  // A reconnect attempt that is refused is a connection error, counted on /metrics (waited for, not raced against the restart).
  await waitFor('a refused reconnect counted', async () => /omega_redis_connection_errors_total\{connection="omega-dns-feed"\} [1-9]/.test((await s.call('GET', '/metrics')).body), 10_000, 50);
  t.pass('connection errors are counted on /metrics');

  // Redis comes back without our data (stopped with NOSAVE): the reconnect's
  // reload makes the zone what Redis holds now.
  await redis.start();
  await waitFor('reload', async () => (await dig(s.port, ['dropped.sandbox.test', 'A'])).status === 'NXDOMAIN', 10_000, 50);
  t.pass('the zone is what Redis holds now');
  // Another writer adds a record straight into Redis, with no feed entry to
  // follow: only a reload after the next reconnect can show it. (Written
  // after the first reload, not raced against it, so the test is deterministic.)
  const keys = dnsKeys(s.prefix);
  const direct = redis.client();
  await direct.hset(keys.zone, 'direct', JSON.stringify({ A: { ttl: 60, values: ['10.30.0.9'] } }));
  await direct.zadd(keys.names, 0, 'direct');
  await direct.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes'); // drops the server's connections
  direct.disconnect();
  const reloaded = await waitFor('reload after reconnect', async () => (await dig(s.port, ['direct.sandbox.test', 'A', '+short'])).raw.trim(), 10_000, 50);
  t.equal(reloaded, '10.30.0.9');
  await waitFor('api back', async () => (await s.call('PUT', '/v1/records/new', { type: 'A', values: ['10.30.0.3'] })).status === 200, 5000, 50);
  t.equal(await waitFor('new', async () => (await dig(s.port, ['new.sandbox.test', 'A', '+short'])).raw.trim(), 3000), '10.30.0.3');
  const m = await s.call('GET', '/metrics');
  t.notMatch(m.body, /omega_dns_redis_errors_total 0\n/, 'the outage is counted');
});

t.test('until the zone is first loaded, in-zone queries get SERVFAIL, not a false NXDOMAIN', async (t) => {
  const redis = await TestRedis.create();
  t.teardown(() => redis.destroy());
  const s = await startDns(t, redis);
  await redis.stop({ keepData: true });
  // A second server starting while Redis is away.
  const { loadConfig } = await import('../../dns/config.js');
  const { DnsServer } = await import('../../dns/server.js');
  const { createLogger } = await import('../../src/log.js');
  const cold = new DnsServer(
    loadConfig({ env: { OMEGA_REDIS_URL: redis.url, OMEGA_REDIS_PREFIX: s.prefix, OMEGA_DNS_LISTEN: '127.0.0.1:0', OMEGA_DNS_API_LISTEN: '127.0.0.1:0', OMEGA_DEV: '1' } }),
    createLogger('dns', { level: 'silent' }),
  );
  t.teardown(() => cold.stop());
  const started = cold.start();
  await waitFor('listening', () => {
    try {
      return cold.addresses.port;
    } catch {
      return 0;
    }
  });
  t.equal((await dig(cold.addresses.port, ['anything.sandbox.test', 'A'])).status, 'SERVFAIL');
  t.equal((await dig(cold.addresses.port, ['example.com', 'A'])).status, 'REFUSED');
  const h = await fetch(`${cold.addresses.apiUrl}/healthz`);
  t.equal(h.status, 503, 'not healthy before the first load');
  await redis.start();
  await started;
  t.equal((await dig(cold.addresses.port, ['anything.sandbox.test', 'A'])).status, 'NXDOMAIN');
});
