import { randomBytes } from 'node:crypto';
import { open, readFile, rename, rm } from 'node:fs/promises';
import type { Logger } from '../src/log.js';
import type { NameRecords } from '../src/protocol/dns.js';
import type { Zone } from './zone.js';
import { ZoneData } from './zone-data.js';
import { parseRecords } from './load.js';

/**
 * The zone as a file the server keeps, so that a restart answers at once
 * from what it knew (then catches up with the feed, or reloads from Redis
 * in the background) instead of answering SERVFAIL for as long as a load
 * takes.
 *
 * Layout: MAGIC, a u32 (LE) header length, the header as JSON
 * {origin, serial, feedId, names, sets: [record sets...]}, then `names`
 * times: u16 length, the relative name (UTF-8), u32 index into `sets`.
 */
const MAGIC = Buffer.from('OMEGA-DNS-ZONE 1\n');
/** Names encoded between two yields to the event loop, so writing never holds up answers for long (2,000 still showed in propagation's p99). */
const NAMES_PER_SLICE = 500;
const CHUNK_BYTES = 1 << 20;

export interface SnapshotFile {
  data: ZoneData;
  serial: number;
  feedId: string;
}

interface Header {
  origin: string;
  serial: number;
  feedId: string;
  names: number;
  sets: NameRecords[];
}

/**
 * Write the zone to `path` (through a temp file and a rename, so a process
 * that dies mid-write leaves the previous file whole). Not synced to disk: a
 * machine that goes down may leave the file cut short, which the reader
 * refuses (the server then loads from Redis), while an fsync every interval
 * held up every server's answers here (feed propagation p99 7 -> 385 ms,
 * bench-dns-scale at 200,000 names). Its position is taken first:
 * names changed while the slices are written are newer than the position, and
 * the feed entries after it bring them back to the same state on restart.
 */
export async function writeSnapshot(path: string, zone: Zone, opts: { yieldBetweenSlices: boolean }): Promise<{ names: number; bytes: number }> {
  const { serial, feedId } = zone;
  const setIndex = new Map<NameRecords, number>();
  const sets: NameRecords[] = [];
  const chunks: Buffer[] = [];
  let buf = Buffer.allocUnsafe(CHUNK_BYTES);
  let off = 0;
  let names = 0;
  for (const [rel, recs] of zone.entries()) {
    let idx = setIndex.get(recs);
    if (idx === undefined) {
      idx = sets.length;
      sets.push(recs);
      setIndex.set(recs, idx);
    }
    // Room for the worst case (3 UTF-8 bytes a UTF-16 unit), so the name is encoded once, in place.
    if (off + rel.length * 3 + 6 > buf.length) {
      chunks.push(buf.subarray(0, off));
      buf = Buffer.allocUnsafe(Math.max(CHUNK_BYTES, rel.length * 3 + 6));
      off = 0;
    }
    const len = buf.write(rel, off + 2, 'utf8');
    buf.writeUInt16LE(len, off);
    off = buf.writeUInt32LE(idx, off + 2 + len);
    if (++names % NAMES_PER_SLICE === 0 && opts.yieldBetweenSlices) await new Promise((r) => setImmediate(r));
  }
  chunks.push(buf.subarray(0, off));
  const header = Buffer.from(JSON.stringify({ origin: zone.origin, serial, feedId, names, sets } satisfies Header));
  const length = Buffer.alloc(4);
  length.writeUInt32LE(header.length);
  const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  const fh = await open(tmp, 'w', 0o600);
  let bytes = 0;
  try {
    for (const part of [MAGIC, length, header, ...chunks]) {
      await fh.write(part);
      bytes += part.length;
    }
  } catch (err) {
    await fh.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  await rename(tmp, path);
  return { names, bytes };
}

/** Why a snapshot file was not used. */
export class SnapshotError extends Error {
  override name = 'SnapshotError';
}

/** Read a snapshot file; null when there is none, SnapshotError when it is not a whole file of this zone. */
export async function readSnapshot(path: string, origin: string): Promise<SnapshotFile | null> {
  let file: Buffer;
  try {
    file = await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  if (file.length < MAGIC.length + 4 || !file.subarray(0, MAGIC.length).equals(MAGIC)) throw new SnapshotError('not a zone snapshot');
  const headerLength = file.readUInt32LE(MAGIC.length);
  let off = MAGIC.length + 4 + headerLength;
  if (off > file.length) throw new SnapshotError('truncated header');
  let h: Header;
  try {
    h = JSON.parse(file.toString('utf8', MAGIC.length + 4, off)) as Header;
  } catch {
    throw new SnapshotError('unreadable header');
  }
  if (h.origin !== origin) throw new SnapshotError(`a file of zone ${h.origin}, not ${origin}`);
  if (!Number.isSafeInteger(h.serial) || typeof h.feedId !== 'string' || !Number.isSafeInteger(h.names) || !Array.isArray(h.sets)) {
    throw new SnapshotError('bad header');
  }
  const data = new ZoneData();
  const ids = h.sets.map((recs) => {
    const checked = parseRecords(JSON.stringify(recs));
    if (!checked) throw new SnapshotError('bad record set');
    return data.sets.acquire(checked);
  });
  for (let n = 0; n < h.names; n++) {
    if (off + 2 > file.length) throw new SnapshotError('truncated');
    const len = file.readUInt16LE(off);
    if (off + 2 + len + 4 > file.length) throw new SnapshotError('truncated');
    const rel = file.toString('utf8', off + 2, off + 2 + len);
    const id = ids[file.readUInt32LE(off + 2 + len)];
    if (id === undefined) throw new SnapshotError('bad record set index');
    off += 2 + len + 4;
    data.sets.acquireId(id);
    data.setId(rel, id);
  }
  if (off !== file.length) throw new SnapshotError('trailing bytes');
  // The references the table took for itself while it was built.
  for (const id of ids) data.sets.release(id);
  return { data, serial: h.serial, feedId: h.feedId };
}

/**
 * Keeps the snapshot file fresh: rewritten every `intervalMs` when the zone
 * changed, and once more at stop (then exact: the feed has stopped), so a
 * restart on purpose answers the whole zone at once and a crash loses at
 * most an interval, which the feed usually still holds.
 */
export class SnapshotKeeper {
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> | null = null;
  private written = '';
  writes = 0;
  errors = 0;

  constructor(
    private readonly path: string,
    private readonly zone: Zone,
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {}

  /** The copy in the file, if there is a usable one; a bad file is reported and left to be overwritten. */
  async read(): Promise<SnapshotFile | null> {
    try {
      const f = await readSnapshot(this.path, this.zone.origin);
      if (f) this.written = `${f.serial} ${f.feedId}`;
      return f;
    } catch (err) {
      this.log.warn({ err, path: this.path }, 'zone snapshot not used');
      return null;
    }
  }

  start(): void {
    this.timer ??= setInterval(() => void this.write(true), this.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.writing;
    await this.write(false);
  }

  private write(yieldBetweenSlices: boolean): Promise<void> {
    this.writing ??= (async () => {
      const at = `${this.zone.serial} ${this.zone.feedId}`;
      if (!this.zone.loaded || at === this.written) return;
      try {
        const r = await writeSnapshot(this.path, this.zone, { yieldBetweenSlices });
        this.written = at;
        this.writes++;
        this.log.debug({ ...r, serial: this.zone.serial }, 'zone snapshot written');
      } catch (err) {
        this.errors++;
        this.log.warn({ err, path: this.path }, 'zone snapshot not written');
      }
    })().finally(() => (this.writing = null));
    return this.writing;
  }
}
