// Attacks, each run as user code inside a real sandbox (or as a stranger on
// the internet side of the host's ingress) against real neighbours, with the
// whole stack as it serves strangers: the master, a host's manager with its
// TLS ingress, Omega's own network and firewall, workspace quotas, the agent
// apart from user code. Every attack must come out contained, and the
// neighbour and the host must still serve afterwards. Prints a table:
// attack, expected, got.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import t, { type Test } from 'tap';
import { Agent, request } from 'undici';
import { requireDocker } from '../helpers/docker.js';
import { quickLocalManagers } from '../helpers/master.js';
import { CONNECT_PROBE, otherMachine } from '../helpers/netns.js';
import { sleep } from '../helpers/ports.js';
import { startTlsStack } from '../helpers/tls-stack.js';
import type { TestClient } from '../helpers/worker-client.js';

const HOST = '127.0.0.72';
const DISK_MB = 64;
const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8' });

interface Row {
  attack: string;
  expected: string;
  got: string;
  contained: boolean;
}

if (requireDocker(t, ['omega/sandbox-node:latest', 'omega/sandbox-python:latest'])) {
  quickLocalManagers();
  process.env.OMEGA_SANDBOX_DISK_MB = String(DISK_MB);
  const other = otherMachine(t, 18098);
  // A service on every address of the host (the manager's API, Redis, ... would be such).
  const hostService = net.createServer((s) => s.end('host service\n'));
  await new Promise<void>((r) => hostService.listen(0, '0.0.0.0', r));
  t.teardown(() => hostService.close());
  const hostServicePort = (hostService.address() as net.AddressInfo).port;
  const hostAddress = sh('hostname', ['-I']).trim().split(/\s+/)[0]!;

  const { ca, server, call, ingressPort, lookup, open } = await startTlsStack(t, HOST, { OMEGA_LOCAL_POOL_SIZE: 'node=0,python=0', OMEGA_TEMPLATES: 'node,python' });

  const create = async (template: string) => {
    const res = await call('POST', '/v1/sandboxes', { template, idleSeconds: 3600 });
    if (res.status !== 201) throw new Error(`create: ${res.status} ${JSON.stringify(res.body)}`);
    const [record] = await server.store.getMany([res.body.id]);
    return { ...(res.body as { id: string; url: string; token: string }), containerId: record!.containerId! };
  };
  // The attacker runs Python (ctypes reaches ptrace); the neighbour is a node sandbox.
  const a = await create('python');
  const b = await create('node');
  const ca1 = await open(a.url, a.token);
  const cb = await open(b.url, b.token);
  t.teardown(() => Promise.all([ca1.close(), cb.close()]));
  /** Run a shell script as user code in sandbox `c`; its stdout and stderr together, trimmed. */
  const run = async (c: TestClient, script: string, opts: { timeoutMs?: number; interactive?: boolean } = {}) => {
    const r = await c.runToEnd({ command: 'sh', args: ['-c', `exec 2>&1\n${script}`], ...opts }, 120_000);
    return { out: r.stdout.trim(), exit: r.exit };
  };
  const containerIp = (id: string) => sh('docker', ['inspect', '--format', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', id]).trim();
  const gateway = sh('docker', ['network', 'inspect', '--format', '{{range .IPAM.Config}}{{.Gateway}}{{end}}', 'omega-sandboxes']).trim();
  const rows: Row[] = [];
  const row = (t: Test, r: Row) => {
    rows.push(r);
    t.ok(r.contained, `${r.attack}: ${r.expected} (got: ${r.got})`);
  };

  t.test('the network: other sandboxes, the host, the metadata address, the control plane', async (t) => {
    const targets: Array<[string, string, number]> = [
      ['reach another sandbox by its bridge address', containerIp(b.containerId), 8080],
      ['reach the host at the bridge gateway (its services)', gateway, hostServicePort],
      ['reach the host at its own address', hostAddress, hostServicePort],
      ['reach the host\'s ingress from inside', hostAddress, ingressPort],
      ['reach the metadata address 169.254.169.254', other.metadata, other.port],
      ['reach the control plane on a private address', other.ctl, other.port],
    ];
    const { out } = await run(ca1, `node -e '${CONNECT_PROBE.replace(/'/g, `'"'"'`)}' '${JSON.stringify(targets.map(([, h, p]) => [h, p]))}'`);
    const got = JSON.parse(out) as string[];
    targets.forEach(([attack, h, p], i) => row(t, { attack: `${attack} (${h}:${p})`, expected: 'refused', got: got[i]!, contained: got[i] !== 'open' && got[i] !== 'TIMEOUT' }));
    // The control: the same machine's addresses are open from Docker's default bridge, so "refused" is the firewall's doing.
    const control = JSON.parse(sh('docker', ['run', '--rm', '--network', 'bridge', '--entrypoint', 'node', 'omega/sandbox-node:latest', '-e', CONNECT_PROBE, JSON.stringify([[other.ctl, other.port], [other.metadata, other.port], [hostAddress, hostServicePort]])]));
    t.same(control, ['open', 'open', 'open'], 'outside Omega\'s network the same addresses answer');
  });

  t.test('another sandbox\'s worker without its token', async (t) => {
    const refused = await open(b.url, null).then(() => 'connected', (err: Error) => err.message);
    row(t, { attack: 'open the neighbour\'s agent through the ingress without a token', expected: '401', got: refused, contained: /401/.test(refused) });
    const ports = JSON.parse(sh('docker', ['inspect', '--format', '{{json .NetworkSettings.Ports}}', b.containerId]));
    const published = Object.values(ports).filter(Boolean).flat().length;
    row(t, { attack: 'reach the neighbour\'s published port', expected: 'none published', got: `${published} published`, contained: published === 0 });
  });

  t.test('files: the disk past the quota, the neighbour\'s volume', async (t) => {
    const fill = await run(ca1, `dd if=/dev/zero of=/workspace/fill bs=1M count=${DISK_MB * 2}; echo exit=$?`);
    const enospc = /No space left on device/.test(fill.out);
    const neighbour = await run(cb, 'dd if=/dev/zero of=/workspace/ten bs=1M count=10 2>/dev/null && echo wrote && rm /workspace/ten');
    row(t, { attack: `fill the disk (write ${DISK_MB * 2} MiB into ${DISK_MB})`, expected: 'ENOSPC; the neighbour writes', got: `${enospc ? 'ENOSPC' : fill.out.slice(-80)}; neighbour ${neighbour.out}`, contained: enospc && neighbour.out === 'wrote' });
    await run(ca1, 'rm -f /workspace/fill');
    const secret = `secret-${randomBytes(6).toString('hex')}`;
    await run(cb, `echo mine > /workspace/${secret}`);
    const find = `find / \\( -path /proc -o -path /sys \\) -prune -o -name ${secret} -print 2>/dev/null`;
    const fromA = await run(ca1, find);
    const fromB = await run(cb, find);
    t.equal(fromB.out, `/workspace/${secret}`, 'the control: the neighbour finds its own file this way');
    row(t, { attack: 'read the neighbour\'s volume (search every mount for its file)', expected: 'not found', got: fromA.out || 'not found', contained: fromA.out === '' });
  });

  t.test('processes: fork bomb, memory bomb, a gigabyte of output', async (t) => {
    // The run then waits on its open stdin (a builtin read: no fork needed), so
    // what ends it is the time limit, which kills the bomb with it.
    const bomb = await run(ca1, 'bash -c ":(){ :|:& };:"; read line', { interactive: true, timeoutMs: 5000 });
    const forkFailed = /fork|Resource temporarily unavailable/.test(bomb.out);
    let after = '';
    for (let i = 0; i < 20 && after !== 'alive'; i++) {
      after = (await run(ca1, 'echo alive').catch(() => ({ out: 'spawn failed' }))).out;
      if (after !== 'alive') await sleep(500);
    }
    row(t, { attack: 'fork bomb', expected: 'capped by the pids limit, killed at its time limit; the sandbox recovers', got: `forks refused: ${forkFailed}, killed at the limit: ${bomb.exit.timedOut}, then ${after}`, contained: forkFailed && bomb.exit.timedOut && after === 'alive' });

    const mem = await ca1.runToEnd({ command: 'python3', args: ['-c', 'a = []\nwhile True: a.append(bytearray(16 << 20))'] }, 60_000);
    const alive = (await run(ca1, 'echo alive')).out;
    row(t, { attack: 'memory bomb', expected: 'the program is killed, the agent lives', got: `the program: ${mem.exit.signal ?? `exit ${mem.exit.exitCode}`}; agent ${alive}`, contained: mem.exit.signal === 'SIGKILL' && alive === 'alive' });

    const agentPid = (await run(ca1, 'pgrep -f \'^node /opt/omega/worker/worker.mjs\'')).out;
    const rss = async () => Number(/VmHWM:\s+(\d+)/.exec((await run(ca1, `cat /proc/${agentPid}/status`)).out)?.[1]) / 1024;
    const before = await rss();
    const starter = await open(a.url, a.token);
    const { procId } = await starter.call('proc.run', { command: 'sh', args: ['-c', 'head -c 1073741824 /dev/zero | tr "\\0" x'] });
    await starter.close();
    const started = Date.now();
    let exit: unknown = null;
    while (!exit && Date.now() - started < 120_000) {
      await sleep(500);
      exit = ((await ca1.call('proc.list', {})).processes as Array<{ procId: string; exit: unknown }>).find((p) => p.procId === procId)?.exit ?? null;
    }
    const peakMb = await rss();
    row(t, { attack: 'a gigabyte of output', expected: 'the agent\'s memory stays bounded', got: `done in ${((Date.now() - started) / 1000).toFixed(1)} s, agent peak RSS ${before.toFixed(0)} -> ${peakMb.toFixed(0)} MiB`, contained: exit !== null && peakMb < 200 });
  });

  t.test('the agent: kill it, trace it, read its memory and environment', async (t) => {
    const pid = (await run(ca1, 'pgrep -f \'^node /opt/omega/worker/worker.mjs\'')).out;
    t.match(pid, /^\d+$/, 'the agent is visible to user code (same pid namespace)');
    const kill = await run(ca1, `kill -9 ${pid}; kill -STOP ${pid}; echo exit=$?`);
    row(t, { attack: 'kill or stop the agent', expected: 'EPERM', got: kill.out.split('\n')[0]!, contained: /not permitted/.test(kill.out) });
    const trace = await run(ca1, `python3 -c "
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
r = libc.ptrace(16, ${pid}, None, None)
print(r, os.strerror(ctypes.get_errno()))"`);
    row(t, { attack: 'trace the agent (ptrace attach)', expected: 'EPERM', got: trace.out, contained: /^-1 Operation not permitted/.test(trace.out) });
    const mem = await run(ca1, `head -c 16 /proc/${pid}/mem; head -c 16 /proc/${pid}/environ`);
    row(t, { attack: 'read the agent\'s memory and environment', expected: 'EACCES', got: mem.out.replace(/\n/g, '; '), contained: (mem.out.match(/Permission denied/g) ?? []).length === 2 });
    const health = await run(ca1, 'echo agent-alive');
    t.equal(health.out, 'agent-alive', 'the agent serves on');
  });

  t.test('strangers: 500 connections and 100 wrong tokens from one address, through the ingress', async (t) => {
    const servername = new URL(a.url).hostname;
    const sockets: tls.TLSSocket[] = [];
    t.teardown(() => sockets.forEach((s) => s.destroy()));
    const closed = await Promise.all(
      Array.from({ length: 500 }, () => new Promise<boolean>((resolve) => {
        const s = tls.connect({ socket: net.connect({ host: HOST, port: ingressPort, localAddress: '127.0.0.9' }), servername, ca: ca.certPem });
        sockets.push(s);
        // A connection past the limit is reset: its close is what is counted, the error says nothing more.
        s.on('error', () => {});
        s.on('close', () => resolve(true));
        // Held: still open 5 s after its handshake (on a loaded machine 500 handshakes take a while: timed from each one's end).
        s.once('secureConnect', () => setTimeout(() => resolve(false), 5000));
        setTimeout(() => resolve(false), 60_000);
      })),
    );
    const held = closed.filter((c) => !c).length;
    const owner = await open(a.url, a.token).then(async (c) => (await c.close(), 'connected'), (err: Error) => err.message);
    row(t, { attack: '500 connections held open from one address', expected: 'at most 256 reach the agent; its owner connects', got: `${held} held, ${500 - held} closed; owner ${owner}`, contained: held <= 256 && owner === 'connected' });
    sockets.forEach((s) => s.destroy());
    await sleep(300);

    const guesser = new Agent({ localAddress: '127.0.0.9', connect: { ca: ca.certPem, lookup: lookup as any } });
    t.teardown(() => guesser.close());
    const base = a.url.replace(/^wss:/, 'https:');
    const counts: Record<number, number> = {};
    for (let i = 0; i < 100; i++) {
      const res = await request(`${base}x`, { dispatcher: guesser, headers: { authorization: `Bearer wrong-${i}-0123456789abcdef` } });
      await res.body.dump();
      counts[res.statusCode] = (counts[res.statusCode] ?? 0) + 1;
    }
    const owner2 = await open(a.url, a.token).then(async (c) => (await c.close(), 'connected'), (err: Error) => err.message);
    row(t, { attack: '100 wrong tokens from one address', expected: '20 answered 401, the rest 429; its owner connects', got: `${JSON.stringify(counts)}; owner ${owner2}`, contained: counts[401] === 20 && counts[429] === 80 && owner2 === 'connected' });
  });

  t.test('afterwards the neighbour and the host still serve; the table', async (t) => {
    const neighbour = await run(cb, 'echo serving');
    t.equal(neighbour.out, 'serving', 'the neighbour runs programs');
    const health = await call('GET', '/healthz');
    t.equal(health.status, 200, 'the master answers');
    const fresh = await create('node');
    const c = await open(fresh.url, fresh.token);
    t.equal((await run(c, 'echo new')).out, 'new', 'the host takes a new sandbox');
    await c.close();
    const table = ['| attack | expected | got |', '|---|---|---|', ...rows.map((r) => `| ${r.attack} | ${r.expected} | ${r.contained ? '' : '**NOT CONTAINED** '}${r.got.replace(/\|/g, '\\|')} |`)].join('\n');
    t.comment(`\n${table}`);
    t.equal(rows.filter((r) => !r.contained).length, 0, `all ${rows.length} attacks contained`);
  });
}
