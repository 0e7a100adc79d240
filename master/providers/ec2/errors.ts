import { OmegaError } from '../../../src/errors.js';

/** The name of an AWS error (its code: `InvalidInstanceID.NotFound`, `RequestLimitExceeded`). */
export function awsErrorName(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'name' in err && typeof err.name === 'string' ? err.name : undefined;
}

/** An AWS failure as PROVIDER_FAILED, its message naming the operation and AWS's error code. */
export function awsFailure(operation: string, err: unknown): OmegaError {
  if (err instanceof OmegaError) return err;
  const name = awsErrorName(err) ?? 'Error';
  const message = err instanceof Error ? err.message : String(err);
  const requestId = (err as { $metadata?: { requestId?: string } } | null)?.$metadata?.requestId;
  return new OmegaError('PROVIDER_FAILED', `ec2 ${operation} failed: ${name}: ${message}`, {
    cause: err,
    details: { operation, awsError: name, ...(requestId ? { requestId } : {}) },
  });
}
