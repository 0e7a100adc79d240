import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { waitFor } from '../helpers/ports.js';
import { CLAIM_SECRET, connect, SANDBOX_ID, startWorker, TOKEN, upgradeStatus } from './harness.js';

const NEW_TOKEN = 'claimed-token-0123456789abcdef';

function claim(url: string, body: unknown, secret = CLAIM_SECRET) {
  return fetch(`${url}/_omega/claim`, {
    method: 'POST',
    headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

t.test('the WebSocket needs the token: missing or wrong is refused with 401 and nothing else', async (t) => {
  const { port, url } = await startWorker(t);
  const none = await upgradeStatus(port);
  t.equal(none.status, 401);
  t.equal(none.body, '', 'no body');
  t.equal((await upgradeStatus(port, { authorization: 'Bearer wrong-token-0123456789abcdef' })).status, 401);
  t.equal((await upgradeStatus(port, { authorization: `Bearer ${TOKEN}x` })).status, 401);
  t.equal((await upgradeStatus(port, {}, '/?token=nope')).status, 401);
  // Plain HTTP without the token: 401 everywhere but /healthz and the claim.
  t.equal((await fetch(`${url}/`)).status, 401);
  t.equal((await fetch(`${url}/anything`)).status, 401);
  t.equal((await fetch(`${url}/anything`, { headers: { authorization: `Bearer ${TOKEN}` } })).status, 404);
  // A valid token on another path: only / speaks the protocol.
  t.equal((await upgradeStatus(port, { authorization: `Bearer ${TOKEN}` }, '/other')).status, 404);
});

t.test('the token as a bearer header, a subprotocol or ?token=; several clients at once', async (t) => {
  const { port } = await startWorker(t);
  const a = await connect(t, port, { via: 'header' });
  const b = await connect(t, port, { via: 'protocol' });
  const c = await connect(t, port, { via: 'query' });
  t.equal(b.ws.protocol, 'omega.v1', 'the worker selects omega.v1 (a browser needs one selected)');
  const hello = await a.waitEvent('hello');
  t.equal(hello.sandboxId, SANDBOX_ID);
  t.equal(hello.protocol, 1);
  t.not(a.clientId, b.clientId);
  for (const cl of [a, b, c]) t.type((await cl.call('ping')).time, 'number');
});

t.test('healthz needs no token and reports claim state and activity', async (t) => {
  const { port, url } = await startWorker(t);
  const h1 = (await (await fetch(`${url}/healthz`)).json()) as { lastActivityMs: number };
  t.match(h1, { status: 'ok', claimed: true, sandboxId: SANDBOX_ID, clients: 0 });
  t.type(h1.lastActivityMs, 'number');
  await new Promise((r) => setTimeout(r, 20));
  const h2 = (await (await fetch(`${url}/healthz`)).json()) as { lastActivityMs: number; idleMs: number };
  t.equal(h2.lastActivityMs, h1.lastActivityMs, 'a health check is not activity');
  t.ok(h2.idleMs >= 20);
  t.equal((await upgradeStatus(port, { authorization: 'Bearer wrong-token-0123456789' })).status, 401);
  t.equal((await fetch(`${url}/anything`)).status, 401);
  const h2b = (await (await fetch(`${url}/healthz`)).json()) as { lastActivityMs: number };
  t.equal(h2b.lastActivityMs, h1.lastActivityMs, 'refused requests are not activity');
  const a = await connect(t, port);
  await a.call('ping');
  const h3 = (await (await fetch(`${url}/healthz`)).json()) as { lastActivityMs: number; clients: number };
  t.ok(h3.lastActivityMs > h1.lastActivityMs, 'a message is activity');
  t.equal(h3.clients, 1);
  await new Promise((r) => setTimeout(r, 30));
  const h4 = (await (await fetch(`${url}/healthz`)).json()) as { idleMs: number };
  t.equal(h4.idleMs, 0, 'a connected client keeps the sandbox active');
  await a.close();
  await new Promise((r) => setTimeout(r, 30));
  const h5 = (await (await fetch(`${url}/healthz`)).json()) as { idleMs: number };
  t.ok(h5.idleMs >= 30, 'idle again once nobody is connected');
});

t.test('claim: 401 on a wrong secret, 400 on a bad body, 200 once, 409 after; the token works after', async (t) => {
  const { port, url } = await startWorker(t, { OMEGA_WORKER_TOKEN: '', OMEGA_WORKER_SANDBOX_ID: '', OMEGA_WORKER_CLAIM_SECRET: CLAIM_SECRET });
  t.match(await (await fetch(`${url}/healthz`)).json(), { claimed: false, sandboxId: null });
  t.equal((await upgradeStatus(port, { authorization: `Bearer ${NEW_TOKEN}` })).status, 401, 'nothing before a claim');
  const wrong = await claim(url, { sandboxId: 'abc', token: NEW_TOKEN }, 'wrong-secret-0123456789abcdef');
  t.equal(wrong.status, 401);
  t.match(await wrong.json(), { code: 'UNAUTHORIZED' });
  t.equal((await claim(url, 'not json')).status, 400);
  const bad = await claim(url, { sandboxId: 'Not An Id!', token: 'short' });
  t.equal(bad.status, 400);
  t.match(await bad.json(), { code: 'BAD_REQUEST', message: /sandboxId.*token/ });
  t.equal((await claim(url, { sandboxId: 'abc', token: NEW_TOKEN, gitRepo: 'ftp://x/y' })).status, 400, 'a gitRepo scheme not allowed');
  const ok = await claim(url, { sandboxId: 'abc', token: NEW_TOKEN });
  t.equal(ok.status, 200);
  t.same(await ok.json(), { claimed: true, sandboxId: 'abc' });
  const again = await claim(url, { sandboxId: 'def', token: 'another-token-0123456789abcdef' });
  t.equal(again.status, 409);
  t.match(await again.json(), { code: 'ALREADY_CLAIMED' });
  t.match(await (await fetch(`${url}/healthz`)).json(), { claimed: true, sandboxId: 'abc' });
  const client = await connect(t, port, { token: NEW_TOKEN });
  t.equal((await client.waitEvent('hello')).sandboxId, 'abc');
  t.equal((await upgradeStatus(port, { authorization: `Bearer ${TOKEN}` })).status, 401, 'only the claimed token');
});

t.test('a worker started with its token refuses claims (409), and any claim without the secret (401)', async (t) => {
  const { url } = await startWorker(t, { OMEGA_WORKER_CLAIM_SECRET: CLAIM_SECRET });
  t.equal((await claim(url, { sandboxId: 'abc', token: NEW_TOKEN })).status, 409);
  const noSecret = await startWorker(t);
  t.equal((await claim(noSecret.url, { sandboxId: 'abc', token: NEW_TOKEN })).status, 401, 'no claim secret configured: nothing matches');
});

t.test('claim with gitRepo clones into the empty workspace in the background, with events', async (t) => {
  const src = await mkdtemp(path.join(tmpdir(), 'omega-repo-'));
  t.teardown(() => rm(src, { recursive: true, force: true }));
  const git = (args: string[], cwd: string) => execFileSync('git', args, { cwd, stdio: 'pipe', env: { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t' } });
  git(['init', '-q', 'work'], src);
  await writeFile(path.join(src, 'work', 'hello.txt'), 'from git\n');
  git(['add', '.'], path.join(src, 'work'));
  git(['commit', '-qm', 'first'], path.join(src, 'work'));
  git(['clone', '-q', '--bare', 'work', 'repo.git'], src);

  const { port, url, workspace } = await startWorker(t, { OMEGA_WORKER_TOKEN: '', OMEGA_WORKER_SANDBOX_ID: '', OMEGA_WORKER_CLAIM_SECRET: CLAIM_SECRET });
  t.equal((await claim(url, { sandboxId: 'abc', token: NEW_TOKEN, gitRepo: `file://${src}/repo.git` })).status, 200);
  const client = await connect(t, port, { token: NEW_TOKEN });
  await waitFor('clone done', async () => {
    const hello = await client.waitEvent('hello');
    if (hello.clone.state === 'done') return true;
    return client.events.some((e) => e.event === 'git.clone' && (e.data as { state: string }).state === 'done');
  });
  t.equal(await readFile(path.join(workspace, 'hello.txt'), 'utf8'), 'from git\n');

  // A repository that does not exist: the clone fails and says so.
  const other = await startWorker(t, { OMEGA_WORKER_TOKEN: '', OMEGA_WORKER_SANDBOX_ID: '', OMEGA_WORKER_CLAIM_SECRET: CLAIM_SECRET });
  t.equal((await claim(other.url, { sandboxId: 'def', token: NEW_TOKEN, gitRepo: `file://${src}/missing.git` })).status, 200);
  const c2 = await connect(t, other.port, { token: NEW_TOKEN });
  const failed = await waitFor('clone failed', () => {
    const hello = c2.events[0]!.data as { clone: { state: string; message?: string } };
    if (hello.clone.state === 'failed') return hello.clone;
    return c2.events.map((e) => e.data as { state?: string; message?: string }).find((d) => d.state === 'failed');
  });
  t.match(failed!.message, /git exited 128/);
});
