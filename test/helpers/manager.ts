import { randomBytes } from 'node:crypto';
import type { Test } from 'tap';
import { loadConfig } from '../../manager/config.js';
import { ManagerServer } from '../../manager/server.js';
import { createLogger } from '../../src/log.js';
import { apiCaller } from './http.js';
import type { RedisUnderTest } from './redis.js';

export const MANAGER_TOKEN = 'manager-test-token-0123456789';

/** Every manager a test starts gets its own host id and Redis prefix, so tests never see each other's containers. */
export async function startManager(t: Test, redis: RedisUnderTest, env: Record<string, string> = {}) {
  const tag = randomBytes(4).toString('hex');
  const config = loadConfig({
    env: {
      OMEGA_REDIS_URL: redis.url,
      OMEGA_REDIS_PREFIX: `t${tag}`,
      OMEGA_HOST_ID: `test-${tag}`,
      OMEGA_HOST_IP: '127.0.0.1',
      OMEGA_MANAGER_LISTEN: '127.0.0.1:0',
      OMEGA_MANAGER_TOKEN: MANAGER_TOKEN,
      OMEGA_POOL_SIZE: '0',
      // A pool of a fixed size (OMEGA_POOL_SIZE) unless a test asks for one that follows demand.
      OMEGA_POOL_MAX: '0',
      OMEGA_SANDBOX_MEMORY_MB: '256',
      OMEGA_SANDBOX_CPUS: '0.5',
      OMEGA_SANDBOX_PIDS: '128',
      ...env,
    },
  });
  const server = new ManagerServer(config, createLogger('manager', { level: process.env.TEST_LOG_LEVEL ?? 'silent' }));
  t.teardown(() => server.stop());
  await server.start();
  const call = apiCaller(server.apiUrl, MANAGER_TOKEN);
  return { server, config, call, prefix: `t${tag}`, hostId: config.hostId };
}
