import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../../../src/config/settings.js';
import type { Ec2Config } from './settings.js';

/**
 * The user data of a new host: infra/ec2/user-data.sh (or the operator's
 * template) with its @@NAME@@ placeholders filled, shell- and
 * systemd-quoted. It carries the managers' secrets: never log it.
 */

/** The bundled template, from source (master/providers/ec2/) or built (dist/master/providers/ec2/). */
export function bundledUserData(): string {
  const candidates = ['../../../infra/ec2/user-data.sh', '../../../../infra/ec2/user-data.sh'].map((rel) => fileURLToPath(new URL(rel, import.meta.url)));
  return candidates.find((p) => existsSync(p)) ?? candidates[0]!;
}

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
  /** OMEGA_TLS: a host runs its ingress on 443 unless off. */
  tls: string;
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
    envLine('OMEGA_TLS', cluster.tls),
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

