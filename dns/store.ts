import type { Change, NameRecords } from '../src/protocol/dns.js';
import { OmegaError } from '../src/errors.js';
import type { RedisClient } from '../src/redis/connection.js';
import type { DnsKeys } from '../src/redis/keys.js';
import { defineScripts, ScriptFailure } from '../src/redis/scripts.js';

/** Feed entries kept in Redis; a server further behind than this reloads the zone. */
const FEED_LENGTH = 10_000;
/** Feed entries read at once. */
const FEED_READ_COUNT = 1000;

/** Where the zone stands in Redis: the newest feed entry and the serial it carries. */
export interface FeedPosition {
  /** Stream id of the newest feed entry ('0-0' when there is none); follow the feed from here. */
  feedId: string;
  serial: number;
}

export interface FeedEntry {
  id: string;
  serial: number;
  changes: Array<[string, NameRecords | null]>;
}

/**
 * The zone's records in Redis. Writers go through one Lua script so a batch
 * lands whole, bumps the serial and appends one feed entry, atomically.
 */
export class RecordStore {
  errors = 0;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: DnsKeys,
  ) {
    defineScripts(redis);
  }

  /** Apply changes (names relative, values normalized); returns the new serial. */
  async apply(changes: Change[]): Promise<number> {
    const k = this.keys;
    const res = await this.call(() =>
      this.redis.applyDnsChanges(
        k.zone,
        k.names,
        k.serial,
        k.changes,
        JSON.stringify(changes),
        FEED_LENGTH,
        Math.floor(Date.now() / 1000),
      ),
    );
    if (res[0] === ScriptFailure.NotFound) {
      const c = changes[res[1] ?? 0]!;
      throw new OmegaError('RECORD_NOT_FOUND', `no ${c.type ? `${c.type} record` : 'record'} exists at ${c.name}`, {
        details: { index: res[1] },
      });
    }
    return res[0];
  }

  /** Whether each of these names has records (one HMGET). */
  async present(names: string[]): Promise<boolean[]> {
    const raw = await this.call(() => this.redis.hmget(this.keys.zone, ...names));
    return raw.map((v) => v !== null);
  }

  async get(name: string): Promise<NameRecords | null> {
    const raw = await this.call(() => this.redis.hget(this.keys.zone, name));
    return raw ? (JSON.parse(raw) as NameRecords) : null;
  }

  /** One page of names in lexical order, starting after `cursor`, limited to names starting with `prefix`. */
  async list(prefix: string, cursor: string | undefined, limit: number): Promise<{ items: Array<[string, NameRecords]>; next: string | null }> {
    const min = cursor !== undefined && cursor >= prefix ? `(${cursor}` : `[${prefix}`;
    const max = prefix === '' ? '+' : `(${prefix}\xff`;
    const names = await this.call(() => this.redis.zrangebylex(this.keys.names, min, max, 'LIMIT', 0, limit + 1));
    const page = names.slice(0, limit);
    if (page.length === 0) return { items: [], next: null };
    const values = await this.call(() => this.redis.hmget(this.keys.zone, ...page));
    const items: Array<[string, NameRecords]> = [];
    page.forEach((n, i) => {
      const v = values[i];
      if (v) items.push([n, JSON.parse(v) as NameRecords]);
    });
    return { items, next: names.length > limit ? page[page.length - 1]! : null };
  }

  /** The feed's newest entry and the serial, read together (one MULTI). */
  async position(client: RedisClient): Promise<FeedPosition> {
    const k = this.keys;
    const res = await client.multi().xrevrange(k.changes, '+', '-', 'COUNT', 1).get(k.serial).exec();
    if (!res) throw new Error('position transaction aborted');
    for (const [err] of res) if (err) throw err;
    const last = res[0]![1] as Array<[string, string[]]>;
    return { feedId: last[0]?.[0] ?? '0-0', serial: Number(res[1]![1] ?? 0) };
  }

  /**
   * One page of the zone hash: [next cursor ('0' at the end), name, JSON, name, JSON, ...].
   * Paged with HSCAN so a load never makes Redis build one reply of the whole zone.
   */
  async scan(client: RedisClient, cursor: string, count: number): Promise<[string, string[]]> {
    return (await client.hscan(this.keys.zone, cursor, 'COUNT', count)) as [string, string[]];
  }

  /**
   * Feed entries after `fromId`, on a connection reserved for it: waiting up
   * to blockMs for the first, or (null) answering at once.
   */
  async readFeed(client: RedisClient, fromId: string, blockMs: number | null): Promise<FeedEntry[]> {
    const wait = blockMs === null ? [] : ['BLOCK', blockMs];
    const res = (await client.xread('COUNT', FEED_READ_COUNT, ...(wait as ['BLOCK', number]), 'STREAMS', this.keys.changes, fromId)) as
      | Array<[string, Array<[string, string[]]>]>
      | null;
    if (!res) return [];
    const out: FeedEntry[] = [];
    for (const [id, fields] of res[0]![1]) {
      const f: Record<string, string> = {};
      for (let i = 0; i < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!;
      const changes = JSON.parse(f.changes ?? '{}') as Record<string, NameRecords | null>;
      out.push({ id, serial: Number(f.serial), changes: Object.entries(changes) });
    }
    return out;
  }

  async ping(): Promise<boolean> {
    try {
      await this.redis.ping();
      return true;
    } catch {
      return false;
    }
  }

  /** Run a Redis call; a connection failure becomes REDIS_UNAVAILABLE (HTTP 503). */
  private async call<T>(fn: () => Promise<T>): Promise<T> {
    if (this.redis.status !== 'ready') {
      this.errors++;
      throw new OmegaError('REDIS_UNAVAILABLE');
    }
    try {
      return await fn();
    } catch (err) {
      if (err instanceof OmegaError) throw err;
      // A reply error is a bug on our side (e.g. a script error), not an outage.
      if ((err as Error).name === 'ReplyError') throw new OmegaError('INTERNAL', undefined, { cause: err });
      this.errors++;
      throw new OmegaError('REDIS_UNAVAILABLE', undefined, { cause: err });
    }
  }
}
