import { existsSync } from 'node:fs';
import { perTemplateText } from '../../../src/config/common.js';
import { ConfigError, int, type Setting, type SettingsValues } from '../../../src/config/settings.js';
import { CLUSTER_TAG, ROLE_TAG } from './tags.js';
import { bundledUserData } from './user-data.js';

/**
 * The ec2 provider's settings (OMEGA_EC2_*), part of the master's, and the
 * checks that span them. Nothing here loads the AWS SDK: `omega <any> --help`
 * and every program import these.
 */

const TEMPLATE_NAME = /^[A-Za-z0-9().\-/_]{3,128}$/;

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
  ec2LostSeconds: {
    env: 'OMEGA_EC2_LOST_SECONDS',
    flag: 'ec2-lost-seconds',
    description: 'ec2 provider: a host whose heartbeat has been lapsed this long is terminated, freeing its capacity (0: never; only reported)',
    default: 600,
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
  /** A lost host is terminated after this long (0: never). */
  lostSeconds: number;
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
    lostSeconds: s.ec2LostSeconds,
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

