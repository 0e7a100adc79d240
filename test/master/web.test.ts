// The web client as the master serves it: `/`, its assets, caching and
// security headers, a missing build, and GET /v1/templates. Built with
// buildMasterApi and fastify's inject: no socket, Redis or Docker.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import t from 'tap';
import { buildMasterApi } from '../../master/api.js';
import { loadConfig } from '../../master/config.js';
import { defaultWebDir } from '../../master/web.js';
import { createLogger } from '../../src/log.js';

const TOKEN = 'web-test-token-0123456789';

function build(webDir: string) {
  const app = buildMasterApi({
    // Not reached by these routes; the store only as far as /metrics reads it.
    sandboxes: {} as never,
    runner: {} as never,
    store: { stateCounts: async () => ({ creating: 0, running: 3, pausing: 0, paused: 0, resuming: 0, deleting: 0, lost: 0 }), hosts: async () => [] } as never,
    token: TOKEN,
    status: async () => ({ redis: true, dns: true }),
    templates: ['node', 'python'],
    webDir,
    lostHosts: () => ({ restarted: 2, terminated: 0, reported: 1 }),
    log: createLogger('master', { level: 'silent' }),
  });
  t.teardown(() => app.close());
  return app;
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'omega-web-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const HTML = '<!doctype html><title>Omega</title><link rel="stylesheet" href="styles.css"><script type="module" src="main.js"></script>';

t.test('/ serves the page, the assets come with their types, revalidated with an ETag', async (t) => {
  const dir = tempDir();
  writeFileSync(join(dir, 'index.html'), HTML);
  writeFileSync(join(dir, 'main.js'), 'console.log(1);\n');
  writeFileSync(join(dir, 'main.js.map'), '{"version":3}');
  writeFileSync(join(dir, 'styles.css'), 'body{color:red}');
  writeFileSync(join(dir, '.env'), 'SECRET=1');
  mkdirSync(join(dir, 'sub'));
  const app = build(dir);

  const page = await app.inject({ method: 'GET', url: '/' });
  t.equal(page.statusCode, 200);
  t.match(page.headers['content-type'], /^text\/html/);
  t.equal(page.body, HTML);
  t.equal(page.headers['cache-control'], 'no-cache', 'stored but revalidated: a rebuilt page is never served stale');
  t.ok(page.headers.etag, 'with an ETag');
  t.match(page.headers['content-security-policy'], /script-src 'self'/, 'no inline or foreign scripts');
  t.match(page.headers['content-security-policy'], /frame-ancestors 'none'/);
  t.equal(page.headers['x-content-type-options'], 'nosniff');
  t.equal(page.headers['referrer-policy'], 'no-referrer');

  const again = await app.inject({ method: 'GET', url: '/', headers: { 'if-none-match': String(page.headers.etag) } });
  t.equal(again.statusCode, 304, 'unchanged: 304');
  t.equal((await app.inject({ method: 'HEAD', url: '/' })).statusCode, 200, 'HEAD /');
  t.equal((await app.inject({ method: 'GET', url: '/index.html' })).statusCode, 200);

  const types: Record<string, RegExp> = { '/main.js': /^(text|application)\/javascript/, '/styles.css': /^text\/css/, '/main.js.map': /^application\/json/ };
  for (const [url, type] of Object.entries(types)) {
    const r = await app.inject({ method: 'GET', url });
    t.equal(r.statusCode, 200, url);
    t.match(r.headers['content-type'], type, `${url}: ${r.headers['content-type']}`);
    t.equal(r.headers['cache-control'], 'no-cache', `${url} revalidated`);
    t.equal(r.headers['x-content-type-options'], 'nosniff');
  }
  t.equal((await app.inject({ method: 'GET', url: '/main.js' })).body, 'console.log(1);\n');

  for (const url of ['/nope.js', '/.env', '/sub', '/../package.json', '/%2e%2e/package.json', '/sub/../../package.json']) {
    const r = await app.inject({ method: 'GET', url });
    t.equal(r.statusCode, 404, `${url}: 404`);
    if (r.statusCode === 404) t.equal(r.json().code, 'NOT_FOUND', `${url}: the API's error body`);
  }

  // The rest of the API is not shadowed by the assets' wildcard route.
  t.equal((await app.inject({ method: 'GET', url: '/healthz' })).json().status, 'ok');
  const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
  t.match(metrics, /omega_master_runs_total/);
  t.match(metrics, /omega_master_sandboxes\{state="running"\} 3/, 'sandboxes by state, from the store\'s counts');
  t.match(metrics, /omega_master_lost_hosts_total\{action="restarted"\} 2/, 'lost hosts by what their provider did');
  t.equal((await app.inject({ method: 'GET', url: '/v1/hosts' })).statusCode, 401, '/v1 still needs the token');
});

t.test('no build: / says to run make web (503), assets 404, the API works; a build made later is served at once', async (t) => {
  const dir = join(tempDir(), 'web');
  const app = build(dir);
  const page = await app.inject({ method: 'GET', url: '/' });
  t.equal(page.statusCode, 503);
  t.match(page.headers['content-type'], /^text\/plain/);
  t.match(page.body, /make web/);
  t.match(page.body, /OMEGA_WEB_DIR/);
  t.equal(page.headers['cache-control'], 'no-store');
  t.equal((await app.inject({ method: 'GET', url: '/main.js' })).statusCode, 404);
  t.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
  t.same((await app.inject({ method: 'GET', url: '/v1/templates', headers: { authorization: `Bearer ${TOKEN}` } })).json(), { templates: ['node', 'python'] });

  mkdirSync(dir);
  writeFileSync(join(dir, 'index.html'), HTML);
  writeFileSync(join(dir, 'main.js'), '1');
  t.equal((await app.inject({ method: 'GET', url: '/' })).statusCode, 200, 'built while the master runs: served without a restart');
  t.equal((await app.inject({ method: 'GET', url: '/main.js' })).statusCode, 200);
});

t.test('GET /v1/templates needs the token and lists the configured templates', async (t) => {
  const app = build(tempDir());
  const none = await app.inject({ method: 'GET', url: '/v1/templates' });
  t.equal(none.statusCode, 401);
  t.equal(none.json().code, 'UNAUTHORIZED');
  t.equal(none.headers['www-authenticate'], 'Bearer');
  t.equal((await app.inject({ method: 'GET', url: '/v1/templates', headers: { authorization: 'Bearer wrong-token-0123456789' } })).statusCode, 401);
  const ok = await app.inject({ method: 'GET', url: '/v1/templates', headers: { authorization: `Bearer ${TOKEN}` } });
  t.equal(ok.statusCode, 200);
  t.same(ok.json(), { templates: ['node', 'python'] });
});

t.test('OMEGA_WEB_DIR: an absolute path; unset, the package\'s dist/web', async (t) => {
  const base = { OMEGA_DEV: '1' };
  t.equal(loadConfig({ env: base }).webDir, '', 'unset: the server uses defaultWebDir()');
  const c = loadConfig({ env: { ...base, OMEGA_WEB_DIR: 'some/where' } });
  t.ok(isAbsolute(c.webDir));
  t.match(c.webDir, /some\/where$/);
  t.match(defaultWebDir(), /[/\\]dist[/\\]web$/);
  t.ok(existsSync(join(defaultWebDir(), '..', '..', 'package.json')), 'under the package root');
});

t.test('the real build (make web): the page and every file it references, bundled, nothing from elsewhere', async (t) => {
  const dir = defaultWebDir();
  if (!existsSync(join(dir, 'index.html'))) {
    const reason = `${dir} is not built (run make web)`;
    if (process.env.CI) t.fail(reason);
    else t.comment(`skipped: ${reason}`);
    return;
  }
  const app = build(dir);
  const page = await app.inject({ method: 'GET', url: '/' });
  t.equal(page.statusCode, 200);
  t.equal(page.body, readFileSync(join(dir, 'index.html'), 'utf8'));
  const refs = [...page.body.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!).filter((r) => !r.startsWith('data:'));
  t.same(refs.sort(), ['main.js', 'styles.css'], 'the bundle and the stylesheet, relative: no CDN');
  for (const ref of refs) {
    const r = await app.inject({ method: 'GET', url: `/${ref}` });
    t.equal(r.statusCode, 200, ref);
    t.ok(r.body.length > 1000, `${ref} has content`);
  }
  const css = (await app.inject({ method: 'GET', url: '/styles.css' })).body;
  t.match(css, /\.xterm/, 'xterm.js\'s stylesheet is bundled in');
  t.notMatch(css, /@import/, 'no import left to fetch');
  t.equal((await app.inject({ method: 'GET', url: '/main.js.map' })).statusCode, 200, 'with a source map');
  for (const id of ['api-token', 'api-token-save', 'template', 'create', 'hostname', 'time-left', 'status', 'file-tree', 'editor', 'run', 'terminal', 'preview-links', 'delete', 'new-file']) {
    t.match(page.body, `data-testid="${id}"`, `selector ${id}`);
  }
});
