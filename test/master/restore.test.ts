// Work that outlives its host, against real Redis, the DNS server, two
// managers and Docker: periodic snapshots (only the latest kept), a host
// lost with its sandbox coming back on the other host from its latest
// snapshot (same id, name and token), and a sandbox stopped too long
// archived (nothing left on its host) and restored, raced from two masters.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { createRedis } from '../../src/redis/connection.js';
import { hostKeys } from '../../src/redis/keys.js';
import { dig, startDns } from '../helpers/dns.js';
import { dockerExists, removeHostContainers, requireDocker } from '../helpers/docker.js';
import { startManager } from '../helpers/manager.js';
import { startMaster } from '../helpers/master.js';
import { waitFor } from '../helpers/ports.js';
import { TestRedis } from '../helpers/redis.js';
import { connectWorker } from '../helpers/worker-client.js';

interface Snap {
  id: string;
  sandboxId: string;
  kind: string;
  createdAt: string;
}

if (requireDocker(t, ['omega/sandbox-node:latest'])) {
  const redis = await TestRedis.create();
  t.teardown(() => redis.destroy());
  const dir = mkdtempSync(join(tmpdir(), 'omega-restore-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const store = { OMEGA_SNAPSHOT_STORE: `file://${dir}` };
  const rc = createRedis(redis.url);
  t.teardown(() => rc.disconnect());

  t.test('a host lost: its sandbox comes back on the other host from its latest periodic snapshot, with its id, name and token', async (t) => {
    const dns = await startDns(t, redis);
    const k = hostKeys(dns.prefix);
    const quick = { OMEGA_REDIS_PREFIX: dns.prefix, OMEGA_TEMPLATES: 'node', OMEGA_HEARTBEAT_INTERVAL_MS: '300', OMEGA_HEARTBEAT_TTL_MS: '1500', ...store };
    const hostA = await startManager(t, redis, quick);
    const hostB = await startManager(t, redis, quick);
    t.teardown(() => {
      removeHostContainers(hostA.hostId);
      removeHostContainers(hostB.hostId);
    });
    const { call } = await startMaster(t, redis, dns, { OMEGA_TEMPLATES: 'node', OMEGA_SNAPSHOT_INTERVAL_SECONDS: '1', ...store });
    const created = await call('POST', '/v1/sandboxes', { template: 'node', env: { GREETING: 'kept' } });
    t.equal(created.status, 201, JSON.stringify(created.body));
    const sb = created.body;
    const a = await connectWorker(t, `ws://127.0.0.1:${sb.port}/`, sb.token);
    await a.call('fs.write', { path: 'notes/keep.txt', content: 'written before the host was lost\n' });
    await a.close();
    const wrote = Date.now();

    const periodic = async () => ((await call('GET', '/v1/snapshots')).body.snapshots as Snap[]).filter((s) => s.sandboxId === sb.id && s.kind === 'periodic');
    const first = await waitFor('a periodic snapshot after the write', async () => (await periodic()).find((s) => Date.parse(s.createdAt) > wrote), 20_000, 100) as Snap;
    const second = await waitFor('the next one', async () => (await periodic()).find((s) => s.id !== first.id), 20_000, 100);
    t.ok(second, 'snapshots are taken again each interval');
    await waitFor('only the latest periodic snapshot kept', async () => (await periodic()).length === 1 && !readdirSync(dir).some((f) => f.includes(first.id)), 10_000, 100);

    // The host goes away as a crashed machine does: no deregistration, its containers gone with it.
    const lostHost = sb.host === hostA.hostId ? hostA : hostB;
    const otherHost = lostHost === hostA ? hostB : hostA;
    await lostHost.server.stop();
    await rc.hdel(k.host(lostHost.hostId), 'stoppedAtMs');
    removeHostContainers(lostHost.hostId);
    const lost = await waitFor('lost with its host', async () => {
      const v = (await call('GET', `/v1/sandboxes/${sb.id}`)).body;
      return v.state === 'lost' ? v : null;
    }, 20_000, 100);
    t.match(lost, { lostReason: 'host lost' });
    t.equal((await dig(dns.port, [sb.hostname, 'A'])).status, 'NXDOMAIN', 'its names went with its host');

    const resumed = await call('POST', `/v1/sandboxes/${sb.id}/resume`);
    t.equal(resumed.status, 200, JSON.stringify(resumed.body));
    t.match(resumed.body, { id: sb.id, state: 'running', host: otherHost.hostId, hostname: sb.hostname });
    t.match(sb.size, { cpus: Number, memoryMb: Number, diskMb: Number }, 'its size as its host started it');
    t.same(resumed.body.size, sb.size, 'the same on the host it came back on');
    t.equal((await dig(dns.port, [sb.hostname, 'A'])).answer.length, 1, 'its name points at its new host');
    const b = await connectWorker(t, `ws://127.0.0.1:${resumed.body.port}/`, sb.token);
    const check = await b.runToEnd({ command: 'sh', args: ['-c', 'cat /workspace/notes/keep.txt; echo "$GREETING"'] });
    t.equal(check.stdout, 'written before the host was lost\nkept\n', 'its files and its environment are back, claimed with its own token');
    await b.close();
    t.equal((await call('POST', `/v1/sandboxes/${sb.id}/resume`)).body.state, 'running', 'a second resume is a no-op');

    t.same((await call('DELETE', `/v1/sandboxes/${sb.id}`)).body, { id: sb.id, deleted: true });
    t.same(await periodic(), [], 'its periodic snapshot goes with it');
    t.same(readdirSync(dir), [], 'and its archive');
    t.equal(await rc.zscore(k.load, otherHost.hostId), '0', 'no slot held');
  });

  t.test('the reconciler puts a running sandbox back on the snapshot schedule and removes the periodic snapshot of one that is gone', async (t) => {
    const dns = await startDns(t, redis);
    const k = hostKeys(dns.prefix);
    const host = await startManager(t, redis, { OMEGA_REDIS_PREFIX: dns.prefix, OMEGA_TEMPLATES: 'node', ...store });
    t.teardown(() => removeHostContainers(host.hostId));
    const { call, server } = await startMaster(t, redis, dns, { OMEGA_TEMPLATES: 'node', OMEGA_SNAPSHOT_INTERVAL_SECONDS: '1', OMEGA_RECONCILE_INTERVAL_MS: '600000', ...store });
    const a = (await call('POST', '/v1/sandboxes', { template: 'node' })).body;
    const b = (await call('POST', '/v1/sandboxes', { template: 'node' })).body;
    const periodicOf = async (id: string) => ((await call('GET', '/v1/snapshots')).body.snapshots as Snap[]).find((s) => s.sandboxId === id && s.kind === 'periodic');
    const snapB = await waitFor('a periodic snapshot of b', () => periodicOf(b.id), 20_000, 100);
    // A master that dies between a create and its scheduling, and one that dies between a delete's release and its snapshot's removal:
    await rc.zrem(k.snapshotDue, a.id);
    t.ok(await server.store.beginDelete(b.id));
    t.ok(await server.store.release(b.id));
    const report = await server.reconciler.run();
    t.same(report.scheduled, [a.id], 'a is on the schedule again');
    t.ok(await rc.zscore(k.snapshotDue, a.id));
    t.same(report.snapshots, [snapB!.id], 'b\'s periodic snapshot is removed');
    t.notOk(await periodicOf(b.id));
    t.notOk(readdirSync(dir).some((f) => f.includes(snapB!.id)), 'and its archive');
    t.ok(report.names.length > 0, 'and b\'s names');
    t.equal((await call('DELETE', `/v1/sandboxes/${a.id}`)).status, 200);
  });

  t.test('lost without a snapshot: a resume says why', async (t) => {
    const dns = await startDns(t, redis);
    const k = hostKeys(dns.prefix);
    const host = await startManager(t, redis, { OMEGA_REDIS_PREFIX: dns.prefix, OMEGA_TEMPLATES: 'node', ...store });
    t.teardown(() => removeHostContainers(host.hostId));
    const { call, server } = await startMaster(t, redis, dns, { OMEGA_TEMPLATES: 'node', ...store });
    const sb = (await call('POST', '/v1/sandboxes', { template: 'node' })).body;
    t.ok(await server.store.markLost(sb.id, sb.host, 'a test'));
    const res = await call('POST', `/v1/sandboxes/${sb.id}/resume`);
    t.equal(res.status, 404);
    t.match(res.body, { code: 'SNAPSHOT_NOT_FOUND', message: /no snapshot to come back from/ });
    t.equal((await call('GET', `/v1/sandboxes/${sb.id}`)).body.state, 'lost', 'still lost');
    t.equal((await call('DELETE', `/v1/sandboxes/${sb.id}`)).status, 200);
    t.equal(await rc.zscore(k.load, host.hostId), '0');
  });

  t.test('stopped too long: archived (nothing left on its host), then resumed by two masters at once: one restore', async (t) => {
    const dns = await startDns(t, redis);
    const k = hostKeys(dns.prefix);
    const host = await startManager(t, redis, { OMEGA_REDIS_PREFIX: dns.prefix, OMEGA_TEMPLATES: 'node', ...store });
    t.teardown(() => removeHostContainers(host.hostId));
    // The reapers' own timers are slow here: the test runs the archive pass itself.
    const settings = { OMEGA_TEMPLATES: 'node', OMEGA_STOPPED_SECONDS: '1', OMEGA_REAP_INTERVAL_MS: '60000', ...store };
    const { call, server } = await startMaster(t, redis, dns, settings);
    const other = await startMaster(t, redis, dns, settings);
    const sb = (await call('POST', '/v1/sandboxes', { template: 'node', timeoutSeconds: 600, publicPreviews: true })).body;
    const a = await connectWorker(t, `ws://127.0.0.1:${sb.port}/`, sb.token);
    await a.call('fs.write', { path: 'app.js', content: 'console.log("archived and back")\n' });
    await a.close();
    const row = JSON.parse((await rc.hget(k.containers(host.hostId), sb.id))!);
    t.equal(row.publicPreviews, true, 'its host keeps publicPreviews for the worker\'s next claim');

    t.match((await call('POST', `/v1/sandboxes/${sb.id}/pause`, { memory: false })).body, { state: 'paused', paused: { kind: 'stopped' } });
    t.same(await server.reaper.archiveStopped(), [], 'not stopped long enough yet');
    await new Promise((r) => setTimeout(r, 1100));
    const archived = await Promise.all([server.reaper.archiveStopped(), other.server.reaper.archiveStopped()]);
    t.same(archived.flat(), [sb.id], 'archived once, by one master');
    const view = (await call('GET', `/v1/sandboxes/${sb.id}`)).body;
    t.match(view, { state: 'paused', paused: { kind: 'archived' }, host: '' });
    t.ok(view.paused.remainingSeconds > 500, 'its time left is kept');
    t.notOk(dockerExists('container', row.containerId), 'its container is gone from the host');
    t.notOk(dockerExists('volume', row.volume), 'and its workspace volume');
    t.equal(await rc.hget(k.containers(host.hostId), sb.id), null, 'and its row');
    t.equal(await rc.zscore(k.load, host.hostId), '0', 'its slot is free');
    const snaps = ((await call('GET', '/v1/snapshots')).body.snapshots as Snap[]).filter((s) => s.sandboxId === sb.id);
    t.same(snaps.map((s) => s.kind), ['archive'], 'its workspace is an archive snapshot');
    t.equal((await call('POST', `/v1/sandboxes/${sb.id}/snapshots`)).status, 409, 'an archived sandbox has no workspace to snapshot but its archive');

    const [r1, r2] = await Promise.all([call('POST', `/v1/sandboxes/${sb.id}/resume`), other.call('POST', `/v1/sandboxes/${sb.id}/resume`)]);
    const ok = [r1, r2].filter((r) => r.status === 200);
    t.ok(ok.length >= 1, `one resume restored it (${r1.status} ${r1.body.code ?? ''}, ${r2.status} ${r2.body.code ?? ''})`);
    for (const r of [r1, r2]) t.ok(r.status === 200 || (r.status === 409 && r.body.code === 'SANDBOX_BUSY'), 'the other is a no-op or told it is busy');
    const back = (await call('GET', `/v1/sandboxes/${sb.id}`)).body;
    t.match(back, { state: 'running', host: host.hostId, publicPreviews: true });
    t.equal(JSON.parse((await rc.hget(k.containers(host.hostId), sb.id))!).publicPreviews, true, 'restored from its archive, its previews are public still');
    t.equal((await host.server.runtime.list()).filter((c) => c.state === 'running').length, 1, 'one container runs for it');
    const b = await connectWorker(t, `ws://127.0.0.1:${back.port}/`, sb.token);
    t.equal((await b.runToEnd({ command: 'node', args: ['/workspace/app.js'] })).stdout, 'archived and back\n', 'its files are back');
    await b.close();
    t.equal((await call('DELETE', `/v1/sandboxes/${sb.id}`)).status, 200);
    t.same(readdirSync(dir), [], 'its archive went with it');
    t.equal(await rc.zscore(k.load, host.hostId), '0');
  });
}
