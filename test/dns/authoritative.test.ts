import net from 'node:net';
import t from 'tap';
import { UDPClient } from 'dns2';
import { buildQuery, dig, Packet, startDns, udpExchange, type StartedDns } from '../helpers/dns.js';
import { waitFor } from '../helpers/ports.js';
import { TestRedis } from '../helpers/redis.js';

// One Redis and one server for the file; each test writes its own names.
const redis = await TestRedis.create();
t.teardown(() => redis.destroy());
// The master's public name is answered from configuration.
const dns: StartedDns = await startDns(t, redis, { OMEGA_API_ADDRESSES: '127.0.0.9,::1' });
const { port } = dns;

async function put(name: string, type: string, values: string[], ttl?: number) {
  const res = await dns.call('PUT', `/v1/records/${name}`, { type, values, ...(ttl !== undefined ? { ttl } : {}) });
  if (res.status !== 200) throw new Error(`PUT ${name}: ${res.status} ${JSON.stringify(res.body)}`);
  // The API returns once Redis has the change; the responder follows the feed.
  await waitFor(`${name} in zone serial ${res.body.serial}`, () => dns.server.zone.serial >= res.body.serial, 2000, 2);
  return res.body;
}

t.test('A, AAAA and TXT answers are authoritative, without recursion', async (t) => {
  await put('alpha', 'A', ['10.1.2.3', '10.1.2.4'], 30);
  await put('alpha', 'AAAA', ['2001:db8::1']);
  await put('alpha', 'TXT', ['acme-challenge-token-xyz']);
  const a = await dig(port, ['alpha.sandbox.test', 'A']);
  t.equal(a.status, 'NOERROR');
  t.ok(a.flags.includes('aa'), 'AA set');
  t.notOk(a.flags.includes('ra'), 'RA clear');
  t.same(a.answer.map((l) => l.split(/\s+/).slice(1).join(' ')).sort(), ['30 IN A 10.1.2.3', '30 IN A 10.1.2.4']);
  const aaaa = await dig(port, ['alpha.sandbox.test', 'AAAA', '+short']);
  t.equal(aaaa.raw.trim(), '2001:db8::1');
  const txt = await dig(port, ['alpha.sandbox.test', 'TXT', '+short']);
  t.equal(txt.raw.trim(), '"acme-challenge-token-xyz"');
});

t.test("dns2's client gets the same answer", async (t) => {
  await put('beta', 'A', ['10.9.9.9']);
  const resolve = UDPClient({ dns: '127.0.0.1', port });
  const res = await resolve('beta.sandbox.test', 'A');
  t.equal(res.header.aa, 1);
  t.equal(res.answers.length, 1);
  t.equal((res.answers[0] as { address: string }).address, '10.9.9.9');
});

t.test('the question comes back in the client letter case; lookup ignores case', async (t) => {
  await put('gamma', 'A', ['10.3.3.3']);
  const r = await dig(port, ['GaMmA.SaNdBoX.TeSt', 'A']);
  t.equal(r.status, 'NOERROR');
  t.match(r.question[0], /^;GaMmA\.SaNdBoX\.TeSt\.\s/);
  t.match(r.answer[0], /^GaMmA\.SaNdBoX\.TeSt\.\s+\d+\s+IN\s+A\s+10\.3\.3\.3$/);
  // The answer cache must not leak one client's case to another.
  const lower = await dig(port, ['gamma.sandbox.test', 'A']);
  t.match(lower.answer[0], /^gamma\.sandbox\.test\./);
});

t.test('SOA and NS at the apex, with glue for the in-zone name server', async (t) => {
  const soa = await dig(port, ['sandbox.test', 'SOA']);
  t.equal(soa.status, 'NOERROR');
  t.ok(soa.flags.includes('aa'));
  t.match(soa.answer[0], /SOA\s+ns1\.sandbox\.test\. hostmaster\.sandbox\.test\. \d+ 3600 600 604800 5$/);
  const ns = await dig(port, ['sandbox.test', 'NS']);
  t.match(ns.answer[0], /NS\s+ns1\.sandbox\.test\.$/);
  t.match(ns.additional.join('\n'), /ns1\.sandbox\.test\.\s+\d+\s+IN\s+A\s+127\.0\.0\.1/);
  const glue = await dig(port, ['ns1.sandbox.test', 'A', '+short']);
  t.equal(glue.raw.trim(), '127.0.0.1');
});

