// The local provider as the supervisor of the managers it starts, against the
// real thing: Redis, Docker, `omega manager` processes on 127.0.0.130-133, and
// masters in this process and as their own processes.
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import t, { type Test } from 'tap';
import { LocalProvider } from '../../master/providers/local.js';
import { Store } from '../../master/store.js';
import { createLogger } from '../../src/log.js';
import { createRedis } from '../../src/redis/connection.js';
import { hostKeys } from '../../src/redis/keys.js';
import { RESTART_POLICY, RestartBackoff } from '../../src/restarts.js';
import { TOKEN as DNS_TOKEN, startDns } from '../helpers/dns.js';
import { requireDocker, releaseWorkspaceImages } from '../helpers/docker.js';
import { API_TOKEN, quickLocalManagers, startMaster } from '../helpers/master.js';
import { MANAGER_TOKEN } from '../helpers/manager.js';
import { apiCaller } from '../helpers/http.js';
import { freePort, waitFor } from '../helpers/ports.js';
import { TestRedis } from '../helpers/redis.js';

const CLI = new URL('../../cli/cli.ts', import.meta.url).pathname;
const HOSTS = { killed: '127.0.0.130', masterGone: '127.0.0.131', hung: '127.0.0.132', failing: '127.0.0.133' };
const log = createLogger('master', { level: process.env.TEST_LOG_LEVEL ?? 'silent' });

/** The pauses between restarts, and when the supervisor gives up: pure, so checked on a clock of the test's own. */
t.test('the restart policy: 1 s, 2 s, 4 s, 8 s, then the fifth exit within a minute gives up; a quiet minute starts over', async (t) => {
  let now = 0;
  const b = new RestartBackoff(() => now);
  const delays = [1, 2, 3, 4, 5].map(() => b.exited());
  t.same(delays, [1000, 2000, 4000, 8000, null]);
  t.equal(RESTART_POLICY.maxExits, 5);
  now += RESTART_POLICY.windowMs;
  t.equal(b.exited(), 1000, 'exits a minute old no longer count');
});

/** Containers and volumes Omega labelled with a host. */
function labelled(host: string, kind: 'container' | 'volume' = 'container'): string[] {
  const f = ['--filter', 'label=omega.managed=true', '--filter', `label=omega.host=${host}`];
  const args = kind === 'container' ? ['ps', '-aq', '--no-trunc', ...f] : ['volume', 'ls', '-q', ...f];
  return execFileSync('docker', args, { encoding: 'utf8' }).split('\n').filter(Boolean);
}

function removeLabelled(host: string): void {
  const containers = labelled(host);
  if (containers.length) execFileSync('docker', ['rm', '-f', ...containers], { stdio: 'ignore' });
  const volumes = labelled(host, 'volume');
  if (volumes.length) execFileSync('docker', ['volume', 'rm', '-f', ...volumes], { stdio: 'ignore' });
  releaseWorkspaceImages(host);
}

/** Running (not a zombie), by its /proc entry. */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

