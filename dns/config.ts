import { isIP } from 'node:net';
import { commonSettings, devSetting, tokenSetting } from '../src/config/common.js';
import { ConfigError, hostPort, int, loadSettings, zoneName, type LoadOptions, type Setting, type SettingsValues } from '../src/config/settings.js';
import { normalizeName } from '../src/protocol/dns.js';

export interface NsSpec {
  /** As written: relative to the zone unless it ends with a dot. */
  name: string;
  addresses: string[];
}

/** `ns1=127.0.0.1,ns2=127.0.0.2+::1,ns.example.net.`: names with optional glue addresses. */
function nameservers(raw: string): NsSpec[] {
  const out = raw.split(',').map((item) => {
    const [name, addrs] = item.trim().split('=') as [string, string | undefined];
    if (!name) throw new Error('a name server entry is empty');
    const addresses = addrs ? addrs.split('+').map((a) => a.trim()) : [];
    for (const a of addresses) if (!isIP(a)) throw new Error(`${a} is not an IP address`);
    return { name: name.toLowerCase(), addresses };
  });
  if (out.length === 0) throw new Error('at least one name server is needed');
  return out;
}

export const dnsSettings = {
  ...commonSettings,
  zone: { env: 'OMEGA_ZONE', flag: 'zone', description: 'The zone served (sandbox names are <id>.<zone>)', default: 'sandbox.test', parse: zoneName } satisfies Setting<string>,
  listen: {
    env: 'OMEGA_DNS_LISTEN',
    flag: 'listen',
    description: 'Address for DNS over UDP and TCP',
    default: { host: '127.0.0.1', port: 5353 },
    defaultText: '127.0.0.1:5353',
    parse: hostPort(),
  },
  apiListen: {
    env: 'OMEGA_DNS_API_LISTEN',
    flag: 'api-listen',
    description: 'Address of the HTTP record API, /healthz and /metrics',
    default: { host: '127.0.0.1', port: 8053 },
    defaultText: '127.0.0.1:8053',
    parse: hostPort(),
  },
  token: tokenSetting('OMEGA_DNS_TOKEN', 'the record API'),
  dev: devSetting('the record API'),
  nameservers: {
    env: 'OMEGA_DNS_NS',
    flag: 'ns',
    description: 'Apex NS names, comma-separated, each with optional glue: name=ip[+ip]; relative names are in the zone',
    default: [{ name: 'ns1', addresses: ['127.0.0.1'] }] as NsSpec[],
    defaultText: 'ns1=127.0.0.1',
    parse: nameservers,
  } satisfies Setting<NsSpec[]>,
  apiName: {
    env: 'OMEGA_API_NAME',
    flag: 'api-name',
    description: "The master's public name (relative names are in the zone); answered with OMEGA_API_ADDRESSES",
    default: 'api',
    parse: (raw: string) => raw.trim().toLowerCase(),
  } satisfies Setting<string>,
  apiAddresses: {
    env: 'OMEGA_API_ADDRESSES',
    flag: 'api-addresses',
    description: "The master's public addresses, comma-separated: the API name answers them (none: the name is not served)",
    default: [] as string[],
    defaultText: '(none)',
    parse: (raw: string) => {
      const list = raw.split(',').map((a) => a.trim()).filter(Boolean);
      for (const a of list) if (!isIP(a)) throw new Error(`${a} is not an IP address`);
      return list;
    },
  } satisfies Setting<string[]>,
  soaRname: {
    env: 'OMEGA_DNS_SOA_RNAME',
    flag: 'soa-rname',
    description: 'SOA RNAME (the zone admin\'s mailbox as a name); relative names are in the zone',
    default: 'hostmaster',
    parse: (raw: string) => raw.trim().toLowerCase(),
  } satisfies Setting<string>,
  ttl: { env: 'OMEGA_DNS_TTL', flag: 'ttl', description: 'TTL in seconds of records written without one, and of the SOA', default: 60, parse: int(0, 604800) },
  negativeTtl: {
    env: 'OMEGA_DNS_NEGATIVE_TTL',
    flag: 'negative-ttl',
    description: 'Seconds resolvers may cache "no such name" (SOA MINIMUM); short, as sandbox names are asked for just before they exist',
    default: 5,
    parse: int(0, 86400),
  },
  rrlPerSecond: {
    env: 'OMEGA_DNS_RRL_PER_SECOND',
    flag: 'rrl-per-second',
    description: 'UDP answers per second to one source network before rate limiting; 0 turns it off',
    default: 0,
    parse: int(0, 1_000_000),
  },
  rrlSlip: {
    env: 'OMEGA_DNS_RRL_SLIP',
    flag: 'rrl-slip',
    description: 'Of rate-limited answers, every Nth is sent truncated (TC) so real clients retry over TCP; 0 drops all',
    default: 2,
    parse: int(0, 10),
  },
  maxUdpPayload: {
    env: 'OMEGA_DNS_MAX_UDP_PAYLOAD',
    flag: 'max-udp-payload',
    description: 'Largest UDP answer sent and advertised in EDNS (1232 avoids IP fragmentation)',
    default: 1232,
    parse: int(512, 4096),
  },
  tcpIdleTimeoutMs: {
    env: 'OMEGA_DNS_TCP_IDLE_TIMEOUT_MS',
    flag: 'tcp-idle-timeout-ms',
    description: 'Close a TCP connection idle this long (RFC 7766 §6.2.3)',
    default: 10_000,
    parse: int(100, 600_000),
  },
  tcpMaxConnections: {
    env: 'OMEGA_DNS_TCP_MAX_CONNECTIONS',
    flag: 'tcp-max-connections',
    description: 'Most concurrent TCP connections',
    default: 1000,
    parse: int(1, 100_000),
  },
  snapshotFile: {
    env: 'OMEGA_DNS_SNAPSHOT_FILE',
    flag: 'snapshot-file',
    description:
      'A file where the server keeps a copy of its zone, to answer from at once after a restart while it catches up with Redis (none: a start answers SERVFAIL until its load from Redis is done)',
    default: '',
    defaultText: '(none)',
    parse: (raw: string) => raw.trim(),
  } satisfies Setting<string>,
  snapshotIntervalMs: {
    env: 'OMEGA_DNS_SNAPSHOT_INTERVAL_MS',
    flag: 'snapshot-interval-ms',
    description: 'How often the snapshot file is rewritten when the zone changed (and at every stop); a crash loses at most this much, which the feed usually still holds',
    default: 10_000,
    parse: int(1000, 3_600_000),
  },
  cacheEntries: {
    env: 'OMEGA_DNS_CACHE_ENTRIES',
    flag: 'cache-entries',
    description: 'Encoded answers kept for re-use (emptied on every zone change)',
    default: 100_000,
    parse: int(0, 10_000_000),
  },
};

