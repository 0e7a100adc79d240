import { createPrivateKey, X509Certificate } from 'node:crypto';

/**
 * A certificate Omega serves: the chain (leaf first) and its private key,
 * with what is read off the leaf kept beside them. Kept in Redis as JSON
 * (see CertStore); the key is a secret and is never logged (describe()
 * leaves it out) or handed to a sandbox.
 */
export interface CertBundle {
  /** PEM: the leaf, then the intermediates it needs. */
  certPem: string;
  keyPem: string;
  /** Where it came from: issued from the local CA, ordered from an ACME CA, or read from files. */
  source: 'local' | 'acme' | 'files';
  notBeforeMs: number;
  notAfterMs: number;
  /** Subject alternative names of the leaf: DNS names and IP addresses. */
  names: string[];
  /** SHA-256 of the leaf, as openssl prints it: tells one certificate from the next. */
  fingerprint: string;
}

/** Read a chain and key into a bundle; throws when they are not a pair or the PEM is not a certificate. */
export function bundleOf(certPem: string, keyPem: string, source: CertBundle['source']): CertBundle {
  const leaf = new X509Certificate(certPem);
  if (!leaf.checkPrivateKey(createPrivateKey(keyPem))) throw new Error('the private key does not belong to the certificate');
  return {
    certPem,
    keyPem,
    source,
    notBeforeMs: Date.parse(leaf.validFrom),
    notAfterMs: Date.parse(leaf.validTo),
    names: sanNames(leaf),
    fingerprint: leaf.fingerprint256,
  };
}

function sanNames(leaf: X509Certificate): string[] {
  // "DNS:*.a.test, DNS:a.test, IP Address:127.0.0.1"
  return (leaf.subjectAltName ?? '')
    .split(', ')
    .map((item) => /^(?:DNS|IP Address):(.+)$/.exec(item)?.[1])
    .filter((n): n is string => !!n)
    .map((n) => n.toLowerCase());
}

/** When a certificate is due for renewal: two thirds into its lifetime (as certbot and Caddy do). */
export function renewAtMs(b: Pick<CertBundle, 'notBeforeMs' | 'notAfterMs'>): number {
  return b.notBeforeMs + Math.floor(((b.notAfterMs - b.notBeforeMs) * 2) / 3);
}

/** True when every name wanted is in the certificate (exactly; a wildcard covers only what is asked as the wildcard). */
export function covers(b: Pick<CertBundle, 'names'>, wanted: string[]): boolean {
  const have = new Set(b.names);
  return wanted.every((n) => have.has(n.toLowerCase()));
}

/** What may be logged of a bundle: everything but the key. */
export function describe(b: CertBundle): Record<string, unknown> {
  return {
    source: b.source,
    names: b.names,
    notBefore: new Date(b.notBeforeMs).toISOString(),
    notAfter: new Date(b.notAfterMs).toISOString(),
    fingerprint: b.fingerprint,
  };
}
