import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { TOKEN_SUBPROTOCOL_PREFIX } from '../src/protocol/worker.js';

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Constant-time equality whatever the lengths: both sides are hashed first. */
export function secretEquals(candidate: string | undefined | null, expected: string | undefined | null): boolean {
  if (!candidate || !expected) return false;
  return timingSafeEqual(digest(candidate), digest(expected));
}

/**
 * Who this worker serves: the sandbox token and id, from the environment or
 * set once by a claim. Until a token is known every request but /healthz and
 * the claim is refused.
 */
export class Credentials {
  private token: string | null;
  sandboxId: string | null;

  constructor(token: string | undefined, sandboxId: string | undefined) {
    this.token = token ?? null;
    this.sandboxId = sandboxId ?? null;
  }

  get claimed(): boolean {
    return this.token !== null;
  }

  claim(sandboxId: string, token: string): void {
    this.sandboxId = sandboxId;
    this.token = token;
  }

  check(candidate: string | undefined | null): boolean {
    return secretEquals(candidate, this.token);
  }

  /**
   * Whether `signature` signs a file URL of the E2B agent under this token:
   * `v1_` and the unpadded base64 SHA-256 of `path:operation:user:token`,
   * `:expiration` appended when the URL has one (the SDK's uploadUrl and
   * downloadUrl), so a URL opens one file for one operation without the token.
   */
  checkFileSignature(signature: string, url: { path: string; operation: 'read' | 'write'; user: string; expiration: string | null }): boolean {
    if (!this.token) return false;
    const raw = `${url.path}:${url.operation}:${url.user}:${this.token}${url.expiration !== null ? `:${url.expiration}` : ''}`;
    return secretEquals(signature, `v1_${createHash('sha256').update(raw).digest('base64').replace(/=+$/, '')}`);
  }

  /**
   * The preview cookie's value for one host: an HMAC of the host under the
   * token, so the cookie opens that preview only and never reveals the token.
   */
  previewCookie(host: string): string | null {
    return this.token ? createHmac('sha256', this.token).update(`preview:${host}`).digest('base64url') : null;
  }
}

export function bearer(req: IncomingMessage): string | undefined {
  return /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '')?.[1];
}

/** The subprotocols a WebSocket client offered, in order. */
export function offeredProtocols(req: IncomingMessage): string[] {
  return (req.headers['sec-websocket-protocol'] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/**
 * A WebSocket client's token: `Authorization: Bearer`, else the subprotocol
 * `omega.token.<token>` (browsers cannot set headers on a WebSocket), else `?token=`.
 */
export function upgradeToken(req: IncomingMessage): string | undefined {
  const fromHeader = bearer(req);
  if (fromHeader) return fromHeader;
  const proto = offeredProtocols(req).find((p) => p.startsWith(TOKEN_SUBPROTOCOL_PREFIX));
  if (proto) return proto.slice(TOKEN_SUBPROTOCOL_PREFIX.length);
  return new URL(req.url ?? '/', 'http://x').searchParams.get('token') ?? undefined;
}

export function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0) out.set(part.slice(0, i).trim(), part.slice(i + 1).trim());
  }
  return out;
}
