import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { S3Client } from '@aws-sdk/client-s3';
import { OmegaError } from './errors.js';
import { parseSnapshotStoreUrl } from './snapshot-url.js';

/**
 * Where workspace snapshots (compressed tars) are kept, by key:
 *
 *   file:///var/lib/omega/snapshots   a directory: local, or a shared mount (NFS, EFS)
 *   s3://bucket/prefix                any S3-compatible store (OMEGA_S3_ENDPOINT for one
 *                                     that is not AWS), credentials from the AWS SDK's
 *                                     own chain (AWS_ACCESS_KEY_ID, ... or an instance role)
 *
 * Archives are streamed both ways, never held whole in memory: a multipart
 * upload of 8 MiB parts to S3, a temporary file renamed into place in a
 * directory (so a reader never sees half an archive).
 */
export interface SnapshotStore {
  /** The store as it can be shown (no credentials). */
  readonly shown: string;
  put(key: string, body: Readable): Promise<{ bytes: number }>;
  /** The archive; SNAPSHOT_NOT_FOUND when there is none. */
  get(key: string): Promise<Readable>;
  /** Idempotent. */
  delete(key: string): Promise<void>;
}

export interface S3Options {
  endpoint?: string;
  region: string;
}

const KEY = /^[a-z0-9][a-z0-9-]{0,127}$/;

/** A pass-through that counts what flows through it as its reader takes it (a 'data' listener would start the flow before anyone reads). */
function byteCounter(): { stream: Transform; bytes: () => number } {
  let bytes = 0;
  const stream = new Transform({
    transform(chunk: Buffer, _enc, done) {
      bytes += chunk.length;
      done(null, chunk);
    },
  });
  return { stream, bytes: () => bytes };
}

function checkKey(key: string): void {
  if (!KEY.test(key)) throw new OmegaError('INTERNAL', `not a snapshot key: ${key}`);
}

export function openSnapshotStore(raw: string, s3: S3Options): SnapshotStore {
  const where = parseSnapshotStoreUrl(raw);
  return where.kind === 'file' ? new DirectoryStore(where.dir) : new S3Store(where.bucket, where.prefix, s3);
}

class DirectoryStore implements SnapshotStore {
  readonly shown: string;
  constructor(private readonly dir: string) {
    this.shown = `file://${dir}`;
  }

  private file(key: string): string {
    checkKey(key);
    return path.join(this.dir, `${key}.tar.gz`);
  }

  async put(key: string, body: Readable): Promise<{ bytes: number }> {
    const file = this.file(key);
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    // Its own partial file, even with several writers in one process (the managers of a test share one): none can cut another's short.
    const partial = `${file}.partial-${process.pid}-${randomBytes(6).toString('hex')}`;
    const counted = byteCounter();
    try {
      await pipeline(body, counted.stream, createWriteStream(partial, { mode: 0o600 }));
      const size = (await stat(partial)).size;
      if (size !== counted.bytes()) throw new Error(`${size} bytes on disk of the ${counted.bytes()} written`);
      await rename(partial, file);
    } catch (err) {
      await rm(partial, { force: true });
      throw err;
    }
    return { bytes: counted.bytes() };
  }

  async get(key: string): Promise<Readable> {
    const file = this.file(key);
    try {
      await stat(file);
    } catch {
      throw new OmegaError('SNAPSHOT_NOT_FOUND', `snapshot ${key} is not in ${this.shown}`);
    }
    return createReadStream(file);
  }

  async delete(key: string): Promise<void> {
    await rm(this.file(key), { force: true });
  }
}

/** The SDK, loaded on a store's first use: a program that never touches S3 never loads it (its startup stays short). */
const sdk = async () => ({ ...(await import('@aws-sdk/client-s3')), ...(await import('@aws-sdk/lib-storage')) });

class S3Store implements SnapshotStore {
  readonly shown: string;
  private clientP: Promise<S3Client> | null = null;

  constructor(
    private readonly bucket: string,
    private readonly prefix: string,
    private readonly opts: S3Options,
  ) {
    this.shown = `s3://${bucket}/${prefix}`;
  }

  private client(): Promise<S3Client> {
    // Path-style addressing with an endpoint of one's own (MinIO, s3rver, ...): no bucket in the host name.
    this.clientP ??= sdk().then((m) => new m.S3Client({ region: this.opts.region, ...(this.opts.endpoint ? { endpoint: this.opts.endpoint, forcePathStyle: true } : {}) }));
    return this.clientP;
  }

  private key(key: string): string {
    checkKey(key);
    return `${this.prefix ? `${this.prefix}/` : ''}${key}.tar.gz`;
  }

  async put(key: string, body: Readable): Promise<{ bytes: number }> {
    const counted = byteCounter();
    body.on('error', (err) => counted.stream.destroy(err));
    body.pipe(counted.stream);
    const { Upload } = await sdk();
    const upload = new Upload({ client: await this.client(), params: { Bucket: this.bucket, Key: this.key(key), Body: counted.stream, ContentType: 'application/gzip' }, partSize: 8 << 20, queueSize: 2 });
    await upload.done();
    return { bytes: counted.bytes() };
  }

  async get(key: string): Promise<Readable> {
    const { GetObjectCommand } = await sdk();
    try {
      const r = await (await this.client()).send(new GetObjectCommand({ Bucket: this.bucket, Key: this.key(key) }));
      return r.Body as Readable;
    } catch (err) {
      if ((err as { name?: string }).name === 'NoSuchKey') throw new OmegaError('SNAPSHOT_NOT_FOUND', `snapshot ${key} is not in ${this.shown}`);
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    const { DeleteObjectCommand } = await sdk();
    await (await this.client()).send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.key(key) }));
  }
}
