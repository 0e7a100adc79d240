import t from 'tap';
import { waitFor } from '../helpers/ports.js';
import { connect, startWorker } from './harness.js';

t.test('a terminal echoes; several at once; resize, list, exit and close', async (t) => {
  const { port } = await startWorker(t);
  const c = await connect(t, port);
  const one = await c.call('term.open', { cols: 80, rows: 24 });
  const two = await c.call('term.open', { cols: 100, rows: 30, cwd: '' });
  t.not(one.termId, two.termId);
  t.type(one.pid, 'number');
  c.call('term.input', { termId: one.termId, data: 'echo hel""lo\r' });
  c.call('term.input', { termId: two.termId, data: 'echo $((6*7)) && pwd\r' });
  await waitFor('hello in terminal one', () => c.output('term.output', one.termId).includes('hello'));
  await waitFor('42 in terminal two', () => c.output('term.output', two.termId).includes('42'));
  t.notOk(c.output('term.output', two.termId).includes('hello'), 'outputs are separate');

  await c.call('term.resize', { termId: one.termId, cols: 120, rows: 40 });
  c.call('term.input', { termId: one.termId, data: 'stty size\r' });
  await waitFor('new size', () => c.output('term.output', one.termId).includes('40 120'));

  const list = await c.call('term.list');
  t.same(list.terminals.map((x: { termId: string }) => x.termId).sort(), [one.termId, two.termId].sort());
  t.match(list.terminals.find((x: { termId: string }) => x.termId === one.termId), { cols: 120, rows: 40, attached: 1, exit: null });

  c.call('term.input', { termId: two.termId, data: 'exit 3\r' });
  t.match(await c.waitEvent('term.exit', (d) => d.termId === two.termId), { exitCode: 3, signal: null });
  t.equal(await c.code('term.input', { termId: two.termId, data: 'x' }), 'PROCESS_EXITED');
  t.match((await c.call('term.list')).terminals.find((x: { termId: string }) => x.termId === two.termId), { exit: { exitCode: 3 } }, 'kept in the list after exit');

  await c.call('term.close', { termId: one.termId });
  await c.waitEvent('term.exit', (d) => d.termId === one.termId);
  t.notOk((await c.call('term.list')).terminals.some((x: { termId: string }) => x.termId === one.termId), 'closed terminals are forgotten');
  t.equal(await c.code('term.input', { termId: one.termId, data: 'x' }), 'NO_SUCH_TERMINAL');
  t.equal(await c.code('term.attach', { termId: 't999' }), 'NO_SUCH_TERMINAL');
  t.equal(await c.code('term.open', { cols: 0, rows: 24 }), 'INVALID_PARAMS');
  t.equal(await c.code('term.open', { cols: 80, rows: 24, cwd: 'nope' }), 'NOT_FOUND');
});

t.test('a terminal outlives its client; re-attaching replays the scrollback, then live output', async (t) => {
  const { port } = await startWorker(t, { OMEGA_WORKER_SCROLLBACK_BYTES: '4096' });
  const a = await connect(t, port);
  const { termId } = await a.call('term.open', { cols: 80, rows: 24 });
  a.call('term.input', { termId, data: 'echo before-$((1+1))\r' });
  await waitFor('output', () => a.output('term.output', termId).includes('before-2'));
  await a.close();

  const b = await connect(t, port);
  const list = await b.call('term.list');
  t.match(list.terminals, [{ termId, attached: 0, exit: null }], 'still running, nobody attached');
  const att = await b.call('term.attach', { termId });
  t.match(att.scrollback, /before-2/);
  t.equal(att.truncated, false);
  b.call('term.input', { termId, data: 'echo after-$((2+2))\r' });
  await waitFor('live output', () => b.output('term.output', termId).includes('after-4'));

  // The ring is bounded: lots of output keeps only the last 4096 characters.
  b.call('term.input', { termId, data: 'for i in $(seq 1 2000); do echo line-$i; done; echo done-$((5*5))\r' });
  await waitFor('flood done', () => b.output('term.output', termId).includes('done-25'), 10_000);
  const c = await connect(t, port);
  const again = await c.call('term.attach', { termId });
  t.ok(again.scrollback.length <= 4096);
  t.equal(again.truncated, true);
  t.match(again.scrollback, /done-25/);
  t.notMatch(again.scrollback, /before-2/);
  await b.call('term.detach', { termId });
  const before = b.events.length;
  c.call('term.input', { termId, data: 'echo only-c\r' });
  await waitFor('c sees it', () => c.output('term.output', termId).includes('only-c'));
  t.equal(b.events.filter((e, i) => i >= before && e.event === 'term.output').length, 0, 'a detached client gets no output');
});
