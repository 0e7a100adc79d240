/**
 * A simulated host, for the control-plane benches only (never a program's):
 * it registers and heart-beats in Redis exactly as a manager does (the
 * manager's own HostRegistry), keeps a container table, and answers the
 * manager API the master calls (create, delete, list, health) without
 * Docker, a create answering after `createDelayMs`. A thousand of them run
 * in one process on loopback, so that the real master, DNS servers and
 * Redis can be driven at a scale one machine cannot run containers for.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HostRegistry } from '../manager/registry.js';
import { createLogger } from '../src/log.js';
import type { ContainerEntry, CreateSandboxRequest, SandboxInfo } from '../src/protocol/manager.js';
import type { RedisClient } from '../src/redis/connection.js';
import { hostKeys } from '../src/redis/keys.js';

export interface SimulatedHostOptions {
  redis: RedisClient;
  prefix: string;
  hostId: string;
  /** The loopback address it listens on and registers. */
  address: string;
  capacity: number;
  createDelayMs: number;
  managerToken: string;
  heartbeat?: { intervalMs: number; ttlMs: number };
}

const silent = createLogger('sim-host', { level: 'silent' });

export class SimulatedHost {
  private readonly server: Server;
  private registry!: HostRegistry;
  private nextPort = 20_000;
  creates = 0;

  constructor(private readonly o: SimulatedHostOptions) {
    this.server = createServer((req, res) => void this.handle(req, res).catch((err: unknown) => this.send(res, 500, { code: 'INTERNAL', message: String(err) })));
    this.server.keepAliveTimeout = 60_000;
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, this.o.address, resolve));
    const port = (this.server.address() as AddressInfo).port;
    this.registry = new HostRegistry(
      this.o.redis,
      hostKeys(this.o.prefix),
      { hostId: this.o.hostId, address: this.o.address, managerUrl: `http://${this.o.address}:${port}`, capacity: this.o.capacity },
      this.o.heartbeat ?? { intervalMs: 3000, ttlMs: 15_000 },
      silent,
    );
    await this.registry.register();
  }

  async stop(): Promise<void> {
    await this.registry?.deregister();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
  }

  private send(res: ServerResponse, status: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  private info(id: string, e: ContainerEntry): SandboxInfo {
    return { id, template: e.template, containerId: e.containerId, hostPort: e.hostPort, ingressPort: null, host: this.o.address, volume: e.volume, createdAt: new Date(e.createdAtMs).toISOString(), source: 'pool' };
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.headers.authorization !== `Bearer ${this.o.managerToken}`) return this.send(res, 401, { code: 'UNAUTHORIZED', message: 'a valid bearer token is required' });
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const url = new URL(req.url ?? '/', 'http://sim');
    const byId = /^\/v1\/sandboxes\/([a-z0-9-]+)$/.exec(url.pathname);
    if (req.method === 'POST' && url.pathname === '/v1/sandboxes') {
      const body = JSON.parse(Buffer.concat(chunks).toString()) as CreateSandboxRequest;
      if (this.o.createDelayMs) await new Promise((r) => setTimeout(r, this.o.createDelayMs));
      const entry: ContainerEntry = { containerId: `sim-${body.id}`, address: this.o.address, hostPort: this.nextPort++, volume: `sim-${body.id}`, template: body.template, source: 'pool', state: 'running', createdAtMs: Date.now() };
      await this.registry.put(body.id, entry);
      this.creates++;
      return this.send(res, 201, this.info(body.id, entry));
    }
    if (req.method === 'DELETE' && byId) {
      const had = await this.registry.get(byId[1]!);
      if (had) await this.registry.remove(byId[1]!);
      return this.send(res, 200, { id: byId[1], deleted: !!had });
    }
    if (req.method === 'GET' && url.pathname === '/v1/sandboxes') {
      const rows = await this.registry.entries();
      return this.send(res, 200, { sandboxes: [...rows].map(([id, e]) => ({ ...this.info(id, e), state: e.state })) });
    }
    if (req.method === 'GET' && url.pathname === '/healthz') return this.send(res, 200, { status: 'ok', hostId: this.o.hostId });
    return this.send(res, 404, { code: 'NOT_FOUND', message: `${req.method} ${url.pathname}` });
  }
}
