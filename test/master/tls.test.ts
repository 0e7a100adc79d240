// https and wss end to end with OMEGA_TLS=local: a CA of the test's own, the
// master over https, a host's ingress routing by name to the sandbox's worker,
// names resolved at Omega's DNS server, every client trusting only that CA.
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import tls from 'node:tls';
import t from 'tap';
import { Agent, request } from 'undici';
import { requireDocker } from '../helpers/docker.js';
import { quickLocalManagers } from '../helpers/master.js';
import { sleep, waitFor } from '../helpers/ports.js';
import { startTlsStack } from '../helpers/tls-stack.js';

const HOST = '127.0.0.70';

if (requireDocker(t, ['omega/sandbox-node:latest'])) {
  quickLocalManagers();
  process.env.OMEGA_INGRESS_HANDSHAKE_TIMEOUT_MS = '700';
  process.env.OMEGA_TLS_RELOAD_INTERVAL_MS = '200';

  const { ca, server, call, ingressPort, lookup, open } = await startTlsStack(t, HOST, {
    OMEGA_LOCAL_POOL_SIZE: 'node=1,python=0',
    OMEGA_TEMPLATES: 'node',
    OMEGA_IDLE_CHECK_INTERVAL_MS: '300',
  });
  /** Only the test CA is trusted: no system roots, no exceptions. */
  const trusting = new Agent({ connect: { ca: ca.certPem, lookup: lookup as any } });
  t.teardown(() => trusting.close());

  /** One raw request over TLS to the ingress: what it answered, and the certificate it showed. */
  const probe = (servername: string | undefined, host = servername ?? HOST) =>
    new Promise<{ text: string; fingerprint: string }>((resolve, reject) => {
      const s = tls.connect({ host: HOST, port: ingressPort, ca: ca.certPem, ...(servername ? { servername } : { checkServerIdentity: () => undefined }) }, () => {
        s.write(`GET /healthz HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
      });
      let text = '';
      s.on('data', (d: Buffer) => (text += d));
      s.on('end', () => resolve({ text, fingerprint: s.getPeerX509Certificate()?.fingerprint256 ?? '' }));
      s.on('error', reject);
    });

  let sb: any;

  t.test('the API over https, trusted through the CA alone; a client trusting only the system roots is refused', async (t) => {
    const health = await call('GET', '/healthz');
    t.equal(health.status, 200);
    t.match(server.apiUrl, /^https:\/\/127\.0\.0\.1:\d+$/);
    const plain = await request(`${server.apiUrl}/healthz`).then(
      () => null,
      (err: Error & { code?: string }) => err.code ?? err.message,
    );
    t.equal(plain, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'the default roots do not know the local CA');
    const metrics = (await call('GET', '/metrics')).body as string;
    t.match(metrics, /omega_tls_certificate_expiry_seconds \d+/, 'the certificate\'s life left is a metric');
  });

  t.test('create answers wss:// and https previews on the ingress; the agent is reached by name', async (t) => {
    const res = await call('POST', '/v1/sandboxes', { template: 'node', idleSeconds: 3600 });
    t.equal(res.status, 201, JSON.stringify(res.body));
    sb = res.body;
    t.equal(sb.url, `wss://${sb.id}.sandbox.test:${ingressPort}/`);
    t.equal(sb.previewUrl, `https://{port}-${sb.id}.sandbox.test:${ingressPort}/`);
    t.equal(sb.port, ingressPort);
    const c = await open(sb.url, sb.token);
    t.teardown(() => c.close());
    const r = await c.runToEnd({ command: 'node', args: ['-e', 'console.log("hi over wss", 6 * 7)'] });
    t.equal(r.stdout.trim(), 'hi over wss 42');
    await t.rejects(open(sb.url, null), /401/, 'a WebSocket upgrade without the token is refused');

    // The worker's port is published nowhere: the ingress is the way in (it reaches the container's own address).
    // Its container, by the record (a claimed warm container carries no sandbox label).
    const [record] = await server.store.getMany([sb.id]);
    const container = { ID: record!.containerId! };
    const ports = JSON.parse(execFileSync('docker', ['inspect', '--format', '{{json .NetworkSettings.Ports}}', container.ID], { encoding: 'utf8' }));
    t.same(Object.values(ports).filter(Boolean).flat(), [], 'no port binding on any address');
    // No key material reaches the sandbox: its environment and labels hold none.
    const inspect = execFileSync('docker', ['inspect', container.ID], { encoding: 'utf8' });
    t.notMatch(inspect, /PRIVATE KEY/);
    const env = await c.runToEnd({ command: 'sh', args: ['-c', 'env; grep -rl "PRIVATE KEY" / --exclude-dir=proc --exclude-dir=sys 2>/dev/null | head -3'] });
    t.notMatch(env.stdout, /PRIVATE KEY|OMEGA_TLS_CA|ca-key/);
  });

  t.test('a preview over https: token once in the query, then a Secure cookie for that host', async (t) => {
    const c = await open(sb.url, sb.token);
    t.teardown(() => c.close());
    await c.call('proc.run', {
      command: 'node',
      args: ['-e', 'require("http").createServer((q, r) => r.end("preview says " + q.headers["x-forwarded-proto"])).listen(3000)'],
    });
    const base = `https://3000-${sb.id}.sandbox.test:${ingressPort}`;
    const first = await request(`${base}/?omega_token=${encodeURIComponent(sb.token)}`, { dispatcher: trusting });
    await first.body.dump();
    t.equal(first.statusCode, 302);
    const cookie = String(first.headers['set-cookie']);
    t.match(cookie, /; Secure/, 'the cookie is Secure');
    t.match(cookie, /HttpOnly; SameSite=Lax/);
    const body = await waitFor('the dev server answers', async () => {
      const page = await request(`${base}/`, { dispatcher: trusting, headers: { cookie: cookie.split(';')[0]! } });
      const text = await page.body.text();
      return page.statusCode === 200 ? text : null;
    }, 15_000, 200);
    t.equal(body, 'preview says https', 'the dev server is told https');
    const anonymous = await request(`${base}/`, { dispatcher: trusting });
    await anonymous.body.dump();
    t.equal(anonymous.statusCode, 401, 'private without the token');
  });

  t.test('what the ingress cannot route gets a clear refusal, and it serves everyone else meanwhile', async (t) => {
    // A slow client that sends nothing holds no slot past the handshake timeout.
    const slow = net.connect(ingressPort, HOST);
    const slowClosed = new Promise<number>((r) => {
      const at = Date.now();
      slow.on('close', () => r(Date.now() - at));
      // The ingress drops it (a reset is how that may arrive); when is what the test reads, from 'close'.
      slow.on('error', (err: NodeJS.ErrnoException) => t.comment(`the silent client's socket: ${err.code}`));
    });
    const noSni = await probe(undefined);
    t.match(noSni.text, /^HTTP\/1\.1 421 /, 'no SNI: 421');
    t.match(noSni.text, /no server name \(SNI\)/);
    t.match((await probe('nosuchsandboxxxx.sandbox.test')).text, /^HTTP\/1\.1 502 [^]*\{"code":502,"message":"The sandbox was not found","sandboxId":"nosuchsandboxxxx"\}/, 'an unknown name: 502 in E2B\'s words (its SDK reads them)');
    await t.rejects(probe(`3000.${sb.id}.sandbox.test`), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' }, 'a name two labels deep is not under the wildcard: the client refuses it');
    const plain = await new Promise<string>((resolve, reject) => {
      const s = net.connect(ingressPort, HOST, () => s.write(`GET / HTTP/1.1\r\nHost: ${sb.id}.sandbox.test\r\n\r\n`));
      let text = '';
      s.on('data', (d: Buffer) => (text += d));
      s.on('end', () => resolve(text));
      s.on('error', reject);
    });
    t.match(plain, /^HTTP\/1\.1 400 [^]*This port speaks TLS/, 'plain http on the TLS port: 400 in plain http');
    const ok = await probe(`${sb.id}.sandbox.test`);
    t.match(ok.text, /^HTTP\/1\.1 200 /, 'the sandbox is served all along');
    t.ok((await slowClosed) < 5000, 'the silent client was dropped');
  });

  t.test('connections cut off abruptly (a client gone offline) leave the sandbox running', async (t) => {
    for (let i = 0; i < 3; i++) {
      const c = await open(sb.url, sb.token);
      await c.call('term.open', { cols: 80, rows: 24 });
      // The client's TCP connection simply goes: no close frame, no TLS close_notify.
      (c.ws as unknown as { _socket: net.Socket })._socket.destroy();
    }
    await sleep(1500);
    const again = await open(sb.url, sb.token);
    t.teardown(() => again.close());
    const r = await again.runToEnd({ command: 'node', args: ['-e', 'console.log("alive")'] });
    t.equal(r.stdout.trim(), 'alive');
    t.equal((await call('GET', `/v1/sandboxes/${sb.id}`)).body.state, 'running');
  });

  t.test('a renewed certificate is served to new connections; an open WebSocket keeps working', async (t) => {
    const c = await open(sb.url, sb.token);
    t.teardown(() => c.close());
    const before = (await probe(`${sb.id}.sandbox.test`)).fingerprint;
    await server.certificates!.renewSoon();
    t.not(server.certificates!.certificate!.fingerprint, before, 'the master has a new certificate');
    const after = await waitFor('the ingress serves the new one', async () => {
      const fp = (await probe(`${sb.id}.sandbox.test`)).fingerprint;
      return fp !== before ? fp : null;
    }, 10_000, 100);
    t.equal(after, server.certificates!.certificate!.fingerprint);
    const r = await c.runToEnd({ command: 'node', args: ['-e', 'console.log("still here")'] });
    t.equal(r.stdout.trim(), 'still here', 'the WebSocket opened before the renewal still carries calls');
  });

  t.test('POST /v1/run goes through the ingress', async (t) => {
    const r = await call('POST', '/v1/run', { language: 'javascript', code: 'console.log(2 ** 10)' });
    t.equal(r.status, 200, JSON.stringify(r.body));
    t.equal(r.body.stdout.trim(), '1024');
  });

  t.test('idleness is measured by the host: a sandbox idle past its limit is ended by its onIdle rule, a busy one is not', async (t) => {
    // The smallest limit the API takes; the stack's one host holds 4 sandboxes (one is the first test's).
    const create = async (body: object) => {
      const res = await call('POST', '/v1/sandboxes', { template: 'node', idleSeconds: 10, ...body });
      t.equal(res.status, 201, JSON.stringify(res.body));
      return res.body;
    };
    const [idle, pausing, busy] = [await create({}), await create({ onIdle: 'pause' }), await create({})];
    // A client connected to its worker is activity: its idle time stays 0.
    const c = await open(busy.url, busy.token);
    t.teardown(() => c.close());
    await waitFor('the idle sandbox is deleted', async () => (await call('GET', `/v1/sandboxes/${idle.id}`)).status === 404 || null, 30_000, 200);
    const paused = await waitFor('the one to pause is paused', async () => {
      const v = (await call('GET', `/v1/sandboxes/${pausing.id}`)).body;
      return v.state === 'paused' ? v : null;
    }, 10_000, 100);
    t.equal(paused.paused.kind, 'memory');
    t.equal((await call('GET', `/v1/sandboxes/${busy.id}`)).body.state, 'running', 'a sandbox in use is not idle');
    for (const id of [pausing.id, busy.id]) t.equal((await call('DELETE', `/v1/sandboxes/${id}`)).status, 200);
  });

  t.test('autoResume: a connection to a paused sandbox\'s name wakes it and is served; without autoResume it is refused', async (t) => {
    const res = await call('POST', '/v1/sandboxes', { template: 'node', autoResume: true });
    t.equal(res.status, 201, JSON.stringify(res.body));
    t.equal(res.body.autoResume, true);
    const c = await open(res.body.url, res.body.token);
    const { procId } = await c.call('proc.run', { command: 'node', args: ['-e', 'let n = 0; setInterval(() => console.log(++n), 50)'] });
    await c.close();
    for (const memory of [true, false]) {
      t.equal((await call('POST', `/v1/sandboxes/${res.body.id}/pause`, { memory })).body.state, 'paused');
      const t0 = performance.now();
      const woken = await open(res.body.url, res.body.token);
      const ms = performance.now() - t0;
      t.comment(`a connection that woke a sandbox paused ${memory ? 'with memory' : 'stopped'}: connected after ${ms.toFixed(0)} ms`);
      t.equal((await woken.runToEnd({ command: 'echo', args: ['awake'] })).stdout.trim(), 'awake', `served once it runs (paused ${memory ? 'with memory' : 'stopped'})`);
      if (memory) t.equal((await woken.call('proc.attach', { procId })).exit, null, 'its program goes on');
      await woken.close();
      t.equal((await call('GET', `/v1/sandboxes/${res.body.id}`)).body.state, 'running', 'the master has it running');
    }
    const plain = await call('POST', '/v1/sandboxes', { template: 'node' });
    await call('POST', `/v1/sandboxes/${plain.body.id}/pause`, {});
    t.match((await probe(`${plain.body.id}.sandbox.test`)).text, /^HTTP\/1\.1 502 [^]*The sandbox was not found/, 'a paused sandbox without autoResume is not woken');
    t.equal((await call('GET', `/v1/sandboxes/${plain.body.id}`)).body.state, 'paused');
    for (const id of [res.body.id, plain.body.id]) t.equal((await call('DELETE', `/v1/sandboxes/${id}`)).status, 200);
  });

  t.test('a deleted sandbox\'s name is refused by the ingress', async (t) => {
    t.equal((await call('DELETE', `/v1/sandboxes/${sb.id}`)).status, 200);
    await sleep(100);
    t.match((await probe(`${sb.id}.sandbox.test`)).text, /^HTTP\/1\.1 502 [^]*The sandbox was not found/);
  });
}
