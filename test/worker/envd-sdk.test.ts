import { mkdtemp, readFile, realpath, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CommandExitError, FileNotFoundError, InvalidArgumentError, Sandbox, SandboxError, type FilesystemEvent } from 'e2b';
import t, { type Test } from 'tap';
import { ENVD_VERSION } from '../../worker/envd/agent.js';
import { SANDBOX_ID, startWorker, TOKEN } from './harness.js';

/**
 * The real `e2b` SDK (pinned in package.json) against a real worker. The SDK
 * is pointed at the worker's own address with its `sandboxUrl` option (the
 * worker serves the agent's paths there), and given what the master's E2B API
 * gives it at create: the id, the envd version and the sandbox token.
 */
async function sdkSandbox(t: Test, env: Record<string, string> = {}) {
  const w = await startWorker(t, env);
  const sbx = new Sandbox({ sandboxId: SANDBOX_ID, envdVersion: ENVD_VERSION, envdAccessToken: TOKEN, sandboxUrl: w.url, apiKey: 'e2b_00', requestTimeoutMs: 10_000 });
  return { ...w, sbx };
}

t.test('files: write and read text, bytes and several at once; list, exists, getInfo, makeDir, rename, remove', async (t) => {
  const { sbx, workspace } = await sdkSandbox(t);
  const info = await sbx.files.write('notes/hello.txt', 'héllo\n');
  t.match(info, { name: 'hello.txt', path: `${workspace}/notes/hello.txt` });
  t.equal(await sbx.files.read('notes/hello.txt'), 'héllo\n');
  t.equal(await sbx.files.read(`${workspace}/notes/hello.txt`), 'héllo\n', 'by its absolute path');
  const bytes = new Uint8Array([0, 1, 2, 254, 255]);
  await sbx.files.write('bin.dat', bytes.buffer);
  t.same(Buffer.from(await sbx.files.read('bin.dat', { format: 'bytes' })), Buffer.from(bytes));
  const many = await sbx.files.write([
    { path: 'many/a.txt', data: 'a' },
    { path: 'many/b.txt', data: 'b' },
  ]);
  t.same(many.map((w) => w.name), ['a.txt', 'b.txt'], 'several files in one request');
  await sbx.files.write('stream.txt', 'gzipped upload', { gzip: true });
  t.equal(await readFile(path.join(workspace, 'stream.txt'), 'utf8'), 'gzipped upload', 'octet-stream with gzip (envd 0.5.7)');

  t.same((await sbx.files.list('many')).map((e) => [e.name, e.type]), [['a.txt', 'file'], ['b.txt', 'file']]);
  t.equal(await sbx.files.exists('many/a.txt'), true);
  t.equal(await sbx.files.exists('many/nope.txt'), false);
  t.match(await sbx.files.getInfo('notes'), { type: 'dir', path: `${workspace}/notes` });
  t.equal(await sbx.files.makeDir('made/deep'), true);
  t.equal(await sbx.files.makeDir('made/deep'), false, 'false when it exists');
  t.match(await sbx.files.rename('many/a.txt', 'made/a.txt'), { path: `${workspace}/made/a.txt` });
  await sbx.files.remove('many');
  t.equal(await sbx.files.exists('many'), false);
  await t.rejects(sbx.files.read('missing.txt'), FileNotFoundError);
  await t.rejects(sbx.files.getInfo('missing.txt'), FileNotFoundError);
});

t.test('files: watchDir reports what is written', async (t) => {
  const { sbx } = await sdkSandbox(t);
  await sbx.files.makeDir('watched');
  const events: FilesystemEvent[] = [];
  let seen: () => void = () => {};
  const got = new Promise<void>((resolve) => (seen = resolve));
  const handle = await sbx.files.watchDir('watched', (e) => {
    events.push(e);
    if (e.name === 'new.txt') seen();
  });
  t.teardown(() => handle.stop());
  await sbx.files.write('watched/new.txt', 'x');
  await got;
  t.match(events.find((e) => e.name === 'new.txt'), { type: 'create' });
});

t.test('commands: output, exit codes, envs, cwd, background, stdin, list and kill', async (t) => {
  const { sbx, workspace } = await sdkSandbox(t);
  const r = await sbx.commands.run('echo out; echo err >&2');
  t.match(r, { exitCode: 0, stdout: 'out\n', stderr: 'err\n' });
  const failed = await sbx.commands.run('exit 7').catch((e: unknown) => e);
  t.ok(failed instanceof CommandExitError, 'a non-zero exit is a CommandExitError');
  t.equal((failed as CommandExitError).exitCode, 7);
  await sbx.files.makeDir('sub');
  t.equal((await sbx.commands.run('pwd; echo $NAME', { cwd: 'sub', envs: { NAME: 'omega' } })).stdout, `${workspace}/sub\nomega\n`);

  const bg = await sbx.commands.run('sleep 0.2; echo done', { background: true });
  t.equal((await bg.wait()).stdout, 'done\n', 'background, then wait');

  const cat = await sbx.commands.run('cat', { background: true, stdin: true });
  await sbx.commands.sendStdin(cat.pid, 'typed\n');
  await sbx.commands.closeStdin(cat.pid);
  t.equal((await cat.wait()).stdout, 'typed\n', 'sendStdin, then closeStdin');

  const sleeper = await sbx.commands.run('sleep 30', { background: true });
  t.ok((await sbx.commands.list()).some((p) => p.pid === sleeper.pid), 'listed');
  t.equal(await sbx.commands.kill(sleeper.pid), true);
  const killed = await sleeper.wait().catch((e: unknown) => e);
  t.ok(killed instanceof CommandExitError, 'a killed command ends with an error');
  t.equal(await sbx.commands.kill(sleeper.pid), false, 'false once it is gone');
});

