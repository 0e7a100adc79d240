import { Code, ConnectError } from '@connectrpc/connect';
import type { WorkerErrorCode } from '../../src/protocol/worker.js';
import { WorkerError } from '../errors.js';
import type { WorkerLogger } from '../log.js';

/**
 * The worker's error codes as the E2B agent's clients read them: a Connect
 * code for the RPCs (the SDK turns NotFound into FileNotFoundError or
 * NotFoundError, InvalidArgument into InvalidArgumentError, Unauthenticated
 * into AuthenticationError) and an HTTP status for /files (400, 401, 404 the
 * same). A path outside the home is PermissionDenied / 403: the SDK shows it
 * as a SandboxError with our message.
 */
const CONNECT_CODES: Record<WorkerErrorCode, Code> = {
  BAD_REQUEST: Code.InvalidArgument,
  UNKNOWN_METHOD: Code.Unimplemented,
  INVALID_PARAMS: Code.InvalidArgument,
  UNAUTHORIZED: Code.Unauthenticated,
  PATH_OUTSIDE_WORKSPACE: Code.PermissionDenied,
  PERMISSION_DENIED: Code.PermissionDenied,
  NOT_FOUND: Code.NotFound,
  NO_SUCH_TERMINAL: Code.NotFound,
  NO_SUCH_PROCESS: Code.NotFound,
  ALREADY_EXISTS: Code.AlreadyExists,
  ALREADY_CLAIMED: Code.AlreadyExists,
  NOT_A_DIRECTORY: Code.InvalidArgument,
  IS_A_DIRECTORY: Code.InvalidArgument,
  DIRECTORY_NOT_EMPTY: Code.InvalidArgument,
  PROCESS_EXITED: Code.FailedPrecondition,
  FILE_TOO_LARGE: Code.ResourceExhausted,
  LIMIT_REACHED: Code.ResourceExhausted,
  TOO_MANY_AUTH_FAILURES: Code.ResourceExhausted,
  GIT_FAILED: Code.Internal,
  SPAWN_FAILED: Code.Internal,
  INTERNAL: Code.Internal,
  PREVIEW_UNREACHABLE: Code.Unavailable,
};

/** HTTP statuses of /files where the worker's own differ: envd says 400 for a directory where a file was expected. */
const HTTP_STATUS: Partial<Record<WorkerErrorCode, number>> = {
  IS_A_DIRECTORY: 400,
  NOT_A_DIRECTORY: 400,
  DIRECTORY_NOT_EMPTY: 400,
};

/**
 * Any failure of an RPC as a ConnectError. A WorkerError keeps its message
 * (it names the client's path); anything else is logged here, once, and
 * answered Internal without its details, as the WebSocket dispatcher does.
 */
export function toConnectError(err: unknown, log: WorkerLogger, what: string): ConnectError {
  if (err instanceof ConnectError) return err;
  if (err instanceof WorkerError) return new ConnectError(err.message, CONNECT_CODES[err.code]);
  log.error({ err, rpc: what }, 'envd request failed');
  return new ConnectError('internal error', Code.Internal);
}

/** The status and message of a /files failure (the body is envd's `{code: <status>, message}`). */
export function httpError(err: unknown, log: WorkerLogger, what: string): { status: number; message: string } {
  if (err instanceof WorkerError) return { status: HTTP_STATUS[err.code] ?? err.status, message: err.message };
  log.error({ err, route: what }, 'envd request failed');
  return { status: 500, message: 'internal error' };
}
