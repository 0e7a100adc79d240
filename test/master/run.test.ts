// POST /v1/run through the typed worker client, against a real worker in this
// process (no Docker): what the worker answers reaches the API's client with
// the status and code it means there.
import t from 'tap';
import { buildMasterApi } from '../../master/api.js';
import { loadConfig } from '../../master/config.js';
import { Runner } from '../../master/runner.js';
import type { Sandboxes } from '../../master/sandboxes.js';
import type { Store } from '../../master/store.js';
import { createLogger } from '../../src/log.js';
import { freePort } from '../helpers/ports.js';
import { connect, startWorker, TOKEN } from '../worker/harness.js';
import { WorkerRoutes } from '../../master/worker-route.js';

const log = createLogger('master', { level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const config = loadConfig({ env: { OMEGA_DEV: '1' } });

/** An API whose every run goes to the sandbox at `port`; `deleted` counts the discarded ones. */
function apiFor(port: number, token = TOKEN) {
  const state = { deleted: 0 };
  const sandboxes = {
    create: async () => ({ id: 'run1', address: '127.0.0.1', port, token }),
    delete: async () => {
      state.deleted++;
      return true;
    },
  } as unknown as Sandboxes;
  const app = buildMasterApi({
    sandboxes,
    runner: new Runner(config, sandboxes, new WorkerRoutes(config.zone, null), log),
    store: {} as Store,
    token: undefined,
    status: async () => ({ redis: true, dns: true }),
    templates: config.templates,
    webDir: '/nonexistent',
    log,
  });
  t.teardown(() => app.close());
  const run = async (body: object) => {
    const res = await app.inject({ method: 'POST', url: '/v1/run', payload: body });
    return { status: res.statusCode, body: res.json() };
  };
  return { run, state };
}

t.test('a run: output and exit through the typed client', async (t) => {
  const { port } = await startWorker(t);
  const { run, state } = apiFor(port);
  const r = await run({ language: 'bash', code: 'echo out; echo err >&2; read x; echo "got $x"; exit 3', stdin: 'in\n' });
  t.equal(r.status, 200, JSON.stringify(r.body));
  t.match(r.body, { stdout: 'out\ngot in\n', stderr: 'err\n', exitCode: 3, signal: null, timedOut: false, truncated: false });
  t.equal(state.deleted, 1, 'the sandbox is discarded');
});

t.test('a worker at its limit: 429 LIMIT_REACHED, not 400', async (t) => {
  const { port } = await startWorker(t, { OMEGA_WORKER_MAX_RUNNING: '1' });
  const busy = await connect(t, port);
  await busy.call('proc.run', { command: 'sleep', args: ['30'] });
  const { run, state } = apiFor(port);
  const r = await run({ language: 'bash', code: 'echo never' });
  t.equal(r.status, 429, JSON.stringify(r.body));
  t.match(r.body, { statusCode: 429, code: 'LIMIT_REACHED', error: 'Too Many Requests', workerCode: 'LIMIT_REACHED' });
  t.equal(state.deleted, 1, 'discarded all the same');
});

t.test('a worker that refuses the master or cannot be reached: 502', async (t) => {
  const { port } = await startWorker(t);
  const refused = await apiFor(port, 'not-the-sandbox-token-0123').run({ language: 'bash', code: 'true' });
  t.equal(refused.status, 502, JSON.stringify(refused.body));
  t.match(refused.body, { code: 'WORKER_UNAVAILABLE', error: 'Bad Gateway', message: /upgrade refused: 401/ }, 'a refused token is no 401 for the API\'s client');
  const gone = await apiFor(await freePort()).run({ language: 'bash', code: 'true' });
  t.equal(gone.status, 502);
  t.match(gone.body, { code: 'WORKER_UNAVAILABLE', message: /ECONNREFUSED/ });
});

t.test('a program the sandbox cannot start: 502 WORKER_FAILED with the worker\'s code', async (t) => {
  // python3 missing from PATH in the worker's children: the template lacks the language's interpreter.
  const { port } = await startWorker(t);
  const { run } = apiFor(port);
  const saved = process.env.PATH;
  process.env.PATH = '/nonexistent';
  t.teardown(() => {
    process.env.PATH = saved;
  });
  const r = await run({ language: 'python', code: 'print(1)' });
  process.env.PATH = saved;
  t.equal(r.status, 502, JSON.stringify(r.body));
  t.match(r.body, { code: 'WORKER_FAILED', workerCode: 'SPAWN_FAILED', message: /SPAWN_FAILED/ });
});
