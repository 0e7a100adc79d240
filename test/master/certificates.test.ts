// The certificate keeper against a real Redis: one master orders at a time,
// the others adopt what it stored; a failure backs off and keeps the old
// certificate; files are re-read when they change; renewal at two thirds.
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { certificateNames, Certificates, FileIssuer, LocalIssuer, type Issuer } from '../../master/certificates.js';
import { createRedis } from '../../src/redis/connection.js';
import { tlsKeys } from '../../src/redis/keys.js';
import { covers, renewAtMs, type CertBundle } from '../../src/tls/bundle.js';
import { checkLocalCa, createLocalCa, issueFromLocalCa } from '../../src/tls/local-ca.js';
import { CertStore } from '../../src/tls/store.js';
import { capturedLogger } from '../helpers/log.js';
import { TestRedis } from '../helpers/redis.js';

const redis = await TestRedis.create();
t.teardown(() => redis.destroy());
const ca = await createLocalCa('Omega test CA');
const NAMES = certificateNames('sandbox.test', 'api', ['127.0.0.1']);

let n = 0;
function storeFor(t: Test): CertStore {
  const rc = createRedis(redis.url);
  t.teardown(() => rc.disconnect());
  return new CertStore(rc, tlsKeys(`tcert${n++}`));
}

/** An issuer that counts its calls, can be made to fail, and takes `delayMs`. */
class CountingIssuer implements Issuer {
  readonly source = 'local';
  readonly maxIssueMs = 5000;
  calls = 0;
  fail = false;
  constructor(private readonly delayMs = 0) {}
  async issue(names: string[]): Promise<CertBundle> {
    this.calls++;
    await new Promise((r) => setTimeout(r, this.delayMs));
    if (this.fail) throw new Error('the CA said no');
    return issueFromLocalCa(ca, { names, lifetimeDays: 90 });
  }
}

t.test('a local CA issues a wildcard that verifies against it and names what was asked', async (t) => {
  checkLocalCa(ca);
  t.same(NAMES, ['*.sandbox.test', 'sandbox.test', '127.0.0.1'], 'api.<zone> is under the wildcard');
  t.same(certificateNames('sandbox.test', 'api.example.com.', []), ['*.sandbox.test', 'sandbox.test', 'api.example.com']);
  const b = await issueFromLocalCa(ca, { names: NAMES, lifetimeDays: 90 });
  const leaf = new X509Certificate(b.certPem);
  t.ok(leaf.verify(new X509Certificate(ca.certPem).publicKey), 'signed by the CA');
  t.ok(leaf.checkHost('abc.sandbox.test'), 'the wildcard covers a sandbox');
  t.notOk(leaf.checkHost('3000.abc.sandbox.test'), 'but not a name two labels deep');
  t.ok(leaf.checkIP('127.0.0.1'));
  t.ok(covers(b, NAMES));
  t.notOk(covers(b, ['other.test']));
  const days = (b.notAfterMs - b.notBeforeMs) / 86_400_000;
  t.ok(days > 89.9 && days < 90.1, `lives 90 days (${days})`);
  t.equal(renewAtMs(b), b.notBeforeMs + Math.floor(((b.notAfterMs - b.notBeforeMs) * 2) / 3), 'renewed two thirds in');
  t.throws(() => checkLocalCa({ certPem: ca.certPem, keyPem: b.keyPem }), /does not belong/, 'a key that is not the CA\'s is refused');
});

t.test('two masters at once: one issues, the other adopts the same certificate', async (t) => {
  const store = storeFor(t);
  const a = new CountingIssuer(200);
  const b = new CountingIssuer(200);
  const seen: string[] = [];
  const ka = new Certificates(store, a, { names: NAMES, intervalMs: 60_000, renewNow: false }, (c) => seen.push(`a:${c.fingerprint}`), capturedLogger().log);
  const kb = new Certificates(store, b, { names: NAMES, intervalMs: 60_000, renewNow: false }, (c) => seen.push(`b:${c.fingerprint}`), capturedLogger().log);
  t.teardown(() => Promise.all([ka.stop(), kb.stop()]));
  await Promise.all([ka.start(), kb.start()]);
  t.equal(a.calls + b.calls, 1, 'one order');
  // The one that lost the lock adopts it on its next pass.
  await ka.pass();
  await kb.pass();
  t.ok(ka.certificate && kb.certificate);
  t.equal(ka.certificate!.fingerprint, kb.certificate!.fingerprint, 'both serve the one certificate');
  t.equal(new Set(seen.map((s) => s.slice(2))).size, 1);
  await ka.pass();
  t.equal(a.calls + b.calls, 1, 'a fresh certificate is not renewed');
});

