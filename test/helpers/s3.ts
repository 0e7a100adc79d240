import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
// s3rver: an S3-compatible server in this process, its objects in a directory of the test's own.
// @ts-expect-error: the package ships no types
import S3rver from 's3rver';

export interface TestS3 {
  endpoint: string;
  bucket: string;
  /** Object keys in the bucket now. */
  keys(): Promise<string[]>;
}

/** A real S3 API (s3rver) on a free loopback port with one bucket, and the SDK's credentials for it; closed at teardown. */
export async function startS3(t: Test, bucket = 'omega-snapshots'): Promise<TestS3> {
  const dir = mkdtempSync(join(tmpdir(), 'omega-s3-'));
  const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: dir, configureBuckets: [{ name: bucket }] });
  const address = (await server.run()) as AddressInfo;
  // s3rver takes its own fixed pair; the SDK reads them from the environment, as it would real ones.
  process.env.AWS_ACCESS_KEY_ID = 'S3RVER';
  process.env.AWS_SECRET_ACCESS_KEY = 'S3RVER';
  t.teardown(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const endpoint = `http://127.0.0.1:${address.port}`;
  return {
    endpoint,
    bucket,
    async keys() {
      const res = await fetch(`${endpoint}/${bucket}?list-type=2`);
      const xml = await res.text();
      return [...xml.matchAll(/<Key>([^<]+)<\/Key>/g)].map((m) => m[1]!);
    },
  };
}
