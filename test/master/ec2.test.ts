import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DescribeInstancesCommand,
  EC2Client,
  EC2ServiceException,
  RunInstancesCommand,
  TerminateInstancesCommand,
  type RunInstancesCommandInput,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import t, { type Test } from 'tap';
import { Ec2Provider } from '../../master/providers/ec2/provider.js';
import { ec2Settings, loadEc2Config, type Ec2Config } from '../../master/providers/ec2/settings.js';
import { envLine, renderTemplate, renderUserData, USER_DATA_MAX_BYTES, type Ec2Cluster } from '../../master/providers/ec2/user-data.js';
import { ConfigError, loadSettings } from '../../src/config/settings.js';
import { OmegaError } from '../../src/errors.js';
import { capturedLogger } from '../helpers/log.js';

// Secrets that must reach the user data and nothing else (no log line).
const TOKEN = 'mgr-token-\'quote"dq$dollar`tick\\back-0123456789';
const REDIS_PASSWORD = 's3cret-redis-pass';
const cluster: Ec2Cluster = {
  redisUrl: `redis://:${REDIS_PASSWORD}@10.0.0.2:6379/0`,
  redisPrefix: 'omega-ec2-test',
  managerToken: TOKEN,
  zone: 'sandbox.example.com',
  tls: 'acme',
};
const ID_A = 'i-0aaaaaaaaaaaaaaa1';
const ID_B = 'i-0bbbbbbbbbbbbbbb2';
const ID_C = 'i-0ccccccccccccccc3';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const BASE_ENV = {
  OMEGA_EC2_REGION: 'eu-west-1',
  OMEGA_EC2_AMI: 'ami-0123456789abcdef0',
  OMEGA_EC2_INSTANCE_TYPE: 'm7i.xlarge',
  OMEGA_EC2_SUBNET_IDS: 'subnet-0aaaaaaaaaaaaaaaa, subnet-0bbbbbbbbbbbbbbbb,subnet-0cccccccccccccccc',
  OMEGA_EC2_SECURITY_GROUP_IDS: 'sg-0123456789abcdef0',
  OMEGA_EC2_INSTANCE_PROFILE: 'omega-host',
  OMEGA_EC2_KEY_NAME: 'ops',
  OMEGA_EC2_MAX_HOSTS: '5',
  OMEGA_EC2_MIN_HOSTS: '1',
  OMEGA_EC2_IDLE_SECONDS: '600',
  OMEGA_EC2_TAGS: 'team=ide,cost-center=42',
  OMEGA_EC2_HOST_CAPACITY: '12',
  OMEGA_EC2_OMEGA_SOURCE: 'https://git.example.com/omega.git',
  OMEGA_EC2_OMEGA_REF: 'v1.2.3',
};
const [SUBNET_A, SUBNET_B, SUBNET_C] = ['subnet-0aaaaaaaaaaaaaaaa', 'subnet-0bbbbbbbbbbbbbbbb', 'subnet-0cccccccccccccccc'];

function config(env: Record<string, string | undefined> = {}): Ec2Config {
  const merged: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...BASE_ENV, ...env })) if (v !== undefined) merged[k] = v;
  return loadEc2Config(loadSettings(ec2Settings, { env: merged }));
}


/** The problems a ConfigError lists, one per line ('' when fn does not throw one). */
function problemsOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.join('\n');
    throw err;
  }
  return '';
}

const ec2 = mockClient(EC2Client);

function setup(t: Test, env: Record<string, string | undefined> = {}, extra: { now?: () => number } = {}) {
  ec2.reset();
  const logs = capturedLogger();
  const client = new EC2Client({ region: 'eu-west-1', credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'test' } });
  const provider = new Ec2Provider(config(env), { log: logs.log, client, cluster, ...extra });
  t.teardown(() => provider.stop());
  return { provider, logs, client };
}

function awsError(name: string, message: string): EC2ServiceException {
  return new EC2ServiceException({ name, message, $fault: 'client', $metadata: { httpStatusCode: 400, requestId: 'req-123' } });
}

function instance(id: string, tags: Record<string, string>, extra: Record<string, unknown> = {}) {
  return { InstanceId: id, Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })), ...extra };
}
const OURS = { 'omega:cluster': 'omega-ec2-test', 'omega:role': 'host' };

function runInputs(): RunInstancesCommandInput[] {
  return ec2.commandCalls(RunInstancesCommand).map((c) => c.args[0].input);
}

