import { isMethod, PARAM_SCHEMAS, WORKER_ERRORS, type Method, type Params, type RequestId, type Response, type Result } from '../src/protocol/worker.js';
import type { Client } from './clients.js';
import { WorkerError } from './errors.js';
import type { WorkerLogger } from './log.js';
import { validate } from './validate.js';

export type Handlers = { [M in Method]: (params: Params<M>, client: Client) => Result<M> | Promise<Result<M>> };

/**
 * One request in, one response out, whatever the client sent: bad JSON, a
 * wrong shape, an unknown method or invalid params each get an error
 * response with a stable code; a handler's unexpected failure is logged here,
 * once, and answered INTERNAL without its details.
 */
export class Dispatcher {
  constructor(
    private readonly handlers: Handlers,
    private readonly log: WorkerLogger,
  ) {}

  async handle(raw: string, client: Client): Promise<Response> {
    let msg: unknown;
    try {
      msg = JSON.parse(raw);
    } catch {
      return fail(null, 'BAD_REQUEST', 'the message is not JSON');
    }
    if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) return fail(null, 'BAD_REQUEST', 'a request is a JSON object {id, method, params}');
    const { id, method, params } = msg as { id?: unknown; method?: unknown; params?: unknown };
    const validId = typeof id === 'string' ? id.length <= 128 : typeof id === 'number' && Number.isFinite(id);
    if (!validId) return fail(null, 'BAD_REQUEST', 'id must be a number or a string of at most 128 characters');
    const rid = id as RequestId;
    if (typeof method !== 'string') return fail(rid, 'BAD_REQUEST', 'method must be a string');
    if (!isMethod(method)) return fail(rid, 'UNKNOWN_METHOD', `no such method: ${method.slice(0, 100)}`);
    const p = params === undefined ? {} : params;
    const problem = validate(PARAM_SCHEMAS[method], p);
    if (problem) return fail(rid, 'INVALID_PARAMS', problem);
    try {
      const handler = this.handlers[method] as (params: unknown, client: Client) => unknown;
      const result = await handler(p, client);
      return { id: rid, result: result as Result<Method> };
    } catch (err) {
      if (err instanceof WorkerError) return fail(rid, err.code, err.message);
      this.log.error({ err, method, clientId: client.id }, 'request failed');
      return fail(rid, 'INTERNAL', WORKER_ERRORS.INTERNAL.message);
    }
  }
}

function fail(id: RequestId | null, code: keyof typeof WORKER_ERRORS, message: string): Response {
  return { id, error: { code, message } };
}
