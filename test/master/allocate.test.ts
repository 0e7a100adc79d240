import t from 'tap';
import { createRedis, type RedisClient } from '../../src/redis/connection.js';
import { hostKeyPrefix, hostKeys } from '../../src/redis/keys.js';
import { Store } from '../../master/store.js';
import { SANDBOX_ID_FORMAT, newSandboxId, newSandboxToken } from '../../src/ids.js';
import { TestRedis } from '../helpers/redis.js';

const redis = await TestRedis.create();
t.teardown(() => redis.destroy());

let n = 0;
/** Hosts as managers register them: record, heartbeat, a score of 0. */
async function addHosts(c: RedisClient, prefix: string, hosts: Array<{ id: string; capacity: number; alive?: boolean; draining?: boolean }>) {
  const k = hostKeys(prefix);
  for (const h of hosts) {
    await c.hset(k.host(h.id), { address: `127.0.1.${++n % 250}`, managerUrl: `http://${h.id}:7070`, capacity: String(h.capacity) });
    if (h.alive !== false) await c.set(k.alive(h.id), '1', 'PX', 60_000);
    await c.sadd(k.hosts, h.id);
    await c.zadd(k.load, 0, h.id);
    if (h.draining) await new Store(c, prefix, 60, 'setup').drain(h.id);
  }
}

const fields = { template: 'python', expiresAtMs: Date.now() + 60_000 };

/** The delete path's two Redis steps: deleting, then forgotten. */
async function forget(store: Store, id: string): Promise<boolean> {
  await store.beginDelete(id);
  return store.release(id);
}

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
  const store = new Store(c, 'pick', 60, 'm1');
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
  await forget(store, 's0');
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
  const stores = clients.map((c, i) => new Store(c, prefix, 60, `m${i}`));
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
  await Promise.all(results.map((r, i) => (r ? forget(stores[i % 4]!, `r${i}`) : null)));
  for (const h of hosts) t.equal(await clients[0]!.zscore(k.load, h.id), '0');
});

t.test('a lapsed host: its sandboxes become lost and leave its count; it is skipped until it beats again', async (t) => {
  const c = createRedis(redis.url);
  t.teardown(() => c.disconnect());
  const store = new Store(c, 'lost', 60, 'm1');
  const k = hostKeys('lost');
  await addHosts(c, 'lost', [{ id: 'x', capacity: 5 }]);
  await store.allocate('l1', fields);
  await store.allocate('l2', fields);
  await store.finishCreate('l1', { expiresAtMs: Date.now() + 1000, hostPort: 4000, ingressPort: null, containerId: 'c1' });
  t.not(await c.zscore(k.expiry, 'l1'), null, 'a running sandbox expires');
  t.same(await store.markHostLost('x'), [], 'nothing happens while it is alive');
  await c.del(k.alive('x'));
  t.same((await store.markHostLost('x')).sort(), ['l1', 'l2']);
  t.equal((await store.get('l1'))?.state, 'lost');
  t.equal(await c.zscore(k.load, 'x'), '0', 'not counted for its lost sandboxes');
  t.equal(await c.zscore(k.expiry, 'l1'), null, 'a lost sandbox does not expire again');
  t.equal(await store.allocate('l3', fields), null, 'no allocation to a dead host');
  t.equal((await store.hosts())[0]?.lostAtMs !== null, true);
  t.equal((await store.get('l1'))?.lostReason, 'host lost');
  await c.set(k.alive('x'), '1', 'PX', 60_000);
  t.equal((await store.allocate('l4', fields))?.hostId, 'x', 'allocated again once it beats');
});

t.test('transition only from the expected state; drain only an empty host', async (t) => {
  const c = createRedis(redis.url);
  t.teardown(() => c.disconnect());
  const store = new Store(c, 'trans', 60, 'm1');
  await addHosts(c, 'trans', [{ id: 'y', capacity: 5 }, { id: 'z', capacity: 5 }]);
  await store.allocate('t1', fields, ['z']);
  t.equal(await store.transition('t1', ['running'], 'deleting'), false, 'not running yet');
  t.equal(await store.transition('t1', ['creating'], 'running', { hostPort: '4000' }), true);
  t.match(await store.get('t1'), { state: 'running', hostPort: 4000 });
  t.equal(await store.transition('nope', ['creating'], 'running'), false, 'a missing sandbox does not move');
  t.equal(await store.drain('y'), false, 'y has a sandbox');
  t.equal(await store.drain('z'), true, 'z is empty');
  t.equal(await store.allocate('t2', fields, ['y']), null, 'a draining host takes nothing');
  t.same(await store.admitHosts(), [], 'and is not admitted back');
  await store.undrain('z');
  t.equal((await store.allocate('t3', fields, ['y']))?.hostId, 'z', 'undrained, it takes work again');
});

