import { resolve } from 'node:path';
import { commonSettings, snapshotSettings, devSetting, perTemplateText, templateList, tokenSetting } from '../src/config/common.js';
import { ec2Settings, loadEc2Config, type Ec2Config } from './providers/ec2/settings.js';
import { tlsProblems, tlsSettings } from './tls-settings.js';
import { TEMPLATE_NAME_PATTERN } from '../src/protocol/master.js';
import { bool, ConfigError, hostPort, loopbackV4, int, loadSettings, oneOf, zoneName, type LoadOptions, type Setting, type SettingsValues } from '../src/config/settings.js';

const url = (raw: string): string => {
  const u = new URL(raw);
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('must be an http:// or https:// URL');
  return raw.replace(/\/+$/, '');
};

export const masterSettings = {
  ...commonSettings,
  ...snapshotSettings,
  listen: { env: 'OMEGA_MASTER_LISTEN', flag: 'listen', description: 'Address of the public API', default: { host: '127.0.0.1', port: 8080 }, defaultText: '127.0.0.1:8080', parse: hostPort() },
  token: tokenSetting('OMEGA_API_TOKEN', 'the public API'),
  dev: devSetting('the public API'),
  zone: { env: 'OMEGA_ZONE', flag: 'zone', description: 'The sandbox zone: a sandbox is <id>.<zone>', default: 'sandbox.test', parse: zoneName } satisfies Setting<string>,
  dnsApiUrl: { env: 'OMEGA_DNS_API_URL', flag: 'dns-api-url', description: 'The record API of omega dns', default: 'http://127.0.0.1:8053', parse: url } satisfies Setting<string>,
  dnsToken: { ...tokenSetting('OMEGA_DNS_TOKEN', 'the DNS record API'), flag: 'dns-token', description: 'Bearer token of the DNS record API' },
  managerToken: { ...tokenSetting('OMEGA_MANAGER_TOKEN', 'the managers\' APIs'), flag: 'manager-token', description: 'Bearer token of the managers\' APIs' },
  templates: {
    env: 'OMEGA_TEMPLATES',
    flag: 'templates',
    description: 'Templates a sandbox may be created from (the managers must have their images)',
    default: ['node', 'python'],
    parse: templateList,
  } satisfies Setting<string[]>,
  e2bBaseTemplate: {
    env: 'OMEGA_E2B_BASE_TEMPLATE',
    flag: 'e2b-base-template',
    description: "The template E2B's default `base` stands for in the E2B API (the SDK's Sandbox.create() without one), unless a template is named base",
    default: 'python',
    parse: (raw: string) => {
      if (!new RegExp(TEMPLATE_NAME_PATTERN).test(raw)) throw new Error('must be a template name');
      return raw;
    },
  } satisfies Setting<string>,
  sandboxInternet: {
    env: 'OMEGA_SANDBOX_INTERNET',
    flag: 'sandbox-internet',
    description: 'Whether a sandbox created without `internet` has outbound network (to the internet only: never private or host addresses)',
    default: true,
    boolean: true,
    parse: bool(),
  } satisfies Setting<boolean>,
  dnsTtl: { env: 'OMEGA_SANDBOX_DNS_TTL', flag: 'sandbox-dns-ttl', description: 'TTL of a sandbox\'s A records (an id is not reused for twice this long)', default: 30, parse: int(1, 86_400) },
  defaultTimeoutSeconds: { env: 'OMEGA_DEFAULT_TIMEOUT_SECONDS', flag: 'default-timeout-seconds', description: 'Lifetime of a sandbox created without timeoutSeconds', default: 900, parse: int(10, 31 * 86_400) },
  maxTimeoutSeconds: { env: 'OMEGA_MAX_TIMEOUT_SECONDS', flag: 'max-timeout-seconds', description: 'Longest lifetime a create or an extension may ask for', default: 86_400, parse: int(10, 366 * 86_400) },
  createTimeoutMs: { env: 'OMEGA_CREATE_TIMEOUT_MS', flag: 'create-timeout-ms', description: 'How long a manager may take to start a sandbox', default: 60_000, parse: int(1000, 600_000) },
  provider: { env: 'OMEGA_PROVIDER', flag: 'provider', description: 'Where new hosts come from when all are full: none, local (managers on 127.0.0.x) or ec2', default: 'none' as const, parse: oneOf('none', 'local', 'ec2') },
  scaleOutWaitMs: { env: 'OMEGA_SCALE_OUT_WAIT_MS', flag: 'scale-out-wait-ms', description: 'How long a create waits for a new host to register', default: 60_000, parse: int(1000, 1_800_000) },
  minHosts: { env: 'OMEGA_MIN_HOSTS', flag: 'min-hosts', description: 'Scale-in never goes below this many hosts (local provider; ec2 has OMEGA_EC2_MIN_HOSTS)', default: 1, parse: int(0, 10_000) },
  hostIdleSeconds: { env: 'OMEGA_HOST_IDLE_SECONDS', flag: 'host-idle-seconds', description: 'A local provider\'s host empty this long is stopped (0: never; ec2 has OMEGA_EC2_IDLE_SECONDS)', default: 0, parse: int(0, 7 * 86_400) },
  localFirstAddress: {
    env: 'OMEGA_LOCAL_FIRST_ADDRESS',
    flag: 'local-first-address',
    description: 'local provider: address of its first host; the next ones count up (127.0.0.3, ...)',
    default: '127.0.0.2',
    parse: loopbackV4(),
  } satisfies Setting<string>,
  localMaxHosts: { env: 'OMEGA_LOCAL_MAX_HOSTS', flag: 'local-max-hosts', description: 'local provider: most hosts it starts', default: 4, parse: int(1, 250) },
  localCapacity: { env: 'OMEGA_LOCAL_CAPACITY', flag: 'local-capacity', description: 'local provider: OMEGA_CAPACITY of the managers it starts', default: 10, parse: int(1, 10_000) },
  localPoolSize: {
    env: 'OMEGA_LOCAL_POOL_SIZE',
    flag: 'local-pool-size',
    description: 'local provider: OMEGA_POOL_SIZE of the managers it starts',
    default: '1',
    parse: perTemplateText,
  } satisfies Setting<string>,
  localIngressPort: { env: 'OMEGA_LOCAL_INGRESS_PORT', flag: 'local-ingress-port', description: 'local provider: port of each host\'s TLS ingress on its address (OMEGA_TLS not off)', default: 443, parse: int(0, 65_535) },
  localManagerPort: { env: 'OMEGA_LOCAL_MANAGER_PORT', flag: 'local-manager-port', description: 'local provider: port of each manager API on its address', default: 7070, parse: int(1, 65_535) },
  reapIntervalMs: { env: 'OMEGA_REAP_INTERVAL_MS', flag: 'reap-interval-ms', description: 'How often expired sandboxes and lapsed hosts are looked for', default: 1000, parse: int(50, 60_000) },
  frozenSeconds: { env: 'OMEGA_FROZEN_SECONDS', flag: 'frozen-seconds', description: 'How long a sandbox stays paused with its memory (holding it on its host) before its container is stopped (its files kept); 0: never', default: 3600, parse: int(0, 31_536_000) },
  stoppedSeconds: { env: 'OMEGA_STOPPED_SECONDS', flag: 'stopped-seconds', description: 'How long a sandbox stays stopped (its workspace on its host\'s disk) before it is archived to the snapshot store and its host\'s disk and slot freed; 0: never', default: 86_400, parse: int(0, 31_536_000) },
  snapshotIntervalSeconds: { env: 'OMEGA_SNAPSHOT_INTERVAL_SECONDS', flag: 'snapshot-interval-seconds', description: 'Seconds between snapshots of each running sandbox (its latest kept: what it comes back from when its host is lost); 0: off', default: 0, parse: int(0, 31_536_000) },
  reconcileIntervalMs: { env: 'OMEGA_RECONCILE_INTERVAL_MS', flag: 'reconcile-interval-ms', description: 'How often Redis, the managers and DNS are reconciled', default: 30_000, parse: int(500, 3_600_000) },
  lostRetentionSeconds: { env: 'OMEGA_LOST_RETENTION_SECONDS', flag: 'lost-retention-seconds', description: 'How long a lost sandbox stays listed (state lost)', default: 3600, parse: int(0, 30 * 86_400) },
  redisWaitReplicas: {
    env: 'OMEGA_REDIS_WAIT_REPLICAS',
    flag: 'redis-wait-replicas',
    description: 'Redis replicas that must have a create before it is answered (WAIT; 0: none). With Sentinel, 1 keeps an answered create through a failover',
    default: 0,
    parse: int(0, 16),
  } satisfies Setting<number>,
  redisWaitTimeoutMs: { env: 'OMEGA_REDIS_WAIT_TIMEOUT_MS', flag: 'redis-wait-timeout-ms', description: 'How long a create waits for OMEGA_REDIS_WAIT_REPLICAS before it fails with 503', default: 1000, parse: int(10, 60_000) },
  hostForgetSeconds: { env: 'OMEGA_HOST_FORGET_SECONDS', flag: 'host-forget-seconds', description: 'A host silent this long is dropped from Redis', default: 600, parse: int(1, 30 * 86_400) },
  runMaxOutputBytes: { env: 'OMEGA_RUN_MAX_OUTPUT_BYTES', flag: 'run-max-output-bytes', description: 'POST /v1/run: most stdout+stderr kept (the rest is cut, truncated: true)', default: 1 << 20, parse: int(1024, 64 << 20) },
  runDefaultTimeoutMs: { env: 'OMEGA_RUN_DEFAULT_TIMEOUT_MS', flag: 'run-default-timeout-ms', description: 'POST /v1/run: time limit when the request gives none', default: 10_000, parse: int(100, 600_000) },
  ...ec2Settings,
  ...tlsSettings,
  runMaxTimeoutMs: { env: 'OMEGA_RUN_MAX_TIMEOUT_MS', flag: 'run-max-timeout-ms', description: 'POST /v1/run: the longest time limit a request may ask for', default: 60_000, parse: int(100, 3_600_000) },
  webDir: {
    env: 'OMEGA_WEB_DIR',
    flag: 'web-dir',
    description: 'The built web client served at / (make web builds it)',
    default: '',
    defaultText: 'dist/web in the Omega package',
    parse: (raw: string) => resolve(raw),
  } satisfies Setting<string>,
};

