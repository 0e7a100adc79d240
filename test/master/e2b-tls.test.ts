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
import { e2bApiKey } from '../../src/e2b-key.js';
import { requireDocker } from '../helpers/docker.js';
import { overlayWorkerImage } from '../helpers/e2b-image.js';
import { API_TOKEN, quickLocalManagers } from '../helpers/master.js';
import { startResolvingProxy } from '../helpers/resolving-proxy.js';
import { startTlsStack } from '../helpers/tls-stack.js';

/** This test's host: an address no other test uses, so its ingress may take port 443 there. */
const HOST = '127.0.0.171';

if (requireDocker(t, ['omega/sandbox-node:latest'])) {
  quickLocalManagers();
  // The local provider's managers read their settings from this process's environment.
  process.env.OMEGA_IMAGE_PREFIX = overlayWorkerImage(t, 'node');
  const { ca, server, lookup } = await startTlsStack(t, HOST, { OMEGA_TEMPLATES: 'node', OMEGA_LOCAL_INGRESS_PORT: '443', OMEGA_LOCAL_POOL_SIZE: 'node=1' });
  const caFile = join(t.testdir({ 'ca.pem': ca.certPem }), 'ca.pem');
  const { url: proxy, asked } = await startResolvingProxy(t, lookup);

  t.test('create, commands.run, files, getHost(3000) over https, kill', async (t) => {
    const { stdout } = await promisify(execFile)(process.execPath, ['--import=tsx', new URL('../helpers/e2b-program.ts', import.meta.url).pathname], {
      env: { PATH: process.env.PATH, E2B_API_KEY: e2bApiKey(API_TOKEN), E2B_API_URL: server.apiUrl, E2B_DOMAIN: 'sandbox.test', NODE_EXTRA_CA_CERTS: caFile, OMEGA_TEST_PROXY: proxy },
      timeout: 120_000,
    });
    const seen = JSON.parse(stdout.trim().split('\n').pop()!);
    t.match(seen, { stdout: 'hi\n', read: 'from the SDK', preview: 'preview ok' });
    t.equal(seen.host, `3000-${seen.sandboxId}.sandbox.test`, 'getHost gives the preview name');
    t.ok(asked.has(`49983-${seen.sandboxId}.sandbox.test:443`), `the agent by its name on 443: ${[...asked].join(' ')}`);
    t.ok(asked.has(`3000-${seen.sandboxId}.sandbox.test:443`), 'the preview by its name on 443');
  });
}