function decodeUserData(input: RunInstancesCommandInput): string {
  return Buffer.from(input.UserData ?? '', 'base64').toString('utf8');
}

function assertNoSecrets(t: Test, text: string, userData: string) {
  t.notOk(text.includes(TOKEN), 'the manager token is not logged');
  t.notOk(text.includes('mgr-token'), 'no part of the manager token is logged');
  t.notOk(text.includes(REDIS_PASSWORD), 'the Redis password is not logged');
  t.notOk(text.includes(userData.slice(0, 64)), 'the user data is not logged');
}

t.test('launch from an AMI: counts the cluster, then RunInstances with everything a host needs', async (t) => {
  const { provider, logs } = setup(t);
  ec2.on(DescribeInstancesCommand).resolves({ Reservations: [] });
  ec2.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: ID_A, PrivateIpAddress: '10.0.1.5', SubnetId: SUBNET_A }] });

  t.same(await provider.launch(), { hostId: ID_A, address: '10.0.1.5' });
  t.equal(provider.name, 'ec2');
  t.same(provider.scaleIn, { minHosts: 1, idleSeconds: 600 });

  const describes = ec2.commandCalls(DescribeInstancesCommand);
  t.equal(describes.length, 1);
  t.same(describes[0]!.args[0].input, {
    Filters: [
      { Name: 'tag:omega:cluster', Values: ['omega-ec2-test'] },
      { Name: 'tag:omega:role', Values: ['host'] },
      { Name: 'instance-state-name', Values: ['pending', 'running'] },
    ],
    MaxResults: 1000,
    NextToken: undefined,
  });

  const [input] = runInputs();
  t.ok(input);
  const tags = [
    { Key: 'Name', Value: 'omega-ec2-test-host' },
    { Key: 'team', Value: 'ide' },
    { Key: 'cost-center', Value: '42' },
    { Key: 'omega:cluster', Value: 'omega-ec2-test' },
    { Key: 'omega:role', Value: 'host' },
  ];
  const { ClientToken, UserData, ...rest } = input!;
  t.match(ClientToken, UUID, 'a ClientToken makes a retried request launch one instance');
  t.same(rest, {
    MinCount: 1,
    MaxCount: 1,
    InstanceInitiatedShutdownBehavior: 'terminate',
    MetadataOptions: { HttpEndpoint: 'enabled', HttpTokens: 'required', HttpPutResponseHopLimit: 1 },
    TagSpecifications: [
      { ResourceType: 'instance', Tags: tags },
      { ResourceType: 'volume', Tags: tags },
    ],
    ImageId: 'ami-0123456789abcdef0',
    InstanceType: 'm7i.xlarge',
    SubnetId: SUBNET_A,
    SecurityGroupIds: ['sg-0123456789abcdef0'],
    IamInstanceProfile: { Name: 'omega-host' },
    KeyName: 'ops',
    BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: { VolumeSize: 30, VolumeType: 'gp3', DeleteOnTermination: true } }],
  });

  const script = decodeUserData(input!);
  t.ok(script.startsWith('#!/bin/bash\n'));
  t.match(script, 'http://169.254.169.254/latest/api/token', 'an IMDSv2 token');
  t.match(script, 'meta-data/instance-id', 'the instance id from the metadata service');
  t.match(script, 'meta-data/local-ipv4', 'the private IP from the metadata service');
  t.match(script, 'OMEGA_REDIS_PREFIX="omega-ec2-test"');
  t.match(script, 'OMEGA_CAPACITY="12"');
  t.match(script, 'OMEGA_ZONE="sandbox.example.com"');
  t.match(script, 'OMEGA_TLS="acme"', 'the hosts run their ingress as the master serves TLS');
  t.match(script, "OMEGA_SOURCE='https://git.example.com/omega.git'");
  t.match(script, "OMEGA_REF='v1.2.3'");
  t.notMatch(script, /@@[A-Z0-9_]+@@/, 'every placeholder filled');

  const text = logs.text();
  t.match(text, /"msg":"host launched"/);
  t.match(text, new RegExp(`"hostId":"${ID_A}"`));
  assertNoSecrets(t, text, UserData!);
});

