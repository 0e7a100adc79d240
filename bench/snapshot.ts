/**
 * `make bench-snapshot`: a 100 MiB workspace of mixed files (1,000 source
 * files of text, 40 MiB of random bytes, a 50 MiB sparse file and 10 MiB of
 * zeros) written to the snapshot store and restored into a new sandbox, to a
 * directory and to S3 (s3rver, an S3-compatible server in this process), in
 * the same run: seconds, bytes stored, and the create from the snapshot
 * beside a plain create.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
// @ts-expect-error: the package ships no types
import S3rver from 's3rver';
import { TestRedis } from '../test/helpers/redis.js';
import { connectWorker } from '../test/helpers/worker-client.js';
import { FILL } from './fill.js';
import { startStack } from './stack.js';

async function main(): Promise<void> {
  const redis = await TestRedis.create();
  const dir = mkdtempSync(join(tmpdir(), 'omega-bench-snap-'));
  const s3dir = mkdtempSync(join(tmpdir(), 'omega-bench-s3-'));
  const s3 = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: s3dir, configureBuckets: [{ name: 'bench' }] });
  const s3port = ((await s3.run()) as AddressInfo).port;
  process.env.AWS_ACCESS_KEY_ID = 'S3RVER';
  process.env.AWS_SECRET_ACCESS_KEY = 'S3RVER';
  const stores: Array<[string, Record<string, string>]> = [
    ['directory', { OMEGA_SNAPSHOT_STORE: `file://${dir}` }],
    ['s3 (s3rver)', { OMEGA_SNAPSHOT_STORE: 's3://bench/snaps', OMEGA_S3_ENDPOINT: `http://127.0.0.1:${s3port}` }],
  ];
  try {
    for (const [name, env] of stores) {
      const stack = await startStack(redis.url, { manager: { OMEGA_TEMPLATES: 'node', OMEGA_POOL_SIZE: '0', ...env }, master: { OMEGA_TEMPLATES: 'node', ...env } });
      const call = async (method: 'POST' | 'DELETE', path: string, body?: unknown) => {
        const r = await request(`${stack.master.apiUrl}${path}`, { method, headers: { authorization: `Bearer ${stack.apiToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, body: body === undefined ? undefined : JSON.stringify(body) });
        const json = (await r.body.json()) as Record<string, any>;
        if (r.statusCode >= 300) throw new Error(`${method} ${path}: ${r.statusCode} ${JSON.stringify(json)}`);
        return json;
      };
      try {
        const sb = await call('POST', '/v1/sandboxes', { template: 'node' });
        const c = await connectWorker(null, `ws://127.0.0.1:${sb.port}/`, sb.token);
        const filled = await c.runToEnd({ command: 'node', args: ['-e', FILL] }, 120_000);
        if (filled.stdout.trim() !== 'filled') throw new Error(`filling failed: ${filled.stderr}`);
        await c.close();
        let t0 = performance.now();
        const snap = await call('POST', `/v1/sandboxes/${sb.id}/snapshots`);
        const snapMs = performance.now() - t0;
        t0 = performance.now();
        const plain = await call('POST', '/v1/sandboxes', { template: 'node' });
        const plainMs = performance.now() - t0;
        t0 = performance.now();
        const restored = await call('POST', '/v1/sandboxes', { template: 'node', snapshot: snap.id });
        const restoreMs = performance.now() - t0;
        const r = await connectWorker(null, `ws://127.0.0.1:${restored.port}/`, restored.token);
        const check = await r.runToEnd({ command: 'sh', args: ['-c', 'ls /workspace/src | wc -l; du -sm --apparent-size /workspace | cut -f1; du -sm /workspace | cut -f1'] });
        await r.close();
        const [files, apparent, onDisk] = check.stdout.trim().split('\n');
        console.log(`${name.padEnd(12)} snapshot ${(snapMs / 1000).toFixed(2)} s, ${(snap.bytes / 1048576).toFixed(1)} MiB stored; create from it ${(restoreMs / 1000).toFixed(2)} s vs a plain create ${(plainMs / 1000).toFixed(2)} s; restored: ${files} source files, ${apparent} MiB apparent, ${onDisk} MiB on disk`);
        for (const id of [sb.id, plain.id, restored.id]) await call('DELETE', `/v1/sandboxes/${id}`);
        await call('DELETE', `/v1/snapshots/${snap.id}`);
      } finally {
        await stack.stop();
      }
    }
  } finally {
    await s3.close();
    rmSync(dir, { recursive: true, force: true });
    rmSync(s3dir, { recursive: true, force: true });
    await redis.destroy();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
