import t from 'tap';
import { parseProxyLine, proxyLine } from '../../src/protocol/proxy.js';

t.test('the line for IPv4, IPv4-mapped IPv6 and IPv6', async (t) => {
  t.equal(proxyLine('203.0.113.7', 51234, '10.0.0.5', 443), 'PROXY TCP4 203.0.113.7 10.0.0.5 51234 443\r\n');
  t.equal(proxyLine('::ffff:203.0.113.7', 1, '::ffff:10.0.0.5', 443), 'PROXY TCP4 203.0.113.7 10.0.0.5 1 443\r\n');
  t.equal(proxyLine('2001:db8::1', 1, '2001:db8::2', 443), 'PROXY TCP6 2001:db8::1 2001:db8::2 1 443\r\n');
  t.equal(proxyLine('2001:db8::1', 1, '10.0.0.5', 443), 'PROXY UNKNOWN\r\n', 'mixed families: UNKNOWN, as the specification says');
});

t.test('parsing: the source and the bytes after it; partial, invalid and absent lines', async (t) => {
  const p = parseProxyLine(Buffer.from('PROXY TCP4 203.0.113.7 10.0.0.5 51234 443\r\nGET / HTTP/1.1\r\n'));
  t.match(p, { kind: 'proxy', source: '203.0.113.7' });
  t.equal(p.kind === 'proxy' && p.rest.toString(), 'GET / HTTP/1.1\r\n');
  t.match(parseProxyLine(Buffer.from('PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n')), { kind: 'proxy', source: '2001:db8::1' });
  t.match(parseProxyLine(Buffer.from('PROXY UNKNOWN\r\n')), { kind: 'proxy', source: null });
  t.match(parseProxyLine(Buffer.from('PRO')), { kind: 'partial' });
  t.match(parseProxyLine(Buffer.from('PROXY TCP4 203.0.113.7')), { kind: 'partial' });
  t.match(parseProxyLine(Buffer.from('GET / HTTP/1.1\r\n')), { kind: 'none' });
  t.match(parseProxyLine(Buffer.from('P')), { kind: 'partial' });
  t.match(parseProxyLine(Buffer.from('POST / HTTP/1.1\r\n')), { kind: 'none' });
  for (const bad of ['PROXY TCP4 203.0.113.7 10.0.0.5 51234\r\n', 'PROXY TCP4 2001:db8::1 10.0.0.5 1 2\r\n', 'PROXY TCP4 1.2.3.4 5.6.7.8 70000 1\r\n', 'PROXY TCP5 1.2.3.4 5.6.7.8 1 1\r\n', `PROXY ${'x'.repeat(120)}`]) {
    t.match(parseProxyLine(Buffer.from(bad)), { kind: 'invalid' }, JSON.stringify(bad.slice(0, 40)));
  }
});
