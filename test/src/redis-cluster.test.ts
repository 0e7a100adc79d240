// Omega's state on a real Redis Cluster (three nodes, no replicas): every
// multi-key script keeps its keys in one slot, and the scripts and the
// master's store run through createRedis('redis+cluster://...').
// test/dns/cluster.test.ts and test/master/cluster.test.ts run the programs there.
import { readdirSync, readFileSync } from 'node:fs';
import t from 'tap';
import { Store } from '../../master/store.js';
import { closeRedis, createRedis, waitReplicas } from '../../src/redis/connection.js';
import { dnsKeys, hostKeyPrefix, hostKeys, tlsKeys } from '../../src/redis/keys.js';
import { AllocateFailure } from '../../src/redis/scripts.js';
import { TestCluster } from '../helpers/redis-ha.js';

const cluster = await TestCluster.create();
t.teardown(() => cluster.destroy());

const LUA_DIR = new URL('../../src/redis/lua/', import.meta.url);

/** The key a script header's `KEYS[n] <name>` stands for, as keys.ts names it. */
function keyNamed(prefix: string, name: string): string | undefined {
  const d = dnsKeys(prefix);
  const h = hostKeys(prefix);
  const tls = tlsKeys(prefix);
  const byName: Record<string, string> = {
    zone: d.zone,
    names: d.names,
    serial: d.serial,
    changes: d.changes,
    load: h.load,
    sandboxes: h.sandboxes,
    counts: h.counts,
    expiry: h.expiry,
    frozen: h.frozen,
    snapshotDue: h.snapshotDue,
    // takeDue takes from any schedule (expiry today).
    due: h.expiry,
    beats: h.beats,
    stopped: h.stopped,
    workspaces: h.workspaces,
    workspace: h.workspace('w1'),
    workspacesOn: h.workspacesOn('h1'),
    snapshot: h.snapshot('n1'),
    snapshots: h.snapshots,
    snapshotsWriting: h.snapshotsWriting,
    scaleOut: h.scaleOut,
    hosts: h.hosts,
    hostEvents: h.hostEvents,
    containers: h.containers('h1'),
    hostStatus: h.hostStatus('h1'),
    master: h.master('m1'),
    host: h.host('h1'),
    alive: h.alive('h1'),
    sandboxesOn: h.sandboxesOn('h1'),
    sandbox: h.sandbox('s1'),
    tomb: h.tomb('s1'),
    // releaseLock takes any lock (the scale-out lock is another); both scripts here are the certificate's.
    lock: tls.lock,
    certificate: tls.certificate,
  };
  return byName[name];
}

t.test('every script\'s keys, declared or reached through the {hosts} prefix, hash to one slot', async (t) => {
  const files = readdirSync(LUA_DIR).filter((f) => f.endsWith('.lua'));
  t.ok(files.length >= 8, `${files.length} scripts`);
  for (const file of files) {
    const [, name, n] = /^(\w+)-(\d+)\.lua$/.exec(file) ?? [];
    t.ok(name, `${file} is named <name>-<numberOfKeys>.lua`);
    const lua = readFileSync(new URL(file, LUA_DIR), 'utf8');
    const declared = [...lua.matchAll(/^\s*KEYS\[(\d+)\]\s+(\w+)/gm)].map((m) => m[2]!);
    t.equal(declared.length, Number(n), `${file}: its header names each of its ${n} KEYS`);
    const keys = declared.map((d) => keyNamed('omega', d));
    t.notOk(keys.includes(undefined), `${file}: every KEYS name is a key of keys.ts (${declared.join(', ')})`);
    // A script that builds key names from ARGV[1] (the {hosts} prefix) reaches these too.
    if (/ARGV\[1\]\s+key prefix/.test(lua)) {
      const h = hostKeys('omega');
      keys.push(h.sandbox('s1'), h.counts, h.tomb('s1'), h.alive('h1'), h.host('h1'), h.sandboxesOn('h1'), h.hostStatus('h1'), h.containers('h1'));
      t.equal(h.sandbox('s1').slice(0, hostKeyPrefix('omega').length), hostKeyPrefix('omega'));
    }
    const slots = new Set(await Promise.all((keys as string[]).map((k) => cluster.keyslot(k))));
    t.equal(slots.size, 1, `${file}: all its keys in one slot`);
  }
});

