import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  DescribeInstancesCommand,
  EC2Client,
  RunInstancesCommand,
  TerminateInstancesCommand,
  type _InstanceType,
  type Filter,
  type Instance,
  type RunInstancesCommandInput,
  type Tag,
} from '@aws-sdk/client-ec2';
import { perTemplateText } from '../../src/config/common.js';
import { ConfigError, int, type Setting, type SettingsValues } from '../../src/config/settings.js';
import { OmegaError } from '../../src/errors.js';
import type { Logger } from '../../src/log.js';
import type { LaunchedHost, Provider } from './provider.js';

/**
 * The `ec2` provider: new hosts are EC2 instances launched from a Debian 12
 * AMI (or a launch template) whose user data (infra/ec2/user-data.sh) installs
 * Omega and starts `omega manager`, which registers under its instance id.
 * Every instance it launches carries omega:cluster=<OMEGA_REDIS_PREFIX> and
 * omega:role=host, and it only ever terminates instances that carry both.
 */

// ---- settings --------------------------------------------------------------

const INSTANCE_ID = /^i-[0-9a-f]{8,17}$/;
const TEMPLATE_NAME = /^[A-Za-z0-9().\-/_]{3,128}$/;
const CLUSTER_TAG = 'omega:cluster';
const ROLE_TAG = 'omega:role';
const ROLE = 'host';

function idList(prefix: string, what: string): (raw: string) => string[] {
  const re = new RegExp(`^${prefix}-[0-9a-f]{8,17}$`);
  return (raw) => {
    const list = raw.split(',').map((s) => s.trim()).filter(Boolean);
    for (const id of list) if (!re.test(id)) throw new Error(`"${id}" is not ${what} (${prefix}-...)`);
    return list;
  };
}

function sha256(raw: string): string {
  if (!/^[0-9a-f]{64}$/i.test(raw.trim())) throw new Error('must be a SHA-256 in hex (64 characters)');
  return raw.trim().toLowerCase();
}

export interface LaunchTemplateRef {
  id?: string;
  name?: string;
  /** `$Latest`, `$Default` or a number; absent: the template's default version. */
  version?: string;
}

/** `lt-0abc...` or a template name, optionally `:<version>` (a number, latest or default). */
function launchTemplate(raw: string): LaunchTemplateRef {
  const [ref = '', version, ...rest] = raw.trim().split(':');
  if (rest.length > 0) throw new Error('must be <id or name>[:<version>]');
  const out: LaunchTemplateRef = /^lt-[0-9a-f]{8,17}$/.test(ref) ? { id: ref } : { name: ref };
  if (out.name !== undefined && !TEMPLATE_NAME.test(out.name)) throw new Error('must be a launch template id (lt-...) or name, optionally :<version>');
  if (version !== undefined) {
    const v = version.toLowerCase().replace(/^\$/, '');
    if (v === 'latest') out.version = '$Latest';
    else if (v === 'default') out.version = '$Default';
    else if (/^[1-9]\d*$/.test(v)) out.version = v;
    else throw new Error('version must be a number, latest or default');
  }
  return out;
}

function tags(raw: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of raw.split(',').map((s) => s.trim()).filter(Boolean)) {
    const i = item.indexOf('=');
    if (i <= 0) throw new Error('must be key=value,...');
    const key = item.slice(0, i).trim();
    const value = item.slice(i + 1).trim();
    if (key.length > 128 || value.length > 256) throw new Error(`tag "${key}": keys are at most 128 characters, values 256`);
    if (/^aws:/i.test(key)) throw new Error(`tag "${key}": the aws: prefix is reserved by AWS`);
    if (key === CLUSTER_TAG || key === ROLE_TAG) throw new Error(`tag "${key}" is set by Omega itself`);
    out[key] = value;
  }
  return out;
}

export interface OmegaSource {
  kind: 'git' | 'tarball';
  url: string;
}

/** An https URL: a .tar.gz/.tgz (path, not query) is a tarball, anything else a git repository. */
function omegaSource(raw: string): OmegaSource {
  let u: URL;
  try {
    u = new URL(raw.trim());
  } catch {
    throw new Error('must be an https:// git repository or .tar.gz URL');
  }
  if (u.protocol !== 'https:') throw new Error('must be an https:// URL');
  return { kind: /\.(tar\.gz|tgz)$/.test(u.pathname) ? 'tarball' : 'git', url: raw.trim() };
}

