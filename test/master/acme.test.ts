// OMEGA_TLS=acme against a real ACME CA: Debian's Pebble validates the DNS-01
// challenge by asking Omega's own DNS server, and issues the zone's wildcard.
import tls from 'node:tls';
import t from 'tap';
import { Agent, request } from 'undici';
import { AcmeIssuer } from '../../master/acme.js';
import { certificateNames } from '../../master/certificates.js';
import { DnsClient } from '../../master/clients.js';
import { createRedis } from '../../src/redis/connection.js';
import { tlsKeys } from '../../src/redis/keys.js';
import { CertStore } from '../../src/tls/store.js';
import { dig, startDns, TOKEN as DNS_TOKEN, zoneLookup } from '../helpers/dns.js';
import { capturedLogger } from '../helpers/log.js';
import { startMaster } from '../helpers/master.js';
import { startPebble } from '../helpers/pebble.js';
import { freePort } from '../helpers/ports.js';
import { TestRedis } from '../helpers/redis.js';

const redis = await TestRedis.create();
t.teardown(() => redis.destroy());
const dns = await startDns(t, redis, { OMEGA_API_ADDRESSES: '127.0.0.1' });
const pebble = await startPebble(t, `127.0.0.1:${dns.port}`);
const started = Date.now();
const { server } = await startMaster(t, redis, dns, {
  OMEGA_TLS: 'acme',
  OMEGA_ACME_DIRECTORY_URL: pebble.directoryUrl,
  OMEGA_ACME_EMAIL: 'ops@sandbox.test',
  OMEGA_ACME_CA_FILE: pebble.httpsCaFile,
  OMEGA_ACME_DNS_SERVERS: `127.0.0.1:${dns.port}`,
  OMEGA_ACME_PROPAGATION_TIMEOUT_MS: '10000',
});
const issuedMs = Date.now() - started;
const root = await pebble.root();
const port = Number(new URL(server.apiUrl).port);

/** Name lookups through Omega's DNS server only, as a client pointed at it would make them. */
const lookup = zoneLookup(dns.port);
/** Trusts Pebble's root and nothing else; names through Omega's DNS. */
const trustingPebble = new Agent({ connect: { ca: root, lookup: lookup as any } });
t.teardown(() => trustingPebble.close());

/** A TLS connection to the master by its public name, checked against Pebble's root. */
const connect = () =>
  new Promise<tls.TLSSocket>((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: 'api.sandbox.test', ca: root }, () => resolve(s));
    s.once('error', reject);
  });
const ask = (s: tls.TLSSocket) =>
  new Promise<string>((resolve, reject) => {
    s.write('GET /healthz HTTP/1.1\r\nHost: api.sandbox.test\r\n\r\n');
    s.once('data', (d: Buffer) => resolve(d.toString()));
    s.once('error', reject);
  });

t.test('Pebble issues the wildcard through Omega\'s DNS; the master serves it', async (t) => {
  const c = server.certificates!.certificate!;
  t.ok(c, `a certificate after ${issuedMs} ms`);
  t.equal(c.source, 'acme');
  t.same([...c.names].sort(), ['*.sandbox.test', 'sandbox.test']);
  const res = await request(`https://api.sandbox.test:${port}/healthz`, { dispatcher: trustingPebble });
  t.equal(res.statusCode, 200, 'a client that trusts only Pebble\'s root reaches the API by name');
  await res.body.dump();
  const s = await connect();
  t.ok(s.authorized, 'the chain verifies against Pebble\'s root');
  s.destroy();
  const untrusted = await request(`https://api.sandbox.test:${port}/healthz`, { dispatcher: new Agent({ connect: { lookup: lookup as any } }) }).then(
    () => null,
    (err: Error & { code?: string }) => err.code,
  );
  t.ok(untrusted, `a client with only the system roots is refused (${untrusted})`);
  const txt = await dig(dns.port, ['_acme-challenge.sandbox.test', 'TXT']);
  t.equal(txt.status, 'NXDOMAIN', 'the challenge records are gone after the order');
  t.equal(await new CertStore(server.redis, tlsKeys(dns.prefix)).acmeAccount.get().then((k) => k?.includes('PRIVATE KEY')), true, 'the account key is kept for the next order');
});

t.test('a forced renewal: a new certificate for new connections, the open one goes on', async (t) => {
  const open = await connect();
  t.teardown(() => open.destroy());
  t.match(await ask(open), /^HTTP\/1\.1 200/);
  const before = open.getPeerX509Certificate()!.fingerprint256;
  await server.certificates!.renewSoon();
  const after = server.certificates!.certificate!.fingerprint;
  t.not(after, before, 'renewed');
  t.match(await ask(open), /^HTTP\/1\.1 200/, 'the connection opened before it still answers');
  const fresh = await connect();
  t.equal(fresh.getPeerX509Certificate()!.fingerprint256, after, 'a new connection gets the new certificate');
  fresh.destroy();
  const metrics = await request(`https://api.sandbox.test:${port}/metrics`, { dispatcher: trustingPebble });
  const text = await metrics.body.text();
  t.match(text, /omega_tls_certificate_attempts_total\{result="issued"\} 2/);
  t.match(text, /omega_tls_certificate_failures 0/, 'no failure in a row');
});

t.test('a challenge no DNS server answers fails the order clearly, and its records are removed', async (t) => {
  const rc = createRedis(redis.url);
  t.teardown(() => rc.disconnect());
  const agent = new Agent();
  t.teardown(() => agent.close());
  const dead = await freePort();
  const issuer = new AcmeIssuer(
    { directoryUrl: pebble.directoryUrl, email: 'ops@sandbox.test', caPem: pebble.httpsCaPem, dnsServers: [`127.0.0.1:${dns.port}`, `127.0.0.1:${dead}`], propagationTimeoutMs: 1500 },
    new DnsClient(agent, DNS_TOKEN, dns.api),
    new CertStore(rc, tlsKeys(dns.prefix)).acmeAccount,
    capturedLogger().log,
  );
  await t.rejects(issuer.issue(certificateNames('sandbox.test', 'api', [])), { code: 'CERTIFICATE_FAILED', message: new RegExp(`not answered within 1500 ms: _acme-challenge\\.sandbox\\.test at 127\\.0\\.0\\.1:${dead}`) });
  t.equal((await dig(dns.port, ['_acme-challenge.sandbox.test', 'TXT'])).status, 'NXDOMAIN', 'nothing left in the zone');
});
