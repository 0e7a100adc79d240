import { isIP } from 'node:net';
import { commonSettings, snapshotSettings, defaultAndPerTemplate, devSetting, perTemplate, templateList, tlsModeSetting, tlsReloadSetting, tokenSetting } from '../src/config/common.js';
import { DEFAULT_WORKSPACE_IMAGE_DIR } from './runtime/disk.js';
import { ConfigError, hostPort, int, loadSettings, type LoadOptions, type Setting, type SettingsValues } from '../src/config/settings.js';

/** A workspace's size where no setting names one. */
const DEFAULT_DISK_MB = 1024;

export const managerSettings = {
  ...commonSettings,
  ...snapshotSettings,
  hostIp: {
    env: 'OMEGA_HOST_IP',
    flag: 'host-ip',
    description: 'Address this host is reached at: it goes into DNS, and sandbox ports are published on it',
    default: '127.0.0.1',
    parse: (raw: string) => {
      if (!isIP(raw)) throw new Error('must be an IP address');
      return raw;
    },
  } satisfies Setting<string>,
  hostId: {
    env: 'OMEGA_HOST_ID',
    flag: 'host-id',
    description: 'Name of this host in Redis (defaults to OMEGA_HOST_IP)',
    default: undefined as string | undefined,
    parse: (raw: string) => {
      if (!/^[A-Za-z0-9_.:-]{1,128}$/.test(raw)) throw new Error('must be 1-128 letters, digits, _ . : -');
      return raw;
    },
  } satisfies Setting<string | undefined>,
  listen: {
    env: 'OMEGA_MANAGER_LISTEN',
    flag: 'listen',
    description: 'Address of the manager API (defaults to OMEGA_HOST_IP:7070)',
    default: undefined as { host: string; port: number } | undefined,
    parse: hostPort(),
  },
  tls: { ...tlsModeSetting, description: 'off: each sandbox is reached on its own published port (ws://); otherwise through this host\'s TLS ingress, with the certificate the master keeps in Redis' },
  tlsReloadIntervalMs: tlsReloadSetting,
  ingressListen: {
    env: 'OMEGA_INGRESS_LISTEN',
    flag: 'ingress-listen',
    description: 'Where the TLS ingress listens when OMEGA_TLS is not off (defaults to OMEGA_HOST_IP:443)',
    default: undefined as { host: string; port: number } | undefined,
    parse: hostPort(),
  },
  ingressMaxConnections: { env: 'OMEGA_INGRESS_MAX_CONNECTIONS', flag: 'ingress-max-connections', description: 'Most connections the ingress holds open at once', default: 20_000, parse: int(1, 1_000_000) },
  ingressMaxConnectionsPerSource: { env: 'OMEGA_INGRESS_MAX_CONNECTIONS_PER_SOURCE', flag: 'ingress-max-connections-per-source', description: 'Most connections one client address holds open at once through the ingress (each worker also allows 256 per client)', default: 512, parse: int(1, 1_000_000) },
  ingressHandshakeTimeoutMs: {
    env: 'OMEGA_INGRESS_HANDSHAKE_TIMEOUT_MS',
    flag: 'ingress-handshake-timeout-ms',
    description: 'How long a client may take to finish its TLS handshake (slow or silent clients are dropped)',
    default: 10_000,
    parse: int(100, 120_000),
  },
  sandboxNetwork: {
    env: 'OMEGA_SANDBOX_NETWORK',
    flag: 'sandbox-network',
    description: "isolated: sandboxes on a network of Omega's own with inter-container traffic off and a host firewall (no private, link-local or host addresses; needs iptables and CAP_NET_ADMIN); bridge: Docker's default bridge, unfiltered",
    default: 'isolated' as 'isolated' | 'bridge',
    parse: (raw: string) => {
      if (raw !== 'isolated' && raw !== 'bridge') throw new Error('must be isolated or bridge');
      return raw;
    },
  } satisfies Setting<'isolated' | 'bridge'>,
  sandboxBlockedCidrs: {
    env: 'OMEGA_SANDBOX_BLOCKED_CIDRS',
    flag: 'sandbox-blocked-cidrs',
    description: 'More IPv4 ranges sandboxes may not reach (the control plane where it has public addresses), beside the private, shared, link-local and loopback ones',
    default: [] as string[],
    defaultText: '(none)',
    parse: (raw: string) => {
      const list = raw.split(',').map((c) => c.trim()).filter(Boolean);
      for (const c of list) {
        const [ip, bits] = c.split('/');
        if (!ip || !isIP(ip) || isIP(ip) !== 4 || (bits !== undefined && !(Number(bits) >= 0 && Number(bits) <= 32))) throw new Error(`${c} is not an IPv4 address or range`);
      }
      return list;
    },
  } satisfies Setting<string[]>,
  token: tokenSetting('OMEGA_MANAGER_TOKEN', 'the manager API'),
  dev: devSetting('the API'),
  capacity: { env: 'OMEGA_CAPACITY', flag: 'capacity', description: 'Most sandboxes on this host (warm pool containers not counted)', default: 20, parse: int(1, 10_000) },
  dockerSocket: { env: 'OMEGA_DOCKER_SOCKET', flag: 'docker-socket', description: 'The Docker engine socket', default: '/var/run/docker.sock', parse: (r: string) => r } satisfies Setting<string>,
  templates: {
    env: 'OMEGA_TEMPLATES',
    flag: 'templates',
    description: 'Templates offered; each runs image omega/sandbox-<template>:latest',
    default: ['node', 'python'],
    parse: templateList,
  } satisfies Setting<string[]>,
  imagePrefix: {
    env: 'OMEGA_IMAGE_PREFIX',
    flag: 'image-prefix',
    description: 'Image name prefix: a template t runs <prefix><t>:latest',
    default: 'omega/sandbox-',
    parse: (r: string) => r,
  } satisfies Setting<string>,
  templateRepos: {
    env: 'OMEGA_TEMPLATE_REPOS',
    flag: 'template-repos',
    description: 'Git repositories cloned into a new workspace, per template: node=https://...,python=https://...',
    default: {} as Record<string, string>,
    defaultText: '(none)',
    parse: (raw: string) => {
      const out: Record<string, string> = {};
      for (const item of raw.split(',')) {
        const i = item.indexOf('=');
        if (i <= 0) throw new Error('must be template=url,...');
        out[item.slice(0, i).trim()] = item.slice(i + 1).trim();
      }
      return out;
    },
  } satisfies Setting<Record<string, string>>,
  poolRefillParallel: {
    env: 'OMEGA_POOL_REFILL_PARALLEL',
    flag: 'pool-refill-parallel',
    description: 'Warm containers started at once when the pool refills (each start takes most of a core for a few hundred ms; more at once only slows the creates in flight)',
    default: 2,
    parse: int(1, 64),
  } satisfies Setting<number>,
  poolMax: {
    env: 'OMEGA_POOL_MAX',
    flag: 'pool-max',
    description: 'Most warm containers per template when demand is high (the pool grows from OMEGA_POOL_SIZE toward it as creates arrive faster, and shrinks back when they stop): a number, or node=8,python=4; OMEGA_POOL_SIZE or less keeps the pool at that size',
    default: 8 as Record<string, number> | number,
    defaultText: '8',
    parse: perTemplate,
  } satisfies Setting<Record<string, number> | number>,
  poolDemandWindowMs: {
    env: 'OMEGA_POOL_DEMAND_WINDOW_MS',
    flag: 'pool-demand-window-ms',
    description: 'How far back creates count toward a pool\'s size (a pool with no creates for this long is back at OMEGA_POOL_SIZE)',
    default: 60_000,
    parse: int(1000, 3_600_000),
  } satisfies Setting<number>,
  poolSize: {
    env: 'OMEGA_POOL_SIZE',
    flag: 'pool-size',
    description: 'Warm containers kept ready per template at least (the floor the pool shrinks back to): a number, or node=2,python=1',
    default: 1 as Record<string, number> | number,
    defaultText: '1',
    parse: perTemplate,
  } satisfies Setting<Record<string, number> | number>,
  memoryMb: { env: 'OMEGA_SANDBOX_MEMORY_MB', flag: 'sandbox-memory-mb', description: 'Memory limit of a sandbox', default: 512, parse: int(32, 65536) },
  cpus: {
    env: 'OMEGA_SANDBOX_CPUS',
    flag: 'sandbox-cpus',
    description: 'CPU limit of a sandbox, in cores',
    default: 1,
    parse: (raw: string) => {
      const n = Number(raw);
      if (!Number.isFinite(n) || n < 0.05 || n > 64) throw new Error('must be a number of cores between 0.05 and 64');
      return n;
    },
  } satisfies Setting<number>,
  pids: { env: 'OMEGA_SANDBOX_PIDS', flag: 'sandbox-pids', description: 'Most processes in a sandbox', default: 256, parse: int(16, 32768) },
  sandboxRuntime: {
    env: 'OMEGA_SANDBOX_RUNTIME',
    flag: 'sandbox-runtime',
    description: "The Docker runtime sandboxes run under: empty for the engine's default (runc), or a name in its daemon.json `runtimes`, e.g. runsc (gVisor; `make runsc` registers it; see docs/gvisor.md)",
    default: '',
    parse: (raw: string) => {
      if (!/^[A-Za-z0-9_.-]{0,64}$/.test(raw)) throw new Error('must be a runtime name: letters, digits, _ . -');
      return raw;
    },
  } satisfies Setting<string>,
  nofile: { env: 'OMEGA_SANDBOX_NOFILE', flag: 'sandbox-nofile', description: 'Most open files per process in a sandbox (RLIMIT_NOFILE, soft and hard)', default: 4096, parse: int(64, 1_048_576) },
  diskMb: {
    env: 'OMEGA_SANDBOX_DISK_MB',
    flag: 'sandbox-disk-mb',
    description: 'Size of a sandbox\'s /workspace (its own filesystem: writing past it fails with ENOSPC), for every template or per template (2048,python=512: python 512, the others 2048); 0: a plain volume on the host\'s disk, unlimited',
    default: { all: DEFAULT_DISK_MB, each: {} } as { all?: number; each: Record<string, number> },
    defaultText: String(DEFAULT_DISK_MB),
    parse: (raw: string) => {
      const v = defaultAndPerTemplate(raw);
      for (const n of [v.all, ...Object.values(v.each)]) if (n !== undefined && n !== 0 && (n < 16 || n > 1_048_576)) throw new Error('a size must be 0 (unlimited) or 16 to 1048576 MB');
      return v;
    },
  } satisfies Setting<{ all?: number; each: Record<string, number> }>,
  workspaceImageDir: {
    env: 'OMEGA_WORKSPACE_IMAGE_DIR',
    flag: 'workspace-image-dir',
    description: 'Where the workspace filesystem images are kept (one directory per host id)',
    default: DEFAULT_WORKSPACE_IMAGE_DIR,
    parse: (r: string) => r,
  } satisfies Setting<string>,
  tmpMb: { env: 'OMEGA_SANDBOX_TMP_MB', flag: 'sandbox-tmp-mb', description: 'Size of the tmpfs at /tmp', default: 128, parse: int(1, 65536) },
  zone: { env: 'OMEGA_ZONE', flag: 'zone', description: 'The sandbox zone (workers recognise preview hosts in it)', default: 'sandbox.test', parse: (r: string) => r.toLowerCase().replace(/\.$/, '') } satisfies Setting<string>,
  heartbeatIntervalMs: { env: 'OMEGA_HEARTBEAT_INTERVAL_MS', flag: 'heartbeat-interval-ms', description: 'How often the host heart-beats in Redis', default: 2000, parse: int(100, 60_000) },
  heartbeatTtlMs: { env: 'OMEGA_HEARTBEAT_TTL_MS', flag: 'heartbeat-ttl-ms', description: 'A heartbeat older than this means the host is gone', default: 10_000, parse: int(300, 600_000) },
  idleCheckIntervalMs: { env: 'OMEGA_IDLE_CHECK_INTERVAL_MS', flag: 'idle-check-interval-ms', description: 'How often this host asks its sandboxes that have an idle limit how long they have been idle', default: 5000, parse: int(100, 600_000) },
  reconcileIntervalMs: { env: 'OMEGA_RECONCILE_INTERVAL_MS', flag: 'reconcile-interval-ms', description: 'How often containers are reconciled with Redis', default: 5000, parse: int(200, 600_000) },
  orphanGraceMs: { env: 'OMEGA_ORPHAN_GRACE_MS', flag: 'orphan-grace-ms', description: 'How long an unowned container may live before it is removed', default: 30_000, parse: int(0, 3_600_000) },
  readyTimeoutMs: { env: 'OMEGA_READY_TIMEOUT_MS', flag: 'ready-timeout-ms', description: 'How long a new container may take to answer /healthz', default: 30_000, parse: int(500, 600_000) },
};

