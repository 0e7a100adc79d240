import { ENVD_VERSION } from '../../src/protocol/envd/version.js';
import { metadataSchema, sandboxEnvSchema, TEMPLATE_NAME_PATTERN, type SandboxView } from '../../src/protocol/master.js';
import type { SandboxState } from '../store.js';
import type { CreateRequest } from '../sandboxes.js';
import type { SandboxMetrics } from '../../src/protocol/manager.js';

/**
 * The E2B API's shapes as translations of Omega's: one sandbox model, read
 * and written through master/sandboxes.ts; nothing here is stored.
 */

/** E2B's `clientID` is deprecated and meaningless here; the SDK requires it present. */
const CLIENT_ID = 'omega';
/** Omega's shortest lifetime; a shorter E2B `timeout` (its default is 15 s, the SDK's 300 s) is raised to it. */
const MIN_TIMEOUT_SECONDS = 10;

export const sandboxIdParams = { type: 'object', required: ['sandboxID'], properties: { sandboxID: { type: 'string', maxLength: 63 } } } as const;

/** `NewSandbox`: what Omega does with each field; unknown ones are ignored, as the E2B API does. */
export const newSandboxSchema = {
  type: 'object',
  required: ['templateID'],
  properties: {
    templateID: { type: 'string', pattern: TEMPLATE_NAME_PATTERN },
    timeout: { type: 'integer', minimum: 0 },
    autoPause: { type: 'boolean' },
    autoPauseMemory: { type: 'boolean' },
    autoResume: { type: 'object', properties: { enabled: { type: 'boolean' } } },
    secure: { type: 'boolean' },
    allow_internet_access: { type: 'boolean' },
    metadata: metadataSchema,
    envVars: sandboxEnvSchema,
    mcp: { type: ['object', 'null'] },
    /** Of E2B's network settings only allowPublicTraffic is read: false keeps the previews private (the sandbox token opens them). */
    network: { type: 'object', properties: { allowPublicTraffic: { type: 'boolean' } } },
    volumeMounts: { type: 'array', maxItems: 0 },
  },
} as const;

export interface NewSandbox {
  templateID: string;
  timeout?: number;
  autoPause?: boolean;
  autoPauseMemory?: boolean;
  autoResume?: { enabled?: boolean };
  allow_internet_access?: boolean;
  metadata?: Record<string, string>;
  envVars?: Record<string, string>;
  mcp?: object | null;
  network?: { allowPublicTraffic?: boolean };
}

/**
 * An E2B create as Omega's; `template` in place of the one named (E2B's default
 * `base`). `secure` is always so: every sandbox has a token (given as envdAccessToken).
 */
export function createRequestOf(b: NewSandbox, template: string | null = null): CreateRequest {
  return {
    template: template ?? b.templateID,
    timeoutSeconds: Math.max(MIN_TIMEOUT_SECONDS, b.timeout || 15),
    ...(b.metadata ? { metadata: b.metadata } : {}),
    ...(b.envVars ? { env: b.envVars } : {}),
    ...(b.allow_internet_access === false ? { internet: false } : {}),
    ...(b.autoPause ? { onTimeout: 'pause' as const } : {}),
    ...(b.autoResume?.enabled ? { autoResume: true } : {}),
    // E2B's previews (getHost) are public unless asked otherwise: its clients open them with no token.
    ...(b.network?.allowPublicTraffic === false ? {} : { publicPreviews: true }),
  };
}

/** E2B knows running and paused; Omega's steps in between show as where they lead. */
export function e2bState(s: SandboxState): 'running' | 'paused' {
  return s === 'paused' || s === 'pausing' ? 'paused' : 'running';
}

/** `Sandbox`: a create's or a connect's answer, the token included. */
export function sandboxOf(v: SandboxView, zone: string, token: string | null) {
  return { templateID: v.template, sandboxID: v.id, clientID: CLIENT_ID, envdVersion: ENVD_VERSION, ...(token ? { envdAccessToken: token } : {}), trafficAccessToken: null, domain: zone };
}

/** `ListedSandbox`; `SandboxDetail` adds the domain and lifecycle. The token is never shown after a create or connect. */
export function listedOf(v: SandboxView) {
  return {
    templateID: v.template,
    sandboxID: v.id,
    clientID: CLIENT_ID,
    startedAt: v.createdAt,
    // A paused sandbox's time limit is suspended: it ends its remaining time after it resumes.
    endAt: v.paused ? new Date(Date.now() + v.paused.remainingSeconds * 1000).toISOString() : v.expiresAt,
    // As its host started it (0 for one made by a host of an earlier version); a workspace of no fixed size is 0.
    cpuCount: Math.ceil(v.size?.cpus ?? 0),
    memoryMB: v.size?.memoryMb ?? 0,
    diskSizeMB: v.size?.diskMb ?? 0,
    metadata: v.metadata,
    state: e2bState(v.state),
    envdVersion: ENVD_VERSION,
    volumeMounts: [],
  };
}

export function detailOf(v: SandboxView, zone: string) {
  return { ...listedOf(v), domain: zone, lifecycle: { onTimeout: v.onTimeout === 'pause' ? 'pause' : 'kill', autoResume: v.autoResume === true } };
}

/** The v2 list's `metadata` filter: `k=v&k2=v2`, each key and value URL-encoded (once more by the query string). */
export function metadataFilter(raw: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of new URLSearchParams(raw ?? '')) out[decodeURIComponent(k)] = decodeURIComponent(v);
  return out;
}

/** The metrics query: the span asked for, unix seconds. */
export const metricsQuery = { type: 'object', properties: { start: { type: 'integer', minimum: 0 }, end: { type: 'integer', minimum: 0 } } } as const;

/** `SandboxMetric`: Omega's reading as E2B names it (its `timestamp` deprecated for `timestampUnix`, both sent). */
export function metricOf(m: SandboxMetrics) {
  return {
    timestamp: new Date(m.atMs).toISOString(),
    timestampUnix: Math.floor(m.atMs / 1000),
    cpuCount: m.cpuCount,
    cpuUsedPct: m.cpuUsedPct,
    memUsed: m.memUsed,
    memCache: m.memCache,
    memTotal: m.memTotal,
    diskUsed: m.diskUsed,
    diskTotal: m.diskTotal,
  };
}
