import { loadWorkerConfig } from './config.js';
import { createWorkerLogger } from './log.js';
import { Worker } from './server.js';
import { runUntilSignal } from '../src/lifecycle.js';

/** Longest a SIGTERM-triggered stop may take before the process exits anyway. */
const STOP_LIMIT_MS = 8000;

/**
 * Start the worker from `env` and `argv` and stop it on the first SIGTERM or
 * SIGINT (a second one exits at once). Shared by the standalone bundle
 * (main.ts) and `omega worker`.
 */
export async function runWorker(env: NodeJS.ProcessEnv, argv: string[]): Promise<void> {
  const config = loadWorkerConfig({ env, argv });
  const log = createWorkerLogger(config.logLevel);
  await runUntilSignal(new Worker(config, log), log, STOP_LIMIT_MS);
}
