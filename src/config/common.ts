import { TEMPLATE_NAME_PATTERN } from '../protocol/master.js';
import { parseRedisUrl } from '../redis/url.js';
import { parseSnapshotStoreUrl } from '../snapshot-url.js';
import { bool, int, oneOf, safeUrl, str, type Setting } from './settings.js';

/** Settings every program shares. */
export const commonSettings = {
  redisUrl: {
    env: 'OMEGA_REDIS_URL',
    flag: 'redis-url',
    description: 'Redis holding Omega\'s state: redis://, rediss://, redis+sentinel://h:p,h:p/name or redis+cluster://h:p,h:p',
    default: 'redis://127.0.0.1:6379',
    shown: safeUrl,
    // Checked whole here (as createRedis will read it), kept as written to hand on to the managers a provider starts.
    parse: (raw: string) => {
      parseRedisUrl(raw);
      return raw.trim();
    },
  } satisfies Setting<string>,
  redisPrefix: {
    env: 'OMEGA_REDIS_PREFIX',
    flag: 'redis-prefix',
    description: 'Namespace of every Redis key, so several deployments can share one Redis',
    default: 'omega',
    parse: (raw: string) => {
      if (!/^[A-Za-z0-9_.-]{1,64}$/.test(raw)) throw new Error('must be 1-64 letters, digits, _ . -');
      return raw;
    },
  } satisfies Setting<string>,
  logLevel: {
    env: 'OMEGA_LOG_LEVEL',
    flag: 'log-level',
    description: 'Log level',
    default: 'info' as const,
    parse: oneOf('fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'),
  } satisfies Setting<string>,
  maxConnectionsPerSource: {
    env: 'OMEGA_MAX_CONNECTIONS_PER_SOURCE',
    flag: 'max-connections-per-source',
    description: 'Connections one address may hold open at once to this program\'s API (more are closed at once); 0: no limit',
    default: 256,
    parse: int(0, 1_000_000),
  } satisfies Setting<number>,
};

export { str };

/** Where workspace snapshots are kept: the master (listing, deleting) and every manager (writing, restoring) name the same store. */
export const snapshotSettings = {
  snapshotStore: {
    env: 'OMEGA_SNAPSHOT_STORE',
    flag: 'snapshot-store',
    description: 'Where workspace snapshots are kept: file:///a/directory (local, or a shared mount such as NFS) or s3://bucket/prefix (credentials from the AWS SDK\'s chain: AWS_ACCESS_KEY_ID, ...)',
    default: 'file:///var/lib/omega/snapshots',
    parse: (raw: string) => {
      parseSnapshotStoreUrl(raw);
      return raw;
    },
  } satisfies Setting<string>,
  s3Endpoint: {
    env: 'OMEGA_S3_ENDPOINT',
    flag: 's3-endpoint',
    description: 'The S3-compatible endpoint of an s3:// snapshot store that is not AWS (MinIO, Ceph, ...), e.g. http://127.0.0.1:9000',
    default: undefined as string | undefined,
    parse: (raw: string) => {
      if (!/^https?:\/\//.test(raw)) throw new Error('must be an http:// or https:// URL');
      return raw;
    },
  } satisfies Setting<string | undefined>,
  s3Region: { env: 'OMEGA_S3_REGION', flag: 's3-region', description: 'The region of an s3:// snapshot store', default: 'us-east-1', parse: str() } satisfies Setting<string>,
};

/** `OMEGA_TLS`: where certificates come from. The master orders or issues them; a manager runs its ingress unless off. */
export const TLS_MODES = ['off', 'local', 'files', 'acme'] as const;
export type TlsMode = (typeof TLS_MODES)[number];
export const tlsModeSetting = {
  env: 'OMEGA_TLS',
  flag: 'tls',
  description: 'https/wss: off (plain http/ws to each sandbox\'s port), local (a CA of this machine\'s), files (certificate and key files) or acme (DNS-01 through Omega\'s own DNS)',
  default: 'off' as TlsMode,
  parse: oneOf(...TLS_MODES),
} satisfies Setting<TlsMode>;

/** How often a TLS endpoint looks for a renewed certificate in Redis. */
export const tlsReloadSetting = {
  env: 'OMEGA_TLS_RELOAD_INTERVAL_MS',
  flag: 'tls-reload-interval-ms',
  description: 'How often the certificate in Redis is checked for a renewal (the master also checks its files and renewal dates this often)',
  default: 10_000,
  parse: (raw: string) => {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 100 || n > 3_600_000) throw new Error('must be a whole number from 100 to 3600000');
    return n;
  },
} satisfies Setting<number>;