t.test('launch from a launch template: its id or name and version, overrides only where set', async (t) => {
  const { provider } = setup(t, {
    OMEGA_EC2_LAUNCH_TEMPLATE: 'lt-0123456789abcdef0:7',
    OMEGA_EC2_AMI: undefined,
    OMEGA_EC2_INSTANCE_TYPE: undefined,
    OMEGA_EC2_SUBNET_IDS: undefined,
    OMEGA_EC2_SECURITY_GROUP_IDS: undefined,
    OMEGA_EC2_INSTANCE_PROFILE: 'arn:aws:iam::123456789012:instance-profile/omega-host',
    OMEGA_EC2_KEY_NAME: undefined,
  });
  ec2.on(DescribeInstancesCommand).resolves({});
  ec2.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: ID_A }] });
  t.same(await provider.launch(), { hostId: ID_A }, 'no address when the answer has none');
  const [input] = runInputs();
  t.same(input!.LaunchTemplate, { LaunchTemplateId: 'lt-0123456789abcdef0', Version: '7' });
  t.same(input!.IamInstanceProfile, { Arn: 'arn:aws:iam::123456789012:instance-profile/omega-host' });
  for (const key of ['ImageId', 'InstanceType', 'SubnetId', 'SecurityGroupIds', 'KeyName', 'BlockDeviceMappings'] as const) {
    t.equal(input![key], undefined, `${key} left to the template`);
  }
  t.same(input!.MetadataOptions, { HttpEndpoint: 'enabled', HttpTokens: 'required', HttpPutResponseHopLimit: 1 }, 'IMDSv2 whatever the template says');
  t.ok(input!.UserData);

  const byName = config({ OMEGA_EC2_LAUNCH_TEMPLATE: 'omega-hosts:latest', OMEGA_EC2_AMI: undefined, OMEGA_EC2_INSTANCE_TYPE: undefined });
  t.same(byName.launchTemplate, { name: 'omega-hosts', version: '$Latest' });
  t.equal(byName.rootVolumeGb, undefined, 'the template sizes the root volume unless told');
  t.same(config({ OMEGA_EC2_LAUNCH_TEMPLATE: 'omega-hosts' }).launchTemplate, { name: 'omega-hosts' }, 'no version: the template\'s default');
});

t.test('launches spread over the subnets: fewest of our hosts first, ties in rotation', async (t) => {
  const { provider } = setup(t);
  ec2.on(DescribeInstancesCommand).resolves({ Reservations: [] });
  const ids = [ID_A, ID_B, ID_C, 'i-0ddddddddddddddd4'];
  let n = 0;
  ec2.on(RunInstancesCommand).callsFake((input: RunInstancesCommandInput) => ({ Instances: [{ InstanceId: ids[n++], SubnetId: input.SubnetId }] }));
  for (let i = 0; i < 4; i++) await provider.launch();
  t.same(runInputs().map((i) => i.SubnetId), [SUBNET_A, SUBNET_B, SUBNET_C, SUBNET_A], 'rotated, counting launches AWS does not list yet');
  const tokens = new Set(runInputs().map((i) => i.ClientToken));
  t.equal(tokens.size, 4, 'a new ClientToken per launch');

  // Two hosts already in subnet A and one in B: C is emptiest.
  const { provider: p2 } = setup(t);
  ec2.on(DescribeInstancesCommand).resolves({
    Reservations: [{ Instances: [{ InstanceId: ID_A, SubnetId: SUBNET_A }, { InstanceId: ID_B, SubnetId: SUBNET_A }] }, { Instances: [{ InstanceId: ID_C, SubnetId: SUBNET_B }] }],
  });
  ec2.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: 'i-0eeeeeeeeeeeeeee5', SubnetId: SUBNET_C }] });
  await p2.launch();
  t.equal(runInputs()[0]!.SubnetId, SUBNET_C);
});

t.test('no room in one subnet (availability zone): the same launch goes on in the next', async (t) => {
  const { provider, logs } = setup(t);
  ec2.on(DescribeInstancesCommand).resolves({});
  ec2.on(RunInstancesCommand)
    .rejectsOnce(awsError('InsufficientInstanceCapacity', 'We currently do not have sufficient m7i.xlarge capacity in the Availability Zone you requested'))
    .resolves({ Instances: [{ InstanceId: ID_B, PrivateIpAddress: '10.0.2.9', SubnetId: SUBNET_B }] });
  t.same(await provider.launch(), { hostId: ID_B, address: '10.0.2.9' });
  const inputs = runInputs();
  t.same(inputs.map((i) => i.SubnetId), [SUBNET_A, SUBNET_B]);
  t.not(inputs[0]!.ClientToken, inputs[1]!.ClientToken, 'another request, another token');
  t.match(logs.text(), /"awsError":"InsufficientInstanceCapacity"/);
});

