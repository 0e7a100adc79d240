// One owner per record, checked on the wire: every write Redis executes
// during a sandbox's life (create, a container killed, lost, deleted, purged)
// is attributed to the program whose connection sent it (scripts' own calls
// included: MONITOR lists them right after the EVALSHA), and each program may
// write only the keys src/redis/keys.ts gives it.
import { execFileSync } from 'node:child_process';
import { Redis } from 'ioredis';
import t from 'tap';
import { createRedis } from '../../src/redis/connection.js';
import { hostKeys } from '../../src/redis/keys.js';
import { startDns } from '../helpers/dns.js';
import { requireDocker } from '../helpers/docker.js';
import { startManager } from '../helpers/manager.js';
import { startMaster } from '../helpers/master.js';
import { waitFor } from '../helpers/ports.js';
import { clientNames, TestRedis } from '../helpers/redis.js';

/** Commands that change a key (reader state of a consumer group, XREADGROUP/XACK/XAUTOCLAIM, is the reader's own). */
const WRITES = new Set(['SET', 'DEL', 'UNLINK', 'HSET', 'HDEL', 'HSETNX', 'HINCRBY', 'SADD', 'SREM', 'ZADD', 'ZREM', 'ZINCRBY', 'XADD', 'XDEL', 'XTRIM', 'INCR', 'EXPIRE', 'PEXPIRE', 'RENAME']);

/** Which program owns a key of the {hosts} group, by its name (the order matters: the longest suffixes first). */
function ownerOf(key: string): 'manager' | 'master' | 'dns' | 'unknown' {
  if (key.includes(':{dns}:')) return 'dns';
  const rest = key.split(':{hosts}:')[1];
  if (rest === undefined) return 'unknown';
  if (/^host:[^:]+:(status|sandboxes|workspaces)$/.test(rest)) return 'master';
  if (/^host:[^:]+:containers$/.test(rest) || /^host:[^:]+$/.test(rest) || /^(alive|warm):/.test(rest) || rest === 'hosts' || rest === 'beats' || rest === 'host-events') return 'manager';
  if (/^(load|lost-hosts|sandboxes|counts|counts-lock|expiry|frozen|stopped|snapshot-due|snapshots|workspaces|scaleout)$/.test(rest) || /^(sandbox|snapshot|workspace|tomb|master|sweep):/.test(rest)) return 'master';
  return 'unknown';
}

/** The keys a write command names (its first argument, or every one for a multi-key DEL). */
function keysOf(args: string[]): string[] {
  const cmd = args[0]!.toUpperCase();
  return cmd === 'DEL' || cmd === 'UNLINK' ? args.slice(1) : [args[1]!];
}

t.test('the classification names every key keys.ts builds', async (t) => {
  const k = hostKeys('p');
  const want: Array<[string, string]> = [
    [k.hosts, 'manager'],
    [k.host('h'), 'manager'],
    [k.alive('h'), 'manager'],
    [k.warm('node'), 'manager'],
    [k.containers('h'), 'manager'],
    [k.hostEvents, 'manager'],
    [k.hostStatus('h'), 'master'],
    [k.load, 'master'],
    [k.sandboxesOn('h'), 'master'],
    [k.sandbox('s'), 'master'],
    [k.sandboxes, 'master'],
    [k.counts, 'master'],
    [k.countsLock, 'master'],
    [k.expiry, 'master'],
    [k.frozen, 'master'],
    [k.snapshotDue, 'master'],
    [k.stopped, 'master'],
    [k.workspacesOn('h'), 'master'],
    [k.workspace('w'), 'master'],
    [k.workspaces, 'master'],
    [k.snapshots, 'master'],
    [k.snapshot('s'), 'master'],
    [k.tomb('s'), 'master'],
    [k.scaleOut, 'master'],
    [k.master('m'), 'master'],
    [k.sweep('names'), 'master'],
    [k.beats, 'manager'],
    [k.lostHosts, 'master'],
    [k.sweepLease('names'), 'master'],
  ];
  t.same(
    want.map(([key]) => [key, ownerOf(key)]),
    want,
  );
});

