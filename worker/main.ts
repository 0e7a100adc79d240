/**
 * The worker's standalone entry point, bundled by `npm run build:worker` into
 * dist/worker/worker.mjs and run in each sandbox as
 * `tini -- node /opt/omega/worker/worker.mjs` (settings from the environment).
 */
import { ConfigError } from '../src/config/settings.js';
import { installWorkerHeaders } from './envd/headers.js';
import { runWorker } from './run.js';

// Before anything could build Node's own (see headers.ts): the program's, not the tests' in-process workers.
installWorkerHeaders();

runWorker(process.env, process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof ConfigError) process.stderr.write(`omega worker: ${err.message}\n`);
  else process.stderr.write(`omega worker: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
