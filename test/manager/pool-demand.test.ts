// The warm pool following demand on a real manager and Docker: a burst
// raises its target and the pool grows past its floor, a quiet spell brings
// it back, and a steady stream of creates is served warm (a create that
// finds the pool empty waits for the refill in flight).
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { requireDocker, removeHostContainers } from '../helpers/docker.js';
import { startManager } from '../helpers/manager.js';
import { sleep, waitFor } from '../helpers/ports.js';
import { TestRedis } from '../helpers/redis.js';

const newId = () => randomBytes(8).toString('hex');
const token = () => randomBytes(24).toString('base64url');

if (requireDocker(t, ['omega/sandbox-python:latest'])) {
  const redis = await TestRedis.create();
  t.teardown(() => redis.destroy());

  t.test('a burst raises the pool past its floor, a quiet spell brings it back; a steady stream is served warm', async (t) => {
    const m = await startManager(t, redis, { OMEGA_TEMPLATES: 'python', OMEGA_POOL_SIZE: '1', OMEGA_POOL_MAX: '4', OMEGA_POOL_DEMAND_WINDOW_MS: '4000', OMEGA_CAPACITY: '30' });
    t.teardown(() => removeHostContainers(m.hostId));
    const stats = () => m.server.pool.stats().python!;
    await waitFor('the floor warm', () => stats().ready === 1, 60_000, 50);
    const create = async () => {
      const res = await m.call('POST', '/v1/sandboxes', { id: newId(), template: 'python', token: token() });
      t.equal(res.status, 201, JSON.stringify(res.body));
      return res.body as { id: string; source: string };
    };
    const made: string[] = [];

    const burst = await Promise.all(Array.from({ length: 5 }, create));
    made.push(...burst.map((b) => b.id));
    t.ok(stats().target > 1, `the burst raised the target past the floor (${stats().target})`);
    await waitFor('the pool grown past its floor', () => stats().ready > 1, 60_000, 50);
    t.pass(`${stats().ready} warm after the burst`);

    await waitFor('back at the floor once quiet', () => stats().target === 1 && stats().ready === 1, 30_000, 100);
    t.pass('a quiet window later: the floor again');

    const sources: string[] = [];
    for (let i = 0; i < 8; i++) {
      const sb = await create();
      made.push(sb.id);
      sources.push(sb.source);
      await sleep(400);
    }
    t.same(sources, Array(8).fill('pool'), 'every create of the stream was served from the pool');
    t.ok(stats().waited >= 1, `some waited for the refill in flight (${stats().waited}) rather than starting cold`);
    for (const id of made) await m.call('DELETE', `/v1/sandboxes/${id}`);
  });
}