export const ec2Settings = {
  ec2Region: {
    env: 'OMEGA_EC2_REGION',
    flag: 'ec2-region',
    description: 'ec2 provider: AWS region hosts are launched in (required with OMEGA_PROVIDER=ec2)',
    default: undefined as string | undefined,
    parse: (raw: string) => {
      if (!/^[a-z]{2}(-[a-z]+)+-\d{1,2}$/.test(raw.trim())) throw new Error('must be a region such as eu-west-1');
      return raw.trim();
    },
  } satisfies Setting<string | undefined>,
  ec2LaunchTemplate: {
    env: 'OMEGA_EC2_LAUNCH_TEMPLATE',
    flag: 'ec2-launch-template',
    description: 'ec2 provider: launch template, lt-... or its name, optionally :<version|latest|default>; the settings below override it',
    default: undefined as LaunchTemplateRef | undefined,
    parse: launchTemplate,
  } satisfies Setting<LaunchTemplateRef | undefined>,
  ec2Ami: {
    env: 'OMEGA_EC2_AMI',
    flag: 'ec2-ami',
    description: 'ec2 provider: Debian 12 AMI, ami-... or resolve:ssm:<parameter> (required without a launch template)',
    default: undefined as string | undefined,
    parse: (raw: string) => {
      const v = raw.trim();
      if (!/^ami-[0-9a-f]{8,17}$/.test(v) && !/^resolve:ssm:[A-Za-z0-9_.\-/:]+$/.test(v)) throw new Error('must be ami-... or resolve:ssm:<parameter>');
      return v;
    },
  } satisfies Setting<string | undefined>,
  ec2InstanceType: {
    env: 'OMEGA_EC2_INSTANCE_TYPE',
    flag: 'ec2-instance-type',
    description: 'ec2 provider: instance type, e.g. m7i.xlarge (required without a launch template)',
    default: undefined as string | undefined,
    parse: (raw: string) => {
      if (!/^[a-z][a-z0-9-]*\.[a-z0-9-]+$/.test(raw.trim())) throw new Error('must be an instance type such as m7i.xlarge');
      return raw.trim();
    },
  } satisfies Setting<string | undefined>,
  ec2SubnetIds: {
    env: 'OMEGA_EC2_SUBNET_IDS',
    flag: 'ec2-subnet-ids',
    description: 'ec2 provider: subnets, comma-separated; each launch goes to the one with fewest of our hosts',
    default: [] as string[],
    defaultText: '(the launch template\'s, else the default VPC\'s)',
    parse: idList('subnet', 'a subnet id'),
  } satisfies Setting<string[]>,
  ec2SecurityGroupIds: {
    env: 'OMEGA_EC2_SECURITY_GROUP_IDS',
    flag: 'ec2-security-group-ids',
    description: 'ec2 provider: security groups of a host, comma-separated (the manager port from the master, sandbox ports from users)',
    default: [] as string[],
    defaultText: '(the launch template\'s)',
    parse: idList('sg', 'a security group id'),
  } satisfies Setting<string[]>,
  ec2InstanceProfile: {
    env: 'OMEGA_EC2_INSTANCE_PROFILE',
    flag: 'ec2-instance-profile',
    description: 'ec2 provider: IAM instance profile of a host, name or ARN (needs iam:PassRole)',
    default: undefined as string | undefined,
    parse: (raw: string) => {
      const v = raw.trim();
      if (!/^arn:aws[a-z-]*:iam::\d{12}:instance-profile\/[\w+=,.@/-]+$/.test(v) && !/^[\w+=,.@-]{1,128}$/.test(v)) throw new Error('must be an instance profile name or ARN');
      return v;
    },
  } satisfies Setting<string | undefined>,
  ec2KeyName: {
    env: 'OMEGA_EC2_KEY_NAME',
    flag: 'ec2-key-name',
    description: 'ec2 provider: EC2 key pair for SSH to a host',
    default: undefined as string | undefined,
    parse: (raw: string) => raw.trim(),
  } satisfies Setting<string | undefined>,
  ec2MaxHosts: { env: 'OMEGA_EC2_MAX_HOSTS', flag: 'ec2-max-hosts', description: 'ec2 provider: most hosts pending or running at once', default: 10, parse: int(1, 10_000) },
  ec2MinHosts: { env: 'OMEGA_EC2_MIN_HOSTS', flag: 'ec2-min-hosts', description: 'ec2 provider: scale-in keeps at least this many hosts', default: 0, parse: int(0, 10_000) },
  ec2IdleSeconds: {
    env: 'OMEGA_EC2_IDLE_SECONDS',
    flag: 'ec2-idle-seconds',
    description: 'ec2 provider: a host without sandboxes this long is terminated by scale-in (0: never)',
    default: 900,
    parse: int(0, 7 * 86_400),
  },
  ec2Tags: {
    env: 'OMEGA_EC2_TAGS',
    flag: 'ec2-tags',
    description: 'ec2 provider: extra tags of a host and its volumes, key=value,... (Name overrides <OMEGA_REDIS_PREFIX>-host)',
    default: {} as Record<string, string>,
    defaultText: '(none)',
    parse: tags,
  } satisfies Setting<Record<string, string>>,
  ec2HostCapacity: { env: 'OMEGA_EC2_HOST_CAPACITY', flag: 'ec2-host-capacity', description: 'ec2 provider: OMEGA_CAPACITY of a new host\'s manager', default: 20, parse: int(1, 10_000) },
  ec2PoolSize: {
    env: 'OMEGA_EC2_POOL_SIZE',
    flag: 'ec2-pool-size',
    description: 'ec2 provider: OMEGA_POOL_SIZE of a new host\'s manager: a number or node=2,python=1',
    default: undefined as string | undefined,
    defaultText: '(the manager\'s)',
    parse: perTemplateText,
  } satisfies Setting<string | undefined>,
  ec2ManagerPort: { env: 'OMEGA_EC2_MANAGER_PORT', flag: 'ec2-manager-port', description: 'ec2 provider: port of a new host\'s manager API on its private IP', default: 7070, parse: int(1, 65_535) },
  ec2RootVolumeGb: {
    env: 'OMEGA_EC2_ROOT_VOLUME_GB',
    flag: 'ec2-root-volume-gb',
    description: 'ec2 provider: size of a host\'s root volume (gp3); images and workspaces live there',
    default: undefined as number | undefined,
    defaultText: '30 without a launch template, else the template\'s',
    parse: int(8, 16_384),
  } satisfies Setting<number | undefined>,
  ec2RootDevice: {
    env: 'OMEGA_EC2_ROOT_DEVICE',
    flag: 'ec2-root-device',
    description: 'ec2 provider: the AMI\'s root device name, for the root volume size',
    default: '/dev/xvda',
    parse: (raw: string) => {
      if (!/^\/dev\/[a-z0-9]+$/.test(raw.trim())) throw new Error('must be a device name such as /dev/xvda');
      return raw.trim();
    },
  } satisfies Setting<string>,
  ec2OmegaSource: {
    env: 'OMEGA_EC2_OMEGA_SOURCE',
    flag: 'ec2-omega-source',
    description: 'ec2 provider: where a new host gets Omega: an https git repository, or an https .tar.gz of the tree',
    default: undefined as OmegaSource | undefined,
    secret: true,
    parse: omegaSource,
  } satisfies Setting<OmegaSource | undefined>,
  ec2OmegaRef: {
    env: 'OMEGA_EC2_OMEGA_REF',
    flag: 'ec2-omega-ref',
    description: 'ec2 provider: git branch, tag or commit of OMEGA_EC2_OMEGA_SOURCE',
    default: 'main',
    parse: (raw: string) => {
      if (!/^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$/.test(raw.trim()) || raw.includes('..')) throw new Error('must be a branch, tag or commit');
      return raw.trim();
    },
  } satisfies Setting<string>,
  ec2OmegaSha256: {
    env: 'OMEGA_EC2_OMEGA_SHA256',
    flag: 'ec2-omega-sha256',
    description: 'ec2 provider: SHA-256 the OMEGA_EC2_OMEGA_SOURCE tarball must have',
    default: undefined as string | undefined,
    parse: sha256,
  } satisfies Setting<string | undefined>,
  ec2NodeVersion: {
    env: 'OMEGA_EC2_NODE_VERSION',
    flag: 'ec2-node-version',
    description: 'ec2 provider: Node.js installed on a host from nodejs.org: a major (its newest release) or x.y.z',
    default: '20',
    parse: (raw: string) => {
      const m = /^v?(\d+)(\.\d+\.\d+)?$/.exec(raw.trim());
      if (!m) throw new Error('must be a major version (20) or an exact one (20.19.5)');
      if (Number(m[1]) < 20) throw new Error('Omega needs Node.js 20 or newer');
      return raw.trim().replace(/^v/, '');
    },
  } satisfies Setting<string>,
  ec2NodeSha256: {
    env: 'OMEGA_EC2_NODE_SHA256',
    flag: 'ec2-node-sha256',
    description: 'ec2 provider: SHA-256 the Node.js tarball must have (with an exact OMEGA_EC2_NODE_VERSION)',
    default: undefined as string | undefined,
    parse: sha256,
  } satisfies Setting<string | undefined>,
  ec2UserDataTemplate: {
    env: 'OMEGA_EC2_USER_DATA_TEMPLATE',
    flag: 'ec2-user-data-template',
    description: 'ec2 provider: user data template with @@NAME@@ placeholders',
    default: undefined as string | undefined,
    defaultText: 'infra/ec2/user-data.sh',
    parse: (raw: string) => {
      if (!existsSync(raw)) throw new Error('no such file');
      return raw;
    },
  } satisfies Setting<string | undefined>,
};

