import { execFile } from 'node:child_process';
import dgram from 'node:dgram';
import { Resolver } from 'node:dns';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { Packet } from 'dns2';
import type { Test } from 'tap';
import { loadConfig } from '../../dns/config.js';
import { DnsServer } from '../../dns/server.js';
import { createLogger } from '../../src/log.js';
import { apiCaller, type Call } from './http.js';
import type { RedisUnderTest } from './redis.js';

export const TOKEN = 'test-token-0123456789abcdef';

export interface StartedDns {
  server: DnsServer;
  port: number;
  api: string;
  prefix: string;
  /** fetch against the record API with the token. */
  call: Call;
}

/** A DnsServer on free ports, its own Redis key prefix (unless given), stopped at teardown. */
export async function startDns(t: Test, redis: RedisUnderTest, env: Record<string, string> = {}): Promise<StartedDns> {
  const prefix = env.OMEGA_REDIS_PREFIX ?? `t${randomBytes(4).toString('hex')}`;
  const config = loadConfig({
    env: {
      OMEGA_REDIS_URL: redis.url,
      OMEGA_REDIS_PREFIX: prefix,
      OMEGA_DNS_LISTEN: '127.0.0.1:0',
      OMEGA_DNS_API_LISTEN: '127.0.0.1:0',
      OMEGA_DNS_TOKEN: TOKEN,
      ...env,
    },
  });
  const server = new DnsServer(config, createLogger('dns', { level: process.env.TEST_LOG_LEVEL ?? 'silent' }));
  t.teardown(() => server.stop());
  await server.start();
  const { port, apiUrl } = server.addresses;
  return {
    server,
    port,
    api: apiUrl,
    prefix,
    call: apiCaller(apiUrl, TOKEN),
  };
}

export interface DigResult {
  status: string;
  flags: string[];
  answer: string[];
  authority: string[];
  additional: string[];
  question: string[];
  raw: string;
}

/** Run the real `dig` against the server and parse its sections. */
export async function dig(port: number, args: string[]): Promise<DigResult> {
  const { stdout } = await promisify(execFile)('dig', ['@127.0.0.1', '-p', String(port), '+norec', '+time=2', '+tries=1', ...args]);
  const status = /status: (\w+)/.exec(stdout)?.[1] ?? 'NONE';
  const flags = (/;; flags: ([^;]*);/.exec(stdout)?.[1] ?? '').trim().split(/\s+/).filter(Boolean);
  const section = (name: string) => {
    const m = new RegExp(`;; ${name} SECTION:\\n([\\s\\S]*?)(?:\\n\\n|$)`).exec(stdout);
    return m ? m[1]!.split('\n').filter((l) => l && !l.startsWith(';;')) : [];
  };
  return {
    status,
    flags,
    question: section('QUESTION'),
    answer: section('ANSWER'),
    authority: section('AUTHORITY'),
    additional: section('ADDITIONAL'),
    raw: stdout,
  };
}

/** Send raw octets over UDP; resolve with the reply, or null after `timeoutMs`. */
export function udpExchange(port: number, msg: Buffer, timeoutMs = 500): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    const timer = setTimeout(() => {
      s.close();
      resolve(null);
    }, timeoutMs);
    s.on('message', (reply) => {
      clearTimeout(timer);
      s.close();
      resolve(reply);
    });
    s.send(msg, port, '127.0.0.1');
  });
}

/** A query built with dns2's encoder, optionally with an OPT record. */
export function buildQuery(name: string, type: keyof typeof Packet.TYPE, opts: { id?: number; edns?: { udpSize?: number; version?: number } } = {}): Buffer {
  const p = new Packet();
  p.header.id = opts.id ?? 0x1234;
  p.header.rd = 1;
  p.questions.push({ name, type: Packet.TYPE[type], class: Packet.CLASS.IN } as never);
  if (opts.edns) {
    p.additionals.push({
      ...Packet.Resource.EDNS([], { udpPayloadSize: opts.edns.udpSize ?? 1232, version: opts.edns.version ?? 0 }),
      name: '',
    } as never);
  }
  return p.toBuffer();
}

export { Packet };

/** What net.LookupFunction is called with and answers; loose, as ws, undici and tls each type it their own way. */
export type ZoneLookup = (hostname: string, opts: { all?: boolean }, cb: (...a: any[]) => void) => void;

/**
 * A DNS lookup that asks Omega's DNS server at `port` and nothing else, as a
 * client pointed at it would: for ws, undici and tls (their `lookup` option).
 */
export function zoneLookup(port: number): ZoneLookup {
  const resolver = new Resolver();
  resolver.setServers([`127.0.0.1:${port}`]);
  return (hostname, opts, cb) =>
    resolver.resolve4(hostname, (err, addrs) => {
      if (err) return cb(err);
      if (opts.all) return cb(null, addrs.map((address) => ({ address, family: 4 })));
      cb(null, addrs[0], 4);
    });
}
