// Placement prefers a host with a warm container of the template, against
// real Redis, the DNS server, two managers and Docker: one host's empty pool
// does not make a cold start while the other has a warm container, even when
// the one with the empty pool is less loaded. Load stays the sorted set's;
// the managers publish their warm counts beside it.
import t from 'tap';
import { createRedis } from '../../src/redis/connection.js';
import { hostKeys } from '../../src/redis/keys.js';
import { startDns } from '../helpers/dns.js';
import { removeHostContainers, requireDocker } from '../helpers/docker.js';
import { startManager } from '../helpers/manager.js';
import { startMaster } from '../helpers/master.js';
import { waitFor } from '../helpers/ports.js';
import { TestRedis } from '../helpers/redis.js';

if (requireDocker(t, ['omega/sandbox-python:latest'])) {
  const redis = await TestRedis.create();
  t.teardown(() => redis.destroy());
  const rc = createRedis(redis.url);
  t.teardown(() => rc.disconnect());

  t.test('a create goes to the host with a warm container, not to the less loaded one with none', async (t) => {
    const dns = await startDns(t, redis);
    const k = hostKeys(dns.prefix);
    const cold = await startManager(t, redis, { OMEGA_REDIS_PREFIX: dns.prefix, OMEGA_TEMPLATES: 'python', OMEGA_POOL_SIZE: '0' });
    const warm = await startManager(t, redis, { OMEGA_REDIS_PREFIX: dns.prefix, OMEGA_TEMPLATES: 'python', OMEGA_POOL_SIZE: '1' });
    t.teardown(() => {
      removeHostContainers(cold.hostId);
      removeHostContainers(warm.hostId);
    });
    const { call } = await startMaster(t, redis, dns, { OMEGA_TEMPLATES: 'python' });
    const published = () => rc.zscore(k.warm('python'), warm.hostId);
    await waitFor('a warm container published', async () => (await published()) === '1', 60_000, 50);
    t.equal(await rc.zscore(k.warm('python'), cold.hostId), null, 'the host with an empty pool publishes none');

    const first = (await call('POST', '/v1/sandboxes', { template: 'python' })).body;
    t.match(first, { host: warm.hostId, source: 'pool' }, `the first create takes the warm one: ${JSON.stringify(first)}`);
    await waitFor('its pool refilled and published', async () => (await published()) === '1', 60_000, 50);
    t.equal(await rc.zscore(k.load, warm.hostId), '1', 'the warm host is the more loaded one now');
    t.equal(await rc.zscore(k.load, cold.hostId), '0');

    const second = (await call('POST', '/v1/sandboxes', { template: 'python' })).body;
    t.match(second, { host: warm.hostId, source: 'pool' }, 'still the warm host: a warm create rather than a cold one on the idle host');
    t.equal(await published(), null, 'its pool is empty until the refill: it says so');
    const third = (await call('POST', '/v1/sandboxes', { template: 'python' })).body;
    t.match(third, { host: cold.hostId, source: 'cold' }, 'with no warm container anywhere, the least loaded host, cold');

    for (const sb of [first, second, third]) t.equal((await call('DELETE', `/v1/sandboxes/${sb.id}`)).status, 200);
    await warm.server.stop();
    t.equal(await published(), null, 'a stopped manager takes its warm count with it');
  });
}
