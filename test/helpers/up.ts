import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, fetch as undiciFetch } from 'undici';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dig as digAt } from './dns.js';
import { freePort } from './ports.js';

export interface StartedUp {
  masterUrl: string;
  apiToken: string;
  dnsPort: number;
  zone: string;
  /** The first host's address (its manager, its sandboxes' ports). */
  address: string;
  stateDir: string;
  pid: number;
  /** The local CA `omega up` made (TLS on), else null. */
  caPem: string | null;
  /** fetch, trusting the local CA (and only it, for https). */
  fetch: typeof undiciFetch;
  /** Everything `omega up` has printed so far. */
  output(): string;
  /** The A records of `name` at Omega's DNS server, as `dig +short` gives them. */
  dig(name: string): Promise<string[]>;
  /** Ctrl-C (SIGINT, or the signal given) and wait for the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

const CLI = new URL('../../cli/cli.ts', import.meta.url).pathname;

/**
 * A whole Omega from `omega up`, as a user starts it, on free ports, with its
 * own redis-server and state directory, its first host on `address` (each
 * test file takes its own loopback address, so its containers are its own).
 * Stopped (like Ctrl-C) at teardown if the test has not (a bench passes its own teardown list).
 */
export async function startUp(t: { teardown(fn: () => unknown): void }, opts: { address: string; env?: Record<string, string>; timeoutMs?: number }): Promise<StartedUp> {
  // A state directory of its own, unless the test gives one (a second up after a first; the test removes it).
  const ownState = !opts.env?.OMEGA_STATE_DIR;
  const stateDir = opts.env?.OMEGA_STATE_DIR ?? mkdtempSync(join(tmpdir(), 'omega-up-'));
  const [redisPort, dnsPort, dnsApiPort, masterPort, managerPort] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    OMEGA_STATE_DIR: stateDir,
    OMEGA_REDIS_URL: `redis://127.0.0.1:${redisPort}`,
    OMEGA_DNS_LISTEN: `127.0.0.1:${dnsPort}`,
    OMEGA_DNS_API_LISTEN: `127.0.0.1:${dnsApiPort}`,
    OMEGA_MASTER_LISTEN: `127.0.0.1:${masterPort}`,
    OMEGA_LOCAL_FIRST_ADDRESS: opts.address,
    OMEGA_LOCAL_MANAGER_PORT: String(managerPort),
    OMEGA_LOCAL_MAX_HOSTS: '2',
    OMEGA_LOCAL_POOL_SIZE: '1',
    // The managers' pools stay at that size (the tests count containers); passed on by the local provider.
    OMEGA_POOL_MAX: '0',
    OMEGA_SANDBOX_MEMORY_MB: '256',
    OMEGA_SANDBOX_CPUS: '0.5',
    ...opts.env,
  };
  // With an IPC channel: if this process dies (a test killed on its timeout), up stops everything it started.
  const child = spawn(process.execPath, ['--import=tsx', CLI, 'up'], { env, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  child.channel?.unref();
  let out = '';
  const echo = Boolean(process.env.TEST_LOG_LEVEL);
  for (const s of [child.stdout!, child.stderr!]) {
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      out += d;
      if (echo) process.stderr.write(d);
    });
  }
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let stopped = false;
  const stop = async (signal: NodeJS.Signals = 'SIGINT') => {
    if (!stopped) {
      stopped = true;
      child.kill(signal);
    }
    return exited;
  };
  t.teardown(async () => {
    await stop();
    if (ownState) rmSync(stateDir, { recursive: true, force: true });
  });

  const timeoutMs = opts.timeoutMs ?? 120_000;
  const ready = await Promise.race([
    new Promise<'up'>((resolve) => {
      const check = setInterval(() => {
        if (out.includes('Omega is up.')) {
          clearInterval(check);
          resolve('up');
        }
      }, 50);
      child.once('exit', () => clearInterval(check));
    }),
    exited.then((code) => `exited with ${code}` as const),
    new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), timeoutMs).unref()),
  ]);
  if (ready !== 'up') throw new Error(`omega up did not come up (${ready}); it printed:\n${out.slice(-4000)}`);

  const caFile = join(stateDir, 'ca.pem');
  const caPem = opts.env?.OMEGA_TLS === 'off' || !existsSync(caFile) ? null : readFileSync(caFile, 'utf8');
  const agent = caPem ? new Agent({ connect: { ca: caPem } }) : undefined;
  if (agent) t.teardown(() => agent.close());
  return {
    masterUrl: readFileSync(join(stateDir, 'master-url'), 'utf8').trim(),
    caPem,
    fetch: ((url: string, init?: Parameters<typeof undiciFetch>[1]) => undiciFetch(url, { ...init, ...(agent ? { dispatcher: agent } : {}) })) as typeof undiciFetch,
    apiToken: readFileSync(join(stateDir, 'api-token'), 'utf8').trim(),
    dnsPort,
    zone: 'sandbox.test',
    address: opts.address,
    stateDir,
    pid: child.pid!,
    output: () => out,
    dig: async (name) => (await digAt(dnsPort, ['+short', name, 'A'])).raw.split('\n').filter(Boolean),
    stop,
  };
}
