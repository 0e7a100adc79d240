// The E2B SDK end to end on real containers: created through the master's E2B
// API, then its files and commands through the agent of the worker in the
// container (this checkout's worker, overlaid on the node image), reached on
// the worker's published port with the SDK's sandboxUrl option (TLS off), as
// the user code's user with the manager's confinement.
import { CommandExitError, Sandbox, SandboxNotFoundError } from 'e2b';
import t from 'tap';
import { e2bApiKey } from '../../src/e2b-key.js';
import { startDns } from '../helpers/dns.js';
import { removeHostContainers, requireDocker } from '../helpers/docker.js';
import { overlayWorkerImage } from '../helpers/e2b-image.js';
import { startManager } from '../helpers/manager.js';
import { API_TOKEN, startMaster } from '../helpers/master.js';
import { waitFor } from '../helpers/ports.js';
import { TestRedis } from '../helpers/redis.js';

if (requireDocker(t, ['omega/sandbox-node:latest'])) {
  const prefix = overlayWorkerImage(t, 'node');
  const redis = await TestRedis.create();
  t.teardown(() => redis.destroy());
  const dns = await startDns(t, redis);
  const memoryMb = 384;
  const m = await startManager(t, redis, { OMEGA_REDIS_PREFIX: dns.prefix, OMEGA_TEMPLATES: 'node', OMEGA_IMAGE_PREFIX: prefix, OMEGA_SANDBOX_MEMORY_MB: String(memoryMb), OMEGA_SANDBOX_CPUS: '1.5' });
  t.teardown(() => removeHostContainers(m.hostId));
  const { server } = await startMaster(t, redis, dns, { OMEGA_TEMPLATES: 'node' });
  const opts = { apiKey: e2bApiKey(API_TOKEN), apiUrl: server.apiUrl, domain: 'sandbox.test' };

  t.test('create, then files and commands in the container; pause, connect, the files are there', async (t) => {
    const created = await Sandbox.create('node', { ...opts, timeoutMs: 120_000 });
    t.teardown(() => created.kill().catch(() => undefined));
    const view = (await (await fetch(`${server.apiUrl}/v1/sandboxes/${created.sandboxId}`, { headers: { authorization: `Bearer ${API_TOKEN}` } })).json()) as { port: number };
    const sandboxUrl = `http://127.0.0.1:${view.port}`;
    const sbx = await Sandbox.connect(created.sandboxId, { ...opts, sandboxUrl });

    const r = await sbx.commands.run('id -un; pwd; echo $HOME');
    t.match(r.stdout, /^\S+\n\/workspace\n\/workspace\n$/, `as the sandbox user, in the workspace: ${JSON.stringify(r.stdout)}`);
    t.equal((await sbx.commands.run('id -u')).stdout, '1000\n', 'not root');
    const sudo = await sbx.commands.run('cat /etc/shadow').catch((e: unknown) => e);
    t.ok(sudo instanceof CommandExitError, 'what only root may read stays closed');

    await sbx.files.write('app/main.js', 'console.log(6 * 7)\n');
    t.equal((await sbx.commands.run('node app/main.js')).stdout, '42\n', 'a file written through the agent runs');
    t.equal((await sbx.commands.run('stat -c %u app/main.js')).stdout, '1000\n', 'owned by the user, not the agent');
    t.same((await sbx.files.list('app')).map((e) => e.name), ['main.js']);

    t.equal(await sbx.pause(), true);
    const again = await Sandbox.connect(created.sandboxId, { ...opts, sandboxUrl });
    t.equal((await again.getInfo()).state, 'running', 'connect resumed it');
    t.equal(await again.files.read('app/main.js'), 'console.log(6 * 7)\n', 'its files are there');
    t.equal((await again.commands.run('echo back')).stdout, 'back\n');
  });

  t.test('getMetrics: what its host measures of the container (CPU, memory, workspace), the same through /v1; none while paused', async (t) => {
    const created = await Sandbox.create('node', { ...opts, timeoutMs: 120_000 });
    t.teardown(() => created.kill().catch(() => undefined));
    const v1 = async (path: string, body?: object) => {
      const res = await fetch(`${server.apiUrl}${path}`, {
        method: body ? 'POST' : 'GET',
        headers: { authorization: `Bearer ${API_TOKEN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    const view = (await v1(`/v1/sandboxes/${created.sandboxId}`)).body as { port: number };
    const sbx = await Sandbox.connect(created.sandboxId, { ...opts, sandboxUrl: `http://127.0.0.1:${view.port}` });
    const read = async () => {
      const series = await sbx.getMetrics();
      t.equal(series.length, 1, 'one reading: now');
      return series[0]!;
    };

    const info = await sbx.getInfo();
    t.match(info, { cpuCount: 2, memoryMB: memoryMb }, 'getInfo: its CPUs (1.5, rounded up) and memory as its host started it');
    t.match((await v1(`/v1/sandboxes/${created.sandboxId}`)).body, { size: { cpus: 1.5, memoryMb, diskMb: Number } }, 'through /v1: its size');

    const idle = await read();
    t.ok(Math.abs(idle.timestamp.getTime() - Date.now()) < 60_000, 'taken now');
    t.equal(idle.cpuCount, 2, 'its CPU limit (1.5), rounded up');
    t.equal(idle.memTotal, memoryMb * 1024 * 1024, 'its memory limit');
    t.ok(idle.memUsed > 0 && idle.memUsed < idle.memTotal, `its memory in use: ${idle.memUsed}`);
    t.ok(idle.diskTotal > 0 && idle.diskUsed <= idle.diskTotal, `its workspace: ${idle.diskUsed} of ${idle.diskTotal}`);

    await sbx.commands.run('head -c 20000000 /dev/urandom > big.bin');
    const written = await read();
    t.ok(written.diskUsed - idle.diskUsed >= 19_000_000, `20 MB written shows on its disk (${idle.diskUsed} -> ${written.diskUsed})`);

    await sbx.commands.run('node -e "globalThis.b = Buffer.alloc(100e6, 1); setInterval(() => {}, 1000)"', { background: true });
    const holding = await waitFor('100 MB held', async () => {
      const m = await read();
      return m.memUsed - idle.memUsed >= 90_000_000 ? m : null;
    }, 30_000, 200);
    t.ok(holding, `a process holding 100 MB shows (${idle.memUsed} -> ${holding!.memUsed})`);

    const spin = await sbx.commands.run('node -e "for (;;) {}"', { background: true });
    const busy = await waitFor('the CPU busy', async () => {
      const m = await read();
      return m.cpuUsedPct >= 30 ? m : null;
    }, 30_000, 500);
    t.ok(busy!.cpuUsedPct < 80, `one busy thread shows as CPU used, a share of its 1.5 CPUs (at most two thirds): ${busy!.cpuUsedPct}%`);
    await spin.kill();
    const calm = await waitFor('the CPU calm again', async () => {
      const m = await read();
      return m.cpuUsedPct < 30 ? m : null;
    }, 30_000, 500);
    t.ok(calm, `after it is killed: ${calm!.cpuUsedPct}%`);

    const own = await v1(`/v1/sandboxes/${created.sandboxId}/metrics`);
    t.equal(own.status, 200);
    t.match(own.body, { sandboxId: created.sandboxId, atMs: Number, cpuUsedPct: Number, cpuCount: 2, memTotal: memoryMb * 1024 * 1024, diskTotal: idle.diskTotal }, 'Omega\'s own route: the same reading');

    await sbx.pause();
    t.same(await Sandbox.getMetrics(created.sandboxId, opts), [], 'paused: no reading through E2B (its answer for a sandbox not running)');
    const frozen = await v1(`/v1/sandboxes/${created.sandboxId}/metrics`);
    t.equal(frozen.status, 200, 'through /v1 a frozen one is measured');
    t.ok((frozen.body.memUsed as number) - idle.memUsed >= 90_000_000, 'it keeps its memory');
    t.equal((await v1(`/v1/sandboxes/${created.sandboxId}/pause`, { memory: false })).status, 200);
    t.match(await v1(`/v1/sandboxes/${created.sandboxId}/metrics`), { status: 409, body: { code: 'SANDBOX_BUSY', message: /stopped/ } }, 'a stopped one has no container to measure: /v1 says so');
    await created.kill();
    await t.rejects(Sandbox.getMetrics(created.sandboxId, opts), SandboxNotFoundError, 'killed: the SDK\'s own error');
  });
}
