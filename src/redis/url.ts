import { isIP } from 'node:net';

/**
 * Omega's Redis URLs, taken apart in one place for everything that needs
 * their parts (the connection, `omega up`'s own redis-server, the ec2
 * provider's check that a remote host can reach them):
 *
 *   redis://[[user]:password@]host[:port][/db]            one server (rediss:// for TLS)
 *   redis+sentinel://[[user]:password@]h1:p1,h2:p2/primaryName[?db=N]
 *   redis+cluster://[[user]:password@]h1:p1,h2:p2
 *
 * The authority is split by hand: WHATWG URL refuses a comma list of hosts.
 */

export const REDIS_SCHEMES = ['redis:', 'rediss:', 'redis+sentinel:', 'redis+cluster:'] as const;
export type RedisScheme = (typeof REDIS_SCHEMES)[number];

export interface RedisHost {
  /** A name or an address; an IPv6 address without its brackets. */
  host: string;
  port: number;
}

export interface RedisUrl {
  scheme: RedisScheme;
  /** The server, the sentinels, or the cluster's seed nodes: one for redis:// and rediss://. */
  hosts: RedisHost[];
  username: string | undefined;
  password: string | undefined;
  db: number;
  /** redis+sentinel: the primary's name, as the sentinels know it. */
  sentinelName: string | undefined;
  tls: boolean;
}

export const DEFAULT_REDIS_PORT = 6379;

/** Throws an Error whose message completes "OMEGA_REDIS_URL: ..."; it never repeats the password. */
export function parseRedisUrl(raw: string): RedisUrl {
  const m = /^([a-z][a-z0-9+.-]*:)\/\/(?:([^/?#]*)@)?([^/?#]*)([^?#]*)(?:\?([^#]*))?$/i.exec(raw.trim());
  if (!m) throw new Error('must be a URL such as redis://127.0.0.1:6379');
  const scheme = m[1]!.toLowerCase() as RedisScheme;
  if (!REDIS_SCHEMES.includes(scheme)) throw new Error(`scheme must be one of ${REDIS_SCHEMES.join(' ')}`);
  const { username, password } = credentials(m[2]);
  const hosts = m[3]!.split(',').map(hostPort);
  const path = m[4]!;
  const query = new URLSearchParams(m[5] ?? '');
  const base = { scheme, hosts, username, password, db: 0, sentinelName: undefined, tls: scheme === 'rediss:' };
  switch (scheme) {
    case 'redis:':
    case 'rediss:':
      if (hosts.length !== 1) throw new Error(`a ${scheme}// URL names one server; redis+sentinel:// and redis+cluster:// take several`);
      if (path !== '' && path !== '/' && !/^\/\d{1,5}$/.test(path)) throw new Error('the path must be a database number, such as /0');
      return { ...base, db: path.length > 1 ? Number(path.slice(1)) : 0 };
    case 'redis+sentinel:': {
      const name = decode(path.slice(1), 'the primary name');
      if (!name || name.includes('/')) throw new Error('a redis+sentinel URL must name the primary: redis+sentinel://h:26379/mymaster');
      const db = query.get('db') ?? '0';
      if (!/^\d{1,5}$/.test(db)) throw new Error('?db= must be a database number');
      return { ...base, sentinelName: name, db: Number(db) };
    }
    case 'redis+cluster:':
      if (path !== '' && path !== '/') throw new Error('a redis+cluster URL has no path (a cluster has one database)');
      return base;
  }
}

function credentials(userinfo: string | undefined): { username: string | undefined; password: string | undefined } {
  if (userinfo === undefined) return { username: undefined, password: undefined };
  const i = userinfo.indexOf(':');
  const user = i < 0 ? userinfo : userinfo.slice(0, i);
  const pass = i < 0 ? '' : userinfo.slice(i + 1);
  return { username: decode(user, 'the user name') || undefined, password: decode(pass, 'the password') || undefined };
}

function decode(text: string, what: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new Error(`${what} is not valid percent-encoding (write % as %25)`);
  }
}

function hostPort(text: string): RedisHost {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+))(?::(\d{1,5}))?$/.exec(text);
  if (!m) throw new Error(text ? `"${text}" is not host:port` : 'a host is missing');
  if (m[1] !== undefined && isIP(m[1]) !== 6) throw new Error(`[${m[1]}] is not an IPv6 address`);
  const port = m[3] === undefined ? DEFAULT_REDIS_PORT : Number(m[3]);
  if (port < 1 || port > 65535) throw new Error(`port ${port} is not between 1 and 65535`);
  return { host: m[1] ?? m[2]!, port };
}

/** Whether a host of a Redis URL is this machine's loopback, which no other machine reaches. */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
}
