import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import WebSocket, { WebSocketServer } from 'ws';
import { freePort } from '../helpers/ports.js';
import { CLAIM_SECRET, connect, SANDBOX_ID, startWorker, TOKEN } from './harness.js';

/** A tiny app "inside the sandbox": echoes what it saw, and a WebSocket echo. */
async function startApp(t: Test): Promise<number> {
  const server: Server = createServer((req, res) => {
    res.setHeader('set-cookie', ['a=1', 'b=2']);
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ url: req.url, method: req.method, headers: req.headers }));
  });
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws, req) => {
    ws.send(`hello ${req.headers.host} ${req.url}`);
    ws.on('message', (m) => ws.send(`echo ${m.toString()}`));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    wss.close();
    server.closeAllConnections();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return (server.address() as AddressInfo).port;
}

/** An HTTP request to the worker with a given Host header (fetch cannot set Host). */
function get(workerPort: number, host: string, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: workerPort, path, method, headers: { host, ...headers } }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

t.test('a private preview: 401 without the token; ?omega_token= trades it for a cookie; bearer works', async (t) => {
  const { port } = await startWorker(t);
  const app = await startApp(t);
  const host = `${app}.${SANDBOX_ID}.sandbox.test:8443`;

  const denied = await get(port, host, '/page?x=1');
  t.equal(denied.status, 401);
  t.match(JSON.parse(denied.body), { code: 'UNAUTHORIZED', message: /private/ });
  t.equal((await get(port, host, '/page', { cookie: 'omega_preview=forged' })).status, 401);
  t.equal((await get(port, host, '/page?omega_token=wrong')).status, 401);

  const redirect = await get(port, host, `/page?x=1&omega_token=${TOKEN}&y=2`);
  t.equal(redirect.status, 302);
  t.equal(redirect.headers.location, '/page?x=1&y=2', 'same URL without the token');
  const setCookie = redirect.headers['set-cookie']![0]!;
  t.match(setCookie, /^omega_preview=[\w-]+; Path=\/; HttpOnly; SameSite=Lax$/);
  t.notMatch(setCookie, TOKEN, 'the cookie is not the token');
  const cookie = setCookie.split(';')[0]!;

  const ok = await get(port, host, '/page?x=1&y=2', { cookie: `${cookie}; theirs=keep` });
  t.equal(ok.status, 200);
  const seen = JSON.parse(ok.body) as { url: string; headers: IncomingHttpHeaders };
  t.equal(seen.url, '/page?x=1&y=2');
  t.equal(seen.headers.host, `localhost:${app}`);
  t.equal(seen.headers['x-forwarded-host'], host);
  t.equal(seen.headers.cookie, 'theirs=keep', 'the app does not see the worker\'s cookie');
  t.same(ok.headers['set-cookie'], ['a=1', 'b=2'], 'multiple Set-Cookie pass through');

  // The cookie is bound to its host: it does not open another port.
  const otherApp = await startApp(t);
  t.equal((await get(port, `${otherApp}.${SANDBOX_ID}.sandbox.test`, '/', { cookie })).status, 401);

  const bearer = await get(port, host, '/b', { authorization: `Bearer ${TOKEN}` });
  t.equal(bearer.status, 200);
  t.notOk(JSON.parse(bearer.body).headers.authorization, 'the token is not passed to the app');
  const post = await get(port, host, '/form', { authorization: `Bearer ${TOKEN}` }, 'POST');
  t.equal(JSON.parse(post.body).method, 'POST');

  t.equal((await get(port, `${app}.othersandbox.sandbox.test`, '/', { authorization: `Bearer ${TOKEN}` })).status, 404, 'another sandbox\'s host');
});

t.test('preview.setPublic opens a port without the token, and closes it again', async (t) => {
  const { port } = await startWorker(t);
  const app = await startApp(t);
  const host = `${app}.${SANDBOX_ID}.sandbox.test`;
  const a = await connect(t, port);
  const b = await connect(t, port);
  t.same(await a.call('preview.setPublic', { port: app, public: true }), { port: app, public: true });
  t.match(await b.waitEvent('preview.changed'), { port: app, public: true });
  t.same(await b.call('preview.list'), { public: [app] });
  t.equal((await get(port, host, '/')).status, 200);
  await a.call('preview.setPublic', { port: app, public: false });
  t.equal((await get(port, host, '/')).status, 401);
  t.equal(await a.code('preview.setPublic', { port: 70000, public: true }), 'INVALID_PARAMS');
});

