/**
 * Encoded answers by (EDNS state, qtype) and then the lower-cased wire name:
 * two Map lookups and no string building per query.
 */
export class AnswerCache {
  private readonly slots = new Map<number, Map<string, Buffer>>();
  private entries = 0;

  constructor(private readonly maxEntries: number) {}

  get size(): number {
    return this.entries;
  }

  get(slot: number, wireKey: string): Buffer | undefined {
    return this.slots.get(slot)?.get(wireKey);
  }

  set(slot: number, wireKey: string, answer: Buffer): void {
    if (this.maxEntries === 0) return;
    if (this.entries >= this.maxEntries) this.clear();
    let m = this.slots.get(slot);
    if (!m) this.slots.set(slot, (m = new Map()));
    if (!m.has(wireKey)) this.entries++;
    m.set(wireKey, answer);
  }

  /** Drop every answer for one name, whatever its type or EDNS state. */
  deleteName(wireKey: string): void {
    for (const m of this.slots.values()) if (m.delete(wireKey)) this.entries--;
  }

  clear(): void {
    this.slots.clear();
    this.entries = 0;
  }
}

/** The wire form of an absolute lower-case name, as the query parser keys it. */
export function wireKeyOf(name: string): string {
  let out = '';
  for (const label of name.split('.')) out += String.fromCharCode(label.length) + label;
  return `${out}\x00`;
}