t.test('a failed renewal backs off, is counted and logged, and the old certificate stays', async (t) => {
  const store = storeFor(t);
  const issuer = new CountingIssuer();
  let now = Date.now();
  const { log, lines, text } = capturedLogger();
  const k = new Certificates(store, issuer, { names: NAMES, intervalMs: 60_000, renewNow: false, now: () => now }, () => {}, log);
  t.teardown(() => k.stop());
  await k.start();
  const first = k.certificate!;
  t.ok(first);
  issuer.fail = true;
  now = renewAtMs(first) + 1;
  await k.pass();
  t.equal(k.failures, 1);
  t.equal(k.counts.failed, 1);
  t.equal(k.certificate!.fingerprint, first.fingerprint, 'the old one is still in use');
  t.match(lines('obtaining the certificate failed').join(''), /"retryInMs":5000/, 'logged, with when it retries');
  t.notMatch(text(), /PRIVATE KEY/, 'no key in the log');
  await k.pass();
  t.equal(issuer.calls, 2, 'no new attempt inside the backoff');
  now += 5001;
  issuer.fail = false;
  await k.pass();
  t.equal(issuer.calls, 3, 'tried again after it');
  t.not(k.certificate!.fingerprint, first.fingerprint, 'renewed');
  t.equal(k.failures, 0);
  t.equal((await store.get())!.fingerprint, k.certificate!.fingerprint, 'and stored');
});

t.test('a store by a master whose lock lapsed is refused', async (t) => {
  const store = storeFor(t);
  const token = await store.lock(50);
  t.ok(token);
  await new Promise((r) => setTimeout(r, 120));
  const other = await store.lock(5000);
  t.ok(other, 'another master took the lapsed lock');
  const b = await issueFromLocalCa(ca, { names: NAMES, lifetimeDays: 1 });
  await t.rejects(store.put(token!, b), { code: 'CERTIFICATE_FAILED' });
  t.equal(await store.get(), null, 'nothing stored');
  await store.unlock(token!);
  t.equal(await store.lock(5000), null, 'the old holder\'s unlock left the new holder\'s lock alone');
});

t.test('files: stored as they are, and again once they change', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'omega-certfiles-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const write = async () => {
    const b = await issueFromLocalCa(ca, { names: ['files.test'], lifetimeDays: 30 });
    writeFileSync(join(dir, 'cert.pem'), b.certPem);
    writeFileSync(join(dir, 'key.pem'), b.keyPem);
    return b.fingerprint;
  };
  const fp1 = await write();
  const store = storeFor(t);
  const applied: string[] = [];
  const k = new Certificates(store, new FileIssuer(join(dir, 'cert.pem'), join(dir, 'key.pem')), { names: NAMES, intervalMs: 60_000, renewNow: false }, (b) => applied.push(b.fingerprint), capturedLogger().log);
  t.teardown(() => k.stop());
  await k.start();
  t.same(applied, [fp1], 'what the files hold, though it names less than a local one would');
  await k.pass();
  t.same(applied, [fp1], 'unchanged files: nothing new');
  const fp2 = await write();
  await k.pass();
  t.same(applied, [fp1, fp2], 'changed files: the new certificate');
  t.equal((await store.get())!.source, 'files');
  // A key that does not match (mid-rotation): the pass fails, the certificate in use stays.
  writeFileSync(join(dir, 'key.pem'), (await issueFromLocalCa(ca, { names: ['x.test'], lifetimeDays: 1 })).keyPem);
  await k.pass();
  t.equal(k.certificate!.fingerprint, fp2);
});
