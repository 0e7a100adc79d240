import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { createLocalCa } from '../../src/tls/local-ca.js';
import { startDns, zoneLookup } from './dns.js';
import { removeHostContainers } from './docker.js';
import { startMaster } from './master.js';
import { freePort } from './ports.js';
import { TestRedis } from './redis.js';
import { connectWorker, type TestClient } from './worker-client.js';

/**
 * The stack as strangers meet it, on this machine: a CA of the test's own
 * (OMEGA_TLS=local), Redis, Omega's DNS server, a master over https whose
 * local provider starts one host at `host` with its TLS ingress. Clients
 * trust that CA only and resolve names at that DNS server only. Everything
 * is stopped and the host's containers removed at teardown.
 */
export async function startTlsStack(t: Test, host: string, env: Record<string, string>) {
  const dir = mkdtempSync(join(tmpdir(), 'omega-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const ca = await createLocalCa('Omega test CA');
  writeFileSync(join(dir, 'ca.pem'), ca.certPem);
  writeFileSync(join(dir, 'ca-key.pem'), ca.keyPem, { mode: 0o600 });
  const redis = await TestRedis.create();
  t.teardown(() => redis.destroy());
  const dns = await startDns(t, redis);
  const ingressPort = await freePort();
  const { server, call } = await startMaster(
    t,
    redis,
    dns,
    {
      OMEGA_TLS: 'local',
      OMEGA_TLS_CA_CERT_FILE: join(dir, 'ca.pem'),
      OMEGA_TLS_CA_KEY_FILE: join(dir, 'ca-key.pem'),
      OMEGA_PROVIDER: 'local',
      OMEGA_LOCAL_FIRST_ADDRESS: host,
      OMEGA_LOCAL_MAX_HOSTS: '1',
      OMEGA_LOCAL_CAPACITY: '4',
      OMEGA_LOCAL_MANAGER_PORT: String(await freePort()),
      OMEGA_LOCAL_INGRESS_PORT: String(ingressPort),
      OMEGA_SCALE_OUT_WAIT_MS: '30000',
      ...env,
    },
    { ca: ca.certPem },
  );
  t.teardown(() => removeHostContainers(host));
  /** Name lookups through Omega's DNS server only, as a client pointed at it would make them. */
  const lookup = zoneLookup(dns.port);
  /** A WebSocket client of the sandbox's agent trusting the test CA only. */
  const open = (url: string, token: string | null): Promise<TestClient> => connectWorker(null, url, token, 'header', { ca: ca.certPem, lookup: lookup as any });
  return { ca, redis, dns, server, call, ingressPort, lookup, open };
}