t.test('at OMEGA_EC2_MAX_HOSTS: NO_CAPACITY, counted over every page, and no RunInstances', async (t) => {
  const { provider } = setup(t, { OMEGA_EC2_MAX_HOSTS: '3', OMEGA_EC2_MIN_HOSTS: '0' });
  ec2.on(DescribeInstancesCommand)
    .resolvesOnce({ Reservations: [{ Instances: [{ InstanceId: ID_A }, { InstanceId: ID_B }] }], NextToken: 'page-2' })
    .resolves({ Reservations: [{ Instances: [{ InstanceId: ID_C }] }] });
  ec2.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: 'i-0fffffffffffffff6' }] });
  const err = await provider.launch().catch((e: unknown) => e);
  t.ok(err instanceof OmegaError);
  t.equal((err as OmegaError).code, 'NO_CAPACITY');
  t.equal((err as OmegaError).status, 503);
  t.same((err as OmegaError).details, { hosts: 3, maxHosts: 3 });
  t.match((err as OmegaError).message, 'OMEGA_EC2_MAX_HOSTS');
  t.equal(ec2.commandCalls(RunInstancesCommand).length, 0, 'nothing launched');
  const pages = ec2.commandCalls(DescribeInstancesCommand).map((c) => c.args[0].input.NextToken);
  t.same(pages, [undefined, 'page-2'], 'the second page asked for');
});

t.test('an instance just launched counts towards the maximum before DescribeInstances lists it', async (t) => {
  let now = 1_000_000;
  const { provider } = setup(t, { OMEGA_EC2_MAX_HOSTS: '1', OMEGA_EC2_MIN_HOSTS: '0' }, { now: () => now });
  ec2.on(DescribeInstancesCommand).resolves({ Reservations: [] });
  ec2.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: ID_A }] });
  const [first, second] = await Promise.allSettled([provider.launch(), provider.launch()]);
  t.equal(first.status, 'fulfilled');
  t.equal(second.status, 'rejected');
  t.equal(((second as PromiseRejectedResult).reason as OmegaError).code, 'NO_CAPACITY', 'concurrent launches are one at a time');
  t.equal(ec2.commandCalls(RunInstancesCommand).length, 1);
  now += 10 * 60_000;
  t.same(await provider.launch(), { hostId: ID_A }, 'after minutes unlisted, the launch no longer counts (it never started)');
});

t.test('an AWS failure is PROVIDER_FAILED carrying the AWS error code, message and cause', async (t) => {
  const { provider, logs } = setup(t);
  ec2.on(DescribeInstancesCommand).resolves({});
  const cause = awsError('UnauthorizedOperation', 'You are not authorized to perform this operation.');
  ec2.on(RunInstancesCommand).rejects(cause);
  const err = (await provider.launch().catch((e: unknown) => e)) as OmegaError;
  t.ok(err instanceof OmegaError);
  t.equal(err.code, 'PROVIDER_FAILED');
  t.equal(err.status, 502);
  t.equal(err.message, 'ec2 RunInstances failed: UnauthorizedOperation: You are not authorized to perform this operation.');
  t.same(err.details, { operation: 'RunInstances', awsError: 'UnauthorizedOperation', requestId: 'req-123' });
  t.equal(err.cause, cause);
  t.equal(ec2.commandCalls(RunInstancesCommand).length, 1, 'not retried in another subnet');

  ec2.on(DescribeInstancesCommand).rejects(awsError('RequestLimitExceeded', 'Request limit exceeded.'));
  const err2 = (await provider.launch().catch((e: unknown) => e)) as OmegaError;
  t.equal(err2.code, 'PROVIDER_FAILED');
  t.same(err2.details, { operation: 'DescribeInstances', awsError: 'RequestLimitExceeded', requestId: 'req-123' });
  assertNoSecrets(t, logs.text(), runInputs()[0]!.UserData!);
});

