// Failure paths of the master against real Redis, DNS server, manager and Docker:
// a failed DNS write leaves nothing behind, a failing manager is passed over,
// and the reconciler heals what a crash between steps leaves.
import t from 'tap';
import { createRedis } from '../../src/redis/connection.js';
import { hostKeys } from '../../src/redis/keys.js';
import { dig, startDns } from '../helpers/dns.js';
import { dockerExists, requireDocker } from '../helpers/docker.js';
import { startManager } from '../helpers/manager.js';
import { startMaster } from '../helpers/master.js';
import { freePort } from '../helpers/ports.js';
import { TestRedis } from '../helpers/redis.js';

if (requireDocker(t, ['omega/sandbox-python:latest'])) {
  const redis = await TestRedis.create();
  t.teardown(() => redis.destroy());

  t.test('a DNS write that fails removes the container again: no record, no count', async (t) => {
    const dns = await startDns(t, redis);
    const m = await startManager(t, redis, { OMEGA_REDIS_PREFIX: dns.prefix });
    const { call } = await startMaster(t, redis, dns, { OMEGA_DNS_API_URL: `http://127.0.0.1:${await freePort()}` });
    const res = await call('POST', '/v1/sandboxes', { template: 'python' });
    t.equal(res.status, 502);
    t.equal(res.body.code, 'DNS_UNAVAILABLE');
    t.equal((await m.server.runtime.list()).length, 0, 'no container');
    const rc = createRedis(redis.url);
    t.teardown(() => rc.disconnect());
    t.equal(await rc.zscore(hostKeys(dns.prefix).load, m.hostId), '0', 'no count');
    t.same((await call('GET', '/v1/sandboxes')).body.sandboxes, [], 'no record');
  });

  t.test('a manager that fails is passed over for the next host', async (t) => {
    const dns = await startDns(t, redis);
    const rc = createRedis(redis.url);
    t.teardown(() => rc.disconnect());
    const k = hostKeys(dns.prefix);
    // A host that heart-beats but whose manager does not answer, and with the lowest load.
    await rc.hset(k.host('broken'), { address: '127.0.0.1', managerUrl: `http://127.0.0.1:${await freePort()}`, capacity: '5' });
    await rc.set(k.alive('broken'), '1', 'PX', 60_000);
    await rc.zadd(k.load, 0, 'broken');
    const m = await startManager(t, redis, { OMEGA_REDIS_PREFIX: dns.prefix });
    await rc.zadd(k.load, 1, m.hostId); // so 'broken' is tried first
    const { call } = await startMaster(t, redis, dns);
    const res = await call('POST', '/v1/sandboxes', { template: 'python' });
    t.equal(res.status, 201, JSON.stringify(res.body));
    t.equal(res.body.host, m.hostId, 'placed on the working host');
    t.equal(await rc.zscore(k.load, 'broken'), '0', 'the failed host\'s slot was given back');
    t.same(await rc.smembers(k.sandboxesOn('broken')), []);
    t.same((await call('DELETE', `/v1/sandboxes/${res.body.id}`)).body, { id: res.body.id, deleted: true });
  });

  t.test('the reconciler heals a create cut short, a stray container and a stale name', async (t) => {
    const dns = await startDns(t, redis);
    const m = await startManager(t, redis, { OMEGA_REDIS_PREFIX: dns.prefix, OMEGA_ORPHAN_GRACE_MS: '1000', OMEGA_RECONCILE_INTERVAL_MS: '600000' });
    const { server, call } = await startMaster(t, redis, dns, { OMEGA_CREATE_TIMEOUT_MS: '1000', OMEGA_RECONCILE_INTERVAL_MS: '600000' });
    const rc = createRedis(redis.url);
    t.teardown(() => rc.disconnect());
    const k = hostKeys(dns.prefix);

    // A master that died after reserving a slot: a `creating` record, counted, with no container.
    const cut = 'aaaaaaaaaaaaaaaa';
    await server.store.allocate(cut, { template: 'python', expiresAtMs: Date.now() + 60_000 });
    await rc.hset(k.sandbox(cut), 'stateSinceMs', String(Date.now() - 10_000));
    t.equal(await rc.zscore(k.load, m.hostId), '1');

    // A container its manager runs for a sandbox the master never recorded.
    const stray = 'bbbbbbbbbbbbbbbb';
    const started = await m.call('POST', '/v1/sandboxes', { id: stray, template: 'python', token: 'stray-token-0123456789' });
    t.equal(started.status, 201);

    // A name left in DNS by a sandbox that is gone.
    const stale = 'cccccccccccccccc';
    await dns.call('PUT', `/v1/records/${stale}`, { type: 'A', values: ['127.0.0.1'] });
    t.equal((await dig(dns.port, [`${stale}.sandbox.test`, 'A'])).status, 'NOERROR');

    await new Promise((r) => setTimeout(r, 1100)); // past the manager's grace for the stray
    const report = await server.reconciler.run();
    t.same(report.finished, [cut], 'the cut-short create is finished off');
    t.same(report.names, [stale], 'the stale name is removed');
    // The stray is the manager's to remove: no record of the master's places it on this host.
    const hostReport = await m.server.reconciler.run();
    t.same(hostReport.removed, [`omega-${stray}`], 'the stray container is removed by its manager');
    t.same(await rc.hkeys(k.containers(m.hostId)), [], 'and its row');
    t.notOk(dockerExists('container', started.body.containerId));
    t.equal((await dig(dns.port, [`${stale}.sandbox.test`, 'A'])).status, 'NXDOMAIN');
    t.equal(await rc.zscore(k.load, m.hostId), '0', 'the count is back to what runs');
    t.same((await call('GET', '/v1/sandboxes')).body.sandboxes, []);
  });

  t.test('a running sandbox whose names went missing (a DNS write lost in a failover) gets them back', async (t) => {
    const dns = await startDns(t, redis);
    await startManager(t, redis, { OMEGA_REDIS_PREFIX: dns.prefix });
    const { server, call } = await startMaster(t, redis, dns, { OMEGA_RECONCILE_INTERVAL_MS: '600000' });
    const s = (await call('POST', '/v1/sandboxes', { template: 'python' })).body;
    await dns.call('POST', '/v1/changes', { changes: [{ action: 'DELETE', name: s.id }, { action: 'DELETE', name: `*.${s.id}` }] });
    t.equal((await dig(dns.port, [s.hostname, 'A'])).status, 'NXDOMAIN');
    const report = await server.reconciler.run();
    t.same(report.rewritten, [s.id]);
    t.same((await dig(dns.port, [s.hostname, 'A'])).answer.length, 1, 'its name answers again');
    t.same((await dig(dns.port, [`8080.${s.hostname}`, 'A'])).answer.length, 1, 'and its previews\'');
    t.same((await server.reconciler.run()).rewritten, [], 'once');
    t.equal((await call('DELETE', `/v1/sandboxes/${s.id}`)).status, 200);
  });
}
