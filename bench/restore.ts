/**
 * `make bench-restore`: work that outlives its host, through the master with
 * two hosts (managers) on one Docker engine and a directory snapshot store,
 * each with a 100 MiB workspace of mixed files (bench/fill.ts):
 *
 *   archive   a stopped sandbox archived (snapshot, container and volume
 *             removed), then resumed: restored from the archive on a host
 *             with room (its own)
 *   lost      its host lost (stopped without deregistering, its containers
 *             removed), then resumed: restored on the other host from its
 *             latest snapshot, with its id, name and token
 *   workspace a named workspace created with the sandbox, back on its host
 *             (its volume mounted as it is) beside a plain cold create, and
 *             moved to the other host when its own is full
 *
 * Each figure beside a plain cold create of the same run.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { hostKeys } from '../src/redis/keys.js';
import { TestRedis } from '../test/helpers/redis.js';
import { connectWorker } from '../test/helpers/worker-client.js';
import { FILL } from './fill.js';
import { startStack } from './stack.js';

const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

async function main(): Promise<void> {
  const redis = await TestRedis.create();
  const dir = mkdtempSync(join(tmpdir(), 'omega-bench-restore-'));
  const store = { OMEGA_SNAPSHOT_STORE: `file://${dir}` };
  const hosts = { OMEGA_TEMPLATES: 'node', OMEGA_POOL_SIZE: '0', OMEGA_HEARTBEAT_INTERVAL_MS: '300', OMEGA_HEARTBEAT_TTL_MS: '1500', OMEGA_CAPACITY: '3', ...store };
  const stack = await startStack(redis.url, { manager: hosts, master: { OMEGA_TEMPLATES: 'node', OMEGA_STOPPED_SECONDS: '0', ...store } });
  const second = await stack.addManager('bench-host-2');
  const call = async (method: 'POST' | 'DELETE' | 'GET', path: string, body?: unknown) => {
    const r = await request(`${stack.master.apiUrl}${path}`, { method, headers: { authorization: `Bearer ${stack.apiToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, body: body === undefined ? undefined : JSON.stringify(body) });
    const json = (await r.body.json()) as Record<string, any>;
    if (r.statusCode >= 300) throw new Error(`${method} ${path}: ${r.statusCode} ${JSON.stringify(json)}`);
    return json;
  };
  const timed = async <T>(fn: () => Promise<T>): Promise<[T, number]> => {
    const t0 = performance.now();
    const r = await fn();
    return [r, performance.now() - t0];
  };
  const fill = async (sb: Record<string, any>) => {
    const c = await connectWorker(null, `ws://127.0.0.1:${sb.port}/`, sb.token);
    const r = await c.runToEnd({ command: 'node', args: ['-e', FILL] }, 120_000);
    await c.close();
    if (r.stdout.trim() !== 'filled') throw new Error(`filling failed: ${r.stderr}`);
  };
  const count = async (sb: Record<string, any>, token: string) => {
    const c = await connectWorker(null, `ws://127.0.0.1:${sb.port}/`, token);
    const r = await c.runToEnd({ command: 'sh', args: ['-c', 'ls /workspace/src | wc -l'] });
    await c.close();
    return r.stdout.trim();
  };
  try {
    const [plain, plainMs] = await timed(() => call('POST', '/v1/sandboxes', { template: 'node' }));
    await call('DELETE', `/v1/sandboxes/${plain.id}`);
    console.log(`a plain cold create (reference)              ${s(plainMs)}`);

    // archive, then resume
    const a = await call('POST', '/v1/sandboxes', { template: 'node' });
    await fill(a);
    await call('POST', `/v1/sandboxes/${a.id}/pause`, { memory: false });
    const [, archiveMs] = await timed(() => stack.master.sandboxes.persistence.archive(a.id));
    const [back, restoreMs] = await timed(() => call('POST', `/v1/sandboxes/${a.id}/resume`));
    const snap = (await call('GET', '/v1/snapshots')).snapshots.find((x: { sandboxId: string }) => x.sandboxId === a.id);
    console.log(`archive of a stopped sandbox (100 MiB)       ${s(archiveMs)}, ${(snap.bytes / 1048576).toFixed(1)} MiB stored`);
    console.log(`resume of the archived one (restored)        ${s(restoreMs)} on ${back.host === a.host ? 'its own host' : 'the other host'}; ${await count(back, a.token)} source files back`);
    await call('DELETE', `/v1/sandboxes/${a.id}`);

    // its host lost, then resume on the other
    const l = await call('POST', '/v1/sandboxes', { template: 'node' });
    await fill(l);
    const [, snapMs] = await timed(() => call('POST', `/v1/sandboxes/${l.id}/snapshots`));
    const lostHost = l.host === 'bench-host' ? stack.manager : second;
    const lostId = l.host as string;
    await lostHost.stop();
    await stack.master.store.redis.hdel(hostKeys(stack.prefix).host(lostId), 'stoppedAtMs');
    execFileSync('sh', ['-c', `docker rm -f $(docker ps -aq --filter label=omega.host=${lostId}) >/dev/null 2>&1 || true`]);
    const t0 = performance.now();
    while ((await call('GET', `/v1/sandboxes/${l.id}`)).state !== 'lost') await new Promise((r) => setTimeout(r, 50));
    const noticedMs = performance.now() - t0;
    const [moved, lostRestoreMs] = await timed(() => call('POST', `/v1/sandboxes/${l.id}/resume`));
    console.log(`snapshot before the loss (100 MiB)           ${s(snapMs)}; the loss noticed after ${s(noticedMs)} (heartbeat TTL 1.5 s)`);
    console.log(`resume of the lost one on the other host     ${s(lostRestoreMs)}; ${await count(moved, l.token)} source files back, same token`);
    await call('DELETE', `/v1/sandboxes/${l.id}`);

    // a named workspace: made on the one host left, back on it, then moved to a new host when its own is full
    const [w1, newMs] = await timed(() => call('POST', '/v1/sandboxes', { template: 'node', workspace: 'bench' }));
    await fill(w1);
    await call('DELETE', `/v1/sandboxes/${w1.id}`);
    const [w2, againMs] = await timed(() => call('POST', '/v1/sandboxes', { template: 'node', workspace: 'bench' }));
    console.log(`a create with a new workspace                ${s(newMs)}`);
    console.log(`a create with it again (its volume, 100 MiB) ${s(againMs)} on ${w2.host === w1.host ? 'its host' : 'ANOTHER host'}; ${await count(w2, w2.token)} source files`);
    await call('DELETE', `/v1/sandboxes/${w2.id}`);
    const fillers = [];
    for (let i = 0; i < 3; i++) fillers.push(await call('POST', '/v1/sandboxes', { template: 'node' }));
    await stack.addManager('bench-host-3');
    const [w3, moveMs] = await timed(() => call('POST', '/v1/sandboxes', { template: 'node', workspace: 'bench' }));
    console.log(`a create with it, its host full (moved)      ${s(moveMs)} to ${w3.host === w1.host ? 'THE SAME host' : 'the new host'}; ${await count(w3, w3.token)} source files`);
    for (const f of fillers) await call('DELETE', `/v1/sandboxes/${f.id}`);
    await call('DELETE', `/v1/sandboxes/${w3.id}`);
    await call('DELETE', '/v1/workspaces/bench');
  } finally {
    await stack.stop();
    execFileSync('sh', ['-c', 'for h in bench-host bench-host-2 bench-host-3; do docker rm -f $(docker ps -aq --filter label=omega.host=$h) >/dev/null 2>&1; docker volume rm -f $(docker volume ls -q --filter label=omega.host=$h) >/dev/null 2>&1; done; true']);
    rmSync(dir, { recursive: true, force: true });
    await redis.destroy();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
