// A workspace of a fixed size, against real Docker and real loop devices:
// writing past it fails inside the sandbox with ENOSPC, inodes run out too,
// the neighbour and the host are untouched, deleting files frees it, a
// manager restart keeps it, and deleting the sandbox leaves no image or loop
// device behind.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { ManagerServer } from '../../manager/server.js';
import { createLogger } from '../../src/log.js';
import { removeHostContainers, requireDocker } from '../helpers/docker.js';
import { startManager } from '../helpers/manager.js';
import { TestRedis } from '../helpers/redis.js';
import { connectWorker } from '../helpers/worker-client.js';

const IMAGE = 'omega/sandbox-node:latest';
const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8' });

if (requireDocker(t, [IMAGE, 'omega/sandbox-python:latest'])) {
  const dir = mkdtempSync(join(tmpdir(), 'omega-disks-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const redis = await TestRedis.create();
  t.teardown(() => redis.destroy());
  const { call, hostId, server, config } = await startManager(t, redis, { OMEGA_TEMPLATES: 'node,python', OMEGA_SANDBOX_DISK_MB: '64,python=32', OMEGA_WORKSPACE_IMAGE_DIR: dir });
  t.teardown(() => removeHostContainers(hostId, dir));
  const images = join(dir, hostId);
  const attached = () => sh('losetup', ['--list', '--noheadings', '--output', 'BACK-FILE']).split('\n').filter((l) => l.includes(images)).length;

  const create = async (id: string) => {
    const res = await call('POST', '/v1/sandboxes', { id, template: 'node', token: `tok-${id}-0123456789abcdef` });
    if (res.status !== 201) throw new Error(`create ${id}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body as { hostPort: number; volume: string };
  };
  const [a, b] = [`diska${randomBytes(3).toString('hex')}`, `diskb${randomBytes(3).toString('hex')}`];
  const sa = await create(a);
  const sb = await create(b);
  const open = (t: Test, id: string, port: number) => connectWorker(t, `ws://127.0.0.1:${port}/`, `tok-${id}-0123456789abcdef`);
  const shIn = async (c: Awaited<ReturnType<typeof open>>, script: string) => (await c.runToEnd({ command: 'sh', args: ['-c', script] })).stdout.trim();

  t.test('a new workspace is empty and the sandbox user\'s; a template can have a size of its own', async (t) => {
    const c = await open(t, b, sb.hostPort);
    t.equal(await shIn(c, 'ls -A /workspace; stat -c %u:%g /workspace'), '1000:1000', 'no lost+found (a repository is cloned only into an empty workspace), owned by uid 1000');
    const id = `diskp${randomBytes(3).toString('hex')}`;
    const res = await call('POST', '/v1/sandboxes', { id, template: 'python', token: `tok-${id}-0123456789abcdef` });
    t.equal(res.status, 201, JSON.stringify(res.body));
    const p = await open(t, id, res.body.hostPort);
    const size = Number(await shIn(p, "df -k /workspace | awk 'NR==2 {print $2}'"));
    t.ok(size > 20_000 && size < 34_000, `python's workspace is its own 32 MiB (${size} KiB)`);
    await p.close();
    t.equal((await call('DELETE', `/v1/sandboxes/${id}`)).status, 200);
  });

  t.test('writing past the size fails with ENOSPC inside; the neighbour writes on', async (t) => {
    const c = await open(t, a, sa.hostPort);
    const size = Number(await shIn(c, "df -k /workspace | awk 'NR==2 {print $2}'"));
    t.ok(size > 50_000 && size < 70_000, `df in the sandbox shows its own ~64 MiB (${size} KiB), not the host's disk`);
    const hostFreeBefore = Number(sh('df', ['-k', '--output=avail', dir]).split('\n')[1]);
    const out = await shIn(c, 'dd if=/dev/zero of=/workspace/fill bs=1M count=200 2>&1; echo exit=$?');
    t.match(out, /No space left on device/, 'ENOSPC');
    t.match(out, /exit=1/);
    const hostFreeAfter = Number(sh('df', ['-k', '--output=avail', dir]).split('\n')[1]);
    t.ok(hostFreeBefore - hostFreeAfter < 80_000, `the host lost at most the workspace's size (${hostFreeBefore - hostFreeAfter} KiB)`);
    const n = await open(t, b, sb.hostPort);
    t.equal(await shIn(n, 'dd if=/dev/zero of=/workspace/ten bs=1M count=10 2>/dev/null && echo ok'), 'ok', 'the neighbour writes 10 MiB meanwhile');
    // Deleting frees it: the sandbox works on.
    t.equal(await shIn(c, 'rm /workspace/fill && echo again > /workspace/after && cat /workspace/after'), 'again');
  });

  t.test('inodes run out too, and come back', async (t) => {
    const c = await open(t, a, sa.hostPort);
    const out = await shIn(c, 'mkdir -p /workspace/many && cd /workspace/many && i=0; while [ $i -lt 20000 ]; do true > f$i || break; i=$((i+1)); done 2>&1; echo made=$i');
    const made = Number(/made=(\d+)/.exec(out)?.[1]);
    t.ok(made > 1000 && made < 20_000, `files until the inodes ran out: ${made}`);
    t.match(out, /No space left on device/);
    t.equal(await shIn(c, 'rm -rf /workspace/many && : > /workspace/one && echo ok'), 'ok');
  });

  t.test('a manager restart keeps the workspaces; a delete leaves no image or loop device', async (t) => {
    t.equal(attached(), 2, 'one loop device per workspace');
    await server.stop();
    t.ok(existsSync(join(images, `${sa.volume}.img`)), 'stopped with its sandboxes, its images stay');
    const again = new ManagerServer(config, createLogger('manager', { level: 'silent' }));
    t.teardown(() => again.stop());
    await again.start();
    await again.reconciler.run();
    const c = await open(t, a, sa.hostPort);
    t.equal(await shIn(c, 'cat /workspace/after'), 'again', 'the files are there after the restart');
    t.equal(attached(), 2);
    const del = await fetch(`${again.apiUrl}/v1/sandboxes/${a}`, { method: 'DELETE', headers: { authorization: `Bearer ${config.token}` } });
    t.equal(del.status, 200);
    t.equal(attached(), 1, 'its loop device detached');
    t.notOk(existsSync(join(images, `${sa.volume}.img`)), 'its image deleted');
    t.ok(existsSync(join(images, `${sb.volume}.img`)), 'the neighbour\'s kept');
    const del2 = await fetch(`${again.apiUrl}/v1/sandboxes/${b}`, { method: 'DELETE', headers: { authorization: `Bearer ${config.token}` } });
    t.equal(del2.status, 200);
    t.equal(attached(), 0, 'nothing attached');
    await again.stop();
    t.notOk(existsSync(images), 'stopped with none (its pool drained), the host leaves no directory of its own');
  });
}
