import { SANDBOX_ID_PATTERN } from './worker.js';

/**
 * The master's public API (`/v1`): schemas of what clients send, and the
 * shapes of what it answers. It imports only the worker protocol (which
 * imports nothing): the web client (web/, built for the browser) uses these
 * types too.
 */

/** A template name: the suffix of its image (`omega/sandbox-<template>`). */
export const TEMPLATE_NAME_PATTERN = '^[a-z0-9][a-z0-9-]{0,31}$';

/** A named workspace: lower-case letters, digits and dashes (it names a volume on its host). */
export const WORKSPACE_NAME_PATTERN = '^[a-z0-9][a-z0-9-]{0,62}$';

export type SandboxState = 'creating' | 'running' | 'pausing' | 'paused' | 'resuming' | 'deleting' | 'lost';

/**
 * How a paused sandbox keeps its work: frozen in memory (processes go on at
 * resume), stopped (only its workspace kept, on its host), or archived (its
 * workspace in the snapshot store, nothing on any host: resumed on a host
 * with room).
 */
export type PauseKind = 'memory' | 'stopped' | 'archived';

export const SANDBOX_STATES: readonly SandboxState[] = ['creating', 'running', 'pausing', 'paused', 'resuming', 'deleting', 'lost'];

/** A sandbox as the API shows it. */
/** What a sandbox's container may use: the limits its host started it with. */
export interface SandboxSize {
  cpus: number;
  memoryMb: number;
  /** Its workspace's fixed size; 0: none (a plain volume on the host's disk). */
  diskMb: number;
}

export interface SandboxView {
  id: string;
  state: SandboxState;
  template: string;
  hostname: string;
  /** The port `url` names: the host's TLS ingress (443 unless set otherwise), or the worker's own port with TLS off. */
  port: number | null;
  /** The agent: `wss://<id>.<zone>/` (a port only when not 443), or `ws://<id>.<zone>:<port>` with TLS off. */
  url: string | null;
  /**
   * How to form a preview's URL: `{port}` stands for the port inside the
   * sandbox (`https://{port}-<id>.<zone>/`; `http://{port}.<id>.<zone>:<port>/` with TLS off).
   */
  previewUrl: string | null;
  host: string;
  address: string;
  createdAt: string;
  expiresAt: string;
  idleSeconds: number | null;
  metadata: Record<string, string>;
  /** Present when its time limit or its idleness pauses it rather than delete it. */
  onTimeout?: 'pause';
  onIdle?: 'pause';
  autoResume?: true;
  /** Every preview opens without the token (created with publicPreviews). */
  publicPreviews?: true;
  /** A paused sandbox: how, since when, and the time it has left once resumed (its time limit is suspended). */
  paused?: { kind: PauseKind; since: string; remainingSeconds: number };
  /** A lost sandbox: since when, and why (its container stopped, its host went silent). */
  lostAt?: string;
  lostReason?: string;
  /** The named workspace it has. */
  workspace?: string;
  /** What its container may use: CPUs, memory and its workspace's fixed size (0: none), as its host started it. */
  size?: SandboxSize;
}

/** The answer to a create: the view, plus what only this answer carries. */
export interface Created extends SandboxView {
  /** What the worker accepts; the master shows it only here. */
  token: string;
  /** How the host's manager served it: a warm pool container or a cold start. */
  source: 'pool' | 'cold';
}

export const metadataSchema = {
  type: 'object',
  maxProperties: 32,
  propertyNames: { pattern: '^[A-Za-z0-9_.-]{1,64}$' },
  additionalProperties: { type: 'string', maxLength: 512 },
} as const;

export interface GitSource {
  url: string;
  /** A branch or tag. */
  ref?: string;
  depth?: number;
}

/** A create's `env`: the environment of the sandbox's terminals and processes (the worker checks names and sizes again). */
export const sandboxEnvSchema = {
  type: 'object',
  maxProperties: 128,
  propertyNames: { pattern: '^(?!OMEGA_)[A-Za-z_][A-Za-z0-9_]{0,127}$' },
  additionalProperties: { type: 'string', maxLength: 32768 },
} as const;

/** A create's `git`: cloned into the workspace before the create answers. */
export const gitSchema = {
  type: 'object',
  required: ['url'],
  additionalProperties: false,
  properties: {
    url: { type: 'string', minLength: 1, maxLength: 2048 },
    ref: { type: 'string', pattern: '^[A-Za-z0-9._/][A-Za-z0-9._/-]{0,199}$' },
    depth: { type: 'integer', minimum: 1, maximum: 1000000 },
  },
} as const;

