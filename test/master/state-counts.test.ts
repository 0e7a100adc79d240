// The counts by state that /metrics reads: kept by the scripts that change a
// sandbox's state, so after every step of a sandbox's life they must equal
// a recount of the records. Real Redis, the master's Store, no hosts but
// their records (as allocate.test.ts).
import t from 'tap';
import { buildMasterApi } from '../../master/api.js';
import { Store } from '../../master/store.js';
import { createLogger } from '../../src/log.js';
import { SANDBOX_STATES } from '../../src/protocol/master.js';
import { createRedis, type RedisClient } from '../../src/redis/connection.js';
import { hostKeys } from '../../src/redis/keys.js';
import { startDns } from '../helpers/dns.js';
import { startMaster } from '../helpers/master.js';
import { waitFor } from '../helpers/ports.js';
import { TestRedis } from '../helpers/redis.js';

const redis = await TestRedis.create();
t.teardown(() => redis.destroy());

const fields = { template: 'python', expiresAtMs: Date.now() + 60_000 };
const started = (n: number) => ({ expiresAtMs: Date.now() + 60_000, hostPort: 4000 + n, ingressPort: null, containerId: `c${n}` });

async function addHost(c: RedisClient, prefix: string, id: string, capacity = 50): Promise<void> {
  const k = hostKeys(prefix);
  await c.hset(k.host(id), { address: '127.0.1.1', managerUrl: `http://${id}:7070`, capacity: String(capacity) });
  await c.set(k.alive(id), '1', 'PX', 60_000);
  await c.sadd(k.hosts, id);
  await c.zadd(k.load, 0, id);
}

/** Every state with a number, as a recount of every record finds them (what /metrics did before the counts). */
async function recount(store: Store): Promise<Record<string, number>> {
  const out = Object.fromEntries(SANDBOX_STATES.map((s) => [s, 0]));
  for (const r of await store.getMany(await store.allIds())) if (r) out[r.state]!++;
  return out;
}

t.test('after every step of a sandbox\'s life the counts equal a recount of the records', async (t) => {
  const c = createRedis(redis.url);
  t.teardown(() => c.disconnect());
  const prefix = 'life';
  const store = new Store(c, prefix, 60, 'm1');
  await addHost(c, prefix, 'h1');
  await addHost(c, prefix, 'h2');
  const check = async (step: string, want: Partial<Record<string, number>>) => {
    const counts = await store.stateCounts();
    t.same(counts, await recount(store), `${step}: the counts are a recount`);
    t.match(counts, want, `${step}: ${JSON.stringify(want)}`);
  };

  await check('empty', { running: 0, lost: 0 });
  await store.allocate('a', fields, ['h2']);
  await store.allocate('b', fields, ['h2']);
  await store.allocate('i', { ...fields, internal: true }, ['h2']);
  await check('allocated', { creating: 3 });
  for (const [n, id] of ['a', 'b', 'i'].entries()) await store.finishCreate(id, started(n));
  await check('created (an internal sandbox of /v1/run counts too)', { creating: 0, running: 3 });
  t.equal((await store.finishCreate('a', started(9))).record, null);
  await check('a create finished twice changes nothing', { running: 3 });

  t.ok('record' in (await store.beginPause('a', 'pause', 'memory')));
  await check('pausing', { running: 2, pausing: 1 });
  await store.settle('a', 'pausing', 'paused');
  await check('paused', { running: 2, paused: 1 });
  t.same(await store.beginPause('a', 'pause', 'memory'), { state: 'paused' });
  t.equal(await store.settle('a', 'pausing', 'paused'), null);
  await check('a pause refused and a settle of nothing change nothing', { paused: 1 });
  t.ok('record' in (await store.beginPause('a', 'resume')));
  await check('resuming', { resuming: 1, paused: 0 });
  await store.settle('a', 'resuming', 'running');
  await check('resumed', { running: 3, resuming: 0 });

  // Stopped, then archived (a move off its host), then restored (a move onto one), then taken back.
  t.ok('record' in (await store.beginPause('b', 'pause', 'stopped')));
  await store.settle('b', 'pausing', 'paused');
  t.ok('record' in (await store.beginPause('b', 'pause', 'archived')));
  await check('archiving', { pausing: 1, running: 2 });
  t.ok('record' in (await store.move('b', 'archive')));
  await check('archived', { paused: 1, pausing: 0 });
  t.match(await store.move('b', 'begin', 'm1', '', ['h2']), { slot: { hostId: 'h1' } });
  await check('restoring', { paused: 0, resuming: 1 });
  t.ok('record' in (await store.move('b', 'back')));
  await check('restore taken back', { paused: 1, resuming: 0 });

  t.equal(await store.markLost('a', 'h1', 'container exited'), true);
  t.equal(await store.markLost('a', 'h1', 'container exited'), false);
  await check('one lost (twice: counted once)', { lost: 1, running: 1 });
  t.ok(await store.update('a', 'lost', { dns: '0' }));
  await check('a field changed in the same state', { lost: 1 });
  t.match(await store.move('a', 'begin', 'm1', '', ['h2']), { slot: { hostId: 'h1' } });
  await store.settle('a', 'resuming', 'running', { hostPort: '4100', containerId: 'c100' });
  await check('a lost one restored', { lost: 0, running: 2 });

  await store.allocate('on2', fields, ['h1']);
  await store.finishCreate('on2', started(5));
  await store.allocate('pending', fields, ['h1']);
  await c.del(hostKeys(prefix).alive('h2'));
  t.same((await store.markHostLost('h2')).sort(), ['on2', 'pending']);
  await check('a host lost with a running and a creating sandbox', { lost: 2, creating: 0 });

  t.ok(await store.transition('i', ['running'], 'deleting'));
  await check('a transition', { deleting: 1 });
  for (const id of ['a', 'b', 'on2']) await store.beginDelete(id);
  await store.beginDelete('a');
  await check('deleting (a delete begun twice counted once)', { deleting: 4, running: 0, paused: 0, lost: 1 });
  for (const id of ['a', 'b', 'on2', 'i']) t.equal(await store.release(id), true);
  t.equal(await store.release('a'), false, 'released twice: no record');
  await check('released', { deleting: 0, lost: 1 });
  await store.beginDelete('pending');
  await store.release('pending');
  await check('all gone', Object.fromEntries(SANDBOX_STATES.map((s) => [s, 0])));
});

