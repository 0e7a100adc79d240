// A repository and an environment per create, against real Docker, a real
// git daemon and the master: the repository is cloned before the create
// answers (warm pool or cold), a bad URL or ref is a 422 with git's own
// words and leaves nothing, credentials in the URL are shown nowhere, and
// the create's env reaches the sandbox's programs. The git daemon runs on an
// "internet" address in a network namespace of the test's own: a sandbox
// reaches neither the host nor private addresses.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { createRedis } from '../../src/redis/connection.js';
import { hostKeys } from '../../src/redis/keys.js';
import { startDns } from '../helpers/dns.js';
import { removeHostContainers, requireDocker } from '../helpers/docker.js';
import { startManager } from '../helpers/manager.js';
import { startMaster } from '../helpers/master.js';
import { otherMachine, serveGit } from '../helpers/netns.js';
import { waitFor } from '../helpers/ports.js';
import { TestRedis } from '../helpers/redis.js';
import { connectWorker } from '../helpers/worker-client.js';

const git = (cwd: string, ...args: string[]) => execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', ...args], { cwd, encoding: 'utf8' });

if (requireDocker(t, ['omega/sandbox-node:latest'])) {
  const dir = mkdtempSync(join(tmpdir(), 'omega-git-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const work = join(dir, 'work');
  execFileSync('mkdir', ['-p', work]);
  git(work, 'init', '-q', '-b', 'main');
  writeFileSync(join(work, 'README.md'), 'version one\n');
  git(work, 'add', '.');
  git(work, 'commit', '-q', '-m', 'one');
  git(work, 'tag', 'v1');
  writeFileSync(join(work, 'README.md'), 'version two\n');
  git(work, 'commit', '-q', '-am', 'two');
  git(dir, 'clone', '-q', '--bare', work, join(dir, 'repo.git'));

  const other = otherMachine(t, 18097);
  const url = await serveGit(t, other, dir, 'repo.git');

  const redis = await TestRedis.create();
  t.teardown(() => redis.destroy());
  const dns = await startDns(t, redis);
  const m = await startManager(t, redis, { OMEGA_REDIS_PREFIX: dns.prefix, OMEGA_TEMPLATES: 'node', OMEGA_POOL_SIZE: '1' });
  // What a failing test leaves (its deletes not reached), removed all the same.
  t.teardown(() => removeHostContainers(m.hostId));
  const { call } = await startMaster(t, redis, dns, { OMEGA_TEMPLATES: 'node' });
  const rc = createRedis(redis.url);
  t.teardown(() => rc.disconnect());

  t.test('git and env on create: the repository is there when the create answers, the variables in every program', async (t) => {
    await m.server.pool.whenFull();
    const res = await call('POST', '/v1/sandboxes', { template: 'node', git: { url, ref: 'v1', depth: 1 }, env: { GREETING: 'hello from env', PATH_EXTRA: '/x' } });
    t.equal(res.status, 201, JSON.stringify(res.body));
    t.equal(res.body.source, 'pool', 'a warm container claimed, then cloned into');
    t.notMatch(JSON.stringify(res.body), /git:\/\//, 'the view does not carry the repository');
    const c = await connectWorker(t, `ws://127.0.0.1:${res.body.port}/`, res.body.token);
    t.equal((await c.call('fs.read', { path: 'README.md' })).content, 'version one\n', 'the tag v1, at once');
    const r = await c.runToEnd({ command: 'sh', args: ['-c', 'echo "$GREETING"; git rev-list --count HEAD; stat -c %u README.md'] });
    t.equal(r.stdout, 'hello from env\n1\n1000\n', 'env reaches programs; depth 1; the clone is the user\'s');
    const { termId } = await c.call('term.open', { cols: 80, rows: 24 });
    await c.call('term.input', { termId, data: 'echo "T:$GREETING"\r' });
    await c.waitEvent('term.output', () => /T:hello from env/.test(c.output('term.output', termId)), 10_000);
    t.pass('and terminals');
    await c.close();
    t.equal((await call('DELETE', `/v1/sandboxes/${res.body.id}`)).status, 200);
  });

  t.test('a bad ref or URL is a 422 with git\'s own words, credentials removed, and leaves nothing', async (t) => {
    const k = hostKeys(dns.prefix);
    const before = await rc.zscore(k.load, m.hostId);
    const badRef = await call('POST', '/v1/sandboxes', { template: 'node', git: { url, ref: 'no-such-branch' } });
    t.equal(badRef.status, 422, JSON.stringify(badRef.body));
    t.equal(badRef.body.code, 'GIT_FAILED');
    t.match(badRef.body.message, /no-such-branch/, 'git says which ref');
    const secret = `git://someone:hunter2secret@${other.public}:9418/missing.git`;
    const badUrl = await call('POST', '/v1/sandboxes', { template: 'node', git: { url: secret } });
    t.equal(badUrl.status, 422, JSON.stringify(badUrl.body));
    t.notMatch(JSON.stringify(badUrl.body), /hunter2secret/, 'the password is not in the answer');
    t.equal(await rc.zscore(k.load, m.hostId), before, 'no slot held');
    await waitFor('the pool back', async () => (await m.server.runtime.list()).length === 1, 30_000, 200);
    t.same((await call('GET', '/v1/sandboxes')).body.sandboxes, [], 'no record');
    const bad = await call('POST', '/v1/sandboxes', { template: 'node', env: { OMEGA_WORKER_TOKEN: 'x' } });
    t.equal(bad.status, 400, 'an OMEGA_ variable is refused: those are the agent\'s');
  });
}
