import type { IncomingMessage, ServerResponse } from 'node:http';
import type { EnvdAgent, EnvdDeps, TokenCheck } from './agent.js';
import { ownsEnvdPath, sendEnvdError } from './routes.js';

/**
 * The E2B agent, loaded on its first request. Its Connect and protobuf
 * code, set up, doubled what an idle sandbox costs (its agent's private
 * memory 7.4 -> 14.8 MiB, bench-density), and most sandboxes never speak
 * E2B: the bundle keeps the agent's modules unevaluated until then (a
 * dynamic import), `/health` is answered without them, and a request that
 * comes while they load waits, its body unread. Once loaded, the agent warms
 * its own Connect path in the background (agent.ts: warm()). A template
 * made for E2B (OMEGA_WORKER_E2B_HOME set) loads it at start instead.
 */
export class LazyEnvd {
  private agent: EnvdAgent | null = null;
  private loading: Promise<EnvdAgent> | null = null;
  private address: { host: string; port: number } | null = null;

  constructor(private readonly deps: EnvdDeps) {}

  owns(path: string): boolean {
    return ownsEnvdPath(path);
  }

  /** Where the worker listens (the agent's warm-up asks itself there). */
  listening(host: string, port: number): void {
    this.address = { host, port };
  }

  load(): Promise<EnvdAgent> {
    this.loading ??= import('./agent.js').then((m) => {
      const agent = new m.EnvdAgent(this.deps);
      this.agent = agent;
      this.deps.log.info('E2B agent loaded');
      if (this.address) void agent.warm(this.address.host, this.address.port);
      return agent;
    });
    return this.loading;
  }

  /** Whether a request is the agent's own warm-up (not a client's, so not activity). */
  isWarmUp(req: IncomingMessage): boolean {
    return this.agent?.isWarmUp(req) ?? false;
  }

  serve(req: IncomingMessage, res: ServerResponse, checkToken: TokenCheck): void {
    if (this.agent) return this.agent.serve(req, res, checkToken);
    if ((req.url ?? '/').split('?')[0] === '/health') {
      res.writeHead(204, { 'cache-control': 'no-store' });
      return void res.end();
    }
    // Nothing reads the body meanwhile (an IncomingMessage flows only once someone reads it): it waits in the socket.
    this.load().then(
      (agent) => agent.serve(req, res, checkToken),
      (err: unknown) => {
        this.deps.log.error({ err }, 'the E2B agent could not be loaded');
        sendEnvdError(res, 500, 'the agent could not be loaded');
      },
    );
  }

  stop(): void {
    this.agent?.stop();
  }
}