t.test('pty: create, sendInput, resize, kill', async (t) => {
  const { sbx } = await sdkSandbox(t);
  let out = '';
  const waiters: Array<() => void> = [];
  const pty = await sbx.pty.create({
    cols: 80,
    rows: 24,
    envs: { PS1: '$ ' },
    onData: (d) => {
      out += Buffer.from(d).toString();
      for (const w of waiters.splice(0)) w();
    },
  });
  const waitFor = async (s: string) => {
    while (!out.includes(s)) await new Promise<void>((resolve) => waiters.push(resolve));
  };
  await sbx.pty.resize(pty.pid, { cols: 120, rows: 40 });
  await sbx.pty.sendInput(pty.pid, new TextEncoder().encode('stty size; echo marker-$((6*7))\r'));
  await waitFor('marker-42');
  t.ok(out.includes('40 120'), 'the terminal has its new size');
  t.equal(await sbx.pty.kill(pty.pid), true);
  await pty.wait().catch(() => undefined);
});

t.test('bad input through the SDK: a path outside the home, a huge upload, a wrong token; the sandbox keeps serving', async (t) => {
  const { sbx, url } = await sdkSandbox(t, { OMEGA_WORKER_MAX_FILE_BYTES: String(1 << 20) });
  await t.rejects(sbx.files.read('/etc/passwd'), SandboxError, 'a path outside the home');
  await t.rejects(sbx.files.write('/tmp/x.txt', 'x'), SandboxError);
  await t.rejects(sbx.files.list('/'), SandboxError);
  const big = await sbx.files.write('big.bin', new Uint8Array(2 << 20).buffer).catch((e: unknown) => e);
  t.ok(big instanceof SandboxError, 'a file above the limit');
  t.match((big as Error).message, /^413: big\.bin: 2097152 bytes; at most 1048576/, 'the SDK shows our status and message');
  t.equal(await sbx.files.exists('big.bin'), false, 'nothing of it written');
  await sbx.files.write('small.txt', 'x');
  await t.rejects(sbx.files.list('small.txt'), InvalidArgumentError, 'a file is not a directory');
  const stranger = new Sandbox({ sandboxId: SANDBOX_ID, envdVersion: ENVD_VERSION, envdAccessToken: 'not-the-token-0123456789', sandboxUrl: url, apiKey: 'e2b_00' });
  await t.rejects(stranger.files.read('a.txt'), { name: 'AuthenticationError' });
  await t.rejects(stranger.commands.run('true'), { name: 'AuthenticationError' });
  t.equal((await sbx.commands.run('echo still here')).stdout, 'still here\n', 'still serving');
});

t.test('signed URLs: uploadUrl and downloadUrl open one file for one operation without the token', async (t) => {
  const { sbx, workspace } = await sdkSandbox(t);
  const up = await sbx.uploadUrl('shared/up.txt');
  t.notMatch(up, TOKEN, 'the token is not in the URL');
  const form = new FormData();
  form.append('file', new Blob(['through a signed URL']), 'up.txt');
  t.equal((await fetch(up, { method: 'POST', body: form })).status, 200);
  t.equal(await readFile(path.join(workspace, 'shared/up.txt'), 'utf8'), 'through a signed URL');
  const down = await sbx.downloadUrl('shared/up.txt', { useSignatureExpiration: 60 });
  t.equal(await (await fetch(down)).text(), 'through a signed URL', 'with an expiration');
  t.equal((await fetch(down.replace('up.txt', 'other.txt'))).status, 401, 'not for another path');
  t.equal((await fetch(up)).status, 401, 'a write URL does not read');
  t.equal((await fetch(await sbx.downloadUrl('shared/up.txt', { useSignatureExpiration: -10 }))).status, 401, 'expired');
});

t.test('a home that is a link to the workspace (OMEGA_WORKER_E2B_HOME, as /home/user in a template fit for the SDK)', async (t) => {
  const real = await realpath(await mkdtemp(path.join(tmpdir(), 'omega-ws-real-')));
  const home = path.join(tmpdir(), `omega-home-${process.pid}-${Date.now()}`);
  await symlink(real, home);
  t.teardown(() => Promise.all([rm(real, { recursive: true, force: true }), rm(home, { force: true })]));
  const { sbx } = await sdkSandbox(t, { OMEGA_WORKER_WORKSPACE: real, OMEGA_WORKER_E2B_HOME: home });
  t.match(await sbx.files.write('a.txt', 'via the home'), { path: `${home}/a.txt` }, 'paths shown under the home');
  t.equal(await sbx.files.read(`${real}/a.txt`), 'via the home', 'the workspace by its own path too');
  t.equal((await sbx.commands.run('pwd; cat a.txt')).stdout, `${home}\nvia the home`, 'pwd says the home');
  await sbx.files.makeDir('sub');
  t.equal((await sbx.commands.run('pwd', { cwd: 'sub' })).stdout, `${home}/sub\n`);
});
