import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { isIPv4 } from 'node:net';
import { promisify } from 'node:util';
import type Docker from 'dockerode';
import { OmegaError } from '../../src/errors.js';
import type { Logger } from '../../src/log.js';
import { dockerError, LABELS } from './docker.js';

const run = promisify(execFile);

/**
 * Where sandboxes may not connect: the host's own addresses (every one: the
 * INPUT rule), link-local (the cloud metadata service), the private and
 * shared ranges, loopback. The control plane is on one of these in any sane
 * network; OMEGA_SANDBOX_BLOCKED_CIDRS adds any other address it has.
 */
export const DEFAULT_BLOCKED_CIDRS = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', '169.254.0.0/16', '127.0.0.0/8', '0.0.0.0/8', '192.0.0.0/24', '198.18.0.0/15', '224.0.0.0/4', '240.0.0.0/4'];

export interface SandboxNetworkOptions {
  /** The Docker network every sandbox joins. */
  name: string;
  /** Its bridge interface on the host: the rules match on it. */
  bridge: string;
  blockedCidrs: string[];
  /** Resolvers the sandboxes' DNS goes to (Docker's embedded resolver forwards to the host's): let through on port 53. */
  resolvers: string[];
}

/** The name servers of /etc/resolv.conf (IPv4; Docker's embedded resolver forwards there). */
export function hostResolvers(path = '/etc/resolv.conf'): string[] {
  try {
    return readFileSync(path, 'utf8')
      .split('\n')
      .map((l) => /^\s*nameserver\s+(\S+)/.exec(l)?.[1])
      .filter((a): a is string => !!a && isIPv4(a) && !a.startsWith('127.'));
  } catch {
    return [];
  }
}

const CHAIN_FORWARD = 'OMEGA-SANDBOX';
const CHAIN_INPUT = 'OMEGA-SANDBOX-IN';
/**
 * The sandboxes without network (internet: false), a rule each: never
 * replaced whole, for several managers on one machine (omega up, tests)
 * share it, and one's rewrite must not give another's sandboxes their
 * network back. Each manager adds and removes only its own addresses.
 */
const CHAIN_OFFLINE = 'OMEGA-SANDBOX-OFF';
const REJECT = ['-j', 'REJECT', '--reject-with', 'icmp-admin-prohibited'];

/**
 * The network sandboxes live on, and the host firewall around it.
 *
 *  - A bridge network of Omega's own with inter-container traffic off
 *    (`enable_icc=false`): a sandbox cannot reach another by its address.
 *  - iptables, on traffic that comes in from that bridge only:
 *    - forwarded (DOCKER-USER, which Docker keeps and jumps to first): to the
 *      blocked ranges it is refused, except DNS to the host's resolvers;
 *      replies to connections others opened pass (the ingress's and the
 *      manager's to the worker);
 *    - to the host itself (INPUT): refused, whatever the address, except
 *      those replies.
 *
 * Our chains are replaced whole in one `iptables-restore --noflush` (no
 * moment without rules) but for the offline one (a rule per address, added
 * and removed one by one), and the jumps to them added only when missing, so
 * ensure() is idempotent and safe to repeat: the reconciler repeats it,
 * which puts the rules back after a Docker restart or a flush. The rules
 * and the network stay when the manager stops: its sandboxes keep running.
 */
