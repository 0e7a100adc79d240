/**
 * Response rate limiting for UDP, per source network (IPv4 /24, IPv6 the first four written groups, about a /64),
 * after BIND's RRL: a source that asks for more than `perSecond` answers in a
 * second gets no answer, except every `slip`-th one, which is sent truncated so
 * a real client behind that address retries over TCP (which cannot be spoofed).
 * This keeps the server from being an amplifier for spoofed-source floods.
 */
export type RrlVerdict = 'send' | 'drop' | 'slip';

export class ResponseRateLimiter {
  private window = 0;
  private counts = new Map<string, number>();

  constructor(
    private readonly perSecond: number,
    private readonly slip: number,
    /** Most source networks tracked in one second; beyond that, new ones are limited at once. */
    private readonly maxTracked = 100_000,
  ) {}

  get enabled(): boolean {
    return this.perSecond > 0;
  }

  check(address: string, nowMs: number): RrlVerdict {
    const second = Math.floor(nowMs / 1000);
    if (second !== this.window) {
      this.window = second;
      this.counts.clear();
    }
    const key = networkOf(address);
    let n = this.counts.get(key);
    if (n === undefined) {
      if (this.counts.size >= this.maxTracked) return 'drop';
      n = 0;
    }
    n++;
    this.counts.set(key, n);
    if (n <= this.perSecond) return 'send';
    return this.slip > 0 && (n - this.perSecond) % this.slip === 0 ? 'slip' : 'drop';
  }
}

function networkOf(address: string): string {
  if (address.includes(':')) return address.split(':').slice(0, 4).join(':');
  return address.slice(0, address.lastIndexOf('.'));
}
