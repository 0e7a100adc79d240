import t from 'tap';
import { dig, startDns, TOKEN } from '../helpers/dns.js';
import { waitFor } from '../helpers/ports.js';
import { TestRedis } from '../helpers/redis.js';

const redis = await TestRedis.create();
t.teardown(() => redis.destroy());
const dns = await startDns(t, redis);

t.test('every /v1 route needs the bearer token; health and metrics do not', async (t) => {
  for (const [method, path, body] of [
    ['PUT', '/v1/records/a1', { type: 'A', values: ['10.0.0.1'] }],
    ['GET', '/v1/records/a1', undefined],
    ['DELETE', '/v1/records/a1', undefined],
    ['GET', '/v1/records', undefined],
    ['POST', '/v1/changes', { changes: [{ action: 'DELETE', name: 'a1' }] }],
    ['POST', '/v1/lookup', { names: ['a1'] }],
  ] as const) {
    const none = await dns.call(method, path, body, null);
    t.equal(none.status, 401, `${method} ${path} without a token`);
    t.equal(none.body.code, 'UNAUTHORIZED');
    t.equal(none.headers.get('www-authenticate'), 'Bearer');
    const wrong = await dns.call(method, path, body, `${TOKEN}x`);
    t.equal(wrong.status, 401, `${method} ${path} with a wrong token`);
  }
  t.equal((await dns.call('GET', '/healthz', undefined, null)).status, 200);
  t.equal((await dns.call('GET', '/metrics', undefined, null)).status, 200);
});

t.test('PUT upserts, GET reads every type, DELETE removes one type or the name', async (t) => {
  const put = await dns.call('PUT', '/v1/records/Web1', { type: 'A', values: ['10.0.0.2', '10.0.0.2', '10.0.0.3'] });
  t.equal(put.status, 200);
  t.same(put.body.values, ['10.0.0.2', '10.0.0.3'], 'duplicates collapse: an RRset is a set');
  t.equal(put.body.ttl, 60, 'default TTL');
  t.equal(put.body.name, 'web1.sandbox.test');
  await dns.call('PUT', '/v1/records/web1.sandbox.test.', { type: 'TXT', values: ['hello'], ttl: 10 });
  const got = await dns.call('GET', '/v1/records/web1');
  t.same(got.body, {
    name: 'web1.sandbox.test',
    records: [
      { type: 'A', ttl: 60, values: ['10.0.0.2', '10.0.0.3'] },
      { type: 'TXT', ttl: 10, values: ['hello'] },
    ],
  });
  t.equal((await dns.call('DELETE', '/v1/records/web1?type=TXT')).status, 200);
  t.same((await dns.call('GET', '/v1/records/web1')).body.records.map((r: { type: string }) => r.type), ['A']);
  t.equal((await dns.call('DELETE', '/v1/records/web1?type=TXT')).status, 404, 'already gone');
  t.equal((await dns.call('DELETE', '/v1/records/web1')).status, 200);
  const gone = await dns.call('GET', '/v1/records/web1');
  t.equal(gone.status, 404);
  t.equal(gone.body.code, 'RECORD_NOT_FOUND');
  t.equal((await dns.call('DELETE', '/v1/records/web1')).status, 404);
});

t.test('a batch of deletes with ifExists removes what is there and is no failure for what is not', async (t) => {
  await dns.call('PUT', '/v1/records/half1', { type: 'A', values: ['10.2.0.1'] });
  const before = (await dns.call('GET', '/v1/records')).body.records.length;
  const res = await dns.call('POST', '/v1/changes', {
    changes: [
      { action: 'DELETE', name: 'half1', ifExists: true },
      { action: 'DELETE', name: '*.half1', ifExists: true },
    ],
  });
  t.equal(res.status, 200, JSON.stringify(res.body));
  t.equal((await dns.call('GET', '/v1/records/half1')).status, 404, 'the name that was there is gone');
  t.equal((await dns.call('GET', '/v1/records')).body.records.length, before - 1);
  const again = await dns.call('POST', '/v1/changes', { changes: [{ action: 'DELETE', name: 'half1', ifExists: true }] });
  t.equal(again.status, 200, 'repeating it is no failure');
  t.equal(again.body.serial, res.body.serial, 'a batch that changes nothing leaves the serial as it was');
  const strict = await dns.call('POST', '/v1/changes', { changes: [{ action: 'DELETE', name: 'half1' }] });
  t.equal(strict.status, 404, 'without ifExists a missing name still fails the batch');
});