/** Where `omega up` keeps its tokens and the master's address, and where the client commands read them. */
export const stateDirSetting = {
  env: 'OMEGA_STATE_DIR',
  flag: 'state-dir',
  description: 'Directory where `omega up` (`make run`) keeps its tokens (mode 600), the master\'s address and its own Redis\'s data',
  default: '.omega',
  parse: (raw: string) => raw,
} satisfies Setting<string>;

/** A program's API bearer token: secret, at least 16 characters. */
export function tokenSetting(env: string, what: string): Setting<string | undefined> {
  return {
    env,
    flag: 'token',
    description: `Bearer token ${what} requires (required unless --dev)`,
    default: undefined,
    secret: true,
    parse: (raw: string) => {
      if (raw.length < 16) throw new Error('must be at least 16 characters');
      return raw;
    },
  };
}

/** `--dev`: an explicit development run, the only way to serve an API without a token. */
export function devSetting(what: string): Setting<boolean> {
  return { env: 'OMEGA_DEV', flag: 'dev', description: `Development run: allows ${what} without a token`, default: false, boolean: true, parse: bool() };
}

const TEMPLATE_NAME = new RegExp(TEMPLATE_NAME_PATTERN);

/** `node=2,python=1` or a bare number for every template. */
export function perTemplate(raw: string): Record<string, number> | number {
  if (/^\d+$/.test(raw.trim())) return Number(raw);
  const out: Record<string, number> = {};
  for (const item of raw.split(',')) {
    const [k, v] = item.split('=').map((s) => s.trim());
    if (!k || !v || !/^\d+$/.test(v)) throw new Error('must be a number or template=number,...');
    // A key that is no template name could never match a template: a typo, said now.
    if (!TEMPLATE_NAME.test(k)) throw new Error(`"${k}" is not a template name`);
    out[k] = Number(v);
  }
  return out;
}

/** `2048,python=512`: a value for every template (optional, at most one) and values for some. */
export function defaultAndPerTemplate(raw: string): { all?: number; each: Record<string, number> } {
  const out: { all?: number; each: Record<string, number> } = { each: {} };
  for (const item of raw.split(',').map((s) => s.trim())) {
    if (/^\d+$/.test(item)) {
      if (out.all !== undefined) throw new Error('at most one value for every template');
      out.all = Number(item);
      continue;
    }
    const each = perTemplate(item);
    if (typeof each === 'number') throw new Error('must be a number or template=number,...');
    Object.assign(out.each, each);
  }
  return out;
}

/** A per-template value checked as perTemplate does, kept as text to hand on to a manager's OMEGA_POOL_SIZE. */
export function perTemplateText(raw: string): string {
  const v = perTemplate(raw);
  return typeof v === 'number' ? String(v) : Object.entries(v).map(([k, n]) => `${k}=${n}`).join(',');
}

export function templateList(raw: string): string[] {
  const list = raw.split(',').map((s) => s.trim()).filter(Boolean);
  for (const t of list) if (!TEMPLATE_NAME.test(t)) throw new Error(`"${t}" is not a template name`);
  if (list.length === 0) throw new Error('at least one template is needed');
  return list;
}
