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

const entry = { containerId: 'c1', hostPort: 4000, volume: 'omega-ws-sb1', template: 'python', source: 'cold' as const, state: 'running' as const, createdAtMs: Date.now() };

t.test('a host registers and heart-beats with an expiry, writing only its own keys; a stop says so', async (t) => {
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
  t.same(await client.hgetall(keys.host('h1')), {
    address: '127.0.0.9',
    managerUrl: 'http://127.0.0.9:7070',
    capacity: '3',
    heartbeatTtlMs: '400',
    startedAt: (await client.hget(keys.host('h1'), 'startedAt'))!,
  });
  t.same(await client.smembers(keys.hosts), ['h1'], 'in the index of hosts');
  t.equal(await client.zscore(keys.load, 'h1'), null, 'the load set is the master\'s: it admits the host');
  const ttl = await client.pttl(keys.alive('h1'));
  t.ok(ttl > 0 && ttl <= 400, `heartbeat expires (${ttl} ms)`);
  await new Promise((r) => setTimeout(r, 600));
  t.equal(await client.exists(keys.alive('h1')), 1, 'kept alive past one TTL by the heartbeat');

  await reg.deregister();
  t.equal(await client.exists(keys.alive('h1')), 0, 'no heartbeat: no new work');
  t.ok(Number(await client.hget(keys.host('h1'), 'stoppedAtMs')) > 0, 'a stop on purpose, so the master keeps its sandboxes running');
  await reg.register();
  t.equal(await client.hget(keys.host('h1'), 'stoppedAtMs'), null, 'back: no longer stopped');
  await reg.deregister();
});

t.test('the container table: rows written by the manager alone; a stopped container is an event for the master in the same step', async (t) => {
  const client = createRedis(redis.url);
  t.teardown(() => client.disconnect());
  const keys = hostKeys('table');
  const reg = new HostRegistry(
    client,
    keys,
    { hostId: 'h2', address: '127.0.0.8', managerUrl: 'http://127.0.0.8:7070', capacity: 5 },
    { intervalMs: 50, ttlMs: 1000 },
    createLogger('t', { level: 'silent' }),
  );
  await reg.put('sb1', entry);
  await reg.put('sb2', { ...entry, containerId: 'c2' });
  t.same([...(await reg.entries()).keys()].sort(), ['sb1', 'sb2']);
  t.same(await reg.get('sb1'), entry);
  t.equal(await client.xlen(keys.hostEvents), 0, 'a row written is no event');
  await reg.report('sb2', { ...entry, containerId: 'c2', state: 'exited', why: 'container exited (code 137)' }, { state: 'exited', why: 'container exited (code 137)' });
  const events = await client.xrange(keys.hostEvents, '-', '+');
  t.equal(events.length, 1);
  t.same(events[0]![1], ['host', 'h2', 'sandbox', 'sb2', 'state', 'exited', 'why', 'container exited (code 137)']);
  t.equal((await reg.get('sb2'))?.state, 'exited');
  await reg.remove('sb1');
  t.equal(await reg.get('sb1'), null);
  // The master's record is read, never written.
  await client.hset(keys.sandbox('sb2'), { state: 'lost', host: 'h2' });
  await client.hset(keys.sandbox('sb3'), { state: 'running', host: 'h1', idleSeconds: '600' });
  const owners = await reg.owners(['sb2', 'sb3', 'none']);
  t.same(owners.get('sb2'), { state: 'lost', host: 'h2', idleSeconds: 0 });
  t.same(owners.get('sb3'), { state: 'running', host: 'h1', idleSeconds: 600 }, 'with its idle limit (the host measures idleness)');
  t.equal(owners.get('none'), null);
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
