import { readFile } from 'node:fs/promises';
import type { Component } from '../src/lifecycle.js';
import { once } from '../src/lifecycle.js';
import type { Logger } from '../src/log.js';
import { OmegaError } from '../src/errors.js';
import { bundleOf, covers, describe, renewAtMs, type CertBundle } from '../src/tls/bundle.js';
import { issueFromLocalCa, type LocalCa } from '../src/tls/local-ca.js';
import type { CertStore } from '../src/tls/store.js';

/** Where a certificate comes from: `issue` makes (or reads) a new one for the names. */
export interface Issuer {
  readonly source: CertBundle['source'];
  issue(names: string[]): Promise<CertBundle>;
  /** How long one issue may take at most: the lock is held this long. */
  readonly maxIssueMs: number;
  /** files: true when the files hold another certificate than `current`. */
  changed?(current: CertBundle): Promise<boolean>;
}

export class LocalIssuer implements Issuer {
  readonly source = 'local';
  readonly maxIssueMs = 30_000;
  constructor(
    private readonly ca: LocalCa,
    private readonly lifetimeDays: number,
  ) {}

  issue(names: string[]): Promise<CertBundle> {
    return issueFromLocalCa(this.ca, { names, lifetimeDays: this.lifetimeDays });
  }
}

/** A certificate someone else renews (certbot, a secrets manager): read from its files, and again when they change. */
export class FileIssuer implements Issuer {
  readonly source = 'files';
  readonly maxIssueMs = 30_000;
  constructor(
    private readonly certFile: string,
    private readonly keyFile: string,
  ) {}

  async issue(): Promise<CertBundle> {
    const [cert, key] = await Promise.all([readFile(this.certFile, 'utf8'), readFile(this.keyFile, 'utf8')]);
    try {
      return bundleOf(cert, key, 'files');
    } catch (err) {
      // Mid-rotation the two files can briefly disagree; the next pass reads them again.
      throw new OmegaError('CERTIFICATE_FAILED', `${this.certFile} and ${this.keyFile} are not a certificate and its key`, { cause: err });
    }
  }

  async changed(current: CertBundle): Promise<boolean> {
    return (await this.issue()).fingerprint !== current.fingerprint;
  }
}

export interface CertificatesOptions {
  /** What the certificate must name: `*.<zone>`, `<zone>`, and the API name when it is outside the zone. */
  names: string[];
  intervalMs: number;
  /** Renew once at start whatever the certificate's age. */
  renewNow: boolean;
  now?: () => number;
}

const BACKOFF_FIRST_MS = 5_000;
const BACKOFF_MAX_MS = 3_600_000;

/**
 * Keeps the deployment's certificate: obtains it when there is none (or it
 * does not name what it must), renews it two thirds into its life, and hands
 * each new one to `onCertificate` (the master's own https server). One
 * master orders at a time (the lock); the others adopt what it stored. A
 * failure is logged, counted and retried with backoff, and the certificate
 * in use stays in use.
 */
export class Certificates implements Component {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private current: CertBundle | null = null;
  private renewNowPending: boolean;
  private nextAttemptMs = 0;
  failures = 0;
  readonly counts = { issued: 0, failed: 0 };
  private readonly now: () => number;

  constructor(
    private readonly store: CertStore,
    private readonly issuer: Issuer,
    private readonly opts: CertificatesOptions,
    private readonly onCertificate: (b: CertBundle) => void,
    private readonly log: Logger,
  ) {
    this.renewNowPending = opts.renewNow;
    this.now = opts.now ?? Date.now;
  }

  get certificate(): CertBundle | null {
    return this.current;
  }

  /**
   * A pass now, then one every interval. Resolves when the first pass is
   * done or after `waitMs`, whichever is sooner: an order that takes long
   * goes on behind.
   */
  async start(waitMs = Infinity): Promise<void> {
    const first = this.pass();
    this.timer = setInterval(() => void this.pass(), this.opts.intervalMs);
    this.timer.unref();
    if (waitMs === Infinity) return first;
    let t: NodeJS.Timeout | undefined;
    await Promise.race([first, new Promise<void>((r) => (t = setTimeout(r, waitMs)))]);
    clearTimeout(t);
  }

  /** Run a pass (or join the one running): adopt what is stored, renew when due. */
  pass(): Promise<void> {
    return (this.running ??= this.check()
      .catch((err: unknown) => this.log.warn({ err }, 'certificate check failed; retrying next pass'))
      .finally(() => (this.running = null)));
  }

  /** Renew on the next pass whatever the certificate's age (a setting, a test, an operator). */
  renewSoon(): Promise<void> {
    this.renewNowPending = true;
    this.nextAttemptMs = 0;
    return this.pass();
  }

  private async check(): Promise<void> {
    await this.adoptStored();
    if (!(await this.due(this.current))) return;
    if (this.now() < this.nextAttemptMs) return;
    const token = await this.store.lock(this.issuer.maxIssueMs + 60_000);
    if (!token) return; // another master is on it; its certificate is adopted on a later pass
    try {
      // It may have been renewed between our read and the lock.
      await this.adoptStored();
      if (!(await this.due(this.current))) return;
      const started = this.now();
      const b = await this.issuer.issue(this.opts.names);
      await this.store.put(token, b);
      this.renewNowPending = false;
      this.failures = 0;
      this.counts.issued++;
      this.use(b);
      this.log.info({ ...describe(b), ms: this.now() - started }, 'certificate stored');
    } catch (err) {
      this.failures++;
      this.counts.failed++;
      const backoff = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** (this.failures - 1));
      this.nextAttemptMs = this.now() + backoff;
      this.log.error({ err, failures: this.failures, retryInMs: backoff, inUse: this.current ? describe(this.current) : null }, 'obtaining the certificate failed');
    } finally {
      await this.store.unlock(token).catch((err: unknown) => this.log.warn({ err }, 'releasing the certificate lock failed; it lapses by itself'));
    }
  }

  private async adoptStored(): Promise<void> {
    const b = await this.store.changedFrom(this.current?.fingerprint);
    if (b) this.use(b);
  }

  private use(b: CertBundle): void {
    if (b.fingerprint === this.current?.fingerprint) return;
    this.current = b;
    this.onCertificate(b);
  }

  private async due(b: CertBundle | null): Promise<boolean> {
    if (!b || this.renewNowPending) return true;
    if (b.source !== this.issuer.source) return true;
    // Files are what they are: re-read when they change, not when they name too little.
    if (this.issuer.changed) return this.issuer.changed(b);
    if (!covers(b, this.opts.names)) return true;
    return this.now() >= renewAtMs(b);
  }

  readonly stop = once(async () => {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  });
}

/** The names the deployment's certificate carries: the zone's wildcard and apex, the API name, and any more asked for. */
export function certificateNames(zone: string, apiName: string, extra: string[]): string[] {
  const api = apiName.endsWith('.') ? apiName.slice(0, -1) : apiName.endsWith(`.${zone}`) || apiName === zone ? apiName : `${apiName}.${zone}`;
  // One label below the zone is covered by the wildcard.
  const coveredByWildcard = api.endsWith(`.${zone}`) && !api.slice(0, -(zone.length + 1)).includes('.');
  return [...new Set([`*.${zone}`, zone, ...(coveredByWildcard ? [] : [api]), ...extra])];
}
