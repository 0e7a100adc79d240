import t from 'tap';
import { Packet } from 'dns2';
import { encodeResponse, parseQuery, RCODE, TYPE, type ResourceRecord } from '../../dns/wire.js';
import { buildQuery } from '../helpers/dns.js';

const q = buildQuery('Rec.Sandbox.Test', 'A', { id: 4242, edns: { udpSize: 4096 } });
const parsed = parseQuery(q);

t.test('parseQuery reads id, type, EDNS and a lower-cased key', async (t) => {
  if ('drop' in parsed) throw new Error('did not parse');
  t.equal(parsed.id, 4242);
  t.equal(parsed.qtype, TYPE.A);
  t.equal(parsed.edns, true);
  t.equal(parsed.udpSize, 4096);
  t.equal(parsed.wireKey, '\x03rec\x07sandbox\x04test\x00');
  t.same(parseQuery(q.subarray(0, 5)), { drop: true });
});

t.test('every record type round-trips: our encoder -> dns2 decode -> dns2 encode -> decode', async (t) => {
  if ('drop' in parsed) throw new Error('did not parse');
  const long = 'y'.repeat(600);
  const answers: ResourceRecord[] = [
    { owner: null, ttl: 30, data: { type: TYPE.A, address: '192.0.2.7' } },
    { owner: null, ttl: 30, data: { type: TYPE.AAAA, address: '2001:db8::ff:1' } },
    { owner: null, ttl: 30, data: { type: TYPE.AAAA, address: '::ffff:192.0.2.1' } },
    { owner: null, ttl: 30, data: { type: TYPE.TXT, text: 'hello wörld' } },
    { owner: null, ttl: 30, data: { type: TYPE.TXT, text: long } },
    { owner: 'sandbox.test', ttl: 3600, data: { type: TYPE.NS, target: 'ns1.sandbox.test' } },
  ];
  const authority: ResourceRecord[] = [
    {
      owner: 'sandbox.test',
      ttl: 5,
      data: { type: TYPE.SOA, mname: 'ns1.sandbox.test', rname: 'hostmaster.sandbox.test', serial: 4000000000, refresh: 3600, retry: 600, expire: 604800, minimum: 5 },
    },
  ];
  const wire = encodeResponse(q, { id: parsed.id, echoFlags: parsed.echoFlags, questionEnd: parsed.nameEnd + 4 }, { rcode: 0, aa: true, answers, authority, additional: [] }, { udpSize: 1232, dnssecOk: false });
  const p = Packet.parse(wire);
  t.same(p.errors ?? [], []);
  t.equal(p.header.id, 4242);
  t.equal(p.header.qr, 1);
  t.equal(p.header.aa, 1);
  t.equal(p.header.rd, 1, 'RD copied from the query');
  t.equal(p.questions[0]!.name, 'Rec.Sandbox.Test', 'question octets echoed');
  const a = p.answers as unknown as Array<Record<string, unknown>>;
  t.equal(a[0]!.name, 'Rec.Sandbox.Test', 'answer owner points at the question');
  t.equal(a[0]!.address, '192.0.2.7');
  t.equal(a[1]!.address, '2001:db8::ff:1');
  t.equal(a[2]!.address, '::ffff:c000:201');
  t.same(a[3]!.data, ['hello wörld']);
  t.equal((a[4]!.data as string[]).join(''), long, 'long TXT split into 255-octet strings');
  t.same((a[4]!.data as string[]).map((s) => s.length), [255, 255, 90]);
  t.equal(a[5]!.ns, 'ns1.sandbox.test');
  const soa = p.authorities[0] as unknown as Record<string, unknown>;
  t.match(soa, { primary: 'ns1.sandbox.test', admin: 'hostmaster.sandbox.test', serial: 4000000000, minimum: 5, ttl: 5 });
  const opt = p.additionals[0] as unknown as Record<string, unknown>;
  t.equal(opt.type, Packet.TYPE.EDNS);
  t.equal(opt.class, 1232);
  // And dns2's own encoding of what it decoded decodes to the same records.
  // (dns2's encoder compresses case-insensitively into the question, so
  // names are compared as DNS compares them, ignoring case.)
  const fold = (rs: unknown[]) =>
    rs.map((r) => JSON.parse(JSON.stringify(r), (k, v) => (['name', 'ns', 'primary', 'admin'].includes(k) ? String(v).toLowerCase() : v)));
  const again = Packet.parse(p.toBuffer());
  t.same(fold(again.answers), fold(p.answers));
  t.same(fold(again.authorities), fold(p.authorities));
  t.ok(wire.length < Packet.parse(wire).toBuffer().length + 40, 'names are compressed');
});

t.test('an extended rcode travels in the OPT record (RFC 6891 §6.1.3)', async (t) => {
  if ('drop' in parsed) throw new Error('did not parse');
  const wire = encodeResponse(q, { id: 1, echoFlags: 0, questionEnd: parsed.nameEnd + 4 }, { rcode: RCODE.BADVERS, aa: false, answers: [], authority: [], additional: [] }, { udpSize: 1232, dnssecOk: false });
  t.equal(wire.readUInt16BE(2) & 0xf, 0);
  const p = Packet.parse(wire);
  t.equal((p.additionals[0] as unknown as { extendedRcode: number }).extendedRcode, 1);
});
