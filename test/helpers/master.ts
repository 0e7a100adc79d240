import type { Test } from 'tap';
import { loadConfig } from '../../master/config.js';
import { MasterServer } from '../../master/server.js';
import { createLogger } from '../../src/log.js';
import type { StartedDns } from './dns.js';
import { TOKEN as DNS_TOKEN } from './dns.js';
import { MANAGER_TOKEN } from './manager.js';
import { apiCaller } from './http.js';
import type { RedisUnderTest } from './redis.js';

export const API_TOKEN = 'master-test-token-0123456789';

/**
 * Settings for the managers a `local` provider starts, which read them from
 * this process's environment: quick heartbeats (a lapsed host is seen in
 * 1.5 s), small sandboxes, no grace for orphans.
 */
export function quickLocalManagers(): void {
  process.env.OMEGA_HEARTBEAT_INTERVAL_MS = '300';
  process.env.OMEGA_HEARTBEAT_TTL_MS = '1500';
  process.env.OMEGA_SANDBOX_MEMORY_MB = '256';
  process.env.OMEGA_ORPHAN_GRACE_MS = '0';
  process.env.OMEGA_POOL_MAX = '0';
}

/** A master on a free port, with the DNS server's API and prefix, stopped at teardown. */
export async function startMaster(t: Test, redis: RedisUnderTest, dns: StartedDns, env: Record<string, string> = {}, opts: { ca?: string } = {}) {
  const config = loadConfig({
    env: {
      OMEGA_REDIS_URL: redis.url,
      OMEGA_REDIS_PREFIX: dns.prefix,
      OMEGA_MASTER_LISTEN: '127.0.0.1:0',
      OMEGA_API_TOKEN: API_TOKEN,
      OMEGA_DNS_API_URL: dns.api,
      OMEGA_DNS_TOKEN: DNS_TOKEN,
      OMEGA_MANAGER_TOKEN: MANAGER_TOKEN,
      OMEGA_LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
      ...env,
    },
  });
  const server = new MasterServer(config, createLogger('master', { level: config.logLevel }));
  t.teardown(() => server.stop());
  await server.start();
  const call = apiCaller(server.apiUrl, API_TOKEN, opts);
  return { server, config, call };
}
