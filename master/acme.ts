import { Agent as HttpsAgent } from 'node:https';
import { Resolver } from 'node:dns/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import acme from 'acme-client';
import { OmegaError } from '../src/errors.js';
import type { Logger } from '../src/log.js';
import { bundleOf, type CertBundle } from '../src/tls/bundle.js';
import type { Issuer } from './certificates.js';
import type { DnsClient } from './clients.js';

export interface AcmeOptions {
  directoryUrl: string;
  email: string;
  eab?: { kid: string; hmacKey: string };
  /** PEM: trusted for the ACME server's own https (a private CA); the system's roots otherwise. */
  caPem?: string;
  /** Every server of the zone, ip:port: the challenge must be answered by each before the CA is told to look. */
  dnsServers: string[];
  propagationTimeoutMs: number;
}

/** Where the ACME account key is kept between orders (one account, not one per renewal: CAs limit new accounts). */
export interface AccountKeyStore {
  get(): Promise<string | null>;
  /** Store the key unless one is there; the one kept. */
  putIfAbsent(pem: string): Promise<string>;
}

const CHALLENGE_TTL = 10;
const POLL_MS = 250;

/**
 * Orders certificates from an RFC 8555 CA with the DNS-01 challenge, which
 * Omega can answer itself: the challenge records go into its own zone
 * through the record API. acme-client does the protocol (JWS, nonces,
 * retries); this class does the order's steps, so that every authorization's
 * value is written in one change (a wildcard and its apex share one name,
 * `_acme-challenge.<zone>`, with two values) and the CA is told to look only
 * once every DNS server answers them.
 */
export class AcmeIssuer implements Issuer {
  readonly source = 'acme';
  readonly maxIssueMs: number;

  constructor(
    private readonly opts: AcmeOptions,
    private readonly dns: DnsClient,
    private readonly accounts: AccountKeyStore,
    private readonly log: Logger,
  ) {
    // Propagation, then the CA's own checks and the finalisation.
    this.maxIssueMs = opts.propagationTimeoutMs + 120_000;
    if (opts.caPem) acme.axios.defaults.httpsAgent = new HttpsAgent({ ca: opts.caPem, keepAlive: true });
  }

  async issue(names: string[]): Promise<CertBundle> {
    const client = new acme.Client({
      directoryUrl: this.opts.directoryUrl,
      accountKey: await this.accountKey(),
      ...(this.opts.eab ? { externalAccountBinding: { kid: this.opts.eab.kid, hmacKey: this.opts.eab.hmacKey } } : {}),
    });
    // Finds the account when it exists (RFC 8555 §7.3.1), creates it otherwise.
    await client.createAccount({ termsOfServiceAgreed: true, contact: [`mailto:${this.opts.email}`] });
    let order = await client.createOrder({ identifiers: names.map((value) => ({ type: 'dns', value })) });
    const pending: Array<{ challenge: acme.Authorization['challenges'][number]; name: string; value: string }> = [];
    for (const authz of await client.getAuthorizations(order)) {
      if (authz.status === 'valid') continue; // still valid from an earlier order
      const challenge = authz.challenges.find((c) => c.type === 'dns-01');
      if (!challenge) throw new OmegaError('CERTIFICATE_FAILED', `the CA offers no dns-01 challenge for ${authz.identifier.value}`);
      // RFC 8555 §8.4: the TXT value is the key authorization's SHA-256, which acme-client computes for dns-01.
      const value = await client.getChallengeKeyAuthorization(challenge);
      pending.push({ challenge, name: `_acme-challenge.${authz.identifier.value}`, value });
    }
    const records = new Map<string, string[]>();
    for (const p of pending) records.set(p.name, [...(records.get(p.name) ?? []), p.value]);
    try {
      if (records.size) {
        await this.dns.change([...records].map(([name, values]) => ({ action: 'UPSERT', name: `${name}.`, type: 'TXT', ttl: CHALLENGE_TTL, values })));
        await this.waitForRecords(records);
        for (const p of pending) await client.completeChallenge(p.challenge);
        for (const p of pending) await client.waitForValidStatus(p.challenge);
      }
      const [key, csr] = await acme.crypto.createCsr({ altNames: names }, await acme.crypto.createPrivateEcdsaKey());
      order = await client.finalizeOrder(order, csr);
      const chain = await client.getCertificate(order);
      return bundleOf(chain, key.toString(), 'acme');
    } catch (err) {
      throw err instanceof OmegaError ? err : new OmegaError('CERTIFICATE_FAILED', `the ACME order for ${names.join(', ')} failed: ${(err as Error).message}`, { cause: err });
    } finally {
      if (records.size) {
        await this.dns
          .change([...records.keys()].map((name) => ({ action: 'DELETE', name: `${name}.`, type: 'TXT', ifExists: true })))
          .catch((err: unknown) => this.log.warn({ err, names: [...records.keys()] }, 'removing the ACME challenge records failed; the next order replaces them'));
      }
    }
  }

  /** Until every server answers every value (a resolver per server: no recursion, no cache). */
  private async waitForRecords(records: Map<string, string[]>): Promise<void> {
    const deadline = Date.now() + this.opts.propagationTimeoutMs;
    const resolvers = this.opts.dnsServers.map((server) => {
      const r = new Resolver({ timeout: 1000, tries: 1 });
      r.setServers([server]);
      return { server, r };
    });
    for (;;) {
      const missing: string[] = [];
      await Promise.all(
        resolvers.flatMap(({ server, r }) =>
          [...records].map(async ([name, values]) => {
            const seen = new Set((await r.resolveTxt(name).catch(() => [] as string[][])).map((chunks) => chunks.join('')));
            if (!values.every((v) => seen.has(v))) missing.push(`${name} at ${server}`);
          }),
        ),
      );
      if (!missing.length) return;
      if (Date.now() > deadline) throw new OmegaError('CERTIFICATE_FAILED', `the ACME challenge was not answered within ${this.opts.propagationTimeoutMs} ms: ${missing.join(', ')}`);
      await sleep(POLL_MS);
    }
  }

  private async accountKey(): Promise<Buffer> {
    const stored = await this.accounts.get();
    if (stored) return Buffer.from(stored);
    const pem = (await acme.crypto.createPrivateEcdsaKey()).toString();
    return Buffer.from(await this.accounts.putIfAbsent(pem));
  }
}
