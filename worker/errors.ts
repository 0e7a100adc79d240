import { WORKER_ERRORS, type WorkerErrorCode } from '../src/protocol/worker.js';

/** A failure with a stable protocol code (registry: src/protocol/worker.ts). */
export class WorkerError extends Error {
  readonly status: number;
  constructor(
    readonly code: WorkerErrorCode,
    message?: string,
    options?: { cause?: unknown },
  ) {
    super(message ?? WORKER_ERRORS[code].message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = 'WorkerError';
    this.status = WORKER_ERRORS[code].status;
  }
}

/** Map the errno codes of file operations to protocol codes; anything else is left to the caller. */
const ERRNO: Record<string, WorkerErrorCode> = {
  ENOENT: 'NOT_FOUND',
  EEXIST: 'ALREADY_EXISTS',
  ENOTDIR: 'NOT_A_DIRECTORY',
  EISDIR: 'IS_A_DIRECTORY',
  ENOTEMPTY: 'DIRECTORY_NOT_EMPTY',
  EACCES: 'PERMISSION_DENIED',
  EPERM: 'PERMISSION_DENIED',
  EROFS: 'PERMISSION_DENIED',
  ELOOP: 'PATH_OUTSIDE_WORKSPACE',
  ENAMETOOLONG: 'INVALID_PARAMS',
  EINVAL: 'INVALID_PARAMS',
};

/** A file-system error as a WorkerError naming the (workspace-relative) path. */
export function fsError(err: unknown, shownPath: string): unknown {
  const code = ERRNO[(err as NodeJS.ErrnoException)?.code ?? ''];
  if (!code) return err;
  return new WorkerError(code, `${WORKER_ERRORS[code].message}: ${shownPath || '.'}`, { cause: err });
}
