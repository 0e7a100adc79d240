import { fileURLToPath } from 'node:url';

/** OMEGA_SNAPSHOT_STORE read (without loading the S3 client, which only the programs that use a store need). */
export function parseSnapshotStoreUrl(raw: string): { kind: 'file'; dir: string } | { kind: 's3'; bucket: string; prefix: string } {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new Error('must be file:///a/directory or s3://bucket/prefix');
  }
  if (u.protocol === 'file:') {
    if (u.host) throw new Error('a file:// store is a local path: file:///var/lib/omega/snapshots');
    return { kind: 'file', dir: fileURLToPath(u) };
  }
  if (u.protocol === 's3:') {
    if (!/^[a-z0-9][a-z0-9.-]{1,62}$/.test(u.hostname)) throw new Error('the bucket name is not valid');
    return { kind: 's3', bucket: u.hostname, prefix: u.pathname.replace(/^\/+|\/+$/g, '') };
  }
  throw new Error('must be file:///a/directory or s3://bucket/prefix');
}

