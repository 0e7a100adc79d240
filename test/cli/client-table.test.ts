import t from 'tap';
import { colorWanted, renderFields, renderTable, shortDuration } from '../../cli/client/table.js';
import { sandboxFields } from '../../cli/client/views.js';

const strip = (s: string) => s.replace(/\u001b\[\d+m/g, '');

t.test('columns padded to the widest cell, two spaces apart, no trailing spaces', async (t) => {
  const rows = [{ a: 'x', b: '1', c: 'last' }, { a: 'longer', b: '22', c: '' }];
  const cols = [
    { header: 'A', value: (r: (typeof rows)[0]) => r.a },
    { header: 'NUM', value: (r: (typeof rows)[0]) => r.b, align: 'right' as const },
    { header: 'C', value: (r: (typeof rows)[0]) => r.c },
  ];
  t.equal(renderTable(rows, cols, { color: false }), ['A       NUM  C', 'x         1  last', 'longer   22'].join('\n'));
  t.equal(renderTable([], cols, { color: false }), 'A  NUM  C', 'header only when empty');
});

t.test('colors: only for a terminal without NO_COLOR, and they do not move the columns', async (t) => {
  t.equal(colorWanted({ isTTY: true }, {}), true);
  t.equal(colorWanted({ isTTY: false }, {}), false);
  t.equal(colorWanted({}, {}), false);
  t.equal(colorWanted({ isTTY: true }, { NO_COLOR: '1' }), false);
  const rows = [{ s: 'running' }, { s: 'lost' }];
  const cols = [{ header: 'STATE', value: (r: { s: string }) => r.s, color: (r: { s: string }) => (r.s === 'lost' ? ('red' as const) : undefined) }, { header: 'X', value: () => 'x' }];
  const colored = renderTable(rows, cols, { color: true });
  t.match(colored, '\u001b[31mlost\u001b[39m');
  t.equal(strip(colored), renderTable(rows, cols, { color: false }));
  t.equal(strip(renderFields([['id', 'abc', 'bold']], { color: true })), 'id  abc');
});

t.test('durations: the largest unit and the next', async (t) => {
  const cases: Array<[number, string]> = [
    [0, '0s'],
    [-5000, '0s'],
    [999, '0s'],
    [45_000, '45s'],
    [60_000, '1m'],
    [90_000, '1m30s'],
    [3_600_000, '1h'],
    [3_661_000, '1h1m'],
    [86_400_000 + 5_000, '1d'],
    [3 * 86_400_000 + 4 * 3_600_000, '3d4h'],
  ];
  for (const [ms, text] of cases) t.equal(shortDuration(ms), text, `${ms} ms`);
});

t.test('a sandbox\'s fields: the token only when asked for', async (t) => {
  const now = Date.parse('2030-01-01T00:00:00Z');
  const s = {
    id: 'abcdefghijklmnop',
    state: 'running' as const,
    template: 'python',
    hostname: 'abcdefghijklmnop.sandbox.test',
    port: 32768,
    url: 'ws://abcdefghijklmnop.sandbox.test:32768',
    previewUrl: 'http://{port}.abcdefghijklmnop.sandbox.test:32768/',
    host: 'h1',
    address: '10.0.0.1',
    createdAt: '2029-12-31T23:59:00.000Z',
    expiresAt: '2030-01-01T00:15:00.000Z',
    idleSeconds: null,
    metadata: {},
    token: 'sekret-token-value',
    source: 'pool' as const,
  };
  const hidden = sandboxFields(s, { color: false, token: 'hide', now });
  t.notMatch(hidden, 'sekret');
  t.match(hidden, /^token\s+not shown: .*--show-token/m);
  t.match(hidden, /^host\s+h1 \(10\.0\.0\.1\)$/m);
  t.match(hidden, /^created\s+2029-12-31T23:59:00\.000Z \(1m ago\)$/m);
  t.match(hidden, /^expires\s+2030-01-01T00:15:00\.000Z \(in 15m\)$/m);
  t.match(sandboxFields(s, { color: false, token: 'show', now }), /^token\s+sekret-token-value$/m);
  t.notMatch(sandboxFields(s, { color: false, now }), /token/, 'get: no token line at all');
  t.notMatch(hidden, /^lost/m, 'a running sandbox has no lost line');
  const lost = sandboxFields({ ...s, state: 'lost', lostAt: '2029-12-31T23:59:30.000Z', lostReason: 'container exited (code 137)' }, { color: false, now });
  t.match(lost, /^lost\s+2029-12-31T23:59:30\.000Z \(30s ago\): container exited \(code 137\)$/m, 'a lost one says since when and why');
});
