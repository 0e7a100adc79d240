import { RECORD_TYPES, type NameRecords } from '../src/protocol/dns.js';
import type { RedisClient } from '../src/redis/connection.js';
import type { FeedEntry, RecordStore } from './store.js';
import { ZoneData } from './zone-data.js';

/** Names per HSCAN page: small enough that Redis never blocks long on one, large enough that round trips do not dominate. */
const SCAN_COUNT = 2000;

export interface LoadedZone {
  data: ZoneData;
  serial: number;
  feedId: string;
  /** Hash values that were not record sets (written by something other than the script): left out. */
  skipped: number;
}

/**
 * Load the zone from Redis into fresh data, without blocking Redis or this
 * server: the feed position first, then the hash page by page (HSCAN), then
 * every feed entry written meanwhile. Each feed entry holds the whole new
 * state of the names it touches, so replaying the entries after the position
 * over pages read later yields the zone as of the last entry, whatever the
 * pages saw (HSCAN returns every name present for the whole scan; names
 * changed during it are in the entries). The replay runs on the new data
 * before anyone answers from it, so no in-between state is ever served.
 *
 * Returns null when the feed lost entries meanwhile (trimmed past the
 * position, or Redis emptied): the caller loads again.
 */
export async function loadZone(store: RecordStore, client: RedisClient): Promise<LoadedZone | null> {
  const pos = await store.position(client);
  const data = new ZoneData();
  // Most names share a few values (a host's address): parse each distinct value once.
  const seen = new Map<string, { id: number; recs: NameRecords }>();
  let skipped = 0;
  // The next page is asked for before this one is taken in, so Redis and this process work at once.
  let page = store.scan(client, '0', SCAN_COUNT);
  for (;;) {
    const [next, flat] = await page;
    if (next !== '0') page = store.scan(client, next, SCAN_COUNT);
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const name = flat[i]!;
      const raw = flat[i + 1]!;
      const hit = seen.get(raw);
      // The id is re-used only while it still holds the same set (ids of released sets are handed out again).
      if (hit && data.sets.get(hit.id) === hit.recs) {
        data.sets.acquireId(hit.id);
        data.setId(name, hit.id);
        continue;
      }
      const recs = parseRecords(raw);
      if (!recs) {
        skipped++;
        continue;
      }
      const id = data.sets.acquire(recs);
      data.setId(name, id);
      seen.set(raw, { id, recs: data.sets.get(id)! });
    }
    if (next === '0') break;
  }

  let { serial, feedId } = pos;
  for (;;) {
    const entries = await store.readFeed(client, feedId, null);
    if (entries.length === 0) break;
    for (const e of entries) {
      if (!follows(serial, e)) return null;
      for (const [name, recs] of e.changes) data.set(name, recs);
      serial = e.serial;
      feedId = e.id;
    }
  }
  return { data, serial, feedId, skipped };
}

/**
 * Entries carry consecutive serials; anything else means entries were missed
 * (a trimmed feed) or Redis was emptied. A zone that never had a serial
 * takes its first one from the feed.
 */
export function follows(serial: number, e: FeedEntry): boolean {
  return serial === 0 || e.serial === serial + 1;
}

/** A hash value as the script writes it, or null: one bad value must not fail the load or reach the answer path. */
export function parseRecords(raw: string): NameRecords | null {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    return null;
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return null;
  const recs = v as Record<string, unknown>;
  let any = false;
  for (const t of RECORD_TYPES) {
    const set = recs[t] as { ttl?: unknown; values?: unknown } | undefined;
    if (set === undefined) continue;
    if (typeof set !== 'object' || set === null || typeof set.ttl !== 'number' || !Array.isArray(set.values)) return null;
    if (!set.values.every((x) => typeof x === 'string')) return null;
    any = true;
  }
  return any ? (recs as NameRecords) : null;
}
