import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { Test } from 'tap';

const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8' });

/**
 * "Another machine" for the isolation tests: a network namespace of the
 * test's own behind a veth pair, with an HTTP listener on every address it
 * holds. Containers cannot reach the host's loopback anyway, so 127/8 would
 * prove nothing; these addresses are routed as a real neighbour's would be.
 *
 *   ctl       a private address (10.x.y.2): the control plane
 *   public    198.51.100.77 (TEST-NET-2): an address outside every blocked range, the internet
 *   metadata  169.254.169.254: the cloud metadata service
 *
 * All listen on `port`. Removed at teardown.
 */
export interface OtherMachine {
  /** The namespace's name: `ip netns exec <ns> ...` runs a server there. */
  ns: string;
  ctl: string;
  public: string;
  metadata: string;
  port: number;
}

export function otherMachine(t: Test, port = 18099): OtherMachine {
  const ns = `omega-t${randomBytes(3).toString('hex')}`;
  const veth = `vo${randomBytes(3).toString('hex')}`;
  const subnet = `10.${200 + Math.floor(Math.random() * 50)}.${Math.floor(Math.random() * 250)}`;
  const m: OtherMachine = { ns, ctl: `${subnet}.2`, public: '198.51.100.77', metadata: '169.254.169.254', port };
  sh('ip', ['netns', 'add', ns]);
  t.teardown(() => execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' }));
  sh('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', `${veth}p`]);
  sh('ip', ['link', 'set', `${veth}p`, 'netns', ns]);
  sh('ip', ['addr', 'add', `${subnet}.1/30`, 'dev', veth]);
  sh('ip', ['link', 'set', veth, 'up']);
  const inNs = (...args: string[]) => sh('ip', ['netns', 'exec', ns, ...args]);
  inNs('ip', 'addr', 'add', `${m.ctl}/30`, 'dev', `${veth}p`);
  inNs('ip', 'link', 'set', `${veth}p`, 'up');
  inNs('ip', 'link', 'set', 'lo', 'up');
  inNs('ip', 'route', 'add', 'default', 'via', `${subnet}.1`);
  for (const a of [m.public, m.metadata]) {
    inNs('ip', 'addr', 'add', `${a}/32`, 'dev', `${veth}p`);
    sh('ip', ['route', 'add', `${a}/32`, 'dev', veth]);
    t.teardown(() => execFileSync('ip', ['route', 'del', `${a}/32`], { stdio: 'ignore' }));
  }
  const listener = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', `require('http').createServer((q, r) => r.end('other machine')).listen(${port}, '0.0.0.0')`], { stdio: 'ignore' });
  t.teardown(() => listener.kill());
  // Forwarding to the namespace, as between machines (the host routes for its containers anyway).
  sh('sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
  return m;
}

/**
 * A node script, run as user code, that tries each [host, port] and prints
 * what it got as JSON: "open" or the error code ("TIMEOUT" after 3 s).
 */
export const CONNECT_PROBE = `
  const net = require('net');
  const targets = JSON.parse(process.argv[1]);
  Promise.all(targets.map(([host, port]) => new Promise((done) => {
    const s = net.connect({ host, port, timeout: 3000 });
    s.on('connect', () => { s.destroy(); done('open'); });
    s.on('timeout', () => { s.destroy(); done('TIMEOUT'); });
    s.on('error', (e) => done(e.code));
  }))).then((r) => {
    // Exits at once: a connect left pending in the kernel (gVisor's netstack retrying a dropped SYN) must not hold the process.
    process.stdout.write(JSON.stringify(r) + '\\n', () => process.exit(0));
  });`;

/**
 * git daemon serving the bare repositories under `baseDir` on the other
 * machine's internet address (sandboxes reach neither the host nor private
 * addresses), stopped at teardown; resolves once `repo` answers ls-remote,
 * with its git:// URL.
 */
export async function serveGit(t: Test, m: OtherMachine, baseDir: string, repo: string): Promise<string> {
  const daemon = spawn('ip', ['netns', 'exec', m.ns, 'git', 'daemon', '--reuseaddr', '--export-all', `--base-path=${baseDir}`, `--listen=${m.public}`, '--port=9418', baseDir], { stdio: 'ignore' });
  t.teardown(() => daemon.kill());
  const url = `git://${m.public}:9418/${repo}`;
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      execFileSync('git', ['ls-remote', url], { stdio: 'ignore', timeout: 2000 });
      return url;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`git daemon did not serve ${url} within 10 s`, { cause: err });
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
