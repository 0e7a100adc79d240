// Named workspaces through the master, against real Redis, the DNS server,
// two managers and Docker: a workspace outlives its sandbox, comes back on
// the host that holds it (preferred even when another is less loaded),
// moves with its latest files when that host is full, comes back from its
// latest snapshot when that host is gone, has one sandbox at a time (also
// when two masters race for it), and is deleted everywhere.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { createRedis } from '../../src/redis/connection.js';
import { hostKeys } from '../../src/redis/keys.js';
import { startDns } from '../helpers/dns.js';
import { dockerExists, removeHostContainers, requireDocker } from '../helpers/docker.js';
import { startManager } from '../helpers/manager.js';
import { startMaster } from '../helpers/master.js';
import { waitFor } from '../helpers/ports.js';
import { TestRedis } from '../helpers/redis.js';
import { connectWorker } from '../helpers/worker-client.js';

interface Ws {
  name: string;
  host: string | null;
  sandbox: string | null;
  snapshot: string | null;
  bytes: number | null;
}

if (requireDocker(t, ['omega/sandbox-node:latest'])) {
  const redis = await TestRedis.create();
  t.teardown(() => redis.destroy());
  const dir = mkdtempSync(join(tmpdir(), 'omega-workspaces-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const store = { OMEGA_SNAPSHOT_STORE: `file://${dir}` };
  const rc = createRedis(redis.url);
  t.teardown(() => rc.disconnect());

  t.test('a workspace outlives its sandbox, stays on its host, moves when that host is full, comes back from its snapshot when it is gone', async (t) => {
    const dns = await startDns(t, redis);
    const k = hostKeys(dns.prefix);
    const quick = { OMEGA_REDIS_PREFIX: dns.prefix, OMEGA_TEMPLATES: 'node', OMEGA_HEARTBEAT_INTERVAL_MS: '300', OMEGA_HEARTBEAT_TTL_MS: '1500', OMEGA_CAPACITY: '2', ...store };
    const hostA = await startManager(t, redis, quick);
    const hostB = await startManager(t, redis, quick);
    t.teardown(() => {
      removeHostContainers(hostA.hostId);
      removeHostContainers(hostB.hostId);
    });
    const { call } = await startMaster(t, redis, dns, { OMEGA_TEMPLATES: 'node', ...store });
    const other = await startMaster(t, redis, dns, { OMEGA_TEMPLATES: 'node', ...store });
    const workspaces = async () => (await call('GET', '/v1/workspaces')).body.workspaces as Ws[];
    const run = async (sb: { port: number; token: string }, script: string) => {
      const c = await connectWorker(t, `ws://127.0.0.1:${sb.port}/`, sb.token);
      const out = await c.runToEnd({ command: 'sh', args: ['-c', script] });
      await c.close();
      return out.stdout;
    };

    const first = await call('POST', '/v1/sandboxes', { template: 'node', workspace: 'proj' });
    t.equal(first.status, 201, JSON.stringify(first.body));
    t.equal(first.body.workspace, 'proj');
    const home = first.body.host === hostA.hostId ? hostA : hostB;
    const away = home === hostA ? hostB : hostA;
    t.equal(await run(first.body, 'echo one > /workspace/a.txt && cat /workspace/a.txt'), 'one\n');

    const second = await call('POST', '/v1/sandboxes', { template: 'node', workspace: 'proj' });
    t.equal(second.status, 409);
    t.match(second.body, { code: 'WORKSPACE_BUSY', message: new RegExp(first.body.id) });
    t.equal((await call('POST', '/v1/sandboxes', { template: 'python', workspace: 'fresh' })).status, 400, 'an unknown template is refused before anything is made');

    t.same((await call('DELETE', `/v1/sandboxes/${first.body.id}`)).body, { id: first.body.id, deleted: true });
    const kept = (await workspaces()).find((w) => w.name === 'proj')!;
    t.match(kept, { host: home.hostId, sandbox: null });
    t.ok(kept.bytes! > 0, `its size on its host (${kept.bytes} bytes)`);
    t.equal((await home.server.reconciler.run()).volumes.length, 0, 'its host\'s reconciler keeps the volume');

    // Its host made the busier one (load ties go to the same host, so a plain create lands there), and it still gets it: its files are there.
    const filler = await call('POST', '/v1/sandboxes', { template: 'node' });
    t.equal(filler.body.host, home.hostId, 'a plain create went to the workspace\'s host');
    const again = await call('POST', '/v1/sandboxes', { template: 'node', workspace: 'proj' });
    t.equal(again.status, 201, JSON.stringify(again.body));
    t.equal(again.body.host, home.hostId, 'back on the host that holds it, though the other is less loaded');
    t.equal(await run(again.body, 'cat /workspace/a.txt && echo two > /workspace/b.txt'), 'one\n');
    t.equal((await call('DELETE', `/v1/sandboxes/${again.body.id}`)).status, 200);

    // Its host full: the workspace moves, with the files it has now.
    const fillers = [filler.body.id];
    while (Number(await rc.zscore(k.load, home.hostId)) < 2) fillers.push((await call('POST', '/v1/sandboxes', { template: 'node' })).body.id);
    const moved = await call('POST', '/v1/sandboxes', { template: 'node', workspace: 'proj' });
    t.equal(moved.status, 201, JSON.stringify(moved.body));
    t.equal(moved.body.host, away.hostId, 'moved to the host with room');
    t.equal(await run(moved.body, 'cat /workspace/a.txt /workspace/b.txt && echo three > /workspace/c.txt'), 'one\ntwo\n', 'with its latest files');
    const there = (await workspaces()).find((w) => w.name === 'proj')!;
    t.match(there, { host: away.hostId, sandbox: moved.body.id });
    t.ok(there.snapshot, 'the move left a snapshot: its latest');
    await waitFor('the volume it left removed', () => !dockerExists('volume', `omega-wsn-${home.hostId}-proj`), 10_000, 50);
    for (const id of fillers) await call('DELETE', `/v1/sandboxes/${id}`);
    t.equal((await call('DELETE', `/v1/sandboxes/${moved.body.id}`)).status, 200);

    // Its host lost: the workspace comes back from its latest snapshot (the files written after it are what a lost host loses).
    await away.server.stop();
    await rc.hdel(k.host(away.hostId), 'stoppedAtMs');
    await rc.del(k.alive(away.hostId));
    const back = await call('POST', '/v1/sandboxes', { template: 'node', workspace: 'proj' });
    t.equal(back.status, 201, JSON.stringify(back.body));
    t.equal(back.body.host, home.hostId);
    t.equal(await run(back.body, 'ls /workspace | tr "\\n" " "'), 'a.txt b.txt ', 'as its latest snapshot had it');

    t.equal((await call('DELETE', '/v1/workspaces/proj')).status, 409, 'a workspace in use is not deleted');
    t.equal((await call('DELETE', `/v1/sandboxes/${back.body.id}`)).status, 200);

    // Two masters race for a new workspace (the one host left has room for both): one sandbox gets it.
    const race = await Promise.all([call('POST', '/v1/sandboxes', { template: 'node', workspace: 'race' }), other.call('POST', '/v1/sandboxes', { template: 'node', workspace: 'race' })]);
    t.same(race.map((r) => r.status).sort(), [201, 409], `one create has it (${race.map((r) => r.body.code ?? r.status).join(', ')})`);
    const winner = race.find((r) => r.status === 201)!.body;
    t.equal((await call('DELETE', `/v1/sandboxes/${winner.id}`)).status, 200);
    t.same((await call('DELETE', '/v1/workspaces/proj')).body, { name: 'proj', deleted: true });
    t.same((await call('DELETE', '/v1/workspaces/proj')).body, { name: 'proj', deleted: false }, 'idempotent');
    t.same((await call('DELETE', '/v1/workspaces/race')).body, { name: 'race', deleted: true });
    t.same(await workspaces(), [], 'none listed');
    t.notOk(dockerExists('volume', `omega-wsn-${home.hostId}-proj`), 'its volume is gone');
    t.notOk(dockerExists('volume', `omega-wsn-${home.hostId}-race`) || dockerExists('volume', `omega-wsn-${away.hostId}-race`), 'and the other\'s');
    t.same(readdirSync(dir), [], 'and its snapshots');
    t.equal(await rc.zscore(k.load, home.hostId), '0', 'no slot held');
    t.equal((await call('POST', '/v1/sandboxes', { template: 'node', workspace: 'Bad_Name' })).status, 400, 'a name that cannot name a volume is refused');
  });
}
