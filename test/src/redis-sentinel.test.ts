// Omega on a real Redis Sentinel setup (a primary, two replicas, three
// sentinels): the connection helpers, then the primary killed under a DNS
// server, a master and a manager (real, with Docker). Through the failover
// the DNS server answers from its zone in memory and the APIs answer 503 at
// once; after the promotion every program is back on the new primary.
import t from 'tap';
import { masterSettings } from '../../master/config.js';
import { closeRedis, createRedis, isRedisUnavailable, waitReplicas, whenReady } from '../../src/redis/connection.js';
import { hostKeys } from '../../src/redis/keys.js';
import { Packet, buildQuery, dig, startDns, udpExchange } from '../helpers/dns.js';
import { removeHostContainers, requireDocker } from '../helpers/docker.js';
import { apiCaller, type CallResult } from '../helpers/http.js';
import { startManager } from '../helpers/manager.js';
import { API_TOKEN, startMaster } from '../helpers/master.js';
import { freePort, sleep, waitFor } from '../helpers/ports.js';
import { TestSentinel } from '../helpers/redis-ha.js';

// Two replicas: after the failover one is left, so a master that WAITs for
// one replica before answering a create can answer again.
const sentinel = await TestSentinel.create({ replicas: 2 });
t.teardown(() => sentinel.destroy());

t.test('waitReplicas, and which errors mean "Redis is unavailable"', async (t) => {
  const c = createRedis(sentinel.url, { failFast: true });
  t.teardown(() => closeRedis(c));
  await whenReady(c, 5000);
  t.equal(c.status, 'ready', 'connected to the primary through the sentinels');
  await c.set('tsent:w', 'written');
  t.equal(await waitReplicas(c, 2, 5000), 2, 'both replicas have the write');
  const replica = createRedis(`redis://127.0.0.1:${sentinel.replicaPort}`);
  t.teardown(() => closeRedis(replica));
  t.equal(await replica.get('tsent:w'), 'written', 'and it reads there');
  t.equal(await waitReplicas(c, 3, 100), 2, 'asked for more replicas than there are: the count after the timeout');

  // n = 0 sends nothing: it resolves even on a client that cannot send.
  const nowhere = createRedis(`redis://127.0.0.1:${await freePort()}`, { failFast: true });
  // Nothing listens there: its refused connects are the point, not a failure to report.
  nowhere.on('error', () => {});
  t.teardown(() => closeRedis(nowhere));
  t.equal(await waitReplicas(nowhere, 0, 1000), 0, 'n = 0: a no-op');
  const offline = await nowhere.ping().catch((err: unknown) => err);
  t.ok(isRedisUnavailable(offline), `no connection is unavailable (${(offline as Error).message})`);
  const readonly = await replica.set('tsent:x', '1').catch((err: unknown) => err);
  t.match((readonly as Error).message, /^READONLY/);
  t.ok(isRedisUnavailable(readonly), 'a write on a replica is unavailable (a failover under way)');
  await c.hset('tsent:h', 'f', 'v');
  const wrongType = await c.incr('tsent:h').catch((err: unknown) => err);
  t.notOk(isRedisUnavailable(wrongType), 'a wrong command is not (it is a bug)');
  t.ok(isRedisUnavailable(new Error('wrapped', { cause: offline })), 'found in the cause chain');
  const refused = await fetch(`http://127.0.0.1:${await freePort()}/`).catch((err: unknown) => err);
  t.notOk(isRedisUnavailable(refused), 'a refused HTTP connection is not Redis');
});

/** The A record `name` has at the DNS server on `port`, over UDP; null when there is no answer. */
async function resolveA(port: number, name: string): Promise<string | null> {
  const reply = await udpExchange(port, buildQuery(name, 'A'), 1000);
  if (!reply) return null;
  const p = Packet.parse(reply) as unknown as { answers: Array<{ address?: string }> };
  return p.answers[0]?.address ?? null;
}

