// The reconciler's work is sweeps whose cursor the masters share: each step
// is one page, a second master goes on from where the first stopped rather
// than starting over, a sweep held by another master is left alone, and a
// new cycle waits for its period.
import t from 'tap';
import { newSandboxId } from '../../src/ids.js';
import { createRedis } from '../../src/redis/connection.js';
import { hostKeys } from '../../src/redis/keys.js';
import { defineScripts } from '../../src/redis/scripts.js';
import { startDns } from '../helpers/dns.js';
import { startMaster } from '../helpers/master.js';
import { TestRedis } from '../helpers/redis.js';

const redis = await TestRedis.create();
t.teardown(() => redis.destroy());
const dns = await startDns(t, redis);
const rc = createRedis(redis.url);
defineScripts(rc);
t.teardown(() => rc.disconnect());
const k = hostKeys(dns.prefix);

t.test('two masters split a cycle of the records sweep, a page each step', async (t) => {
  const env = { OMEGA_PROVIDER: 'none', OMEGA_TEMPLATES: 'python', OMEGA_RECONCILE_INTERVAL_MS: '600000' };
  const a = (await startMaster(t, redis, dns, env)).server;
  const b = (await startMaster(t, redis, dns, env)).server;
  // Only the steps this test takes: no timer moves the sweeps meanwhile.
  await a.reconciler.stop();
  await b.reconciler.stop();

  // 1,200 running sandboxes on a host that beats, each with its container row (internal: no names to check).
  await rc.heartbeat(k.alive('h1'), k.host('h1'), k.hosts, k.beats, 600_000, 'h1', '127.0.0.9', 'http://127.0.0.9:7070', 2000, new Date().toISOString());
  await a.store.admitHosts();
  const ids: string[] = [];
  for (let i = 0; i < 1200; i++) {
    const id = newSandboxId();
    const expiresAtMs = Date.now() + 3_600_000;
    if (!(await a.store.allocate(id, { template: 'python', expiresAtMs, internal: true }))) throw new Error('no room on h1');
    await a.store.finishCreate(id, { expiresAtMs, hostPort: 20_000 + i, ingressPort: null, containerId: `c${i}` });
    await rc.hset(k.containers('h1'), id, JSON.stringify({ containerId: `c${i}`, address: '127.0.0.9', hostPort: 20_000 + i, volume: `v${i}`, template: 'python', source: 'pool', state: 'running', createdAtMs: Date.now() }));
    ids.push(id);
  }
  // The last one's container is gone: whichever step reaches it marks it lost.
  const gone = ids.at(-1)!;
  await rc.hdel(k.containers('h1'), gone);
  // The starts took a first step each (nothing then): a cycle may begin now.
  await rc.del(k.sweep('sandboxes'));
  const at = async () => (await rc.hget(k.sweep('sandboxes'), 'cursor')) ?? '';

  const first = await a.reconciler.tick();
  const afterA = await at();
  t.match(afterA, /^\d+:[a-z2-7]{16}$/, 'a page in, the shared cursor stands at its last entry');
  t.same(first.lost, [], 'the first page has none lost');
  const second = await b.reconciler.tick();
  const afterB = await at();
  t.not(afterB, afterA, 'the other master goes on from there');
  t.ok(ids.indexOf(afterB.split(':')[1]!) > ids.indexOf(afterA.split(':')[1]!), 'further along the index');
  t.same(second.lost, []);
  const third = await a.reconciler.tick();
  t.equal(await at(), '', 'the third page ends the cycle');
  t.same(third.lost, [gone], 'the sandbox without a container is found once, by the step that reached it');
  const nextCycle = Number(await rc.hget(k.sweep('sandboxes'), 'nextCycleAtMs'));
  t.ok(nextCycle > Date.now() + 500_000, 'the next cycle waits for its period');
  t.same((await b.reconciler.tick()).lost, [], 'a step before then does nothing');
  t.equal(await at(), '');

  // Another master holds the sweep: a step leaves it alone.
  await rc.del(k.sweep('sandboxes'));
  await rc.set(k.sweepLease('sandboxes'), 'another-master', 'PX', 60_000);
  await a.reconciler.tick();
  t.equal(await at(), '', 'held by another: not moved');
  await rc.del(k.sweepLease('sandboxes'));
  await a.reconciler.tick();
  t.not(await at(), '', 'free again: taken');
  t.equal(await rc.get(k.sweepLease('sandboxes')), null, 'and given back after its page');
});
