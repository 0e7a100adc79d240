// What the master does about hosts the reaper marked lost (Scaler.handleLostHosts),
// on a real Redis, with the ec2 provider's AWS calls mocked and with no provider.
import { DescribeInstancesCommand, EC2Client, TerminateInstancesCommand } from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import t, { type Test } from 'tap';
import { Ec2Provider } from '../../master/providers/ec2/provider.js';
import { ec2Settings, loadEc2Config } from '../../master/providers/ec2/settings.js';
import { Scaler } from '../../master/scaler.js';
import { Store } from '../../master/store.js';
import { loadSettings } from '../../src/config/settings.js';
import type { Logger } from '../../src/log.js';
import { createRedis } from '../../src/redis/connection.js';
import { hostKeys } from '../../src/redis/keys.js';
import { TestRedis } from '../helpers/redis.js';
import { capturedLogger } from '../helpers/log.js';

const PREFIX = 'lost-hosts-test';
const [ID_A, ID_B, ID_C, ID_D] = ['i-0aaaaaaaaaaaaaaa1', 'i-0bbbbbbbbbbbbbbb2', 'i-0ccccccccccccccc3', 'i-0ddddddddddddddd4'];
const OURS = [
  { Key: 'omega:cluster', Value: PREFIX },
  { Key: 'omega:role', Value: 'host' },
];

const redis = await TestRedis.create();
t.teardown(() => redis.destroy());
const rc = createRedis(redis.url);
t.teardown(() => rc.disconnect());
const keys = hostKeys(PREFIX);


/** A host as its manager registers it, and as the reaper leaves it once the heartbeat lapsed (lostAtMs set, in the set of lost hosts, no alive key). */
async function host(id: string, state: { lostAtMs: number } | 'alive') {
  await rc.hset(keys.host(id), { address: '10.0.0.9', managerUrl: 'http://10.0.0.9:7070', capacity: '10' });
  await rc.sadd(keys.hosts, id);
  if (state !== 'alive') await rc.multi().hset(keys.hostStatus(id), 'lostAtMs', String(state.lostAtMs)).sadd(keys.lostHosts, id).exec();
  await rc.zadd(keys.load, 0, id);
  if (state === 'alive') await rc.set(keys.alive(id), '1', 'PX', 60_000);
}

/** The ec2 provider of this cluster (OMEGA_EC2_LOST_SECONDS at its default, 600), on a client the test mocks. */
function ec2Provider(t: Test, log: Logger): Ec2Provider {
  const config = loadEc2Config(
    loadSettings(ec2Settings, {
      env: { OMEGA_EC2_REGION: 'eu-west-1', OMEGA_EC2_AMI: 'ami-0123456789abcdef0', OMEGA_EC2_INSTANCE_TYPE: 't3.large', OMEGA_EC2_OMEGA_SOURCE: 'https://example.com/omega.git' },
    }),
  );
  const provider = new Ec2Provider(config, {
    log,
    client: new EC2Client({ region: 'eu-west-1', credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'test' } }),
    cluster: { redisUrl: 'redis://10.0.0.2:6379', redisPrefix: PREFIX, managerToken: 'm'.repeat(20), zone: 'sandbox.test', tls: 'off' },
  });
  t.teardown(() => provider.stop());
  return provider;
}

const listed = async (store: Store) => (await store.hosts()).map((h) => h.hostId).sort();
const actions = (m: Map<string, string>) => Object.fromEntries([...m].sort());

t.beforeEach(async () => {
  await rc.flushdb();
});

t.test('ec2: a lost instance of the cluster is terminated after OMEGA_EC2_LOST_SECONDS and forgotten; not before; never an untagged one', async (t) => {
  const ec2 = mockClient(EC2Client);
  t.teardown(() => ec2.restore());
  ec2.on(DescribeInstancesCommand).callsFake((input: { InstanceIds?: string[] }) => {
    const id = input.InstanceIds?.[0];
    return { Reservations: [{ Instances: [{ InstanceId: id, Tags: id === ID_C ? [{ Key: 'Name', Value: 'database' }] : OURS }] }] };
  });
  ec2.on(TerminateInstancesCommand).resolves({});
  const logs = capturedLogger('info');
  const provider = ec2Provider(t, logs.log);
  const store = new Store(rc, PREFIX, 60, 'test-master');
  let now = 10_000_000_000;
  const scaler = new Scaler(store, provider, { waitMs: 1000, now: () => now }, logs.log);

  await host(ID_A, { lostAtMs: now - 600_000 }); // lost for the ten minutes
  await host(ID_B, { lostAtMs: now - 599_000 }); // a second short of them
  await host(ID_C, { lostAtMs: now - 3_600_000 }); // not the cluster's
  await host(ID_D, 'alive');

  t.same(actions(await scaler.handleLostHosts()), { [ID_A]: 'terminated', [ID_B]: 'none', [ID_C]: 'reported' });
  t.same(ec2.commandCalls(TerminateInstancesCommand).map((c) => c.args[0].input), [{ InstanceIds: [ID_A] }], 'TerminateInstances for the instance lost long enough, only');
  t.same(await listed(store), [ID_B, ID_C, ID_D].sort(), 'the terminated host is forgotten; the others stay');

  t.same(actions(await scaler.handleLostHosts()), { [ID_B]: 'none', [ID_C]: 'reported' }, 'the next pass: the same');
  t.equal(ec2.commandCalls(TerminateInstancesCommand).length, 1);

  now += 1000;
  t.same(actions(await scaler.handleLostHosts()), { [ID_B]: 'terminated', [ID_C]: 'reported' }, 'a second later the second one is due');
  t.same(ec2.commandCalls(TerminateInstancesCommand).map((c) => c.args[0].input.InstanceIds), [[ID_A], [ID_B]]);
  t.same(await listed(store), [ID_C, ID_D].sort());
  t.notOk(ec2.commandCalls(TerminateInstancesCommand).some((c) => c.args[0].input.InstanceIds?.includes(ID_C)), 'never the untagged instance');

  t.same(scaler.lostHosts, { restarted: 0, terminated: 2, reported: 1 }, 'each host counted once, however many passes');
  t.equal(logs.lines('lost host: terminated by its provider').length, 2);
  t.equal(logs.lines('lost host: no provider can restart or replace it').length, 1, 'the untagged one reported once');
});