if (requireDocker(t, ['omega/sandbox-python:latest'])) {
  // The master's OMEGA_REDIS_WAIT_REPLICAS (WAIT 1 in the pipeline that finishes
  // a create) is being added by another change; until the master has it, the
  // check that no answered create is lost is a todo (it may fail without it).
  const masterWaits = Object.values(masterSettings).some((s) => s.env === 'OMEGA_REDIS_WAIT_REPLICAS');

  t.test('the primary is killed: DNS answers throughout, the APIs say 503, then everything works on the promoted replica', async (t) => {
    const dns = await startDns(t, sentinel);
    const m = await startManager(t, sentinel, { OMEGA_REDIS_PREFIX: dns.prefix, OMEGA_POOL_SIZE: 'python=2,node=0', OMEGA_HEARTBEAT_INTERVAL_MS: '500' });
    t.teardown(() => removeHostContainers(m.hostId));
    const { server, call } = await startMaster(t, sentinel, dns, { OMEGA_REDIS_WAIT_REPLICAS: '1' });
    const k = hostKeys(dns.prefix);
    const create = () => call('POST', '/v1/sandboxes', { template: 'python' });

    const answered: Array<{ id: string; hostname: string }> = [];
    for (let i = 0; i < 2; i++) {
      const res = await create();
      t.equal(res.status, 201, JSON.stringify(res.body));
      answered.push(res.body);
    }
    // The last create before the kill runs while the replicas lag: its writes
    // are on the primary alone. The primary is killed once the create's last
    // write is there: a master that answered 201 without waiting for a
    // replica has answered for a sandbox the promoted replica never hears of;
    // one that WAITs has not answered yet (and the kill fails that create).
    await waitFor('a warm container', () => (m.server.pool.stats().python?.ready ?? 0) >= 1, 30_000, 50);
    // Clients of every kind the programs make, to see that each comes back (none ends for good).
    const clients = Array.from({ length: 20 }, (_, i) => createRedis(sentinel.url, { failFast: i % 2 === 0 }));
    // Their errors during the failover are expected; what is checked is that each answers afterwards.
    for (const c of clients) c.on('error', () => {});
    t.teardown(() => Promise.all(clients.map((c) => closeRedis(c))));
    await Promise.all(clients.map((c) => whenReady(c, 5000)));

    const onPrimary = sentinel.primaryClient();
    t.teardown(() => onPrimary.disconnect());
    // The same at the connection: a write waitReplicas saw on the replicas, and one made while they lag.
    const writer = createRedis(sentinel.url);
    t.teardown(() => closeRedis(writer));
    await writer.set('tsent:waited', '1');
    t.equal(await waitReplicas(writer, 2, 5000), 2, 'a write on both replicas before the stall');
    const resumeReplicas = await sentinel.stallReplicas();
    t.teardown(resumeReplicas);
    await writer.set('tsent:unwaited', '1');
    t.equal(await waitReplicas(writer, 1, 100), 0, 'a write made while the replicas lag is on none (WAIT timed out)');
    const lastCreate = create();
    await waitFor(
      'the last create\'s writes on the primary',
      async () => {
        const ids = (await onPrimary.zrange(k.sandboxes, '0', '-1')).filter((id) => !answered.some((s) => s.id === id));
        for (const id of ids) {
          if ((await onPrimary.hget(k.sandbox(id), 'state')) === 'running' && (await onPrimary.zscore(k.expiry, id)) !== null) return true;
        }
        return false;
      },
      10_000,
      10,
    );

    const killedAt = performance.now();
    await sentinel.killPrimary();
    resumeReplicas();
    onPrimary.disconnect();
    const last = await lastCreate;
    t.comment(`the create answered while the replicas lagged: ${last.status}${last.status === 201 ? '' : ` ${last.body.code}`}`);
    if (last.status === 201) answered.push(last.body);

    // While Redis fails over: queries answer from memory, API calls answer at once.
    let failing = true;
    const dnsFailures: string[] = [];
    let dnsQueries = 0;
    const statuses = new Map<string, number>();
    let slowestMs = 0;
    const probe = async (what: string, fn: () => Promise<CallResult>) => {
      const t0 = performance.now();
      const r = await fn();
      slowestMs = Math.max(slowestMs, performance.now() - t0);
      const key = `${what} ${r.status}${r.status >= 400 ? ` ${r.body.code}` : ''}`;
      statuses.set(key, (statuses.get(key) ?? 0) + 1);
    };
    const during = Promise.all([
      (async () => {
        while (failing) {
          dnsQueries++;
          const a = await resolveA(dns.port, answered[0]!.hostname);
          if (a !== '127.0.0.1') dnsFailures.push(String(a));
          await sleep(20);
        }
      })(),
      (async () => {
        // A generous deadline per call: what is measured is that none waits for the failover.
        const master = apiCaller(server.apiUrl, API_TOKEN);
        while (failing) {
          await probe('master GET', () => master('GET', `/v1/sandboxes/${answered[0]!.id}`));
          await probe('dns PUT', () => dns.call('PUT', '/v1/records/probe', { type: 'A', values: ['10.50.0.1'] }));
          await sleep(50);
        }
      })(),
    ]);

    await sentinel.waitForPromotion();
    const promotedAt = performance.now();
    // Creates work again: the master, the manager and the DNS server on the new primary.
    let lastRefusal: CallResult | null = null;
    const again = (await waitFor(
      'a create after the promotion',
      async () => {
        const r = await create();
        if (r.status === 201) return r;
        lastRefusal = r;
        return null;
      },
      10_000,
      50,
    ).catch((err: Error) => {
      throw new Error(`${err.message}; the last answer: ${JSON.stringify(lastRefusal?.body)}`);
    }))!;
    const createdAt = performance.now();
    failing = false;
    await during;
    t.comment(
      `failover: kill -> promotion ${((promotedAt - killedAt) / 1000).toFixed(2)} s; promotion -> first create 201 ${((createdAt - promotedAt) / 1000).toFixed(2)} s` +
        ` (kill -> create ${((createdAt - killedAt) / 1000).toFixed(2)} s); slowest API call meanwhile ${slowestMs.toFixed(0)} ms`,
    );
    t.comment(`answers meanwhile: ${[...statuses].map(([s, n]) => `${s} x${n}`).join(', ')}; ${dnsQueries} DNS queries`);
    answered.push(again.body);

    t.same(dnsFailures, [], `every one of ${dnsQueries} DNS queries answered from memory during the failover`);
    t.ok([...statuses.keys()].some((s) => s === 'master GET 503 REDIS_UNAVAILABLE'), 'the master answered 503 REDIS_UNAVAILABLE while Redis was away');
    t.ok([...statuses.keys()].some((s) => s === 'dns PUT 503 REDIS_UNAVAILABLE'), 'so did the DNS API');
    t.same(
      [...statuses.keys()].filter((s) => !/ (200|503 REDIS_UNAVAILABLE)$/.test(s)),
      [],
      'nothing but 200 and 503 REDIS_UNAVAILABLE (no 500, no hang)',
    );

    t.equal(await writer.get('tsent:waited'), '1', 'the write WAIT counted on the replicas survives the failover');
    t.equal(await writer.get('tsent:unwaited'), null, 'the one WAIT did not see there is lost with the primary');
    await waitFor('every client back', async () => (await Promise.all(clients.map((c) => c.ping().catch(() => null)))).every((p) => p === 'PONG'), 10_000, 50);
    t.same(clients.map((c) => c.status).filter((st) => st !== 'ready'), [], `all ${clients.length} clients reconnected to the new primary`);

    // The DNS server follows the feed on the new primary.
    t.equal(await waitFor('new name', () => resolveA(dns.port, again.body.hostname), 5000, 50), '127.0.0.1', 'the name of a sandbox created after the promotion resolves');
    t.equal((await dns.call('PUT', '/v1/records/after', { type: 'A', values: ['10.50.0.2'] })).status, 200);
    t.equal(await waitFor('after', () => resolveA(dns.port, 'after.sandbox.test'), 5000, 50), '10.50.0.2');
    t.same(
      (await call('GET', '/v1/hosts')).body.hosts.map((h: any) => [h.id, h.health]),
      [[m.hostId, 'alive']],
      'the manager heart-beats on the new primary',
    );

    // No sandbox whose create was answered 201 is forgotten. NOTE: only a
    // master that WAITs for a replica before answering passes this for the
    // create answered while the replicas lagged. Until the master has
    // OMEGA_REDIS_WAIT_REPLICAS these checks are todo (they fail without it).
    const todo = masterWaits ? {} : { todo: 'needs OMEGA_REDIS_WAIT_REPLICAS in the master (WAIT 1 before a create answers)' };
    for (const s of answered) {
      const got = await call('GET', `/v1/sandboxes/${s.id}`);
      t.equal(got.status, 200, `answered 201, still known after the failover: ${s.id}`, todo);
      t.equal(got.body.state, 'running', `${s.id} running`, todo);
      t.equal((await dig(dns.port, [s.hostname, 'A', '+short'])).raw.trim(), '127.0.0.1', `${s.hostname} resolves`, todo);
    }

    for (const s of answered) await call('DELETE', `/v1/sandboxes/${s.id}`);
    const direct = sentinel.primaryClient();
    t.teardown(() => direct.disconnect());
    t.equal(await direct.zscore(k.load, m.hostId), '0', 'deleted: the host\'s count is back to 0 on the new primary');
  });
}
