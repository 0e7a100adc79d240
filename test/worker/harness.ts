import { mkdtemp, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Test } from 'tap';
import { loadWorkerConfig } from '../../worker/config.js';
import { createWorkerLogger } from '../../worker/log.js';
import { Worker } from '../../worker/server.js';
import { connectWorker, type TestClient } from '../helpers/worker-client.js';

export { TestClient, upgradeStatus } from '../helpers/worker-client.js';

export const TOKEN = 'sandbox-token-0123456789abcdef';
export const CLAIM_SECRET = 'claim-secret-0123456789abcdef';
export const SANDBOX_ID = 'sbx1';

export interface Started {
  worker: Worker;
  port: number;
  url: string;
  workspace: string;
}

/** A worker in this process on a free port with its own temp workspace, stopped and removed at teardown. */
export async function startWorker(t: Test, env: Record<string, string> = {}): Promise<Started> {
  const workspace = await realpath(await mkdtemp(path.join(tmpdir(), 'omega-ws-')));
  const config = loadWorkerConfig({
    env: {
      OMEGA_WORKER_LISTEN: '127.0.0.1:0',
      OMEGA_WORKER_WORKSPACE: workspace,
      OMEGA_WORKER_TOKEN: TOKEN,
      OMEGA_WORKER_SANDBOX_ID: SANDBOX_ID,
      ...env,
    },
  });
  const worker = new Worker(config, createWorkerLogger((process.env.TEST_LOG_LEVEL as 'debug') ?? 'silent'));
  t.teardown(async () => {
    await worker.stop();
    await rm(workspace, { recursive: true, force: true });
  });
  await worker.start();
  const { port } = worker.address;
  return { worker, port, url: `http://127.0.0.1:${port}`, workspace };
}

/** Connect with the token (as a bearer unless `how` says otherwise); resolves after the hello event. */
export function connect(t: Test, port: number, how: { token?: string | null; via?: 'header' | 'protocol' | 'query' } = {}): Promise<TestClient> {
  return connectWorker(t, `ws://127.0.0.1:${port}/`, how.token === undefined ? TOKEN : how.token, how.via);
}
