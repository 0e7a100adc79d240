import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls';
import { Agent, request, type Dispatcher } from 'undici';
import type { ConnectOptions } from '../src/protocol/worker-client.js';
import { joinHostPort } from '../src/config/settings.js';

/** What the master needs of a sandbox's record to reach its worker. */
export interface WorkerAddress {
  id: string;
  address: string;
  hostPort: number | null;
  ingressPort: number | null;
}

/** The same from an API view: its `port` is the ingress's when its URL is wss. */
export function workerAddressOf(v: { id: string; address: string; port: number | null; url: string | null }): WorkerAddress {
  const tls = v.url?.startsWith('wss:') ?? false;
  return { id: v.id, address: v.address, hostPort: tls ? null : v.port, ingressPort: tls ? v.port : null };
}

/**
 * How the master reaches a sandbox's worker: with TLS on, through the host's
 * ingress at the host's address, asking for the sandbox by name (SNI and
 * Host) and checking the certificate against the CAs it trusts, as any
 * client would; with TLS off, at the worker's own published port.
 */
export class WorkerRoutes {
  private readonly agent: Agent | null;
  /** One TLS context for every connection: building one parses ~150 CA certificates. */
  private readonly context: SecureContext | null;

  /** `trust`: PEM CA certificates beside the system's (the local CA), or null with TLS off. */
  constructor(
    private readonly zone: string,
    trust: string[] | null,
  ) {
    this.context = trust ? createSecureContext({ ca: [...rootCertificates, ...trust] }) : null;
    this.agent = this.context ? new Agent({ connect: { secureContext: this.context }, keepAliveTimeout: 10_000 }) : null;
  }

  private tls(w: WorkerAddress): boolean {
    return this.context !== null && w.ingressPort !== null;
  }

  /** The agent's WebSocket URL and the ws options that reach it. */
  ws(w: WorkerAddress): { url: string; socket: NonNullable<ConnectOptions['socket']> } {
    if (!this.tls(w)) return { url: `ws://${joinHostPort(w.address, w.hostPort!)}/`, socket: {} };
    const name = `${w.id}.${this.zone}`;
    return {
      url: `wss://${joinHostPort(w.address, w.ingressPort!)}/`,
      socket: { secureContext: this.context!, servername: name, headers: { host: name } },
    };
  }

  /** GET a path of the worker (its /healthz). */
  get(w: WorkerAddress, path: string, timeoutMs: number): Promise<Dispatcher.ResponseData> {
    const timeouts = { headersTimeout: timeoutMs, bodyTimeout: timeoutMs };
    if (!this.tls(w)) return request(`http://${joinHostPort(w.address, w.hostPort!)}${path}`, timeouts);
    // undici takes the TLS server name from the Host header.
    return request(`https://${joinHostPort(w.address, w.ingressPort!)}${path}`, { ...timeouts, dispatcher: this.agent!, headers: { host: `${w.id}.${this.zone}` } });
  }

  async close(): Promise<void> {
    await this.agent?.close();
  }
}
