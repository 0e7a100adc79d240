import { gitSchema, sandboxEnvSchema, TEMPLATE_NAME_PATTERN, WORKSPACE_NAME_PATTERN, type GitSource, type SandboxSize } from './master.js';

export type { GitSource, SandboxSize };
import { SANDBOX_ID_PATTERN } from './worker.js';

/**
 * The manager's HTTP API (`/v1/sandboxes`): what the master sends a host.
 */

export interface SandboxLimits {
  memoryMb?: number;
  cpus?: number;
  pids?: number;
}

export interface CreateSandboxRequest {
  id: string;
  template: string;
  /** The token the sandbox's worker will accept. */
  token: string;
  limits?: SandboxLimits;
  /** false: no outbound network at all (the host's firewall refuses it); true or absent: the internet, not private addresses. */
  internet?: boolean;
  /** The environment of its terminals and processes. */
  env?: Record<string, string>;
  /** A repository cloned into its workspace before the create answers. */
  git?: GitSource;
  /** A snapshot key: the workspace starts as that snapshot's. */
  snapshot?: string;
  /** Paused, a connection through this host's ingress asks a master to resume it. */
  autoResume?: boolean;
  /** A named workspace: its volume (kept on this host, made if new) is the sandbox's /workspace; a cold start. */
  workspace?: string;
  /** Every preview (`<port>-<id>.<zone>`) open without the token, as E2B's are. */
  publicPreviews?: boolean;
}


export interface SandboxInfo {
  id: string;
  template: string;
  containerId: string;
  /** The worker's port: published on the host's address with TLS off; with the ingress, the worker's own port at its container address (nothing published). */
  hostPort: number;
  /** The host's TLS ingress port (it routes `<id>.<zone>` to this worker), or null when TLS is off. */
  ingressPort: number | null;
  host: string;
  volume: string;
  createdAt: string;
  /** How the create was served: a claimed warm container, or a cold start. */
  source: 'pool' | 'cold';
  /** What its container may use (absent from a manager of an earlier version). */
  size?: SandboxSize;
}

/**
 * What a running or frozen sandbox uses at one moment (GET
 * /v1/sandboxes/:id/metrics of its manager, passed on by the master's).
 */
export interface SandboxMetrics {
  /** When it was read (ms since the epoch). */
  atMs: number;
  /** The share of its CPUs it used, 0-100: since the previous read of its metrics (within a minute), else over the 200 ms the read takes. */
  cpuUsedPct: number;
  /** The CPUs it may use (its limit, rounded up). */
  cpuCount: number;
  /** Memory in use without the page cache the kernel can drop, that cache, and its limit; bytes. */
  memUsed: number;
  memCache: number;
  memTotal: number;
  /** Its workspace: what the files take and the size it may grow to (a workspace without a fixed size: the host disk's). */
  diskUsed: number;
  diskTotal: number;
}

/**
 * One row of a host's container table (hostKeys().containers(host) in
 * Redis), written only by that host's manager: what runs there for which
 * sandbox. The master reads it to tell running sandboxes from lost ones.
 */
export interface ContainerEntry {
  containerId: string;
  /**
   * Where this host reaches the worker, with hostPort: the address its port
   * is published on, or (TLS ingress on: nothing published) the container's
   * own address. Absent in rows written before it was recorded.
   */
  address?: string;
  hostPort: number;
  volume: string;
  template: string;
  source: 'pool' | 'cold';
  /**
   * running: the container runs; paused: frozen (docker pause); stopped:
   * stopped on purpose, to start again at resume; exited: it stopped on its own (reported to
   * the master, which marks the sandbox lost); removed: the container is
   * gone and only its workspace volume is kept (a lost sandbox's, until the
   * master deletes it).
   */
  state: 'running' | 'paused' | 'stopped' | 'exited' | 'removed';
  /**
   * The sandbox's token, kept so that a stopped container's worker (which
   * starts unclaimed) can be claimed again at resume. Only the managers and
   * masters read this table; no view shows it, nothing logs it.
   */
  token?: string;
  /** The claim secret of its worker (its container's environment holds it too). */
  claimSecret?: string;
  /** The create's `env`, given again to a stopped container's worker at resume. */
  env?: Record<string, string>;
  /** The limits its container was started with (absent in rows written before they were kept). */
  size?: SandboxSize;
  autoResume?: true;
  /** Created with publicPreviews: given to its worker again at every claim (a stopped container's starts unclaimed). */
  publicPreviews?: true;
  /** With TLS off and autoResume: the manager's own port for it, which wakes it when paused (manager/direct-ports.ts). */
  directPort?: number;
  /** false: created with no outbound network (absent: with it); `ip` is the address the host firewall refuses. */
  internet?: false;
  ip?: string;
  createdAtMs: number;
  exitedAtMs?: number;
  why?: string;
}

export const limitsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    memoryMb: { type: 'integer', minimum: 32, maximum: 65536 },
    cpus: { type: 'number', minimum: 0.05, maximum: 64 },
    pids: { type: 'integer', minimum: 16, maximum: 32768 },
  },
} as const;

export const createSandboxBodySchema = {
  type: 'object',
  required: ['id', 'template', 'token'],
  additionalProperties: false,
  properties: {
    id: { type: 'string', pattern: SANDBOX_ID_PATTERN },
    template: { type: 'string', pattern: TEMPLATE_NAME_PATTERN },
    token: { type: 'string', minLength: 16, maxLength: 256 },
    limits: limitsSchema,
    internet: { type: 'boolean' },
    env: sandboxEnvSchema,
    git: gitSchema,
    autoResume: { type: 'boolean' },
    /** A snapshot's key in the store: its workspace is restored before the worker is claimed. */
    snapshot: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{0,127}$' },
    workspace: { type: 'string', pattern: WORKSPACE_NAME_PATTERN },
    publicPreviews: { type: 'boolean' },
  },
} as const;

export const workspaceParamsSchema = {
  type: 'object',
  required: ['name'],
  properties: { name: { type: 'string', pattern: WORKSPACE_NAME_PATTERN } },
} as const;

export const snapshotBodySchema = {
  type: 'object',
  required: ['key'],
  additionalProperties: false,
  properties: { key: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{0,127}$' } },
} as const;

export const sandboxIdParamsSchema = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', pattern: SANDBOX_ID_PATTERN } },
} as const;

export const deleteSandboxQuerySchema = {
  type: 'object',
  additionalProperties: false,
  properties: { keepVolume: { type: 'boolean', default: false } },
} as const;