t.test('a worker claimed with publicPreviews serves every port without the token; a claim with a bad value is refused', async (t) => {
  const { port, url } = await startWorker(t, { OMEGA_WORKER_TOKEN: '', OMEGA_WORKER_SANDBOX_ID: '', OMEGA_WORKER_CLAIM_SECRET: CLAIM_SECRET });
  const claim = (body: object) => fetch(`${url}/_omega/claim`, { method: 'POST', headers: { authorization: `Bearer ${CLAIM_SECRET}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const bad = await claim({ sandboxId: SANDBOX_ID, token: TOKEN, publicPreviews: 'yes' });
  t.equal(bad.status, 400);
  t.match(await bad.json(), { code: 'BAD_REQUEST', message: /publicPreviews: must be a boolean/ });
  t.equal((await claim({ sandboxId: SANDBOX_ID, token: TOKEN, publicPreviews: true })).status, 200);
  const app = await startApp(t);
  const host = `${app}.${SANDBOX_ID}.sandbox.test`;
  t.equal((await get(port, host, '/')).status, 200, 'no token needed');
  const c = await connect(t, port);
  t.same(await c.call('preview.list'), { public: [], all: true });
  t.same(await c.call('preview.setPublic', { port: app, public: false }), { port: app, public: true }, 'a port cannot be made private: the answer says so');
  t.equal((await get(port, host, '/')).status, 200);
});

t.test('nothing listening on the port: 502 with a clear message', async (t) => {
  const { port } = await startWorker(t);
  const dead = await freePort();
  const res = await get(port, `${dead}.${SANDBOX_ID}.sandbox.test`, '/', { authorization: `Bearer ${TOKEN}` });
  t.equal(res.status, 502);
  t.match(JSON.parse(res.body), { code: 'PREVIEW_UNREACHABLE', message: `nothing is listening on port ${dead} inside the sandbox` });
});

t.test('WebSocket through the preview: token or cookie needed, then a transparent pipe', async (t) => {
  const { port } = await startWorker(t);
  const app = await startApp(t);
  const host = `${app}.${SANDBOX_ID}.sandbox.test`;
  const open = (path: string, headers: Record<string, string>) =>
    new Promise<{ ws?: WebSocket; status?: number; first?: string }>((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { headers: { host, ...headers } });
      ws.once('message', (m) => resolve({ ws, first: m.toString() }));
      ws.once('unexpected-response', (_req, res) => resolve({ status: res.statusCode }));
      ws.once('error', reject);
    });
  t.equal((await open('/sock', {})).status, 401);
  const viaParam = await open(`/sock?omega_token=${TOKEN}&k=v`, {});
  t.equal(viaParam.first, `hello localhost:${app} /sock?k=v`, 'the token parameter is not passed on');
  viaParam.ws!.close();
  const { ws, first } = await open('/sock', { authorization: `Bearer ${TOKEN}` });
  t.match(first, /^hello/);
  const reply = new Promise<string>((r) => ws!.once('message', (m) => r(m.toString())));
  ws!.send('ping');
  t.equal(await reply, 'echo ping');
  ws!.close();
  const redirect = await get(port, host, `/?omega_token=${TOKEN}`);
  const withCookie = await open('/sock', { cookie: redirect.headers['set-cookie']![0]!.split(';')[0]! });
  t.match(withCookie.first, /^hello/, 'the preview cookie opens WebSockets too');
  withCookie.ws!.close();

  const c = await connect(t, port);
  await c.call('preview.setPublic', { port: app, public: true });
  const pub = await open('/sock', {});
  t.match(pub.first, /^hello/, 'public port: no token needed');
  pub.ws!.close();
});

t.test('a proxied request counts as activity', async (t) => {
  const { port, worker } = await startWorker(t);
  const app = await startApp(t);
  const before = worker.health().lastActivityMs;
  await new Promise((r) => setTimeout(r, 5));
  await get(port, `${app}.${SANDBOX_ID}.sandbox.test`, '/');
  t.ok(worker.health().lastActivityMs > before);
});