t.test('lookup says which of many names have records, in one request', async (t) => {
  await dns.call('POST', '/v1/changes', {
    changes: [
      { action: 'UPSERT', name: 'look1', type: 'A', values: ['10.3.0.1'] },
      { action: 'UPSERT', name: '*.look1', type: 'A', values: ['10.3.0.1'] },
    ],
  });
  const res = await dns.call('POST', '/v1/lookup', { names: ['look1', '*.look1', 'look2', 'LOOK1.sandbox.test.'] });
  t.equal(res.status, 200, JSON.stringify(res.body));
  t.same(res.body.present, ['look1', '*.look1', 'LOOK1.sandbox.test.'], 'answered as asked, the missing one left out');
  const outside = await dns.call('POST', '/v1/lookup', { names: ['look1', 'example.com.'] });
  t.equal(outside.status, 400);
  t.match(outside.body, { code: 'NAME_OUTSIDE_ZONE', message: /names\[1\]/ });
  t.equal((await dns.call('POST', '/v1/lookup', { names: [] })).status, 400, 'an empty list');
  t.equal((await dns.call('POST', '/v1/lookup', { names: Array.from({ length: 1001 }, (_, i) => `n${i}`) })).status, 400, 'more than 1,000');
});

t.test('bad input is a 400 that says what is wrong', async (t) => {
  const cases: Array<[string, unknown, string, RegExp]> = [
    ['/v1/records/example.com.', { type: 'A', values: ['10.0.0.1'] }, 'NAME_OUTSIDE_ZONE', /not inside the zone sandbox\.test/],
    ['/v1/records/sandbox.test', { type: 'A', values: ['10.0.0.1'] }, 'RESERVED_NAME', /apex/],
    ['/v1/records/ns1', { type: 'A', values: ['10.0.0.1'] }, 'RESERVED_NAME', /name server/],
    [`/v1/records/${'a'.repeat(64)}`, { type: 'A', values: ['10.0.0.1'] }, 'INVALID_NAME', /64 octets; at most 63/],
    ['/v1/records/bad%20name', { type: 'A', values: ['10.0.0.1'] }, 'INVALID_NAME', /may hold only letters/],
    ['/v1/records/-lead', { type: 'A', values: ['10.0.0.1'] }, 'INVALID_NAME', /not starting or ending with '-'/],
    ['/v1/records/a.*.b', { type: 'A', values: ['10.0.0.1'] }, 'INVALID_NAME', /only as the whole first label/],
    ['/v1/records/a..b', { type: 'A', values: ['10.0.0.1'] }, 'INVALID_NAME', /empty label/],
    ['/v1/records/ok', { type: 'A', values: ['300.1.1.1'] }, 'INVALID_RECORD', /"300\.1\.1\.1" is not an IPv4 address/],
    ['/v1/records/ok', { type: 'AAAA', values: ['10.0.0.1'] }, 'INVALID_RECORD', /not an IPv6 address/],
    ['/v1/records/ok', { type: 'TXT', values: ['x'.repeat(2049)] }, 'VALIDATION_FAILED', /values\/0/],
    ['/v1/records/ok', { type: 'MX', values: ['mail'] }, 'VALIDATION_FAILED', /body\/type/],
    ['/v1/records/ok', { type: 'A', values: [] }, 'VALIDATION_FAILED', /body\/values/],
    ['/v1/records/ok', { type: 'A', values: ['10.0.0.1'], ttl: -1 }, 'VALIDATION_FAILED', /body\/ttl/],
    ['/v1/records/ok', { type: 'A', values: ['10.0.0.1'], extra: 1 }, 'VALIDATION_FAILED', /additional properties/],
  ];
  for (const [path, body, code, message] of cases) {
    const r = await dns.call('PUT', path, body);
    t.equal(r.status, 400, `${path} ${JSON.stringify(body).slice(0, 60)}`);
    t.equal(r.body.code, code);
    t.match(r.body.message, message);
  }
  const notJson = await fetch(`${dns.api}/v1/records/ok`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: '{"type":',
  });
  t.equal(notJson.status, 400, 'unparseable JSON');
  t.equal((await dns.call('GET', '/v1/nothing')).status, 404);
});

