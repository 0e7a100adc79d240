import { Code, ConnectError } from '@connectrpc/connect';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { Signal, type ProcessEvent, type StartResponse } from '../../src/protocol/envd/gen/process_pb.js';
import { collect, envdClients } from '../helpers/envd-client.js';
import { connect, startWorker, TOKEN } from './harness.js';

/** What a process's events say: the pid, stdout, stderr and pty output as text, and the end. */
function summary(events: Array<{ event?: ProcessEvent }>) {
  const out = { pid: 0, stdout: '', stderr: '', pty: '', end: null as null | { exitCode: number; exited: boolean; status: string } };
  for (const { event } of events) {
    const e = event?.event;
    if (e?.case === 'start') out.pid = e.value.pid;
    if (e?.case === 'data' && e.value.output.case) out[e.value.output.case] += Buffer.from(e.value.output.value).toString();
    if (e?.case === 'end') out.end = { exitCode: e.value.exitCode, exited: e.value.exited, status: e.value.status };
  }
  return out;
}

t.test('Start streams the pid, stdout, stderr and the exit; envs and cwd are given', async (t) => {
  const { url, workspace } = await startWorker(t);
  await mkdir(path.join(workspace, 'sub'));
  const { proc } = envdClients(url, TOKEN);
  const run = summary(await collect(proc.start({ process: { cmd: '/bin/bash', args: ['-c', 'echo out; echo err >&2; exit 3'] } })));
  t.ok(run.pid > 0);
  t.equal(run.stdout, 'out\n');
  t.equal(run.stderr, 'err\n');
  t.same(run.end, { exitCode: 3, exited: true, status: 'exit status 3' });

  const env = summary(await collect(proc.start({ process: { cmd: '/bin/bash', args: ['-c', 'pwd; echo "$GREETING"'], envs: { GREETING: 'hi there' }, cwd: 'sub' }, stdin: false })));
  t.equal(env.stdout, `${workspace}/sub\nhi there\n`, 'a relative cwd is in the home');
  t.equal((await collect(proc.start({ process: { cmd: 'true', cwd: '/etc' } })).catch((e: ConnectError) => e.code)), Code.PermissionDenied, 'a cwd outside the home');
  t.equal((await collect(proc.start({ process: { cmd: 'no-such-program-here' } })).catch((e: ConnectError) => e.code)), Code.Internal, 'a program that cannot start');
  const envs = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`V${i}`, 'x']));
  t.equal((await collect(proc.start({ process: { cmd: 'true', envs } })).catch((e: ConnectError) => e.code)), Code.InvalidArgument, 'the core rules for env: at most 256');
});

t.test('stdin: SendInput then CloseStdin; a tag names the process for Connect, List and SendSignal', async (t) => {
  const { url } = await startWorker(t);
  const { proc } = envdClients(url, TOKEN);
  const cat = proc.start({ process: { cmd: 'cat' }, stdin: true, tag: 'the-cat' })[Symbol.asyncIterator]();
  const start = (await cat.next()).value.event.event;
  t.equal(start.case, 'start');
  const pid = start.value.pid as number;
  await proc.sendInput({ process: { selector: { case: 'pid', value: pid } }, input: { input: { case: 'stdin', value: Buffer.from('hello\n') } } });
  const echoed = (await cat.next()).value.event.event;
  t.match(echoed, { case: 'data', value: { output: { case: 'stdout' } } });
  t.equal(Buffer.from(echoed.value.output.value).toString(), 'hello\n');
  const listed = (await proc.list({})).processes.find((p) => p.pid === pid);
  t.match(listed, { tag: 'the-cat', config: { cmd: 'cat' } }, 'listed with its tag and config');
  await proc.closeStdin({ process: { selector: { case: 'tag', value: 'the-cat' } } });
  const rest = [];
  for (let r = await cat.next(); !r.done; r = await cat.next()) rest.push(r.value);
  t.match(summary(rest).end, { exitCode: 0, exited: true }, 'cat ends at the end of its input');
  t.notOk((await proc.list({})).processes.some((p) => p.pid === pid), 'no longer listed');
  t.equal(await proc.closeStdin({ process: { selector: { case: 'pid', value: pid } } }).then(() => 'ok', (e: ConnectError) => e.code), Code.NotFound, 'an exited process is gone for the agent');

  const sleeper = proc.start({ process: { cmd: 'sleep', args: ['30'] }, tag: 'sleeper' })[Symbol.asyncIterator]();
  const sleeperPid = ((await sleeper.next()).value.event.event.value as { pid: number }).pid;
  const watcher = proc.connect({ process: { selector: { case: 'tag', value: 'sleeper' } } })[Symbol.asyncIterator]();
  const first = (await watcher.next()).value;
  t.equal(await proc.sendSignal({ process: { selector: { case: 'pid', value: sleeperPid } } }).then(() => 'ok', (e: ConnectError) => e.code), Code.InvalidArgument, 'no signal named');
  await proc.sendSignal({ process: { selector: { case: 'pid', value: sleeperPid } }, signal: Signal.SIGKILL });
  const seen = summary([first, ...(await collect({ [Symbol.asyncIterator]: () => watcher }))]);
  t.equal(seen.pid, sleeperPid, 'Connect starts with the pid');
  t.same(seen.end, { exitCode: -1, exited: false, status: 'signal: SIGKILL' });
  t.equal(await proc.sendSignal({ process: { selector: { case: 'pid', value: 999999 } }, signal: Signal.SIGKILL }).then(() => 'ok', (e: ConnectError) => e.code), Code.NotFound);
});

