import type { Server, Socket } from 'node:net';

/**
 * Per-source limits against a stranger knocking: wrong tokens one after
 * another, and hundreds of connections held open. Shared by every API (the
 * master, the managers, the DNS servers), the worker and the ingress; no
 * dependencies, so the worker's bundle can carry it.
 */

export interface FailureLimits {
  /** Failures a source may make at once. */
  burst: number;
  /** How many of them come back a second. */
  perSecond: number;
  /** Sources remembered at most (the oldest forgotten first), so a flood of addresses cannot grow it without bound. */
  maxSources: number;
}

export const DEFAULT_FAILURE_LIMITS: FailureLimits = { burst: 20, perSecond: 1, maxSources: 100_000 };

/**
 * Failed authentications per source address: a bucket of `burst` that
 * refills at `perSecond`. A source whose bucket is empty is refused before
 * its credentials are looked at (with how long to wait), so 100 wrong tokens
 * in a row cost the server 20 comparisons, and guessing goes at one a second.
 * A right token does not refill the bucket: whoever shares an address with a
 * guesser waits with it, as with fail2ban.
 */
export class FailureLimiter {
  private readonly sources = new Map<string, { tokens: number; atMs: number }>();

  constructor(
    private readonly limits: FailureLimits = DEFAULT_FAILURE_LIMITS,
    private readonly now: () => number = Date.now,
  ) {}

  /** 0 when `source` may try; otherwise the whole seconds until it may again. */
  retryAfterSeconds(source: string): number {
    const b = this.bucket(source, false);
    if (!b || b.tokens >= 1) return 0;
    return Math.max(1, Math.ceil((1 - b.tokens) / this.limits.perSecond));
  }

  failed(source: string): void {
    const b = this.bucket(source, true)!;
    b.tokens = Math.max(0, b.tokens - 1);
  }

  get tracked(): number {
    return this.sources.size;
  }

  private bucket(source: string, create: boolean): { tokens: number; atMs: number } | null {
    const now = this.now();
    let b = this.sources.get(source);
    if (b) {
      b.tokens = Math.min(this.limits.burst, b.tokens + ((now - b.atMs) / 1000) * this.limits.perSecond);
      b.atMs = now;
      // Full again: nothing to remember.
      if (b.tokens >= this.limits.burst && !create) {
        this.sources.delete(source);
        return null;
      }
      return b;
    }
    if (!create) return null;
    if (this.sources.size >= this.limits.maxSources) this.sources.delete(this.sources.keys().next().value!);
    b = { tokens: this.limits.burst, atMs: now };
    this.sources.set(source, b);
    return b;
  }
}

/**
 * At most `perSource` connections open at once from one address on
 * `server` (net, http, https or tls: the raw socket's 'connection'); the
 * next ones are closed at once, before a byte of theirs is read. 0: no
 * limit. `sourceOf` names a socket's source (its remote address unless said).
 */
export function limitConnectionsPerSource(server: Server, perSource: number, onRefused?: (source: string) => void, sourceOf: (s: Socket) => string = (s) => s.remoteAddress ?? ''): ConnectionCounts {
  const counts = new ConnectionCounts();
  if (perSource <= 0) return counts;
  server.on('connection', (socket: Socket) => {
    const source = sourceOf(socket);
    if (!counts.tryOpen(source, perSource)) {
      socket.destroy();
      onRefused?.(source);
      return;
    }
    socket.once('close', () => counts.close(source));
  });
  return counts;
}

/**
 * What to call for each connection refused past a per-source limit: one
 * warning per `everyMs` at most, however hard someone knocks, saying how
 * many were refused since the last one.
 */
export function refusalWarner(warn: (fields: { source: string; refused: number; limit: number }) => void, limit: number, everyMs = 10_000): (source: string) => void {
  let refused = 0;
  let warnedAtMs = 0;
  return (source) => {
    refused++;
    if (Date.now() - warnedAtMs < everyMs) return;
    warnedAtMs = Date.now();
    warn({ source, refused, limit });
    refused = 0;
  };
}

/** Open connections per source. */
export class ConnectionCounts {
  private readonly open = new Map<string, number>();

  tryOpen(source: string, limit: number): boolean {
    const n = this.open.get(source) ?? 0;
    if (n >= limit) return false;
    this.open.set(source, n + 1);
    return true;
  }

  close(source: string): void {
    const n = (this.open.get(source) ?? 1) - 1;
    if (n <= 0) this.open.delete(source);
    else this.open.set(source, n);
  }

  of(source: string): number {
    return this.open.get(source) ?? 0;
  }
}
