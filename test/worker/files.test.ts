import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { sleep } from '../helpers/ports.js';
import { connect, startWorker } from './harness.js';

t.test('write, read, list, stat, mkdir, rename, delete', async (t) => {
  const { port, workspace } = await startWorker(t);
  const c = await connect(t, port);
  const w = await c.call('fs.write', { path: 'src/deep/a.txt', content: 'héllo\n' });
  t.match(w, { size: 7, created: true }, 'parents created; size in bytes');
  t.equal(await readFile(path.join(workspace, 'src/deep/a.txt'), 'utf8'), 'héllo\n');
  t.match(await c.call('fs.write', { path: 'src/deep/a.txt', content: 'again' }), { size: 5, created: false });
  t.match(await c.call('fs.read', { path: 'src/deep/a.txt' }), { content: 'again', encoding: 'utf8', size: 5 });

  const bytes = Buffer.from([0, 1, 2, 255, 254]);
  await c.call('fs.write', { path: 'bin.dat', content: bytes.toString('base64'), encoding: 'base64' });
  t.same(await readFile(path.join(workspace, 'bin.dat')), bytes, 'base64 in');
  t.equal((await c.call('fs.read', { path: 'bin.dat', encoding: 'base64' })).content, bytes.toString('base64'), 'base64 out');

  const list = await c.call('fs.list', { path: '' });
  t.same(
    list.entries.map((e: { name: string; type: string }) => [e.name, e.type]),
    [
      ['bin.dat', 'file'],
      ['src', 'dir'],
    ],
  );
  t.equal(list.truncated, false);
  t.same((await c.call('fs.list', { path: 'src/deep' })).entries.map((e: { name: string }) => e.name), ['a.txt']);

  t.match(await c.call('fs.stat', { path: 'src/deep/a.txt' }), { path: 'src/deep/a.txt', type: 'file', size: 5 });
  t.match(await c.call('fs.stat', { path: './src/../src' }), { path: 'src', type: 'dir' });
  t.match(await c.call('fs.stat', { path: '' }), { path: '', type: 'dir' }, 'the root itself');
  t.same(await c.call('fs.mkdir', { path: 'empty/one' }), { created: true });
  t.same(await c.call('fs.mkdir', { path: 'empty/one' }), { created: false });

  await c.call('fs.rename', { from: 'src/deep/a.txt', to: 'moved/b.txt' });
  t.equal(await readFile(path.join(workspace, 'moved/b.txt'), 'utf8'), 'again');
  t.equal(await c.code('fs.stat', { path: 'src/deep/a.txt' }), 'NOT_FOUND');
  t.equal(await c.code('fs.rename', { from: 'bin.dat', to: 'moved/b.txt' }), 'ALREADY_EXISTS');
  await c.call('fs.rename', { from: 'bin.dat', to: 'moved/b.txt', overwrite: true });
  t.equal(await c.code('fs.rename', { from: 'nope', to: 'x' }), 'NOT_FOUND');

  await c.call('fs.delete', { path: 'src' });
  t.equal(await c.code('fs.stat', { path: 'src/deep' }), 'NOT_FOUND', 'directories are deleted recursively');
  t.equal(await c.code('fs.delete', { path: 'src' }), 'NOT_FOUND');
  t.equal(await c.code('fs.delete', { path: '' }), 'INVALID_PARAMS', 'not the root');
  t.equal(await c.code('fs.read', { path: 'moved' }), 'IS_A_DIRECTORY');
  t.equal(await c.code('fs.list', { path: 'moved/b.txt' }), 'NOT_A_DIRECTORY');
  t.equal(await c.code('fs.read', { path: 'missing.txt' }), 'NOT_FOUND');
  t.equal(await c.code('fs.write', { path: '', content: 'x' }), 'IS_A_DIRECTORY');
});

t.test('files larger than the limit are refused', async (t) => {
  const { port, workspace } = await startWorker(t, { OMEGA_WORKER_MAX_FILE_BYTES: '10' });
  const c = await connect(t, port);
  await writeFile(path.join(workspace, 'big'), 'x'.repeat(11));
  t.equal(await c.code('fs.read', { path: 'big' }), 'FILE_TOO_LARGE');
  t.equal(await c.code('fs.write', { path: 'big2', content: 'y'.repeat(11) }), 'FILE_TOO_LARGE');
});

