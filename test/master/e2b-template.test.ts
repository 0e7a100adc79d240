// The e2b template (infra/images/templates/e2b) through the SDK: the SDK's
// default template (`base`, here OMEGA_E2B_BASE_TEMPLATE=e2b) created through
// the master; its user is `user`, its home /home/user (a link to the
// workspace), shown so in paths and by pwd; python3, curl and git there.
// This checkout's worker is overlaid on the image.
import { Sandbox } from 'e2b';
import t from 'tap';
import { e2bApiKey } from '../../src/e2b-key.js';
import { startDns } from '../helpers/dns.js';
import { removeHostContainers, requireDocker } from '../helpers/docker.js';
import { overlayWorkerImage } from '../helpers/e2b-image.js';
import { startManager } from '../helpers/manager.js';
import { API_TOKEN, startMaster } from '../helpers/master.js';
import { TestRedis } from '../helpers/redis.js';

if (requireDocker(t, ['omega/sandbox-e2b:latest'])) {
  const prefix = overlayWorkerImage(t, 'e2b');
  const redis = await TestRedis.create();
  t.teardown(() => redis.destroy());
  const dns = await startDns(t, redis);
  const m = await startManager(t, redis, { OMEGA_REDIS_PREFIX: dns.prefix, OMEGA_TEMPLATES: 'e2b', OMEGA_IMAGE_PREFIX: prefix });
  t.teardown(() => removeHostContainers(m.hostId));
  const { server } = await startMaster(t, redis, dns, { OMEGA_TEMPLATES: 'e2b', OMEGA_E2B_BASE_TEMPLATE: 'e2b' });
  const opts = { apiKey: e2bApiKey(API_TOKEN), apiUrl: server.apiUrl, domain: 'sandbox.test' };

  t.test('Sandbox.create(): user, /home/user, its tools', async (t) => {
    const created = await Sandbox.create(opts);
    t.teardown(() => created.kill().catch(() => undefined));
    const view = (await (await fetch(`${server.apiUrl}/v1/sandboxes/${created.sandboxId}`, { headers: { authorization: `Bearer ${API_TOKEN}` } })).json()) as { port: number; template: string };
    t.equal(view.template, 'e2b');
    const sbx = await Sandbox.connect(created.sandboxId, { ...opts, sandboxUrl: `http://127.0.0.1:${view.port}` });
    t.equal((await sbx.commands.run('whoami; pwd; echo $HOME')).stdout, 'user\n/home/user\n/home/user\n');
    t.match(await sbx.files.write('hello.py', 'print(6 * 7)\n'), { path: '/home/user/hello.py' });
    t.equal((await sbx.commands.run('python3 hello.py')).stdout, '42\n');
    t.equal(await sbx.files.read('/home/user/hello.py'), 'print(6 * 7)\n');
    t.equal((await sbx.commands.run('cat ~/hello.py')).stdout, 'print(6 * 7)\n', '~ is the home');
    t.match((await sbx.commands.run('curl --version; git --version')).stdout, /^curl [\s\S]*git version 2\./);
    t.match(await sbx.files.getInfo('hello.py'), { owner: 'user', group: 'user' }, 'owned by user, by name');
  });
}
