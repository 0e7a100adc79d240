import { Code, ConnectError } from '@connectrpc/connect';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import t from 'tap';
import { EventType, FileType } from '../../src/protocol/envd/gen/filesystem_pb.js';
import { envdClients } from '../helpers/envd-client.js';
import { connect, SANDBOX_ID, startWorker, TOKEN, upgradeStatus } from './harness.js';

/** The Connect code a call fails with, or 'ok'. */
async function code(p: Promise<unknown>): Promise<Code | 'ok'> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    if (err instanceof ConnectError) return err.code;
    throw err;
  }
}

t.test('health, and the token and user checked before anything else', async (t) => {
  const { url } = await startWorker(t);
  t.equal((await fetch(`${url}/health`)).status, 204, '/health needs no token');
  const noToken = await fetch(`${url}/files?path=a.txt`);
  t.equal(noToken.status, 401);
  t.same(await noToken.json(), { code: 401, message: 'a valid X-Access-Token (the sandbox token) is required' });
  t.equal(await code(envdClients(url, null).fs.stat({ path: '.' })), Code.Unauthenticated, 'an RPC without the token');
  t.equal(await code(envdClients(url, 'wrong-token-0123456789').fs.stat({ path: '.' })), Code.Unauthenticated, 'with a wrong token');
  t.equal(await code(envdClients(url, TOKEN, { user: 'root' }).fs.stat({ path: '.' })), Code.Unauthenticated, 'root is not a user here');
  t.equal(await code(envdClients(url, TOKEN, { user: 'user' }).fs.stat({ path: '.' })), 'ok', 'the user is');
  const rootFile = await fetch(`${url}/files?path=a.txt&username=root`, { headers: { 'x-access-token': TOKEN } });
  t.equal(rootFile.status, 401);
  const stranger = await fetch(`${url}/files?path=a.txt`, { method: 'POST', headers: { 'x-access-token': 'wrong-token-0123456789', 'content-type': 'application/octet-stream' }, body: Buffer.alloc(3 << 20) });
  t.equal(stranger.status, 401, 'a large upload with a wrong token: 401, its body not read');
  const rpc = await fetch(`${url}/filesystem.Filesystem/Stat`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{{{' });
  t.equal(rpc.status, 401, 'an RPC without the token: 401 before its (broken) body');
  t.match(await rpc.json(), { code: 'unauthenticated' });
});

t.test('stat, makeDir, move, listDir and remove speak absolute paths in the home', async (t) => {
  const { url, workspace } = await startWorker(t);
  const { fs } = envdClients(url, TOKEN);
  await mkdir(path.join(workspace, 'src/deep'), { recursive: true });
  await writeFile(path.join(workspace, 'src/deep/a.txt'), 'hello');

  const st = (await fs.stat({ path: 'src/deep/a.txt' })).entry!;
  t.match(st, { name: 'a.txt', type: FileType.FILE, path: `${workspace}/src/deep/a.txt`, size: 5n, permissions: /^-rw/ });
  t.ok(st.owner && st.group, 'owner and group named');
  t.ok(st.modifiedTime && st.modifiedTime.seconds > 0n, 'a modification time');
  t.match((await fs.stat({ path: `${workspace}/src` })).entry, { type: FileType.DIRECTORY, path: `${workspace}/src`, permissions: /^d/ }, 'absolute in the home');
  t.equal((await fs.stat({ path: '' })).entry!.path, workspace, "'' is the home");

  t.match((await fs.makeDir({ path: 'new/one' })).entry, { type: FileType.DIRECTORY, path: `${workspace}/new/one` });
  t.equal(await code(fs.makeDir({ path: 'new/one' })), Code.AlreadyExists, 'the SDK reads AlreadyExists as false');

  t.match((await fs.move({ source: 'src/deep/a.txt', destination: `${workspace}/moved/b.txt` })).entry, { name: 'b.txt', path: `${workspace}/moved/b.txt` });
  t.equal(await readFile(path.join(workspace, 'moved/b.txt'), 'utf8'), 'hello');

  const one = (await fs.listDir({ path: '', depth: 1 })).entries.map((e) => e.path.slice(workspace.length + 1));
  t.same(one, ['moved', 'new', 'src']);
  const two = (await fs.listDir({ path: workspace, depth: 2 })).entries.map((e) => e.path.slice(workspace.length + 1));
  t.same(two, ['moved', 'moved/b.txt', 'new', 'new/one', 'src', 'src/deep']);

  await fs.remove({ path: 'src' });
  t.equal(await code(fs.stat({ path: 'src' })), Code.NotFound, 'removed with what it held');
  t.equal(await code(fs.remove({ path: 'src' })), Code.NotFound);
  t.equal(await code(fs.listDir({ path: 'moved/b.txt', depth: 1 })), Code.InvalidArgument, 'a file is not a directory');
});

t.test('paths outside the home are refused, over RPC and HTTP', async (t) => {
  const { url } = await startWorker(t);
  const { fs } = envdClients(url, TOKEN);
  for (const p of ['/etc/passwd', '../x', 'a/../../x', '/']) t.equal(await code(fs.stat({ path: p })), Code.PermissionDenied, p);
  t.equal(await code(fs.makeDir({ path: '/tmp/omega-envd-never' })), Code.PermissionDenied);
  t.equal(await code(fs.stat({ path: 'a\0b' })), Code.InvalidArgument, 'NUL');
  const res = await fetch(`${url}/files?path=/etc/passwd`, { headers: { 'x-access-token': TOKEN } });
  t.equal(res.status, 403);
  t.match(await res.json(), { code: 403, message: /serves files in/ });
});

t.test('/files: several files in one multipart upload, octet-stream, gzip, and reads back', async (t) => {
  const { url, workspace } = await startWorker(t);
  const headers = { 'x-access-token': TOKEN };
  const form = new FormData();
  form.append('file', new Blob(['one']), 'a/one.txt');
  form.append('file', new Blob([Buffer.from([0, 1, 255])]), `${workspace}/b.bin`);
  const up = await fetch(`${url}/files`, { method: 'POST', headers, body: form });
  t.equal(up.status, 200);
  t.same(await up.json(), [
    { name: 'one.txt', type: 'file', path: `${workspace}/a/one.txt` },
    { name: 'b.bin', type: 'file', path: `${workspace}/b.bin` },
  ]);
  t.equal(await readFile(path.join(workspace, 'a/one.txt'), 'utf8'), 'one');
  t.same(await readFile(path.join(workspace, 'b.bin')), Buffer.from([0, 1, 255]));

  const raw = await fetch(`${url}/files?path=raw.txt`, { method: 'POST', headers: { ...headers, 'content-type': 'application/octet-stream' }, body: 'raw bytes' });
  t.same(await raw.json(), [{ name: 'raw.txt', type: 'file', path: `${workspace}/raw.txt` }]);
  const gz = await fetch(`${url}/files?path=gz.txt`, { method: 'POST', headers: { ...headers, 'content-type': 'application/octet-stream', 'content-encoding': 'gzip' }, body: gzipSync('zipped') });
  t.equal(gz.status, 200);
  t.equal(await readFile(path.join(workspace, 'gz.txt'), 'utf8'), 'zipped');

  const read = await fetch(`${url}/files?path=b.bin`, { headers });
  t.equal(read.status, 200);
  t.same(Buffer.from(await read.arrayBuffer()), Buffer.from([0, 1, 255]), 'bytes as they are');
  t.equal(read.headers.get('content-length'), '3');
  const zipped = await fetch(`${url}/files?path=raw.txt`, { headers: { ...headers, 'accept-encoding': 'gzip' } });
  t.equal(await zipped.text(), 'raw bytes', 'gzipped when gzip alone is asked for (fetch undoes it)');

  const missing = await fetch(`${url}/files?path=nope.txt`, { headers });
  t.equal(missing.status, 404);
  t.match(await missing.json(), { code: 404, message: /nope\.txt/ });
  t.equal((await fetch(`${url}/files?path=a`, { headers })).status, 400, 'a directory');
  t.equal((await fetch(`${url}/files`, { method: 'POST', headers, body: 'x' })).status, 400, 'no path for raw bytes');
  t.equal((await fetch(`${url}/files?path=x`, { method: 'POST', headers: { ...headers, 'content-type': 'multipart/form-data; boundary=zz' }, body: 'not a form' })).status, 400, 'a broken form');
});

t.test('an upload over the limit gets 413 and the worker keeps serving', async (t) => {
  const { url, workspace } = await startWorker(t, { OMEGA_WORKER_MAX_FILE_BYTES: '1024', OMEGA_WORKER_MAX_UPLOAD_BYTES: '4096' });
  const headers = { 'x-access-token': TOKEN, 'content-type': 'application/octet-stream' };
  const big = await fetch(`${url}/files?path=big.bin`, { method: 'POST', headers, body: Buffer.alloc(1 << 20) });
  t.equal(big.status, 413);
  t.match(await big.json(), { code: 413, message: /larger than 1024 bytes/ });
  const bomb = await fetch(`${url}/files?path=bomb.bin`, { method: 'POST', headers: { ...headers, 'content-encoding': 'gzip' }, body: gzipSync(Buffer.alloc(1 << 20)) });
  t.equal(bomb.status, 413, 'a small gzip that expands past the limit');
  const form = new FormData();
  form.append('file', new Blob([Buffer.alloc(8192)]), 'f.bin');
  t.equal((await fetch(`${url}/files`, { method: 'POST', headers: { 'x-access-token': TOKEN }, body: form })).status, 413, 'a form past the upload limit');
  // A client that goes away halfway through its body.
  await new Promise<void>((resolve) => {
    const req = http.request(`${url}/files?path=cut.txt`, { method: 'POST', headers: { ...headers, 'content-length': '1000' } });
    req.on('error', () => resolve());
    req.write('only ten b', () => setTimeout(() => (req.destroy(), resolve()), 50));
  });
  const ok = await fetch(`${url}/files?path=small.txt`, { method: 'POST', headers, body: 'fine' });
  t.equal(ok.status, 200, 'the next upload is served');
  t.equal(await readFile(path.join(workspace, 'small.txt'), 'utf8'), 'fine');
  await t.rejects(readFile(path.join(workspace, 'big.bin')), 'nothing of the refused file was written');
  await t.rejects(readFile(path.join(workspace, 'cut.txt')), 'nor of the one cut short');
});

t.test('a malformed Connect request gets a Connect error and the worker keeps serving', async (t) => {
  const { url } = await startWorker(t);
  const headers = { 'x-access-token': TOKEN };
  const unary = await fetch(`${url}/filesystem.Filesystem/Stat`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: '{"path":' });
  t.equal(unary.status, 400);
  t.match(await unary.json(), { code: 'invalid_argument' });
  const unknownField = await fetch(`${url}/filesystem.Filesystem/Stat`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: '{"path": 5}' });
  t.equal(unknownField.status, 400, 'a field of the wrong type');
  // A server stream's request is one enveloped message: flags, a 4-byte length, the JSON. This length lies.
  const envelope = Buffer.concat([Buffer.from([0, 0, 0, 1, 0]), Buffer.from('{"process":{"cmd":"true"}}')]);
  const stream = await fetch(`${url}/process.Process/Start`, { method: 'POST', headers: { ...headers, 'content-type': 'application/connect+json' }, body: envelope });
  const body = Buffer.from(await stream.arrayBuffer());
  t.equal(body[0], 2, 'an end-of-stream message');
  t.match(JSON.parse(body.subarray(5).toString()), { error: { code: 'invalid_argument' } });
  const missing = await fetch(`${url}/process.Process/Nope`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: '{}' });
  t.equal(missing.status, 404);
  t.equal(await code(envdClients(url, TOKEN).fs.stat({ path: '' })), 'ok', 'still serving');
});

t.test('WatchDir streams the changes below a directory; the WebSocket clients see them too', async (t) => {
  const { url, port, workspace } = await startWorker(t);
  const ws = await connect(t, port);
  await mkdir(path.join(workspace, 'w/sub'), { recursive: true });
  // The watcher has seen the directories before the watches start, so their creation is not among the events.
  await ws.waitEvent('fs.changed', (d) => d.path === 'w/sub');
  const { fs } = envdClients(url, TOKEN);
  const abort = new AbortController();
  t.teardown(() => abort.abort());
  const shallow = fs.watchDir({ path: 'w', recursive: false }, { signal: abort.signal })[Symbol.asyncIterator]();
  const deep = fs.watchDir({ path: `${workspace}/w`, recursive: true }, { signal: abort.signal })[Symbol.asyncIterator]();
  t.equal((await shallow.next()).value.event.case, 'start');
  t.equal((await deep.next()).value.event.case, 'start');
  await fetch(`${url}/files?path=w/sub/deep.txt`, { method: 'POST', headers: { 'x-access-token': TOKEN, 'content-type': 'application/octet-stream' }, body: 'd' });
  await writeFile(path.join(workspace, 'w/top.txt'), 't');
  /** The names of the filesystem events up to and including `last`. */
  const until = async (it: typeof deep, last: string) => {
    const names: string[] = [];
    for (let r = await it.next(); !r.done; r = await it.next()) {
      const e = r.value.event;
      if (e.case !== 'filesystem') continue;
      names.push(`${EventType[e.value.type]} ${e.value.name}`);
      if (e.value.name === last) return names;
    }
    return names;
  };
  const deepSeen = await until(deep, 'top.txt');
  t.ok(deepSeen.includes('CREATE sub/deep.txt'), `named relative to the watched directory: ${deepSeen}`);
  const shallowSeen = await until(shallow, 'top.txt');
  t.same(shallowSeen, ['CREATE top.txt'], 'a shallow watch skips deeper entries');
  await ws.waitEvent('fs.changed', (d) => d.path === 'w/sub/deep.txt' && d.kind === 'created');
  t.equal(await code(fs.watchDir({ path: 'w/sub/deep.txt', recursive: false })[Symbol.asyncIterator]().next()), Code.InvalidArgument, 'a file cannot be watched');
});

t.test('the host 49983-<id>.<zone> is the agent, served by the worker itself', async (t) => {
  const { port } = await startWorker(t);
  const get = (host: string, path: string, headers: Record<string, string> = {}) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port, path, headers: { host, ...headers } }, (res) => {
          let body = '';
          res.on('data', (c) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode!, body }));
        })
        .on('error', reject);
    });
  const agent = `49983-${SANDBOX_ID}.sandbox.test`;
  t.equal((await get(agent, '/health')).status, 204);
  t.equal((await get(agent, '/healthz')).status, 401, "any path is the agent's: the worker's own health is not there");
  t.match(await get(agent, '/nope', { 'x-access-token': TOKEN }), { status: 404, body: /no route/ });
  t.equal((await get(`49983-other.sandbox.test`, '/health')).status, 404, "another sandbox's agent");
  const { fs } = envdClients(`http://127.0.0.1:${port}`, TOKEN, { host: agent });
  t.equal((await fs.stat({ path: '' })).entry?.type, FileType.DIRECTORY, 'an RPC by that name');
  t.equal((await upgradeStatus(port, { host: agent, authorization: `Bearer ${TOKEN}` })).status, 404, 'no WebSocket on the agent\'s host');
});
