import type { Logger } from '../src/log.js';
import { whenReady, type RedisClient } from '../src/redis/connection.js';
import type { RecordStore } from './store.js';
import type { Zone } from './zone.js';

const BLOCK_MS = 5000;
const MAX_BACKOFF_MS = 2000;

/**
 * Keeps the in-memory zone equal to Redis: a consistent snapshot at start,
 * then every entry of the change feed (a Redis stream, read with a blocking
 * XREAD on its own connection). After any Redis error, or a gap in the serials
 * (a trimmed feed, an emptied Redis), it reloads the whole zone. Meanwhile the
 * zone keeps serving what it last knew.
 */
export class ZoneFeed {
  private stopped = false;
  private loop: Promise<void> | null = null;
  private feedId = '0-0';
  private firstLoad: { resolve: () => void; promise: Promise<void> };
  errors = 0;
  reloads = 0;

  constructor(
    private readonly store: RecordStore,
    private readonly client: RedisClient,
    private readonly zone: Zone,
    private readonly log: Logger,
  ) {
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    this.firstLoad = { resolve, promise };
  }

  /** Start following; the returned promise settles once the zone is first loaded. */
  start(): Promise<void> {
    this.loop ??= this.run();
    return this.firstLoad.promise;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.firstLoad.resolve();
    this.client.disconnect();
    await this.loop;
  }

  private async run(): Promise<void> {
    let needLoad = true;
    let backoff = 50;
    let failing = false;
    while (!this.stopped) {
      try {
        if (needLoad) {
          // A connection (re)establishing itself is waited for, so start-up is not reported as an outage.
          await whenReady(this.client, 2000);
          const snap = await this.store.snapshot(this.client);
          this.zone.replaceAll(snap.entries, snap.serial);
          this.feedId = snap.feedId;
          needLoad = false;
          this.reloads++;
          this.log.info({ names: this.zone.size, serial: snap.serial }, 'zone loaded from redis');
          this.firstLoad.resolve();
        }
        if (failing) {
          failing = false;
          this.log.info('redis reachable again; zone reloaded');
        }
        backoff = 50;
        const entries = await this.store.readFeed(this.client, this.feedId, BLOCK_MS);
        for (const e of entries) {
          // A zone that never had a serial takes its first one from the feed.
          if (e.serial !== this.zone.serial + 1 && this.zone.serial !== 0) {
            // Entries after our snapshot carry consecutive serials; anything
            // else means we missed some or Redis was emptied.
            this.log.warn({ have: this.zone.serial, got: e.serial }, 'change feed gap; reloading zone');
            needLoad = true;
            break;
          }
          this.zone.apply(e.changes, e.serial);
          this.feedId = e.id;
        }
      } catch (err) {
        if (this.stopped) break;
        this.errors++;
        needLoad = true;
        if (!failing) {
          failing = true;
          this.log.warn({ err }, 'redis unreachable; serving the zone as last known');
        }
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
      }
    }
  }
}
