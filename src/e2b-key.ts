import { createHmac } from 'node:crypto';

/**
 * The E2B API key of an Omega whose API token is `token`: `e2b_` and 64 hex
 * digits, the form some E2B SDK releases insist on before sending anything.
 * It is derived from the token (an HMAC under it), so it needs no storage of
 * its own, the master and `omega up` compute the same one, and rotating the
 * token rotates it. The master's E2B API accepts it or the token itself.
 */
export function e2bApiKey(token: string): string {
  return `e2b_${createHmac('sha256', token).update('omega e2b api key v1').digest('hex')}`;
}
