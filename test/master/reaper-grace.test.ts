// After this master's Redis connection comes back, a host's lapsed heartbeat
// is not taken for a dead host until the connection has been up for that
// host's heartbeat TTL: while Redis was away no manager could beat either.
import t from 'tap';
import { Reaper } from '../../master/reaper.js';
import type { Sandboxes } from '../../master/sandboxes.js';
import { Store } from '../../master/store.js';
import { createLogger } from '../../src/log.js';
import { createRedis } from '../../src/redis/connection.js';
import { hostKeys } from '../../src/redis/keys.js';
import { TestRedis } from '../helpers/redis.js';

const redis = await TestRedis.create();
t.teardown(() => redis.destroy());

t.test('a lapsed heartbeat right after an outage waits one TTL; then the host is lost', async (t) => {
  const rc = createRedis(redis.url);
  t.teardown(() => rc.disconnect());
  const store = new Store(rc, 'grace', 60, 'm1');
  const k = hostKeys('grace');
  // A host that registered with a 2 s TTL, whose heartbeat is gone (its manager could not beat while Redis was away).
  await rc.heartbeat(k.alive('h'), k.host('h'), k.hosts, k.beats, 2000, 'h', '10.0.0.1', 'http://10.0.0.1:7070', 5, new Date().toISOString());
  await rc.del(k.alive('h'));
  await rc.zadd(k.beats, Date.now() - 1, 'h');
  let upSince = Date.now();
  const reaper = new Reaper(store, {} as Sandboxes, { reapIntervalMs: 1000, hostForgetSeconds: 600, redisUpSinceMs: () => upSince }, createLogger('t', { level: 'silent' }));
  await reaper.checkHosts();
  t.equal((await store.hosts())[0]?.lostAtMs, null, 'not lost while the connection has been up for less than the host\'s TTL');
  upSince = Infinity;
  await reaper.checkHosts();
  t.equal((await store.hosts())[0]?.lostAtMs, null, 'nor while it is down');
  upSince = Date.now() - 2001;
  await reaper.checkHosts();
  t.not((await store.hosts())[0]?.lostAtMs, null, 'lost once the connection has been up for a TTL');
});

t.test('the lost-host check looks at the hosts past their heartbeat and those lost, not at every host', async (t) => {
  const rc = createRedis(redis.url);
  t.teardown(() => rc.disconnect());
  const store = new Store(rc, 'index', 60, 'm1');
  const k = hostKeys('index');
  const beat = (h: string, ttlMs: number) => rc.heartbeat(k.alive(h), k.host(h), k.hosts, k.beats, ttlMs, h, '10.0.0.1', `http://${h}:7070`, 5, new Date().toISOString());
  for (let i = 0; i < 20; i++) await beat(`well${i}`, 60_000);
  await beat('silent', 300);
  const reaper = new Reaper(store, { removeNames: async () => undefined } as unknown as Sandboxes, { reapIntervalMs: 1000, hostForgetSeconds: 600 }, createLogger('t', { level: 'silent' }));
  await reaper.checkHosts();
  t.equal(reaper.hostsChecked, 21, 'the first check looks at every host');
  await new Promise((r) => setTimeout(r, 400));
  await reaper.checkHosts();
  t.equal(reaper.hostsChecked, 1, 'then only the one whose heartbeat lapsed');
  t.not((await store.hosts()).find((h) => h.hostId === 'silent')?.lostAtMs, null, 'and it is lost');
  await reaper.checkHosts();
  t.equal(reaper.hostsChecked, 1, 'a lost host is watched for coming back');
  await beat('silent', 60_000);
  await reaper.checkHosts();
  t.equal((await store.hosts()).find((h) => h.hostId === 'silent')?.lostAtMs, null, 'back');
  await reaper.checkHosts();
  t.equal(reaper.hostsChecked, 0, 'and then nothing needs a look');
});
