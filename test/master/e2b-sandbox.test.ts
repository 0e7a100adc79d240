// The E2B SDK end to end on real containers: created through the master's E2B
// API, then its files and commands through the agent of the worker in the
// container (this checkout's worker, overlaid on the node image), reached on
// the worker's published port with the SDK's sandboxUrl option (TLS off), as
// the user code's user with the manager's confinement.
import { CommandExitError, Sandbox } from 'e2b';
import t from 'tap';
import { e2bApiKey } from '../../src/e2b-key.js';
import { startDns } from '../helpers/dns.js';
import { removeHostContainers, requireDocker } from '../helpers/docker.js';
import { overlayWorkerImage } from '../helpers/e2b-image.js';
import { startManager } from '../helpers/manager.js';
import { API_TOKEN, startMaster } from '../helpers/master.js';
import { TestRedis } from '../helpers/redis.js';

if (requireDocker(t, ['omega/sandbox-node:latest'])) {
  const prefix = overlayWorkerImage(t, 'node');
  const redis = await TestRedis.create();
  t.teardown(() => redis.destroy());
  const dns = await startDns(t, redis);
  const m = await startManager(t, redis, { OMEGA_REDIS_PREFIX: dns.prefix, OMEGA_TEMPLATES: 'node', OMEGA_IMAGE_PREFIX: prefix });
  t.teardown(() => removeHostContainers(m.hostId));
  const { server } = await startMaster(t, redis, dns, { OMEGA_TEMPLATES: 'node' });
  const opts = { apiKey: e2bApiKey(API_TOKEN), apiUrl: server.apiUrl, domain: 'sandbox.test' };

  t.test('create, then files and commands in the container; pause, connect, the files are there', async (t) => {
    const created = await Sandbox.create('node', { ...opts, timeoutMs: 120_000 });
    t.teardown(() => created.kill().catch(() => undefined));
    const view = (await (await fetch(`${server.apiUrl}/v1/sandboxes/${created.sandboxId}`, { headers: { authorization: `Bearer ${API_TOKEN}` } })).json()) as { port: number };
    const sandboxUrl = `http://127.0.0.1:${view.port}`;
    const sbx = await Sandbox.connect(created.sandboxId, { ...opts, sandboxUrl });

    const r = await sbx.commands.run('id -un; pwd; echo $HOME');
    t.match(r.stdout, /^\S+\n\/workspace\n\/workspace\n$/, `as the sandbox user, in the workspace: ${JSON.stringify(r.stdout)}`);
    t.equal((await sbx.commands.run('id -u')).stdout, '1000\n', 'not root');
    const sudo = await sbx.commands.run('cat /etc/shadow').catch((e: unknown) => e);
    t.ok(sudo instanceof CommandExitError, 'what only root may read stays closed');

    await sbx.files.write('app/main.js', 'console.log(6 * 7)\n');
    t.equal((await sbx.commands.run('node app/main.js')).stdout, '42\n', 'a file written through the agent runs');
    t.equal((await sbx.commands.run('stat -c %u app/main.js')).stdout, '1000\n', 'owned by the user, not the agent');
    t.same((await sbx.files.list('app')).map((e) => e.name), ['main.js']);

    t.equal(await sbx.pause(), true);
    const again = await Sandbox.connect(created.sandboxId, { ...opts, sandboxUrl });
    t.equal((await again.getInfo()).state, 'running', 'connect resumed it');
    t.equal(await again.files.read('app/main.js'), 'console.log(6 * 7)\n', 'its files are there');
    t.equal((await again.commands.run('echo back')).stdout, 'back\n');
  });
}
