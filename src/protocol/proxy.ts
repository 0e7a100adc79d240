import { isIPv4, isIPv6 } from 'node:net';

/**
 * The PROXY protocol's version 1 line (HAProxy's text form), by which the
 * host's ingress tells a worker who the client is: without it every
 * connection through the ingress would come from the ingress, and a limit
 * per client address could only be a limit on everyone. One line before the
 * client's first byte:
 *
 *   PROXY TCP4 203.0.113.7 10.0.0.5 51234 443\r\n
 *
 * Version 1 only (the worker reads one short text line; no library for a
 * 40-byte format).
 */

/** Longest line the specification allows, CRLF included. */
export const PROXY_LINE_MAX = 107;

/** The line for a connection from `source`:`sourcePort` to `dest`:`destPort` (IPv4-mapped IPv6 written as IPv4). */
export function proxyLine(source: string, sourcePort: number, dest: string, destPort: number): string {
  const [s, d] = [unmap(source), unmap(dest)];
  if (isIPv4(s) && isIPv4(d)) return `PROXY TCP4 ${s} ${d} ${sourcePort} ${destPort}\r\n`;
  if (isIPv6(s) && isIPv6(d)) return `PROXY TCP6 ${s} ${d} ${sourcePort} ${destPort}\r\n`;
  return 'PROXY UNKNOWN\r\n';
}

export type ProxyParse =
  /** Not a PROXY line: the bytes are the client's own. */
  | { kind: 'none' }
  /** Starts like one but the line is not complete yet: read more. */
  | { kind: 'partial' }
  | { kind: 'invalid'; reason: string }
  /** `source` null for PROXY UNKNOWN (use the connection's own address). */
  | { kind: 'proxy'; source: string | null; rest: Buffer };

export function parseProxyLine(buf: Buffer): ProxyParse {
  const head = buf.subarray(0, 6).toString('latin1');
  if (!'PROXY '.startsWith(head) || head.length === 0) return { kind: 'none' };
  const end = buf.indexOf('\r\n');
  if (end < 0) return buf.length >= PROXY_LINE_MAX ? { kind: 'invalid', reason: 'no CRLF within 107 bytes' } : { kind: 'partial' };
  if (end + 2 > PROXY_LINE_MAX) return { kind: 'invalid', reason: 'longer than 107 bytes' };
  const parts = buf.subarray(0, end).toString('latin1').split(' ');
  const rest = buf.subarray(end + 2);
  if (parts[1] === 'UNKNOWN') return { kind: 'proxy', source: null, rest };
  if (parts.length !== 6) return { kind: 'invalid', reason: 'expected PROXY TCP4|TCP6 src dst sport dport' };
  const [, proto, src, dst, sport, dport] = parts as [string, string, string, string, string, string];
  const ok = proto === 'TCP4' ? isIPv4(src) && isIPv4(dst) : proto === 'TCP6' ? isIPv6(src) && isIPv6(dst) : false;
  if (!ok || !isPort(sport) || !isPort(dport)) return { kind: 'invalid', reason: 'bad protocol, address or port' };
  return { kind: 'proxy', source: src, rest };
}

function isPort(s: string): boolean {
  return /^(0|[1-9]\d{0,4})$/.test(s) && Number(s) <= 65535;
}

function unmap(a: string): string {
  return a.startsWith('::ffff:') && isIPv4(a.slice(7)) ? a.slice(7) : a;
}
