import t from 'tap';
import { HostRegistry } from '../../manager/registry.js';
import { createLogger } from '../../src/log.js';
import { createRedis } from '../../src/redis/connection.js';
import { hostKeys } from '../../src/redis/keys.js';
import { startManager } from '../helpers/manager.js';
import { waitFor } from '../helpers/ports.js';
import { TestRedis } from '../helpers/redis.js';

const redis = await TestRedis.create();
t.teardown(() => redis.destroy());

t.test('a host registers, heart-beats with an expiry, counts its sandboxes and deregisters', async (t) => {
  const client = createRedis(redis.url);
  t.teardown(() => client.disconnect());
  const keys = hostKeys('reg');
  const reg = new HostRegistry(
    client,
    keys,
    { hostId: 'h1', address: '127.0.0.9', managerUrl: 'http://127.0.0.9:7070', capacity: 3 },
    { intervalMs: 100, ttlMs: 400 },
    createLogger('t', { level: 'silent' }),
  );
  await reg.register();
  t.same(await client.hgetall(keys.host('h1')), { address: '127.0.0.9', managerUrl: 'http://127.0.0.9:7070', capacity: '3', startedAt: (await client.hget(keys.host('h1'), 'startedAt'))! });
  t.equal(await client.zscore(keys.load, 'h1'), '0');
  const ttl = await client.pttl(keys.alive('h1'));
  t.ok(ttl > 0 && ttl <= 400, `heartbeat expires (${ttl} ms)`);
  await new Promise((r) => setTimeout(r, 600));
  t.equal(await client.exists(keys.alive('h1')), 1, 'kept alive past one TTL by the heartbeat');

  const info = { id: 'sb1', template: 'python', containerId: 'c1', hostPort: 4000, host: '127.0.0.9', volume: 'omega-ws-sb1', createdAt: new Date().toISOString(), source: 'cold' as const };
  await reg.record(info);
  await reg.record({ ...info, id: 'sb2', containerId: 'c2' });
  t.equal(await client.zscore(keys.load, 'h1'), '2', 'the score is the number of sandboxes');
  t.equal((await reg.get('sb1'))?.containerId, 'c1');
  await reg.forget('sb1');
  t.equal(await client.zscore(keys.load, 'h1'), '1');

  await reg.deregister();
  t.equal(await client.zscore(keys.load, 'h1'), null, 'out of the allocation set');
  t.equal(await client.exists(keys.alive('h1')), 0);
  await reg.forget('sb2');
  t.equal(await client.zscore(keys.load, 'h1'), null, 'a deregistered host is not brought back by a count update');
});

t.test('a host dropped from Redis (heartbeat lapsed, forgotten) rejoins on its next beat with its true count', async (t) => {
  const client = createRedis(redis.url);
  t.teardown(() => client.disconnect());
  const keys = hostKeys('rejoin');
  const reg = new HostRegistry(
    client,
    keys,
    { hostId: 'h2', address: '127.0.0.8', managerUrl: 'http://127.0.0.8:7070', capacity: 5 },
    { intervalMs: 50, ttlMs: 1000 },
    createLogger('t', { level: 'silent' }),
  );
  t.teardown(() => reg.deregister());
  await reg.register();
  const startedAt = await client.hget(keys.host('h2'), 'startedAt');
  await reg.record({ id: 'sb9', template: 'python', containerId: 'c9', hostPort: 4001, host: '127.0.0.8', volume: 'v', createdAt: new Date().toISOString(), source: 'cold' });
  // What the master does to a host it has given up on.
  await client.multi().zrem(keys.load, 'h2').del(keys.host('h2')).del(keys.alive('h2')).exec();
  await waitFor('back in the load set', async () => (await client.zscore(keys.load, 'h2')) !== null, 2000, 20);
  t.equal(await client.zscore(keys.load, 'h2'), '1', 'counted once, from what is recorded on it');
  t.equal(await client.hget(keys.host('h2'), 'address'), '127.0.0.8', 'its record is back');
  t.equal(await client.exists(keys.alive('h2')), 1);
  t.not(startedAt, null);
});

t.test('with the Docker engine unreachable the manager says so and does not register', async (t) => {
  const m = await startManager(t, redis, { OMEGA_DOCKER_SOCKET: '/nonexistent/docker.sock' });
  const h = await m.call('GET', '/healthz', undefined, null);
  t.equal(h.status, 503);
  t.equal(h.body.docker, 'down');
  t.equal(h.body.registered, false);
  const c = createRedis(redis.url);
  t.teardown(() => c.disconnect());
  t.equal(await c.zscore(hostKeys(m.prefix).load, m.hostId), null, 'not offered for work');
  const create = await m.call('POST', '/v1/sandboxes', { id: 'abc', template: 'python', token: 'x'.repeat(20) });
  t.equal(create.status, 503);
  t.equal(create.body.code, 'DOCKER_UNAVAILABLE');
});

t.test('the manager API needs its token and validates input', async (t) => {
  const m = await startManager(t, redis, { OMEGA_DOCKER_SOCKET: '/nonexistent/docker.sock' });
  t.equal((await m.call('GET', '/v1/sandboxes', undefined, null)).status, 401);
  t.equal((await m.call('GET', '/v1/sandboxes', undefined, 'wrong-token-wrong-token')).status, 401);
  const bad = await m.call('POST', '/v1/sandboxes', { id: 'Not_A_Label', template: 'python', token: 'x'.repeat(20) });
  t.equal(bad.status, 400);
  t.match(bad.body.message, /body\/id/);
  const unknown = await m.call('POST', '/v1/sandboxes', { id: 'abc', template: 'cobol', token: 'x'.repeat(20) });
  t.equal(unknown.status, 400);
  t.equal(unknown.body.code, 'UNKNOWN_TEMPLATE');
  await waitFor('metrics', async () => (await m.call('GET', '/metrics', undefined, null)).status === 200);
});
