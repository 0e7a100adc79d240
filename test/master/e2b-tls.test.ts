// An E2B SDK program, unchanged but for its settings, against Omega with TLS
// on: its own process trusting Omega's CA through NODE_EXTRA_CA_CERTS, every
// name it uses (49983-<id>.<zone> for the agent, 3000-<id>.<zone> for a
// preview) resolved at Omega's DNS by a tunnelling proxy (the SDK's proxy
// option), the agent reached through the host's TLS ingress on port 443, as
// the SDK forms its URLs. The worker is this checkout's (overlaid on the node
// image).
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { Agent, request } from 'undici';
import { e2bApiKey } from '../../src/e2b-key.js';
import { requireDocker } from '../helpers/docker.js';
import { overlayWorkerImage } from '../helpers/e2b-image.js';
import { API_TOKEN, quickLocalManagers } from '../helpers/master.js';
import { waitFor } from '../helpers/ports.js';
import { startResolvingProxy } from '../helpers/resolving-proxy.js';
import { startTlsStack } from '../helpers/tls-stack.js';

/** This test's host: an address no other test uses, so its ingress may take port 443 there. */
const HOST = '127.0.0.171';

if (requireDocker(t, ['omega/sandbox-node:latest'])) {
  quickLocalManagers();
  // The local provider's managers read their settings from this process's environment.
  process.env.OMEGA_IMAGE_PREFIX = overlayWorkerImage(t, 'node');
  const { ca, server, lookup, call, open } = await startTlsStack(t, HOST, { OMEGA_TEMPLATES: 'node', OMEGA_LOCAL_INGRESS_PORT: '443', OMEGA_LOCAL_POOL_SIZE: 'node=1' });
  const caFile = join(t.testdir({ 'ca.pem': ca.certPem }), 'ca.pem');
  const { url: proxy, asked } = await startResolvingProxy(t, lookup);

  t.test('create, commands.run, files, getHost(3000) over https without a token, kill, then the SDK\'s own errors', async (t) => {
    // The zone's wildcard sends a killed sandbox's names to a host's ingress: the reconciler points it at the live hosts (here one, started for this sandbox).
    const first = (await call('POST', '/v1/sandboxes', { template: 'node' })).body;
    t.teardown(() => call('DELETE', `/v1/sandboxes/${first.id}`));
    // (A periodic pass may have written it already; either way it names the host after this one.)
    await server.reconciler.run();
    t.equal(await new Promise((resolve) => lookup('nosuchsandboxx.sandbox.test', {}, (err, address) => resolve(err ?? address))), HOST, 'a name no sandbox has answers the host');
    const { stdout } = await promisify(execFile)(process.execPath, ['--import=tsx', new URL('../helpers/e2b-program.ts', import.meta.url).pathname], {
      env: { PATH: process.env.PATH, E2B_API_KEY: e2bApiKey(API_TOKEN), E2B_API_URL: server.apiUrl, E2B_DOMAIN: 'sandbox.test', NODE_EXTRA_CA_CERTS: caFile, OMEGA_TEST_PROXY: proxy },
      timeout: 120_000,
    });
    const seen = JSON.parse(stdout.trim().split('\n').pop()!);
    t.match(seen, { stdout: 'hi\n', read: 'from the SDK', preview: 'preview ok' });
    t.equal(seen.host, `3000-${seen.sandboxId}.sandbox.test`, 'getHost gives the preview name');
    t.same(
      seen.tour,
      {
        bytes: true,
        list: ['a.txt', 'b.txt', 'bin.dat'],
        exists: [true, false],
        info: 'dir',
        makeDir: true,
        renamed: 'a.txt',
        watched: true,
        removed: true,
        streams: ['out\n', 'err\n', 0],
        exit: 7,
        // The node template's workspace; the e2b template's is /home/user (e2b-template.test.ts).
        envCwd: '/workspace/tour\nomega\n',
        waited: 'done\n',
        stdin: 'typed\n',
        listed: true,
        killed: true,
        pty: [true, true, true],
      },
      'files, commands and a terminal over https: bytes, several files at once, list, exists, getInfo, makeDir, rename, watchDir, remove; stdout and stderr, an exit code, envs and cwd, background and wait, stdin, list, kill; a pty resized, typed into, killed',
    );
    t.ok(asked.has(`49983-${seen.sandboxId}.sandbox.test:443`), `the agent by its name on 443: ${[...asked].join(' ')}`);
    t.ok(asked.has(`3000-${seen.sandboxId}.sandbox.test:443`), 'the preview by its name on 443');
    // Killed: the ingress answers 502 "The sandbox was not found", as E2B's proxy does, not a network failure.
    t.match(seen.afterKill.run, { sdkError: true, notFound: true, name: 'SandboxNotFoundError', message: 'Sandbox is probably not running anymore' }, 'commands.run: SandboxNotFoundError');
    t.match(seen.afterKill.read, { sdkError: true, timeout: true, name: 'TimeoutError', message: /^The sandbox was not found: This error is likely due to sandbox timeout/ }, 'files.read: TimeoutError with E2B\'s words');
  });

  t.test('through /v1 previews are private unless created with publicPreviews, which a stopped and resumed sandbox keeps', async (t) => {
    const bad = await call('POST', '/v1/sandboxes', { template: 'node', publicPreviews: 'yes' });
    t.equal(bad.status, 400);
    t.match(bad.body.message, /publicPreviews/, 'the error names the field');
    const trusting = new Agent({ connect: { ca: ca.certPem, lookup: lookup as any } });
    t.teardown(() => trusting.close());
    /** A dev server on 3000 started over the agent's WebSocket; the preview's status and body without a token once it answers with one. */
    const serve = async (sb: { id: string; url: string; token: string }) => {
      const c = await open(sb.url, sb.token);
      await c.call('proc.run', { command: 'node', args: ['-e', 'require("http").createServer((q, s) => s.end("preview ok")).listen(3000)'] });
      c.close();
      const url = `https://3000-${sb.id}.sandbox.test/`;
      await waitFor('the dev server answers', async () => {
        const page = await request(url, { dispatcher: trusting, headers: { authorization: `Bearer ${sb.token}` } });
        return (await page.body.text()) === 'preview ok' ? true : null;
      }, 15_000, 100);
      const anonymous = await request(url, { dispatcher: trusting });
      return { status: anonymous.statusCode, text: await anonymous.body.text() };
    };
    const priv = (await call('POST', '/v1/sandboxes', { template: 'node' })).body;
    t.notOk(priv.publicPreviews);
    const refused = await serve(priv);
    t.equal(refused.status, 401, 'no token, no preview');
    t.match(refused.text, /private/);
    await call('DELETE', `/v1/sandboxes/${priv.id}`);

    const pub = (await call('POST', '/v1/sandboxes', { template: 'node', publicPreviews: true })).body;
    t.equal(pub.publicPreviews, true, 'the view says so');
    t.same(await serve(pub), { status: 200, text: 'preview ok' }, 'open without a token');
    // Stopped, its worker starts unclaimed and is claimed again: the setting comes from the manager's table.
    t.equal((await call('POST', `/v1/sandboxes/${pub.id}/pause`, { memory: false })).status, 200);
    t.equal((await call('POST', `/v1/sandboxes/${pub.id}/resume`)).status, 200);
    t.same(await serve(pub), { status: 200, text: 'preview ok' }, 'still open after a stop and a resume');
    await call('DELETE', `/v1/sandboxes/${pub.id}`);
  });
}
