import { isIP } from 'node:net';
import { parseArgs } from 'node:util';
import { DNS_LABEL } from '../protocol/worker.js';

/**
 * One setting of a program: read from an environment variable, overridable by
 * a command-line flag, parsed and validated in one place so `--help` and the
 * error messages always agree with what the program actually reads.
 */
export interface Setting<T> {
  env: string;
  flag: string;
  description: string;
  /** The value used when neither the variable nor the flag is given. */
  default: T;
  /** Shown in --help instead of the raw default (e.g. "ns1=127.0.0.1"). */
  defaultText?: string;
  /** A secret is never echoed back in an error or in --help. */
  secret?: boolean;
  /** A boolean setting is a bare flag (`--dev`) on the command line. */
  boolean?: boolean;
  /** How a refused value is echoed in the error (a URL without its password); as written by default. */
  shown?(raw: string): string;
  parse(raw: string): T;
}

export type SettingsSpec = Record<string, Setting<unknown>>;
export type SettingsValues<S extends SettingsSpec> = {
  readonly [K in keyof S]: S[K] extends Setting<infer T> ? T : never;
};

/** Every problem found in the settings, each naming its variable and flag. */
export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

export interface LoadOptions {
  env?: NodeJS.ProcessEnv;
  argv?: string[];
}

/**
 * Resolve every setting of `spec`: flag beats environment beats default.
 * Collects all problems before failing, so a user fixes them in one go.
 */
export function loadSettings<S extends SettingsSpec>(spec: S, opts: LoadOptions = {}): SettingsValues<S> {
  const env = opts.env ?? {};
  const problems: string[] = [];
  let flags: Record<string, string | boolean | undefined> = {};
  if (opts.argv && opts.argv.length > 0) {
    const options: Record<string, { type: 'string' | 'boolean' }> = {};
    for (const s of Object.values(spec)) options[s.flag] = { type: s.boolean ? 'boolean' : 'string' };
    try {
      flags = parseArgs({ args: opts.argv, options, strict: true, allowPositionals: false }).values as typeof flags;
    } catch (err) {
      problems.push((err as Error).message);
    }
  }
  const out: Record<string, unknown> = {};
  for (const [key, s] of Object.entries(spec)) {
    const fromFlag = flags[s.flag];
    const raw = fromFlag !== undefined ? String(fromFlag) : env[s.env];
    if (raw === undefined || raw === '') {
      out[key] = s.default;
      continue;
    }
    try {
      out[key] = s.parse(raw);
    } catch (err) {
      const shown = s.secret ? '' : ` (got ${JSON.stringify(s.shown ? s.shown(raw) : raw)})`;
      problems.push(`${s.env} / --${s.flag}: ${(err as Error).message}${shown}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(out) as SettingsValues<S>;
}

/** The `--help` text for a program's settings: flag, variable, default, meaning. */
export function renderSettingsHelp(spec: SettingsSpec): string {
  const rows = Object.values(spec).map((s) => {
    const flag = s.boolean ? `--${s.flag}` : `--${s.flag} <value>`;
    let def: string;
    if (s.defaultText !== undefined) def = s.defaultText;
    else if (s.default === undefined) def = '(none)';
    else if (s.secret) def = '(secret)';
    else def = Array.isArray(s.default) ? s.default.join(',') : String(s.default);
    return { left: `${flag}  ${s.env}`, right: `${s.description} [default: ${def}]` };
  });
  const width = Math.max(...rows.map((r) => r.left.length)) + 2;
  return rows.map((r) => `  ${r.left.padEnd(width)}${r.right}`).join('\n');
}

// ---- parsers -------------------------------------------------------------

export function str(): (raw: string) => string {
  return (raw) => raw;
}

export function int(min: number, max: number): (raw: string) => number {
  return (raw) => {
    if (!/^-?\d+$/.test(raw.trim())) throw new Error('must be a whole number');
    const n = Number(raw);
    if (n < min || n > max) throw new Error(`must be between ${min} and ${max}`);
    return n;
  };
}

export function bool(): (raw: string) => boolean {
  return (raw) => {
    const v = raw.trim().toLowerCase();
    if (['1', 'true', 'yes', 'on'].includes(v)) return true;
    if (['0', 'false', 'no', 'off'].includes(v)) return false;
    throw new Error('must be true or false');
  };
}

export function oneOf<T extends string>(...choices: T[]): (raw: string) => T {
  return (raw) => {
    if (!(choices as string[]).includes(raw)) throw new Error(`must be one of ${choices.join(', ')}`);
    return raw as T;
  };
}

export interface HostPort {
  host: string;
  port: number;
}

/** `host:port` as a URL or a setting writes it, an IPv6 host in brackets (Go's net.JoinHostPort). */
export function joinHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** `host:port`, `[v6]:port` or `:port` (all interfaces); port 0 picks a free one. */
export function hostPort(): (raw: string) => HostPort {
  return (raw) => {
    const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(raw.trim());
    if (!m) throw new Error('must be host:port, e.g. 127.0.0.1:5353');
    const host = m[1] ?? (m[2] || '0.0.0.0');
    const port = Number(m[3]);
    if (port > 65535) throw new Error('port must be at most 65535');
    if (m[1] !== undefined && isIP(host) !== 6) throw new Error('bracketed host must be an IPv6 address');
    return { host, port };
  };
}

/** An IPv4 loopback address (127.x.y.z): a local stand-in for a host. */
export function loopbackV4(): (raw: string) => string {
  return (raw) => {
    if (isIP(raw) !== 4 || !raw.startsWith('127.')) throw new Error('must be an IPv4 loopback address (127.x.y.z)');
    return raw;
  };
}

const ZONE_NAME = new RegExp(`^(?:${DNS_LABEL}\\.)*${DNS_LABEL}$`);

/** The sandbox zone (`OMEGA_ZONE`): a domain name, lower case, without the root's trailing dot. */
export function zoneName(raw: string): string {
  const z = raw.trim().toLowerCase().replace(/\.$/, '');
  // RFC 1035 §2.3.4: at most 255 octets on the wire, so 253 characters written.
  if (!ZONE_NAME.test(z) || z.length > 253) throw new Error('must be a domain name such as sandbox.test');
  return z;
}

// ---- secrets in text ------------------------------------------------------

/**
 * A URL without the credentials in it (`user:password@`), for log lines and
 * for what clients are shown (a clone's repository). It works on the text,
 * so it also serves a Redis URL with several hosts, which WHATWG URL refuses,
 * and a value a parser refused; what is no URL at all is not shown. Here, in
 * a leaf the worker may import, so the worker scrubs as the servers do.
 */
export function safeUrl(url: string): string {
  const m = /^([a-z][a-z0-9+.-]*:\/\/)(?:[^/?#]*@)?(.*)$/is.exec(url.trim());
  return m ? `${m[1]}${m[2]}` : '[not a URL]';
}