t.test('terminate: this cluster\'s instance only; an instance already gone is done', async (t) => {
  const { provider } = setup(t);
  ec2.on(DescribeInstancesCommand, { InstanceIds: [ID_A] }).resolves({ Reservations: [{ Instances: [instance(ID_A, OURS, { State: { Name: 'running' } })] }] });
  ec2.on(TerminateInstancesCommand).resolves({ TerminatingInstances: [{ InstanceId: ID_A }] });
  await provider.terminate(ID_A);
  t.same(ec2.commandCalls(TerminateInstancesCommand).map((c) => c.args[0].input), [{ InstanceIds: [ID_A] }]);

  ec2.on(TerminateInstancesCommand).rejects(awsError('InvalidInstanceID.NotFound', `The instance ID '${ID_A}' does not exist`));
  await t.resolves(provider.terminate(ID_A), 'NotFound from TerminateInstances: already gone');

  ec2.on(DescribeInstancesCommand, { InstanceIds: [ID_B] }).rejects(awsError('InvalidInstanceID.NotFound', `The instance ID '${ID_B}' does not exist`));
  const before = ec2.commandCalls(TerminateInstancesCommand).length;
  await t.resolves(provider.terminate(ID_B), 'NotFound from DescribeInstances: nothing to do');
  t.equal(ec2.commandCalls(TerminateInstancesCommand).length, before, 'no TerminateInstances for it');

  ec2.on(TerminateInstancesCommand).rejects(awsError('UnauthorizedOperation', 'not allowed'));
  const err = (await provider.terminate(ID_A).catch((e: unknown) => e)) as OmegaError;
  t.equal(err.code, 'PROVIDER_FAILED');
  t.match(err.message, 'TerminateInstances failed: UnauthorizedOperation');
});

t.test('terminate refuses what Omega did not launch, without a TerminateInstances', async (t) => {
  const { provider } = setup(t);
  ec2.on(DescribeInstancesCommand, { InstanceIds: [ID_C] }).resolves({ Reservations: [{ Instances: [instance(ID_C, { Name: 'database' })] }] });
  ec2.on(TerminateInstancesCommand).resolves({});
  const err = (await provider.terminate(ID_C).catch((e: unknown) => e)) as OmegaError;
  t.equal(err.code, 'PROVIDER_FAILED');
  t.match(err.message, /refusing to terminate i-0ccccccccccccccc3/);
  const err2 = (await provider.terminate('10.0.0.7').catch((e: unknown) => e)) as OmegaError;
  t.equal(err2.code, 'PROVIDER_FAILED', 'a host id that is no instance id (a static host)');
  t.equal(ec2.commandCalls(TerminateInstancesCommand).length, 0);
  t.equal(ec2.commandCalls(DescribeInstancesCommand).length, 1, 'only the instance id was looked up');
});

t.test('a lost host: terminated once lost for OMEGA_EC2_LOST_SECONDS, not before, and never one Omega did not launch', async (t) => {
  t.equal(config().lostSeconds, 600, 'ten minutes unless told');
  const { provider, logs } = setup(t, { OMEGA_EC2_LOST_SECONDS: '300' });
  ec2.on(DescribeInstancesCommand, { InstanceIds: [ID_A] }).resolves({ Reservations: [{ Instances: [instance(ID_A, OURS, { State: { Name: 'running' } })] }] });
  ec2.on(DescribeInstancesCommand, { InstanceIds: [ID_C] }).resolves({ Reservations: [{ Instances: [instance(ID_C, { Name: 'database' })] }] });
  ec2.on(TerminateInstancesCommand).resolves({ TerminatingInstances: [{ InstanceId: ID_A }] });
  t.equal(await provider.hostLost(ID_A, 299_999), 'none', 'lost for less than the time: nothing yet');
  t.equal(ec2.calls().length, 0, 'and nothing asked of AWS');
  t.equal(await provider.hostLost(ID_A, 300_000), 'terminated');
  t.same(ec2.commandCalls(TerminateInstancesCommand).map((c) => c.args[0].input), [{ InstanceIds: [ID_A] }], 'TerminateInstances for it');
  t.equal(await provider.hostLost(ID_C, 3_600_000), 'reported', 'an instance without the cluster\'s tags is only reported');
  t.equal(await provider.hostLost('10.0.0.7', 3_600_000), 'reported', 'so is a host that is no instance');
  t.equal(ec2.commandCalls(TerminateInstancesCommand).length, 1, 'no TerminateInstances for either');
  t.match(logs.text(), /"hostId":"i-0aaaaaaaaaaaaaaa1".*OMEGA_EC2_LOST_SECONDS=300: terminating it/);

  const { provider: never } = setup(t, { OMEGA_EC2_LOST_SECONDS: '0' });
  ec2.on(TerminateInstancesCommand).resolves({});
  t.equal(await never.hostLost(ID_A, 30 * 86_400_000), 'reported', 'OMEGA_EC2_LOST_SECONDS=0: never terminated');
  t.equal(ec2.calls().length, 0);
});

