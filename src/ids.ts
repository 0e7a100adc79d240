import { randomBytes } from 'node:crypto';

/**
 * The names the master mints for a sandbox. Every API accepts any DNS label
 * as an id (SANDBOX_ID_PATTERN in src/protocol/worker.ts); the master's own
 * are this narrower form, so what it made can be told from what it did not
 * (the reconciler leaves other names in the zone alone).
 */

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

/** 16 base32 characters, a letter first: 80 random bits as one lower-case DNS label. */
export const SANDBOX_ID_FORMAT = /^[a-z][a-z2-7]{15}$/;

export function newSandboxId(): string {
  const bytes = randomBytes(16);
  let out = BASE32[bytes[0]! % 26]!;
  for (let i = 1; i < 16; i++) out += BASE32[bytes[i]! & 31]!;
  return out;
}

/** What the worker accepts: 256 random bits. */
export function newSandboxToken(): string {
  return randomBytes(32).toString('base64url');
}
