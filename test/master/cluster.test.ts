// The master and a manager on a real Redis Cluster (three nodes, no
// replicas), with the DNS server and Docker: a create and a delete go
// through every program, each on its own client of the cluster.
import t from 'tap';
import { closeRedis, createRedis } from '../../src/redis/connection.js';
import { hostKeys } from '../../src/redis/keys.js';
import { dig, startDns } from '../helpers/dns.js';
import { dockerExists, removeHostContainers, requireDocker } from '../helpers/docker.js';
import { startManager } from '../helpers/manager.js';
import { startMaster } from '../helpers/master.js';
import { TestCluster } from '../helpers/redis-ha.js';

if (requireDocker(t, ['omega/sandbox-python:latest'])) {
  const cluster = await TestCluster.create();
  t.teardown(() => cluster.destroy());

  t.test('create, resolve, list and delete a sandbox with all state on the cluster', async (t) => {
    const dns = await startDns(t, cluster);
    const m = await startManager(t, cluster, { OMEGA_REDIS_PREFIX: dns.prefix, OMEGA_POOL_SIZE: 'python=1,node=0' });
    t.teardown(() => removeHostContainers(m.hostId));
    const { call } = await startMaster(t, cluster, dns);
    const rc = createRedis(cluster.url);
    t.teardown(() => closeRedis(rc));
    const k = hostKeys(dns.prefix);

    const res = await call('POST', '/v1/sandboxes', { template: 'python' });
    t.equal(res.status, 201, JSON.stringify(res.body));
    t.match(res.body, { state: 'running', host: m.hostId, address: '127.0.0.1' });
    t.equal(await rc.zscore(k.load, m.hostId), '1', 'the allocation script counted it');
    t.equal((await dig(dns.port, [res.body.hostname, 'A', '+short'])).raw.trim(), '127.0.0.1', 'its name resolves');
    t.same((await call('GET', '/v1/sandboxes')).body.sandboxes.map((s: any) => s.id), [res.body.id]);
    t.same((await call('GET', '/v1/hosts')).body.hosts.map((h: any) => [h.id, h.load, h.health]), [[m.hostId, 1, 'alive']]);
    const containerId = (await rc.hget(k.sandbox(res.body.id), 'containerId'))!;
    t.ok(dockerExists('container', containerId), 'its container runs');

    t.same((await call('DELETE', `/v1/sandboxes/${res.body.id}`)).body, { id: res.body.id, deleted: true });
    t.equal((await dig(dns.port, [res.body.hostname, 'A'])).status, 'NXDOMAIN');
    t.notOk(dockerExists('container', containerId), 'container gone');
    t.equal(await rc.zscore(k.load, m.hostId), '0', 'count back');
    t.equal((await call('GET', `/v1/sandboxes/${res.body.id}`)).status, 404);
  });
}