t.test('/metrics reports the counts, every state (0 where there is none)', async (t) => {
  const c = createRedis(redis.url);
  t.teardown(() => c.disconnect());
  const store = new Store(c, 'metrics', 60, 'm1');
  await addHost(c, 'metrics', 'h');
  for (const id of ['x', 'y']) await store.allocate(id, fields);
  await store.finishCreate('x', started(1));
  const app = buildMasterApi({ sandboxes: {} as never, runner: {} as never, store, token: 'metrics-test-token-0123456789', status: async () => ({ redis: true, dns: true }), templates: ['python'], webDir: '/nonexistent', log: createLogger('master', { level: 'silent' }) });
  t.teardown(() => app.close());
  const text = (await app.inject({ method: 'GET', url: '/metrics' })).body;
  const got = Object.fromEntries([...text.matchAll(/^omega_master_sandboxes\{state="(\w+)"\} (\d+)$/gm)].map((m) => [m[1], Number(m[2])]));
  t.same(got, { ...Object.fromEntries(SANDBOX_STATES.map((s) => [s, 0])), creating: 1, running: 1 });
});

/** What a master of the version before the counts left: the same records, none marked counted, no counts hash. */
async function asBeforeTheCounts(c: RedisClient, store: Store): Promise<void> {
  for (const id of await store.allIds()) await c.hdel(store.keys.sandbox(id), 'counted');
  await c.del(store.keys.counts);
}

