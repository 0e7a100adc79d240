import { createPrivateKey, randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import * as x509 from '@peculiar/x509';
import type { CertBundle } from './bundle.js';
import { bundleOf } from './bundle.js';

/**
 * A certificate authority of one machine's own, as mkcert makes: a root
 * made once, whose key stays in the state directory, and the leaf
 * certificates Omega serves issued from it. For `OMEGA_TLS=local`; nothing
 * here speaks to the network.
 *
 * ECDSA P-256 throughout: a handshake signs with it in a fraction of what
 * RSA-2048 costs, and every browser and TLS library accepts it.
 */

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
// Node's WebCrypto is the standard one; its TypeScript type is Node's own name for it.
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;
/** Long enough that nobody re-trusts a new root during a project's life; the key never leaves the machine. */
const CA_DAYS = 3650;

export interface LocalCa {
  certPem: string;
  keyPem: string;
}

export async function createLocalCa(commonName = 'Omega local CA', now = new Date()): Promise<LocalCa> {
  const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: [{ CN: [commonName] }, { O: ['Omega development CA'] }],
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: new Date(now.getTime() + CA_DAYS * DAY_MS),
    keys: keys as CryptoKeyPair,
    signingAlgorithm: ALG,
    extensions: [
      // pathLen 0: it signs leaves only.
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey as CryptoKey),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await exportKey(keys.privateKey as CryptoKey) };
}

export interface LeafRequest {
  /** DNS names (a leading `*.` for a wildcard) and IP addresses, in SAN order; the first is the subject's CN. */
  names: string[];
  lifetimeDays: number;
  now?: Date;
}

/** Issue a server certificate from the CA: a new key each time, the chain leaf first. */
export async function issueFromLocalCa(ca: LocalCa, req: LeafRequest): Promise<CertBundle> {
  if (!req.names.length) throw new Error('a certificate needs at least one name');
  const now = req.now ?? new Date();
  const caCert = new x509.X509Certificate(ca.certPem);
  const caKey = await importKey(ca.keyPem);
  const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: [{ CN: [req.names[0]!] }],
    issuer: caCert.subjectName,
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: new Date(now.getTime() + req.lifetimeDays * DAY_MS),
    signingKey: caKey,
    publicKey: (keys as CryptoKeyPair).publicKey,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
      new x509.SubjectAlternativeNameExtension(req.names.map((n) => (isIP(n) ? { type: 'ip', value: n } : { type: 'dns', value: n }))),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
      await x509.SubjectKeyIdentifierExtension.create((keys as CryptoKeyPair).publicKey),
    ],
  });
  const keyPem = await exportKey((keys as CryptoKeyPair).privateKey);
  // The leaf alone: whoever trusts the root has it, and a client that does not is not helped by it.
  return bundleOf(leaf.toString('pem'), keyPem, 'local');
}

/** True when the CA's certificate and key are a pair and the certificate is a CA's. */
export function checkLocalCa(ca: LocalCa): void {
  const cert = new X509Certificate(ca.certPem);
  if (!cert.ca) throw new Error('the CA certificate is not a CA certificate');
  if (!cert.checkPrivateKey(createPrivateKey(ca.keyPem))) throw new Error('the CA key does not belong to the CA certificate');
}

function serial(): string {
  // 20 octets at most (RFC 5280 §4.1.2.2), positive: the top bit clear.
  const b = randomBytes(16);
  b[0]! &= 0x7f;
  return b.toString('hex');
}

async function exportKey(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END PRIVATE KEY-----\n`;
}

async function importKey(pem: string): Promise<CryptoKey> {
  // Any PEM form Node reads (PKCS#8, SEC1 "EC PRIVATE KEY"), as PKCS#8 for WebCrypto.
  const der = createPrivateKey(pem).export({ type: 'pkcs8', format: 'der' });
  return webcrypto.subtle.importKey('pkcs8', der, ALG, false, ['sign']) as Promise<CryptoKey>;
}