t.test('the SOA serial grows with every change', async (t) => {
  const serial = async () => Number((await dig(port, ['sandbox.test', 'SOA', '+short'])).raw.trim().split(' ')[2]);
  const before = await serial();
  await put('delta', 'A', ['10.4.4.4']);
  const after1 = await serial();
  await dns.call('DELETE', '/v1/records/delta');
  await waitFor('delete applied', async () => (await serial()) > after1, 2000, 5);
  t.ok(after1 > before, `${after1} > ${before}`);
});

t.test('wildcards follow RFC 4592', async (t) => {
  await put('*.wild', 'A', ['10.5.5.5']);
  await put('own.wild', 'A', ['10.5.5.6']);
  const preview = await dig(port, ['3000.wild.sandbox.test', 'A']);
  t.equal(preview.status, 'NOERROR');
  t.ok(preview.flags.includes('aa'));
  t.match(preview.answer[0], /^3000\.wild\.sandbox\.test\.\s+\d+\s+IN\s+A\s+10\.5\.5\.5$/, 'owner is the query name');
  t.equal((await dig(port, ['a.b.c.wild.sandbox.test', 'A', '+short'])).raw.trim(), '10.5.5.5', 'matches any depth');
  t.equal((await dig(port, ['own.wild.sandbox.test', 'A', '+short'])).raw.trim(), '10.5.5.6', 'a name of its own wins');
  const below = await dig(port, ['x.own.wild.sandbox.test', 'A']);
  t.equal(below.status, 'NXDOMAIN', 'a name below an existing node is not covered by the wildcard above it');
  const typeMiss = await dig(port, ['3000.wild.sandbox.test', 'AAAA']);
  t.equal(typeMiss.status, 'NOERROR', 'wildcard without the type: NODATA');
  t.equal(typeMiss.answer.length, 0);
  const parent = await dig(port, ['wild.sandbox.test', 'A']);
  t.equal(parent.status, 'NOERROR', 'the wildcard parent is an empty non-terminal: NODATA, not NXDOMAIN');
  // RFC 4592 §2.2.2: an empty non-terminal blocks the wildcard above it.
  await put('*.ent', 'A', ['10.6.6.6']);
  await put('leaf.mid.ent', 'A', ['10.6.6.7']);
  t.equal((await dig(port, ['x.mid.ent.sandbox.test', 'A'])).status, 'NXDOMAIN');
  t.equal((await dig(port, ['x.ent.sandbox.test', 'A', '+short'])).raw.trim(), '10.6.6.6');
  t.equal((await dig(port, ['mid.ent.sandbox.test', 'A'])).status, 'NOERROR');
});

t.test('<port>-<id> answers what <id> does: ports 1-65535, no records stored per port', async (t) => {
  await put('pv1', 'A', ['10.6.6.6']);
  await put('pv1', 'AAAA', ['2001:db8::6']);
  await put('pv1', 'TXT', ['only-the-base-has-this']);
  const a = await dig(port, ['3000-pv1.sandbox.test', 'A']);
  t.equal(a.status, 'NOERROR');
  t.ok(a.flags.includes('aa'));
  t.match(a.answer[0], /^3000-pv1\.sandbox\.test\.\s+\d+\s+IN\s+A\s+10\.6\.6\.6$/, 'owned by the question');
  t.equal((await dig(port, ['1-pv1.sandbox.test', 'AAAA', '+short'])).raw.trim(), '2001:db8::6');
  t.equal((await dig(port, ['65535-pv1.sandbox.test', 'A', '+short'])).raw.trim(), '10.6.6.6');
  // A challenge or other TXT is the base name's own: the preview name has only addresses.
  const txt = await dig(port, ['3000-pv1.sandbox.test', 'TXT']);
  t.equal(txt.status, 'NOERROR');
  t.same(txt.answer, []);
  for (const bad of ['0-pv1', '65536-pv1', '03000-pv1', '3000-nosuch', 'x3000-pv1', '3000-3000-pv1']) {
    t.equal((await dig(port, [`${bad}.sandbox.test`, 'A'])).status, 'NXDOMAIN', bad);
  }
  // A name with records of its own is answered from them, not by the rule.
  await put('8080-pv1', 'A', ['10.7.7.7']);
  t.equal((await dig(port, ['8080-pv1.sandbox.test', 'A', '+short'])).raw.trim(), '10.7.7.7');
  // The rule follows the base: moved and deleted, the cached preview answer goes with it.
  await put('pv1', 'A', ['10.6.6.7']);
  t.equal((await dig(port, ['3000-pv1.sandbox.test', 'A', '+short'])).raw.trim(), '10.6.6.7');
  const del = await dns.call('DELETE', '/v1/records/pv1');
  await waitFor('delete applied', () => dns.server.zone.serial >= del.body.serial, 2000, 2);
  t.equal((await dig(port, ['3000-pv1.sandbox.test', 'A'])).status, 'NXDOMAIN');
});