if (requireDocker(t, ['omega/sandbox-python:latest'])) {
  const redis = await TestRedis.create();
  t.teardown(() => redis.destroy());

  t.test('a sandbox\'s whole life: each program writes only its own keys', async (t) => {
    const dns = await startDns(t, redis);
    const m = await startManager(t, redis, { OMEGA_REDIS_PREFIX: dns.prefix, OMEGA_POOL_SIZE: 'python=1,node=0', OMEGA_RECONCILE_INTERVAL_MS: '600000' });
    const { server, call } = await startMaster(t, redis, dns, { OMEGA_RECONCILE_INTERVAL_MS: '600000', OMEGA_LOST_RETENTION_SECONDS: '1' });
    await waitFor('pool', async () => m.server.pool.stats().python!.ready === 1, 60_000, 50);

    // monitor() opens a connection of its own beside the one it is called on.
    const base = new Redis(redis.port, '127.0.0.1');
    t.teardown(() => base.disconnect());
    // ioredis can fail to enter MONITOR when a monitored line arrives in the
    // same read as MONITOR's OK ("Command queue state error"): try again.
    // Made here rather than by base.monitor(), so that a failed attempt's connection is closed too.
    let monitor!: Redis;
    for (let attempt = 1; ; attempt++) {
      const m = base.duplicate({ monitor: true, lazyConnect: false });
      try {
        await new Promise<void>((resolve, reject) => {
          m.once('error', reject);
          m.once('monitoring', () => resolve());
        });
        monitor = m;
        break;
      } catch (err) {
        m.disconnect();
        if (attempt >= 5) throw err;
      }
    }
    t.teardown(() => monitor.disconnect());
    const seen: Array<{ source: string; args: string[] }> = [];
    let scriptSource = '';
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      // A script's calls come from "lua", right after the EVALSHA that ran them.
      if (source === 'lua') seen.push({ source: scriptSource, args });
      else {
        if (/^EVAL/i.test(args[0] ?? '')) scriptSource = source;
        seen.push({ source, args });
      }
    });
    await new Promise((r) => setTimeout(r, 50));

    const a = (await call('POST', '/v1/sandboxes', { template: 'python' })).body;
    const b = (await call('POST', '/v1/sandboxes', { template: 'python' })).body;
    const rc = createRedis(redis.url);
    t.teardown(() => rc.disconnect());
    const row = JSON.parse((await rc.hget(hostKeys(dns.prefix).containers(m.hostId), a.id))!);
    execFileSync('docker', ['kill', row.containerId]);
    await waitFor('lost', async () => (await call('GET', `/v1/sandboxes/${a.id}`)).body.state === 'lost', 10_000, 25);
    await m.server.reconciler.run();
    t.equal((await call('DELETE', `/v1/sandboxes/${b.id}`)).status, 200);
    await new Promise((r) => setTimeout(r, 1100));
    t.same((await server.reconciler.run()).purged, [a.id]);
    await m.server.reconciler.run();

    // Connection names say which program sent what.
    const names = await clientNames(rc);
    const program = (source: string) => {
      const name = names.get(source) ?? '';
      return name.startsWith('omega-manager') ? 'manager' : name.startsWith('omega-master') ? 'master' : name.startsWith('omega-dns') ? 'dns' : `unnamed ${source}`;
    };
    const writes = seen.filter((e) => WRITES.has((e.args[0] ?? '').toUpperCase()));
    t.ok(writes.length > 20, `writes seen (${writes.length})`);
    const byProgram = new Map<string, number>();
    const violations: string[] = [];
    for (const w of writes) {
      const who = program(w.source);
      byProgram.set(who, (byProgram.get(who) ?? 0) + 1);
      for (const key of keysOf(w.args)) {
        const owner = ownerOf(key);
        if (owner !== who) violations.push(`${who} ${w.args.slice(0, 3).join(' ')} (owner: ${owner})`);
      }
    }
    t.same(violations, [], 'no program writes a key it does not own');
    t.ok(byProgram.get('manager') && byProgram.get('master') && byProgram.get('dns'), `each program wrote its own keys: ${JSON.stringify(Object.fromEntries(byProgram))}`);
  });
}