if (requireDocker(t, ['omega/sandbox-python:latest'])) {
  quickLocalManagers();

  const redis = await TestRedis.create();
  t.teardown(() => redis.destroy());
  const rc = createRedis(redis.url);
  t.teardown(() => rc.disconnect());
  t.teardown(() => Object.values(HOSTS).forEach(removeLabelled));

  /** A local provider of the test's own, on `address`, its managers on Redis prefix `prefix`. */
  const provider = async (t: Test, address: string, prefix: string, extra: { registerWaitMs?: number } = {}) => {
    const p = new LocalProvider(
      {
        firstAddress: address,
        maxHosts: 1,
        capacity: 2,
        poolSize: '0',
        managerPort: await freePort(),
        redisUrl: redis.url,
        redisPrefix: prefix,
        managerToken: MANAGER_TOKEN,
        zone: 'sandbox.test',
        logLevel: process.env.TEST_LOG_LEVEL ?? 'silent',
        tls: 'off',
        ingressPort: 443,
        scaleIn: { minHosts: 0, idleSeconds: 0 },
        registerWaitMs: extra.registerWaitMs ?? 60_000,
        takenAddresses: async () => [],
      },
      log,
    );
    t.teardown(() => p.stop());
    return p;
  };
  const hostAlive = async (store: Store, hostId: string) => (await store.hosts()).find((h) => h.hostId === hostId)?.alive === true;

  t.test('a manager killed under a master is started again on its address; what it ran is taken back or removed, nothing left unowned', async (t) => {
    const dns = await startDns(t, redis);
    const { server, call } = await startMaster(t, redis, dns, {
      OMEGA_PROVIDER: 'local',
      OMEGA_LOCAL_FIRST_ADDRESS: HOSTS.killed,
      OMEGA_LOCAL_MAX_HOSTS: '1',
      OMEGA_LOCAL_CAPACITY: '2',
      OMEGA_LOCAL_POOL_SIZE: 'python=1,node=0',
      OMEGA_LOCAL_MANAGER_PORT: String(await freePort()),
      OMEGA_SCALE_OUT_WAIT_MS: '30000',
      OMEGA_REAP_INTERVAL_MS: '200',
    });
    const local = server.provider as LocalProvider;
    const created = await call('POST', '/v1/sandboxes', { template: 'python' });
    t.equal(created.status, 201, 'created');
    t.equal(created.body.host, HOSTS.killed, 'the provider started its manager');
    const managerUrl = (await call('GET', '/v1/hosts')).body.hosts[0].managerUrl as string;
    // Wait for its warm pool too, so the killed manager leaves a pool container and a sandbox behind.
    await waitFor('the first manager\'s warm pool', async () => ((await (await fetch(`${managerUrl}/healthz`)).json()) as any).pool.python.ready >= 1, 60_000, 200);
    const before = { containers: labelled(HOSTS.killed), volumes: labelled(HOSTS.killed, 'volume') };
    t.equal(before.containers.length, 2, 'a sandbox and a warm container');

    const first = local.pid(HOSTS.killed)!;
    process.kill(first, 'SIGKILL');
    const second = await waitFor('a new manager process', () => {
      const pid = local.pid(HOSTS.killed);
      return pid !== undefined && pid !== first && alive(pid) ? pid : null;
    }, 30_000, 100);
    t.ok(second, 'started again by the provider');
    await waitFor('its host alive again', async () => {
      const h = (await call('GET', '/v1/hosts')).body.hosts.find((x: any) => x.id === HOSTS.killed);
      return h?.health === 'alive' && ((await (await fetch(`${managerUrl}/healthz`)).json()) as any).registered;
    }, 30_000, 100);
    t.pass('its host is alive again, on the same address and manager URL');

    // The master deletes everything; then nothing the killed manager ran is left, and every container on the host is the new manager's.
    for (const s of (await call('GET', '/v1/sandboxes?limit=100')).body.sandboxes) {
      t.same((await call('DELETE', `/v1/sandboxes/${s.id}`)).body, { id: s.id, deleted: true }, `sandbox ${s.id} (${s.state}) deleted`);
    }
    await waitFor('what the killed manager ran to be gone', () => {
      const left = [...labelled(HOSTS.killed).filter((c) => before.containers.includes(c)), ...labelled(HOSTS.killed, 'volume').filter((v) => before.volumes.includes(v))];
      if (left.length) throw new Error(`still there: ${left.join(', ')}`);
      return true;
    }, 30_000, 200);
    const pool = await waitFor('the new manager\'s warm pool', async () => {
      const p = ((await (await fetch(`${managerUrl}/healthz`)).json()) as any).pool.python;
      return p.ready >= 1 && p.starting === 0 ? p : null;
    }, 60_000, 200);
    t.equal(labelled(HOSTS.killed).length, pool.ready, 'the containers on the host are the new manager\'s warm pool, and nothing else');
    t.equal((await call('GET', '/v1/hosts')).body.hosts.find((h: any) => h.id === HOSTS.killed).load, 0, 'its count is back to 0');
    t.equal(local.pid(HOSTS.killed), second, 'not restarted again');
  });

  t.test('a manager that runs while its host is lost (hung) is killed and started again', async (t) => {
    const prefix = 'lp-hung';
    const store = new Store(rc, prefix, 60, 'test-master');
    // A manager gets no grace to register (registerWaitMs 0): any lost host of a running manager is its hang.
    const p = await provider(t, HOSTS.hung, prefix, { registerWaitMs: 0 });
    await p.launch();
    await waitFor('the manager registered', () => hostAlive(store, HOSTS.hung), 60_000, 100);
    const first = p.pid(HOSTS.hung)!;
    process.kill(first, 'SIGSTOP'); // hung: running, answering nothing, beating no heartbeat
    t.teardown(() => alive(first) && process.kill(first, 'SIGKILL'));
    await waitFor('its heartbeat to lapse', async () => !(await hostAlive(store, HOSTS.hung)), 30_000, 100);
    t.equal(await p.hostLost(HOSTS.hung, 1000), 'restarted', 'killed, to be started again');
    await waitFor('the hung process gone', () => !alive(first), 10_000, 50);
    t.equal(await p.hostLost(HOSTS.hung, 2000), 'restarted', 'on its way back (asked again while it restarts)');
    await waitFor('a new manager registered on the address', async () => p.pid(HOSTS.hung) !== first && (await hostAlive(store, HOSTS.hung)), 60_000, 100);
    t.pass('its host is alive again');
  });

  t.test('a manager that keeps exiting is given up on after five exits within a minute, and then reported', async (t) => {
    const prefix = 'lp-failing';
    // It refuses its settings at once, every time (OMEGA_SANDBOX_* are handed on from the master's environment).
    const memory = process.env.OMEGA_SANDBOX_MEMORY_MB;
    process.env.OMEGA_SANDBOX_MEMORY_MB = 'lots';
    const p = await provider(t, HOSTS.failing, prefix);
    try {
      await p.launch();
    } finally {
      process.env.OMEGA_SANDBOX_MEMORY_MB = memory;
    }
    await waitFor('its first exit', async () => (await p.hostLost(HOSTS.failing, 1000)) === 'restarted', 30_000, 50);
    t.pass('once it has exited, a restart is on its way');
    // 1 + 2 + 4 + 8 s of pauses, then the fifth exit.
    await waitFor('the provider to give up', () => !p.owns(HOSTS.failing), 60_000, 200);
    t.equal(await p.hostLost(HOSTS.failing, 60_000), 'reported', 'its host is reported, not restarted again');
    t.equal(p.pid(HOSTS.failing), undefined);
    await t.resolves(p.launch(), 'the address may be launched anew');
  });

  t.test('a master SIGKILLed: the managers it started stop by themselves and deregister', async (t) => {
    const dns = await startDns(t, redis);
    const [masterPort, managerPort] = await Promise.all([freePort(), freePort()]);
    const master = spawn(process.execPath, ['--import=tsx', CLI, 'master'], {
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        OMEGA_REDIS_URL: redis.url,
        OMEGA_REDIS_PREFIX: dns.prefix,
        OMEGA_MASTER_LISTEN: `127.0.0.1:${masterPort}`,
        OMEGA_API_TOKEN: API_TOKEN,
        OMEGA_DNS_API_URL: dns.api,
        OMEGA_DNS_TOKEN: DNS_TOKEN,
        OMEGA_MANAGER_TOKEN: MANAGER_TOKEN,
        OMEGA_PROVIDER: 'local',
        OMEGA_LOCAL_FIRST_ADDRESS: HOSTS.masterGone,
        OMEGA_LOCAL_MAX_HOSTS: '1',
        OMEGA_LOCAL_POOL_SIZE: '0',
        OMEGA_LOCAL_MANAGER_PORT: String(managerPort),
        OMEGA_LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
        OMEGA_HEARTBEAT_INTERVAL_MS: '300',
        OMEGA_HEARTBEAT_TTL_MS: '1500',
        OMEGA_SANDBOX_MEMORY_MB: '256',
      },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    t.teardown(() => {
      if (master.exitCode === null && master.signalCode === null) master.kill('SIGKILL');
    });
    const call = apiCaller(`http://127.0.0.1:${masterPort}`, API_TOKEN);
    await waitFor('the master', async () => (await call('GET', '/healthz')).status === 200, 60_000, 100);
    const created = await call('POST', '/v1/sandboxes', { template: 'python' });
    t.equal(created.status, 201, 'created');
    const managers = execFileSync('pgrep', ['-P', String(master.pid), '-f', 'cli.ts manager'], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
    t.equal(managers.length, 1, 'the master started one manager');
    t.teardown(() => managers.filter(alive).forEach((pid) => process.kill(pid, 'SIGKILL'))); // should this test fail
    const keys = hostKeys(dns.prefix);
    t.equal(await rc.exists(keys.alive(HOSTS.masterGone)), 1, 'its host is registered');

    master.kill('SIGKILL');
    await waitFor('the manager to stop by itself', () => !alive(managers[0]!), 60_000, 100);
    t.pass('the manager noticed its master was gone, and stopped');
    t.equal(await rc.exists(keys.alive(HOSTS.masterGone)), 0, 'its heartbeat is gone on the way out (as on SIGTERM): no allocation reaches it');
    t.ok(Number(await rc.hget(keys.host(HOSTS.masterGone), 'stoppedAtMs')) > 0, 'and it says it stopped on purpose');
  });
}