t.test("the API name answers the master's configured addresses and cannot be written", async (t) => {
  t.equal((await dig(port, ['api.sandbox.test', 'A', '+short'])).raw.trim(), '127.0.0.9');
  t.equal((await dig(port, ['API.sandbox.test', 'AAAA', '+short'])).raw.trim(), '::1');
  const res = await dns.call('PUT', '/v1/records/api', { type: 'A', values: ['10.0.0.1'] });
  t.equal(res.status, 400);
  t.equal(res.body.code, 'RESERVED_NAME');
});

t.test('a missing name is NXDOMAIN with the SOA, its TTL the RFC 2308 negative TTL', async (t) => {
  const r = await dig(port, ['does-not-exist.sandbox.test', 'A']);
  t.equal(r.status, 'NXDOMAIN');
  t.ok(r.flags.includes('aa'));
  t.equal(r.answer.length, 0);
  t.match(r.authority[0], /^sandbox\.test\.\s+5\s+IN\s+SOA\s/, 'min(SOA TTL 60, MINIMUM 5) = 5');
});

t.test('a name without the asked type is NODATA: NOERROR, empty answer, SOA', async (t) => {
  await put('epsilon', 'A', ['10.7.7.7']);
  const r = await dig(port, ['epsilon.sandbox.test', 'AAAA']);
  t.equal(r.status, 'NOERROR');
  t.equal(r.answer.length, 0);
  t.match(r.authority[0], /^sandbox\.test\.\s+5\s+IN\s+SOA\s/);
  t.equal((await dig(port, ['epsilon.sandbox.test', 'MX'])).status, 'NOERROR');
});

t.test('names outside the zone are REFUSED: no recursion', async (t) => {
  for (const name of ['example.com', 'test', 'xsandbox.test', 'sandbox.test.evil.com']) {
    const r = await dig(port, [name, 'A']);
    t.equal(r.status, 'REFUSED', name);
    t.notOk(r.flags.includes('aa'), `${name}: not authoritative`);
  }
  t.equal((await dig(port, ['-c', 'CH', 'version.bind', 'TXT'])).status, 'REFUSED', 'CHAOS class');
  const axfr = await udpExchange(port, buildQuery('sandbox.test', 'AXFR'));
  t.equal(axfr!.readUInt16BE(2) & 0xf, 5, 'no zone transfer: REFUSED');
  const tcpAxfr = await dig(port, ['sandbox.test', 'AXFR']);
  t.match(tcpAxfr.raw, /Transfer failed/, 'dig over TCP is refused the transfer too');
});

t.test('EDNS0: OPT in the answer, our payload size, BADVERS for version 1', async (t) => {
  await put('zeta', 'A', ['10.8.8.8']);
  const r = await dig(port, ['zeta.sandbox.test', 'A']);
  t.match(r.raw, /; EDNS: version: 0, flags:; udp: 1232/);
  const plain = await dig(port, ['zeta.sandbox.test', 'A', '+noedns']);
  t.notMatch(plain.raw, /OPT PSEUDOSECTION/, 'no OPT to a client that sent none');
  const bad = await dig(port, ['zeta.sandbox.test', 'A', '+edns=1', '+noednsnegotiation']);
  t.equal(bad.status, 'BADVERS');
  t.match(bad.raw, /; EDNS: version: 0/);
  const ok = await dig(port, ['zeta.sandbox.test', 'A', '+dnssec']);
  t.match(ok.raw, /flags: do;/, 'the DO bit is echoed');
});

