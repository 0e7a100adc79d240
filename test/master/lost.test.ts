// A sandbox's container that dies, and creates and deletes whose master died,
// against real Redis, the DNS server, a manager and Docker: the master's
// reconciler is the one that turns a dead container into `lost`, names go at
// once, the workspace is kept for the retention time, then removed with its
// volume; nothing is left on any path.
import { execFileSync } from 'node:child_process';
import t from 'tap';
import { Store } from '../../master/store.js';
import { createRedis } from '../../src/redis/connection.js';
import { hostKeys } from '../../src/redis/keys.js';
import { dig, startDns } from '../helpers/dns.js';
import { dockerExists, requireDocker } from '../helpers/docker.js';
import { startManager } from '../helpers/manager.js';
import { startMaster } from '../helpers/master.js';
import { waitFor } from '../helpers/ports.js';
import { TestRedis } from '../helpers/redis.js';

if (requireDocker(t, ['omega/sandbox-python:latest'])) {
  const redis = await TestRedis.create();
  t.teardown(() => redis.destroy());

  t.test('a killed container: lost at once (not 404), names gone, workspace kept, then purged with its volume; DELETE of a lost one removes all', async (t) => {
    const dns = await startDns(t, redis);
    const m = await startManager(t, redis, { OMEGA_REDIS_PREFIX: dns.prefix, OMEGA_RECONCILE_INTERVAL_MS: '600000' });
    const { server, call } = await startMaster(t, redis, dns, { OMEGA_RECONCILE_INTERVAL_MS: '600000', OMEGA_LOST_RETENTION_SECONDS: '2' });
    const rc = createRedis(redis.url);
    t.teardown(() => rc.disconnect());
    const k = hostKeys(dns.prefix);

    const a = (await call('POST', '/v1/sandboxes', { template: 'python' })).body;
    const b = (await call('POST', '/v1/sandboxes', { template: 'python' })).body;
    t.equal(await rc.zscore(k.load, m.hostId), '2');
    const rowOf = async (id: string) => JSON.parse((await rc.hget(k.containers(m.hostId), id)) ?? 'null');
    const volA = (await rowOf(a.id)).volume as string;
    const volB = (await rowOf(b.id)).volume as string;
    const containerA = (await rowOf(a.id)).containerId as string;

    execFileSync('docker', ['kill', containerA]);
    // Reported by the manager (Docker's die event), turned lost by the master's reconciler (host events): no pass needed.
    await waitFor('lost', async () => (await call('GET', `/v1/sandboxes/${a.id}`)).body.state === 'lost', 10_000, 25);
    const got = await call('GET', `/v1/sandboxes/${a.id}`);
    t.equal(got.status, 200, 'a lost sandbox is shown, not 404');
    t.match(got.body, { state: 'lost', lostReason: /exited/, lostAt: /^\d{4}-/ });
    t.equal((await dig(dns.port, [`${a.id}.sandbox.test`, 'A'])).status, 'NXDOMAIN', 'its name is gone at once');
    t.equal((await dig(dns.port, [`3000.${a.id}.sandbox.test`, 'A'])).status, 'NXDOMAIN', 'and its previews\'');
    t.equal(await rc.zscore(k.load, m.hostId), '1', 'the host\'s load is what runs on it');
    t.ok(dockerExists('volume', volA), 'the workspace is kept');
    t.match(await rowOf(a.id), { state: 'exited' }, 'the manager\'s row says it exited');
    const listed = await call('GET', '/v1/sandboxes?state=lost');
    t.same(listed.body.sandboxes.map((s: { id: string }) => s.id), [a.id], 'listed as lost');

    // The manager keeps the workspace of a lost sandbox and removes its dead container.
    const hostPass = await m.server.reconciler.run();
    t.same(hostPass.kept, [a.id]);
    t.notOk(dockerExists('container', containerA), 'the dead container is removed');
    t.ok(dockerExists('volume', volA), 'its volume is not');
    t.match(await rowOf(a.id), { state: 'removed', volume: volA });

    // DELETE of a lost sandbox removes everything at once.
    execFileSync('docker', ['kill', (await rowOf(b.id)).containerId]);
    await waitFor('b lost', async () => (await call('GET', `/v1/sandboxes/${b.id}`)).body.state === 'lost', 10_000, 25);
    t.same((await call('DELETE', `/v1/sandboxes/${b.id}`)).body, { id: b.id, deleted: true });
    t.equal((await call('GET', `/v1/sandboxes/${b.id}`)).status, 404);
    t.notOk(dockerExists('volume', volB), 'its volume is removed with it');
    t.equal(await rowOf(b.id), null, 'and its row');

    // Past the retention, the master deletes the lost sandbox with its workspace.
    await new Promise((r) => setTimeout(r, 2100));
    const pass = await server.reconciler.run();
    t.same(pass.purged, [a.id]);
    t.equal((await call('GET', `/v1/sandboxes/${a.id}`)).status, 404);
    t.notOk(dockerExists('volume', volA), 'the workspace is removed with it');
    t.equal(await rowOf(a.id), null);
    t.equal(await rc.zscore(k.load, m.hostId), '0');
    t.same((await m.server.runtime.volumes()).map((v) => v.name), [], 'no volume left on the host');
  });

  t.test('a create or delete whose master is gone is finished at once, not after a stuck time', async (t) => {
    const dns = await startDns(t, redis);
    const m = await startManager(t, redis, { OMEGA_REDIS_PREFIX: dns.prefix, OMEGA_RECONCILE_INTERVAL_MS: '600000' });
    const { server, call } = await startMaster(t, redis, dns, { OMEGA_RECONCILE_INTERVAL_MS: '600000' });
    const rc = createRedis(redis.url);
    t.teardown(() => rc.disconnect());
    const k = hostKeys(dns.prefix);

    // A master that allocated, got the container started and its names written, then died (it never beat, or stopped beating).
    const dead = new Store(rc, dns.prefix, 60, 'dead-master');
    const cut = 'dddddddddddddddd';
    const slot = await dead.allocate(cut, { template: 'python', expiresAtMs: Date.now() + 60_000 });
    t.equal(slot?.hostId, m.hostId);
    t.equal((await m.call('POST', '/v1/sandboxes', { id: cut, template: 'python', token: 'cut-token-0123456789' })).status, 201);
    await dns.call('PUT', `/v1/records/${cut}`, { type: 'A', values: ['127.0.0.1'] });
    const containerId = JSON.parse((await rc.hget(k.containers(m.hostId), cut))!).containerId as string;

    // And a delete it began and did not finish.
    const half = (await call('POST', '/v1/sandboxes', { template: 'python' })).body;
    await dead.beginDelete(half.id);

    const report = await server.reconciler.run();
    t.same(report.finished.sort(), [cut, half.id].sort(), 'both finished in the first pass');
    t.notOk(dockerExists('container', containerId), 'the abandoned create\'s container is removed');
    t.equal((await dig(dns.port, [`${cut}.sandbox.test`, 'A'])).status, 'NXDOMAIN', 'and its name');
    t.equal((await call('GET', `/v1/sandboxes/${half.id}`)).status, 404, 'the abandoned delete is done');
    t.equal(await rc.zscore(k.load, m.hostId), '0');
    t.same(await rc.hkeys(k.containers(m.hostId)), [], 'no row left');
    t.same((await m.server.runtime.list()).length, 0, 'no container left');
  });
}
