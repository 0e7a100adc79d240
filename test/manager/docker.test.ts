import { randomBytes } from 'node:crypto';
import t from 'tap';
import { createRedis } from '../../src/redis/connection.js';
import { hostKeys } from '../../src/redis/keys.js';
import { dockerExists, dockerInspect, requireDocker, releaseWorkspaceImages } from '../helpers/docker.js';
import { startManager } from '../helpers/manager.js';
import { waitFor } from '../helpers/ports.js';
import { TestRedis } from '../helpers/redis.js';
import { connectWorker } from '../helpers/worker-client.js';

const IMAGES = ['omega/sandbox-python:latest', 'omega/sandbox-node:latest'];
if (requireDocker(t, IMAGES)) {
  const redis = await TestRedis.create();
  t.teardown(() => redis.destroy());
  const token = () => randomBytes(18).toString('base64url');
  const newId = () => `t${randomBytes(8).toString('hex')}`;

  t.test('a sandbox through the manager API: files, live sync, terminal, runs, limits, delete', async (t) => {
    const m = await startManager(t, redis);
    const id = newId();
    const tok = token();
    const created = await m.call('POST', '/v1/sandboxes', { id, template: 'python', token: tok });
    t.equal(created.status, 201, JSON.stringify(created.body));
    const info = created.body;
    t.match(info, { id, template: 'python', host: '127.0.0.1', source: 'cold', volume: `omega-ws-${id}` });
    const url = `ws://127.0.0.1:${info.hostPort}/`;

    await t.rejects(connectWorker(t, url, null), { message: 'upgrade refused: 401' }, 'no token: upgrade refused');
    await t.rejects(connectWorker(t, url, `${tok}x`), { message: 'upgrade refused: 401' }, 'wrong token: upgrade refused');

    const a = await connectWorker(t, url, tok);
    const b = await connectWorker(t, url, tok);
    await a.call('fs.write', { path: 'src/hello.py', content: 'print("hello from python", 6 * 7)\n' });
    const change = await b.waitEvent('fs.changed', (d) => /hello\.py$/.test(d.path), 10_000);
    t.ok(change, 'the second client sees the first one\'s write');
    t.equal((await b.call('fs.read', { path: 'src/hello.py' })).content, 'print("hello from python", 6 * 7)\n');

    t.equal(await a.code('fs.read', { path: '../etc/passwd' }), 'PATH_OUTSIDE_WORKSPACE', 'a path escape is refused');
    t.equal(await a.code('fs.read', { path: '/etc/passwd' }), 'PATH_OUTSIDE_WORKSPACE', 'an absolute path is refused');
    await a.call('proc.run', { command: 'ln', args: ['-s', '/etc', 'etc-link'] });
    await b.waitEvent('fs.changed', (d) => d.path === 'etc-link', 10_000);
    t.equal(await a.code('fs.read', { path: 'etc-link/passwd' }), 'PATH_OUTSIDE_WORKSPACE', 'a symlink out of the workspace is refused');

    const py = await a.runToEnd({ command: 'python3', args: ['src/hello.py'] });
    t.equal(py.stdout.trim(), 'hello from python 42');
    t.equal(py.exit.exitCode, 0);
    const who = await a.runToEnd({ command: 'sh', args: ['-c', 'id -u; id -g; id -G; stat -c %u:%g src src/hello.py; grep CapEff /proc/self/status'] });
    t.equal(who.stdout, '1000\n1000\n1000\n1000:1000\n1000:1000\nCapEff:\t0000000000000000\n', 'user code is uid 1000 with no capabilities, and owns what the IDE wrote');
    const snippet = await a.runToEnd({ language: 'python', code: 'import sys; print(sys.version_info[0]); sys.exit(3)' });
    t.equal(snippet.stdout.trim(), '3');
    t.equal(snippet.exit.exitCode, 3);

    const { termId } = await a.call('term.open', { cols: 80, rows: 24 });
    await a.call('term.input', { termId, data: 'echo "term-$((6*7))"\r' });
    await a.waitEvent('term.output', (d) => d.termId === termId && /term-42/.test(a.output('term.output', termId)), 10_000);
    t.pass('the terminal echoes');

    const c = dockerInspect(info.containerId);
    t.equal(c.HostConfig.Memory, 256 * 1024 * 1024, 'memory limit');
    t.equal(c.HostConfig.NanoCpus, 0.5e9, 'cpu limit');
    t.equal(c.HostConfig.PidsLimit, 128, 'pids limit');
    t.equal(c.HostConfig.ReadonlyRootfs, true, 'read-only root');
    t.same(c.HostConfig.CapDrop, ['ALL'], 'all capabilities dropped');
    t.ok(c.HostConfig.SecurityOpt.includes('no-new-privileges'), 'no-new-privileges');
    t.equal(c.Config.User, '0:0', 'the agent is root in its container, with a few capabilities; user code is not (attacks.test)');
    t.same(c.HostConfig.CapAdd, ['CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'SETUID', 'SETGID', 'KILL'], 'the agent\'s capabilities');
    t.same(c.HostConfig.Ulimits, [{ Name: 'nofile', Soft: 4096, Hard: 4096 }], 'open files per process');
    t.match(c.HostConfig.Tmpfs['/tmp'], /size=/, 'tmpfs /tmp');
    t.equal(c.Config.Labels['omega.sandbox'], id);
    t.equal(c.Config.Labels['omega.managed'], 'true');
    t.notOk(JSON.stringify(c.Config.Env).includes(tok), 'the sandbox token is not in the container config');

    const listed = await m.call('GET', '/v1/sandboxes');
    t.same(listed.body.sandboxes.map((s: { id: string; state: string }) => [s.id, s.state]), [[id, 'running']]);
    const rc = createRedis(redis.url);
    t.teardown(() => rc.disconnect());
    t.match(JSON.parse((await rc.hget(hostKeys(m.prefix).containers(m.hostId), id))!), { containerId: info.containerId, state: 'running', source: 'cold' }, 'in the host\'s container table');
    t.equal(await rc.zscore(hostKeys(m.prefix).load, m.hostId), null, 'the load is the master\'s to write');
    t.equal(await rc.hget(hostKeys(m.prefix).host(m.hostId), 'managerUrl'), m.server.apiUrl, 'registered with the port it really listens on');

    await a.close();
    await b.close();
    const del = await m.call('DELETE', `/v1/sandboxes/${id}`);
    t.same(del.body, { id, deleted: true });
    t.notOk(dockerExists('container', info.containerId), 'container removed');
    t.notOk(dockerExists('volume', info.volume), 'volume removed');
    t.equal(await rc.hget(hostKeys(m.prefix).containers(m.hostId), id), null, 'its row is gone');
    t.same((await m.call('DELETE', `/v1/sandboxes/${id}`)).body, { id, deleted: false }, 'delete is idempotent');
  });

  t.test('a node sandbox runs node; a kept volume survives the delete', async (t) => {
    const m = await startManager(t, redis);
    const id = newId();
    const tok = token();
    const info = (await m.call('POST', '/v1/sandboxes', { id, template: 'node', token: tok })).body;
    const a = await connectWorker(t, `ws://127.0.0.1:${info.hostPort}/`, tok);
    const r = await a.runToEnd({ language: 'node', code: 'console.log([1,2,3].map(x => x * 2).join(","))' });
    t.equal(r.stdout.trim(), '2,4,6');
    await a.close();
    await m.call('DELETE', `/v1/sandboxes/${id}?keepVolume=true`);
    t.notOk(dockerExists('container', info.containerId));
    t.ok(dockerExists('volume', info.volume), 'kept on request');
    const { execFileSync } = await import('node:child_process');
    execFileSync('docker', ['volume', 'rm', info.volume]);
    releaseWorkspaceImages(m.hostId);
  });

  t.test('a warm pool serves a create by claiming a running container', async (t) => {
    const m = await startManager(t, redis, { OMEGA_POOL_SIZE: 'python=1,node=0' });
    await waitFor('pool warm', () => m.server.pool.stats().python!.ready === 1, 60_000, 100);
    const id = newId();
    const tok = token();
    const created = await m.call('POST', '/v1/sandboxes', { id, template: 'python', token: tok });
    t.equal(created.status, 201);
    t.equal(created.body.source, 'pool');
    const a = await connectWorker(t, `ws://127.0.0.1:${created.body.hostPort}/`, tok);
    t.equal((await a.runToEnd({ language: 'python', code: 'print("warm")' })).stdout.trim(), 'warm');
    await a.close();
    await waitFor('pool refilled', () => m.server.pool.stats().python!.ready === 1, 60_000, 100);
    t.pass('the pool refills in the background');
    await m.call('DELETE', `/v1/sandboxes/${id}`);
    await m.server.stop();
    const left = (await m.server.runtime.list()).length;
    t.equal(left, 0, 'stopping the manager removes its warm containers');
  });

  t.test('a manager stopped while its pool is still starting leaves no container', async (t) => {
    const m = await startManager(t, redis, { OMEGA_POOL_SIZE: 'python=2,node=0' });
    t.equal(m.server.pool.stats().python!.starting, 2, 'stopping mid-fill');
    await m.server.stop();
    t.equal(m.server.pool.stats().python!.starting, 0, 'stop waits for the starts in flight (the process may exit right after)');
    t.equal((await m.server.runtime.list()).length, 0, 'and removes what they started');
  });

  t.test('reconcile: an orphan is reaped, a restart keeps what the master places here, a sandbox gone from Redis is removed', async (t) => {
    const env = { OMEGA_ORPHAN_GRACE_MS: '0', OMEGA_RECONCILE_INTERVAL_MS: '600000' };
    const m1 = await startManager(t, redis, env);
    const keys = hostKeys(m1.prefix);
    const rc = createRedis(redis.url);
    t.teardown(() => rc.disconnect());
    const id = newId();
    const tok = token();
    const info = (await m1.call('POST', '/v1/sandboxes', { id, template: 'python', token: tok })).body;
    // What the master's record would say: this sandbox runs on this host.
    await rc.hset(keys.sandbox(id), { state: 'running', host: m1.hostId });

    // An orphan: an Omega container of this host that no sandbox owns.
    const orphan = await m1.server.sandboxes.startContainer('python', { sandbox: 'orphan-x' });
    // A volume of Omega's no container refers to (a manager killed between the two).
    const stray = `omega-ws-stray-${randomBytes(3).toString('hex')}`;
    await m1.server.runtime.docker.createVolume({ Name: stray, Labels: { 'omega.managed': 'true', 'omega.host': m1.hostId } });
    const report = await m1.server.reconciler.run();
    t.ok(report.removed.includes('omega-orphan-x'), 'orphan removed');
    t.notOk(dockerExists('container', orphan.containerId));
    t.notOk(dockerExists('volume', orphan.volume));
    t.same(report.volumes, [stray], 'the stray volume removed');
    t.notOk(dockerExists('volume', stray));
    t.ok(dockerExists('container', info.containerId), 'the owned sandbox is untouched');

    // A restart: the manager goes, its sandbox stays.
    await m1.server.stop();
    t.ok(dockerExists('container', info.containerId), 'sandboxes outlive their manager');
    const m2 = await startManager(t, redis, { ...env, OMEGA_REDIS_PREFIX: m1.prefix, OMEGA_HOST_ID: m1.hostId });
    t.same((await m2.call('GET', '/v1/sandboxes')).body.sandboxes.map((s: { id: string }) => s.id), [id]);
    t.ok(dockerExists('container', info.containerId), 'kept by the restarted manager');

    // The sandbox vanishes from Redis (say, the master expired it while this host was away).
    await rc.del(keys.sandbox(id));
    await m2.server.reconciler.run();
    t.notOk(dockerExists('container', info.containerId), 'its container is removed');
    t.notOk(dockerExists('volume', info.volume), 'and its volume');
    t.equal(await rc.hget(keys.containers(m1.hostId), id), null, 'and its row');
  });
}