export type ManagerSettings = SettingsValues<typeof managerSettings>;

export interface ManagerConfig extends Omit<ManagerSettings, 'hostId' | 'listen' | 'poolSize' | 'poolMax' | 'ingressListen' | 'diskMb'> {
  hostId: string;
  listen: { host: string; port: number };
  /** null when TLS is off. */
  ingressListen: { host: string; port: number } | null;
  /**
   * Where sandbox ports are published: the host's address without the
   * ingress; nowhere with it (the ingress is the way in, and reaches each
   * worker at its container address).
   */
  publishIp: string | null;
  poolSize: Record<string, number>;
  /** Per template: the pool's floor (OMEGA_POOL_SIZE) and ceiling (OMEGA_POOL_MAX). */
  poolBounds: Record<string, { floor: number; ceiling: number }>;
  /** Workspace size per template; 0: unlimited (a plain volume). */
  diskMb: Record<string, number>;
}

export function loadConfig(opts: LoadOptions): ManagerConfig {
  const s = loadSettings(managerSettings, opts);
  if (!s.token && !s.dev) {
    throw new ConfigError(['OMEGA_MANAGER_TOKEN / --token: required to serve the manager API (or run with --dev / OMEGA_DEV=1)']);
  }
  const poolSize: Record<string, number> = {};
  const poolBounds: Record<string, { floor: number; ceiling: number }> = {};
  for (const t of s.templates) {
    poolSize[t] = typeof s.poolSize === 'number' ? s.poolSize : (s.poolSize[t] ?? 0);
    const ceiling = typeof s.poolMax === 'number' ? s.poolMax : (s.poolMax[t] ?? poolSize[t]);
    poolBounds[t] = { floor: poolSize[t], ceiling: Math.max(poolSize[t], ceiling) };
  }
  const diskMb: Record<string, number> = {};
  for (const t of s.templates) diskMb[t] = s.diskMb.each[t] ?? s.diskMb.all ?? DEFAULT_DISK_MB;
  return Object.freeze({
    ...s,
    hostId: s.hostId ?? s.hostIp,
    listen: s.listen ?? { host: s.hostIp, port: 7070 },
    ingressListen: s.tls === 'off' ? null : (s.ingressListen ?? { host: s.hostIp, port: 443 }),
    publishIp: s.tls === 'off' ? s.hostIp : null,
    poolSize,
    poolBounds,
    diskMb,
  });
}