t.test('ec2: a host the reaper forgot before its time was up is still terminated when it is', async (t) => {
  const ec2 = mockClient(EC2Client);
  t.teardown(() => ec2.restore());
  ec2.on(DescribeInstancesCommand).callsFake((input: { InstanceIds?: string[] }) => {
    const id = input.InstanceIds?.[0];
    return { Reservations: [{ Instances: [{ InstanceId: id, Tags: id === ID_C ? [] : OURS }] }] };
  });
  ec2.on(TerminateInstancesCommand).resolves({});
  const { log } = capturedLogger('info');
  const provider = ec2Provider(t, log);
  const store = new Store(rc, PREFIX, 60, 'test-master');
  let now = 10_000_000_000;
  const scaler = new Scaler(store, provider, { waitMs: 1000, now: () => now }, log);
  await host(ID_A, { lostAtMs: now - 100_000 });
  await host(ID_C, { lostAtMs: now - 100_000 });
  t.same(actions(await scaler.handleLostHosts()), { [ID_A]: 'none', [ID_C]: 'none' }, 'not yet, either');
  await store.forgetHost(ID_A); // OMEGA_HOST_FORGET_SECONDS ran out first
  await store.forgetHost(ID_C);
  now += 500_000;
  t.same(actions(await scaler.handleLostHosts()), { [ID_A]: 'terminated' }, 'the cluster\'s instance is followed from memory; the untagged one is not');
  t.same(ec2.commandCalls(TerminateInstancesCommand).map((c) => c.args[0].input), [{ InstanceIds: [ID_A] }]);
  t.same(actions(await scaler.handleLostHosts()), {}, 'then no longer followed');
});

t.test('no provider (OMEGA_PROVIDER=none): a lost host is reported once and counted; one alive again is dropped', async (t) => {
  const logs = capturedLogger('info');
  const store = new Store(rc, PREFIX, 60, 'test-master');
  const scaler = new Scaler(store, null, { waitMs: 1000 }, logs.log);
  await host('static-1', { lostAtMs: Date.now() - 5000 });
  await host('static-2', 'alive');
  t.same(actions(await scaler.handleLostHosts()), { 'static-1': 'reported' });
  t.same(actions(await scaler.handleLostHosts()), { 'static-1': 'reported' });
  const reported = logs.lines('lost host: no provider can restart or replace it');
  t.equal(reported.length, 1, 'said once');
  t.match(reported[0], /"hostId":"static-1".*"provider":"none"/);
  t.same(scaler.lostHosts, { restarted: 0, terminated: 0, reported: 1 });
  t.same(await listed(store), ['static-1', 'static-2'], 'nothing is forgotten: there is nothing to free');

  // It comes back (its heartbeat, and the reaper clears lostAtMs), and is lost again later: a new loss, reported again.
  await rc.hdel(keys.hostStatus('static-1'), 'lostAtMs');
  await rc.set(keys.alive('static-1'), '1', 'PX', 60_000);
  t.same(actions(await scaler.handleLostHosts()), {});
  await rc.del(keys.alive('static-1'));
  await rc.hset(keys.hostStatus('static-1'), 'lostAtMs', String(Date.now()));
  t.same(actions(await scaler.handleLostHosts()), { 'static-1': 'reported' });
  t.equal(logs.lines('lost host: no provider can restart or replace it').length, 2);
  t.same(scaler.lostHosts, { restarted: 0, terminated: 0, reported: 2 });
});

t.test('a failing provider: the pass goes on, the failure is said once, and it is tried again', async (t) => {
  const logs = capturedLogger('info');
  const store = new Store(rc, PREFIX, 60, 'test-master');
  let fail = true;
  const provider = {
    name: 'flaky',
    scaleIn: { minHosts: 0, idleSeconds: 0 },
    launch: async () => ({ hostId: 'x' }),
    terminate: async () => {},
    owns: () => true,
    stop: async () => {},
    hostLost: async (hostId: string) => {
      if (hostId === 'h-1' && fail) throw new Error('the cloud is down');
      return 'terminated' as const;
    },
  };
  const scaler = new Scaler(store, provider, { waitMs: 1000 }, logs.log);
  await host('h-1', { lostAtMs: Date.now() - 5000 });
  await host('h-2', { lostAtMs: Date.now() - 5000 });
  t.same(actions(await scaler.handleLostHosts()), { 'h-1': 'none', 'h-2': 'terminated' }, 'the other host is still dealt with');
  t.same(actions(await scaler.handleLostHosts()), { 'h-1': 'none' });
  const failed = logs.lines('lost host: its provider failed');
  t.equal(failed.length, 1, 'the same failure is said once');
  t.match(failed[0], /the cloud is down/, 'with its cause');
  fail = false;
  t.same(actions(await scaler.handleLostHosts()), { 'h-1': 'terminated' });
  t.same(await listed(store), []);
});
