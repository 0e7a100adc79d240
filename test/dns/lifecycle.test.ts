// A start that fails half way closes what it opened: the process of a
// server whose API port is taken ends instead of holding its DNS port and
// its Redis connections with nothing to stop them.
import dgram from 'node:dgram';
import net from 'node:net';
import t from 'tap';
import { loadConfig } from '../../dns/config.js';
import { DnsServer } from '../../dns/server.js';
import { createLogger } from '../../src/log.js';
import { freePort, waitFor } from '../helpers/ports.js';
import { TestRedis } from '../helpers/redis.js';

const udpFree = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = dgram.createSocket('udp4');
    s.once('error', () => resolve(false));
    s.bind(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });

t.test('a server whose API port is taken fails its start and leaves nothing open', async (t) => {
  const redis = await TestRedis.create();
  t.teardown(() => redis.destroy());
  const taken = net.createServer();
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => taken.close(() => r())));
  const apiPort = (taken.address() as net.AddressInfo).port;
  const dnsPort = await freePort();
  const server = new DnsServer(
    loadConfig({
      env: {
        OMEGA_REDIS_URL: redis.url,
        OMEGA_DNS_LISTEN: `127.0.0.1:${dnsPort}`,
        OMEGA_DNS_API_LISTEN: `127.0.0.1:${apiPort}`,
        OMEGA_DEV: '1',
      },
    }),
    createLogger('dns', { level: 'silent' }),
  );
  await t.rejects(server.start(), { code: 'EADDRINUSE' });
  t.ok(await udpFree(dnsPort), 'its DNS port is free again');
  const c = redis.client();
  t.teardown(() => c.disconnect());
  const names = async () => String(await c.call('CLIENT', 'LIST')).match(/name=omega-dns-\w+/g) ?? [];
  t.same(await waitFor('connections closed', async () => ((await names()).length === 0 ? ['none'] : null), 5000), ['none'], 'its Redis connections are closed');
});
