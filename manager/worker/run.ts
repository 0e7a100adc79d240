import { loadWorkerConfig } from './config.js';
import { createWorkerLogger } from './log.js';
import { Worker } from './server.js';

/** Longest a SIGTERM-triggered stop may take before the process exits anyway. */
const STOP_LIMIT_MS = 8000;

/**
 * Start the worker from `env` and `argv` and stop it on the first SIGTERM or
 * SIGINT (a second one exits at once). Shared by the standalone bundle
 * (main.ts) and `omega worker`.
 */
export async function runWorker(env: NodeJS.ProcessEnv, argv: string[]): Promise<Worker> {
  const config = loadWorkerConfig({ env, argv });
  const log = createWorkerLogger(config.logLevel);
  const worker = new Worker(config, log);
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) process.exit(1);
    stopping = true;
    log.info({ signal }, 'stopping');
    setTimeout(() => {
      log.error({ limitMs: STOP_LIMIT_MS }, 'stop took too long; exiting');
      process.exit(1);
    }, STOP_LIMIT_MS).unref();
    worker.stop().then(
      () => {
        log.info('stopped');
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  await worker.start();
  return worker;
}
