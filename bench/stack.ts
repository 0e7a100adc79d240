/**
 * A DNS server, one manager and one master in this process on one Redis,
 * with fresh tokens, for the benches that drive the master's API
 * (bench/allocate.ts, bench/failover.ts). `stop()` stops them in reverse.
 */
import { randomBytes } from 'node:crypto';
import { loadConfig as loadDnsConfig } from '../dns/config.js';
import { DnsServer } from '../dns/server.js';
import { loadConfig as loadManagerConfig } from '../manager/config.js';
import { ManagerServer } from '../manager/server.js';
import { loadConfig as loadMasterConfig } from '../master/config.js';
import { MasterServer } from '../master/server.js';
import { createLogger } from '../src/log.js';

export interface BenchStack {
  prefix: string;
  dns: DnsServer;
  manager: ManagerServer;
  master: MasterServer;
  apiToken: string;
  dnsToken: string;
  /** Another host: a manager on the same Redis prefix (stopped with the stack unless stopped before). */
  addManager(hostId: string, env?: Record<string, string>): Promise<ManagerServer>;
  stop(): Promise<void>;
}

const token = () => randomBytes(18).toString('base64url');
const silent = (name: string) => createLogger(name, { level: process.env.BENCH_LOG_LEVEL ?? 'silent' });

export async function startStack(redisUrl: string, env: { manager?: Record<string, string>; master?: Record<string, string> } = {}): Promise<BenchStack> {
  const prefix = `bench${randomBytes(3).toString('hex')}`;
  const [dnsToken, managerToken, apiToken] = [token(), token(), token()];
  const stops: Array<() => Promise<void>> = [];
  const stop = async () => {
    for (const s of stops.reverse()) await s().catch((err: unknown) => console.error('stopping a bench server failed:', err));
  };
  try {
    const dns = new DnsServer(
      loadDnsConfig({ env: { OMEGA_REDIS_URL: redisUrl, OMEGA_REDIS_PREFIX: prefix, OMEGA_DNS_LISTEN: '127.0.0.1:0', OMEGA_DNS_API_LISTEN: '127.0.0.1:0', OMEGA_DNS_TOKEN: dnsToken } }),
      silent('dns'),
    );
    await dns.start();
    stops.push(() => dns.stop());
    const addManager = async (hostId: string, extra: Record<string, string> = {}) => {
      const m = new ManagerServer(
        loadManagerConfig({
          env: {
            OMEGA_REDIS_URL: redisUrl,
            OMEGA_REDIS_PREFIX: prefix,
            OMEGA_HOST_IP: '127.0.0.1',
            OMEGA_HOST_ID: hostId,
            OMEGA_MANAGER_LISTEN: '127.0.0.1:0',
            OMEGA_MANAGER_TOKEN: managerToken,
            ...env.manager,
            ...extra,
          },
        }),
        silent('manager'),
      );
      await m.start();
      stops.push(() => m.stop());
      return m;
    };
    const manager = await addManager('bench-host');
    const master = new MasterServer(
      loadMasterConfig({
        env: {
          OMEGA_REDIS_URL: redisUrl,
          OMEGA_REDIS_PREFIX: prefix,
          OMEGA_MASTER_LISTEN: '127.0.0.1:0',
          OMEGA_API_TOKEN: apiToken,
          OMEGA_DNS_API_URL: dns.addresses.apiUrl,
          OMEGA_DNS_TOKEN: dnsToken,
          OMEGA_MANAGER_TOKEN: managerToken,
          ...env.master,
        },
      }),
      silent('master'),
    );
    await master.start();
    stops.push(() => master.stop());
    return { prefix, dns, manager, master, apiToken, dnsToken, addManager, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
