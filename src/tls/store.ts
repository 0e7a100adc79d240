import { randomBytes } from 'node:crypto';
import { OmegaError } from '../errors.js';
import type { RedisClient } from '../redis/connection.js';
import type { TlsKeys } from '../redis/keys.js';
import { defineScripts, STORE_NOT_LOCK_HOLDER } from '../redis/scripts.js';
import type { CertBundle } from './bundle.js';

/**
 * The certificate in Redis: one for the deployment, served by the master
 * and every host's ingress. A master writes it only while it holds the lock
 * (storeCertificate checks); anyone reads it.
 */
export class CertStore {
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: TlsKeys,
  ) {
    defineScripts(redis);
  }

  async fingerprint(): Promise<string | null> {
    return this.redis.hget(this.keys.certificate, 'fingerprint');
  }

  async get(): Promise<CertBundle | null> {
    const json = await this.redis.hget(this.keys.certificate, 'bundle');
    return json ? (JSON.parse(json) as CertBundle) : null;
  }

  /** The stored certificate if it is not the one with `fingerprint` (a cheap HGET when nothing changed), else null. */
  async changedFrom(fingerprint: string | null | undefined): Promise<CertBundle | null> {
    const fp = await this.fingerprint();
    if (!fp || fp === fingerprint) return null;
    return this.get();
  }

  /** Take the lock for `ttlMs`: a token to store and release with, or null when another holds it. */
  async lock(ttlMs: number): Promise<string | null> {
    const token = randomBytes(12).toString('base64url');
    return (await this.redis.set(this.keys.lock, token, 'PX', ttlMs, 'NX')) === 'OK' ? token : null;
  }

  async unlock(token: string): Promise<void> {
    await this.redis.releaseLock(this.keys.lock, token);
  }

  /** The ACME account key, made by the first master that orders. */
  readonly acmeAccount = {
    get: (): Promise<string | null> => this.redis.get(this.keys.acmeAccount),
    putIfAbsent: async (pem: string): Promise<string> => {
      await this.redis.set(this.keys.acmeAccount, pem, 'NX');
      return (await this.redis.get(this.keys.acmeAccount)) ?? pem;
    },
  };

  async put(token: string, b: CertBundle): Promise<void> {
    const r = await this.redis.storeCertificate(this.keys.lock, this.keys.certificate, token, JSON.stringify(b), b.fingerprint, Date.now());
    if (r === STORE_NOT_LOCK_HOLDER) throw new OmegaError('CERTIFICATE_FAILED', 'the certificate lock lapsed before the new certificate was stored; the next holder renews it');
  }
}

const FIRST_CERT_POLL_MS = 250;

/**
 * Follows the stored certificate for a TLS endpoint: calls `apply` with the
 * first one and with each that replaces it. A cheap poll of the fingerprint
 * (one HGET a period), so a Redis that fails over or restarts needs no
 * re-subscription; a renewal is due weeks ahead, so seconds of lag cost nothing.
 */
export class CertFollower {
  private timer: NodeJS.Timeout | null = null;
  private current: string | null = null;
  private polling: Promise<void> | null = null;
  private failing = false;
  private soon: NodeJS.Timeout | null = null;

  constructor(
    private readonly store: CertStore,
    private readonly intervalMs: number,
    private readonly apply: (b: CertBundle) => void,
    private readonly onError: (err: unknown, recovered: boolean) => void,
  ) {}

  get fingerprint(): string | null {
    return this.current;
  }

  /** Poll now (and resolve once done); then every interval. */
  start(): Promise<void> {
    this.timer ??= setInterval(() => void this.poll(), this.intervalMs);
    this.timer.unref();
    return this.poll();
  }

  poll(): Promise<void> {
    return (this.polling ??= this.check().finally(() => (this.polling = null)));
  }

  private async check(): Promise<void> {
    try {
      const b = await this.store.changedFrom(this.current);
      if (b) {
        this.apply(b);
        this.current = b.fingerprint;
      }
      if (this.failing) this.onError(null, true);
      this.failing = false;
    } catch (err) {
      // Once per outage; the certificate in use stays in use.
      if (!this.failing) this.onError(err, false);
      this.failing = true;
    }
    // Until there is a first certificate (a host that starts before the master stored one), look often.
    if (this.current === null && this.timer) {
      this.soon = setTimeout(() => void this.poll(), Math.min(FIRST_CERT_POLL_MS, this.intervalMs));
      this.soon.unref();
    }
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.soon) clearTimeout(this.soon);
    await this.polling;
  }
}
