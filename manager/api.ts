import type { FastifyInstance, FastifyReply } from 'fastify';
import { Registry, Counter, Gauge, Histogram, collectDefaultMetrics } from 'prom-client';
import { bearerAuth, createHttpApp } from '../src/http.js';
import type { Logger } from '../src/log.js';
import {
  createSandboxBodySchema,
  deleteSandboxQuerySchema,
  sandboxIdParamsSchema,
  snapshotBodySchema,
  workspaceParamsSchema,
  type CreateSandboxRequest,
} from '../src/protocol/manager.js';
import { redisConnectionErrors } from '../src/redis/errors.js';
import { pauseBodySchema } from '../src/protocol/master.js';
import { poolCreates, poolWaitSeconds, type WarmPool } from './pool.js';
import type { Sandboxes } from './sandboxes.js';
import type { Workspaces } from './workspaces.js';

export interface ManagerApiOptions {
  sandboxes: Sandboxes;
  workspaces: Workspaces;
  pool: WarmPool;
  token: string | undefined;
  status(): { docker: boolean; redis: boolean; registered: boolean; hostId: string };
  /** OMEGA_MAX_CONNECTIONS_PER_SOURCE. */
  maxConnectionsPerSource?: number;
  log: Logger;
}

/**
 * Aborted when the caller goes away before its answer (a master that dies or
 * gives up): a snapshot nobody will record stops, and leaves nothing.
 */
function callerGone(reply: FastifyReply): AbortSignal {
  const gone = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) gone.abort(new Error('the caller went away before its answer'));
  });
  return gone.signal;
}

export function buildManagerApi(o: ManagerApiOptions): FastifyInstance {
  const app = createHttpApp(o.log, { maxConnectionsPerSource: o.maxConnectionsPerSource });
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  registry.registerMetric(redisConnectionErrors);
  const creates = new Counter({ name: 'omega_manager_creates_total', help: 'Sandbox creates, by source and outcome', labelNames: ['source', 'outcome'] as const, registers: [registry] });
  const createSeconds = new Histogram({
    name: 'omega_manager_create_seconds',
    help: 'Time to a ready sandbox, by source',
    labelNames: ['source'] as const,
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
    registers: [registry],
  });
  registry.registerMetric(poolWaitSeconds);
  const poolGauge = (name: string, help: string, field: 'ready' | 'target' | 'starting') =>
    new Gauge({
      name,
      help,
      labelNames: ['template'] as const,
      registers: [registry],
      collect() {
        for (const [t, s] of Object.entries(o.pool.stats())) this.set({ template: t }, s[field]);
      },
    });
  poolGauge('omega_manager_pool_ready', 'Warm containers ready, by template', 'ready');
  poolGauge('omega_manager_pool_starting', 'Warm containers being started, by template', 'starting');
  poolGauge('omega_manager_pool_target', 'What the pool aims to hold now (between OMEGA_POOL_SIZE and OMEGA_POOL_MAX, following demand), by template', 'target');
  registry.registerMetric(poolCreates);

  app.get('/healthz', async (_req, reply) => {
    const s = o.status();
    const ok = s.docker && s.redis && s.registered;
    return reply.status(ok ? 200 : 503).send({
      status: ok ? 'ok' : 'unavailable',
      hostId: s.hostId,
      docker: s.docker ? 'up' : 'down',
      redis: s.redis ? 'up' : 'down',
      registered: s.registered,
      pool: o.pool.stats(),
    });
  });
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', registry.contentType);
    return registry.metrics();
  });

  app.register(async (v1) => {
    v1.addHook('onRequest', bearerAuth(o.token));

    v1.post<{ Body: CreateSandboxRequest }>('/v1/sandboxes', { schema: { body: createSandboxBodySchema } }, async (req, reply) => {
      const started = process.hrtime.bigint();
      try {
        const info = await o.sandboxes.create(req.body);
        creates.inc({ source: info.source, outcome: 'ok' });
        createSeconds.observe({ source: info.source }, Number(process.hrtime.bigint() - started) / 1e9);
        return reply.status(201).send(info);
      } catch (err) {
        creates.inc({ source: 'unknown', outcome: 'error' });
        throw err;
      }
    });

    v1.delete<{ Params: { id: string }; Querystring: { keepVolume: boolean } }>(
      '/v1/sandboxes/:id',
      { schema: { params: sandboxIdParamsSchema, querystring: deleteSandboxQuerySchema } },
      async (req) => ({ id: req.params.id, deleted: await o.sandboxes.delete(req.params.id, req.query.keepVolume) }),
    );

    v1.post<{ Params: { id: string }; Body: { memory?: boolean } | null }>(
      '/v1/sandboxes/:id/pause',
      { schema: { params: sandboxIdParamsSchema, body: pauseBodySchema } },
      async (req) => o.sandboxes.pause(req.params.id, req.body?.memory === false ? 'stopped' : 'memory'),
    );

    v1.post<{ Params: { id: string } }>('/v1/sandboxes/:id/resume', { schema: { params: sandboxIdParamsSchema } }, async (req) => o.sandboxes.resume(req.params.id));

    v1.post<{ Params: { id: string }; Body: { key: string } }>(
      '/v1/sandboxes/:id/snapshots',
      { schema: { params: sandboxIdParamsSchema, body: snapshotBodySchema } },
      async (req, reply) => o.sandboxes.snapshot(req.params.id, req.body.key, callerGone(reply)),
    );

    v1.get<{ Params: { id: string } }>('/v1/sandboxes/:id/metrics', { schema: { params: sandboxIdParamsSchema } }, async (req) => o.sandboxes.metrics(req.params.id));

    v1.get('/v1/sandboxes', async () => ({ sandboxes: await o.sandboxes.list() }));

    v1.get('/v1/workspaces', async () => ({ workspaces: await o.workspaces.list() }));
    v1.post<{ Params: { name: string }; Body: { key: string } }>(
      '/v1/workspaces/:name/snapshots',
      { schema: { params: workspaceParamsSchema, body: snapshotBodySchema } },
      async (req, reply) => o.workspaces.snapshot(req.params.name, req.body.key, callerGone(reply)),
    );
    v1.delete<{ Params: { name: string } }>('/v1/workspaces/:name', { schema: { params: workspaceParamsSchema } }, async (req) => ({
      name: req.params.name,
      deleted: await o.workspaces.remove(req.params.name),
    }));
  });
  return app;
}