t.test('owns: true only for an instance with both of this cluster\'s tags; answers cached briefly', async (t) => {
  let now = 5_000_000;
  const { provider } = setup(t, {}, { now: () => now });
  ec2.on(DescribeInstancesCommand, { InstanceIds: [ID_A] }).resolves({ Reservations: [{ Instances: [instance(ID_A, OURS)] }] });
  ec2.on(DescribeInstancesCommand, { InstanceIds: [ID_B] }).resolves({ Reservations: [{ Instances: [instance(ID_B, {})] }] });
  ec2.on(DescribeInstancesCommand, { InstanceIds: [ID_C] }).resolves({
    Reservations: [{ Instances: [instance(ID_C, { 'omega:cluster': 'another-deployment', 'omega:role': 'host' })] }],
  });
  ec2.on(DescribeInstancesCommand, { InstanceIds: ['i-0ddddddddddddddd4'] }).resolves({
    Reservations: [{ Instances: [instance('i-0ddddddddddddddd4', { 'omega:cluster': 'omega-ec2-test' })] }],
  });
  t.equal(await provider.owns(ID_A), true);
  t.equal(await provider.owns(ID_B), false, 'an untagged instance');
  t.equal(await provider.owns(ID_C), false, 'another cluster\'s host');
  t.equal(await provider.owns('i-0ddddddddddddddd4'), false, 'the cluster tag without the role tag');
  t.equal(await provider.owns('not-an-instance'), false);
  t.equal(ec2.commandCalls(DescribeInstancesCommand).length, 4);

  t.equal(await provider.owns(ID_A), true);
  t.equal(ec2.commandCalls(DescribeInstancesCommand).length, 4, 'cached');
  now += 31_000;
  t.equal(await provider.owns(ID_A), true);
  t.equal(ec2.commandCalls(DescribeInstancesCommand).length, 5, 'asked again once the answer is old');

  ec2.on(DescribeInstancesCommand, { InstanceIds: ['i-0eeeeeeeeeeeeeee5'] }).rejects(awsError('RequestLimitExceeded', 'slow down'));
  const err = (await provider.owns('i-0eeeeeeeeeeeeeee5').catch((e: unknown) => e)) as OmegaError;
  t.equal(err.code, 'PROVIDER_FAILED', 'an AWS failure is an error, not a "no"');
});

t.test('an instance launched here is owned without asking AWS (which may not list it yet)', async (t) => {
  const { provider } = setup(t);
  ec2.on(DescribeInstancesCommand).resolves({});
  ec2.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: ID_A, PrivateIpAddress: '10.0.1.5' }] });
  await provider.launch();
  const calls = ec2.commandCalls(DescribeInstancesCommand).length;
  t.equal(await provider.owns(ID_A), true);
  t.equal(ec2.commandCalls(DescribeInstancesCommand).length, calls);
});

t.test('stop destroys the client, is idempotent, and no launch follows it', async (t) => {
  const { provider, client } = setup(t);
  let destroyed = 0;
  const destroy = client.destroy.bind(client);
  client.destroy = () => {
    destroyed++;
    destroy();
  };
  await provider.stop();
  await provider.stop();
  t.equal(destroyed, 1);
  const err = (await provider.launch().catch((e: unknown) => e)) as OmegaError;
  t.equal(err.code, 'PROVIDER_FAILED');
  t.equal(ec2.commandCalls(RunInstancesCommand).length, 0);
});