t.test('paths that lead outside the workspace are refused: .., absolute, symlinks out', async (t) => {
  const { port, workspace } = await startWorker(t);
  const c = await connect(t, port);
  await symlink('/etc', path.join(workspace, 'etc'));
  await symlink('/etc/hostname', path.join(workspace, 'hostname'));
  await symlink('/tmp/omega-worker-test-never-created', path.join(workspace, 'dangling'));
  await mkdir(path.join(workspace, 'inside'));
  await writeFile(path.join(workspace, 'inside/f.txt'), 'ok');
  await symlink('inside', path.join(workspace, 'link-in'));
  await symlink(path.join(workspace, 'inside/f.txt'), path.join(workspace, 'abs-link-in'));
  await symlink('inside/../../..', path.join(workspace, 'sneaky'));

  const outside = [
    ['fs.read', { path: '../x' }],
    ['fs.read', { path: 'a/../../x' }],
    ['fs.list', { path: '..' }],
    ['fs.read', { path: '/etc/passwd' }],
    ['fs.write', { path: '/tmp/x', content: 'x' }],
    ['fs.read', { path: 'etc/passwd' }],
    ['fs.list', { path: 'etc' }],
    ['fs.read', { path: 'hostname' }],
    ['fs.write', { path: 'etc/omega-test', content: 'x' }],
    ['fs.write', { path: 'dangling', content: 'x' }],
    ['fs.write', { path: 'hostname', content: 'x' }],
    ['fs.list', { path: 'sneaky' }],
    ['fs.rename', { from: 'inside/f.txt', to: 'etc/f.txt' }],
    ['fs.rename', { from: '../x', to: 'y' }],
    ['fs.delete', { path: 'etc/hostname' }],
    ['term.open', { cols: 80, rows: 24, cwd: 'etc' }],
    ['proc.run', { command: 'true', cwd: '..' }],
  ] as const;
  for (const [method, params] of outside) t.equal(await c.code(method, params), 'PATH_OUTSIDE_WORKSPACE', `${method} ${JSON.stringify(params)}`);

  // Links that stay inside work; a link itself can be stat'ed and deleted without touching its target.
  t.equal((await c.call('fs.read', { path: 'link-in/f.txt' })).content, 'ok');
  t.equal((await c.call('fs.read', { path: 'abs-link-in' })).content, 'ok');
  t.match(await c.call('fs.stat', { path: 'etc' }), { type: 'symlink' });
  await c.call('fs.delete', { path: 'etc' });
  t.ok((await readFile('/etc/hostname', 'utf8').catch(() => 'still there')).length > 0, '/etc untouched');
  t.equal(await c.code('fs.stat', { path: 'etc' }), 'NOT_FOUND');
  t.equal(await c.code('fs.read', { path: 'a\u0000b' }), 'INVALID_PARAMS');
});

t.test('live sync: a change by client A reaches client B (attributed to A, no echo to A)', async (t) => {
  const { port } = await startWorker(t);
  const a = await connect(t, port);
  const b = await connect(t, port);
  await a.call('fs.write', { path: 'dir/new.txt', content: 'one' });
  const created = await b.waitEvent('fs.changed', (d) => d.path === 'dir/new.txt');
  t.match(created, { kind: 'created', type: 'file', by: a.clientId });
  t.match(await b.waitEvent('fs.changed', (d) => d.path === 'dir'), { kind: 'created', type: 'dir', by: a.clientId });
  await sleep(150);
  await a.call('fs.write', { path: 'dir/new.txt', content: 'two' });
  t.match(await b.waitEvent('fs.changed', (d) => d.path === 'dir/new.txt' && d.kind === 'modified'), { by: a.clientId });
  await a.call('fs.rename', { from: 'dir/new.txt', to: 'dir/renamed.txt' });
  await b.waitEvent('fs.changed', (d) => d.path === 'dir/new.txt' && d.kind === 'deleted');
  await b.waitEvent('fs.changed', (d) => d.path === 'dir/renamed.txt' && d.kind === 'created');
  await a.call('fs.delete', { path: 'dir' });
  t.match(await b.waitEvent('fs.changed', (d) => d.path === 'dir' && d.kind === 'deleted'), { type: 'dir', by: a.clientId });
  await sleep(150);
  t.same(
    a.events.filter((e) => e.event === 'fs.changed'),
    [],
    'the author gets no echo of its own changes',
  );
});

t.test('live sync: a file made by a process in the sandbox reaches every client', async (t) => {
  const { port } = await startWorker(t);
  const a = await connect(t, port);
  const b = await connect(t, port);
  const { procId } = await a.call('proc.run', { command: 'bash', args: ['-c', 'mkdir -p x/y && echo x > x/y/f && echo top > f'] });
  await a.waitEvent('proc.exit', (d) => d.procId === procId);
  for (const c of [a, b]) {
    t.match(await c.waitEvent('fs.changed', (d) => d.path === 'f'), { kind: 'created', type: 'file', by: null });
    t.match(await c.waitEvent('fs.changed', (d) => d.path === 'x/y/f'), { kind: 'created', by: null }, 'inside a directory made a moment before');
  }
});
