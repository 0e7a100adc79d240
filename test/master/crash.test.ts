// A master process killed with SIGKILL in the middle of creates and deletes,
// each stopped at a known step by a proxy in front of the manager (real
// Redis, DNS server, manager and Docker; the master a real `omega master`
// child process, so the kill is a real kill -9). Another master's reconciler
// heals it all without a person, within the dead master's liveness TTL plus
// its passes: nothing is creating or deleting, no record, container, row or
// name is left, the host's load is 0; a create that reaches the manager after
// all that is removed by the manager as no one's.
import t from 'tap';
import { createRedis } from '../../src/redis/connection.js';
import { hostKeys } from '../../src/redis/keys.js';
import { dig, startDns } from '../helpers/dns.js';
import { requireDocker } from '../helpers/docker.js';
import { Gate } from '../helpers/gate.js';
import { apiCaller } from '../helpers/http.js';
import { startManager } from '../helpers/manager.js';
import { API_TOKEN, startMaster } from '../helpers/master.js';
import { masterProgram } from '../helpers/omega-programs.js';
import { sleep, waitFor } from '../helpers/ports.js';
import { TestRedis } from '../helpers/redis.js';
import { dockerState, leftovers, lookAtState, sweepDocker } from '../helpers/whole.js';

/** The master's liveness key lapses this long after its last beat (master/server.ts). */
const MASTER_LIVENESS_TTL_MS = 6000;

if (requireDocker(t, ['omega/sandbox-python:latest'])) {
  const redis = await TestRedis.create();
  t.teardown(() => redis.destroy());

  t.test('a master killed at four steps of creates and deletes: another master\'s reconciler finishes them all', async (t) => {
    const dns = await startDns(t, redis);
    const m = await startManager(t, redis, {
      OMEGA_REDIS_PREFIX: dns.prefix,
      OMEGA_TEMPLATES: 'python',
      OMEGA_HEARTBEAT_INTERVAL_MS: '200',
      OMEGA_ORPHAN_GRACE_MS: '1000',
      OMEGA_RECONCILE_INTERVAL_MS: '600000',
    });
    // A manager's stop leaves sandboxes running: whatever a failed run leaves goes with the test.
    t.teardown(() => sweepDocker([m.hostId]));
    const rc = createRedis(redis.url);
    t.teardown(() => rc.disconnect());
    const k = hostKeys(dns.prefix);
    // The master reaches the manager through the gate: the host advertises the gate's address.
    const gate = await Gate.start(m.server.apiUrl);
    t.teardown(() => gate.close());
    m.server.registry.setManagerUrl(gate.url);
    await waitFor('the host to advertise the gate', async () => (await rc.hget(k.host(m.hostId), 'managerUrl')) === gate.url, 5000);

    const doomed = await masterProgram(t, redis, dns, { OMEGA_RECONCILE_INTERVAL_MS: '600000' });
    doomed.program.start();
    await doomed.ready();
    const call = apiCaller(doomed.url, API_TOKEN);

    const c = (await call('POST', '/v1/sandboxes', { template: 'python' })).body.id as string;
    const d = (await call('POST', '/v1/sandboxes', { template: 'python' })).body.id as string;
    t.ok(c && d, 'two sandboxes to delete');

    // A: the create reached the gate, not the manager. B: the manager started it, its answer is held.
    // C: the manager removed it, its answer is held. D: the delete reached the gate, not the manager.
    let posts = 0;
    gate.rule = (method, path) => {
      if (method === 'POST') return posts++ === 0 ? 'hold-request' : 'hold-response';
      if (method === 'DELETE') return path.endsWith(c) ? 'hold-response' : 'hold-request';
      return 'pass';
    };
    const answered = Promise.allSettled([
      call('POST', '/v1/sandboxes', { template: 'python' }),
      call('POST', '/v1/sandboxes', { template: 'python' }),
      call('DELETE', `/v1/sandboxes/${c}`),
      call('DELETE', `/v1/sandboxes/${d}`),
    ]);
    const held = await gate.whenHeld(4);
    const lateCreate = held.find((h) => h.method === 'POST' && h.held === 'request')!;
    t.ok(lateCreate, 'a create held before the manager');
    await doomed.program.kill({ restart: false });
    const answers = await answered;
    t.ok(answers.every((a) => a.status === 'rejected'), 'no call was answered: the master died first');
    for (const h of held) if (h !== lateCreate) h.drop();
    gate.rule = () => 'pass';

    const ids = await rc.zrange(k.sandboxes, '0', '-1');
    const states = await Promise.all(ids.map((id) => rc.hget(k.sandbox(id), 'state')));
    t.same(states.sort(), ['creating', 'creating', 'deleting', 'deleting'], 'two creates and two deletes cut short');
    t.equal((await m.server.registry.entries(true)).size, 2, 'the manager runs the second create and the one whose delete never reached it');

    // Another master (it could be the same one, restarted): its reconciler heals, passing every 500 ms.
    const t0 = Date.now();
    const { server, call: survivor } = await startMaster(t, redis, dns, { OMEGA_TEMPLATES: 'python', OMEGA_RECONCILE_INTERVAL_MS: '600000' });
    const finished = new Set<string>();
    await waitFor('the cut-short creates and deletes finished', async () => {
      for (const id of (await server.reconciler.run()).finished) finished.add(id);
      return finished.size === 4 || (await sleep(500));
    }, MASTER_LIVENESS_TTL_MS + 10_000, 0);
    const healMs = Date.now() - t0;
    t.ok(healMs < MASTER_LIVENESS_TTL_MS + 5000, `healed in ${healMs} ms: the dead master's liveness TTL plus a pass or two`);

    const scope = { prefix: dns.prefix, zone: 'sandbox.test', dnsPort: dns.port, api: survivor, hosts: [{ hostId: m.hostId, address: '127.0.0.1' }] };
    t.same((await lookAtState(scope, rc, 0)).problems, [], 'the state is whole');
    t.same(await leftovers(scope, rc, 0), [], 'nothing is left: no record, row, container, volume or name; load 0');
    for (const id of ids) t.equal((await dig(dns.port, [`${id}.sandbox.test`, 'A'])).status, 'NXDOMAIN', `no name for ${id}`);

    // The create held before the manager arrives now, after its master is gone and its record finished.
    await lateCreate.release();
    t.equal((await dockerState([m.hostId])).containers.length, 1, 'the manager started the late create');
    await sleep(1100); // its orphan grace
    const pass = await m.server.reconciler.run();
    t.equal(pass.removed.length, 1, 'and removes it: no record places it here');
    t.same(await leftovers(scope, rc, 0), [], 'nothing is left');
  });
}