export type MasterSettings = SettingsValues<typeof masterSettings>;

export interface MasterConfig extends MasterSettings {
  /** The ec2 provider's checked settings, when OMEGA_PROVIDER=ec2. */
  ec2: Ec2Config | null;
}

export function loadConfig(opts: LoadOptions): MasterConfig {
  const s = loadSettings(masterSettings, opts);
  const problems: string[] = [];
  if (!s.token && !s.dev) problems.push('OMEGA_API_TOKEN / --token: required to serve the public API (or run with --dev / OMEGA_DEV=1)');
  if (!s.dnsToken && !s.dev) problems.push('OMEGA_DNS_TOKEN / --dns-token: required to write sandbox records (or run with --dev)');
  if (!s.managerToken && !s.dev) problems.push('OMEGA_MANAGER_TOKEN / --manager-token: required to call the managers (or run with --dev)');
  if (s.defaultTimeoutSeconds > s.maxTimeoutSeconds) problems.push('OMEGA_DEFAULT_TIMEOUT_SECONDS: must not exceed OMEGA_MAX_TIMEOUT_SECONDS');
  if (s.runDefaultTimeoutMs > s.runMaxTimeoutMs) problems.push('OMEGA_RUN_DEFAULT_TIMEOUT_MS: must not exceed OMEGA_RUN_MAX_TIMEOUT_MS');
  problems.push(...tlsProblems(s));
  let ec2: Ec2Config | null = null;
  if (s.provider === 'ec2') {
    try {
      ec2 = loadEc2Config(s);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      problems.push(...err.problems);
    }
  }
  if (problems.length) throw new ConfigError(problems);
  return Object.freeze({ ...s, ec2 });
}
