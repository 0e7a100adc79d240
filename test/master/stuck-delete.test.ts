// A BUG, shown (these tests fail until it is fixed): a delete step that
// fails because the manager was killed leaves the sandbox `deleting`, owned
// by a master that is alive, and no reconciler takes it for DELETE_STUCK_MS
// (60 s, master/reconciler.ts), though that master is doing nothing with it
// any more: its container runs on (the restarted manager keeps it: the
// record still wants it) and its slot stays counted. It comes from the
// undo of a create whose manager was killed mid-start (the master's delete
// to the manager is refused) and from a DELETE sent while the manager is
// down. bench/chaos shows it as a heal time of about a minute whenever a
// manager, but not the master, was killed during a burst.
import t, { type Test } from 'tap';
import { createRedis } from '../../src/redis/connection.js';
import { hostKeys } from '../../src/redis/keys.js';
import { startDns } from '../helpers/dns.js';
import { requireDocker } from '../helpers/docker.js';
import { startMaster } from '../helpers/master.js';
import { managerProgram } from '../helpers/omega-programs.js';
import { sleep, waitFor } from '../helpers/ports.js';
import { TestRedis } from '../helpers/redis.js';
import { dockerState, leftovers, sweepDocker, type Scope } from '../helpers/whole.js';

const PERIOD_MS = 1000;
/** What the master allows a manager for a create here: the longest legitimate one. */
const CREATE_TIMEOUT_MS = 5000;

if (requireDocker(t, ['omega/sandbox-python:latest'])) {
  const redis = await TestRedis.create();
  t.teardown(() => redis.destroy());
  const rc = createRedis(redis.url);
  t.teardown(() => rc.disconnect());

  async function setUp(t: Test, name: string) {
    const dns = await startDns(t, redis);
    const hostId = `stuck-${name}-${dns.prefix}`;
    // A heartbeat TTL the restart fits in: the host is never lost here.
    const manager = await managerProgram(t, redis, dns, hostId, { OMEGA_POOL_SIZE: '0', OMEGA_HEARTBEAT_TTL_MS: '30000', OMEGA_RECONCILE_INTERVAL_MS: String(PERIOD_MS) });
    t.teardown(() => sweepDocker([hostId]));
    manager.program.start();
    await manager.ready();
    const { server, call } = await startMaster(t, redis, dns, { OMEGA_TEMPLATES: 'python', OMEGA_RECONCILE_INTERVAL_MS: '600000', OMEGA_CREATE_TIMEOUT_MS: String(CREATE_TIMEOUT_MS) });
    const scope: Scope = { prefix: dns.prefix, zone: 'sandbox.test', dnsPort: dns.port, api: call, hosts: [{ hostId, address: '127.0.0.1' }] };
    /** The master's reconciler, once a period, until nothing is left or the bound passes; what is left then. */
    const heal = async () => {
      const end = Date.now() + PERIOD_MS + CREATE_TIMEOUT_MS + 5000;
      let left = await leftovers(scope, rc, 0);
      while (left.length && Date.now() < end) {
        await server.reconciler.run();
        await sleep(PERIOD_MS);
        left = await leftovers(scope, rc, 0);
      }
      return left;
    };
    return { hostId, manager, call, heal, k: hostKeys(dns.prefix) };
  }

  t.test('a create whose manager is killed during the start: the reconciler finishes it within its period and the longest create', async (t) => {
    const { hostId, manager, call, heal, k } = await setUp(t, 'create');
    const answer = call('POST', '/v1/sandboxes', { template: 'python' });
    // The cold start's container exists: the manager is mid-create.
    await waitFor('the container', async () => (await dockerState([hostId])).containers.length > 0, 20_000, 25);
    await manager.program.kill();
    const res = await answer;
    t.not(res.status, 201, `the create is not answered 201 (${res.status} ${res.body.code})`);
    const [id] = await rc.zrange(k.sandboxes, '0', '-1');
    t.match(await rc.hgetall(k.sandbox(id!)), { state: 'deleting' }, 'its undo could not reach the manager');
    await manager.ready();

    t.same(await heal(), [], 'nothing left: no record, count, container or volume');
  });

  t.test('a delete sent while the manager is down: the reconciler finishes it once the manager is back', async (t) => {
    const { manager, call, heal, k } = await setUp(t, 'delete');
    const a = (await call('POST', '/v1/sandboxes', { template: 'python' })).body;
    t.equal(a.state, 'running');
    await manager.program.kill({ restart: false });
    const res = await call('DELETE', `/v1/sandboxes/${a.id}`);
    t.not(res.status, 200, `the delete fails (${res.status} ${res.body.code})`);
    t.match(await rc.hgetall(k.sandbox(a.id)), { state: 'deleting' });
    manager.program.start();
    await manager.ready();

    t.same(await heal(), [], 'nothing left: no record, count, container or volume');
  });
}
