// Every API checks its token before it reads a body: a stranger's request
// with a bad (or huge) body is 401, never a 400 that describes the schema.
import t from 'tap';
import net from 'node:net';
import { Agent, request } from 'undici';
import { startDns, TOKEN as DNS_TOKEN } from '../helpers/dns.js';
import { startManager } from '../helpers/manager.js';
import { API_TOKEN, startMaster } from '../helpers/master.js';
import { TestRedis } from '../helpers/redis.js';

const redis = await TestRedis.create();
t.teardown(() => redis.destroy());

t.test('master, manager and DNS API: 401 before the body is parsed', async (t) => {
  const dns = await startDns(t, redis);
  const m = await startManager(t, redis, { OMEGA_REDIS_PREFIX: dns.prefix, OMEGA_DOCKER_SOCKET: '/nonexistent/docker.sock' });
  const { server } = await startMaster(t, redis, dns);
  const cases: Array<[string, string, string]> = [
    ['master', server.apiUrl, '/v1/sandboxes'],
    ['manager', m.server.apiUrl, '/v1/sandboxes'],
    ['dns', dns.api, '/v1/changes'],
  ];
  for (const [name, base, path] of cases) {
    for (const [what, body] of [
      ['a body that breaks the schema', JSON.stringify({ nonsense: true })],
      ['a body that is not JSON', '{{{'],
      ['a body past the limit', 'x'.repeat(3 << 20)],
    ] as const) {
      const res = await request(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer wrong-token-0123456789' }, body });
      const json = (await res.body.json()) as { code?: string; message?: string };
      t.equal(res.statusCode, 401, `${name}: ${what} with a wrong token is 401`);
      t.equal(json.code, 'UNAUTHORIZED', `${name}: ${what}: the code says so`);
      t.notMatch(json.message ?? '', /body|schema|must/, `${name}: nothing about the schema`);
    }
  }
});

t.test('master, manager and DNS API: an address that keeps sending wrong tokens is refused, others are not', async (t) => {
  const dns = await startDns(t, redis);
  const m = await startManager(t, redis, { OMEGA_REDIS_PREFIX: dns.prefix, OMEGA_DOCKER_SOCKET: '/nonexistent/docker.sock' });
  const { server } = await startMaster(t, redis, dns);
  // The guesser connects from an address of its own (all of 127/8 is this machine's).
  const guesser = new Agent({ localAddress: '127.0.0.9' });
  t.teardown(() => guesser.close());
  for (const [name, base, path, right] of [
    ['master', server.apiUrl, '/v1/sandboxes', API_TOKEN],
    ['manager', m.server.apiUrl, '/v1/sandboxes', m.config.token!],
    ['dns', dns.api, '/v1/records', DNS_TOKEN],
  ] as const) {
    const statuses: number[] = [];
    for (let i = 0; i < 25; i++) {
      const res = await request(`${base}${path}`, { dispatcher: guesser, headers: { authorization: `Bearer wrong-${i}-0123456789abcdef` } });
      await res.body.dump();
      statuses.push(res.statusCode);
    }
    t.same(statuses, [...Array(20).fill(401), ...Array(5).fill(429)], `${name}: 20 wrong tokens answered, then refused`);
    const refused = await request(`${base}${path}`, { dispatcher: guesser, headers: { authorization: `Bearer ${right}` } });
    const body = (await refused.body.json()) as { code: string };
    t.equal(refused.statusCode, 429, `${name}: even the right token is not looked at from that address now`);
    t.equal(body.code, 'TOO_MANY_AUTH_FAILURES');
    t.ok(Number(refused.headers['retry-after']) >= 1, `${name}: Retry-After says when to come back`);
    const other = await request(`${base}${path}`, { headers: { authorization: `Bearer ${right}` } });
    await other.body.dump();
    // (The manager here has no Docker engine: its answer is 503, on the merits.)
    t.notOk([401, 429].includes(other.statusCode), `${name}: another address is served (${other.statusCode})`);
  }
});

t.test('an API closes connections past the per-source limit; other addresses are served', async (t) => {
  const m = await startManager(t, redis, { OMEGA_DOCKER_SOCKET: '/nonexistent/docker.sock', OMEGA_MAX_CONNECTIONS_PER_SOURCE: '8' });
  const { hostname: host, port } = new URL(m.server.apiUrl);
  const open = (localAddress: string) =>
    new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host, port: Number(port), localAddress }, () => resolve(s));
      s.on('error', reject);
    });
  const held = await Promise.all(Array.from({ length: 12 }, () => open('127.0.0.9')));
  t.teardown(() => held.forEach((s) => s.destroy()));
  // A refused one is closed by the server before it reads a byte: it sees the end.
  const ended = await Promise.all(held.map((s) => new Promise<boolean>((resolve) => {
    s.once('close', () => resolve(true));
    setTimeout(() => resolve(false), 1000);
  })));
  t.equal(ended.filter(Boolean).length, 4, '8 held, 4 closed at once');
  const res = await request(`${m.server.apiUrl}/healthz`);
  await res.body.dump();
  t.ok([200, 503].includes(res.statusCode), `another address is answered meanwhile (${res.statusCode}: no Docker engine here)`);
});
