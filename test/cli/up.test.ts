import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { prepareState } from '../../cli/up/state.js';
import { requireDocker, releaseWorkspaceImages } from '../helpers/docker.js';
import { freePort, waitFor } from '../helpers/ports.js';
import { TestRedis } from '../helpers/redis.js';
import { startUp, type StartedUp } from '../helpers/up.js';

const ADDRESS = '127.0.0.100';
/** The next address: the host the master's local provider adds when the first is full. */
const NEXT = '127.0.0.101';
const CLI = new URL('../../cli/cli.ts', import.meta.url).pathname;
const mode = (p: string) => statSync(p).mode & 0o777;

const byHost = (host: string) => ['--filter', 'label=omega.managed=true', '--filter', `label=omega.host=${host}`];
const containers = (host: string) => execFileSync('docker', ['ps', '-aq', ...byHost(host)], { encoding: 'utf8' }).split('\n').filter(Boolean);
const volumes = (host: string) => execFileSync('docker', ['volume', 'ls', '-q', ...byHost(host)], { encoding: 'utf8' }).split('\n').filter(Boolean);

/** Containers and volumes Omega labelled with a host. */
function labelled(host: string): string[] {
  return [...containers(host), ...volumes(host)];
}

function removeLabelled(host: string): void {
  const c = containers(host);
  if (c.length) execFileSync('docker', ['rm', '-f', ...c], { stdio: 'ignore' });
  const v = volumes(host);
  if (v.length) execFileSync('docker', ['volume', 'rm', '-f', ...v], { stdio: 'ignore' });
  releaseWorkspaceImages(host);
}

