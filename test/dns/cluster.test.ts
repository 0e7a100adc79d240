// The DNS server on a real Redis Cluster (three nodes, no replicas): it loads
// its zone and follows the change feed on whichever node serves the {dns}
// slot, and every server on the cluster sees every change.
import { UDPClient } from 'dns2';
import t from 'tap';
import { dig, startDns } from '../helpers/dns.js';
import { waitFor } from '../helpers/ports.js';
import { dnsKeys } from '../../src/redis/keys.js';
import { TestCluster } from '../helpers/redis-ha.js';

const cluster = await TestCluster.create();
t.teardown(() => cluster.destroy());

t.test('DNS servers on the cluster: the zone loads, the feed is followed, a second server sees every change', async (t) => {
  const a = await startDns(t, cluster);
  const b = await startDns(t, cluster, { OMEGA_REDIS_PREFIX: a.prefix });
  t.equal((await a.call('PUT', '/v1/records/one', { type: 'A', values: ['10.40.0.1'] })).status, 200);
  t.equal(
    (await a.call('POST', '/v1/changes', { changes: [{ action: 'UPSERT', name: '*.one', type: 'A', values: ['10.40.0.1'] }, { action: 'UPSERT', name: 'two', type: 'TXT', values: ['hi'] }] })).status,
    200,
  );
  for (const s of [a, b]) {
    t.equal(await waitFor('one', async () => (await dig(s.port, ['one.sandbox.test', 'A', '+short'])).raw.trim(), 3000), '10.40.0.1', `dig at ${s.port}`);
    t.equal(await waitFor('wildcard', async () => (await dig(s.port, ['3000.one.sandbox.test', 'A', '+short'])).raw.trim(), 3000), '10.40.0.1');
    t.equal(await waitFor('two', async () => (await dig(s.port, ['two.sandbox.test', 'TXT', '+short'])).raw.trim(), 3000), '"hi"');
  }
  // The dns2 client, over UDP, at the second server.
  const answer = await UDPClient({ dns: '127.0.0.1', port: b.port })('one.sandbox.test', 'A');
  t.same(answer.answers.map((r) => r.address), ['10.40.0.1'], 'dns2 gets the A record from the second server');

  t.equal((await b.call('POST', '/v1/changes', { changes: [{ action: 'DELETE', name: 'one' }, { action: 'DELETE', name: '*.one' }] })).status, 200);
  for (const s of [a, b]) {
    t.equal(await waitFor('gone', async () => ((await dig(s.port, ['one.sandbox.test', 'A'])).status === 'NXDOMAIN' ? 'NXDOMAIN' : ''), 3000), 'NXDOMAIN');
  }
  // A server started later loads what is there, at the same serial.
  const late = await startDns(t, cluster, { OMEGA_REDIS_PREFIX: a.prefix });
  t.equal((await dig(late.port, ['two.sandbox.test', 'TXT', '+short'])).raw.trim(), '"hi"');
  await waitFor('same serial', () => a.server.zone.serial === late.server.zone.serial && b.server.zone.serial === late.server.zone.serial, 3000);
  t.equal(late.server.zone.serial, a.server.zone.serial, 'one serial on every server');
  const listed = await late.call('GET', '/v1/records?limit=10');
  t.same(listed.body.records.map((r: any) => r.name), ['two.sandbox.test'], 'the listing reads the cluster');
});

t.test('the node serving the zone goes away: answers from memory, the API says 503; back: the feed resumes', async (t) => {
  const a = await startDns(t, cluster);
  const b = await startDns(t, cluster, { OMEGA_REDIS_PREFIX: a.prefix });
  t.equal((await a.call('PUT', '/v1/records/kept', { type: 'A', values: ['10.41.0.1'] })).status, 200);
  await waitFor('b has it', () => b.server.zone.size === 1, 3000);
  const node = await cluster.nodeOf(dnsKeys(a.prefix).zone);
  await cluster.restartNode(node, async () => {
    await waitFor('redis seen down', async () => (await a.call('PUT', '/v1/records/new', { type: 'A', values: ['10.41.0.2'] })).status === 503, 5000, 50);
    for (const s of [a, b]) t.equal((await dig(s.port, ['kept.sandbox.test', 'A', '+short'])).raw.trim(), '10.41.0.1', `${s.port} answers from memory`);
  });
  // Back with its data: writes go through again and both servers follow them.
  await waitFor('api back', async () => (await b.call('PUT', '/v1/records/new', { type: 'A', values: ['10.41.0.2'] })).status === 200, 10_000, 50);
  for (const s of [a, b]) {
    t.equal(await waitFor('new', async () => (await dig(s.port, ['new.sandbox.test', 'A', '+short'])).raw.trim(), 10_000, 50), '10.41.0.2', `${s.port} follows the feed again`);
    t.equal((await dig(s.port, ['kept.sandbox.test', 'A', '+short'])).raw.trim(), '10.41.0.1');
  }
});
