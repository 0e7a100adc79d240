import { EventEmitter } from 'node:events';
import type { NameRecords, RecordType } from '../src/protocol/dns.js';

/**
 * The zone held in memory: every name's record sets plus the empty
 * non-terminals they imply, so a query never waits on Redis.
 *
 * Names are absolute, lower case, without the trailing dot.
 */
export class Zone extends EventEmitter {
  readonly origin: string;
  private nodes = new Map<string, NameRecords>();
  /** Ancestors of stored names that have no records of their own (RFC 4592 §2.2.2), by reference count. */
  private ents = new Map<string, number>();
  serial = 0;
  loaded = false;

  constructor(origin: string) {
    super();
    this.origin = origin;
  }

  get size(): number {
    return this.nodes.size;
  }

  /** Replace everything (a load or reload from Redis). Relative names in, as Redis stores them. */
  replaceAll(entries: Iterable<[string, NameRecords]>, serial: number): void {
    this.nodes = new Map();
    this.ents = new Map();
    for (const [rel, recs] of entries) this.setAbsolute(this.absolute(rel), recs);
    this.serial = serial;
    this.loaded = true;
    this.emit('change', { all: true, names: [], shapeChanged: true } satisfies ZoneChange);
  }

  /** Apply one change from the feed: a relative name's new record sets, or null when it is gone. */
  apply(changes: Iterable<[string, NameRecords | null]>, serial: number): void {
    const names: string[] = [];
    let shapeChanged = false;
    for (const [rel, recs] of changes) {
      const name = this.absolute(rel);
      names.push(name);
      if (this.setAbsolute(name, recs) || rel.startsWith('*.')) shapeChanged = true;
    }
    this.serial = serial;
    this.emit('change', { all: false, names, shapeChanged } satisfies ZoneChange);
  }

  get(name: string): NameRecords | undefined {
    return this.nodes.get(name);
  }

  /** True when the name owns records or is an empty non-terminal. */
  exists(name: string): boolean {
    return name === this.origin || this.nodes.has(name) || this.ents.has(name);
  }

  /**
   * Find what answers `name` (absolute, lower case, inside the zone):
   * the name's own node, else the wildcard at its closest encloser
   * (RFC 4592 §3.3.1), else nothing (NXDOMAIN).
   */
  resolve(name: string): { node: NameRecords | null; wildcard: boolean } | null {
    const own = this.nodes.get(name);
    if (own) return { node: own, wildcard: false };
    if (this.ents.has(name) || name === this.origin) return { node: null, wildcard: false };
    // Closest encloser: the longest existing ancestor.
    let ce = name;
    for (;;) {
      const dot = ce.indexOf('.');
      if (dot < 0) return null;
      ce = ce.slice(dot + 1);
      if (this.exists(ce)) break;
      if (ce === this.origin || ce.length < this.origin.length) return null;
    }
    const source = this.nodes.get(`*.${ce}`);
    return source ? { node: source, wildcard: true } : null;
  }

  private absolute(rel: string): string {
    return `${rel}.${this.origin}`;
  }

  /** Returns true when the name came into being or ceased to exist. */
  private setAbsolute(name: string, recs: NameRecords | null): boolean {
    const had = this.nodes.has(name);
    const has = recs !== null && Object.keys(recs).length > 0;
    if (has) this.nodes.set(name, recs);
    else this.nodes.delete(name);
    if (had === has) return false;
    // Maintain the empty non-terminals between the name and the apex.
    let anc = name;
    for (;;) {
      const dot = anc.indexOf('.');
      if (dot < 0) break;
      anc = anc.slice(dot + 1);
      if (anc === this.origin || !anc.endsWith(this.origin)) break;
      const n = (this.ents.get(anc) ?? 0) + (has ? 1 : -1);
      if (n > 0) this.ents.set(anc, n);
      else this.ents.delete(anc);
    }
    return true;
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
