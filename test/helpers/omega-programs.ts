import { TOKEN as DNS_TOKEN, type StartedDns } from './dns.js';
import { MANAGER_TOKEN } from './manager.js';
import { API_TOKEN } from './master.js';
import { freePort } from './ports.js';
import { Program } from './programs.js';
import type { TestRedis } from './redis.js';

const base = (redis: TestRedis, dns: StartedDns): NodeJS.ProcessEnv => ({
  PATH: process.env.PATH,
  HOME: process.env.HOME,
  OMEGA_REDIS_URL: redis.url,
  OMEGA_REDIS_PREFIX: dns.prefix,
  OMEGA_TEMPLATES: 'python',
  OMEGA_LOG_LEVEL: 'info',
});

/**
 * A real `omega manager` process for a test beside the in-process servers of
 * test/helpers (their tokens, the DNS server's prefix), on 127.0.0.1 with its
 * own host id; not started yet. Stopped with SIGKILL at teardown (the test
 * sweeps the containers of `hostId`).
 */
export async function managerProgram(
  t: { teardown(fn: () => unknown): void },
  redis: TestRedis,
  dns: StartedDns,
  hostId: string,
  env: Record<string, string> = {},
  restartDelayMs = 500,
) {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const program = new Program(`manager ${hostId}`, 'manager', {
    ...base(redis, dns),
    OMEGA_HOST_IP: '127.0.0.1',
    OMEGA_HOST_ID: hostId,
    OMEGA_MANAGER_LISTEN: `127.0.0.1:${port}`,
    OMEGA_MANAGER_TOKEN: MANAGER_TOKEN,
    OMEGA_SANDBOX_MEMORY_MB: '256',
    OMEGA_SANDBOX_CPUS: '0.5',
    OMEGA_SANDBOX_PIDS: '128',
    // A pool of a fixed size (OMEGA_POOL_SIZE): these tests count containers.
    OMEGA_POOL_MAX: '0',
    ...env,
  }, { restartDelayMs });
  t.teardown(() => program.stop(0));
  return { program, url, hostId, ready: () => program.ready(`${url}/healthz`) };
}

/** A real `omega master` process (no provider) beside the in-process servers of test/helpers; not started yet. */
export async function masterProgram(t: { teardown(fn: () => unknown): void }, redis: TestRedis, dns: StartedDns, env: Record<string, string> = {}) {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const program = new Program('master', 'master', {
    ...base(redis, dns),
    OMEGA_MASTER_LISTEN: `127.0.0.1:${port}`,
    OMEGA_API_TOKEN: API_TOKEN,
    OMEGA_DNS_API_URL: dns.api,
    OMEGA_DNS_TOKEN: DNS_TOKEN,
    OMEGA_MANAGER_TOKEN: MANAGER_TOKEN,
    OMEGA_PROVIDER: 'none',
    ...env,
  }, { restartDelayMs: 1000 });
  t.teardown(() => program.stop(0));
  return { program, url, ready: () => program.ready(`${url}/healthz`) };
}
