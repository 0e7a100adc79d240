// The E2B REST API through the real `e2b` SDK (pinned) against a real master,
// Redis, the DNS server, a manager and Docker: create, getInfo, list with a
// metadata filter and paging, setTimeout, pause and connect (resumed, with
// the older create and connect routes of SDK 2.50 too; resumed, with
// the sandbox's token), kill; and the SDK's own errors for a wrong key, an
// unknown template and a sandbox that is gone. The SDK reaches the master
// through its apiUrl option (TLS off here; the agent's side is in
// test/worker/envd-*.test.ts).
import { AuthenticationError, Sandbox, SandboxNotFoundError } from 'e2b';
import { Sandbox as Sandbox250 } from 'e2b-2.50';
import t from 'tap';
import { e2bApiKey } from '../../src/e2b-key.js';
import { ENVD_VERSION } from '../../src/protocol/envd/version.js';
import { createRedis } from '../../src/redis/connection.js';
import { hostKeys } from '../../src/redis/keys.js';
import { startDns } from '../helpers/dns.js';
import { removeHostContainers, requireDocker } from '../helpers/docker.js';
import { startManager } from '../helpers/manager.js';
import { API_TOKEN, startMaster } from '../helpers/master.js';
import { TestRedis } from '../helpers/redis.js';
import { connectWorker } from '../helpers/worker-client.js';