t.test('config: each problem names its variable', async (t) => {
  const problems = (env: Record<string, string | undefined>) => problemsOf(() => config(env));
  t.match(problems({ OMEGA_EC2_REGION: undefined }), /^OMEGA_EC2_REGION \/ --ec2-region: required/m);
  const noImage = problems({ OMEGA_EC2_AMI: undefined, OMEGA_EC2_INSTANCE_TYPE: undefined });
  t.match(noImage, /^OMEGA_EC2_AMI .*unless OMEGA_EC2_LAUNCH_TEMPLATE/m);
  t.match(noImage, /^OMEGA_EC2_INSTANCE_TYPE .*unless OMEGA_EC2_LAUNCH_TEMPLATE/m);
  t.match(problems({ OMEGA_EC2_INSTANCE_TYPE: undefined }), /^OMEGA_EC2_INSTANCE_TYPE /m, 'an AMI without a type');
  t.equal(problems({ OMEGA_EC2_AMI: undefined, OMEGA_EC2_INSTANCE_TYPE: undefined, OMEGA_EC2_LAUNCH_TEMPLATE: 'lt-0123456789abcdef0' }), '', 'a launch template alone');
  t.match(problems({ OMEGA_EC2_MIN_HOSTS: '6' }), /^OMEGA_EC2_MIN_HOSTS: must not exceed OMEGA_EC2_MAX_HOSTS/m);
  t.match(problems({ OMEGA_EC2_OMEGA_SOURCE: undefined }), /^OMEGA_EC2_OMEGA_SOURCE /m);
  t.match(problems({ OMEGA_EC2_OMEGA_SHA256: 'a'.repeat(64) }), /^OMEGA_EC2_OMEGA_SHA256: only applies to a .tar.gz/m);
  t.match(problems({ OMEGA_EC2_NODE_SHA256: 'b'.repeat(64) }), /^OMEGA_EC2_NODE_SHA256: needs an exact/m);
  t.equal(problems({ OMEGA_EC2_NODE_SHA256: 'b'.repeat(64), OMEGA_EC2_NODE_VERSION: '20.19.5' }), '');
  t.equal(config({ OMEGA_EC2_OMEGA_SOURCE: 'https://example.com/omega-1.2.3.tar.gz?X-Amz-Signature=abc' }).omegaSource?.kind, 'tarball');

  // Values a parser refuses, each with its variable and flag.
  const bad: Record<string, string> = {
    OMEGA_EC2_REGION: 'Europe',
    OMEGA_EC2_LAUNCH_TEMPLATE: 'lt-0123456789abcdef0:newest',
    OMEGA_EC2_AMI: 'debian-12',
    OMEGA_EC2_INSTANCE_TYPE: 'big',
    OMEGA_EC2_SUBNET_IDS: 'subnet-0aaaaaaaaaaaaaaaa,vpc-0123456789abcdef0',
    OMEGA_EC2_SECURITY_GROUP_IDS: 'default',
    OMEGA_EC2_MAX_HOSTS: '0',
    OMEGA_EC2_IDLE_SECONDS: 'soon',
    OMEGA_EC2_LOST_SECONDS: '-1',
    OMEGA_EC2_TAGS: 'omega:cluster=other',
    OMEGA_EC2_HOST_CAPACITY: '-1',
    OMEGA_EC2_OMEGA_SOURCE: 'http://git.example.com/omega.git',
    OMEGA_EC2_NODE_VERSION: '18',
  };
  for (const [name, value] of Object.entries(bad)) {
    t.match(problemsOf(() => loadSettings(ec2Settings, { env: { ...BASE_ENV, [name]: value } })), new RegExp(`^${name} / --`), `${name}=${value} is refused, naming it`);
  }
  const refused = problemsOf(() => loadSettings(ec2Settings, { env: { OMEGA_EC2_OMEGA_SOURCE: 'ftp://user:pw@example.com/x' } }));
  t.match(refused, /^OMEGA_EC2_OMEGA_SOURCE /);
  t.notMatch(refused, 'pw@', 'a refused source (it may carry credentials) is not echoed');
});

t.test('the provider refuses a Redis URL or token a new host could not use', async (t) => {
  const logs = capturedLogger();
  const c = config();
  const make = (cl: Partial<Ec2Cluster>) => () => new Ec2Provider(c, { log: logs.log, client: new EC2Client({ region: 'eu-west-1' }), cluster: { ...cluster, ...cl } });
  t.match(problemsOf(make({ redisUrl: 'redis://127.0.0.1:6379' })), /^OMEGA_REDIS_URL: .*127\.0\.0\.1/);
  t.match(problemsOf(make({ redisUrl: 'redis+sentinel://10.0.0.2:26379,localhost:26379/main' })), /localhost/);
  t.match(problemsOf(make({ managerToken: '' })), /^OMEGA_MANAGER_TOKEN: /);
  t.match(problemsOf(make({ managerToken: 'line\nbreak-0123456789' })), /^OMEGA_MANAGER_TOKEN: .*control characters/);
  t.doesNotThrow(make({ redisUrl: 'rediss://user:pw@redis.internal:6380' }));
});

