/**
 * `make bench-e2b-agent`: the E2B agent in the worker, measured through the
 * real `e2b` SDK beside Omega's own WebSocket client doing the same in the
 * same run, against one worker process on this machine (no container, no
 * network, no TLS: what the agent itself costs).
 *
 *   run     commands.run('echo hi') (the SDK runs `bash -l -c`) and the same
 *           `bash -l -c 'echo hi'` through proc.run, to its exit, p50/p99;
 *           then `echo hi` without a shell through a Connect client's Start
 *           and through proc.run (the agent's own cost, without bash's; the
 *           Node Connect client itself adds about 3 ms a call over fetch,
 *           which the SDK uses);
 *   files   files.write then files.read of 1 MiB, and fs.write + fs.read
 *           (base64) of the same, p50/p99.
 *
 * A sandbox's create is not here: that needs a master, a manager and the
 * images with this worker (test/master/e2b.test.ts covers it functionally).
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Sandbox } from 'e2b';
import { ENVD_VERSION } from '../src/protocol/envd/version.js';
import { envdClients } from '../test/helpers/envd-client.js';
import { connectWorker } from '../test/helpers/worker-client.js';
import { loadWorkerConfig } from '../worker/config.js';
import { createWorkerLogger } from '../worker/log.js';
import { Worker } from '../worker/server.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 50);
const TOKEN = randomBytes(24).toString('hex');
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};
const fmt = (xs: number[]) => `p50=${pct(xs, 50).toFixed(1)}ms p99=${pct(xs, 99).toFixed(1)}ms (n=${xs.length})`;

async function timed(n: number, op: () => Promise<unknown>): Promise<number[]> {
  await op(); // one unmeasured: the first call pays for connections and code paths
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await op();
    out.push(performance.now() - t0);
  }
  return out;
}

const workspace = await mkdtemp(path.join(tmpdir(), 'omega-bench-e2b-'));
const worker = new Worker(
  loadWorkerConfig({ env: { OMEGA_WORKER_LISTEN: '127.0.0.1:0', OMEGA_WORKER_WORKSPACE: workspace, OMEGA_WORKER_TOKEN: TOKEN, OMEGA_WORKER_SANDBOX_ID: 'bench', OMEGA_WORKER_MAX_FILE_BYTES: String(4 << 20) } }),
  createWorkerLogger('silent'),
);
await worker.start();
try {
  const url = `http://127.0.0.1:${worker.address.port}`;
  const sbx = new Sandbox({ sandboxId: 'bench', envdVersion: ENVD_VERSION, envdAccessToken: TOKEN, sandboxUrl: url, apiKey: 'e2b_00' });
  const ws = await connectWorker(null, `ws://127.0.0.1:${worker.address.port}/`, TOKEN);
  const mib = randomBytes(1 << 20);

  console.log(`worker at ${url}, ${RUNS} runs each`);
  console.log(`run    e2b SDK commands.run('echo hi')        ${fmt(await timed(RUNS, () => sbx.commands.run('echo hi')))}`);
  console.log(`run    WebSocket proc.run bash -l -c echo hi  ${fmt(await timed(RUNS, () => ws.runToEnd({ command: '/bin/bash', args: ['-l', '-c', 'echo hi'] })))}`);
  console.log(`files  e2b SDK write + read 1 MiB             ${fmt(await timed(RUNS, async () => {
    await sbx.files.write('bench.bin', mib.buffer.slice(mib.byteOffset, mib.byteOffset + mib.length) as ArrayBuffer);
    await sbx.files.read('bench.bin', { format: 'bytes' });
  }))}`);
  const { proc } = envdClients(url, TOKEN);
  const drain = async (it: AsyncIterable<unknown>) => {
    for await (const _ of it);
  };
  console.log(`run    Connect Start echo hi (no shell)         ${fmt(await timed(RUNS, () => drain(proc.start({ process: { cmd: 'echo', args: ['hi'] } }))))}`);
  console.log(`run    WebSocket proc.run echo hi (no shell)  ${fmt(await timed(RUNS, () => ws.runToEnd({ command: 'echo', args: ['hi'] })))}`);
  const b64 = mib.toString('base64');
  console.log(`files  WebSocket fs.write + fs.read 1 MiB     ${fmt(await timed(RUNS, async () => {
    await ws.call('fs.write', { path: 'bench2.bin', content: b64, encoding: 'base64' });
    await ws.call('fs.read', { path: 'bench2.bin', encoding: 'base64' });
  }))}`);
  ws.terminate();
} finally {
  await worker.stop();
  await rm(workspace, { recursive: true, force: true });
}
