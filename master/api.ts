import type { FastifyInstance } from 'fastify';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { isOmegaError, OmegaError } from '../src/errors.js';
import { bearerAuth, createHttpApp } from '../src/http.js';
import type { Logger } from '../src/log.js';
import { createBodySchema, idParamsSchema, listQuerySchema, pauseBodySchema, runBodySchema, snapshotIdParamsSchema, timeoutBodySchema, workspaceNameParamsSchema } from '../src/protocol/master.js';
import { redisConnectionErrors } from '../src/redis/errors.js';
import type { Runner, RunRequest } from './runner.js';
import type { CreateRequest, Sandboxes } from './sandboxes.js';
import type { SandboxState, Store } from './store.js';
import { registerE2bApi } from './e2b/routes.js';
import { registerWeb } from './web.js';

export interface MasterApiOptions {
  sandboxes: Sandboxes;
  runner: Runner;
  store: Store;
  token: string | undefined;
  status(): Promise<{ redis: boolean; dns: boolean }>;
  /** Templates a sandbox may be created from, for GET /v1/templates. */
  templates: readonly string[];
  /** The built web client served at `/` (see web.ts). */
  webDir: string;
  /** Lost hosts their provider dealt with, by what it did (restarted, terminated, reported). */
  lostHosts?: () => Record<string, number>;
  /** Serve https (the certificate is set on the server once there is one). */
  https?: boolean;
  /** The certificate keeper's state, for /metrics (TLS on). */
  certificate?: () => { notAfterMs: number | null; failures: number; issued: number; failed: number };
  /** OMEGA_MAX_CONNECTIONS_PER_SOURCE. */
  maxConnectionsPerSource?: number;
  /** Serve the E2B API (docs/e2b.md) for sandboxes in this zone; `baseTemplate` is what E2B's default `base` stands for. */
  e2b?: { zone: string; baseTemplate: string };
  log: Logger;
}

