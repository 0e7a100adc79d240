import { randomUUID } from 'node:crypto';
import type { _InstanceType, EC2Client, Filter, Instance, RunInstancesCommandInput, Tag } from '@aws-sdk/client-ec2';
import { ConfigError, safeUrl } from '../../../src/config/settings.js';
import { OmegaError } from '../../../src/errors.js';
import type { Logger } from '../../../src/log.js';
import { isLoopbackHost, parseRedisUrl } from '../../../src/redis/url.js';
import type { LaunchedHost, LostHostAction, Provider } from '../provider.js';
import { awsErrorName, awsFailure } from './errors.js';
import type { Ec2Config } from './settings.js';
import { CLUSTER_TAG, ROLE, ROLE_TAG } from './tags.js';
import { renderUserData, type Ec2Cluster } from './user-data.js';

/**
 * The `ec2` provider: new hosts are EC2 instances launched from a Debian 12
 * AMI (or a launch template) whose user data (infra/ec2/user-data.sh) installs
 * Omega and starts `omega manager`, which registers under its instance id.
 * Every instance it launches carries omega:cluster=<OMEGA_REDIS_PREFIX> and
 * omega:role=host, and it only ever terminates instances that carry both.
 */

const INSTANCE_ID = /^i-[0-9a-f]{8,17}$/;

type Sdk = typeof import('@aws-sdk/client-ec2');

/** Loopback hosts in a Redis URL (also sentinel/cluster lists): a remote host cannot reach them. */
function loopbackHosts(redisUrl: string): string[] {
  return parseRedisUrl(redisUrl)
    .hosts.map((h) => h.host)
    .filter(isLoopbackHost);
}

/** Errors after which the same launch may work in another subnet (another availability zone). */
const TRY_NEXT_SUBNET = new Set(['InsufficientInstanceCapacity', 'InsufficientFreeAddressesInSubnet', 'Unsupported']);
/** How long an ownership answer is reused. */
const OWNS_CACHE_MS = 30_000;
/**
 * How long a launched instance counts towards OMEGA_EC2_MAX_HOSTS without
 * DescribeInstances listing it yet (the EC2 API is eventually consistent).
 */
const LAUNCH_VISIBLE_MS = 5 * 60_000;

type Ownership = 'owned' | 'foreign' | 'gone';

export interface Ec2ProviderDeps {
  log: Logger;
  /** An EC2 client to use (tests pass one to mock); the provider destroys it on stop(). */
  client?: EC2Client;
  cluster: Ec2Cluster;
  /** Clock, for tests. */
  now?: () => number;
}

export class Ec2Provider implements Provider {
  readonly name = 'ec2';
  /** OMEGA_EC2_MIN_HOSTS and OMEGA_EC2_IDLE_SECONDS. */
  readonly scaleIn: { readonly minHosts: number; readonly idleSeconds: number };

  private readonly log: Logger;
  /**
   * The SDK and the client. The SDK takes about a second of CPU to load, so
   * it is imported here, when an ec2 provider is made, and never by a module
   * that only names its settings (every `omega` program and `--help` does).
   */
  readonly #aws: Promise<{ sdk: Sdk; client: EC2Client }>;
  private readonly now: () => number;
  private readonly prefix: string;
  // Private fields (#) so neither a logged provider nor a debugger print shows them.
  readonly #userData: string;
  readonly #recent = new Map<string, { atMs: number; subnetId: string | undefined }>();
  readonly #owns = new Map<string, { ownership: Ownership; atMs: number }>();
  #queue: Promise<unknown> = Promise.resolve();
  #cursor = 0;
  #stopped = false;

