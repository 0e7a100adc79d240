// The master's DNS client: changes asked for while a request is in flight go
// together in the next one, each caller hears of its own changes only.
import t from 'tap';
import { Agent } from 'undici';
import { DnsClient, UpstreamError } from '../../master/clients.js';
import { startDns, TOKEN } from '../helpers/dns.js';
import { TestRedis } from '../helpers/redis.js';

const redis = await TestRedis.create();
t.teardown(() => redis.destroy());
const dns = await startDns(t, redis);
const agent = new Agent();
t.teardown(() => agent.close());

const upsert = (name: string) => ({ action: 'UPSERT' as const, name, type: 'A' as const, values: ['10.9.0.1'], ttl: 30 });

t.test('200 callers at once: every change applied, in a handful of requests', async (t) => {
  const client = new DnsClient(agent, TOKEN, dns.api);
  const names = Array.from({ length: 200 }, (_, i) => `many${i}`);
  await Promise.all(names.map((n) => client.change([upsert(n), upsert(`*.${n}`)])));
  t.ok(client.changeRequests < 20, `${client.changeRequests} requests for 200 callers`);
  t.equal((await client.present([...names, ...names.map((n) => `*.${n}`)])).size, 400, 'all there');
  await Promise.all(names.map((n) => client.removeNames([n, `*.${n}`])));
  t.equal((await client.present(names)).size, 0, 'and all removed, in order after their writes');
});

t.test('a bad change fails its own caller only', async (t) => {
  const client = new DnsClient(agent, TOKEN, dns.api);
  // The first goes alone (nothing was in flight); the next three share a batch.
  const results = await Promise.allSettled([client.change([upsert('solo')]), client.change([upsert('good1')]), client.change([upsert('outside.example.com.')]), client.change([upsert('good2')])]);
  t.same(results.map((r) => r.status), ['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
  const err = (results[2] as PromiseRejectedResult).reason;
  t.ok(err instanceof UpstreamError && err.status === 400, `a 400 (${String(err)})`);
  t.same([...(await client.present(['solo', 'good1', 'good2']))].sort(), ['good1', 'good2', 'solo']);
});

t.test('the DNS API unreachable: every caller of the batch fails', async (t) => {
  const client = new DnsClient(agent, TOKEN, 'http://127.0.0.1:1');
  const results = await Promise.allSettled([client.change([upsert('x1')]), client.change([upsert('x2')]), client.change([upsert('x3')])]);
  t.same(results.map((r) => r.status), ['rejected', 'rejected', 'rejected']);
  t.match(String((results[1] as PromiseRejectedResult).reason), /DNS|ECONNREFUSED|127\.0\.0\.1:1/);
});
