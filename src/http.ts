import { createHash, timingSafeEqual } from 'node:crypto';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { ERRORS, OmegaError } from './errors.js';
import type { Logger } from './log.js';
import { isRedisUnavailable } from './redis/connection.js';
import { FailureLimiter, limitConnectionsPerSource, refusalWarner } from './throttle.js';

/**
 * A fastify instance with Omega's error envelope:
 *   {statusCode, code, error, message}
 * for OmegaErrors, schema failures (400 VALIDATION_FAILED), Redis out of reach
 * (503 REDIS_UNAVAILABLE) and anything else (500 INTERNAL, logged once here,
 * its details never sent to the client).
 */
/**
 * `https`: serve TLS; the certificate is set later with the server's
 * setSecureContext (it comes from Redis, and is swapped on renewal without
 * dropping a connection). `maxConnectionsPerSource`: connections one address
 * may hold open (OMEGA_MAX_CONNECTIONS_PER_SOURCE; 0 or unset: no limit).
 */
export function createHttpApp(log: Logger, opts: { https?: boolean; maxConnectionsPerSource?: number } = {}): FastifyInstance {
  const app = Fastify({
    ...(opts.https ? { https: {} } : {}),
    loggerInstance: log as FastifyBaseLogger,
    // Per-request lines at debug (below), not fastify's two info lines per request.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 1 << 20,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', allErrors: false } },
  });
  const limit = opts.maxConnectionsPerSource ?? 0;
  limitConnectionsPerSource(app.server, limit, refusalWarner((f) => log.warn(f, 'refusing connections past the per-source limit'), limit));
  app.addHook('onResponse', async (req, reply) => {
    req.log.debug({ method: req.method, url: req.routeOptions.url, status: reply.statusCode, ms: reply.elapsedTime }, 'request');
  });
  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (err instanceof OmegaError) return sendError(reply, err);
    if (err.validation) {
      return sendError(reply, new OmegaError('VALIDATION_FAILED', err.message));
    }
    if (isRedisUnavailable(err)) {
      // Redis away or failing over: the client may retry shortly (Retry-After), which a 500 would not say.
      req.log.warn({ err }, 'redis unavailable');
      return sendError(reply, new OmegaError('REDIS_UNAVAILABLE', undefined, { cause: err }));
    }
    const status = err.statusCode ?? 500;
    if (status >= 400 && status < 500) {
      // fastify's own 4xx (bad JSON, wrong content type, body too large)
      return reply.status(status).send({ statusCode: status, code: err.code ?? 'BAD_REQUEST', error: httpReason(status), message: err.message });
    }
    req.log.error({ err }, 'request failed');
    return sendError(reply, new OmegaError('INTERNAL'));
  });
  app.setNotFoundHandler((req, reply) => sendError(reply, new OmegaError('NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`)));
  return app;
}

export function sendError(reply: FastifyReply, err: OmegaError): FastifyReply {
  if (err.status === 503 || err.status === 429) reply.header('retry-after', String(err.details?.retryAfterSeconds ?? 1));
  if (err.status === 401) reply.header('www-authenticate', 'Bearer');
  return reply
    .status(err.status)
    .send({ statusCode: err.status, code: err.code, error: httpReason(err.status), message: err.message, ...(err.details ?? {}) });
}

function httpReason(status: number): string {
  return (
    {
      400: 'Bad Request',
      401: 'Unauthorized',
      404: 'Not Found',
      409: 'Conflict',
      413: 'Payload Too Large',
      415: 'Unsupported Media Type',
      422: 'Unprocessable Entity',
      429: 'Too Many Requests',
      500: 'Internal Server Error',
      502: 'Bad Gateway',
      503: 'Service Unavailable',
    }[status] ??
    'Error'
  );
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/**
 * Demands `Authorization: Bearer <token>`, as an `onRequest` hook: it runs
 * before the body is read or validated, so a stranger gets 401 for any
 * request and the server parses nothing of theirs (a preHandler would run
 * after both). Both sides are hashed first so the comparison is
 * constant-time whatever the lengths. With no token configured (an explicit
 * dev run) every request passes. An address that has failed too often
 * (`failures`, per API) gets 429 with Retry-After, its token not looked at.
 */
export function bearerAuth(token: string | undefined, failures = new FailureLimiter()): (req: FastifyRequest) => Promise<void> {
  const expected = token ? digest(token) : null;
  return async (req) => {
    if (!expected) return;
    const retryAfterSeconds = failures.retryAfterSeconds(req.ip);
    if (retryAfterSeconds > 0) throw new OmegaError('TOO_MANY_AUTH_FAILURES', undefined, { details: { retryAfterSeconds } });
    const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
    if (!m || !timingSafeEqual(digest(m[1]!), expected)) {
      failures.failed(req.ip);
      throw new OmegaError('UNAUTHORIZED');
    }
  };
}

export { ERRORS };
