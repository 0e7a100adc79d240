// The worker's per-source limits: wrong tokens and connections held open,
// counted by the client's address, which behind the ingress is the one the
// PROXY line names (the ingress's own is every client's).
import net from 'node:net';
import t from 'tap';
import { proxyLine } from '../../src/protocol/proxy.js';
import { startWorker, TOKEN } from './harness.js';

/** One HTTP/1.1 request on a fresh connection, optionally after a PROXY line; the status, or 'closed'. */
function get(port: number, token: string, via?: string): Promise<number | 'closed'> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.write(`${via ? proxyLine(via, 40000, '10.0.0.2', 443) : ''}GET /x HTTP/1.1\r\nHost: w\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n\r\n`);
    });
    let text = '';
    s.on('data', (d) => (text += d.toString('latin1')));
    s.on('close', () => resolve(text ? Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]) : 'closed'));
    s.on('error', (err) => ((err as NodeJS.ErrnoException).code === 'ECONNRESET' ? resolve('closed') : reject(err)));
  });
}

t.test('wrong tokens: 20 answered 401, then 429 for that address only, the token unread', async (t) => {
  const { port } = await startWorker(t, { OMEGA_WORKER_HTTPS: '1' });
  const statuses: Array<number | 'closed'> = [];
  for (let i = 0; i < 25; i++) statuses.push(await get(port, `wrong-${i}-0123456789abcdef`, '203.0.113.7'));
  t.same(statuses, [...Array(20).fill(401), ...Array(5).fill(429)]);
  t.equal(await get(port, TOKEN, '203.0.113.7'), 429, 'the guesser\'s right token is not looked at now');
  t.equal(await get(port, TOKEN, '203.0.113.8'), 404, 'another client through the same ingress is served (404: no such route, past the token)');
  t.equal(await get(port, TOKEN), 404, 'and so is the ingress\'s own address (the manager)');
});

t.test('without the ingress a PROXY line is not believed: it is a bad request, and the peer is the source', async (t) => {
  const { port } = await startWorker(t);
  t.equal(await get(port, TOKEN, '203.0.113.1'), 400, 'a PROXY line is no HTTP on a published port');
  const statuses: Array<number | 'closed'> = [];
  for (let i = 0; i < 22; i++) statuses.push(await get(port, `wrong-${i}-0123456789abcdef`));
  t.same(statuses, [...Array(20).fill(401), 429, 429], 'the peer\'s own address is limited');
});

t.test('a malformed PROXY line closes the connection', async (t) => {
  const { port } = await startWorker(t, { OMEGA_WORKER_HTTPS: '1' });
  const status = await new Promise<string>((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => s.write('PROXY TCP4 not-an-address 10.0.0.2 1 443\r\nGET / HTTP/1.1\r\n\r\n'));
    let text = '';
    s.on('data', (d) => (text += d));
    s.on('close', () => resolve(text || 'closed'));
    // A reset is the refusal being tested; its close resolves.
    s.on('error', () => {});
  });
  t.equal(status, 'closed');
});

t.test('connections past the per-source limit are closed at once; other sources are served', async (t) => {
  const { port } = await startWorker(t, { OMEGA_WORKER_HTTPS: '1', OMEGA_WORKER_MAX_CONNECTIONS_PER_SOURCE: '5' });
  const held: net.Socket[] = [];
  t.teardown(() => held.forEach((s) => s.destroy()));
  const closedEarly: boolean[] = await Promise.all(
    Array.from({ length: 8 }, () => new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => s.write(proxyLine('198.51.100.20', 1234, '10.0.0.2', 443)));
      held.push(s);
      // A reset is the refusal being tested; its close resolves.
      s.on('error', () => {});
      s.on('close', () => resolve(true));
      setTimeout(() => resolve(false), 1500);
    })),
  );
  t.equal(closedEarly.filter(Boolean).length, 3, '5 held, 3 closed');
  t.equal(await get(port, TOKEN, '198.51.100.21'), 404, 'another client is served meanwhile');
});

t.test('a token guessed in a preview URL counts as a wrong token of its address', async (t) => {
  const { port } = await startWorker(t, { OMEGA_WORKER_HTTPS: '1' });
  const preview = (token: string, via: string) =>
    new Promise<number>((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => s.write(`${proxyLine(via, 40000, '10.0.0.2', 443)}GET /?omega_token=${token} HTTP/1.1\r\nHost: 3000-sbx1.sandbox.test\r\nConnection: close\r\n\r\n`));
      let text = '';
      s.on('data', (d) => (text += d.toString('latin1')));
      s.on('close', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1])));
      s.on('error', reject);
    });
  const statuses: number[] = [];
  for (let i = 0; i < 22; i++) statuses.push(await preview(`wrong-${i}-0123456789abcdef`, '203.0.113.50'));
  t.same(statuses, [...Array(20).fill(401), 429, 429]);
  t.equal(await preview(TOKEN, '203.0.113.51'), 302, 'another address trades the right token for the cookie');
});