export class SandboxNetwork {
  /** Addresses of sandboxes created with `internet: false`: refused everything but replies. */
  private readonly offline = new Set<string>();
  /** Rule writes one at a time, in order. */
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly docker: Docker,
    private readonly opts: SandboxNetworkOptions,
    private readonly log: Logger,
  ) {}

  get name(): string {
    return this.opts.name;
  }

  /**
   * `offline`: addresses that have no network, from the host's container
   * table (after a manager restart it is the only record of them). Added to
   * what is known, never taking one away: a create's address is in the set
   * before its row is in the table, and only its delete gives it back.
   */
  async ensure(offline?: Iterable<string>): Promise<void> {
    for (const ip of offline ?? []) this.offline.add(ip);
    await this.ensureNetwork();
    await this.serialized(() => this.ensureFirewall());
  }

  /** Take the network away from one sandbox (internet: false), or give it back; applied before this resolves. */
  async setOffline(address: string, off: boolean): Promise<void> {
    if (off === this.offline.has(address)) return;
    if (off) this.offline.add(address);
    else this.offline.delete(address);
    await this.serialized(async () => {
      if (off) await this.ensureFirewall();
      else await removeRule(CHAIN_OFFLINE, offlineRule(address));
    });
  }

  private serialized(write: () => Promise<void>): Promise<void> {
    const next = this.writing.then(write, write);
    // The chain only orders the writes: each one's failure reaches its own caller through `next`.
    this.writing = next.then(
      () => undefined,
      () => undefined,
    );
    return next;
  }

  private async ensureNetwork(): Promise<void> {
    try {
      await this.docker.getNetwork(this.opts.name).inspect();
      return;
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode !== 404) throw dockerError(err, `inspecting network ${this.opts.name}`);
    }
    try {
      await this.docker.createNetwork({
        Name: this.opts.name,
        Driver: 'bridge',
        CheckDuplicate: true,
        Labels: { [LABELS.managed]: 'true' },
        Options: { 'com.docker.network.bridge.enable_icc': 'false', 'com.docker.network.bridge.name': this.opts.bridge },
      });
      this.log.info({ network: this.opts.name, bridge: this.opts.bridge }, 'sandbox network created (inter-container traffic off)');
    } catch (err) {
      // Another manager on this engine made it meanwhile.
      if ((err as { statusCode?: number }).statusCode !== 409) throw dockerError(err, `creating network ${this.opts.name}`);
    }
  }

  /** The iptables-restore input that replaces our two chains. */
  rules(): string {
    const { bridge, blockedCidrs, resolvers } = this.opts;
    const reject = '-j REJECT --reject-with icmp-admin-prohibited';
    const lines = ['*filter', `:${CHAIN_FORWARD} - [0:0]`, `:${CHAIN_INPUT} - [0:0]`];
    lines.push(`-A ${CHAIN_FORWARD} -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN`);
    // No network at all for those (not even DNS): replies to what the host opens still pass, above.
    lines.push(`-A ${CHAIN_FORWARD} -j ${CHAIN_OFFLINE}`);
    for (const r of resolvers) for (const proto of ['udp', 'tcp']) lines.push(`-A ${CHAIN_FORWARD} -d ${r}/32 -p ${proto} --dport 53 -j RETURN`);
    // Sandbox to sandbox through the bridge itself (ICC off already drops it; this says so in our own rules too).
    lines.push(`-A ${CHAIN_FORWARD} -o ${bridge} ${reject}`);
    for (const cidr of blockedCidrs) lines.push(`-A ${CHAIN_FORWARD} -d ${cidr} ${reject}`);
    lines.push(`-A ${CHAIN_FORWARD} -j RETURN`);
    lines.push(`-A ${CHAIN_INPUT} -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN`);
    lines.push(`-A ${CHAIN_INPUT} -p tcp ${reject.replace('icmp-admin-prohibited', 'tcp-reset')}`);
    lines.push(`-A ${CHAIN_INPUT} ${reject}`);
    lines.push('COMMIT', '');
    return lines.join('\n');
  }

  private async ensureFirewall(): Promise<void> {
    const { bridge } = this.opts;
    try {
      // Before the rules that jump to it; never flushed (another manager's addresses are in it too).
      await iptables(['-N', CHAIN_OFFLINE]).catch(async (err: unknown) => {
        if (!(await iptables(['-S', CHAIN_OFFLINE]).then(() => true, () => false))) throw err;
      });
      for (const ip of [...this.offline].sort()) await ensureRule(CHAIN_OFFLINE, offlineRule(ip));
      await restore(this.rules());
      await ensureJump('DOCKER-USER', ['-i', bridge, '-j', CHAIN_FORWARD]);
      await ensureJump('INPUT', ['-i', bridge, '-j', CHAIN_INPUT]);
    } catch (err) {
      throw new OmegaError('INTERNAL', `installing the sandbox firewall failed (the manager needs CAP_NET_ADMIN and iptables): ${(err as Error).message}`, { cause: err });
    }
  }
}

async function iptables(args: string[]): Promise<void> {
  // -w: wait for the xtables lock (Docker holds it while it writes its own rules).
  await run('iptables', ['-w', '5', ...args]);
}

async function restore(input: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = execFile('iptables-restore', ['--noflush', '-w', '5'], (err, _out, stderr) => (err ? reject(new Error(`${err.message} ${stderr}`.trim())) : resolve()));
    child.stdin!.end(input);
  });
}

function offlineRule(address: string): string[] {
  return ['-s', `${address}/32`, ...REJECT];
}

/** Append `spec` to `chain` unless it is there (-C checks). */
async function ensureRule(chain: string, spec: string[]): Promise<void> {
  if (await iptables(['-C', chain, ...spec]).then(() => true, () => false)) return;
  await iptables(['-A', chain, ...spec]);
}

/** Delete `spec` from `chain`, every copy of it; none there is fine. */
async function removeRule(chain: string, spec: string[]): Promise<void> {
  while (await iptables(['-D', chain, ...spec]).then(() => true, () => false));
}

/** Insert `spec` first in `chain` unless it is there (-C checks). */
async function ensureJump(chain: string, spec: string[]): Promise<void> {
  if (await iptables(['-C', chain, ...spec]).then(() => true, () => false)) return;
  await iptables(['-I', chain, '1', ...spec]);
}
