import { EventEmitter } from 'node:events';
import type { NameRecords, RecordType } from '../src/protocol/dns.js';
import { ZoneData } from './zone-data.js';

/**
 * The zone the server answers from, held in memory so a query never waits
 * on Redis. Its data is swapped whole after a (background) load and changed
 * name by name by the feed; every change is announced so cached answers can
 * be dropped.
 *
 * Names in this API are absolute, lower case, without the trailing dot; the
 * data keeps them relative to the origin.
 */
export class Zone extends EventEmitter {
  readonly origin: string;
  private readonly suffix: string;
  private data = new ZoneData();
  serial = 0;
  loaded = false;
  /**
   * False while the data is a copy from a file not yet caught up with Redis:
   * a name missing from it may exist by now, so it must not be denied.
   */
  current = false;
  /** Stream id of the newest feed entry in the data: where following the feed resumes. */
  feedId = '0-0';

  constructor(origin: string) {
    super();
    this.origin = origin;
    this.suffix = `.${origin}`;
  }

  /** Names that own records. */
  get size(): number {
    return this.data.size;
  }

  /** Distinct record sets, each held once. */
  get recordSets(): number {
    return this.data.sets.size;
  }

  /**
   * Serve `data` from now on, at `serial` and feed position `feedId`: a load
   * from Redis (current), or a copy from a file (not current until caught up).
   */
  replace(data: ZoneData, serial: number, feedId: string, current: boolean): void {
    this.data = data;
    this.serial = serial;
    this.feedId = feedId;
    this.loaded = true;
    this.current = current;
    this.emit('change', { all: true, names: [], shapeChanged: true } satisfies ZoneChange);
  }

  /** Apply one feed entry: relative names with their new record sets, or null when gone. */
  apply(changes: Iterable<[string, NameRecords | null]>, serial: number, feedId: string): void {
    const names: string[] = [];
    let shapeChanged = false;
    for (const [rel, recs] of changes) {
      names.push(rel + this.suffix);
      if (this.data.set(rel, recs) || rel.startsWith('*.') || rel === '*') shapeChanged = true;
    }
    this.serial = serial;
    this.feedId = feedId;
    this.emit('change', { all: false, names, shapeChanged } satisfies ZoneChange);
  }

  /** Every name that owns records (relative) with its sets: what a snapshot file keeps. */
  entries(): Iterable<[string, NameRecords]> {
    return this.data.entries();
  }

  get(name: string): NameRecords | undefined {
    const rel = this.relative(name);
    return rel === null ? undefined : this.data.get(rel);
  }

  /** True when the name owns records or is an empty non-terminal. */
  exists(name: string): boolean {
    if (name === this.origin) return true;
    const rel = this.relative(name);
    return rel !== null && this.data.has(rel);
  }

  /**
   * Find what answers `name` (absolute, lower case, inside the zone):
   * the name's own node, else the wildcard at its closest encloser
   * (RFC 4592 §3.3.1), else nothing (NXDOMAIN).
   */
  resolve(name: string): { node: NameRecords | null; wildcard: boolean } | null {
    if (name === this.origin) return { node: null, wildcard: false };
    let rel = this.relative(name);
    if (rel === null) return null;
    if (this.data.has(rel)) return { node: this.data.get(rel) ?? null, wildcard: false };
    // Closest encloser: the longest existing ancestor (the apex at the latest).
    for (;;) {
      const dot = rel.indexOf('.');
      if (dot < 0) {
        const apexWildcard = this.data.get('*');
        return apexWildcard ? { node: apexWildcard, wildcard: true } : null;
      }
      rel = rel.slice(dot + 1);
      if (this.data.has(rel)) break;
    }
    const source = this.data.get(`*.${rel}`);
    return source ? { node: source, wildcard: true } : null;
  }

  private relative(name: string): string | null {
    return name.endsWith(this.suffix) ? name.slice(0, -this.suffix.length) : null;
  }
}

/**
 * What a change touched, so cached answers can be dropped selectively.
 * `shapeChanged`: a name appeared or vanished, or a wildcard changed, which can
 * change the answer for other names (closest enclosers, synthesis).
 */
export interface ZoneChange {
  all: boolean;
  /** Absolute names whose record sets changed. */
  names: string[];
  shapeChanged: boolean;
}

export type { RecordType };
