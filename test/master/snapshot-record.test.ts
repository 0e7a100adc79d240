// A snapshot becomes its sandbox's latest (what a lost or archived sandbox
// is restored from) only while the sandbox is still where it was taken:
// real Redis, the master's Store, hosts as records only (as allocate.test.ts).
import t from 'tap';
import { Store } from '../../master/store.js';
import type { SnapshotView } from '../../src/protocol/master.js';
import { createRedis } from '../../src/redis/connection.js';
import { hostKeys } from '../../src/redis/keys.js';
import { TestRedis } from '../helpers/redis.js';

const redis = await TestRedis.create();
t.teardown(() => redis.destroy());

t.test('recorded on its own host; refused once the sandbox is lost, moved, deleting or gone', async (t) => {
  const c = createRedis(redis.url);
  t.teardown(() => c.disconnect());
  const prefix = 'snaprec';
  const k = hostKeys(prefix);
  for (const h of ['h1', 'h2']) {
    await c.hset(k.host(h), { address: '127.0.1.1', managerUrl: `http://${h}:7070`, capacity: '10' });
    await c.set(k.alive(h), '1', 'PX', 60_000);
    await c.sadd(k.hosts, h);
    await c.zadd(k.load, 0, h);
  }
  const store = new Store(c, prefix, 60, 'm1');
  await store.allocate('a', { template: 'node', expiresAtMs: Date.now() + 60_000 }, ['h2']);
  await store.finishCreate('a', { expiresAtMs: Date.now() + 60_000, hostPort: 4000, ingressPort: null, containerId: 'c1' });
  const snap = (id: string): SnapshotView => ({ id, sandboxId: 'a', template: 'node', bytes: 10, createdAt: new Date().toISOString(), kind: 'periodic' });

  t.equal(await store.noteSnapshot(snap('s1'), 'h1'), '', 'the first: nothing was its latest before');
  t.equal(await store.noteSnapshot(snap('s2'), 'h1'), 's1', 'the next replaces it');
  t.same(await store.noteSnapshot(snap('s3'), 'h2'), { moved: true }, 'one taken on a host it is not on');
  t.equal((await store.get('a'))?.snapshot, 's2');
  t.ok(await store.markLost('a', 'h1', 'host lost'));
  t.same(await store.noteSnapshot(snap('s4'), 'h1'), { moved: true }, 'one from the host it was lost with: a restore reads s2');
  t.equal((await store.get('a'))?.snapshot, 's2', 'still s2');
  t.same((await store.getSnapshots(['s3', 's4'])), [null, null], 'neither refused one is recorded');
  t.ok(await store.transition('a', ['lost'], 'running'));
  t.ok(await store.beginDelete('a'));
  t.equal(await store.noteSnapshot(snap('s5'), 'h1'), null, 'deleting');
  t.ok(await store.release('a'));
  t.equal(await store.noteSnapshot(snap('s6'), 'h1'), null, 'gone');
  t.same((await store.getSnapshots(['s5', 's6'])), [null, null]);
});