t.test('too large for UDP: TC set; over TCP the same query is answered whole', async (t) => {
  const values = Array.from({ length: 12 }, (_, i) => `v=${i} ${'x'.repeat(90)}`);
  await put('big', 'TXT', values);
  const small = await dig(port, ['big.sandbox.test', 'TXT', '+noedns', '+ignore']);
  t.ok(small.flags.includes('tc'), 'TC without EDNS (512 octets)');
  t.equal(small.answer.length, 0);
  const edns512 = await dig(port, ['big.sandbox.test', 'TXT', '+bufsize=600', '+ignore']);
  t.ok(edns512.flags.includes('tc'), 'TC when over the EDNS size the client gave');
  const tcp = await dig(port, ['big.sandbox.test', 'TXT', '+tcp']);
  t.notOk(tcp.flags.includes('tc'));
  t.equal(tcp.answer.length, 12);
  const big = await dig(port, ['big.sandbox.test', 'TXT', '+bufsize=4096']);
  t.equal(big.answer.length, 12, 'fits in 1232 octets... or is truncated and retried by dig over TCP');
});

t.test('TCP: several length-prefixed queries on one connection, answered in order', async (t) => {
  await put('eta', 'A', ['10.10.10.10']);
  const ids = [101, 102, 103];
  const frames = ids.map((id) => {
    const q = buildQuery(id === 102 ? 'nope.sandbox.test' : 'eta.sandbox.test', 'A', { id });
    const f = Buffer.alloc(2 + q.length);
    f.writeUInt16BE(q.length, 0);
    q.copy(f, 2);
    return f;
  });
  const sock = net.connect(port, '127.0.0.1');
  let got = Buffer.alloc(0);
  const replies: Buffer[] = await new Promise((resolve, reject) => {
    sock.on('error', reject);
    sock.on('data', (d) => {
      got = Buffer.concat([got, d]);
      const out: Buffer[] = [];
      let off = 0;
      while (off + 2 <= got.length && off + 2 + got.readUInt16BE(off) <= got.length) {
        out.push(got.subarray(off + 2, off + 2 + got.readUInt16BE(off)));
        off += 2 + got.readUInt16BE(off);
      }
      if (out.length === 3) resolve(out);
    });
    // All three in one write, the first split across two writes.
    sock.write(frames[0]!.subarray(0, 5));
    setTimeout(() => sock.write(Buffer.concat([frames[0]!.subarray(5), frames[1]!, frames[2]!])), 20);
  });
  sock.destroy();
  const parsed = replies.map((r) => Packet.parse(r));
  t.same(parsed.map((p) => p.header.id), ids);
  t.same(parsed.map((p) => p.header.rcode), [0, 3, 0]);
  t.equal((parsed[0]!.answers[0] as { address: string }).address, '10.10.10.10');
});

t.test('TCP connections idle past the timeout are closed', async (t) => {
  const short = await startDns(t, redis, { OMEGA_DNS_TCP_IDLE_TIMEOUT_MS: '200' });
  const sock = net.connect(short.port, '127.0.0.1');
  const started = Date.now();
  await new Promise<void>((resolve) => sock.on('close', () => resolve()));
  t.ok(Date.now() - started >= 150, 'closed by the server after idling');
});

t.test('other opcodes are NOTIMP', async (t) => {
  const r = await dig(port, ['sandbox.test', 'SOA', '+opcode=status']);
  t.equal(r.status, 'NOTIMP');
  const notify = buildQuery('sandbox.test', 'SOA');
  notify.writeUInt16BE((4 << 11) | 0x0100, 2); // NOTIFY
  const reply = await udpExchange(port, notify);
  t.ok(reply);
  t.equal(reply!.readUInt16BE(2) & 0xf, 4);
  t.equal((reply!.readUInt16BE(2) >> 11) & 0xf, 4, 'opcode echoed');
});

