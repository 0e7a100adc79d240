// Every API checks its token before it reads a body: a stranger's request
// with a bad (or huge) body is 401, never a 400 that describes the schema.
import t from 'tap';
import { request } from 'undici';
import { startDns } from '../helpers/dns.js';
import { startManager } from '../helpers/manager.js';
import { startMaster } from '../helpers/master.js';
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