t.test('a PTY: input, resize through Update, output as pty data, kill', async (t) => {
  const { url } = await startWorker(t);
  const { proc } = envdClients(url, TOKEN);
  const abort = new AbortController();
  t.teardown(() => abort.abort());
  const events: StartResponse[] = [];
  const stream = proc.start({ process: { cmd: '/bin/bash', args: ['--norc', '-i'], envs: { PS1: '$ ' } }, pty: { size: { cols: 80, rows: 24 } } }, { signal: abort.signal });
  const waiting: { want: string; resolve: (() => void) | null } = { want: '', resolve: null };
  const text = () => summary(events).pty;
  const done = (async () => {
    for await (const m of stream) {
      events.push(m);
      if (text().includes(waiting.want)) waiting.resolve?.();
    }
  })();
  const waitFor = (s: string) =>
    new Promise<void>((resolve) => {
      waiting.want = s;
      waiting.resolve = resolve;
      if (text().includes(s)) resolve();
    });
  await waitFor('$ ');
  const pid = summary(events).pid;
  await proc.update({ process: { selector: { case: 'pid', value: pid } }, pty: { size: { cols: 101, rows: 33 } } });
  await proc.sendInput({ process: { selector: { case: 'pid', value: pid } }, input: { input: { case: 'pty', value: Buffer.from('stty size\r') } } });
  await waitFor('33 101');
  t.pass('the terminal has the new size');
  t.equal(await proc.closeStdin({ process: { selector: { case: 'pid', value: pid } } }).then(() => 'ok', (e: ConnectError) => e.code), Code.InvalidArgument, 'a terminal takes Ctrl-D, not CloseStdin');
  await proc.sendSignal({ process: { selector: { case: 'pid', value: pid } }, signal: Signal.SIGKILL });
  await done;
  t.match(summary(events).end, { exited: false, status: 'signal: SIGKILL' });
});

t.test('one core: a process the WebSocket started is listed and signalled through the agent', async (t) => {
  const { url, port } = await startWorker(t);
  const ws = await connect(t, port);
  const { pid, procId } = await ws.call('proc.run', { command: 'sleep', args: ['30'] });
  const { proc } = envdClients(url, TOKEN);
  t.match((await proc.list({})).processes.find((p) => p.pid === pid), { config: { cmd: 'sleep', args: ['30'] } });
  await proc.sendSignal({ process: { selector: { case: 'pid', value: pid } }, signal: Signal.SIGTERM });
  const exit = await ws.waitEvent('proc.exit', (d) => d.procId === procId);
  t.equal(exit.signal, 'SIGTERM', 'the WebSocket client sees the exit');
});

t.test('a Start whose client goes away leaves the program running', async (t) => {
  const { url } = await startWorker(t);
  const { proc } = envdClients(url, TOKEN);
  const abort = new AbortController();
  const it = proc.start({ process: { cmd: 'sleep', args: ['30'] } }, { signal: abort.signal })[Symbol.asyncIterator]();
  const pid = ((await it.next()).value.event.event.value as { pid: number }).pid;
  abort.abort();
  await it.next().catch(() => undefined);
  t.ok((await proc.list({})).processes.some((p) => p.pid === pid), 'still running, still listed');
  const again = proc.connect({ process: { selector: { case: 'pid', value: pid } } })[Symbol.asyncIterator]();
  t.equal((await again.next()).value.event.event.case, 'start', 'Connect finds it');
  await proc.sendSignal({ process: { selector: { case: 'pid', value: pid } }, signal: Signal.SIGKILL });
  t.match(summary(await collect({ [Symbol.asyncIterator]: () => again })).end, { exited: false });
});