t.test('createRedis(redis+cluster://) runs every script, MULTI and pipelines, through the master\'s store', async (t) => {
  const c = createRedis(cluster.url);
  t.teardown(() => closeRedis(c));
  const prefix = 'tcscripts';
  const k = hostKeys(prefix);
  const store = new Store(c, prefix, 60, 'm1');
  const beat = (h: string, addr: string) => c.heartbeat(k.alive(h), k.host(h), k.hosts, k.beats, 60_000, h, addr, `http://${addr}:7070`, 2, new Date().toISOString());
  t.equal(await beat('h1', '127.0.0.9'), 1, 'heartbeat');
  t.equal(await beat('h2', '127.0.0.8'), 1);
  t.same((await store.admitHosts()).sort(), ['h1', 'h2'], 'admitHosts');
  const fields = { template: 'python', expiresAtMs: Date.now() + 60_000 };
  const placed = await Promise.all(['a', 'b', 'c', 'd'].map((id) => store.allocate(`s${id}`, fields)));
  t.same(placed.map((p) => p?.hostId).sort(), ['h1', 'h1', 'h2', 'h2'], 'allocateSandbox spreads over the hosts');
  t.equal(await c.allocateSandbox(k.load, k.sandboxes, hostKeyPrefix(prefix), 'se', Date.now(), '', 'm1', '', ''), AllocateFailure.NoRoom, 'full');
  t.match((await store.finishCreate('sa', { expiresAtMs: Date.now() - 1, hostPort: 4000, ingressPort: null, containerId: 'c' })).record, { state: 'running', hostPort: 4000 }, 'finishCreate');
  t.same(await store.expired(Date.now()), ['sa'], 'its expiry on the {hosts} slot');
  t.same((await store.getMany(['sa', 'sb'])).map((r) => r?.state), ['running', 'creating'], 'a pipeline on one slot');
  t.equal(await store.setExpiry('sa', Date.now() - 1), true, 'extendSandbox');
  t.match(await store.beginDelete('sa'), { state: 'deleting' }, 'beginDelete');
  t.equal(await store.release('sa'), true, 'releaseSandbox');
  await c.reportContainer(k.containers('h1'), k.hostEvents, 'sb', JSON.stringify({ state: 'exited' }), 'h1', 'exited', 'test', 100);
  t.equal(await c.xlen(k.hostEvents), 1, 'reportContainer');
  t.same((await store.hosts()).map((h) => [h.hostId, h.load, h.alive]).sort(), [
    ['h1', 1, true],
    ['h2', 2, true],
  ]);
  await c.del(k.alive('h2'));
  const onH2 = placed.flatMap((p, i) => (p?.hostId === 'h2' ? [`s${'abcd'[i]}`] : []));
  t.same((await store.markHostLost('h2')).sort(), onH2.sort(), 'markHostLost: the lapsed host\'s sandboxes');
  const byState: Record<string, number> = {};
  for (const r of await store.getMany(await store.allIds())) if (r) byState[r.state] = (byState[r.state] ?? 0) + 1;
  t.match(await store.stateCounts(), byState, 'the counts by state, kept by the scripts');
  t.equal(await store.countUncounted(), true, 'countSandboxes and its lock');
  t.equal(await store.drain('h2'), true, 'drainHost: the lost host is empty');
  await store.undrain('h2');
  t.equal(await store.forgetHost('h2'), true, 'forgetHost');
  const d = dnsKeys(prefix);
  const res = await c.applyDnsChanges(d.zone, d.names, d.serial, d.changes, JSON.stringify([{ action: 'UPSERT', name: 'x', type: 'A', ttl: 60, values: ['10.0.0.1'] }]), 100, 1_700_000_000);
  t.same(res, [1_700_000_000], 'applyDnsChanges');
});

t.test('waitReplicas sends WAIT to the node serving the key', async (t) => {
  const c = createRedis(cluster.url);
  t.teardown(() => closeRedis(c));
  const key = hostKeys('tcwait').load;
  await c.zadd(key, 0, 'h1');
  const owner = await cluster.nodeOf(key);
  const waits = async () =>
    Object.fromEntries(await Promise.all(cluster.ports.map(async (p) => [p, Number(/^cmdstat_wait:calls=(\d+)/m.exec(await cluster.info(p, 'commandstats'))?.[1] ?? 0)])));
  const before = await waits();
  t.equal(await waitReplicas(c, 1, 50, key), 0, 'this cluster has no replicas: none after the timeout');
  const after = await waits();
  t.same(
    cluster.ports.map((p) => after[p] - before[p]),
    cluster.ports.map((p) => (p === owner ? 1 : 0)),
    'WAIT went to the owner of the key, and only there',
  );
  t.equal(await waitReplicas(c, 0, 50, key), 0, 'n = 0: nothing sent');
  await t.rejects(waitReplicas(c, 1, 50), /needs the key/, 'a Cluster needs the key');
});
