import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { e2bApiKey } from '../../src/e2b-key.js';
import { OmegaError } from '../../src/errors.js';
import type { Logger } from '../../src/log.js';
import { isRedisUnavailable } from '../../src/redis/connection.js';
import { FailureLimiter } from '../../src/throttle.js';
import type { SandboxView, Sandboxes } from '../sandboxes.js';
import type { Store } from '../store.js';
import { createRequestOf, detailOf, e2bState, listedOf, metadataFilter, metricOf, metricsQuery, newSandboxSchema, sandboxIdParams, sandboxOf, type NewSandbox } from './shapes.js';

export interface E2bApiOptions {
  sandboxes: Sandboxes;
  store: Store;
  /** The master's API token: it, or its E2B key (src/e2b-key.ts), opens these routes. None: open (a dev run). */
  token: string | undefined;
  zone: string;
  /** The template E2B's default `base` stands for, unless one is named base. */
  baseTemplate: string;
  templates: readonly string[];
  log: Logger;
}

const digest = (s: string) => createHash('sha256').update(s).digest();
const E2B_STATES = ['running', 'paused'] as const;
/** Sandboxes GET /sandboxes (the v1 list, unpaged) returns at most. */
const V1_LIST_MAX = 1000;

type Id = { Params: { sandboxID: string } };

/**
 * The E2B REST API beside Omega's /v1 (docs/e2b.md): the routes the `e2b`
 * SDK calls, each a translation onto master/sandboxes.ts. Errors are E2B's
 * `{code: <HTTP status>, message}` (the SDK reads `code` 404 and 409 in the
 * body); the key is checked before any body is read.
 */