export type Ec2Settings = SettingsValues<typeof ec2Settings>;

export interface Ec2Config {
  region: string;
  launchTemplate?: LaunchTemplateRef;
  ami?: string;
  instanceType?: string;
  subnetIds: readonly string[];
  securityGroupIds: readonly string[];
  instanceProfile?: string;
  keyName?: string;
  maxHosts: number;
  minHosts: number;
  idleSeconds: number;
  tags: Readonly<Record<string, string>>;
  hostCapacity: number;
  poolSize?: string;
  managerPort: number;
  rootVolumeGb?: number;
  rootDevice: string;
  omegaSource?: OmegaSource;
  omegaRef: string;
  omegaSha256?: string;
  nodeVersion: string;
  nodeSha256?: string;
  /** Path of the user data template. */
  userDataTemplate: string;
}

/** The bundled template, from source (master/providers/) or built (dist/master/providers/). */
function bundledUserData(): string {
  const candidates = ['../../infra/ec2/user-data.sh', '../../../infra/ec2/user-data.sh'].map((rel) => fileURLToPath(new URL(rel, import.meta.url)));
  return candidates.find((p) => existsSync(p)) ?? candidates[0]!;
}

/**
 * The ec2 provider's config from the (master's) loaded settings: the checks
 * that span settings, each problem naming its variable. Called only when
 * OMEGA_PROVIDER=ec2.
 */
