// The isolated sandbox network against real Docker and real iptables: user
// code in one sandbox cannot reach another sandbox, the host's own addresses,
// the metadata address or a "control plane" on a private address (a network
// namespace of the test's own behind a veth pair, as another machine would
// be), while what must work still works: the manager and the ingress reach
// the worker, DNS resolves, and the same paths are open from outside Omega's
// network (so the test cannot pass by failing to reach anything at all).
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import t from 'tap';
import { DEFAULT_BLOCKED_CIDRS, hostResolvers, SandboxNetwork } from '../../manager/runtime/network.js';
import { createLogger } from '../../src/log.js';
import { startManager } from '../helpers/manager.js';
import { removeHostContainers, requireDocker } from '../helpers/docker.js';
import { CONNECT_PROBE, otherMachine } from '../helpers/netns.js';
import { waitFor } from '../helpers/ports.js';
import { TestRedis } from '../helpers/redis.js';
import { connectWorker } from '../helpers/worker-client.js';

const IMAGE = 'omega/sandbox-node:latest';

const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8' });

if (requireDocker(t, [IMAGE])) {
  const other = otherMachine(t);
  const [CTL, CTL_PORT, PUBLIC] = [other.ctl, other.port, other.public];

  // A listener on every address of the host: what a sandbox must not reach (the manager's API, Redis, ...).
  const hostServer = net.createServer((s) => s.end('host service\n'));
  await new Promise<void>((r) => hostServer.listen(0, '0.0.0.0', r));
  t.teardown(() => hostServer.close());
  const hostPort = (hostServer.address() as net.AddressInfo).port;

  const redis = await TestRedis.create();
  t.teardown(() => redis.destroy());
  const { call, hostId, server } = await startManager(t, redis, { OMEGA_TEMPLATES: 'node', OMEGA_SANDBOX_NETWORK: 'isolated' });
  t.teardown(() => removeHostContainers(hostId));

  const create = async (id: string) => {
    const res = await call('POST', '/v1/sandboxes', { id, template: 'node', token: `tok-${id}-0123456789abcdef` });
    if (res.status !== 201) throw new Error(`create ${id}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body as { hostPort: number; containerId: string };
  };
  const [a, b] = [`neta${randomBytes(3).toString('hex')}`, `netb${randomBytes(3).toString('hex')}`];
  const sa = await create(a);
  const sb = await create(b);
  const ip = (containerId: string) => sh('docker', ['inspect', '--format', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', containerId]).trim();
  const gateway = sh('docker', ['network', 'inspect', '--format', '{{range .IPAM.Config}}{{.Gateway}}{{end}}', 'omega-sandboxes']).trim();
  const bAddress = ip(sb.containerId);

  const probe = CONNECT_PROBE;
  const targets: Array<[string, string, number]> = [
    ['another sandbox, by its address', bAddress, 8080],
    ['the control plane on a private address', CTL, CTL_PORT],
    ['the host, at the bridge gateway', gateway, hostPort],
    ['the host, at its own address', sh('hostname', ['-I']).trim().split(/\s+/)[0]!, hostPort],
    ['the metadata service', other.metadata, CTL_PORT],
  ];

  t.test('user code in a sandbox reaches none of them', async (t) => {
    const c = await connectWorker(t, `ws://127.0.0.1:${sa.hostPort}/`, `tok-${a}-0123456789abcdef`);
    const r = await c.runToEnd({ command: 'node', args: ['-e', probe, JSON.stringify(targets.map(([, h, p]) => [h, p]))] });
    const got = JSON.parse(r.stdout) as string[];
    t.comment(targets.map(([what, h, p], i) => `${what} (${h}:${p}): ${got[i]}`).join('\n'));
    targets.forEach(([what], i) => t.not(got[i], 'open', `${what}: refused (${got[i]})`));
    // Refused at once by the firewall, not left to time out.
    t.notOk(got.slice(1).includes('TIMEOUT'), 'the firewall answers at once');
  });

  t.test('the same targets are open from outside Omega\'s network, so the test can fail', async (t) => {
    const out = sh('docker', ['run', '--rm', '--network', 'bridge', '--entrypoint', 'node', IMAGE, '-e', probe, JSON.stringify([[CTL, CTL_PORT], [sh('hostname', ['-I']).trim().split(/\s+/)[0]!, hostPort], [other.metadata, CTL_PORT]])]);
    t.same(JSON.parse(out), ['open', 'open', 'open'], 'a container on Docker\'s default bridge reaches the control plane, the host and the metadata address');
  });

  t.test('what must work still works: the worker is reached, DNS resolves, sandboxes keep their own traffic', async (t) => {
    const c = await connectWorker(t, `ws://127.0.0.1:${sb.hostPort}/`, `tok-${b}-0123456789abcdef`);
    const local = await c.runToEnd({ command: 'node', args: ['-e', 'require("http").createServer((q,r)=>r.end("ok")).listen(3000,()=>require("http").get("http://127.0.0.1:3000",(r)=>{r.on("data",d=>{console.log(String(d));process.exit(0)})}))'] });
    t.equal(local.stdout.trim(), 'ok', 'a sandbox talks to itself');
    const dns = await c.runToEnd({ command: 'node', args: ['-e', 'require("dns").lookup("deb.debian.org",(e,a)=>console.log(e?e.code:"resolved"))'] });
    t.equal(dns.stdout.trim(), 'resolved', 'names resolve (DNS to the host\'s resolvers is let through)');
  });

  t.test('internet: an address outside the blocked ranges is open, and closed for a sandbox created with internet: false', async (t) => {
    const online = await connectWorker(t, `ws://127.0.0.1:${sb.hostPort}/`, `tok-${b}-0123456789abcdef`);
    const open = JSON.parse((await online.runToEnd({ command: 'node', args: ['-e', probe, JSON.stringify([[PUBLIC, CTL_PORT]])] })).stdout);
    t.same(open, ['open'], 'a sandbox with the internet reaches it');
    const off = `netc${randomBytes(3).toString('hex')}`;
    const res = await call('POST', '/v1/sandboxes', { id: off, template: 'node', token: `tok-${off}-0123456789abcdef`, internet: false });
    t.equal(res.status, 201, JSON.stringify(res.body));
    const c = await connectWorker(t, `ws://127.0.0.1:${res.body.hostPort}/`, `tok-${off}-0123456789abcdef`);
    const got = JSON.parse((await c.runToEnd({ command: 'node', args: ['-e', probe, JSON.stringify([[PUBLIC, CTL_PORT]])] })).stdout);
    t.not(got[0], 'open', `internet: false has none (${got[0]})`);
    const address = ip(res.body.containerId);
    t.match(sh('iptables', ['-S', 'OMEGA-SANDBOX-OFF']), `-s ${address}/32`, 'its rule');
    // Another manager on this machine (omega up runs several) putting its own rules in place: this one's stay.
    const neighbour = new SandboxNetwork(server.runtime.docker, { name: 'omega-sandboxes', bridge: 'omega0', blockedCidrs: DEFAULT_BLOCKED_CIDRS, resolvers: hostResolvers() }, createLogger('neighbour', { level: 'silent' }));
    await neighbour.ensure();
    t.match(sh('iptables', ['-S', 'OMEGA-SANDBOX-OFF']), `-s ${address}/32`, 'kept when another manager puts its rules in place');
    t.not(JSON.parse((await c.runToEnd({ command: 'node', args: ['-e', probe, JSON.stringify([[PUBLIC, CTL_PORT]])] })).stdout)[0], 'open', 'and it still has no network');
    t.equal((await call('DELETE', `/v1/sandboxes/${off}`)).status, 200);
    t.notMatch(sh('iptables', ['-S', 'OMEGA-SANDBOX-OFF']), `-s ${address}/32`, 'gone with it: its address may be the next sandbox\'s');
  });

  t.test('the rules are idempotent and come back after a flush', async (t) => {
    const count = () => sh('iptables', ['-S', 'DOCKER-USER']).split('\n').filter((l) => l.includes('OMEGA-SANDBOX')).length;
    const rules = () => sh('iptables', ['-S', 'OMEGA-SANDBOX']);
    t.equal(count(), 1, 'one jump from DOCKER-USER');
    const before = rules();
    await server.network!.ensure();
    await server.network!.ensure();
    t.equal(count(), 1, 'still one after two more ensure()');
    t.equal(rules(), before, 'the same rules');
    t.equal(sh('iptables', ['-S', 'INPUT']).split('\n').filter((l) => l.includes('OMEGA-SANDBOX-IN')).length, 1, 'one jump from INPUT');
    // As a Docker restart or an operator's flush would: the manager's check puts it back.
    sh('iptables', ['-D', 'DOCKER-USER', '-i', 'omega0', '-j', 'OMEGA-SANDBOX']);
    t.equal(count(), 0);
    await waitFor('the jump back', () => count() === 1, 15_000, 200);
    const c = await connectWorker(t, `ws://127.0.0.1:${sa.hostPort}/`, `tok-${a}-0123456789abcdef`);
    const r = await c.runToEnd({ command: 'node', args: ['-e', probe, JSON.stringify([[CTL, CTL_PORT]])] });
    t.not(JSON.parse(r.stdout)[0], 'open', 'and the control plane is closed again');
  });

}
