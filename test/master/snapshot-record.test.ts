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
  const writing = async () => (await c.zrange(k.snapshotsWriting, '0', '-1')).sort();
  // Each is being written (owned by its entry in snapshots-writing) before it is noted, as Persistence.snapshot does.
  const note = async (id: string, host: string) => {
    await store.startSnapshot(id, Date.now() + 60_000);
    return store.noteSnapshot(snap(id), host);
  };

  t.same(await note('s1', 'h1'), { before: '' }, 'the first: nothing was its latest before');
  t.same(await note('s2', 'h1'), { before: 's1' }, 'the next replaces it');
  t.same(await writing(), [], 'recorded, neither is being written any more');
  t.same(await note('s3', 'h2'), { refused: 'moved' }, 'one taken on a host it is not on');
  t.equal((await store.get('a'))?.snapshot, 's2');
  t.same(await writing(), ['s3'], 'refused, it is still being written until its archive is removed');
  t.ok(await store.markLost('a', 'h1', 'host lost'));
  t.same(await note('s4', 'h1'), { refused: 'moved' }, 'one from the host it was lost with: a restore reads s2');
  t.equal((await store.get('a'))?.snapshot, 's2', 'still s2');
  t.same(await store.getSnapshots(['s3', 's4']), [null, null], 'neither refused one is recorded');
  t.ok(await store.transition('a', ['lost'], 'running'));
  t.same(await store.noteSnapshot(snap('s7'), 'h1'), { refused: 'abandoned' }, 'one no longer being written (the reaper took it for abandoned)');
  t.same(await store.getSnapshots(['s7']), [null]);
  t.ok(await store.beginDelete('a'));
  t.same(await note('s5', 'h1'), { refused: 'gone' }, 'deleting');
  t.ok(await store.release('a'));
  t.same(await note('s6', 'h1'), { refused: 'gone' }, 'gone');
  t.same(await store.getSnapshots(['s5', 's6']), [null, null]);
});
