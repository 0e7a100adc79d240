import { readFileSync } from 'node:fs';
import t from 'tap';
import { ERRORS, OmegaError } from '../../src/errors.js';

t.test('every error code is documented in docs/errors.md with its status', async (t) => {
  const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
  for (const [code, { status }] of Object.entries(ERRORS)) {
    t.match(doc, new RegExp(`\\| \`${code}\` \\| ${status} \\|`), `${code} documented with status ${status}`);
  }
});

t.test('OmegaError carries code, status, cause and the registry default message', async (t) => {
  const cause = new Error('boom');
  const e = new OmegaError('REDIS_UNAVAILABLE', undefined, { cause });
  t.equal(e.code, 'REDIS_UNAVAILABLE');
  t.equal(e.status, 503);
  t.equal(e.message, ERRORS.REDIS_UNAVAILABLE.message);
  t.equal(e.cause, cause);
});
