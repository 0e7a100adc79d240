import t from 'tap';
import { sleep, waitFor } from '../helpers/ports.js';
import { connect, startWorker } from './harness.js';

t.test('python and node programs run with their output and exit code', async (t) => {
  const { port } = await startWorker(t);
  const c = await connect(t, port);
  const py = await c.call('proc.run', { language: 'python', code: 'import sys\nprint("py", 6*7)\nprint("oops", file=sys.stderr)\nsys.exit(3)\n' });
  const pyExit = await c.waitEvent('proc.exit', (d) => d.procId === py.procId);
  t.match(pyExit, { exitCode: 3, signal: null, timedOut: false });
  t.type(pyExit.durationMs, 'number');
  t.equal(c.output('proc.stdout', py.procId), 'py 42\n');
  t.equal(c.output('proc.stderr', py.procId), 'oops\n');

  const js = await c.call('proc.run', { language: 'node', code: 'const x = await Promise.resolve(5); console.log("node", x * 2);' });
  t.match(await c.waitEvent('proc.exit', (d) => d.procId === js.procId), { exitCode: 0 });
  t.equal(c.output('proc.stdout', js.procId), 'node 10\n', 'node code runs as an ES module');

  const sh = await c.call('proc.run', { language: 'bash', code: 'read a; echo "got $a"; pwd', stdin: 'input\n' });
  await c.waitEvent('proc.exit', (d) => d.procId === sh.procId);
  t.match(c.output('proc.stdout', sh.procId), /^got input\n\/.*omega-ws-/, 'stdin given; cwd is the workspace');

  const cmd = await c.call('proc.run', { command: 'sh', args: ['-c', 'echo "$0 $1" && echo ${OMEGA_WORKER_TOKEN:-no-token} $FOO', 'a b', 'c'], env: { FOO: 'bar' } });
  await c.waitEvent('proc.exit', (d) => d.procId === cmd.procId);
  t.equal(c.output('proc.stdout', cmd.procId), 'a b c\nno-token bar\n', 'arguments as given; the worker\'s settings are not passed on');

  t.equal(await c.code('proc.run', { command: 'definitely-not-a-program-omega' }), 'SPAWN_FAILED');
  t.equal(await c.code('proc.run', { language: 'ruby', code: '' }), 'INVALID_PARAMS');
  t.equal(await c.code('proc.run', { language: 'python', code: 'x', command: 'ls' }), 'INVALID_PARAMS');
  t.equal(await c.code('proc.kill', { procId: 'p999' }), 'NO_SUCH_PROCESS');
});

/** Whether a process (or, given -pgid, a process group) is still there. */
const exists = (target: number) => {
  try {
    process.kill(target, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
};

t.test('a time limit kills the whole process group', async (t) => {
  const { port } = await startWorker(t);
  const c = await connect(t, port);
  const { procId, pid } = await c.call('proc.run', { command: 'bash', args: ['-c', 'sleep 30 & sleep 30; wait'], timeoutMs: 300 });
  const exit = await c.waitEvent('proc.exit', (d) => d.procId === procId, 5000);
  t.match(exit, { timedOut: true, signal: 'SIGKILL', exitCode: null });
  t.ok(exit.durationMs >= 300 && exit.durationMs < 3000, `took ${exit.durationMs} ms`);
  // Killed members may linger a moment as zombies until their new parent reaps them.
  await waitFor('the group to be gone', () => !exists(-pid));
  t.pass('nothing of the group is left');
});

t.test('a time limit also ends what the run left in the background; without one it lives on', async (t) => {
  const { port } = await startWorker(t);
  const c = await connect(t, port);
  const background = async (timeoutMs?: number) => {
    const { procId } = await c.call('proc.run', { command: 'bash', args: ['-c', 'sleep 60 >/dev/null 2>&1 & echo $!'], ...(timeoutMs ? { timeoutMs } : {}) });
    const exit = await c.waitEvent('proc.exit', (d) => d.procId === procId, 5000);
    t.match(exit, { exitCode: 0, timedOut: false }, 'the run itself ends at once');
    return Number(c.output('proc.stdout', procId).trim());
  };
  const limited = await background(1500);
  t.ok(exists(limited), 'its background job is still running after it exits');
  await waitFor('the background job to be killed at the deadline', () => !exists(limited), 10_000);
  t.pass('killed at the deadline');

  const free = await background();
  await new Promise((r) => setTimeout(r, 2000));
  t.ok(exists(free), 'without a time limit the background job lives on');
  process.kill(free, 'SIGKILL');
});

t.test('proc.kill, interactive stdin, limits', async (t) => {
  const { port } = await startWorker(t, { OMEGA_WORKER_MAX_RUNNING: '2' });
  const c = await connect(t, port);
  const cat = await c.call('proc.run', { command: 'cat', interactive: true });
  await c.call('proc.input', { procId: cat.procId, data: 'typed\n' });
  await waitFor('cat echoes', () => c.output('proc.stdout', cat.procId) === 'typed\n');
  const sleeper = await c.call('proc.run', { command: 'sleep', args: ['30'] });
  t.equal(await c.code('proc.run', { command: 'true' }), 'LIMIT_REACHED');
  t.equal(await c.code('term.open', { cols: 80, rows: 24 }), 'LIMIT_REACHED', 'terminals and processes share the limit');
  await c.call('proc.input', { procId: cat.procId, eof: true });
  t.match(await c.waitEvent('proc.exit', (d) => d.procId === cat.procId), { exitCode: 0 });
  t.equal(await c.code('proc.input', { procId: cat.procId, data: 'x' }), 'PROCESS_EXITED');
  await c.call('proc.kill', { procId: sleeper.procId });
  t.match(await c.waitEvent('proc.exit', (d) => d.procId === sleeper.procId), { signal: 'SIGTERM', timedOut: false });
});

t.test('a process outlives its client and is re-attached with its recent output', async (t) => {
  const { port } = await startWorker(t, { OMEGA_WORKER_KEEP_EXITED: '2' });
  const a = await connect(t, port);
  const { procId } = await a.call('proc.run', { command: 'bash', args: ['-c', 'echo first; echo err >&2; read line; echo "then $line"'], interactive: true });
  await waitFor('first line', () => a.output('proc.stdout', procId).includes('first'));
  await a.close();

  const b = await connect(t, port);
  t.match((await b.call('proc.list')).processes, [{ procId, attached: 0, exit: null, command: 'bash' }]);
  const att = await b.call('proc.attach', { procId });
  t.same(att.output, [
    { stream: 'stdout', data: 'first\n' },
    { stream: 'stderr', data: 'err\n' },
  ]);
  t.equal(att.exit, null);
  await b.call('proc.input', { procId, data: 'more\n' });
  t.match(await b.waitEvent('proc.exit', (d) => d.procId === procId), { exitCode: 0 });
  t.equal(b.output('proc.stdout', procId), 'then more\n', 'live output after the replay');

  // Exited processes stay listed (the latest KEEP_EXITED of them) with their status.
  const again = await b.call('proc.attach', { procId });
  t.match(again, { exit: { exitCode: 0, timedOut: false } });
  for (let i = 0; i < 3; i++) {
    const r = await b.call('proc.run', { command: 'true' });
    await b.waitEvent('proc.exit', (d) => d.procId === r.procId);
  }
  await sleep(10);
  const listed = (await b.call('proc.list')).processes;
  t.equal(listed.length, 2, 'bounded');
  t.notOk(listed.some((p: { procId: string }) => p.procId === procId), 'the oldest exited one is dropped');
});
