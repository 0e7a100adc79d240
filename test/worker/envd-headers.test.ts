// The worker program's own Headers (worker/envd/headers.ts): the same answers
// as Node's for what a server does with them, then the E2B agent with it in
// place, through the real SDK (whose Connect client uses the global Headers
// too, so both ends run on it).
import { AuthenticationError, FileNotFoundError, Sandbox } from 'e2b';
import t from 'tap';
import { ENVD_VERSION } from '../../worker/envd/agent.js';
import { installWorkerHeaders, WorkerHeaders } from '../../worker/envd/headers.js';
import { SANDBOX_ID, startWorker, TOKEN } from './harness.js';

const NodeHeaders = globalThis.Headers;

/** What a Headers says, in every way it can be read. */
function read(h: Headers) {
  const each: Array<[string, string]> = [];
  h.forEach((v, k) => each.push([k, v]));
  return {
    entries: [...h],
    keys: [...h.keys()],
    values: [...h.values()],
    each,
    cookies: h.getSetCookie(),
    get: ['content-type', 'Content-Type', 'x-many', 'set-cookie', 'missing'].map((n) => h.get(n)),
    has: ['CONTENT-TYPE', 'missing'].map((n) => h.has(n)),
  };
}

t.test('the same answers as Node\'s Headers', async (t) => {
  const script = (H: typeof Headers) => {
    const h = new H({ 'Content-Type': ' application/json\t', 'X-Many': 'a' });
    h.append('x-many', 'b');
    h.append('Set-Cookie', 'a=1');
    h.append('set-cookie', 'b=2');
    h.set('connect-protocol-version', '1');
    h.append('zz-last', '');
    h.delete('X-Gone');
    return h;
  };
  t.same(read(script(WorkerHeaders)), read(script(NodeHeaders)));
  const copies = (H: typeof Headers) => [new H(script(NodeHeaders)), new H([['A', '1'], ['a', '2']]), new H(new H({ b: '3' })), new H()];
  t.same(copies(WorkerHeaders).map(read), copies(NodeHeaders).map(read), 'from a Headers, pairs, a record, nothing');
  const deleted = (H: typeof Headers) => {
    const h = script(H);
    h.delete('SET-COOKIE');
    h.set('x-many', 'c');
    return h;
  };
  t.same(read(deleted(WorkerHeaders)), read(deleted(NodeHeaders)), 'delete and set replace');
  for (const bad of [() => new WorkerHeaders({ 'bad name': 'x' }), () => new WorkerHeaders().set('x', 'a\r\nb: c'), () => new WorkerHeaders([['x']] as unknown as [string, string][])]) {
    t.throws(bad, TypeError);
  }
  t.throws(() => new NodeHeaders({ 'bad name': 'x' }), TypeError, 'as Node\'s does');
});

t.test('in place of Node\'s: the agent through the SDK', async (t) => {
  installWorkerHeaders();
  t.equal(globalThis.Headers, WorkerHeaders);
  const w = await startWorker(t);
  const sbx = new Sandbox({ sandboxId: SANDBOX_ID, envdVersion: ENVD_VERSION, envdAccessToken: TOKEN, sandboxUrl: w.url, apiKey: 'e2b_00', requestTimeoutMs: 10_000 });
  const run = await sbx.commands.run('echo "$GREETING" >&2; echo hi', { envs: { GREETING: 'hello' } });
  t.match(run, { stdout: 'hi\n', stderr: 'hello\n', exitCode: 0 });
  await sbx.files.write('a/b.txt', 'via the worker\'s Headers');
  t.equal(await sbx.files.read('a/b.txt'), 'via the worker\'s Headers');
  t.same((await sbx.files.list('a')).map((e) => e.name), ['b.txt']);
  await t.rejects(sbx.files.read('missing.txt'), FileNotFoundError, 'an error answer is read as the SDK expects');
  const wrong = new Sandbox({ sandboxId: SANDBOX_ID, envdVersion: ENVD_VERSION, envdAccessToken: 'wrong-token-0123456789', sandboxUrl: w.url, apiKey: 'e2b_00', requestTimeoutMs: 10_000 });
  await t.rejects(wrong.commands.run('echo'), AuthenticationError, 'a wrong token is refused');
});
