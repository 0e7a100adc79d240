import type { Logger } from '../src/log.js';
import { whenReady, type RedisClient } from '../src/redis/connection.js';

export interface HostEvent {
  host: string;
  sandbox: string;
  state: string;
  why: string;
}

/** How long an event may stay unacknowledged with a consumer before another master takes it. */
const CLAIM_IDLE_MS = 30_000;
const BLOCK_MS = 2000;
const GROUP = 'masters';

/**
 * The managers' reports of containers that stopped on their own (the
 * hostEvents stream), read by every master through one consumer group, so
 * each event is handled by one master and acknowledged once handled. An
 * event a master took and never acknowledged (it died) is claimed by
 * another after CLAIM_IDLE_MS. Handling is idempotent (markSandboxLost checks
 * the sandbox is running on that host), so an event handled twice is harmless,
 * and the reconciler's pass over the tables is the backstop for any missed.
 */
export class HostEvents {
  private running: Promise<void> | null = null;
  private stopped = false;
  private reader: RedisClient | null = null;

  constructor(
    private readonly redis: RedisClient,
    private readonly stream: string,
    private readonly consumer: string,
    private readonly log: Logger,
  ) {}

  start(handle: (e: HostEvent) => Promise<unknown>): void {
    if (this.running || this.stopped) return;
    // A blocking read needs a connection of its own.
    // (Redis and Cluster both have duplicate(), with different optional arguments.)
    const reader = (this.redis.duplicate as () => RedisClient).call(this.redis);
    reader.on('error', (err: unknown) => this.log.debug({ err }, 'host events connection'));
    this.reader = reader;
    this.running = this.loop(handle);
  }

  private async loop(handle: (e: HostEvent) => Promise<unknown>): Promise<void> {
    let failures = 0;
    // A fail-fast client refuses commands until it is connected.
    await whenReady(this.reader!, 5000);
    let nextClaim = 0;
    while (!this.stopped) {
      try {
        await this.ensureGroup();
        if (Date.now() >= nextClaim) {
          nextClaim = Date.now() + CLAIM_IDLE_MS / 2;
          const claimed = (await this.redis.xautoclaim(this.stream, GROUP, this.consumer, CLAIM_IDLE_MS, '0', 'COUNT', 100)) as [string, Array<[string, string[]]>];
          await this.handleAll(claimed[1] ?? [], handle);
        }
        const res = (await this.reader!.xreadgroup('GROUP', GROUP, this.consumer, 'COUNT', 100, 'BLOCK', BLOCK_MS, 'STREAMS', this.stream, '>')) as
          | Array<[string, Array<[string, string[]]>]>
          | null;
        if (res) for (const [, entries] of res) await this.handleAll(entries, handle);
        failures = 0;
      } catch (err) {
        if (this.stopped) return;
        failures++;
        if (failures === 1) this.log.warn({ err }, 'reading host events failed; retrying');
        await new Promise((r) => setTimeout(r, Math.min(100 * 2 ** failures, 2000)));
      }
    }
  }

  private groupReady = false;

  private async ensureGroup(): Promise<void> {
    if (this.groupReady) return;
    try {
      // From the start of the stream: events written before any master read them are handled too.
      await this.redis.xgroup('CREATE', this.stream, GROUP, '0', 'MKSTREAM');
    } catch (err) {
      if (!String((err as Error).message).includes('BUSYGROUP')) throw err;
    }
    this.groupReady = true;
  }

  private async handleAll(entries: Array<[string, string[]] | null>, handle: (e: HostEvent) => Promise<unknown>): Promise<void> {
    for (const entry of entries) {
      if (!entry) continue;
      const [id, flat] = entry;
      const f: Record<string, string> = {};
      for (let i = 0; i + 1 < (flat?.length ?? 0); i += 2) f[flat[i]!] = flat[i + 1]!;
      try {
        if (f.host && f.sandbox) await handle({ host: f.host, sandbox: f.sandbox, state: f.state ?? '', why: f.why ?? '' });
        await this.redis.xack(this.stream, GROUP, id);
      } catch (err) {
        // Left pending: claimed again later (by this master or another).
        this.log.warn({ err, event: id, sandboxId: f.sandbox }, 'handling a host event failed; it is retried');
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    // Ends the blocking read at once.
    this.reader?.disconnect();
    await this.running;
    this.running = null;
  }
}
