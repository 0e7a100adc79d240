// Sandboxes under gVisor (OMEGA_SANDBOX_RUNTIME=runsc, registered by `make
// runsc`, which `make test` runs): the same contract as under runc — the
// worker answers, user code runs as uid 1000 without capabilities apart from
// the agent, the workspace is its own filesystem, Omega's network and
// firewall hold — with gVisor's kernel in between. What does not hold under
// this runsc (its pids accounting) is in docs/gvisor.md.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import t from 'tap';
import { removeHostContainers, requireDocker } from '../helpers/docker.js';
import { startManager } from '../helpers/manager.js';
import { CONNECT_PROBE } from '../helpers/netns.js';
import { TestRedis } from '../helpers/redis.js';
import { connectWorker } from '../helpers/worker-client.js';

const registered = () => {
  try {
    return execFileSync('docker', ['info', '--format', '{{json .Runtimes}}'], { encoding: 'utf8' }).includes('"runsc"');
  } catch {
    return false;
  }
};

if (requireDocker(t, ['omega/sandbox-node:latest'])) {
  if (!registered()) {
    const reason = 'the runsc runtime is not registered with Docker (make runsc)';
    if (process.env.CI) t.fail(reason);
    else t.comment(`skipped: ${reason}`);
  } else {
    const redis = await TestRedis.create();
    t.teardown(() => redis.destroy());
    const hostService = net.createServer((s) => s.end('host service\n'));
    await new Promise<void>((r) => hostService.listen(0, '0.0.0.0', r));
    t.teardown(() => hostService.close());
    const { call, hostId } = await startManager(t, redis, { OMEGA_TEMPLATES: 'node', OMEGA_SANDBOX_RUNTIME: 'runsc', OMEGA_SANDBOX_DISK_MB: '64' });
    t.teardown(() => removeHostContainers(hostId));

    t.test('a sandbox under gVisor: its kernel, the agent apart, its own disk, the firewall', async (t) => {
      const id = `gv${randomBytes(4).toString('hex')}`;
      const token = `tok-${id}-0123456789abcdef`;
      const res = await call('POST', '/v1/sandboxes', { id, template: 'node', token });
      t.equal(res.status, 201, JSON.stringify(res.body));
      const inspect = JSON.parse(execFileSync('docker', ['inspect', res.body.containerId], { encoding: 'utf8' }))[0];
      t.equal(inspect.HostConfig.Runtime, 'runsc', 'the container runs under runsc');
      const c = await connectWorker(t, `ws://127.0.0.1:${res.body.hostPort}/`, token);
      await c.call('fs.write', { path: 'hello.txt', content: 'from the IDE\n' });
      const r = await c.runToEnd({ command: 'sh', args: ['-c', 'exec 2>&1; dmesg | head -1; id -u; find hello.txt -printf "%U\\n"; grep CapEff /proc/self/status; df -k /workspace | awk "NR==2 {print \\$2}"'] });
      const [kernel, uid, owner, caps, size] = r.stdout.trim().split('\n');
      t.match(kernel, /gVisor/, `gVisor's kernel answers dmesg (${kernel})`);
      t.equal(uid, '1000', 'user code is uid 1000');
      t.equal(owner, '1000', 'and owns what the IDE wrote');
      t.equal(caps, 'CapEff:\t0000000000000000', 'with no capabilities');
      t.ok(Number(size) > 50_000 && Number(size) < 70_000, `the workspace is its own 64 MiB (${size} KiB)`);
      const gateway = execFileSync('docker', ['network', 'inspect', '--format', '{{range .IPAM.Config}}{{.Gateway}}{{end}}', 'omega-sandboxes'], { encoding: 'utf8' }).trim();
      // Its answer is what it prints; under runsc's ptrace platform on a busy machine its exit can take longer than
      // the wait for it (seen in CI, the answer printed long before), so the answer is waited for, not the exit.
      const { procId } = (await c.call('proc.run', { command: 'node', args: ['-e', CONNECT_PROBE, JSON.stringify([[gateway, (hostService.address() as net.AddressInfo).port]])], timeoutMs: 20_000 })) as { procId: string };
      await c.waitEvent('proc.stdout', (d) => d.procId === procId && c.output('proc.stdout', procId).includes('\n'), 30_000);
      t.not(JSON.parse(c.output('proc.stdout', procId))[0], 'open', 'the host firewall holds under runsc\'s network mode');
      await c.close();
      t.equal((await call('DELETE', `/v1/sandboxes/${id}`)).status, 200);
    });
  }
}
