import { existsSync } from 'node:fs';
import { isIP } from 'node:net';
import { tlsModeSetting, tlsReloadSetting } from '../src/config/common.js';
import { bool, int, type Setting, type SettingsValues } from '../src/config/settings.js';

/**
 * The master's certificate settings (OMEGA_TLS_*, OMEGA_ACME_*), part of
 * its settings, and the checks that span them.
 */

const file = (raw: string): string => {
  if (!existsSync(raw)) throw new Error(`${raw} does not exist`);
  return raw;
};
const optionalFile = { default: '', defaultText: '(none)', parse: file };

export const tlsSettings = {
  tls: tlsModeSetting,
  tlsReloadIntervalMs: tlsReloadSetting,
  apiName: {
    env: 'OMEGA_API_NAME',
    flag: 'api-name',
    description: "The master's public name: relative names are in the zone (api -> api.<zone>); it goes on the certificate",
    default: 'api',
    parse: (raw: string) => raw.trim().toLowerCase(),
  } satisfies Setting<string>,
  tlsNames: {
    env: 'OMEGA_TLS_NAMES',
    flag: 'tls-names',
    description: 'More names and IP addresses on the certificate (local and files: the addresses clients use without DNS, such as 127.0.0.1)',
    default: [] as string[],
    defaultText: '(none; local adds the listen address)',
    parse: (raw: string) => raw.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean),
  } satisfies Setting<string[]>,
  tlsCaCertFile: { env: 'OMEGA_TLS_CA_CERT_FILE', flag: 'tls-ca-cert-file', description: 'local: the CA certificate (PEM) the certificate is issued from', ...optionalFile } satisfies Setting<string>,
  tlsCaKeyFile: { env: 'OMEGA_TLS_CA_KEY_FILE', flag: 'tls-ca-key-file', description: 'local: the CA private key (PEM; keep it mode 600)', ...optionalFile } satisfies Setting<string>,
  tlsLocalDays: { env: 'OMEGA_TLS_LOCAL_DAYS', flag: 'tls-local-days', description: 'local: lifetime of an issued certificate, in days (renewed at two thirds)', default: 90, parse: int(1, 825) },
  tlsCertFile: { env: 'OMEGA_TLS_CERT_FILE', flag: 'tls-cert-file', description: 'files: the certificate chain (PEM, leaf first), re-read when it changes', ...optionalFile } satisfies Setting<string>,
  tlsKeyFile: { env: 'OMEGA_TLS_KEY_FILE', flag: 'tls-key-file', description: 'files: its private key (PEM)', ...optionalFile } satisfies Setting<string>,
  tlsTrustFile: {
    env: 'OMEGA_TLS_TRUST_FILE',
    flag: 'tls-trust-file',
    description: 'CA certificates (PEM) the master trusts beside the system\'s when it reaches sandboxes through the ingresses (local adds its CA)',
    ...optionalFile,
  } satisfies Setting<string>,
  tlsRenewNow: { env: 'OMEGA_TLS_RENEW_NOW', flag: 'tls-renew-now', description: 'Renew the certificate once at start, whatever its age', default: false, boolean: true, parse: bool() } satisfies Setting<boolean>,
  acmeDirectoryUrl: {
    env: 'OMEGA_ACME_DIRECTORY_URL',
    flag: 'acme-directory-url',
    description: "acme: the CA's directory (Let's Encrypt: https://acme-v02.api.letsencrypt.org/directory; staging: https://acme-staging-v02.api.letsencrypt.org/directory)",
    default: '',
    defaultText: '(none)',
    parse: (raw: string) => {
      if (new URL(raw).protocol !== 'https:') throw new Error('must be an https:// URL (RFC 8555 §6.1)');
      return raw;
    },
  } satisfies Setting<string>,
  acmeEmail: {
    env: 'OMEGA_ACME_EMAIL',
    flag: 'acme-email',
    description: 'acme: contact address of the ACME account (expiry notices)',
    default: '',
    defaultText: '(none)',
    parse: (raw: string) => {
      if (!/^[^@\s]+@[^@\s]+$/.test(raw)) throw new Error('must be an email address');
      return raw;
    },
  } satisfies Setting<string>,
  acmeEabKid: { env: 'OMEGA_ACME_EAB_KID', flag: 'acme-eab-kid', description: 'acme: external account binding key id, for CAs that require one', default: '', defaultText: '(none)', parse: (r: string) => r } satisfies Setting<string>,
  acmeEabHmacKey: {
    env: 'OMEGA_ACME_EAB_HMAC_KEY',
    flag: 'acme-eab-hmac-key',
    description: 'acme: external account binding HMAC key (base64url)',
    default: '',
    defaultText: '(none)',
    secret: true,
    parse: (r: string) => r,
  } satisfies Setting<string>,
  acmeCaFile: {
    env: 'OMEGA_ACME_CA_FILE',
    flag: 'acme-ca-file',
    description: "acme: CA certificates (PEM) to trust for the ACME server's own https, for a private CA (Pebble, step-ca)",
    ...optionalFile,
  } satisfies Setting<string>,
  acmeDnsServers: {
    env: 'OMEGA_ACME_DNS_SERVERS',
    flag: 'acme-dns-servers',
    description: "acme: every server of the zone (host:port, comma-separated); an order goes on once each answers the challenge",
    default: ['127.0.0.1:5353'],
    defaultText: '127.0.0.1:5353',
    parse: (raw: string) => {
      const list = raw.split(',').map((s) => s.trim()).filter(Boolean);
      for (const s of list) {
        const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(s);
        if (!m || !isIP(m[1]!) || Number(m[2]) < 1 || Number(m[2]) > 65535) throw new Error(`${s} is not ip:port`);
      }
      if (!list.length) throw new Error('at least one server is needed');
      return list;
    },
  } satisfies Setting<string[]>,
  acmePropagationTimeoutMs: { env: 'OMEGA_ACME_PROPAGATION_TIMEOUT_MS', flag: 'acme-propagation-timeout-ms', description: 'acme: how long the challenge may take to be answered by every DNS server', default: 120_000, parse: int(1000, 3_600_000) },
};

export type TlsSettings = SettingsValues<typeof tlsSettings>;

/** What a mode needs that a setting alone cannot check. */
export function tlsProblems(s: TlsSettings): string[] {
  const p: string[] = [];
  if (s.tls === 'local' && (!s.tlsCaCertFile || !s.tlsCaKeyFile)) p.push('OMEGA_TLS=local: OMEGA_TLS_CA_CERT_FILE and OMEGA_TLS_CA_KEY_FILE are required (`omega up` makes them)');
  if (s.tls === 'files' && (!s.tlsCertFile || !s.tlsKeyFile)) p.push('OMEGA_TLS=files: OMEGA_TLS_CERT_FILE and OMEGA_TLS_KEY_FILE are required');
  if (s.tls === 'acme') {
    if (!s.acmeDirectoryUrl) p.push('OMEGA_TLS=acme: OMEGA_ACME_DIRECTORY_URL is required');
    if (!s.acmeEmail) p.push('OMEGA_TLS=acme: OMEGA_ACME_EMAIL is required');
    if (!!s.acmeEabKid !== !!s.acmeEabHmacKey) p.push('OMEGA_ACME_EAB_KID and OMEGA_ACME_EAB_HMAC_KEY go together');
  }
  return p;
}
