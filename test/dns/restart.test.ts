// A restart with OMEGA_DNS_SNAPSHOT_FILE: the server answers from the copy it
// kept while it catches up with Redis (through the feed, or by loading the
// zone again when the feed cannot bring it there), never denying a name the
// copy may lack. And the paged load itself: many pages, bad values left out.
import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { dig, startDns, type StartedDns } from '../helpers/dns.js';
import { waitFor } from '../helpers/ports.js';
import { TestRedis } from '../helpers/redis.js';
import { dnsKeys } from '../../src/redis/keys.js';

const redis = await TestRedis.create();
t.teardown(() => redis.destroy());
const dir = mkdtempSync(join(tmpdir(), 'omega-dns-restart-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
/** A server keeping its snapshot in `file`, on the key prefix `prefix` (a fresh one when not given). */
const start = (tt: Parameters<typeof startDns>[0], file: string, prefix?: string) =>
  startDns(tt, redis, { OMEGA_DNS_SNAPSHOT_FILE: file, ...(prefix ? { OMEGA_REDIS_PREFIX: prefix } : {}) });
const newFile = () => join(dir, `zone-${++files}.snap`);

async function short(s: StartedDns, name: string, type = 'A'): Promise<string> {
  return (await dig(s.port, [`${name}.sandbox.test`, type, '+short'])).raw.trim();
}
async function status(s: StartedDns, name: string): Promise<string> {
  return (await dig(s.port, [`${name}.sandbox.test`, 'A'])).status;
}
async function put(s: StartedDns, name: string, type: string, values: string[]): Promise<number> {
  const res = await s.call('PUT', `/v1/records/${name}`, { type, values });
  if (res.status !== 200) throw new Error(`PUT ${name}: ${res.status}`);
  return res.body.serial as number;
}

t.test('a restart while Redis is away answers from the snapshot, and denies nothing until it has caught up', async (t) => {
  const file = newFile();
  const first = await start(t, file);
  await put(first, 'kept', 'A', ['10.50.0.1']);
  await put(first, '*.kept', 'A', ['10.50.0.1']);
  const serial = await put(first, 'kept', 'TXT', ['hello']);
  await waitFor('applied', () => first.server.zone.serial >= serial, 2000, 5);
  await first.server.stop(); // writes the snapshot

  await redis.stop({ keepData: true });
  let down = true;
  t.teardown(async () => {
    if (down) await redis.start(); // for the next test, whatever happens here
  });
  const second = await start(t, file, first.prefix);
  t.equal(await short(second, 'kept'), '10.50.0.1', 'a name from the snapshot, with Redis down');
  t.equal(await short(second, '3000.kept'), '10.50.0.1', 'its wildcard too');
  t.equal(await short(second, 'kept', 'TXT'), '"hello"');
  t.equal(await status(second, 'unknown'), 'SERVFAIL', 'a name the copy lacks may exist by now: SERVFAIL, not NXDOMAIN');
  const h = await second.call('GET', '/healthz');
  t.equal(h.status, 200, 'serving');
  t.equal(h.body.zone.current, false, '/healthz says the zone is not known to be current');
  t.match((await second.call('GET', '/metrics')).body, /omega_dns_zone_current 0\n/, 'so does /metrics');

  await redis.start();
  down = false;
  await waitFor('caught up', async () => (await status(second, 'unknown')) === 'NXDOMAIN', 10_000, 50);
  t.pass('once caught up with Redis, a missing name is NXDOMAIN');
  t.equal((await second.call('GET', '/healthz')).body.zone.current, true);
  t.match((await second.call('GET', '/metrics')).body, /omega_dns_zone_current 1\n/);
  t.equal(await short(second, 'kept'), '10.50.0.1');
});

t.test('a stale snapshot is caught up by the feed: changes made while the server was down are answered', async (t) => {
  const file = newFile();
  const a = await start(t, file);
  const other = await startDns(t, redis, { OMEGA_REDIS_PREFIX: a.prefix });
  await put(a, 'moved', 'A', ['10.51.0.1']);
  await put(a, 'removed', 'A', ['10.51.0.2']);
  const before = await put(a, 'stays', 'A', ['10.51.0.3']);
  await waitFor('applied', () => a.server.zone.serial >= before, 2000, 5);
  await a.server.stop();

  // While it is down: another server takes changes, and a value lands in the hash with no feed entry
  // (only a load from Redis would show it: it tells a catch-up through the feed from a reload).
  await put(other, 'moved', 'A', ['10.51.1.1']);
  t.equal((await other.call('DELETE', '/v1/records/removed')).status, 200);
  const last = await put(other, 'added', 'A', ['10.51.1.4']);
  const direct = redis.client();
  t.teardown(() => direct.disconnect());
  await direct.hset(dnsKeys(a.prefix).zone, 'unfed', JSON.stringify({ A: { ttl: 60, values: ['10.51.9.9'] } }));

  const b = await start(t, file, a.prefix);
  await waitFor('caught up', () => b.server.zone.serial >= last && b.server.zone.current, 5000, 5);
  t.equal(await short(b, 'moved'), '10.51.1.1', 'a changed name');
  t.equal(await status(b, 'removed'), 'NXDOMAIN', 'a deleted name');
  t.equal(await short(b, 'added'), '10.51.1.4', 'a new name');
  t.equal(await short(b, 'stays'), '10.51.0.3', 'an unchanged name');
  t.equal(await status(b, 'unfed'), 'NXDOMAIN', 'caught up through the feed, not by loading the zone again');
});

t.test('a snapshot the feed cannot catch up (feed trimmed, Redis emptied) is replaced by a load, serving meanwhile', async (t) => {
  const file = newFile();
  const a = await start(t, file);
  const serial = await put(a, 'old', 'A', ['10.52.0.1']);
  await waitFor('applied', () => a.server.zone.serial >= serial, 2000, 5);
  await a.server.stop();
  const keys = dnsKeys(a.prefix);
  const direct = redis.client();
  t.teardown(() => direct.disconnect());

  // Trimmed: changes past the snapshot's position are gone from the feed.
  const other = await startDns(t, redis, { OMEGA_REDIS_PREFIX: a.prefix });
  await put(other, 'new', 'A', ['10.52.0.2']);
  const last = await put(other, 'newer', 'A', ['10.52.0.3']);
  await direct.xtrim(keys.changes, 'MAXLEN', 1);
  const b = await start(t, file, a.prefix);
  await waitFor('loaded', () => b.server.zone.serial >= last && b.server.zone.current, 5000, 5);
  t.equal(await short(b, 'new'), '10.52.0.2', 'a change only a load could bring');
  t.equal(await short(b, 'old'), '10.52.0.1');
  await b.server.stop();

  // Emptied: Redis holds another zone now, with a lower serial.
  await direct.del(keys.zone, keys.names, keys.serial, keys.changes);
  const c = await start(t, file, a.prefix);
  await waitFor('reloaded', async () => (await status(c, 'old')) === 'NXDOMAIN', 5000, 20);
  t.pass('a name only the snapshot had is gone once the zone is loaded from Redis');
});

t.test('a crash restarts from the last periodic snapshot and catches up through the feed', async (t) => {
  const file = newFile();
  const a = await startDns(t, redis, { OMEGA_DNS_SNAPSHOT_FILE: file, OMEGA_DNS_SNAPSHOT_INTERVAL_MS: '1000' });
  await put(a, 'early', 'A', ['10.55.0.1']);
  await waitFor('a periodic snapshot', () => existsSync(file), 5000, 50);
  // What a crash leaves: the periodic file, not the one a stop writes.
  const crashed = join(dir, 'crashed.snap');
  copyFileSync(file, crashed);
  const last = await put(a, 'late', 'A', ['10.55.0.2']);
  const b = await start(t, crashed, a.prefix);
  await waitFor('caught up', () => b.server.zone.serial >= last && b.server.zone.current, 5000, 5);
  t.equal(await short(b, 'early'), '10.55.0.1');
  t.equal(await short(b, 'late'), '10.55.0.2', 'written after the snapshot, brought by the feed');
});

t.test('a damaged snapshot file is left aside: the zone loads from Redis and the file is rewritten', async (t) => {
  const file = newFile();
  writeFileSync(file, 'OMEGA-DNS-ZONE 1\ngarbage');
  const a = await start(t, file);
  await put(a, 'fine', 'A', ['10.53.0.1']);
  t.equal(await waitFor('answer', () => short(a, 'fine'), 2000), '10.53.0.1');
  await a.server.stop();
  const b = await start(t, file, a.prefix);
  t.equal(await short(b, 'fine'), '10.53.0.1', 'the rewritten file serves');
});

t.test('the load pages through a zone of many names and leaves out values that are no record sets', async (t) => {
  const prefix = `t${Date.now().toString(36)}`;
  const keys = dnsKeys(prefix);
  const direct = redis.client();
  t.teardown(() => direct.disconnect());
  const names = 9000; // several HSCAN pages
  const pipe = direct.pipeline();
  for (let i = 0; i < names; i++) pipe.hset(keys.zone, `n${i}`, JSON.stringify({ A: { ttl: 60, values: [`10.54.${i >> 8}.${i & 255}`] } }));
  pipe.hset(keys.zone, 'bad-json', '{not json');
  pipe.hset(keys.zone, 'bad-shape', JSON.stringify({ A: { ttl: 'sixty', values: '10.0.0.1' } }));
  pipe.hset(keys.zone, 'no-types', JSON.stringify({}));
  await pipe.exec();
  const s = await startDns(t, redis, { OMEGA_REDIS_PREFIX: prefix });
  t.equal(s.server.zone.size, names, 'every good name, none of the bad ones');
  for (const i of [0, 4321, names - 1]) t.equal(await short(s, `n${i}`), `10.54.${i >> 8}.${i & 255}`);
  t.equal(await status(s, 'bad-shape'), 'NXDOMAIN');
  t.equal(s.server.zone.recordSets, names, 'one set per distinct value');
});
