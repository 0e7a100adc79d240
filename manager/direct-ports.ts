import net from 'node:net';
import type { Logger } from '../src/log.js';
import type { ContainerEntry } from '../src/protocol/manager.js';

/**
 * Without the TLS ingress (OMEGA_TLS=off) a sandbox is reached at a port of
 * its host, which Docker publishes: a frozen container's kernel still
 * accepts connections there (nobody answers), and a stopped one's port is
 * released and comes back as another. So a sandbox created with autoResume
 * is reached instead at a port of the manager's own, for its lifetime:
 * each connection is held while a paused sandbox is woken (the same `wake`
 * host event the ingress sends), then piped to the worker's published port
 * as it is now. The worker sees the manager's address as the client, as it
 * sees Docker's proxy without this.
 */
export class DirectPorts {
  private readonly servers = new Map<string, net.Server>();
  private readonly sockets = new Set<net.Socket>();

  constructor(
    private readonly host: string,
    /** The sandbox's row once it runs (woken first when paused), or null when it cannot be served. */
    private readonly route: (sandboxId: string) => Promise<ContainerEntry | null>,
    private readonly log: Logger,
  ) {}

  /** Listen for sandbox `id` on `port` (0: any free port); the port. Idempotent. */
  async open(id: string, port = 0): Promise<number> {
    const open = this.servers.get(id);
    if (open) return (open.address() as net.AddressInfo).port;
    const server = net.createServer({ noDelay: true }, (s) => void this.serve(id, s));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, this.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.log.error({ err, sandboxId: id }, 'a sandbox\'s direct port failed'));
    this.servers.set(id, server);
    return (server.address() as net.AddressInfo).port;
  }

  /** Stop listening for sandbox `id`, closing its connections. */
  async close(id: string): Promise<void> {
    const server = this.servers.get(id);
    if (!server) return;
    this.servers.delete(id);
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  async closeAll(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await Promise.all([...this.servers.keys()].map((id) => this.close(id)));
  }

  private async serve(id: string, client: net.Socket): Promise<void> {
    this.sockets.add(client);
    client.once('close', () => this.sockets.delete(client));
    // Bytes the client sends meanwhile wait in the socket: nothing is read until the worker is there.
    client.pause();
    client.on('error', () => client.destroy());
    let e: ContainerEntry | null;
    try {
      e = await this.route(id);
    } catch (err) {
      this.log.warn({ err, sandboxId: id }, 'routing a direct connection failed');
      e = null;
    }
    if (!e || client.destroyed) {
      client.destroy();
      return;
    }
    const worker = net.connect({ host: e.address ?? this.host, port: e.hostPort, noDelay: true });
    this.sockets.add(worker);
    worker.once('close', () => {
      this.sockets.delete(worker);
      client.destroy();
    });
    client.once('close', () => worker.destroy());
    worker.on('error', () => worker.destroy());
    worker.once('connect', () => {
      client.pipe(worker);
      worker.pipe(client);
      client.resume();
    });
  }
}
