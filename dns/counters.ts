/**
 * Counters bumped on the query path. They are plain numbers (a Map lookup,
 * no label hashing per query); prom-client reads them at scrape time.
 */
export class DnsCounters {
  /** Common query types (< 256) by (qtype << 6 | rcode), in a flat array: no hashing per query. */
  private readonly common = new Float64Array(256 << 6);
  /** The rest (CAA, private types...). */
  private readonly rare = new Map<number, number>();
  dropped = 0;
  sendErrors = 0;
  truncated = 0;
  rateLimited = 0;

  count(qtype: number, rcode: number): void {
    const key = (qtype << 6) | (rcode & 0x3f);
    if (qtype < 256) this.common[key]!++;
    else this.rare.set(key, (this.rare.get(key) ?? 0) + 1);
  }

  /** (qtype << 6 | rcode) -> queries answered, for the scrape. */
  *answered(): Generator<[number, number]> {
    for (let k = 0; k < this.common.length; k++) if (this.common[k]! > 0) yield [k, this.common[k]!];
    yield* this.rare;
  }
}