t.test('a batch of changes applies atomically', async (t) => {
  const ok = await dns.call('POST', '/v1/changes', {
    changes: [
      { action: 'UPSERT', name: 'sbx1', type: 'A', values: ['10.1.0.1'] },
      { action: 'UPSERT', name: '*.sbx1', type: 'A', values: ['10.1.0.1'] },
      { action: 'UPSERT', name: 'sbx2.sandbox.test', type: 'AAAA', values: ['2001:DB8::2'], ttl: 5 },
    ],
  });
  t.equal(ok.status, 200);
  t.equal(ok.body.applied, 3);
  t.same((await dns.call('GET', '/v1/records/sbx2')).body.records, [{ type: 'AAAA', ttl: 5, values: ['2001:db8::2'] }]);

  const before = await dns.call('GET', '/v1/records/sbx1');
  const failed = await dns.call('POST', '/v1/changes', {
    changes: [
      { action: 'UPSERT', name: 'sbx1', type: 'A', values: ['10.9.9.9'] },
      { action: 'DELETE', name: 'never-existed' },
    ],
  });
  t.equal(failed.status, 404);
  t.equal(failed.body.index, 1);
  t.match(failed.body.message, /changes\[1\].*no change was applied/);
  t.same((await dns.call('GET', '/v1/records/sbx1')).body, before.body, 'the first change was not applied');

  const invalid = await dns.call('POST', '/v1/changes', {
    changes: [
      { action: 'UPSERT', name: 'sbx3', type: 'A', values: ['10.1.0.3'] },
      { action: 'UPSERT', name: 'other.example.', type: 'A', values: ['10.1.0.3'] },
    ],
  });
  t.equal(invalid.status, 400);
  t.equal(invalid.body.code, 'NAME_OUTSIDE_ZONE');
  t.match(invalid.body.message, /^changes\[1\]:/);
  t.equal((await dns.call('GET', '/v1/records/sbx3')).status, 404, 'nothing of the invalid batch landed');
  const noValues = await dns.call('POST', '/v1/changes', { changes: [{ action: 'UPSERT', name: 'x', type: 'A' }] });
  t.equal(noValues.status, 400, 'an UPSERT needs values');

  // Both names of the batch answer over DNS.
  await waitFor('batch in zone', () => dns.server.zone.get('sbx1.sandbox.test'), 2000, 5);
  t.equal((await dig(dns.port, ['3000.sbx1.sandbox.test', 'A', '+short'])).raw.trim(), '10.1.0.1');
});

t.test('listing pages through names in order, filtered by prefix', async (t) => {
  const changes = Array.from({ length: 25 }, (_, i) => ({
    action: 'UPSERT',
    name: `list-${String(i).padStart(2, '0')}`,
    type: 'A',
    values: [`10.2.0.${i}`],
  }));
  changes.push({ action: 'UPSERT', name: 'listz', type: 'A', values: ['10.2.1.1'] });
  t.equal((await dns.call('POST', '/v1/changes', { changes })).status, 200);
  const seen: string[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const q: string = `/v1/records?prefix=list-&limit=10${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const page = await dns.call('GET', q);
    t.equal(page.status, 200);
    seen.push(...page.body.records.map((r: { name: string }) => r.name));
    cursor = page.body.nextCursor;
    pages++;
  } while (cursor && pages < 10);
  t.equal(pages, 3);
  t.same(seen, changes.slice(0, 25).map((c) => `${c.name}.sandbox.test`));
  const all = await dns.call('GET', '/v1/records?limit=1000');
  t.ok(all.body.records.some((r: { name: string }) => r.name === 'listz.sandbox.test'));
  t.equal(all.body.nextCursor, null);
});

t.test('healthz reports Redis; metrics count queries, changes and cache', async (t) => {
  const h = await dns.call('GET', '/healthz');
  t.equal(h.status, 200);
  t.equal(h.body.redis, 'up');
  t.equal(h.body.zone.loaded, true);
  await dig(dns.port, ['nothing-here.sandbox.test', 'A']);
  await dig(dns.port, ['example.org', 'A']);
  const m = await dns.call('GET', '/metrics');
  t.match(m.headers.get('content-type'), /text\/plain/);
  t.match(m.body, /omega_dns_queries_total\{qtype="A",rcode="NXDOMAIN"\} [1-9]/);
  t.match(m.body, /omega_dns_queries_total\{qtype="A",rcode="REFUSED"\} [1-9]/);
  t.match(m.body, /omega_dns_api_changes_total\{action="UPSERT"\} [1-9]/);
  t.match(m.body, /omega_dns_cache_entries \d+/);
  t.match(m.body, /omega_dns_zone_names [1-9]/);
  t.match(m.body, /omega_dns_redis_errors_total 0/);
});