export function loadEc2Config(s: Ec2Settings): Ec2Config {
  const problems: string[] = [];
  if (!s.ec2Region) problems.push('OMEGA_EC2_REGION / --ec2-region: required with OMEGA_PROVIDER=ec2 (e.g. eu-west-1)');
  if (!s.ec2LaunchTemplate) {
    if (!s.ec2Ami) problems.push('OMEGA_EC2_AMI / --ec2-ami: required with OMEGA_PROVIDER=ec2 unless OMEGA_EC2_LAUNCH_TEMPLATE is given');
    if (!s.ec2InstanceType) problems.push('OMEGA_EC2_INSTANCE_TYPE / --ec2-instance-type: required with OMEGA_PROVIDER=ec2 unless OMEGA_EC2_LAUNCH_TEMPLATE is given');
  }
  if (s.ec2MinHosts > s.ec2MaxHosts) problems.push('OMEGA_EC2_MIN_HOSTS: must not exceed OMEGA_EC2_MAX_HOSTS');
  if (!s.ec2OmegaSource && !s.ec2UserDataTemplate) {
    problems.push('OMEGA_EC2_OMEGA_SOURCE / --ec2-omega-source: required with OMEGA_PROVIDER=ec2 (an https git repository or .tar.gz new hosts install Omega from)');
  }
  if (s.ec2OmegaSha256 && s.ec2OmegaSource?.kind !== 'tarball') problems.push('OMEGA_EC2_OMEGA_SHA256: only applies to a .tar.gz OMEGA_EC2_OMEGA_SOURCE');
  if (s.ec2NodeSha256 && !s.ec2NodeVersion.includes('.')) problems.push('OMEGA_EC2_NODE_SHA256: needs an exact OMEGA_EC2_NODE_VERSION (x.y.z), not a major');
  if (problems.length > 0) throw new ConfigError(problems);
  const c: Ec2Config = {
    region: s.ec2Region!,
    subnetIds: Object.freeze([...s.ec2SubnetIds]),
    securityGroupIds: Object.freeze([...s.ec2SecurityGroupIds]),
    maxHosts: s.ec2MaxHosts,
    minHosts: s.ec2MinHosts,
    idleSeconds: s.ec2IdleSeconds,
    tags: Object.freeze({ ...s.ec2Tags }),
    hostCapacity: s.ec2HostCapacity,
    managerPort: s.ec2ManagerPort,
    rootVolumeGb: s.ec2RootVolumeGb ?? (s.ec2LaunchTemplate ? undefined : 30),
    rootDevice: s.ec2RootDevice,
    omegaRef: s.ec2OmegaRef,
    nodeVersion: s.ec2NodeVersion,
    userDataTemplate: s.ec2UserDataTemplate ?? bundledUserData(),
  };
  // Optional values only when set, so the object has no undefined keys.
  const optional = {
    launchTemplate: s.ec2LaunchTemplate,
    ami: s.ec2Ami,
    instanceType: s.ec2InstanceType,
    instanceProfile: s.ec2InstanceProfile,
    keyName: s.ec2KeyName,
    poolSize: s.ec2PoolSize,
    omegaSource: s.ec2OmegaSource,
    omegaSha256: s.ec2OmegaSha256,
    nodeSha256: s.ec2NodeSha256,
  };
  for (const [k, v] of Object.entries(optional)) if (v !== undefined) (c as unknown as Record<string, unknown>)[k] = v;
  return Object.freeze(c);
}

