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
