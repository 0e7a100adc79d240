import t from 'tap';
import { loadConfig } from '../../master/config.js';
import { MasterServer } from '../../master/server.js';
import { Ec2Provider } from '../../master/providers/ec2/provider.js';
import { ConfigError } from '../../src/config/settings.js';
import { createLogger } from '../../src/log.js';

const base = { OMEGA_API_TOKEN: 'a'.repeat(20), OMEGA_DNS_TOKEN: 'b'.repeat(20), OMEGA_MANAGER_TOKEN: 'c'.repeat(20) };

t.test('every missing token is named at once; --dev runs without them', async (t) => {
  const err = t.throws(() => loadConfig({ env: {} })) as ConfigError;
  t.ok(err instanceof ConfigError);
  for (const v of ['OMEGA_API_TOKEN', 'OMEGA_DNS_TOKEN', 'OMEGA_MANAGER_TOKEN']) t.match(err.message, v);
  t.equal(loadConfig({ env: { OMEGA_DEV: '1' } }).token, undefined);
  t.match((t.throws(() => loadConfig({ env: { ...base, OMEGA_LOCAL_FIRST_ADDRESS: '10.0.0.2' } })) as Error).message, /OMEGA_LOCAL_FIRST_ADDRESS/);
});

t.test('OMEGA_PROVIDER=ec2: its settings are checked at start, and the master runs the ec2 provider with its scale-in settings', async (t) => {
  const missing = t.throws(() => loadConfig({ env: { ...base, OMEGA_PROVIDER: 'ec2' } })) as Error;
  t.match(missing.message, /OMEGA_EC2_REGION/);
  const config = loadConfig({
    env: {
      ...base,
      OMEGA_PROVIDER: 'ec2',
      OMEGA_REDIS_URL: 'redis://10.0.0.5:6379',
      OMEGA_EC2_REGION: 'eu-west-1',
      OMEGA_EC2_AMI: 'ami-0123456789abcdef0',
      OMEGA_EC2_INSTANCE_TYPE: 't3.large',
      OMEGA_EC2_MIN_HOSTS: '2',
      OMEGA_EC2_IDLE_SECONDS: '120',
      OMEGA_EC2_OMEGA_SOURCE: 'https://example.com/omega.git',
    },
  });
  t.equal(config.ec2?.region, 'eu-west-1');
  // Constructed only: nothing is started, so no Redis or AWS is contacted.
  const master = new MasterServer(config, createLogger('master', { level: 'silent' }));
  t.teardown(() => master.redis.disconnect());
  t.ok(master.provider instanceof Ec2Provider);
  t.same(master.provider!.scaleIn, { minHosts: 2, idleSeconds: 120 }, 'scale-in as OMEGA_EC2_MIN_HOSTS and OMEGA_EC2_IDLE_SECONDS say');
});