export type DnsSettings = SettingsValues<typeof dnsSettings>;

export interface DnsConfig extends Omit<DnsSettings, 'nameservers' | 'soaRname' | 'apiName'> {
  /** Absolute names, lower case. */
  nameservers: Array<{ name: string; addresses: string[] }>;
  soaRname: string;
  /** Absolute, lower case. */
  apiName: string;
}

/** Resolve and cross-check the DNS server's settings; throws ConfigError listing every problem. */
export function loadConfig(opts: LoadOptions): DnsConfig {
  const s = loadSettings(dnsSettings, opts);
  const abs = (n: string) => (n.endsWith('.') ? n.slice(0, -1) : `${normalizeName(n, s.zone)}.${s.zone}`);
  const problems: string[] = [];
  let nameservers: DnsConfig['nameservers'] = [];
  try {
    nameservers = s.nameservers.map((ns) => ({ name: abs(ns.name), addresses: ns.addresses }));
  } catch (err) {
    problems.push(`OMEGA_DNS_NS / --ns: ${(err as Error).message}`);
  }
  for (const ns of nameservers) {
    if (ns.name.endsWith(`.${s.zone}`) && ns.addresses.length === 0) {
      problems.push(`OMEGA_DNS_NS / --ns: ${ns.name} is inside the zone and needs a glue address (name=ip)`);
    }
  }
  let soaRname = '';
  try {
    soaRname = abs(s.soaRname);
  } catch (err) {
    problems.push(`OMEGA_DNS_SOA_RNAME / --soa-rname: ${(err as Error).message}`);
  }
  let apiName = '';
  try {
    apiName = abs(s.apiName);
  } catch (err) {
    problems.push(`OMEGA_API_NAME / --api-name: ${(err as Error).message}`);
  }
  if (!s.token && !s.dev) {
    problems.push('OMEGA_DNS_TOKEN / --token: required to serve the record API (or run with --dev / OMEGA_DEV=1 on a development machine)');
  }
  if (problems.length) throw new ConfigError(problems);
  return Object.freeze({ ...s, nameservers, soaRname, apiName });
}