  constructor(
    private readonly config: Ec2Config,
    deps: Ec2ProviderDeps,
  ) {
    const { cluster } = deps;
    const problems: string[] = [];
    if (!cluster.managerToken || cluster.managerToken.length < 16) problems.push('OMEGA_MANAGER_TOKEN: the ec2 provider needs the managers\' token (16+ characters) to hand to new hosts');
    const loopback = loopbackHosts(cluster.redisUrl);
    if (loopback.length > 0) problems.push(`OMEGA_REDIS_URL: new EC2 hosts cannot reach Redis at ${loopback.join(', ')}; use an address in the VPC`);
    if (problems.length > 0) throw new ConfigError(problems);
    this.scaleIn = Object.freeze({ minHosts: config.minHosts, idleSeconds: config.idleSeconds });
    this.prefix = cluster.redisPrefix;
    this.now = deps.now ?? Date.now;
    this.log = deps.log.child({ provider: 'ec2' });
    this.#userData = Buffer.from(renderUserData(config, cluster)).toString('base64');
    this.#aws = import('@aws-sdk/client-ec2').then((sdk) => ({ sdk, client: deps.client ?? new sdk.EC2Client({ region: config.region }) }));
    // Every call awaits this and fails with the cause; said once here too, as it is why nothing works.
    this.#aws.catch((err: unknown) => this.log.error({ err }, 'the AWS SDK could not be loaded'));
    this.log.info(
      {
        region: config.region,
        launchTemplate: config.launchTemplate,
        ami: config.ami,
        instanceType: config.instanceType,
        subnetIds: config.subnetIds,
        maxHosts: config.maxHosts,
        minHosts: config.minHosts,
        lostSeconds: config.lostSeconds,
        cluster: this.prefix,
        source: config.omegaSource ? `${config.omegaSource.kind} ${safeUrl(config.omegaSource.url)}` : 'custom user data',
      },
      'ec2 provider ready',
    );
  }

