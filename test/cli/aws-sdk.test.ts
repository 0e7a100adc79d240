// The AWS SDK takes about a second of CPU to load: only a master that runs the
// ec2 provider may load it. Each program is run as `omega` runs it, with a
// loader hook (test/helpers/record-modules.mjs) that writes down every module
// it resolves.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { waitFor } from '../helpers/ports.js';

const CLI = new URL('../../cli/cli.ts', import.meta.url).pathname;
const HOOK = new URL('../helpers/record-modules.mjs', import.meta.url).pathname;
const ROOT = new URL('../../', import.meta.url).href;
const dir = mkdtempSync(join(tmpdir(), 'omega-modules-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

let runs = 0;
/** `omega <args>` with the recorder; `modules()` is what it has resolved so far (repository paths, or package URLs). */
function omega(args: string[], env: Record<string, string> = {}) {
  const log = join(dir, `modules-${runs++}`);
  const child = spawn(process.execPath, ['--import=tsx', `--import=${HOOK}`, CLI, ...args], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, OMEGA_LOG_LEVEL: 'info', ...env, OMEGA_TEST_MODULE_LOG: log },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  for (const s of [child.stdout, child.stderr]) s.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const modules = () => {
    try {
      return readFileSync(log, 'utf8').split('\n').filter(Boolean).map((u) => u.replace(ROOT, ''));
    } catch {
      return [];
    }
  };
  return { child, exited, modules, output: () => output };
}

const sdk = (modules: string[]) => modules.filter((m) => m.includes('@aws-sdk/'));
/** Settings every program refuses, after it has loaded all of its modules (cli.ts imports them before the config is read). */
const BAD = { OMEGA_REDIS_URL: 'http://not-redis' };

t.test('omega --help, dns, manager and master load no AWS SDK', async (t) => {
  const cases: Array<{ args: string[]; env?: Record<string, string>; loads: string[]; code: number }> = [
    { args: ['--help'], loads: ['cli/cli.ts', 'master/config.ts', 'master/providers/ec2/settings.ts'], code: 0 },
    { args: ['dns', '--help'], loads: ['cli/cli.ts', 'dns/config.ts'], code: 0 },
    { args: ['master', '--help'], loads: ['master/config.ts', 'master/providers/ec2/settings.ts'], code: 0 },
    { args: ['dns'], env: BAD, loads: ['dns/server.ts'], code: 1 },
    { args: ['manager'], env: BAD, loads: ['manager/server.ts'], code: 1 },
    // The whole master, the ec2 provider's module too (it imports the SDK only when one is made).
    { args: ['master'], env: { ...BAD, OMEGA_PROVIDER: 'local' }, loads: ['master/server.ts', 'master/providers/local.ts', 'master/providers/ec2/provider.ts'], code: 1 },
  ];
  for (const c of cases) {
    const run = omega(c.args, c.env);
    const name = `omega ${c.args.join(' ')}`;
    t.equal(await run.exited, c.code, `${name} exits ${c.code}`);
    const modules = run.modules();
    for (const m of c.loads) t.ok(modules.includes(m), `${name} loaded ${m} (the recorder sees it)`);
    t.same(sdk(modules), [], `${name} loaded no @aws-sdk module`);
  }
});

t.test('a master with OMEGA_PROVIDER=ec2 loads it, when it makes the provider', async (t) => {
  const run = omega(['master'], {
    OMEGA_MASTER_LISTEN: '127.0.0.1:0',
    OMEGA_API_TOKEN: 'a'.repeat(20),
    OMEGA_DNS_TOKEN: 'b'.repeat(20),
    OMEGA_MANAGER_TOKEN: 'c'.repeat(20),
    // Not loopback (the provider refuses an address a new host cannot reach); never reached here.
    OMEGA_REDIS_URL: 'redis://10.255.255.1:6379',
    OMEGA_PROVIDER: 'ec2',
    OMEGA_EC2_REGION: 'eu-west-1',
    OMEGA_EC2_AMI: 'ami-0123456789abcdef0',
    OMEGA_EC2_INSTANCE_TYPE: 't3.large',
    OMEGA_EC2_OMEGA_SOURCE: 'https://example.com/omega.git',
  });
  t.teardown(() => {
    if (run.child.exitCode === null) run.child.kill('SIGKILL');
  });
  const made = () => run.output().includes('ec2 provider ready') && sdk(run.modules()).length > 0;
  await waitFor('the provider made and the SDK among the master\'s modules', made, 30_000, 50).catch((err: Error) => {
    throw new Error(`${err.message}; it printed:\n${run.output()}`);
  });
  t.ok(sdk(run.modules()).some((m) => m.includes('@aws-sdk/client-ec2/')), 'the EC2 client package');
});
