// Pause and resume through the master, against real Redis, the DNS server, a
// manager and Docker: frozen with memory (processes go on where they were)
// or stopped (files kept, processes fresh, the same token claimed again);
// the time limit suspended meanwhile; one state when pause, resume and
// delete race from two masters.
import t from 'tap';
import { createRedis } from '../../src/redis/connection.js';
import { hostKeys } from '../../src/redis/keys.js';
import { startDns } from '../helpers/dns.js';
import { dockerInspect, removeHostContainers, requireDocker } from '../helpers/docker.js';
import { startManager } from '../helpers/manager.js';
import { startMaster } from '../helpers/master.js';
import { sleep } from '../helpers/ports.js';
import { TestRedis } from '../helpers/redis.js';
import { connectWorker } from '../helpers/worker-client.js';

if (requireDocker(t, ['omega/sandbox-node:latest'])) {
  const redis = await TestRedis.create();
  t.teardown(() => redis.destroy());
  const dns = await startDns(t, redis);
  const m = await startManager(t, redis, { OMEGA_REDIS_PREFIX: dns.prefix, OMEGA_TEMPLATES: 'node' });
  // What a failing test leaves (its deletes not reached), removed all the same.
  t.teardown(() => removeHostContainers(m.hostId));
  const { call, server } = await startMaster(t, redis, dns, { OMEGA_TEMPLATES: 'node' });
  const other = await startMaster(t, redis, dns, { OMEGA_TEMPLATES: 'node' });
  const rc = createRedis(redis.url);
  t.teardown(() => rc.disconnect());
  const k = hostKeys(dns.prefix);
  const ws = (sb: { hostPort?: number; port: number }) => `ws://127.0.0.1:${sb.port}/`;

  t.test('paused with memory: frozen, its time suspended; resumed: the same program goes on', async (t) => {
    const res = await call('POST', '/v1/sandboxes', { template: 'node', timeoutSeconds: 600 });
    t.equal(res.status, 201, JSON.stringify(res.body));
    const sb = res.body;
    const c = await connectWorker(t, ws(sb), sb.token);
    await c.call('fs.write', { path: 'notes.txt', content: 'kept\n' });
    // A program that counts; frozen, it must not count on.
    const { procId } = await c.call('proc.run', { command: 'node', args: ['-e', 'let n = 0; setInterval(() => console.log(++n), 100)'] });
    await c.waitEvent('proc.stdout', (d) => d.procId === procId && /\b5\b/.test(c.output('proc.stdout', procId)), 10_000);
    await c.close();

    const paused = await call('POST', `/v1/sandboxes/${sb.id}/pause`, {});
    t.equal(paused.status, 200, JSON.stringify(paused.body));
    t.equal(paused.body.state, 'paused');
    t.equal(paused.body.paused.kind, 'memory');
    t.ok(paused.body.paused.remainingSeconds > 590 && paused.body.paused.remainingSeconds <= 600, `its time left is kept (${paused.body.paused.remainingSeconds} s)`);
    t.equal(dockerInspect(sb.containerId ?? (await server.store.get(sb.id))!.containerId!).State.Status, 'paused', 'the container is frozen');
    t.equal(await rc.zscore(k.expiry, sb.id), null, 'out of the expiry index: a paused sandbox does not expire');
    t.equal((await call('POST', `/v1/sandboxes/${sb.id}/pause`, {})).body.state, 'paused', 'pausing again is a no-op');
    t.same((await call('GET', '/v1/sandboxes?state=paused')).body.sandboxes.map((s: { id: string }) => s.id), [sb.id], 'the list filters on paused');
    await sleep(1500);

    const t0 = performance.now();
    const resumed = await call('POST', `/v1/sandboxes/${sb.id}/resume`);
    t.comment(`resume of a frozen sandbox: ${(performance.now() - t0).toFixed(1)} ms through the master`);
    t.equal(resumed.status, 200, JSON.stringify(resumed.body));
    t.equal(resumed.body.state, 'running');
    t.ok(Date.parse(resumed.body.expiresAt) - Date.now() > 585_000, 'the time it had left is its time again');
    t.ok(await rc.zscore(k.expiry, sb.id), 'back in the expiry index');
    const again = await connectWorker(t, ws(resumed.body), sb.token);
    const att = await again.call('proc.attach', { procId });
    t.equal(att.exit, null, 'the program still runs');
    const before = Number(att.output.map((o: { data: string }) => o.data).join('').trim().split('\n').pop());
    await again.waitEvent('proc.stdout', () => true, 5000);
    const text = again.output('proc.stdout', procId).trim().split('\n');
    t.equal(Number(text[0]), before + 1, `it counts on from where it was frozen (${before} -> ${text[0]}): no count was made while paused`);
    t.equal((await again.call('fs.read', { path: 'notes.txt' })).content, 'kept\n', 'files intact');
    t.equal((await call('POST', `/v1/sandboxes/${sb.id}/resume`)).body.state, 'running', 'resuming a running one is a no-op');
    await again.close();
    t.same((await call('DELETE', `/v1/sandboxes/${sb.id}`)).body, { id: sb.id, deleted: true });
    t.equal((await call('POST', `/v1/sandboxes/${sb.id}/resume`)).status, 404, 'resuming a deleted sandbox is 404');
  });

  t.test('paused without memory: stopped, the workspace kept; resumed with the same token, programs fresh', async (t) => {
    const res = await call('POST', '/v1/sandboxes', { template: 'node' });
    t.equal(res.status, 201, JSON.stringify(res.body));
    const sb = res.body;
    const c = await connectWorker(t, ws(sb), sb.token);
    await c.call('fs.write', { path: 'src/app.js', content: 'console.log("still here")\n' });
    await c.call('proc.run', { command: 'sleep', args: ['600'] });
    await c.close();
    const paused = await call('POST', `/v1/sandboxes/${sb.id}/pause`, { memory: false });
    t.equal(paused.status, 200, JSON.stringify(paused.body));
    t.equal(paused.body.paused.kind, 'stopped');
    const containerId = (await server.store.get(sb.id))!.containerId!;
    t.equal(dockerInspect(containerId).State.Status, 'exited', 'the container is stopped, not removed');
    await sleep(500);
    t.equal((await server.store.get(sb.id))!.state, 'paused', 'its stop is not taken for a crash (the sandbox is not lost)');

    const resumed = await other.call('POST', `/v1/sandboxes/${sb.id}/resume`);
    t.equal(resumed.status, 200, JSON.stringify(resumed.body));
    t.equal(resumed.body.state, 'running');
    const again = await connectWorker(t, ws(resumed.body), sb.token);
    t.equal((await again.runToEnd({ command: 'node', args: ['src/app.js'] })).stdout.trim(), 'still here', 'the same token opens it; its files are there');
    t.same((await again.call('proc.list', {})).processes.filter((p: { exit: unknown }) => !p.exit).length, 0, 'programs start fresh');
    await again.close();
    t.same((await call('DELETE', `/v1/sandboxes/${sb.id}`)).body, { id: sb.id, deleted: true });
  });

  t.test('autoResume without the ingress (TLS off): a connection to its port wakes it, frozen or stopped, at the same port', async (t) => {
    const sb = (await call('POST', '/v1/sandboxes', { template: 'node', autoResume: true })).body;
    const row = JSON.parse((await rc.hget(k.containers(m.hostId), sb.id))!);
    t.ok(row.directPort && row.directPort === sb.port && row.directPort !== row.hostPort, 'reached at the manager\'s own port, not Docker\'s');
    const c = await connectWorker(t, ws(sb), sb.token);
    await c.call('fs.write', { path: 'woken.txt', content: 'yes\n' });
    await c.close();
    for (const memory of [true, false]) {
      t.equal((await call('POST', `/v1/sandboxes/${sb.id}/pause`, { memory })).body.state, 'paused');
      const t0 = Date.now();
      const woken = await connectWorker(t, ws(sb), sb.token);
      const ms = Date.now() - t0;
      t.equal((await woken.runToEnd({ command: 'cat', args: ['woken.txt'] })).stdout, 'yes\n', `${memory ? 'frozen' : 'stopped'}: the connection is served once it runs (${ms} ms)`);
      await woken.close();
      const now = (await call('GET', `/v1/sandboxes/${sb.id}`)).body;
      t.match(now, { state: 'running', port: sb.port }, 'running again, at the same port');
    }
    const plain = (await call('POST', '/v1/sandboxes', { template: 'node' })).body;
    await call('POST', `/v1/sandboxes/${plain.id}/pause`, { memory: false });
    await t.rejects(connectWorker(null, ws(plain), plain.token), 'one without autoResume stays paused (its port is gone with its container)');
    t.equal((await call('GET', `/v1/sandboxes/${plain.id}`)).body.state, 'paused');
    for (const id of [sb.id, plain.id]) t.equal((await call('DELETE', `/v1/sandboxes/${id}`)).status, 200);
    await t.rejects(connectWorker(null, ws(sb), sb.token), 'its port is closed with it');
  });

  t.test('onTimeout and onIdle: pause: its time or idleness pauses it, resumed it has its whole lifetime again; frozen too long, it is stopped', async (t) => {
    const res = await call('POST', '/v1/sandboxes', { template: 'node', timeoutSeconds: 300, idleSeconds: 3600, onTimeout: 'pause', onIdle: 'pause' });
    t.equal(res.status, 201, JSON.stringify(res.body));
    t.match(res.body, { onTimeout: 'pause', onIdle: 'pause' });
    const id = res.body.id;
    // Its time is up (as the reaper would find it a few minutes from now).
    await rc.hset(k.sandbox(id), 'expiresAtMs', String(Date.now() - 1));
    await rc.zadd(k.expiry, Date.now() - 1, id);
    t.same(await server.reaper.reapExpired(), [id]);
    const paused = (await call('GET', `/v1/sandboxes/${id}`)).body;
    t.equal(paused.state, 'paused', 'paused, not deleted');
    t.equal(paused.paused.kind, 'memory');
    t.equal(paused.paused.remainingSeconds, 300, 'resumed, it has its whole lifetime again');
    // Frozen for longer than OMEGA_FROZEN_SECONDS: the reaper stops it.
    await rc.zadd(k.frozen, Date.now() - 7_200_000, id);
    t.same(await server.reaper.stopFrozen(), [id]);
    const stopped = (await call('GET', `/v1/sandboxes/${id}`)).body;
    t.equal(stopped.paused.kind, 'stopped', 'stopped after being frozen too long');
    t.equal(dockerInspect((await server.store.get(id))!.containerId!).State.Status, 'exited');
    t.equal(await rc.zscore(k.frozen, id), null, 'no longer frozen');
    t.same(await server.reaper.stopFrozen(), [], 'nothing more to stop');
    const resumed = await call('POST', `/v1/sandboxes/${id}/resume`);
    t.equal(resumed.body.state, 'running');
    t.ok(Math.abs(Date.parse(resumed.body.expiresAt) - Date.now() - 300_000) < 5000, 'its lifetime starts again');
    t.same((await call('DELETE', `/v1/sandboxes/${id}`)).body, { id, deleted: true });
    t.equal(await rc.zscore(k.frozen, id), null);
  });

  t.test('pause, resume and delete raced from two masters leave one state and nothing behind', async (t) => {
    for (let round = 0; round < 4; round++) {
      const res = await call('POST', '/v1/sandboxes', { template: 'node' });
      t.equal(res.status, 201);
      const id = res.body.id;
      if (round % 2) await call('POST', `/v1/sandboxes/${id}/pause`, {});
      const ops = [
        call('POST', `/v1/sandboxes/${id}/pause`, {}),
        other.call('POST', `/v1/sandboxes/${id}/resume`),
        other.call('POST', `/v1/sandboxes/${id}/pause`, { memory: false }),
        round >= 2 ? call('DELETE', `/v1/sandboxes/${id}`) : call('GET', `/v1/sandboxes/${id}`),
      ];
      const answers = await Promise.all(ops);
      for (const a of answers) t.ok([200, 404, 409].includes(a.status), `each answered 200, 404 or 409 (${a.status} ${a.body.code ?? a.body.state ?? ''})`);
      const rec = await server.store.get(id);
      if (round >= 2) {
        t.equal(rec, null, `round ${round}: deleted`);
      } else {
        t.ok(rec && ['running', 'paused'].includes(rec.state), `round ${round}: one settled state (${rec?.state})`);
        const entry = JSON.parse((await rc.hget(k.containers(m.hostId), id))!);
        const engine = dockerInspect(rec!.containerId!).State.Status;
        const agree = rec!.state === 'running' ? engine === 'running' && entry.state === 'running' : ['paused', 'exited'].includes(engine) && ['paused', 'stopped'].includes(entry.state);
        t.ok(agree, `the master (${rec!.state}), the manager (${entry.state}) and the engine (${engine}) agree`);
        await call('DELETE', `/v1/sandboxes/${id}`);
      }
    }
    t.equal((await m.server.runtime.list()).length, 0, 'no container left');
    t.equal(await rc.zscore(k.load, m.hostId), '0', 'no slot held');
  });
}