  /**
   * One launch at a time, so two scale-outs in this process cannot both see
   * room for the last host. (Two masters can; see infra/ec2/README.md.)
   */
  launch(): Promise<LaunchedHost> {
    if (this.#stopped) return Promise.reject(new OmegaError('PROVIDER_FAILED', 'the ec2 provider is stopped'));
    const run = this.#queue.then(() => this.#launchOne());
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #launchOne(): Promise<LaunchedHost> {
    const hosts = await this.#clusterHosts();
    const count = hosts.size;
    if (count >= this.config.maxHosts) {
      throw new OmegaError('NO_CAPACITY', `ec2: ${count} hosts are pending or running, the most OMEGA_EC2_MAX_HOSTS allows`, {
        details: { hosts: count, maxHosts: this.config.maxHosts },
      });
    }
    const subnets = this.#subnetOrder(hosts);
    for (const [i, subnetId] of subnets.entries()) {
      let instance: Instance | undefined;
      try {
        const { sdk, client } = await this.#aws;
        const out = await client.send(new sdk.RunInstancesCommand(this.#runInput(subnetId)));
        instance = out.Instances?.[0];
      } catch (err) {
        const name = awsErrorName(err);
        if (name && TRY_NEXT_SUBNET.has(name) && i < subnets.length - 1) {
          this.log.warn({ subnetId, awsError: name, next: subnets[i + 1] }, 'no room in this subnet; launching in the next');
          continue;
        }
        throw awsFailure('RunInstances', err);
      }
      const hostId = instance?.InstanceId;
      if (!hostId) throw new OmegaError('PROVIDER_FAILED', 'ec2 RunInstances failed: the answer named no instance');
      const at = this.now();
      this.#recent.set(hostId, { atMs: at, subnetId: instance?.SubnetId ?? subnetId });
      this.#owns.set(hostId, { ownership: 'owned', atMs: at });
      const address = instance?.PrivateIpAddress;
      this.log.info({ hostId, address, subnetId: instance?.SubnetId ?? subnetId, hosts: count + 1, maxHosts: this.config.maxHosts }, 'host launched');
      return address ? { hostId, address } : { hostId };
    }
    throw new OmegaError('PROVIDER_FAILED', 'ec2 RunInstances failed: no subnet to launch in'); // unreachable: subnets is never empty
  }

  /**
   * This cluster's pending and running instances (id -> subnet), plus those
   * launched here in the last minutes that DescribeInstances does not list yet.
   */
  async #clusterHosts(): Promise<Map<string, string | undefined>> {
    const filters: Filter[] = [
      { Name: `tag:${CLUSTER_TAG}`, Values: [this.prefix] },
      { Name: `tag:${ROLE_TAG}`, Values: [ROLE] },
      { Name: 'instance-state-name', Values: ['pending', 'running'] },
    ];
    const hosts = new Map<string, string | undefined>();
    let nextToken: string | undefined;
    try {
      const { sdk, client } = await this.#aws;
      do {
        const page = await client.send(new sdk.DescribeInstancesCommand({ Filters: filters, MaxResults: 1000, NextToken: nextToken }));
        for (const r of page.Reservations ?? []) for (const i of r.Instances ?? []) if (i.InstanceId) hosts.set(i.InstanceId, i.SubnetId);
        nextToken = page.NextToken;
      } while (nextToken);
    } catch (err) {
      throw awsFailure('DescribeInstances', err);
    }
    const now = this.now();
    for (const [id, r] of this.#recent) {
      if (hosts.has(id) || now - r.atMs > LAUNCH_VISIBLE_MS) this.#recent.delete(id);
      else hosts.set(id, r.subnetId);
    }
    return hosts;
  }

  /**
   * The subnets to try, best first: the one with fewest of our hosts (ties
   * go round-robin, so launches rotate), then the rest in order.
   */
  #subnetOrder(hosts: Map<string, string | undefined>): (string | undefined)[] {
    const ids = this.config.subnetIds;
    if (ids.length === 0) return [undefined];
    const load = new Map(ids.map((id) => [id, 0]));
    for (const subnet of hosts.values()) if (subnet && load.has(subnet)) load.set(subnet, load.get(subnet)! + 1);
    let best = this.#cursor % ids.length;
    for (let k = 1; k < ids.length; k++) {
      const j = (this.#cursor + k) % ids.length;
      if (load.get(ids[j]!)! < load.get(ids[best]!)!) best = j;
    }
    this.#cursor = best + 1;
    return ids.map((_, k) => ids[(best + k) % ids.length]!);
  }

  #runInput(subnetId: string | undefined): RunInstancesCommandInput {
    const c = this.config;
    const tagMap = new Map<string, string>([['Name', `${this.prefix}-host`]]);
    for (const [k, v] of Object.entries(c.tags)) tagMap.set(k, v);
    tagMap.set(CLUSTER_TAG, this.prefix);
    tagMap.set(ROLE_TAG, ROLE);
    const tagList: Tag[] = [...tagMap].map(([Key, Value]) => ({ Key, Value }));
    const input: RunInstancesCommandInput = {
      MinCount: 1,
      MaxCount: 1,
      // The SDK retries a request whose answer was lost with the same token,
      // so a timeout cannot launch a second instance.
      ClientToken: randomUUID(),
      // A bootstrap that gives up (or an operator's `poweroff`) ends the
      // instance instead of leaving a stopped one that no limit counts.
      InstanceInitiatedShutdownBehavior: 'terminate',
      // IMDSv2 only, one hop: processes in the sandbox containers (one hop
      // further, behind Docker's bridge) cannot get a metadata token.
      MetadataOptions: { HttpEndpoint: 'enabled', HttpTokens: 'required', HttpPutResponseHopLimit: 1 },
      TagSpecifications: [
        { ResourceType: 'instance', Tags: tagList },
        { ResourceType: 'volume', Tags: tagList },
      ],
      UserData: this.#userData,
    };
    if (c.launchTemplate) {
      input.LaunchTemplate = {
        ...(c.launchTemplate.id ? { LaunchTemplateId: c.launchTemplate.id } : { LaunchTemplateName: c.launchTemplate.name }),
        ...(c.launchTemplate.version ? { Version: c.launchTemplate.version } : {}),
      };
    }
    if (c.ami) input.ImageId = c.ami;
    if (c.instanceType) input.InstanceType = c.instanceType as _InstanceType;
    if (subnetId) input.SubnetId = subnetId;
    if (c.securityGroupIds.length > 0) input.SecurityGroupIds = [...c.securityGroupIds];
    if (c.instanceProfile) input.IamInstanceProfile = c.instanceProfile.startsWith('arn:') ? { Arn: c.instanceProfile } : { Name: c.instanceProfile };
    if (c.keyName) input.KeyName = c.keyName;
    if (c.rootVolumeGb) {
      input.BlockDeviceMappings = [{ DeviceName: c.rootDevice, Ebs: { VolumeSize: c.rootVolumeGb, VolumeType: 'gp3', DeleteOnTermination: true } }];
    }
    return input;
  }

  /** Terminate one of this cluster's instances; an instance already gone is done. */
  async terminate(hostId: string): Promise<void> {
    const ownership = await this.#ownership(hostId);
    if (ownership === 'gone') {
      this.#recent.delete(hostId);
      this.log.info({ hostId }, 'host already gone');
      return;
    }
    if (ownership === 'foreign') {
      throw new OmegaError('PROVIDER_FAILED', `ec2: refusing to terminate ${hostId}: it is not an instance tagged ${CLUSTER_TAG}=${this.prefix}, ${ROLE_TAG}=${ROLE}`, {
        details: { hostId },
      });
    }
    try {
      const { sdk, client } = await this.#aws;
      await client.send(new sdk.TerminateInstancesCommand({ InstanceIds: [hostId] }));
    } catch (err) {
      if (awsErrorName(err) !== 'InvalidInstanceID.NotFound') throw awsFailure('TerminateInstances', err);
    }
    this.#recent.delete(hostId);
    this.log.info({ hostId }, 'host terminated');
  }

  /**
   * A host lost for OMEGA_EC2_LOST_SECONDS is terminated (if it is one of
   * this cluster's instances, as terminate checks), so a dead or unreachable
   * instance stops counting towards OMEGA_EC2_MAX_HOSTS and costing money;
   * the master then forgets it. Anything else (a host that is no instance of
   * ours) is only reported. Before the time, nothing is asked of AWS.
   */
  async hostLost(hostId: string, lostForMs: number): Promise<LostHostAction> {
    const after = this.config.lostSeconds;
    if (after === 0) return 'reported';
    if (lostForMs < after * 1000) return 'none';
    if ((await this.#ownership(hostId)) === 'foreign') return 'reported';
    this.log.warn({ hostId, lostSeconds: Math.round(lostForMs / 1000) }, `host lost for more than OMEGA_EC2_LOST_SECONDS=${after}: terminating it`);
    await this.terminate(hostId);
    return 'terminated';
  }

  /** Whether hostId is an instance this cluster launched (tagged as such); false for anything else. */
  async owns(hostId: string): Promise<boolean> {
    return (await this.#ownership(hostId)) === 'owned';
  }

  async #ownership(hostId: string): Promise<Ownership> {
    if (!INSTANCE_ID.test(hostId)) return 'foreign';
    const now = this.now();
    const cached = this.#owns.get(hostId);
    if (cached && now - cached.atMs < OWNS_CACHE_MS) return cached.ownership;
    let ownership: Ownership;
    try {
      const { sdk, client } = await this.#aws;
      const out = await client.send(new sdk.DescribeInstancesCommand({ InstanceIds: [hostId] }));
      const instance = out.Reservations?.flatMap((r) => r.Instances ?? []).find((i) => i.InstanceId === hostId);
      if (!instance) ownership = 'gone';
      else {
        const tag = (key: string) => instance.Tags?.find((t) => t.Key === key)?.Value;
        ownership = tag(CLUSTER_TAG) === this.prefix && tag(ROLE_TAG) === ROLE ? 'owned' : 'foreign';
      }
    } catch (err) {
      if (awsErrorName(err) !== 'InvalidInstanceID.NotFound') throw awsFailure('DescribeInstances', err);
      ownership = 'gone';
    }
    for (const [id, e] of this.#owns) if (now - e.atMs >= OWNS_CACHE_MS) this.#owns.delete(id);
    this.#owns.set(hostId, { ownership, atMs: now });
    return ownership;
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    const aws = await this.#aws.catch(() => null); // not loaded: nothing to destroy (the failure was logged)
    aws?.client.destroy();
  }
}