t.test('the user data: valid bash, every placeholder filled, the values intact through shell and systemd quoting', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'omega-ec2-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const c = config({ OMEGA_EC2_POOL_SIZE: 'node=2,python=1', OMEGA_EC2_MANAGER_PORT: '7071' });
  const script = renderUserData(c, cluster);
  t.ok(Buffer.byteLength(script) < USER_DATA_MAX_BYTES, `${Buffer.byteLength(script)} bytes, under EC2's limit`);
  t.notMatch(script, /@@[A-Z0-9_]+@@/, 'no placeholder left');
  const file = join(dir, 'user-data.sh');
  writeFileSync(file, script);
  t.doesNotThrow(() => execFileSync('bash', ['-n', file], { stdio: 'pipe' }), 'bash -n: the syntax is valid');

  // The values block alone, run by bash: what the script will see.
  const start = script.indexOf('# ---- values');
  const end = script.indexOf('# ---- end of values ----');
  t.ok(start > 0 && end > start, 'the values block is marked');
  const values = script.slice(start, end);
  const probe = join(dir, 'probe.sh');
  writeFileSync(probe, `${values}\nprintf '%s\\0' "$OMEGA_SOURCE" "$OMEGA_SOURCE_KIND" "$OMEGA_REF" "$OMEGA_SHA256" "$NODE_VERSION" "$MANAGER_PORT" "$MANAGER_ENV"\n`);
  const [source, kind, ref, sha, node, port, env] = execFileSync('bash', [probe]).toString().split('\0');
  t.same([source, kind, ref, sha, node, port], ['https://git.example.com/omega.git', 'git', 'v1.2.3', '', '20', '7071']);

  // The env file as systemd reads it (systemd.exec(5): in double quotes, a
  // backslash makes the next \ " ` $ literal).
  const parsed: Record<string, string> = {};
  for (const line of env!.split('\n')) {
    const m = /^([A-Z_]+)="((?:[^"\\]|\\.)*)"$/.exec(line);
    t.ok(m, `a well-formed line: ${line.split('=')[0]}`);
    if (m) parsed[m[1]!] = m[2]!.replace(/\\([\\"`$])/g, '$1');
  }
  t.same(parsed, {
    OMEGA_REDIS_URL: cluster.redisUrl,
    OMEGA_REDIS_PREFIX: 'omega-ec2-test',
    OMEGA_MANAGER_TOKEN: TOKEN,
    OMEGA_ZONE: 'sandbox.example.com',
    OMEGA_TLS: 'acme',
    OMEGA_CAPACITY: '12',
    OMEGA_POOL_SIZE: 'node=2,python=1',
  });
  t.equal(envLine('X', 'a"b$c`d\\e'), 'X="a\\"b\\$c\\`d\\\\e"');

  // The template as shipped: the placeholders the provider fills, no others.
  const template = readFileSync(new URL('../../infra/ec2/user-data.sh', import.meta.url), 'utf8');
  const names = new Set([...template.matchAll(/@@([A-Z0-9_]+)@@/g)].map((m) => m[1]));
  t.same([...names].sort(), ['MANAGER_ENV', 'MANAGER_PORT', 'NODE_SHA256', 'NODE_VERSION', 'OMEGA_REF', 'OMEGA_SHA256', 'OMEGA_SOURCE', 'OMEGA_SOURCE_KIND']);
  t.match(problemsOf(() => renderTemplate('A=@@A@@\nB=@@B@@\n', { A: 'x' })), /no value for @@B@@/);
  t.equal(renderTemplate("A=@@A@@\n", { A: "it's" }), "A='it'\\''s'\n");
});

t.test('a custom user data template is used as given', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'omega-ec2-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'baked.sh');
  writeFileSync(file, '#!/bin/bash\nprintf "%s\\n" @@MANAGER_ENV@@ >/etc/omega/manager.env\n');
  const c = config({ OMEGA_EC2_USER_DATA_TEMPLATE: file, OMEGA_EC2_OMEGA_SOURCE: undefined });
  t.match(renderUserData(c, cluster), /^#!\/bin\/bash\nprintf "%s\\n" 'OMEGA_REDIS_URL=/);
  writeFileSync(file, `#!/bin/bash\n# ${'x'.repeat(USER_DATA_MAX_BYTES)}\n`);
  t.match(problemsOf(() => renderUserData(c, cluster)), /EC2 takes at most 16384/);
});
