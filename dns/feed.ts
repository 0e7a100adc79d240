import { performance } from 'node:perf_hooks';
import type { Logger } from '../src/log.js';
import { whenReady, type RedisClient } from '../src/redis/connection.js';
import { follows, loadZone } from './load.js';
import type { RecordStore } from './store.js';
import type { Zone } from './zone.js';

const BLOCK_MS = 5000;
const MAX_BACKOFF_MS = 2000;

/**
 * Keeps the in-memory zone equal to Redis: a load at start (unless the zone
 * already holds a copy from a file, which is checked against Redis and caught
 * up through the feed), then every entry of the change feed (a Redis stream,
 * read with a blocking XREAD on its own connection). After any Redis error,
 * or a gap in the serials (a trimmed feed, an emptied Redis), it loads the
 * whole zone again in the background. Meanwhile the zone keeps serving what
 * it last knew.
 */
export class ZoneFeed {
  private stopped = false;
  private loop: Promise<void> | null = null;
  private firstLoad: { resolve: () => void; promise: Promise<void> };
  errors = 0;
  reloads = 0;
  /** How long the last load from Redis took. */
  lastLoadMs = 0;

  constructor(
    private readonly store: RecordStore,
    private readonly client: RedisClient,
    private readonly zone: Zone,
    private readonly log: Logger,
    /** Seconds from each entry's append (its stream id's time, Redis's clock) to its being served here. */
    private readonly observeLag: (seconds: number) => void = () => {},
  ) {
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    this.firstLoad = { resolve, promise };
  }

  /** Start following; the returned promise settles once the zone is loaded (at once when it holds a copy already). */
  start(): Promise<void> {
    if (this.zone.loaded) this.firstLoad.resolve();
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
    // A copy from a file is checked first: Redis may have been emptied or replaced since it was written.
    let check = this.zone.loaded;
    /** The serial Redis had when the copy was checked: the copy is current once it gets there. */
    let catchUpTo = Infinity;
    let needLoad = !this.zone.loaded;
    let backoff = 50;
    let failing = false;
    while (!this.stopped) {
      try {
        // A connection (re)establishing itself is waited for, so start-up is not reported as an outage.
        if (needLoad || check) await whenReady(this.client, 2000);
        if (check) {
          check = false;
          const pos = await this.store.position(this.client);
          const z = this.zone;
          if (pos.serial < z.serial || (pos.serial === z.serial && pos.feedId !== z.feedId)) {
            this.log.warn({ have: z.serial, redis: pos.serial }, 'snapshot file does not match redis; loading the zone');
            needLoad = true;
          } else {
            catchUpTo = pos.serial;
          }
        }
        if (needLoad) {
          const started = performance.now();
          const loaded = await loadZone(this.store, this.client);
          if (!loaded) {
            this.log.warn('change feed lost entries while loading; loading again');
            continue;
          }
          this.zone.replace(loaded.data, loaded.serial, loaded.feedId, true);
          needLoad = false;
          this.reloads++;
          this.lastLoadMs = performance.now() - started;
          if (loaded.skipped) this.log.warn({ skipped: loaded.skipped }, 'zone values that are no record sets were left out');
          this.log.info({ names: this.zone.size, serial: loaded.serial, ms: Math.round(this.lastLoadMs) }, 'zone loaded from redis');
          this.firstLoad.resolve();
        }
        if (!this.zone.current && this.zone.serial >= catchUpTo) {
          this.zone.current = true;
          this.log.info({ serial: this.zone.serial }, 'zone from the file caught up with the feed');
        }
        if (failing) {
          failing = false;
          this.log.info('redis reachable again; zone reloaded');
        }
        backoff = 50;
        const entries = await this.store.readFeed(this.client, this.zone.feedId, BLOCK_MS);
        for (const e of entries) {
          if (!follows(this.zone.serial, e)) {
            this.log.warn({ have: this.zone.serial, got: e.serial }, 'change feed gap; reloading zone');
            needLoad = true;
            break;
          }
          this.zone.apply(e.changes, e.serial, e.id);
          this.observeLag(Math.max(0, Date.now() - Number.parseInt(e.id, 10)) / 1000);
        }
      } catch (err) {
        if (this.stopped) break;
        this.errors++;
        needLoad = true;
        check = false;
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
