// A manager process killed with SIGKILL (a real `omega manager` child
// process, restarted as systemd would), against a real Redis, DNS server,
// master and Docker. Back within its heartbeat TTL, nothing is lost and the
// warm container of its previous life is removed; back after it, its
// sandboxes are lost (names gone, load 0) and it removes their containers,
// keeping the workspaces until they are deleted. Either way the state is
// whole again without a person, and nothing is left after deleting.
import t, { type Test } from 'tap';
import { createRedis } from '../../src/redis/connection.js';
import { hostKeys } from '../../src/redis/keys.js';
import { dig, startDns } from '../helpers/dns.js';
import { dockerExists, requireDocker } from '../helpers/docker.js';
import { startMaster } from '../helpers/master.js';
import { managerProgram } from '../helpers/omega-programs.js';
import { waitFor } from '../helpers/ports.js';
import { TestRedis } from '../helpers/redis.js';
import { leftovers, lookAtState, sweepDocker, type Scope } from '../helpers/whole.js';

/** Reconcile periods here, and the longest a create may legitimately take (a cold start on a busy machine). */
const PERIOD_MS = 1000;
const LONGEST_CREATE_MS = 10_000;
/** A warm container of the manager's previous life is removed this long after it started. */
const GRACE_MS = 5000;

if (requireDocker(t, ['omega/sandbox-python:latest'])) {
  const redis = await TestRedis.create();
  t.teardown(() => redis.destroy());
  const rc = createRedis(redis.url);
  t.teardown(() => rc.disconnect());

  async function setUp(t: Test, name: string, managerEnv: Record<string, string>) {
    const dns = await startDns(t, redis);
    const hostId = `crash-${name}-${dns.prefix}`;
    const manager = await managerProgram(t, redis, dns, hostId, {
      OMEGA_POOL_SIZE: '1',
      OMEGA_HEARTBEAT_INTERVAL_MS: '500',
      // Longer than a warm container waits here before its claim (a pass during a claim removes an older one: test/manager/claim-race).
      OMEGA_ORPHAN_GRACE_MS: String(GRACE_MS),
      OMEGA_RECONCILE_INTERVAL_MS: String(PERIOD_MS),
      ...managerEnv,
    });
    t.teardown(() => sweepDocker([hostId]));
    manager.program.start();
    await manager.ready();
    await waitFor('the warm pool', async () => ((await (await fetch(`${manager.url}/healthz`)).json()) as { pool: Record<string, { ready: number }> }).pool.python?.ready === 1, 30_000, 100);
    const { server, call } = await startMaster(t, redis, dns, { OMEGA_TEMPLATES: 'python', OMEGA_RECONCILE_INTERVAL_MS: String(PERIOD_MS), OMEGA_REAP_INTERVAL_MS: '250' });
    const scope: Scope = { prefix: dns.prefix, zone: 'sandbox.test', dnsPort: dns.port, api: call, hosts: [{ hostId, address: '127.0.0.1' }] };
    const whole = async () => (await lookAtState(scope, rc, 1)).problems;
    return { dns, hostId, manager, server, call, scope, whole, k: hostKeys(dns.prefix) };
  }

  t.test('killed and back within its heartbeat TTL: nothing lost, its previous warm container removed', async (t) => {
    const { hostId, manager, call, scope, whole, k } = await setUp(t, 'back', { OMEGA_HEARTBEAT_TTL_MS: '30000' });
    const a = (await call('POST', '/v1/sandboxes', { template: 'python' })).body;
    const b = (await call('POST', '/v1/sandboxes', { template: 'python' })).body;
    t.equal(a.source, 'pool');
    // b waited in turn for the pool's refill; the pool then starts another: the kill comes once that one is warm.
    const warm = async () => ((await (await fetch(`${manager.url}/healthz`)).json()) as { pool: Record<string, { ready: number; starting: number }> }).pool.python;
    await waitFor(
      'whole before the kill (the pool refilled)',
      async () => (await whole()).length === 0 && (await rc.hlen(k.containers(hostId))) === 2 && (await warm())?.ready === 1 && (await warm())?.starting === 0,
      30_000,
      200,
    );

    await manager.program.kill();
    await manager.ready();
    const t0 = Date.now();
    await waitFor('whole again', async () => (await whole()).length === 0, PERIOD_MS + LONGEST_CREATE_MS + GRACE_MS, 200);
    t.comment(`whole ${Date.now() - t0} ms after the restarted manager answered`);
    for (const s of [a, b]) t.match((await call('GET', `/v1/sandboxes/${s.id}`)).body, { state: 'running', port: s.port }, `${s.id} runs on`);
    t.equal(await rc.zscore(k.load, hostId), '2', 'the load is what runs');
    // Removed by the first pass that finds it past its grace (the state may be whole before).
    const removals = () => manager.program.lines.filter((l) => l.json?.msg === 'removing a container no sandbox or pool slot owns').length;
    await waitFor('the previous life\'s warm container removed', async () => removals() > 0 || null, PERIOD_MS + GRACE_MS + 5000, 100);
    t.equal(removals(), 1, 'the previous life\'s warm container was removed, once');

    for (const s of [a, b]) t.equal((await call('DELETE', `/v1/sandboxes/${s.id}`)).status, 200);
    await waitFor('nothing left', async () => (await leftovers(scope, rc, 1)).length === 0, 10_000, 200);
  });

  t.test('killed and away past its heartbeat TTL: its sandboxes lost, then their containers reaped and workspaces kept', async (t) => {
    const { hostId, manager, call, scope, whole, k } = await setUp(t, 'away', { OMEGA_HEARTBEAT_TTL_MS: '1500' });
    const a = (await call('POST', '/v1/sandboxes', { template: 'python' })).body;
    t.equal(a.state, 'running');
    const row = JSON.parse((await rc.hget(k.containers(hostId), a.id))!) as { containerId: string; volume: string };

    await manager.program.kill({ restart: false });
    await waitFor('lost', async () => (await call('GET', `/v1/sandboxes/${a.id}`)).body.state === 'lost', 10_000, 100);
    t.match((await call('GET', `/v1/sandboxes/${a.id}`)).body, { state: 'lost', lostReason: 'host lost' });
    await waitFor('its names removed', async () => (await dig(scope.dnsPort, [`${a.id}.sandbox.test`, 'A'])).status === 'NXDOMAIN', 5000, 100);
    t.equal(await rc.zscore(k.load, hostId), '0', 'the load is 0');
    t.ok(dockerExists('container', row.containerId), 'its container still runs while the manager is away');

    manager.program.start();
    await manager.ready();
    await waitFor('whole again', async () => (await whole()).length === 0 && !dockerExists('container', row.containerId), PERIOD_MS + LONGEST_CREATE_MS + GRACE_MS, 200);
    t.ok(dockerExists('volume', row.volume), 'the workspace is kept');
    t.match(JSON.parse((await rc.hget(k.containers(hostId), a.id))!), { state: 'removed' });

    t.equal((await call('DELETE', `/v1/sandboxes/${a.id}`)).status, 200);
    await waitFor('nothing left', async () => (await leftovers(scope, rc, 1)).length === 0, 10_000, 200);
    t.notOk(dockerExists('volume', row.volume), 'the workspace went with the delete');
  });
}
