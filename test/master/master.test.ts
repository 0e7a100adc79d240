// The master end to end, against the real thing: Redis, the DNS server, managers
// started by the local provider on 127.0.0.x, Docker, and the sandboxes' workers.
import { execFileSync } from 'node:child_process';
import t from 'tap';
import type { LocalProvider } from '../../master/providers/local.js';
import { createRedis } from '../../src/redis/connection.js';
import { SANDBOX_ID_FORMAT } from '../../src/ids.js';
import { hostKeys } from '../../src/redis/keys.js';
import { dig, startDns, zoneLookup } from '../helpers/dns.js';
import { dockerExists, requireDocker, releaseWorkspaceImages } from '../helpers/docker.js';
import { quickLocalManagers, startMaster } from '../helpers/master.js';
import { freePort, waitFor } from '../helpers/ports.js';
import { TestRedis } from '../helpers/redis.js';
import { connectWorker, type TestClient } from '../helpers/worker-client.js';

if (requireDocker(t, ['omega/sandbox-python:latest', 'omega/sandbox-node:latest'])) {
  quickLocalManagers();

  const redis = await TestRedis.create();
  t.teardown(() => redis.destroy());
  const dns = await startDns(t, redis);
  const managerPort = await freePort();
  const { server, call } = await startMaster(t, redis, dns, {
    OMEGA_PROVIDER: 'local',
    OMEGA_LOCAL_FIRST_ADDRESS: '127.0.0.2',
    OMEGA_LOCAL_MAX_HOSTS: '2',
    OMEGA_LOCAL_CAPACITY: '2',
    OMEGA_LOCAL_POOL_SIZE: 'python=1,node=0',
    OMEGA_LOCAL_MANAGER_PORT: String(managerPort),
    OMEGA_SCALE_OUT_WAIT_MS: '30000',
    OMEGA_REAP_INTERVAL_MS: '200',
    OMEGA_SANDBOX_DNS_TTL: '5',
  });
  const provider = server.provider as LocalProvider;
  const rc = createRedis(redis.url);
  t.teardown(async () => {
    // Sandboxes outlive their managers; this test removes every container its hosts started.
    for (const host of ['127.0.0.2', '127.0.0.3']) {
      const ids = execFileSync('docker', ['ps', '-aq', '--filter', `label=omega.host=${host}`], { encoding: 'utf8' }).split('\n').filter(Boolean);
      if (ids.length) execFileSync('docker', ['rm', '-f', ...ids], { stdio: 'ignore' });
      // By label, not through the containers: a killed manager may have made a volume and no container yet.
      const volumes = execFileSync('docker', ['volume', 'ls', '-q', '--filter', `label=omega.host=${host}`], { encoding: 'utf8' }).split('\n').filter(Boolean);
      if (volumes.length) execFileSync('docker', ['volume', 'rm', '-f', ...volumes], { stdio: 'ignore' });
      releaseWorkspaceImages(host);
    }
    rc.disconnect();
  });

  /** Name lookups through Omega's DNS server only, as a client pointed at it would make them. */
  const lookup = zoneLookup(dns.port);
  const open = (url: string, token: string): Promise<TestClient> => connectWorker(null, url, token, 'header', { lookup: lookup as any });

  t.test('the API refuses what it must', async (t) => {
    t.equal((await call('GET', '/v1/sandboxes', undefined, null)).status, 401, 'no token');
    t.equal((await call('POST', '/v1/sandboxes', { template: 'python' }, 'wrong-token-0123456789')).status, 401, 'wrong token');
    const unknown = await call('POST', '/v1/sandboxes', { template: 'cobol' });
    t.equal(unknown.status, 400);
    t.equal(unknown.body.code, 'UNKNOWN_TEMPLATE');
    t.equal((await call('POST', '/v1/sandboxes', { template: 'python', timeoutSeconds: 'soon' })).body.code, 'VALIDATION_FAILED');
    const missing = await call('GET', '/v1/sandboxes/abcdefghijklmnop');
    t.equal(missing.status, 404);
    t.equal(missing.body.code, 'SANDBOX_NOT_FOUND');
    t.same((await call('DELETE', '/v1/sandboxes/abcdefghijklmnop')).body, { id: 'abcdefghijklmnop', deleted: false }, 'delete is idempotent');
  });

  let first: any;
  t.test('create with no host scales out, then: dig, WebSocket by name, run, delete, NXDOMAIN', async (t) => {
    const res = await call('POST', '/v1/sandboxes', { template: 'python', metadata: { owner: 'alice' } });
    t.equal(res.status, 201, JSON.stringify(res.body));
    first = res.body;
    t.match(first, { state: 'running', template: 'python', address: '127.0.0.2', host: '127.0.0.2', metadata: { owner: 'alice' } });
    t.match(first.id, SANDBOX_ID_FORMAT, 'an 80-bit random label');
    t.equal(first.hostname, `${first.id}.sandbox.test`);
    t.equal(first.url, `ws://${first.hostname}:${first.port}`);
    t.ok(first.token.length >= 43);
    t.equal(server.scaler.launches, 1, 'one host launched');

    const a = await dig(dns.port, [first.hostname, 'A']);
    t.equal(a.status, 'NOERROR');
    t.match(a.answer.join('\n'), /\t127\.0\.0\.2$/m, 'dig answers the host\'s address');
    t.match((await dig(dns.port, [`3000.${first.hostname}`, 'A'])).answer.join('\n'), /127\.0\.0\.2/, 'preview names resolve through the wildcard');

    const c = await open(first.url, first.token);
    t.teardown(() => c.close());
    const r = await c.runToEnd({ language: 'python', code: 'import socket; print("hi from", 6 * 7)' });
    t.equal(r.stdout.trim(), 'hi from 42', 'code runs in the sandbox reached by its name');
    await t.rejects(open(first.url, 'not-the-token-0123456789'), 'another token is refused');

    const got = await call('GET', `/v1/sandboxes/${first.id}`);
    t.match(got.body, { id: first.id, state: 'running', port: first.port });
    t.notOk('token' in got.body, 'the token is shown once, at create');
    const listed = await call('GET', '/v1/sandboxes?metadata.owner=alice');
    t.same(listed.body.sandboxes.map((s: any) => s.id), [first.id], 'filter by metadata');
    t.same((await call('GET', '/v1/sandboxes?metadata.owner=bob')).body.sandboxes, []);
  });

  t.test('capacity full: concurrent creates add exactly one more host', async (t) => {
    const [b, c] = await Promise.all([call('POST', '/v1/sandboxes', { template: 'python' }), call('POST', '/v1/sandboxes', { template: 'node' })]);
    t.equal(b.status, 201, JSON.stringify(b.body));
    t.equal(c.status, 201, JSON.stringify(c.body));
    const d = await call('POST', '/v1/sandboxes', { template: 'python' });
    t.equal(d.status, 201, JSON.stringify(d.body));
    t.equal(server.scaler.launches, 2, 'a second host, once');
    const hosts = (await call('GET', '/v1/hosts')).body.hosts;
    t.same(hosts.map((h: any) => [h.address, h.load, h.capacity, h.health]).sort(), [
      ['127.0.0.2', 2, 2, 'alive'],
      ['127.0.0.3', 2, 2, 'alive'],
    ]);
    const full = await call('POST', '/v1/sandboxes', { template: 'python' });
    t.equal(full.status, 503, 'no room and the provider is at its maximum');
    t.equal(full.body.code, 'NO_CAPACITY');
    t.ok(Number(full.headers.get('retry-after')) > 0, 'with a retry hint');
    const list = (await call('GET', '/v1/sandboxes?limit=2')).body;
    t.equal(list.sandboxes.length, 2);
    const rest = (await call('GET', `/v1/sandboxes?limit=10&cursor=${list.nextCursor}`)).body;
    t.equal(rest.sandboxes.length, 2, 'the cursor continues the listing');
    t.equal(rest.nextCursor, null);
    // A request looks at a bounded number of index entries: a filter that matches few answers short pages, and its cursor finds the rest.
    const pages: string[][] = [];
    let cursor: string | undefined;
    do {
      const page = await server.sandboxes.list({ metadata: { owner: 'alice' } }, 10, cursor, 1);
      pages.push(page.sandboxes.map((s) => s.id));
      cursor = page.nextCursor ?? undefined;
    } while (cursor && pages.length < 10);
    t.same(pages.flat(), (await call('GET', '/v1/sandboxes?metadata.owner=alice')).body.sandboxes.map((s: any) => s.id), 'the short pages hold what one long look finds');
    t.equal(pages.length, 4, 'one entry looked at a request: a page for each of the four sandboxes');
    // Make room again for what follows.
    for (const s of [b, c, d]) t.same((await call('DELETE', `/v1/sandboxes/${s.body.id}`)).body, { id: s.body.id, deleted: true });
  });

  t.test('delete removes container, names and count', async (t) => {
    const rec = await rc.hgetall(hostKeys(dns.prefix).sandbox(first.id));
    t.same((await call('DELETE', `/v1/sandboxes/${first.id}`)).body, { id: first.id, deleted: true });
    t.equal((await dig(dns.port, [first.hostname, 'A'])).status, 'NXDOMAIN');
    t.equal((await dig(dns.port, [`3000.${first.hostname}`, 'A'])).status, 'NXDOMAIN');
    t.notOk(dockerExists('container', rec.containerId!), 'container gone');
    t.equal(await rc.zscore(hostKeys(dns.prefix).load, '127.0.0.2'), '0', 'count back');
    t.equal((await call('GET', `/v1/sandboxes/${first.id}`)).status, 404);
  });

  t.test('POST /v1/run: a warm sandbox runs the code once and is discarded', async (t) => {
    const r = await call('POST', '/v1/run', { language: 'python', code: 'import sys\nprint(input().upper())\nprint("err", file=sys.stderr)\nsys.exit(4)', stdin: 'shout\n' });
    t.equal(r.status, 200, JSON.stringify(r.body));
    t.match(r.body, { stdout: 'SHOUT\n', stderr: 'err\n', exitCode: 4, timedOut: false });
    const slow = await call('POST', '/v1/run', { language: 'node', code: 'setTimeout(() => {}, 60000)', timeoutMs: 500 });
    t.match(slow.body, { timedOut: true });
    const bad = await call('POST', '/v1/run', { language: 'cobol', code: '' });
    t.equal(bad.body.code, 'UNKNOWN_TEMPLATE');
    // Streamed as server-sent events.
    const res = await fetch(`${server.apiUrl}/v1/run`, {
      method: 'POST',
      headers: { authorization: `Bearer ${(await import('../helpers/master.js')).API_TOKEN}`, 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ language: 'python', code: 'print(1); print(2)' }),
    });
    t.match(res.headers.get('content-type'), /text\/event-stream/);
    const text = await res.text();
    const events = text.split('\n\n').filter(Boolean).map((block) => {
      const [, event, data] = /^event: (\w+)\ndata: (.*)$/s.exec(block)!;
      return { event: event!, data: JSON.parse(data!) };
    });
    t.equal(events.filter((e) => e.event === 'stdout').map((e) => e.data.data).join(''), '1\n2\n', 'stdout as it came');
    t.match(events.at(-1), { event: 'exit', data: { exitCode: 0, timedOut: false } }, 'then the exit');
    await waitFor('run sandboxes discarded', async () => (await call('GET', '/v1/hosts')).body.hosts.every((h: any) => h.load === 0), 20_000, 100);
    t.pass('no run leaves its sandbox behind');
  });

  t.test('expiry deletes a sandbox: record, names, container', async (t) => {
    const s = (await call('POST', '/v1/sandboxes', { template: 'python' })).body;
    const ext = await call('POST', `/v1/sandboxes/${s.id}/timeout`, { seconds: 1 });
    t.ok(Date.parse(ext.body.expiresAt) - Date.now() <= 1000, 'extended (here: shortened) to a second from now');
    await waitFor('expired', async () => (await call('GET', `/v1/sandboxes/${s.id}`)).status === 404, 15_000, 100);
    t.equal((await dig(dns.port, [s.hostname, 'A'])).status, 'NXDOMAIN');
    t.equal((await call('POST', `/v1/sandboxes/${s.id}/timeout`, { seconds: 60 })).status, 404);
  });

  t.test('a hung manager: its host stops receiving work, its sandboxes are lost, their names gone', async (t) => {
    // Both hosts are empty now; fill 127.0.0.3 (the second host) and kill its manager.
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push((await call('POST', '/v1/sandboxes', { template: 'python' })).body.id);
    const onThree = await rc.smembers(hostKeys(dns.prefix).sandboxesOn('127.0.0.3'));
    t.equal(onThree.length, 2);
    // Hung, not killed: a killed one is restarted by the local provider within a second, before its heartbeat lapses.
    const hung = provider.pid('127.0.0.3')!;
    process.kill(hung, 'SIGSTOP');
    t.teardown(() => {
      try {
        process.kill(hung, 'SIGKILL');
      } catch {
        // the provider killed it already (a hung manager of a lost host is killed and restarted)
      }
    });
    await waitFor('lost', async () => (await call('GET', `/v1/sandboxes/${onThree[0]}`)).body.state === 'lost', 15_000, 100);
    for (const id of onThree) {
      t.equal((await call('GET', `/v1/sandboxes/${id}`)).body.state, 'lost');
      t.equal((await dig(dns.port, [`${id}.sandbox.test`, 'A'])).status, 'NXDOMAIN', 'its name is gone');
    }
    const hosts = (await call('GET', '/v1/hosts')).body.hosts;
    // Lost, or already back: the provider kills a hung manager of a lost host and starts it again.
    t.match(hosts.find((h: any) => h.address === '127.0.0.3'), { health: /^(lost|alive)$/, load: 0 });
    const lost = await call('GET', '/v1/sandboxes?state=lost');
    t.same(lost.body.sandboxes.map((s: any) => s.id).sort(), [...onThree].sort(), 'listed as lost');
    for (const id of ids) await call('DELETE', `/v1/sandboxes/${id}`);
    t.same((await call('GET', '/v1/sandboxes')).body.sandboxes, [], 'all gone');
  });
}