t.test('upgrade: records of an earlier version are counted once, in pages, while states change beside the pass', async (t) => {
  const prefix = 'upgrade';
  const [c, other] = [createRedis(redis.url), createRedis(redis.url)];
  t.teardown(() => [c, other].forEach((x) => x.disconnect()));
  const store = new Store(c, prefix, 60, 'm1');
  const beside = new Store(other, prefix, 60, 'm2');
  await addHost(c, prefix, 'h', 200);
  // 60 sandboxes, many created in the same millisecond (the index's score): running, paused, creating.
  await Promise.all(Array.from({ length: 60 }, (_, i) => store.allocate(`s${i}`, fields)));
  for (let i = 0; i < 50; i++) await store.finishCreate(`s${i}`, started(i));
  for (let i = 40; i < 50; i++) {
    await store.beginPause(`s${i}`, 'pause');
    await store.settle(`s${i}`, 'pausing', 'paused');
  }
  await asBeforeTheCounts(c, store);
  t.same(await store.stateCounts(), Object.fromEntries(SANDBOX_STATES.map((s) => [s, 0])), 'no counts yet');

  // Before the pass: changes to uncounted records count what they touch and take nothing from the old state.
  await store.beginDelete('s0');
  await store.release('s0');
  await store.beginPause('s1', 'pause');
  await store.allocate('new0', fields);
  t.match(await store.stateCounts(), { pausing: 1, creating: 1, running: 0 }, 'only what changed since is counted');

  // The pass, 3 records a page, with deletes, pauses, resumes, creates and losses from another master beside it.
  const changes = async () => {
    for (let i = 2; i < 12; i++) {
      await beside.beginDelete(`s${i}`);
      await beside.release(`s${i}`);
      await beside.beginPause(`s${i + 10}`, 'pause');
      await beside.beginPause(`s${i + 38}`, 'resume');
      await beside.allocate(`new${i}`, fields);
      await beside.markLost(`s${i + 20}`, 'h', 'container exited');
    }
  };
  const [done] = await Promise.all([store.countUncounted(60_000, 3), changes()]);
  t.equal(done, true);
  t.same(await store.stateCounts(), await recount(store), 'the counts are a recount');
  t.match(await store.stateCounts(), { running: 8, pausing: 11, lost: 10, paused: 0, resuming: 10, creating: 21 });
  t.ok(await c.hget(store.keys.counts, 'recountedAtMs'), 'marked complete');
  t.equal(await c.exists(store.keys.countsLock), 0, 'the lock is given back');

  // Complete: no second pass (a record unmarked now, as by a master of the earlier version, is not looked at).
  await c.hdel(store.keys.sandbox('s35'), 'counted');
  t.equal(await store.countUncounted(60_000, 3), true);
  t.equal(await c.hget(store.keys.sandbox('s35'), 'counted'), null, 'no second pass once complete');
});

t.test('upgrade: one master counts while the others wait for its lock; a dead one\'s lock lapses and the pass is done again', async (t) => {
  const prefix = 'upgrade-lock';
  const c = createRedis(redis.url);
  t.teardown(() => c.disconnect());
  const [a, b] = [new Store(c, prefix, 60, 'm1'), new Store(c, prefix, 60, 'm2')];
  await addHost(c, prefix, 'h');
  for (let i = 0; i < 5; i++) await a.allocate(`s${i}`, fields);
  await asBeforeTheCounts(c, a);
  // m2 died mid-pass: its lock is there, and what it counted is marked.
  await c.set(a.keys.countsLock, 'm2', 'PX', 300);
  await c.countSandboxes(a.keys.counts, `${prefix}:{hosts}`, 's0', 's1');
  t.equal(await a.countUncounted(), false, 'another master holds the lock: not now');
  t.equal((await a.stateCounts()).creating, 2);
  await new Promise((r) => setTimeout(r, 400));
  t.equal(await a.countUncounted(), true, 'its lock lapsed: counted');
  t.equal(await b.countUncounted(), true, 'and complete for every master');
  t.same(await a.stateCounts(), await recount(a));
  t.equal((await a.stateCounts()).creating, 5, 'what the dead master counted is not counted twice');
});

t.test('upgrade: a master that starts on records of an earlier version counts them, and /metrics says so', async (t) => {
  const dns = await startDns(t, redis);
  const c = createRedis(redis.url);
  t.teardown(() => c.disconnect());
  const old = new Store(c, dns.prefix, 60, 'old');
  await addHost(c, dns.prefix, 'h');
  for (let i = 0; i < 30; i++) await old.allocate(`s${i}`, fields);
  for (let i = 0; i < 20; i++) await old.finishCreate(`s${i}`, started(i));
  await asBeforeTheCounts(c, old);
  const { call } = await startMaster(t, redis, dns, { OMEGA_PROVIDER: 'none', OMEGA_RECONCILE_INTERVAL_MS: '600000', OMEGA_REAP_INTERVAL_MS: '60000' });
  await waitFor('the recount', async () => (await c.hexists(old.keys.counts, 'recountedAtMs')) === 1, 10_000, 20);
  const text = (await call('GET', '/metrics')).body as string;
  const got = Object.fromEntries([...text.matchAll(/^omega_master_sandboxes\{state="(\w+)"\} (\d+)$/gm)].map((m) => [m[1], Number(m[2])]));
  t.same(got, await recount(old), '/metrics is a recount');
  t.equal(Object.values(got as Record<string, number>).reduce((a, b) => a + b, 0), 30, 'every record counted once');
});
