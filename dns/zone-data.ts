import { RECORD_TYPES, type NameRecords } from '../src/protocol/dns.js';

/**
 * One number per name holds both what the name owns and how many names with
 * records lie below it: `set + SPAN * below`, where `set` is 1 + the id of its
 * interned record sets (0: none, an empty non-terminal). A Map of strings to
 * small integers keeps no object per name: V8 stores integers below 2^31 in
 * the Map's own slot (a name with 128 or more names below it costs one boxed
 * number, and such names are few).
 */
const SPAN = 2 ** 24;

/**
 * The distinct record sets of a zone, each held once and shared by every name
 * that has it: two thousand sandboxes on one host all answer the same A
 * record, so the zone holds one object for them, not two thousand. Counted
 * by reference, so a set no name has any more is dropped and its id re-used.
 */
export class RecordSets {
  private readonly byKey = new Map<string, number>();
  private readonly sets: Array<NameRecords | undefined> = [];
  private readonly keys: Array<string | undefined> = [];
  private readonly refs: number[] = [];
  private readonly free: number[] = [];

  get size(): number {
    return this.byKey.size;
  }

  get(id: number): NameRecords | undefined {
    return this.sets[id];
  }

  /** The id of `recs` (frozen and kept if new), with one more reference. */
  acquire(recs: NameRecords): number {
    const key = canonicalKey(recs);
    let id = this.byKey.get(key);
    if (id === undefined) {
      id = this.free.pop() ?? this.sets.length;
      if (id >= SPAN - 1) throw new RangeError(`more than ${SPAN - 1} distinct record sets in one zone`);
      this.sets[id] = freeze(recs);
      this.keys[id] = key;
      this.refs[id] = 0;
      this.byKey.set(key, id);
    }
    this.refs[id]!++;
    return id;
  }

  /** One more reference to a set already held (ids from a loader's cache). */
  acquireId(id: number): void {
    this.refs[id]!++;
  }

  release(id: number): void {
    if (--this.refs[id]! > 0) return;
    this.byKey.delete(this.keys[id]!);
    this.sets[id] = undefined;
    this.keys[id] = undefined;
    this.free.push(id);
  }
}

/** Types in one order and values as given (their order is the RRset's order on the wire). */
function canonicalKey(recs: NameRecords): string {
  let key = '';
  for (const t of RECORD_TYPES) {
    const s = recs[t];
    if (s) key += `${t}\x00${s.ttl}\x00${s.values.join('\x00')}\x01`;
  }
  return key;
}

/** A copy holding only the known types, frozen: the answer path shares it and must never change it. */
function freeze(recs: NameRecords): NameRecords {
  const out: NameRecords = {};
  for (const t of RECORD_TYPES) {
    const s = recs[t];
    if (s) out[t] = Object.freeze({ ttl: s.ttl, values: Object.freeze([...s.values]) as string[] });
  }
  return Object.freeze(out);
}

function hasRecords(recs: NameRecords | null): recs is NameRecords {
  if (!recs) return false;
  for (const t of RECORD_TYPES) if (recs[t]) return true;
  return false;
}

/**
 * The names of one zone, relative to its origin (`abc`, `*.abc`), and the
 * empty non-terminals they imply (RFC 4592 §2.2.2: a name that owns nothing
 * but has names below it exists, and blocks the wildcard above it).
 *
 * Built whole by a load (in the background, while the previous copy serves)
 * and then changed name by name by the feed.
 */
export class ZoneData {
  readonly sets = new RecordSets();
  private readonly nodes = new Map<string, number>();
  private owners = 0;

  /** Names that own records. */
  get size(): number {
    return this.owners;
  }

  get(rel: string): NameRecords | undefined {
    const v = this.nodes.get(rel);
    return v === undefined || v % SPAN === 0 ? undefined : this.sets.get((v % SPAN) - 1);
  }

  /** The name owns records or has names with records below it. */
  has(rel: string): boolean {
    return this.nodes.has(rel);
  }

  /** Give a name its record sets (null or none: it owns nothing); true when it came into being or ceased to exist. */
  set(rel: string, recs: NameRecords | null): boolean {
    return this.setId(rel, hasRecords(recs) ? this.sets.acquire(recs) : -1);
  }

  /**
   * Give a name the interned set `id`, already acquired for it (-1: none).
   * The loaders call this with ids they cache by raw value.
   */
  setId(rel: string, id: number): boolean {
    const old = this.nodes.get(rel) ?? 0;
    const oldSet = old % SPAN;
    const below = old - oldSet;
    if (oldSet > 0) this.sets.release(oldSet - 1);
    const value = below + id + 1;
    if (value === 0) this.nodes.delete(rel);
    else this.nodes.set(rel, value);
    const had = oldSet > 0;
    const has = id >= 0;
    if (had === has) return false;
    this.owners += has ? 1 : -1;
    // Every ancestor up to (not including) the apex counts the names with records below it.
    for (let dot = rel.indexOf('.'); dot >= 0; dot = rel.indexOf('.', dot + 1)) {
      const anc = rel.slice(dot + 1);
      const v = (this.nodes.get(anc) ?? 0) + (has ? SPAN : -SPAN);
      if (v === 0) this.nodes.delete(anc);
      else this.nodes.set(anc, v);
    }
    return true;
  }

  /** Every name that owns records, with its sets. */
  *entries(): Generator<[string, NameRecords]> {
    for (const [rel, v] of this.nodes) {
      const set = v % SPAN;
      if (set > 0) yield [rel, this.sets.get(set - 1)!];
    }
  }
}
