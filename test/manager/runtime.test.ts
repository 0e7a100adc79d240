// DockerRuntime's failure paths, against a Docker API that fails on purpose (no engine needed).
import t from 'tap';
import { DockerRuntime, type ContainerSpec } from '../../manager/runtime/docker.js';
import { OmegaError } from '../../src/errors.js';

const spec: ContainerSpec = { name: 'omega-t', image: 'img', template: 'python', volume: 'v', labels: {}, env: {}, memoryMb: 64, cpus: 1, pids: 64, tmpMb: 16, diskMb: 0, nofile: 1024 };
const httpError = (statusCode: number, message: string) => Object.assign(new Error(message), { statusCode });

/** A runtime whose engine creates the container and then fails as told; `removed` lists what it was asked to remove. */
function runtime(fail: { start?: Error; inspect?: Error; stop?: Error; remove?: Error }) {
  const removed: string[] = [];
  const container = {
    id: 'c1',
    start: async () => {
      if (fail.start) throw fail.start;
    },
    inspect: async () => {
      if (fail.inspect) throw fail.inspect;
      return { NetworkSettings: { Ports: {} } };
    },
  };
  const r = new DockerRuntime('/nonexistent.sock', 'h1', '127.0.0.1');
  (r as { docker: unknown }).docker = {
    createVolume: async () => ({}),
    createContainer: async () => container,
    getContainer: (id: string) => ({
      stop: async () => {
        if (fail.stop) throw fail.stop;
      },
      remove: async () => {
        if (fail.remove) throw fail.remove;
        removed.push(id);
      },
    }),
  };
  return { r, removed };
}

t.test('a failed start removes the container and says why it failed', async (t) => {
  const { r, removed } = runtime({ start: httpError(500, 'no such image layer') });
  await t.rejects(r.start(spec), { code: 'SANDBOX_START_FAILED', message: /starting container omega-t: no such image layer$/ });
  t.same(removed, ['c1']);
  const noPort = runtime({});
  await t.rejects(noPort.r.start(spec), { code: 'SANDBOX_START_FAILED', message: 'container omega-t has no published port' });
  t.same(noPort.removed, ['c1']);
  const noInspect = runtime({ inspect: httpError(500, 'engine hiccup') });
  await t.rejects(noInspect.r.start(spec), { message: /inspecting container omega-t/ });
  t.same(noInspect.removed, ['c1'], 'a started container is not left running when it cannot be inspected');
});

t.test('a removal that fails too is not dropped: it joins the error, both causes kept', async (t) => {
  const startErr = httpError(500, 'no such image layer');
  const removeErr = httpError(500, 'device or resource busy');
  const { r, removed } = runtime({ start: startErr, remove: removeErr });
  const err = (await r.start(spec).catch((e: unknown) => e)) as OmegaError;
  t.ok(err instanceof OmegaError);
  t.equal(err.code, 'SANDBOX_START_FAILED');
  t.match(err.message, /no such image layer; removing the container failed too: .*device or resource busy/);
  t.ok(err.cause instanceof AggregateError);
  const [first, second] = (err.cause as AggregateError).errors;
  t.equal(first, startErr, 'why the start failed');
  t.match(second, { code: 'SANDBOX_START_FAILED', message: /removing container c1/, cause: removeErr }, 'and the removal\'s own coded error, with its cause');
  t.same(removed, []);
});