export const createBodySchema = {
  type: 'object',
  required: ['template'],
  additionalProperties: false,
  properties: {
    template: { type: 'string', pattern: TEMPLATE_NAME_PATTERN },
    timeoutSeconds: { type: 'integer', minimum: 10 },
    idleSeconds: { type: 'integer', minimum: 10 },
    metadata: metadataSchema,
    /** false: no outbound network at all; absent: the master's OMEGA_SANDBOX_INTERNET. */
    internet: { type: 'boolean' },
    /** What its time limit does: delete it (the default), or pause it (frozen; resumed, it has its whole lifetime again). */
    onTimeout: { type: 'string', enum: ['delete', 'pause'] },
    /** What idleSeconds without activity does: likewise. */
    onIdle: { type: 'string', enum: ['delete', 'pause'] },
    /** Paused, a connection to its name (through its host's TLS ingress) resumes it and is served once it runs. */
    autoResume: { type: 'boolean' },
    /** The environment of its terminals and processes (not of the agent's own settings). */
    env: sandboxEnvSchema,
    /** A repository cloned into its workspace before the create answers (422 GIT_FAILED with git's message when it cannot be). */
    git: gitSchema,
    /** A snapshot id: the workspace starts as that snapshot's (of the same template). */
    snapshot: { type: 'string', pattern: SANDBOX_ID_PATTERN },
    /** A named workspace that outlives the sandbox (made when new); one sandbox has it at a time. */
    workspace: { type: 'string', pattern: WORKSPACE_NAME_PATTERN },
    /** Every preview (`https://<port>-<id>.<zone>/`) open to anyone without the token, as E2B's are; absent: private unless a port is made public. */
    publicPreviews: { type: 'boolean' },
  },
} as const;

/** A named workspace as the API shows it. */
export interface WorkspaceView {
  name: string;
  template: string;
  /** The host its volume is on (null: none yet, or only in the snapshot store). */
  host: string | null;
  /** The sandbox that has it now, if any. */
  sandbox: string | null;
  /** Its latest snapshot (what it comes back from when its host is gone). */
  snapshot: string | null;
  /** What its files take on its host's disk (null: not known, the host did not answer). */
  bytes: number | null;
  createdAt: string;
}

export const workspaceNameParamsSchema = {
  type: 'object',
  required: ['name'],
  properties: { name: { type: 'string', pattern: WORKSPACE_NAME_PATTERN } },
} as const;

export const idParamsSchema = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', pattern: SANDBOX_ID_PATTERN } },
} as const;

export const listQuerySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    state: { type: 'string', enum: SANDBOX_STATES },
    limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
    cursor: { type: 'string', maxLength: 200 },
  },
  // metadata.<key>=<value> filters
  patternProperties: { '^metadata\\.[A-Za-z0-9_.-]{1,64}$': { type: 'string', maxLength: 512 } },
} as const;

/** A workspace snapshot as the API shows it. */
export interface SnapshotView {
  id: string;
  sandboxId: string;
  template: string;
  /** The compressed archive's size in the store. */
  bytes: number;
  createdAt: string;
  /**
   * Asked for (kept until deleted), periodic (OMEGA_SNAPSHOT_INTERVAL_SECONDS:
   * only a sandbox's latest kept), an archive (a sandbox stopped too long),
   * or a workspace's (taken as it moved to another host); all but the first
   * go with what they belong to.
   */
  kind: SnapshotKind;
  /** The named workspace it is of (its sandbox had it). */
  workspace?: string;
}

export type SnapshotKind = 'manual' | 'periodic' | 'archive' | 'workspace';

export const snapshotIdParamsSchema = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', pattern: SANDBOX_ID_PATTERN } },
} as const;

export const pauseBodySchema = {
  type: ['object', 'null'],
  additionalProperties: false,
  properties: {
    /** true (the default): frozen, processes kept; false: the container stops, only the workspace is kept. */
    memory: { type: 'boolean' },
  },
} as const;

export const timeoutBodySchema = {
  type: 'object',
  required: ['seconds'],
  additionalProperties: false,
  properties: { seconds: { type: 'integer', minimum: 1 } },
} as const;

export const runBodySchema = {
  type: 'object',
  required: ['language', 'code'],
  additionalProperties: false,
  properties: {
    language: { type: 'string', maxLength: 32 },
    code: { type: 'string', maxLength: 1 << 20 },
    stdin: { type: 'string', maxLength: 1 << 20 },
    timeoutMs: { type: 'integer', minimum: 100 },
  },
} as const;