export function registerE2bApi(app: FastifyInstance, o: E2bApiOptions): void {
  const { sandboxes, zone } = o;
  app.register(async (api) => {
    api.setErrorHandler((err: FastifyError, req, reply) => {
      if (err instanceof OmegaError) return send(reply, err.status, err.message, err.details?.retryAfterSeconds);
      if (err.validation) return send(reply, 400, err.message);
      if (isRedisUnavailable(err)) return send(reply, 503, 'the state store (Redis) cannot be reached; try again shortly', 1);
      const status = err.statusCode ?? 500;
      if (status >= 400 && status < 500) return send(reply, status, err.message);
      req.log.error({ err }, 'request failed');
      return send(reply, 500, 'internal error');
    });
    api.addHook('onRequest', apiKeyAuth(o.token));

    /** A sandbox the E2B API can see: not one being deleted or lost (E2B has no such states). */
    const visible = async (id: string): Promise<SandboxView> => {
      const v = await sandboxes.get(id);
      if (v.state === 'deleting' || v.state === 'lost') throw new OmegaError('SANDBOX_NOT_FOUND', `sandbox ${id} not found`);
      return v;
    };
    /** The sandbox's token, read from its host's container table (the master keeps none): a connect gives it, as a create does. */
    const tokenOf = async (v: SandboxView): Promise<string | null> => {
      const token = (await o.store.containers(v.host)).get(v.id)?.token ?? null;
      if (!token) o.log.warn({ sandboxId: v.id, host: v.host }, 'no token in the host\'s container row; the E2B client cannot reach the agent');
      return token;
    };

    const create = async (req: FastifyRequest<{ Body: NewSandbox }>, reply: FastifyReply) => {
      if (req.body.mcp) throw new OmegaError('VALIDATION_FAILED', 'MCP gateways are not available on Omega');
      const base = req.body.templateID === 'base' && !o.templates.includes('base') ? o.baseTemplate : null;
      const created = await sandboxes.create(createRequestOf(req.body, base));
      return reply.status(201).send(sandboxOf(created, zone, created.token));
    };
    api.post<{ Body: NewSandbox }>('/sandboxes', { schema: { body: newSandboxSchema } }, create);
    api.post<{ Body: NewSandbox }>('/v2/sandboxes', { schema: { body: newSandboxSchema } }, create);

    api.get<Id>('/sandboxes/:sandboxID', { schema: { params: sandboxIdParams } }, async (req) => detailOf(await visible(req.params.sandboxID), zone));

    api.get<{ Querystring: { metadata?: string } }>('/sandboxes', async (req) => {
      const out = [];
      let cursor: string | undefined;
      do {
        const page = await sandboxes.list({ state: 'running', metadata: metadataFilter(req.query.metadata) }, 100, cursor);
        out.push(...page.sandboxes.map(listedOf));
        cursor = page.nextCursor ?? undefined;
      } while (cursor && out.length < V1_LIST_MAX);
      return out;
    });

    api.get<{ Querystring: { metadata?: string; state?: string | string[]; limit?: number; nextToken?: string } }>(
      '/v2/sandboxes',
      { schema: { querystring: { type: 'object', properties: { limit: { type: 'integer', minimum: 1, maximum: 100 }, nextToken: { type: 'string', maxLength: 200 } } } } },
      async (req, reply) => {
        const q = req.query;
        const states = [q.state ?? []].flat().flatMap((s) => s.split(',')).filter(Boolean);
        const bad = states.find((s) => !(E2B_STATES as readonly string[]).includes(s));
        if (bad) throw new OmegaError('VALIDATION_FAILED', `state ${JSON.stringify(bad)}: running or paused`);
        const page = await sandboxes.list({ metadata: metadataFilter(q.metadata) }, q.limit ?? 100, q.nextToken);
        // Filtered after the page is cut: a page may be short, and the next token still goes on from where it ended.
        const shown = page.sandboxes.filter((v) => v.state !== 'deleting' && v.state !== 'lost' && (states.length === 0 || states.includes(e2bState(v.state))));
        if (page.nextCursor) reply.header('x-next-token', page.nextCursor);
        return shown.map(listedOf);
      },
    );

    api.delete<Id>('/sandboxes/:sandboxID', { schema: { params: sandboxIdParams } }, async (req, reply) => {
      if (!(await sandboxes.delete(req.params.sandboxID))) throw new OmegaError('SANDBOX_NOT_FOUND', `sandbox ${req.params.sandboxID} not found`);
      return reply.status(204).send();
    });

    api.post<Id & { Body: { timeout: number } }>(
      '/sandboxes/:sandboxID/timeout',
      { schema: { params: sandboxIdParams, body: { type: 'object', required: ['timeout'], properties: { timeout: { type: 'integer', minimum: 0 } } } } },
      async (req, reply) => {
        await sandboxes.extend(req.params.sandboxID, Math.max(1, req.body.timeout));
        return reply.status(204).send();
      },
    );

    api.post<Id & { Body: { memory?: boolean } | null }>('/sandboxes/:sandboxID/pause', { schema: { params: sandboxIdParams } }, async (req, reply) => {
      const v = await visible(req.params.sandboxID);
      // The SDK reads 409 as "already paused" and answers false.
      if (e2bState(v.state) === 'paused') return send(reply, 409, `sandbox ${v.id} is already paused`);
      await sandboxes.pause(v.id, req.body?.memory === false ? 'stopped' : 'memory');
      return reply.status(204).send();
    });

    /** Connect: a running sandbox as it is (200), a paused one resumed (201); a `timeout` sets its time left from now. */
    const connect = async (req: FastifyRequest<Id & { Body: { timeout?: number } | null }>, reply: FastifyReply) => {
      let v = await visible(req.params.sandboxID);
      const resumed = e2bState(v.state) === 'paused';
      if (resumed) v = await sandboxes.resume(v.id);
      if (req.body?.timeout) v = await sandboxes.extend(v.id, req.body.timeout);
      return reply.status(resumed ? 201 : 200).send(sandboxOf(v, zone, await tokenOf(v)));
    };
    api.post<Id & { Body: { timeout?: number } | null }>('/sandboxes/:sandboxID/connect', { schema: { params: sandboxIdParams } }, connect);
    api.post<Id & { Body: { timeout?: number } | null }>('/v2/sandboxes/:sandboxID/connect', { schema: { params: sandboxIdParams } }, connect);

    // The older resume: 409 when it runs.
    api.post<Id>('/sandboxes/:sandboxID/resume', { schema: { params: sandboxIdParams } }, async (req, reply) => {
      const v = await visible(req.params.sandboxID);
      if (e2bState(v.state) === 'running') return send(reply, 409, `sandbox ${v.id} is already running`);
      const resumed = await sandboxes.resume(v.id);
      return reply.status(201).send(sandboxOf(resumed, zone, await tokenOf(resumed)));
    });

    // A series of one: what its host measures now (Omega keeps no history), empty when that is outside
    // [start, end] (unix seconds) or the sandbox has no container running.
    api.get<Id & { Querystring: { start?: number; end?: number } }>('/sandboxes/:sandboxID/metrics', { schema: { params: sandboxIdParams, querystring: metricsQuery } }, async (req) => {
      const v = await visible(req.params.sandboxID);
      if (e2bState(v.state) !== 'running') return [];
      const m = await sandboxes.metrics(v.id);
      const at = Math.floor(m.atMs / 1000);
      if ((req.query.start !== undefined && at < req.query.start) || (req.query.end !== undefined && at > req.query.end)) return [];
      return [metricOf(m)];
    });
  });
}

/** E2B's error body: `{code: <status>, message}`; Retry-After on 429 and 503. */
function send(reply: FastifyReply, status: number, message: string, retryAfterSeconds?: unknown): FastifyReply {
  if (status === 429 || status === 503) reply.header('retry-after', String(retryAfterSeconds ?? 1));
  return reply.status(status).send({ code: status, message });
}

/**
 * `X-API-KEY` (the SDK's) or `Authorization: Bearer` (its access-token
 * option): the master's token or its E2B key. Failures count against the
 * source as on /v1: past the limit, 429 without looking at the key.
 */
function apiKeyAuth(token: string | undefined, failures = new FailureLimiter()): (req: FastifyRequest) => Promise<void> {
  const accepted = token ? [digest(token), digest(e2bApiKey(token))] : null;
  return async (req) => {
    if (!accepted) return;
    const retryAfterSeconds = failures.retryAfterSeconds(req.ip);
    if (retryAfterSeconds > 0) throw new OmegaError('TOO_MANY_AUTH_FAILURES', undefined, { details: { retryAfterSeconds } });
    const header = req.headers['x-api-key'];
    const offered = typeof header === 'string' ? header : /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '')?.[1];
    const d = offered ? digest(offered) : null;
    if (!d || !accepted.some((a) => timingSafeEqual(a, d))) {
      failures.failed(req.ip);
      throw new OmegaError('UNAUTHORIZED', 'a valid X-API-KEY (the Omega API token, or its e2b_ key) is required');
    }
  };
}