t.test('a create finishes only while its own master still has it creating, in one script that answers the record', async (t) => {
  const c = createRedis(redis.url);
  t.teardown(() => c.disconnect());
  const mine = new Store(c, 'finish', 60, 'm1');
  const other = new Store(c, 'finish', 60, 'm2');
  const k = hostKeys('finish');
  await addHosts(c, 'finish', [{ id: 'h', capacity: 5 }]);
  await mine.allocate('f1', fields);
  t.match(await mine.get('f1'), { state: 'creating', owner: 'm1', dns: true });
  t.equal((await other.finishCreate('f1', { expiresAtMs: Date.now() + 5000, hostPort: 4001, ingressPort: null, containerId: 'c' })).record, null, 'another master cannot finish it');
  const done = await mine.finishCreate('f1', { expiresAtMs: Date.now() + 5000, hostPort: 4001, ingressPort: null, containerId: 'c' });
  t.match(done, { replicated: true, record: { id: 'f1', state: 'running', hostPort: 4001, ingressPort: null, containerId: 'c', owner: null } });
  t.not(await c.zscore(k.expiry, 'f1'), null, 'its expiry is indexed in the same step');
  t.equal((await mine.finishCreate('f1', { expiresAtMs: 1, hostPort: 1, ingressPort: null, containerId: 'x' })).record, null, 'not twice');

  // A create taken over (the reconciler began deleting it) does not come back to life.
  await mine.allocate('f2', fields);
  t.match(await other.beginDelete('f2'), { state: 'deleting', deletedFrom: 'creating', owner: 'm2' });
  t.equal((await mine.finishCreate('f2', { expiresAtMs: Date.now() + 5000, hostPort: 4002, ingressPort: null, containerId: 'c2' })).record, null);
  await t.rejects(mine.release('f1'), /not being deleted/, 'release refuses a sandbox whose delete has not begun');
  t.equal(await other.release('f2'), true);
  t.equal(await other.release('f2'), false, 'releasing again finds nothing');
  t.equal(await c.zscore(k.load, 'h'), '1', 'the count follows');
});

t.test('a running sandbox whose container is gone becomes lost, once, and only on its own host', async (t) => {
  const c = createRedis(redis.url);
  t.teardown(() => c.disconnect());
  const store = new Store(c, 'mlost', 60, 'm1');
  const k = hostKeys('mlost');
  await addHosts(c, 'mlost', [{ id: 'h', capacity: 5 }]);
  await store.allocate('g1', fields);
  t.equal(await store.markLost('g1', 'h', 'container exited'), false, 'a creating sandbox is not lost by a report');
  await store.finishCreate('g1', { expiresAtMs: Date.now() + 5000, hostPort: 4001, ingressPort: null, containerId: 'c' });
  t.equal(await store.markLost('g1', 'elsewhere', 'container exited'), false, 'a report from another host changes nothing');
  t.equal(await store.markLost('g1', 'h', 'container exited (code 137)'), true);
  t.equal(await store.markLost('g1', 'h', 'again'), false, 'not twice');
  t.match(await store.get('g1'), { state: 'lost', lostReason: 'container exited (code 137)', host: 'h' });
  t.equal(await c.zscore(k.load, 'h'), '0', 'nothing runs for it on the host');
  t.equal(await c.zscore(k.expiry, 'g1'), null);
  t.equal(await store.setExpiry('g1', Date.now() + 1000), false, 'a lost sandbox is not extended');
});

t.test('hosts: admitted by the master from the managers\' index, forgotten only while silent, masters\' liveness', async (t) => {
  const c = createRedis(redis.url);
  t.teardown(() => c.disconnect());
  const store = new Store(c, 'admit', 60, 'm1');
  const k = hostKeys('admit');
  await c.hset(k.host('new'), { address: '127.0.2.1', managerUrl: 'http://new:7070', capacity: '2' });
  await c.sadd(k.hosts, 'new', 'silent');
  await c.set(k.alive('new'), '1', 'PX', 60_000);
  t.equal(await c.zscore(k.load, 'new'), null);
  t.ok(await store.allocate('a1', fields), 'a miss admits a host that registered since, then allocates');
  t.equal(await c.zscore(k.load, 'new'), '1');
  t.same(await store.admitHosts(), [], 'a silent host is not admitted, an admitted one not twice');
  t.same((await store.hosts()).map((h) => [h.hostId, h.alive]).sort(), [['new', true], ['silent', false]]);
  t.equal(await store.forgetHost('new'), false, 'a heart-beating host is kept');
  t.equal(await store.forgetHost('silent'), true);
  t.same(await c.smembers(k.hosts), ['new']);

  await store.beat(60_000);
  const m2 = new Store(c, 'admit', 60, 'm2');
  t.same([...(await m2.mastersAlive(['m1', 'gone']))].sort(), ['m1', 'm2'], 'itself and the masters that beat');
  await store.leave();
  t.same([...(await m2.mastersAlive(['m1']))], ['m2'], 'a master that left is gone at once');
});