// ---- user data -------------------------------------------------------------

/** What the provider hands to every host it launches; the two secrets are used only in the user data. */
export interface Ec2Cluster {
  /** OMEGA_REDIS_URL of the new managers (may hold a password). */
  redisUrl: string;
  /** OMEGA_REDIS_PREFIX: also the omega:cluster tag of every instance. */
  redisPrefix: string;
  /** OMEGA_MANAGER_TOKEN of the new managers. */
  managerToken: string;
  /** OMEGA_ZONE. */
  zone: string;
}

/** A single-quoted shell word: nothing inside is expanded. */
export function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/**
 * One line of a systemd EnvironmentFile: double quotes, in which systemd
 * takes \ " ` $ after a backslash literally (systemd.exec(5), "EnvironmentFile=").
 */
export function envLine(key: string, value: string): string {
  if (/[\x00-\x1f\x7f]/.test(value)) throw new ConfigError([`${key}: a value for a new host may not contain control characters or line breaks`]);
  return `${key}="${value.replace(/[\\"`$]/g, '\\$&')}"`;
}

/** Fill each @@NAME@@ of a shell template with the single-quoted value; every placeholder must have one. */
export function renderTemplate(template: string, values: Record<string, string>): string {
  const missing = new Set<string>();
  const out = template.replace(/@@([A-Z0-9_]+)@@/g, (_, name: string) => {
    const v = values[name];
    if (v === undefined) {
      missing.add(name);
      return '';
    }
    return shellQuote(v);
  });
  if (missing.size > 0) throw new ConfigError([`OMEGA_EC2_USER_DATA_TEMPLATE: no value for ${[...missing].map((m) => `@@${m}@@`).join(', ')}`]);
  return out;
}

/** EC2 takes at most 16 KB of user data before base64. */
export const USER_DATA_MAX_BYTES = 16_384;