t.test('malformed queries: FORMERR when the header is readable, silence otherwise', async (t) => {
  const q = buildQuery('eta.sandbox.test', 'A', { id: 7 });
  const cut = await udpExchange(port, q.subarray(0, 20));
  t.ok(cut, 'a cut question gets an answer');
  t.equal(cut!.readUInt16BE(0), 7);
  t.equal(cut!.readUInt16BE(2) & 0xf, 1, 'FORMERR');
  const two = Buffer.from(q);
  two.writeUInt16BE(2, 4);
  t.equal((await udpExchange(port, two))!.readUInt16BE(2) & 0xf, 1, 'QDCOUNT 2: FORMERR');
  const trailing = Buffer.concat([q, Buffer.from([1, 2, 3])]);
  t.equal((await udpExchange(port, trailing))!.readUInt16BE(2) & 0xf, 1, 'trailing octets: FORMERR');
  t.equal(await udpExchange(port, Buffer.from([1, 2, 3]), 300), null, 'shorter than a header: dropped');
  const response = Buffer.from(q);
  response.writeUInt16BE(0x8000 | response.readUInt16BE(2), 2);
  t.equal(await udpExchange(port, response, 300), null, 'a response (QR=1) is never answered');
});

t.test('per-source response rate limiting withholds answers and slips some as TC', async (t) => {
  const limited = await startDns(t, redis, { OMEGA_DNS_RRL_PER_SECOND: '5', OMEGA_DNS_RRL_SLIP: '2' });
  const dgram = await import('node:dgram');
  const s = dgram.createSocket('udp4');
  const replies: Buffer[] = [];
  s.on('message', (m) => replies.push(m));
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const q = buildQuery('sandbox.test', 'SOA');
  for (let i = 0; i < 40; i++) s.send(q, limited.port, '127.0.0.1');
  await new Promise((r) => setTimeout(r, 300));
  s.close();
  const full = replies.filter((r) => !(r.readUInt16BE(2) & 0x0200));
  const slipped = replies.filter((r) => r.readUInt16BE(2) & 0x0200);
  t.ok(full.length >= 5 && full.length <= 10, `${full.length} full answers (5 per second)`);
  t.ok(slipped.length > 0, `${slipped.length} truncated slips`);
  t.ok(replies.length < 40, `${40 - replies.length} withheld`);
  t.equal(limited.server.counters.rateLimited, 40 - full.length);
});

t.test('cached answers go stale exactly when the zone says so', async (t) => {
  const short = async (name: string) => (await dig(port, [`${name}.sandbox.test`, 'A', '+short'])).raw.trim();
  // An exact answer, updated in place.
  await put('c-exact', 'A', ['10.50.0.1']);
  t.equal(await short('c-exact'), '10.50.0.1');
  await put('c-exact', 'A', ['10.50.0.2']);
  t.equal(await short('c-exact'), '10.50.0.2');
  // A change elsewhere keeps the exact answer cached (and right).
  await put('c-other', 'A', ['10.50.0.3']);
  t.equal(await short('c-exact'), '10.50.0.2');
  // A synthesised answer follows a changed wildcard...
  await put('*.c-syn', 'A', ['10.51.0.1']);
  t.equal(await short('q.c-syn'), '10.51.0.1');
  await put('*.c-syn', 'A', ['10.51.0.2']);
  t.equal(await short('q.c-syn'), '10.51.0.2');
  // ...gives way to a name of its own...
  await put('q.c-syn', 'A', ['10.51.0.3']);
  t.equal(await short('q.c-syn'), '10.51.0.3');
  // ...and stops when a new node makes its parent an empty non-terminal.
  t.equal(await short('q.m.c-syn'), '10.51.0.2');
  await put('z.m.c-syn', 'A', ['10.51.0.4']);
  t.equal((await dig(port, ['q.m.c-syn.sandbox.test', 'A'])).status, 'NXDOMAIN');
  // A negative answer ends when the name appears.
  t.equal((await dig(port, ['c-late.sandbox.test', 'A'])).status, 'NXDOMAIN');
  await put('c-late', 'A', ['10.52.0.1']);
  t.equal(await short('c-late'), '10.52.0.1');
});