if (requireDocker(t, ['omega/sandbox-node:latest'])) {
  const redis = await TestRedis.create();
  t.teardown(() => redis.destroy());
  const dns = await startDns(t, redis);
  const m = await startManager(t, redis, { OMEGA_REDIS_PREFIX: dns.prefix, OMEGA_TEMPLATES: 'node' });
  t.teardown(() => removeHostContainers(m.hostId));
  const { server } = await startMaster(t, redis, dns, { OMEGA_TEMPLATES: 'node', OMEGA_E2B_BASE_TEMPLATE: 'node' });
  const apiKey = e2bApiKey(API_TOKEN);
  const opts = { apiKey, apiUrl: server.apiUrl, domain: 'sandbox.test' };
  const raw = (method: string, path: string, body?: unknown, key: string | null = apiKey) =>
    fetch(`${server.apiUrl}${path}`, { method, headers: { ...(key ? { 'x-api-key': key } : {}), ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined });

  t.test('keys: the e2b_ key and the token itself open the API; anything else is the SDK\'s AuthenticationError', async (t) => {
    t.match(apiKey, /^e2b_[0-9a-f]{64}$/);
    t.equal((await raw('GET', '/v2/sandboxes')).status, 200);
    t.equal((await raw('GET', '/v2/sandboxes', undefined, API_TOKEN)).status, 200, 'the token as X-API-KEY');
    const none = await raw('GET', '/v2/sandboxes', undefined, null);
    t.equal(none.status, 401);
    t.match(await none.json(), { code: 401, message: /X-API-KEY/ });
    await t.rejects(Sandbox.list({ ...opts, apiKey: 'e2b_0123456789abcdef' }).nextItems(), AuthenticationError);
    t.equal((await raw('POST', '/v2/sandboxes', { templateID: 'node' }, 'e2b_00')).status, 401, 'checked before the create');
    for (const [what, body] of [
      ['a body that breaks the schema', '{"nonsense": true}'],
      ['a body that is not JSON', '{{{'],
      ['a body past the limit', 'x'.repeat(3 << 20)],
    ]) {
      const res = await fetch(`${server.apiUrl}/v2/sandboxes`, { method: 'POST', headers: { 'x-api-key': 'e2b_0123', 'content-type': 'application/json' }, body });
      const json = (await res.json()) as { code: number; message: string };
      t.equal(res.status, 401, `${what} with a wrong key: 401 before the body is read`);
      t.equal(json.code, 401);
      t.notMatch(json.message, /body|schema|must/, 'nothing about the schema');
    }
  });

  t.test('create, getInfo, list by metadata with paging, setTimeout, pause, connect, kill', async (t) => {
    const sbx = await Sandbox.create('node', { ...opts, metadata: { owner: 'alice' }, timeoutMs: 120_000 });
    t.teardown(() => sbx.kill().catch(() => undefined));
    t.match(sbx.sandboxId, /^[a-z0-9]+$/);
    const info = await sbx.getInfo();
    t.match(info, { sandboxId: sbx.sandboxId, templateId: 'node', metadata: { owner: 'alice' }, state: 'running', envdVersion: ENVD_VERSION, sandboxDomain: 'sandbox.test' });
    const left = info.endAt.getTime() - Date.now();
    t.ok(left > 100_000 && left <= 120_000, `its timeout (${left} ms left)`);

    const other = await Sandbox.create('node', { ...opts, metadata: { owner: 'bob' } });
    t.teardown(() => other.kill().catch(() => undefined));
    const alices = await Sandbox.list({ ...opts, query: { metadata: { owner: 'alice' } } }).nextItems();
    t.same(alices.map((s) => s.sandboxId), [sbx.sandboxId], 'the metadata filter');
    const paginator = Sandbox.list({ ...opts, limit: 1 });
    const seen: string[] = [];
    while (paginator.hasNext) seen.push(...(await paginator.nextItems()).map((s) => s.sandboxId));
    t.same(seen.sort(), [sbx.sandboxId, other.sandboxId].sort(), 'one a page, followed through X-Next-Token');

    await sbx.setTimeout(300_000);
    t.ok((await sbx.getInfo()).endAt.getTime() - Date.now() > 290_000, 'setTimeout');

    t.equal(await sbx.pause(), true);
    t.equal((await sbx.getInfo()).state, 'paused');
    t.equal(await Sandbox.pause(sbx.sandboxId, opts), false, 'pausing a paused one: false (409)');
    t.same((await Sandbox.list({ ...opts, query: { state: ['paused'] } }).nextItems()).map((s) => s.sandboxId), [sbx.sandboxId], 'the state filter');
    const again = await Sandbox.connect(sbx.sandboxId, opts);
    t.equal((await again.getInfo()).state, 'running', 'connect resumed it');
    // The token connect gives is the sandbox's own: it opens the worker.
    const view = (await fetch(`${server.apiUrl}/v1/sandboxes/${sbx.sandboxId}`, { headers: { authorization: `Bearer ${API_TOKEN}` } }).then((r) => r.json())) as { port: number };
    const token = (again as unknown as { envdAccessToken: string }).envdAccessToken;
    const c = await connectWorker(t, `ws://127.0.0.1:${view.port}/`, token);
    t.equal(c.hello!.sandboxId, sbx.sandboxId, 'the token from connect is the sandbox\'s');
    await c.close();

    t.equal(await Sandbox.kill(sbx.sandboxId, opts), true);
    t.equal(await Sandbox.kill(sbx.sandboxId, opts), false, 'killing again: false (404)');
    await t.rejects(Sandbox.getInfo(sbx.sandboxId, opts), SandboxNotFoundError);
    await t.rejects(Sandbox.connect(sbx.sandboxId, opts), SandboxNotFoundError);
    await t.rejects(Sandbox.setTimeout(sbx.sandboxId, 60_000, opts), SandboxNotFoundError);
  });

  t.test('lifecycle: onTimeout pause (autoPause), and a pause without memory (stopped) that connect resumes', async (t) => {
    const sbx = await Sandbox.create('node', { ...opts, lifecycle: { onTimeout: 'pause' } });
    t.teardown(() => sbx.kill().catch(() => undefined));
    t.match((await sbx.getInfo()).lifecycle, { onTimeout: 'pause' });
    const view = async () => (await (await fetch(`${server.apiUrl}/v1/sandboxes/${sbx.sandboxId}`, { headers: { authorization: `Bearer ${API_TOKEN}` } })).json()) as { onTimeout?: string; paused?: { kind: string } };
    t.equal((await view()).onTimeout, 'pause', 'the same sandbox in /v1 pauses on its timeout');
    t.equal(await sbx.pause({ keepMemory: false }), true);
    t.equal((await view()).paused?.kind, 'stopped', 'keepMemory: false stops it');
    t.equal((await (await Sandbox.connect(sbx.sandboxId, opts)).getInfo()).state, 'running');
  });

  t.test("the SDK's default template, base, is the one OMEGA_E2B_BASE_TEMPLATE names", async (t) => {
    const sbx = await Sandbox.create(opts);
    t.teardown(() => sbx.kill().catch(() => undefined));
    t.equal((await sbx.getInfo()).templateId, 'node');
  });

  t.test('an expired sandbox: the SDK\'s SandboxNotFoundError', async (t) => {
    const sbx = await Sandbox.create('node', { ...opts, timeoutMs: 60_000 });
    // Its time is up (as the reaper would find it a minute from now).
    const rc = createRedis(redis.url);
    t.teardown(() => rc.disconnect());
    const k = hostKeys(dns.prefix);
    await rc.hset(k.sandbox(sbx.sandboxId), 'expiresAtMs', String(Date.now() - 1));
    await rc.zadd(k.expiry, Date.now() - 1, sbx.sandboxId);
    t.same(await server.reaper.reapExpired(), [sbx.sandboxId]);
    await t.rejects(sbx.getInfo(), SandboxNotFoundError);
    await t.rejects(Sandbox.connect(sbx.sandboxId, opts), SandboxNotFoundError);
    t.equal(await sbx.kill(), false);
  });

  t.test('SDK 2.50: the older routes, POST /sandboxes and /sandboxes/:id/connect', async (t) => {
    const sbx = await Sandbox250.create('node', { ...opts, metadata: { sdk: '2.50' } });
    t.teardown(() => sbx.kill().catch(() => undefined));
    t.match(await sbx.getInfo(), { state: 'running', metadata: { sdk: '2.50' }, envdVersion: ENVD_VERSION });
    const same = await Sandbox250.connect(sbx.sandboxId, opts);
    t.equal(same.sandboxId, sbx.sandboxId, 'connect to a running one');
    t.equal(await sbx.pause(), true);
    t.equal((await (await Sandbox250.connect(sbx.sandboxId, opts)).getInfo()).state, 'running', 'connect resumes a paused one');
    t.equal(await sbx.kill(), true);
  });

  t.test('bad input: an unknown template, a bad body, unsupported options, in E2B\'s error shape', async (t) => {
    const unknown = await Sandbox.create('cobol', opts).catch((e: unknown) => e);
    t.match(unknown, { name: 'SandboxError', message: /^400: unknown template "cobol"/ });
    const bad = await raw('POST', '/v2/sandboxes', { templateID: 'node', timeout: 'soon' });
    t.equal(bad.status, 400);
    t.match(await bad.json(), { code: 400, message: /timeout/ });
    const mcp = await raw('POST', '/v2/sandboxes', { templateID: 'node', mcp: { github: {} } });
    t.match(await mcp.json(), { code: 400, message: /MCP/ });
    t.equal((await raw('GET', '/v2/sandboxes?state=stopped')).status, 400);
    t.match(await (await raw('POST', '/sandboxes/nosuchsandbox1/pause', {})).json(), { code: 404 });
    const badSpan = await raw('GET', '/sandboxes/nosuchsandbox1/metrics?start=yesterday');
    t.equal(badSpan.status, 400);
    t.match(await badSpan.json(), { code: 400, message: /start/ });
    t.match(await (await raw('GET', '/sandboxes/nosuchsandbox1/metrics')).json(), { code: 404 });
  });
}