/** The public API. Built here, listened on in server.ts, so tests can inject without a socket. */
export function buildMasterApi(o: MasterApiOptions): FastifyInstance {
  const app = createHttpApp(o.log, { https: o.https, maxConnectionsPerSource: o.maxConnectionsPerSource });
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  registry.registerMetric(redisConnectionErrors);
  const createSeconds = new Histogram({
    name: 'omega_master_create_seconds',
    help: 'Time to create a sandbox (allocation, container, DNS), by template and source',
    labelNames: ['template', 'source'] as const,
    buckets: [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
    registers: [registry],
  });
  const createFailures = new Counter({ name: 'omega_master_create_failures_total', help: 'Creates that failed, by error code', labelNames: ['code'] as const, registers: [registry] });
  const runs = new Counter({ name: 'omega_master_runs_total', help: 'POST /v1/run calls, by language and outcome', labelNames: ['language', 'outcome'] as const, registers: [registry] });
  new Gauge({
    name: 'omega_master_sandboxes',
    help: 'Sandboxes by state',
    labelNames: ['state'] as const,
    registers: [registry],
    // The counts the state-changing scripts keep (one read, whatever the number of sandboxes); internal ones (POST /v1/run) included.
    async collect() {
      for (const [state, n] of Object.entries(await o.store.stateCounts())) this.set({ state }, n);
    },
  });
  new Gauge({
    name: 'omega_master_hosts',
    help: 'Hosts by health (alive, lost, stopped, draining) and their capacity and load',
    labelNames: ['status'] as const,
    registers: [registry],
    async collect() {
      const hosts = await o.store.hosts();
      this.set({ status: 'alive' }, hosts.filter((h) => h.alive && !h.draining).length);
      this.set({ status: 'lost' }, hosts.filter((h) => !h.alive && (h.lostAtMs !== null || h.stoppedAtMs === null)).length);
      this.set({ status: 'stopped' }, hosts.filter((h) => !h.alive && h.lostAtMs === null && h.stoppedAtMs !== null).length);
      this.set({ status: 'draining' }, hosts.filter((h) => h.draining).length);
      this.set({ status: 'capacity' }, hosts.filter((h) => h.alive).reduce((n, h) => n + h.capacity, 0));
      this.set({ status: 'load' }, hosts.filter((h) => h.alive).reduce((n, h) => n + h.load, 0));
    },
  });

  new Counter({
    name: 'omega_master_lost_hosts_total',
    help: 'Lost hosts handed to their provider, by what it did (restarted, terminated, reported)',
    labelNames: ['action'] as const,
    registers: [registry],
    // The scaler keeps the counts; a counter has no set(), so each scrape starts it over from them.
    collect() {
      this.reset();
      for (const [action, n] of Object.entries(o.lostHosts?.() ?? {})) this.inc({ action }, n);
    },
  });

  if (o.certificate) {
    const cert = o.certificate;
    new Gauge({
      name: 'omega_tls_certificate_expiry_seconds',
      help: 'Seconds until the certificate in use expires (absent while there is none)',
      registers: [registry],
      collect() {
        const c = cert();
        this.reset();
        if (c.notAfterMs !== null) this.set((c.notAfterMs - Date.now()) / 1000);
      },
    });
    new Gauge({
      name: 'omega_tls_certificate_failures',
      help: 'Failed attempts in a row to obtain or renew the certificate (0 once one succeeds)',
      registers: [registry],
      collect() {
        this.set(cert().failures);
      },
    });
    new Counter({
      name: 'omega_tls_certificate_attempts_total',
      help: 'Attempts by this master to obtain or renew the certificate, by result',
      labelNames: ['result'] as const,
      registers: [registry],
      collect() {
        const c = cert();
        this.reset();
        this.inc({ result: 'issued' }, c.issued);
        this.inc({ result: 'failed' }, c.failed);
      },
    });
  }

  app.get('/healthz', async (_req, reply) => {
    const s = await o.status();
    const ok = s.redis && s.dns;
    return reply.status(ok ? 200 : 503).send({ status: ok ? 'ok' : 'unavailable', redis: s.redis ? 'up' : 'down', dns: s.dns ? 'up' : 'down' });
  });
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', registry.contentType);
    return registry.metrics();
  });
  registerWeb(app, { dir: o.webDir, log: o.log });
  if (o.e2b) registerE2bApi(app, { sandboxes: o.sandboxes, store: o.store, token: o.token, ...o.e2b, templates: o.templates, log: o.log.child({ api: 'e2b' }) });

  app.register(async (v1) => {
    v1.addHook('onRequest', bearerAuth(o.token));

    v1.post<{ Body: CreateRequest }>('/v1/sandboxes', { schema: { body: createBodySchema } }, async (req, reply) => {
      const started = process.hrtime.bigint();
      try {
        const b = req.body;
        const created = await o.sandboxes.create({ template: b.template, timeoutSeconds: b.timeoutSeconds, idleSeconds: b.idleSeconds, metadata: b.metadata, internet: b.internet, onTimeout: b.onTimeout, onIdle: b.onIdle, env: b.env, git: b.git, snapshot: b.snapshot, autoResume: b.autoResume, workspace: b.workspace, publicPreviews: b.publicPreviews });
        createSeconds.observe({ template: created.template, source: created.source }, Number(process.hrtime.bigint() - started) / 1e9);
        return reply.status(201).send(created);
      } catch (err) {
        createFailures.inc({ code: isOmegaError(err) ? err.code : 'INTERNAL' });
        throw err;
      }
    });

    v1.get<{ Querystring: Record<string, string | number | undefined> }>('/v1/sandboxes', { schema: { querystring: listQuerySchema } }, async (req) => {
      const q = req.query;
      const metadata: Record<string, string> = {};
      for (const [k, v] of Object.entries(q)) if (k.startsWith('metadata.') && typeof v === 'string') metadata[k.slice(9)] = v;
      return o.sandboxes.list({ state: q.state as SandboxState | undefined, metadata }, Number(q.limit ?? 100), q.cursor as string | undefined);
    });

    v1.get<{ Params: { id: string } }>('/v1/sandboxes/:id', { schema: { params: idParamsSchema } }, async (req) => o.sandboxes.get(req.params.id));

    v1.delete<{ Params: { id: string } }>('/v1/sandboxes/:id', { schema: { params: idParamsSchema } }, async (req) => ({
      id: req.params.id,
      deleted: await o.sandboxes.delete(req.params.id),
    }));

    v1.post<{ Params: { id: string }; Body: { memory?: boolean } | null }>(
      '/v1/sandboxes/:id/pause',
      { schema: { params: idParamsSchema, body: pauseBodySchema } },
      async (req) => o.sandboxes.pause(req.params.id, req.body?.memory === false ? 'stopped' : 'memory'),
    );

    v1.post<{ Params: { id: string } }>('/v1/sandboxes/:id/snapshots', { schema: { params: idParamsSchema } }, async (req, reply) => reply.status(201).send(await o.sandboxes.persistence.snapshot(req.params.id)));
    v1.get('/v1/snapshots', async () => ({ snapshots: await o.store.listSnapshots() }));
    v1.get<{ Params: { id: string } }>('/v1/snapshots/:id', { schema: { params: snapshotIdParamsSchema } }, async (req) => {
      const s = await o.store.getSnapshot(req.params.id);
      if (!s) throw new OmegaError('SNAPSHOT_NOT_FOUND', `no snapshot ${req.params.id}`);
      return s;
    });
    v1.delete<{ Params: { id: string } }>('/v1/snapshots/:id', { schema: { params: snapshotIdParamsSchema } }, async (req) => ({ id: req.params.id, deleted: await o.sandboxes.persistence.deleteSnapshot(req.params.id) }));

    v1.get('/v1/workspaces', async () => ({ workspaces: await o.sandboxes.workspaces.list() }));
    v1.delete<{ Params: { name: string } }>('/v1/workspaces/:name', { schema: { params: workspaceNameParamsSchema } }, async (req) => ({
      name: req.params.name,
      deleted: await o.sandboxes.workspaces.delete(req.params.name),
    }));
    v1.post<{ Params: { id: string } }>('/v1/sandboxes/:id/resume', { schema: { params: idParamsSchema } }, async (req) => o.sandboxes.resume(req.params.id));
    v1.get<{ Params: { id: string } }>('/v1/sandboxes/:id/metrics', { schema: { params: idParamsSchema } }, async (req) => o.sandboxes.metrics(req.params.id));

    v1.post<{ Params: { id: string }; Body: { seconds: number } }>(
      '/v1/sandboxes/:id/timeout',
      { schema: { params: idParamsSchema, body: timeoutBodySchema } },
      async (req) => o.sandboxes.extend(req.params.id, req.body.seconds),
    );

    v1.post<{ Body: RunRequest }>('/v1/run', { schema: { body: runBodySchema } }, async (req, reply) => {
      const language = req.body.language;
      if (!/text\/event-stream/.test(req.headers.accept ?? '')) {
        try {
          const r = await o.runner.run(req.body);
          runs.inc({ language, outcome: r.timedOut ? 'timeout' : 'ok' });
          return r;
        } catch (err) {
          runs.inc({ language, outcome: 'error' });
          throw err;
        }
      }
      // Server-sent events: stdout/stderr as they come, then one `exit` (or `error`).
      // Errors before the first byte still answer with a status and JSON, as above.
      let opened = false;
      const open = () => {
        if (opened) return;
        opened = true;
        reply.hijack();
        reply.raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
      };
      const send = (event: string, data: unknown) => {
        open();
        reply.raw.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
      };
      try {
        const r = await o.runner.run(req.body, (stream, data) => send(stream, { data }));
        runs.inc({ language, outcome: r.timedOut ? 'timeout' : 'ok' });
        const { stdout: _o, stderr: _e, ...exit } = r;
        send('exit', exit);
        reply.raw.end();
      } catch (err) {
        runs.inc({ language, outcome: 'error' });
        if (!opened) throw err;
        send('error', { code: isOmegaError(err) ? err.code : 'INTERNAL', message: (err as Error).message });
        reply.raw.end();
      }
      return reply;
    });

    v1.get('/v1/templates', async () => ({ templates: o.templates }));

    v1.get('/v1/hosts', async () => ({
      hosts: (await o.store.hosts()).map((h) => ({
        id: h.hostId,
        address: h.address,
        managerUrl: h.managerUrl,
        load: h.load,
        capacity: h.capacity,
        // stopped: its manager deregistered on purpose (a restart, an upgrade); its sandboxes run on.
        health: h.draining ? 'draining' : h.alive ? 'alive' : h.stoppedAtMs !== null && h.lostAtMs === null ? 'stopped' : 'lost',
        startedAt: h.startedAt,
        lostAt: h.lostAtMs ? new Date(h.lostAtMs).toISOString() : null,
      })),
    }));
  });
  return app;
}
