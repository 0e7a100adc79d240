/**
 * `make bench-git`: a create with `git` (a local repository of 1,000 files,
 * served by git daemon on an "internet" address of a network namespace:
 * sandboxes reach neither the host nor private addresses) beside the same
 * create without it, warm pool, through the master, in the same run.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { request } from 'undici';
import { otherMachine, serveGit } from '../test/helpers/netns.js';
import { TestRedis } from '../test/helpers/redis.js';
import { startStack } from './stack.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 10);
const p50 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const cleanups: Array<() => unknown> = [];
  // The helper registers its teardowns on a tap test; here they run at the end.
  const t = { teardown: (fn: () => unknown) => cleanups.push(fn) } as unknown as Test;
  const dir = mkdtempSync(join(tmpdir(), 'omega-bench-git-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const work = join(dir, 'work');
  for (let i = 0; i < 1000; i++) {
    const d = join(work, `pkg${i % 20}`);
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, `mod${i}.ts`), `export const v${i} = ${i};\n`.repeat(20));
  }
  const git = (cwd: string, ...args: string[]) => execFileSync('git', ['-c', 'user.name=b', '-c', 'user.email=b@b', ...args], { cwd, stdio: 'ignore' });
  git(work, 'init', '-q', '-b', 'main');
  git(work, 'add', '.');
  git(work, 'commit', '-q', '-m', 'a thousand files');
  git(dir, 'clone', '-q', '--bare', work, join(dir, 'repo.git'));
  const other = otherMachine(t, 18096);
  const url = await serveGit(t, other, dir, 'repo.git');
  const redis = await TestRedis.create();
  const stack = await startStack(redis.url, { manager: { OMEGA_TEMPLATES: 'node', OMEGA_POOL_SIZE: '1' }, master: { OMEGA_TEMPLATES: 'node' } });
  try {
    const call = async (method: 'POST' | 'DELETE', path: string, body?: unknown) => {
      const r = await request(`${stack.master.apiUrl}${path}`, { method, headers: { authorization: `Bearer ${stack.apiToken}`, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined });
      const json = (await r.body.json()) as Record<string, any>;
      if (r.statusCode >= 300) throw new Error(`${method} ${path}: ${r.statusCode} ${JSON.stringify(json)}`);
      return json;
    };
    const plain: number[] = [];
    const cloned: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      for (const [list, body] of [
        [plain, { template: 'node' }],
        [cloned, { template: 'node', git: { url } }],
      ] as const) {
        await stack.manager.pool.whenFull();
        const t0 = performance.now();
        const sb = await call('POST', '/v1/sandboxes', body);
        list.push(performance.now() - t0);
        if (sb.source !== 'pool') throw new Error('the pool was not warm');
        await call('DELETE', `/v1/sandboxes/${sb.id}`);
      }
      process.stderr.write('.');
    }
    process.stderr.write('\n');
    console.log(`warm create p50 ${p50(plain).toFixed(1)} ms; with git (1,000 files, cloned before the answer) p50 ${p50(cloned).toFixed(1)} ms (n=${RUNS} each)`);
  } finally {
    await stack.stop();
    await redis.destroy();
    for (const fn of cleanups.reverse()) await fn();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
