import { readFileSync } from 'node:fs';
import t from 'tap';
import {
  EVENT_NAMES,
  METHOD_NAMES,
  PREVIEW_COOKIE,
  PREVIEW_TOKEN_PARAM,
  PROTOCOL_VERSION,
  SUBPROTOCOL,
  TOKEN_SUBPROTOCOL_PREFIX,
  WORKER_ERRORS,
} from '../../src/protocol/worker.js';

const doc = readFileSync(new URL('../../docs/worker-protocol.md', import.meta.url), 'utf8');
const lines = doc.split('\n');
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The first cell of every table row, when it is one `code span`. */
const firstCells = lines.map((l) => /^\| `([^`]+)` \|/.exec(l)?.[1]).filter((c): c is string => c !== undefined);

t.test('every method has a row in docs/worker-protocol.md', async (t) => {
  for (const m of METHOD_NAMES) t.ok(firstCells.includes(m), `method ${m} documented`);
});

t.test('every event has a row in docs/worker-protocol.md', async (t) => {
  for (const e of EVENT_NAMES) t.ok(firstCells.includes(e), `event ${e} documented`);
});

t.test('every worker error code has a row with its HTTP status', async (t) => {
  for (const [code, { status }] of Object.entries(WORKER_ERRORS)) {
    t.match(doc, new RegExp(`^\\| \`${code}\` \\| ${status} \\|`, 'm'), `${code} documented with status ${status}`);
  }
});

t.test('the doc names no method, event or error code the code lacks', async (t) => {
  const known = new Set<string>([...METHOD_NAMES, ...EVENT_NAMES]);
  // Other tables start rows with parameter names (`id`, `env`); a dotted name is always a method or an event.
  for (const name of firstCells.filter((c) => /^[a-z]+\.[a-zA-Z]+$/.test(c))) t.ok(known.has(name), `${name} exists in src/protocol/worker.ts`);
  for (const l of lines) {
    const code = /^\| `([A-Z_]+)` \| \d{3} \|/.exec(l)?.[1];
    if (code) t.ok(Object.hasOwn(WORKER_ERRORS, code), `${code} exists in WORKER_ERRORS`);
  }
});

t.test('the constants a client needs are spelled as in the code', async (t) => {
  t.match(doc, new RegExp(`Protocol version: \`${PROTOCOL_VERSION}\``), 'protocol version');
  for (const s of [SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX, PREVIEW_COOKIE, `?${PREVIEW_TOKEN_PARAM}=`, '?token=', '/healthz', '/_omega/claim']) {
    t.match(doc, new RegExp(escape(s)), `mentions ${s}`);
  }
});
