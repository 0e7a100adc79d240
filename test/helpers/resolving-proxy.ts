import http from 'node:http';
import net from 'node:net';
import type { Test } from 'tap';
import type { ZoneLookup } from './dns.js';

/**
 * An HTTP CONNECT proxy that resolves names at Omega's DNS server (`lookup`)
 * and only tunnels: TLS stays end to end between the client and the server.
 * It is how a test points a program that takes a `proxy` option (the E2B SDK)
 * at Omega's DNS without /etc/hosts. Closed at teardown.
 */
export async function startResolvingProxy(t: Test, lookup: ZoneLookup): Promise<{ url: string; asked: Set<string> }> {
  const sockets = new Set<net.Socket>();
  /** Every host:port a client asked for. */
  const asked = new Set<string>();
  const server = http.createServer((_req, res) => res.writeHead(405).end());
  server.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    sockets.add(client);
    client.on('error', () => client.destroy());
    client.once('close', () => sockets.delete(client));
    const m = /^\[?([^\]]+)\]?:(\d+)$/.exec(req.url ?? '');
    if (!m) return void client.end('HTTP/1.1 400 Bad Request\r\n\r\n');
    const [host, port] = [m[1]!, Number(m[2])];
    asked.add(`${host}:${port}`);
    const connect = (address: string) => {
      const up = net.connect(port, address, () => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        if (head.length) up.write(head);
        up.pipe(client);
        client.pipe(up);
      });
      sockets.add(up);
      up.once('close', () => sockets.delete(up));
      up.on('error', () => client.destroy());
      client.once('close', () => up.destroy());
    };
    if (net.isIP(host)) return connect(host);
    lookup(host, {}, (err, address) => (err || typeof address !== 'string' ? client.end('HTTP/1.1 502 Bad Gateway\r\n\r\n') : connect(address)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`, asked };
}