/** POST /v1/sandboxes on an up's master. */
async function create(up: Pick<StartedUp, 'masterUrl' | 'apiToken' | 'fetch'>): Promise<{ id: string; host: string }> {
  const res = await up.fetch(`${up.masterUrl}/v1/sandboxes`, {
    method: 'POST',
    headers: { authorization: `Bearer ${up.apiToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ template: 'python' }),
  });
  const body = (await res.json()) as { id: string; host: string };
  if (res.status !== 201) throw new Error(`create: ${res.status} ${JSON.stringify(body)}`);
  return body;
}

/** Every process below `pid`. */
function descendants(pid: number): number[] {
  let kids: number[] = [];
  try {
    kids = execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
  } catch {
    // none
  }
  return kids.flatMap((k) => [k, ...descendants(k)]);
}

/** Running (a zombie waiting for its parent to reap it has exited), with its command line. */
function alive(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (/^\d+ \(.*\) Z/.test(stat)) return null;
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
  } catch {
    return null;
  }
}

function listening(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, host);
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

t.test('tokens are made once, private, and kept', async (t) => {
  const dir = join(mkdtempSync(join(tmpdir(), 'omega-state-')), 'state');
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const first = prepareState(dir);
  t.equal(mode(dir), 0o700);
  for (const [name, file] of [['api', 'api-token'], ['dns', 'dns-token'], ['manager', 'manager-token']] as const) {
    t.equal(mode(join(dir, file)), 0o600, `${file} is 600`);
    t.ok(first[name].length >= 16 && /^[A-Za-z0-9_-]+$/.test(first[name]), `${file} is long and fits a WebSocket subprotocol`);
  }
  t.not(first.api, first.dns, 'each API has its own token');
  t.same(prepareState(dir), first, 'a second run keeps them');
  writeFileSync(join(dir, 'dns-token'), 'short', { mode: 0o644 });
  const again = prepareState(dir);
  t.not(again.dns, 'short', 'a token too short to be safe is replaced');
  t.equal(mode(join(dir, 'dns-token')), 0o600);
});

if (requireDocker(t, ['omega/sandbox-python:latest'])) {
  t.test('omega up runs everything, and Ctrl-C leaves nothing', async (t) => {
    const up = await startUp(t, { address: ADDRESS });
    const out = up.output();
    for (const service of ['up', 'dns', 'manager', 'master']) t.match(out, new RegExp(`^\\[[\\d:.]+\\] (?:\\w+: )?${service} +\\S`, 'm'), `one stream carries ${service}'s lines`);
    t.match(out, /starting redis-server/, 'no Redis answered, so it started its own');
    t.match(out, `${up.masterUrl}/`, 'the banner names the web address');
    t.match(out, `dig @127.0.0.1 -p ${up.dnsPort} <id>.sandbox.test`, 'and the dig line');
    t.match(up.masterUrl, /^https:\/\/127\.0\.0\.1:\d+$/, 'https from the first start');
    t.match(out, `curl -s --cacert ${join(up.stateDir, 'ca.pem')} -X POST ${up.masterUrl}/v1/sandboxes`, 'and a curl that creates a sandbox, trusting the local CA');
    t.match(out, `NODE_EXTRA_CA_CERTS=${join(up.stateDir, 'ca.pem')}`, 'the banner says how to trust the CA');
    t.equal(mode(join(up.stateDir, 'ca-key.pem')), 0o600, 'the CA key is private');
    t.match(out, `Sign in       ${up.masterUrl}/#token=${encodeURIComponent(up.apiToken)}`, 'a sign-in link with the token in the fragment');
    t.equal(out.split(up.apiToken).length - 1, 1, 'the API token is printed once, in that link, never in a log line');
    t.equal(readFileSync(join(up.stateDir, 'master-url'), 'utf8').trim(), up.masterUrl);

    const auth = { authorization: `Bearer ${up.apiToken}` };
    const hosts = (await (await up.fetch(`${up.masterUrl}/v1/hosts`, { headers: auth })).json()) as { hosts: { id: string; health: string; managerUrl: string }[] };
    t.same(hosts.hosts.map((h) => [h.id, h.health]), [[ADDRESS, 'alive']], 'the first manager is up on its address before any sandbox');
    // Its warm pool fills as the local provider's managers' would (OMEGA_LOCAL_POOL_SIZE), so the first create is warm.
    await waitFor('the first manager\'s warm pool', async () => {
      const h = (await (await fetch(`${hosts.hosts[0]!.managerUrl}/healthz`)).json()) as { pool: Record<string, { ready: number }> };
      return h.pool.python!.ready >= 1 || null;
    }, 60_000, 200);

    const res = await up.fetch(`${up.masterUrl}/v1/sandboxes`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ template: 'python' }) });
    t.equal(res.status, 201);
    const sb = (await res.json()) as { id: string; hostname: string; host: string; source: string; url: string };
    t.equal(sb.host, ADDRESS);
    t.match(sb.url, new RegExp(`^wss://${sb.id}\\.sandbox\\.test(:\\d+)?/$`), 'the agent over wss, through the host\'s ingress');
    t.equal(sb.source, 'pool', 'from the warm pool');
    t.same(await up.dig(sb.hostname), [ADDRESS], 'Omega DNS answers the sandbox name with its host');
    t.ok(labelled(ADDRESS).length > 0, 'its container runs');

    // The client commands find this master and its token through the state directory alone.
    const cli = (...args: string[]) => JSON.parse(execFileSync(process.execPath, ['--import=tsx', CLI, ...args, '--json', '--state-dir', up.stateDir], { encoding: 'utf8', env: { PATH: process.env.PATH } }));
    t.same((cli('sandbox', 'list') as { id: string }[]).map((x) => x.id), [sb.id], 'omega sandbox list');
    t.same((cli('hosts') as { hosts: { id: string }[] }).hosts.map((h) => h.id), [ADDRESS], 'omega hosts');

    // A second up on the same state directory is refused before it starts anything (it would share this one's Redis, ports, containers).
    const second = spawnSync(process.execPath, ['--import=tsx', CLI, 'up'], { env: { PATH: process.env.PATH, HOME: process.env.HOME, OMEGA_STATE_DIR: up.stateDir }, encoding: 'utf8', timeout: 60_000 });
    t.equal(second.status, 1, 'a second omega up on the same state directory exits 1');
    t.match(second.stdout, `another omega up (pid ${up.pid}) runs with the state directory ${up.stateDir}`);
    t.equal(readFileSync(join(up.stateDir, 'master-url'), 'utf8').trim(), up.masterUrl, 'and touched nothing of the first');

    // A crashed program is restarted by the supervisor.
    const dnsPid = Number(execFileSync('pgrep', ['-P', String(up.pid), '-f', 'cli.ts dns'], { encoding: 'utf8' }).trim());
    t.ok(dnsPid > 0, 'dns is a child of omega up');
    process.kill(dnsPid, 'SIGKILL');
    await waitFor('dns restarted', () => up.output().includes('restarting dns'), 10_000);
    t.same(await waitFor('dns answers again', async () => ((await up.dig(sb.hostname).catch(() => [])).length ? up.dig(sb.hostname) : null), 30_000, 200), [ADDRESS]);

    const tree = descendants(up.pid);
    t.ok(tree.length >= 4, 'redis, dns, manager, master (and what they started) run under it');
    const code = await up.stop('SIGINT');
    t.equal(code, 0, 'Ctrl-C exits cleanly');
    t.match(up.output(), /deleted 1 sandbox/, 'the sandbox was deleted through the master');
    t.notMatch(up.output(), /left behind/, 'nothing needed the last sweep');
    t.same(labelled(ADDRESS), [], 'no container or volume is left on its host');
    const redisPort = Number(/port (\d+)/.exec(readFileSync(join(up.stateDir, 'redis.conf'), 'utf8'))![1]);
    t.notOk(await listening(redisPort), 'its own redis-server stopped');
    t.notOk(await listening(Number(new URL(up.masterUrl).port)), 'the master stopped');
    t.same(tree.map(alive).filter(Boolean), [], 'no process it started outlives it');
    t.notOk(existsSync(join(up.stateDir, 'up.pid')), 'a clean stop leaves nothing for the next up to finish');
    t.ok(existsSync(join(up.stateDir, 'dns-zone.snapshot')), 'the DNS server keeps its zone in the state directory (a restart answers from it at once)');
  });

  t.test('a killed omega up: its programs stop by themselves; the next up takes its Redis back, deletes what it left, and leaves nothing', async (t) => {
    t.teardown(() => [ADDRESS, NEXT].forEach(removeLabelled));
    // The managers' port as a user's runs keep it (7070 unless told): a sandbox's record names its manager's URL.
    const env = { OMEGA_LOCAL_CAPACITY: '1', OMEGA_LOCAL_MANAGER_PORT: String(await freePort()) };
    const up = await startUp(t, { address: ADDRESS, env });
    t.teardown(() => rmSync(up.stateDir, { recursive: true, force: true }));
    const first = await create(up);
    const second = await create(up);
    t.same([first.host, second.host], [ADDRESS, NEXT], 'the second sandbox on a host the master\'s provider started');
    const tree = descendants(up.pid);
    const redis = tree.filter((p) => alive(p)?.startsWith('redis-server'));
    t.equal(redis.length, 1, 'its own redis-server');
    t.equal(tree.filter((p) => / manager$/.test(alive(p) ?? '')).length, 2, 'the first manager and the provider\'s');
    // SIGKILL, should a test fail: Redis refuses SIGTERM when it cannot save (its state dir removed).
    t.teardown(() => redis.forEach((p) => alive(p) && process.kill(p, 'SIGKILL')));
    process.kill(up.pid, 'SIGKILL');
    // dns, the managers and the master notice their closed channel (up's, or the master's) and stop as on SIGTERM.
    await waitFor('the programs to stop', () => {
      const left = tree.filter((p) => !redis.includes(p)).map(alive).filter(Boolean);
      if (left.length) throw new Error(`still running: ${left.join('; ')}`);
      return true;
    }, 60_000, 200);
    t.pass('dns, both managers and the master stopped by themselves');
    t.same([containers(ADDRESS).length, containers(NEXT).length], [1, 1], 'the managers removed their warm pools on the way out; the sandboxes run on');
    t.ok(alive(redis[0]!), 'its redis-server runs on (no channel), with the hosts and sandboxes of the killed run');

    // The next up, with the same state directory and Redis URL.
    const redisPort = Number(/port (\d+)/.exec(readFileSync(join(up.stateDir, 'redis.conf'), 'utf8'))![1]);
    const next = await startUp(t, { address: ADDRESS, env: { ...env, OMEGA_STATE_DIR: up.stateDir, OMEGA_REDIS_URL: `redis://127.0.0.1:${redisPort}` } });
    const out = next.output();
    t.match(out, `an earlier omega up (pid ${up.pid}) with this state directory did not stop cleanly`);
    t.match(out, `the redis-server an earlier omega up started (pid ${redis[0]}) still runs`, 'it says it found the Redis of the killed up');
    t.match(out, /shutting it down \(SAVE\) to start it again under this up/);
    t.notOk(alive(redis[0]!), 'that redis-server is gone');
    t.ok(descendants(next.pid).some((p) => alive(p)?.startsWith('redis-server')), 'the next up runs its own, under it');
    t.match(out, /deleted 2 sandboxes the earlier omega up left/, 'the killed run\'s records came back (SAVE) and its sandboxes were deleted');
    t.same(labelled(NEXT), [], 'the containers on the host no manager runs now are removed');
    t.notMatch(out, /did not start it/, 'no host it did not start is alive');
    const hosts = (await (await next.fetch(`${next.masterUrl}/v1/hosts`, { headers: { authorization: `Bearer ${next.apiToken}` } })).json()) as { hosts: { id: string; health: string; load: number }[] };
    t.same(hosts.hosts.filter((h) => h.health !== 'stopped').map((h) => [h.id, h.health, h.load]), [[ADDRESS, 'alive', 0]], 'only its own first host, empty');
    t.same(hosts.hosts.filter((h) => h.health === 'stopped').map((h) => [h.id, h.load]), [[NEXT, 0]], 'the killed run\'s provider host stopped with its master, empty (forgotten later)');
    t.equal((await create(next)).host, ADDRESS, 'a create goes to it');

    t.equal(await next.stop(), 0, 'Ctrl-C exits cleanly');
    t.same([...labelled(ADDRESS), ...labelled(NEXT)], [], 'nothing is left on either host');
    t.notOk(await listening(redisPort), 'and no redis-server');
    t.notOk(existsSync(join(up.stateDir, 'up.pid')), 'nothing for a next up to finish');
  });

  t.test('omega up uses a Redis that answers at OMEGA_REDIS_URL', async (t) => {
    const redis = await TestRedis.create();
    t.teardown(() => redis.destroy());
    const up = await startUp(t, { address: ADDRESS, env: { OMEGA_REDIS_URL: redis.url, OMEGA_REDIS_PREFIX: 'upshared' } });
    t.match(up.output(), `using the Redis that answers at ${redis.url}`);
    t.notMatch(up.output(), /starting redis-server/);
    t.equal(await up.stop(), 0);
    t.ok(await listening(redis.port), 'a Redis it did not start keeps running');
    t.same(labelled(ADDRESS), []);
  });
}
