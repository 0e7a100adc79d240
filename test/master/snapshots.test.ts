// Snapshots of a workspace to the directory store and to S3 (a real
// S3-compatible server, s3rver), through the master and a manager against
// real Docker: sparse files stay sparse, links stay links, modes and owners
// are kept, a stopped sandbox is snapshotted as well as a running one, a new
// sandbox starts from one, and a deleted snapshot is gone from the store.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import t from 'tap';
import { createRedis } from '../../src/redis/connection.js';
import { hostKeys } from '../../src/redis/keys.js';
import { openSnapshotStore } from '../../src/snapshot-store.js';
import { startDns } from '../helpers/dns.js';
import { removeHostContainers, requireDocker } from '../helpers/docker.js';
import { startManager } from '../helpers/manager.js';
import { startMaster } from '../helpers/master.js';
import { TestRedis } from '../helpers/redis.js';
import { startS3 } from '../helpers/s3.js';
import { connectWorker } from '../helpers/worker-client.js';

if (requireDocker(t, ['omega/sandbox-node:latest'])) {
  const redis = await TestRedis.create();
  t.teardown(() => redis.destroy());
  const dir = mkdtempSync(join(tmpdir(), 'omega-snapshots-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const s3 = await startS3(t);
  const rc = createRedis(redis.url);
  t.teardown(() => rc.disconnect());

  for (const [name, env, stored] of [
    ['a directory', { OMEGA_SNAPSHOT_STORE: `file://${dir}` }, async () => readdirSync(dir)],
    ['S3', { OMEGA_SNAPSHOT_STORE: `s3://${s3.bucket}/snaps`, OMEGA_S3_ENDPOINT: s3.endpoint }, () => s3.keys()],
  ] as const) {
    t.test(`snapshots in ${name}: taken, listed, restored into a new sandbox, deleted`, async (t) => {
      const dns = await startDns(t, redis);
      // Two hosts: the sandbox made from the snapshot lands on the other one (the least loaded), as after losing a host.
      const hostA = await startManager(t, redis, { OMEGA_REDIS_PREFIX: dns.prefix, OMEGA_TEMPLATES: 'node,python', OMEGA_POOL_SIZE: '0', ...env });
      const hostB = await startManager(t, redis, { OMEGA_REDIS_PREFIX: dns.prefix, OMEGA_TEMPLATES: 'node,python', OMEGA_POOL_SIZE: '0', ...env });
      // What a failing test leaves (its deletes not reached), removed all the same.
      t.teardown(() => {
        removeHostContainers(hostA.hostId);
        removeHostContainers(hostB.hostId);
      });
      const { call } = await startMaster(t, redis, dns, { OMEGA_TEMPLATES: 'node,python', ...env });
      const res = await call('POST', '/v1/sandboxes', { template: 'node' });
      t.equal(res.status, 201, JSON.stringify(res.body));
      const a = await connectWorker(t, `ws://127.0.0.1:${res.body.port}/`, res.body.token);
      await a.call('fs.write', { path: 'src/app.js', content: 'console.log("from the snapshot")\n' });
      const made = await a.runToEnd({ command: 'sh', args: ['-c', 'exec 2>&1; cd /workspace && ln -s src/app.js link.js && printf "#!/bin/sh\\necho run\\n" > tool.sh && chmod 750 tool.sh && truncate -s 50M sparse.bin && echo tail >> sparse.bin && mkdir -p deep/a/b && echo x > deep/a/b/c && echo ok'] });
      t.equal(made.stdout.trim(), 'ok');
      await a.close();

      const snap = await call('POST', `/v1/sandboxes/${res.body.id}/snapshots`);
      t.equal(snap.status, 201, JSON.stringify(snap.body));
      t.match(snap.body, { sandboxId: res.body.id, template: 'node' });
      t.ok(snap.body.bytes > 0 && snap.body.bytes < 1_000_000, `a 50 MiB sparse file compresses to little (${snap.body.bytes} bytes)`);
      t.equal((await stored()).length, 1, 'one archive in the store');
      t.same((await call('GET', '/v1/snapshots')).body.snapshots.map((s: { id: string }) => s.id), [snap.body.id], 'listed');
      t.same((await call('GET', `/v1/snapshots/${snap.body.id}`)).body, snap.body);
      t.equal((await call('POST', `/v1/sandboxes/${res.body.id}/pause`, {})).body.state, 'paused', 'the sandbox still runs after, and pauses');
      const stoppedSnap = await call('POST', `/v1/sandboxes/${res.body.id}/pause`, { memory: false }).then(() => call('POST', `/v1/sandboxes/${res.body.id}/snapshots`));
      t.equal(stoppedSnap.status, 201, `a stopped sandbox's workspace is snapshotted too: ${JSON.stringify(stoppedSnap.body)}`);

      const from = await call('POST', '/v1/sandboxes', { template: 'node', snapshot: snap.body.id });
      t.equal(from.status, 201, JSON.stringify(from.body));
      t.not(from.body.host, res.body.host, 'restored on the other host');
      t.ok([hostA.hostId, hostB.hostId].includes(from.body.host));
      const b = await connectWorker(t, `ws://127.0.0.1:${from.body.port}/`, from.body.token);
      const check = await b.runToEnd({ command: 'sh', args: ['-c', 'exec 2>&1; cd /workspace && node link.js && readlink link.js && stat -c "%a %u:%g" tool.sh src/app.js && ./tool.sh && stat -c %s sparse.bin && du -k sparse.bin | cut -f1 && cat deep/a/b/c'] });
      const lines = check.stdout.trim().split('\n');
      t.equal(lines[0], 'from the snapshot', 'files restored');
      t.equal(lines[1], 'src/app.js', 'a link is still a link');
      t.equal(lines[2], '750 1000:1000', 'modes and owners kept');
      t.equal(lines[3], '644 1000:1000');
      t.equal(lines[4], 'run');
      t.equal(lines[5], String(50 * 1024 * 1024 + 5), 'the sparse file has its size');
      t.ok(Number(lines[6]) < 1024, `and is still sparse (${lines[6]} KiB on disk)`);
      t.equal(lines[7], 'x');
      await b.close();

      t.equal((await call('POST', '/v1/sandboxes', { template: 'python', snapshot: snap.body.id })).status, 400, 'a snapshot starts a sandbox of its own template only');
      t.equal((await call('POST', '/v1/sandboxes', { template: 'node', snapshot: 'nosuchsnapshot00' })).status, 404);
      t.same((await call('DELETE', `/v1/snapshots/${snap.body.id}`)).body, { id: snap.body.id, deleted: true });
      t.same((await call('DELETE', `/v1/snapshots/${snap.body.id}`)).body, { id: snap.body.id, deleted: false }, 'idempotent');
      t.same((await call('DELETE', `/v1/snapshots/${stoppedSnap.body.id}`)).body, { id: stoppedSnap.body.id, deleted: true });
      t.same(await stored(), [], 'the archives are gone from the store');
      t.equal((await call('GET', `/v1/snapshots/${snap.body.id}`)).status, 404);
      for (const id of [res.body.id, from.body.id]) t.equal((await call('DELETE', `/v1/sandboxes/${id}`)).status, 200);
    });

    t.test(`snapshots in ${name}: a sandbox deleted while its snapshot is written leaves no archive that is not a recorded snapshot`, async (t) => {
      const dns = await startDns(t, redis);
      const host = await startManager(t, redis, { OMEGA_REDIS_PREFIX: dns.prefix, OMEGA_TEMPLATES: 'node', OMEGA_POOL_SIZE: '0', ...env });
      t.teardown(() => removeHostContainers(host.hostId));
      const { call } = await startMaster(t, redis, dns, { OMEGA_TEMPLATES: 'node', ...env });
      const archives = async () => (await stored()).map((f) => /([a-z0-9]+)\.tar\.gz$/.exec(f)?.[1] ?? f).sort();
      const recorded = async () => ((await call('GET', '/v1/snapshots')).body.snapshots as Array<{ id: string }>).map((s) => s.id).sort();
      // Each round deletes a little later into the snapshot: before tar starts, while it reads, as it finishes, after it is taken (a snapshot asked for stays).
      const outcomes: string[] = [];
      for (const delayMs of [0, 100, 300, 600, 5000]) {
        const sb = (await call('POST', '/v1/sandboxes', { template: 'node' })).body;
        const w = await connectWorker(t, `ws://127.0.0.1:${sb.port}/`, sb.token);
        t.equal((await w.runToEnd({ command: 'sh', args: ['-c', 'head -c 30000000 /dev/urandom > /workspace/noise.bin && echo ok'] })).stdout, 'ok\n');
        await w.close();
        const snapping = call('POST', `/v1/sandboxes/${sb.id}/snapshots`);
        await new Promise((r) => setTimeout(r, delayMs));
        const deleted = await call('DELETE', `/v1/sandboxes/${sb.id}`);
        t.equal(deleted.status, 200, JSON.stringify(deleted.body));
        const snap = await snapping;
        outcomes.push(`${delayMs} ms: ${snap.status} ${snap.body.code ?? ''}`);
        t.ok(snap.status === 201 || (snap.status === 404 && snap.body.code === 'SANDBOX_NOT_FOUND'), `taken before the delete, or it says the sandbox was deleted: ${snap.status} ${JSON.stringify(snap.body)}`);
        t.same(await archives(), await recorded(), `deleted ${delayMs} ms in: the store holds the recorded snapshots only`);
      }
      t.comment(outcomes.join('; '));
      for (const id of await recorded()) t.equal((await call('DELETE', `/v1/snapshots/${id}`)).status, 200);
      t.same(await stored(), [], 'nothing left');
    });

    t.test(`snapshots in ${name}: a snapshot whose caller goes away is stopped on its host and leaves nothing`, async (t) => {
      const dns = await startDns(t, redis);
      const host = await startManager(t, redis, { OMEGA_REDIS_PREFIX: dns.prefix, OMEGA_TEMPLATES: 'node', OMEGA_POOL_SIZE: '0', ...env });
      t.teardown(() => removeHostContainers(host.hostId));
      const { call } = await startMaster(t, redis, dns, { OMEGA_TEMPLATES: 'node', ...env });
      const sb = (await call('POST', '/v1/sandboxes', { template: 'node' })).body;
      const w = await connectWorker(t, `ws://127.0.0.1:${sb.port}/`, sb.token);
      t.equal((await w.runToEnd({ command: 'sh', args: ['-c', 'head -c 30000000 /dev/urandom > /workspace/noise.bin && echo ok'] })).stdout, 'ok\n');
      await w.close();
      // A master that asks its host for a snapshot and is gone 150 ms later (it died, or gave the call up).
      const away = new AbortController();
      const asked = fetch(`${host.server.apiUrl}/v1/sandboxes/${sb.id}/snapshots`, {
        method: 'POST',
        headers: { authorization: `Bearer ${host.config.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ key: 'callergone00001' }),
        signal: away.signal,
      });
      setTimeout(() => away.abort(), 150);
      await t.rejects(asked, { name: 'AbortError' });
      // The host takes one snapshot of a sandbox at a time: this one is taken once the first has ended, however it did.
      const next = await call('POST', `/v1/sandboxes/${sb.id}/snapshots`);
      t.equal(next.status, 201, JSON.stringify(next.body));
      t.same((await stored()).filter((f) => !f.includes(next.body.id)), [], 'the abandoned one left nothing, not even a partial file');
      t.equal((await call('DELETE', `/v1/snapshots/${next.body.id}`)).status, 200);
      t.equal((await call('DELETE', `/v1/sandboxes/${sb.id}`)).status, 200);
    });

    t.test(`snapshots in ${name}: an archive whose master died while it was written is removed past its deadline, by one master`, async (t) => {
      const dns = await startDns(t, redis);
      const k = hostKeys(dns.prefix);
      const first = await startMaster(t, redis, dns, { OMEGA_TEMPLATES: 'node', ...env });
      const second = await startMaster(t, redis, dns, { OMEGA_TEMPLATES: 'node', ...env });
      const archive = openSnapshotStore(env.OMEGA_SNAPSHOT_STORE, { region: 'us-east-1', ...('OMEGA_S3_ENDPOINT' in env ? { endpoint: env.OMEGA_S3_ENDPOINT } : {}) });
      // Two archives written for masters that died before recording them: one past its deadline, one not yet.
      for (const key of ['abandoned0000001', 'stillwriting0001']) await archive.put(key, Readable.from([Buffer.from('half an archive')]));
      await rc.zadd(k.snapshotsWriting, Date.now() - 1, 'abandoned0000001', Date.now() + 600_000, 'stillwriting0001');
      const swept = await Promise.all([first.server.sandboxes.persistence.sweepAbandoned(), second.server.sandboxes.persistence.sweepAbandoned()]);
      t.same(swept.flat(), ['abandoned0000001'], 'removed once, by one of the two');
      t.same((await stored()).filter((f) => f.includes('abandoned')), [], 'gone from the store');
      t.same(await rc.zrange(k.snapshotsWriting, '0', '-1'), ['stillwriting0001'], 'one within its deadline is left to its master');
      await archive.delete('stillwriting0001');
      await rc.del(k.snapshotsWriting);
      t.same(await stored(), []);
    });
  }
}
