/**
 * Every error Omega reports to a client has a stable code, an HTTP status and
 * a default message, all in this one registry; docs/errors.md documents each
 * code and a test checks the two agree.
 */
export const ERRORS = {
  VALIDATION_FAILED: { status: 400, message: 'The request is not valid' },
  INVALID_NAME: { status: 400, message: 'The name is not a valid DNS name' },
  NAME_OUTSIDE_ZONE: { status: 400, message: 'The name is not inside the zone' },
  RESERVED_NAME: { status: 400, message: 'The name is managed by the server and cannot be changed' },
  INVALID_RECORD: { status: 400, message: 'A record value is not valid for its type' },
  UNAUTHORIZED: { status: 401, message: 'A valid bearer token is required' },
  TOO_MANY_AUTH_FAILURES: { status: 429, message: 'Too many wrong or missing tokens from this address; retry after the time Retry-After says' },
  NOT_FOUND: { status: 404, message: 'No such resource' },
  RECORD_NOT_FOUND: { status: 404, message: 'No such record' },
  UNKNOWN_TEMPLATE: { status: 400, message: 'No such sandbox template' },
  GIT_FAILED: { status: 422, message: 'The repository could not be cloned into the sandbox' },
  SANDBOX_NOT_FOUND: { status: 404, message: 'No such sandbox' },
  SANDBOX_EXISTS: { status: 409, message: 'A sandbox with this id exists with different settings' },
  SNAPSHOT_NOT_FOUND: { status: 404, message: 'No such snapshot' },
  SNAPSHOT_FAILED: { status: 502, message: 'The workspace could not be written to or read from the snapshot store' },
  WORKSPACE_NOT_FOUND: { status: 404, message: 'No such workspace' },
  WORKSPACE_BUSY: { status: 409, message: 'The workspace is attached to a running sandbox; one sandbox at a time' },
  WORKSPACE_UNAVAILABLE: { status: 503, message: 'The workspace\'s host is gone and it has no snapshot to come back from' },
  SANDBOX_BUSY: { status: 409, message: 'The sandbox is changing state (being created, paused, resumed or deleted); retry once it has' },
  HOST_AT_CAPACITY: { status: 503, message: 'This host runs as many sandboxes as it may' },
  DOCKER_UNAVAILABLE: { status: 503, message: 'The Docker engine cannot be reached' },
  SANDBOX_START_FAILED: { status: 502, message: 'The sandbox container did not become ready' },
  NO_CAPACITY: { status: 503, message: 'No host has room for a sandbox and no new host can be added now; retry later' },
  PROVIDER_FAILED: { status: 502, message: 'The host provider could not start a new host' },
  MANAGER_UNAVAILABLE: { status: 502, message: 'The host manager did not answer' },
  LIMIT_REACHED: { status: 429, message: 'The sandbox runs as many terminals and processes as it may' },
  WORKER_UNAVAILABLE: { status: 502, message: 'The sandbox\'s worker could not be reached' },
  WORKER_FAILED: { status: 502, message: 'The sandbox\'s worker failed the request' },
  DNS_UNAVAILABLE: { status: 502, message: 'The DNS server did not accept the record change' },
  CERTIFICATE_FAILED: { status: 502, message: 'The TLS certificate could not be obtained or renewed' },
  REDIS_UNAVAILABLE: { status: 503, message: 'The state store (Redis) cannot be reached; try again shortly' },
  INTERNAL: { status: 500, message: 'Internal error' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERRORS;

export class OmegaError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message?: string,
    options?: { cause?: unknown; details?: Record<string, unknown> },
  ) {
    super(message ?? ERRORS[code].message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = 'OmegaError';
    this.status = ERRORS[code].status;
    this.details = options?.details;
  }
  readonly details: Record<string, unknown> | undefined;
}

export function isOmegaError(err: unknown, code?: ErrorCode): err is OmegaError {
  return err instanceof OmegaError && (code === undefined || err.code === code);
}