/** The user data script of a new host (the manager's secrets included; never log it). */
export function renderUserData(config: Ec2Config, cluster: Ec2Cluster): string {
  const env = [
    envLine('OMEGA_REDIS_URL', cluster.redisUrl),
    envLine('OMEGA_REDIS_PREFIX', cluster.redisPrefix),
    envLine('OMEGA_MANAGER_TOKEN', cluster.managerToken),
    envLine('OMEGA_ZONE', cluster.zone),
    envLine('OMEGA_CAPACITY', String(config.hostCapacity)),
    ...(config.poolSize ? [envLine('OMEGA_POOL_SIZE', config.poolSize)] : []),
  ];
  const script = renderTemplate(readFileSync(config.userDataTemplate, 'utf8'), {
    OMEGA_SOURCE: config.omegaSource?.url ?? '',
    OMEGA_SOURCE_KIND: config.omegaSource?.kind ?? '',
    OMEGA_REF: config.omegaRef,
    OMEGA_SHA256: config.omegaSha256 ?? '',
    NODE_VERSION: config.nodeVersion,
    NODE_SHA256: config.nodeSha256 ?? '',
    MANAGER_PORT: String(config.managerPort),
    MANAGER_ENV: env.join('\n'),
  });
  const bytes = Buffer.byteLength(script);
  if (bytes > USER_DATA_MAX_BYTES) throw new ConfigError([`OMEGA_EC2_USER_DATA_TEMPLATE: the user data is ${bytes} bytes; EC2 takes at most ${USER_DATA_MAX_BYTES}`]);
  return script;
}

/** A URL without its user:password@, for log lines. */
function withoutCredentials(url: string): string {
  return url.replace(/\/\/[^/@]*@/, '//***@');
}

/** Loopback hosts in a Redis URL (also sentinel/cluster lists): a remote host cannot reach them. */
function loopbackHosts(redisUrl: string): string[] {
  const m = /^[a-z+]+:\/\/(?:[^@/]*@)?([^/?#]+)/i.exec(redisUrl);
  if (!m) return [];
  return m[1]!.split(',').map((hp) => hp.replace(/:\d+$/, '').replace(/^\[|\]$/g, '')).filter((h) => h === 'localhost' || h === '::1' || h.startsWith('127.'));
}

// ---- the provider ----------------------------------------------------------

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

function awsErrorName(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'name' in err && typeof err.name === 'string' ? err.name : undefined;
}

/** An AWS failure as PROVIDER_FAILED, its message naming the operation and AWS's error code. */
function awsFailure(operation: string, err: unknown): OmegaError {
  if (err instanceof OmegaError) return err;
  const name = awsErrorName(err) ?? 'Error';
  const message = err instanceof Error ? err.message : String(err);
  const requestId = (err as { $metadata?: { requestId?: string } } | null)?.$metadata?.requestId;
  return new OmegaError('PROVIDER_FAILED', `ec2 ${operation} failed: ${name}: ${message}`, {
    cause: err,
    details: { operation, awsError: name, ...(requestId ? { requestId } : {}) },
  });
}

export class Ec2Provider implements Provider {
  readonly name = 'ec2';
  /** Scale-in keeps at least this many hosts. */
  readonly minHosts: number;
  /** A host without sandboxes this long may be terminated by scale-in. */
  readonly idleSeconds: number;

  private readonly log: Logger;
  private readonly client: EC2Client;
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
    this.minHosts = config.minHosts;
    this.idleSeconds = config.idleSeconds;
    this.prefix = cluster.redisPrefix;
    this.now = deps.now ?? Date.now;
    this.log = deps.log.child({ provider: 'ec2' });
    this.#userData = Buffer.from(renderUserData(config, cluster)).toString('base64');
    this.client = deps.client ?? new EC2Client({ region: config.region });
    this.log.info(
      {
        region: config.region,
        launchTemplate: config.launchTemplate,
        ami: config.ami,
        instanceType: config.instanceType,
        subnetIds: config.subnetIds,
        maxHosts: config.maxHosts,
        minHosts: config.minHosts,
        cluster: this.prefix,
        source: config.omegaSource ? `${config.omegaSource.kind} ${withoutCredentials(config.omegaSource.url)}` : 'custom user data',
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
        const out = await this.client.send(new RunInstancesCommand(this.#runInput(subnetId)));
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
      do {
        const page = await this.client.send(new DescribeInstancesCommand({ Filters: filters, MaxResults: 1000, NextToken: nextToken }));
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
      await this.client.send(new TerminateInstancesCommand({ InstanceIds: [hostId] }));
    } catch (err) {
      if (awsErrorName(err) !== 'InvalidInstanceID.NotFound') throw awsFailure('TerminateInstances', err);
    }
    this.#recent.delete(hostId);
    this.log.info({ hostId }, 'host terminated');
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
      const out = await this.client.send(new DescribeInstancesCommand({ InstanceIds: [hostId] }));
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
    this.client.destroy();
  }
}
