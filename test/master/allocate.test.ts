import t from 'tap';
import { createRedis, type RedisClient } from '../../src/redis/connection.js';
import { hostKeyPrefix, hostKeys } from '../../src/redis/keys.js';
import { SANDBOX_ID_FORMAT, Store, newSandboxId, newSandboxToken } from '../../master/store.js';
import { TestRedis } from '../helpers/redis.js';

const redis = await TestRedis.create();
t.teardown(() => redis.destroy());

let n = 0;
/** Hosts as managers register them: record, heartbeat, a score of 0. */
async function addHosts(c: RedisClient, prefix: string, hosts: Array<{ id: string; capacity: number; alive?: boolean; draining?: boolean }>) {
  const k = hostKeys(prefix);
  for (const h of hosts) {
    await c.hset(k.host(h.id), { address: `127.0.1.${++n % 250}`, managerUrl: `http://${h.id}:7070`, capacity: String(h.capacity), ...(h.draining ? { draining: '1' } : {}) });
    if (h.alive !== false) await c.set(k.alive(h.id), '1', 'PX', 60_000);
    await c.zadd(k.load, 0, h.id);
  }
}

const fields = { template: 'python', expiresAtMs: Date.now() + 60_000 };

t.test('ids and tokens', async (t) => {
  const ids = new Set(Array.from({ length: 10_000 }, () => newSandboxId()));
  t.equal(ids.size, 10_000, 'no repeats in 10,000');
  for (const id of [...ids].slice(0, 100)) t.match(id, SANDBOX_ID_FORMAT);
  t.ok(newSandboxToken().length >= 43, '256-bit token');
  t.equal(hostKeyPrefix('p'), hostKeys('p').load.replace(/:load$/, ''), 'the scripts build key names as keys.ts does');
  t.equal(hostKeys('p').sandbox('x'), `${hostKeyPrefix('p')}:sandbox:x`);
  t.equal(hostKeys('p').sandboxesOn('h'), `${hostKeyPrefix('p')}:host:h:sandboxes`);
  t.equal(hostKeys('p').alive('h'), `${hostKeyPrefix('p')}:alive:h`);
  t.equal(hostKeys('p').tomb('x'), `${hostKeyPrefix('p')}:tomb:x`);
});

t.test('the least-loaded live host with room; dead, draining, full and excluded hosts are skipped', async (t) => {
  const c = createRedis(redis.url);
  t.teardown(() => c.disconnect());
  const store = new Store(c, 'pick', 60);
  await addHosts(c, 'pick', [
    { id: 'a', capacity: 2 },
    { id: 'b', capacity: 2 },
    { id: 'dead', capacity: 100, alive: false },
    { id: 'drain', capacity: 100, draining: true },
  ]);
  const got: string[] = [];
  for (let i = 0; i < 4; i++) got.push((await store.allocate(`s${i}`, fields))!.hostId);
  t.same(got.sort(), ['a', 'a', 'b', 'b'], 'spread over the live hosts, two each');
  t.equal(await store.allocate('s4', fields), null, 'full: no room');
  await store.release('s0');
  t.equal((await store.allocate('s5', fields, ['a']))?.hostId ?? null, null, 'the only free slot is on an excluded host');
  t.equal((await store.allocate('s6', fields))?.hostId, 'a', 'a released slot is used again');
  t.equal(await c.zscore(hostKeys('pick').load, 'a'), '2');
  const rec = await store.get('s6');
  t.match(rec, { state: 'creating', host: 'a', template: 'python', managerUrl: 'http://a:7070' });
  await t.rejects(store.allocate('s0', fields), /in use/, 'a released id stays out of use (its name may be cached)');
  await t.rejects(store.allocate('s6', fields), /in use/, 'an id in use is refused');
});

t.test('hundreds of concurrent creates from several masters never put a host over capacity', async (t) => {
  const prefix = 'race';
  const clients = Array.from({ length: 4 }, () => createRedis(redis.url));
  t.teardown(() => clients.forEach((c) => c.disconnect()));
  const stores = clients.map((c) => new Store(c, prefix, 60));
  const hosts = Array.from({ length: 8 }, (_, i) => ({ id: `h${i}`, capacity: 3 + i }));
  await addHosts(clients[0]!, prefix, hosts);
  const total = hosts.reduce((s, h) => s + h.capacity, 0);
  const results = await Promise.all(Array.from({ length: 400 }, (_, i) => stores[i % 4]!.allocate(`r${i}`, fields)));
  const placed = results.filter(Boolean);
  t.equal(placed.length, total, `exactly the ${total} slots there are were given`);
  const k = hostKeys(prefix);
  for (const h of hosts) {
    const on = await clients[0]!.scard(k.sandboxesOn(h.id));
    t.equal(on, h.capacity, `${h.id} full, not over`);
    t.equal(Number(await clients[0]!.zscore(k.load, h.id)), on, `${h.id} score = its count`);
  }
  // Release concurrently too: every count goes back to zero.
  await Promise.all(results.map((r, i) => (r ? stores[i % 4]!.release(`r${i}`) : null)));
  for (const h of hosts) t.equal(await clients[0]!.zscore(k.load, h.id), '0');
});

t.test('a lapsed host: its sandboxes become lost and leave its count; it is skipped until it beats again', async (t) => {
  const c = createRedis(redis.url);
  t.teardown(() => c.disconnect());
  const store = new Store(c, 'lost', 60);
  const k = hostKeys('lost');
  await addHosts(c, 'lost', [{ id: 'x', capacity: 5 }]);
  await store.allocate('l1', fields);
  await store.allocate('l2', fields);
  await store.setExpiry('l1', Date.now() + 1000);
  t.same(await store.markHostLost('x'), [], 'nothing happens while it is alive');
  await c.del(k.alive('x'));
  t.same((await store.markHostLost('x')).sort(), ['l1', 'l2']);
  t.equal((await store.get('l1'))?.state, 'lost');
  t.equal(await c.zscore(k.load, 'x'), '0', 'not counted for its lost sandboxes');
  t.equal(await c.zscore(k.expiry, 'l1'), null, 'a lost sandbox does not expire again');
  t.equal(await store.allocate('l3', fields), null, 'no allocation to a dead host');
  t.equal((await store.hosts())[0]?.lostAtMs !== null, true);
  await c.set(k.alive('x'), '1', 'PX', 60_000);
  t.equal((await store.allocate('l4', fields))?.hostId, 'x', 'allocated again once it beats');
});

t.test('transition only from the expected state; drain only an empty host', async (t) => {
  const c = createRedis(redis.url);
  t.teardown(() => c.disconnect());
  const store = new Store(c, 'trans', 60);
  await addHosts(c, 'trans', [{ id: 'y', capacity: 5 }, { id: 'z', capacity: 5 }]);
  await store.allocate('t1', fields, ['z']);
  t.equal(await store.transition('t1', ['running'], 'deleting'), false, 'not running yet');
  t.equal(await store.transition('t1', ['creating'], 'running', { hostPort: '4000' }), true);
  t.match(await store.get('t1'), { state: 'running', hostPort: 4000 });
  t.equal(await store.transition('nope', ['creating'], 'running'), false, 'a missing sandbox does not move');
  t.equal(await store.drain('y'), false, 'y has a sandbox');
  t.equal(await store.drain('z'), true, 'z is empty');
  t.equal(await store.allocate('t2', fields, ['y']), null, 'a draining host takes nothing');
});
