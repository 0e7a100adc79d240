import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { Logger } from '../src/log.js';

/**
 * The web client (web/, built by `make web` into dist/web/) served at
 * `/`. It is plain files: the page calls the /v1 API with the bearer token the
 * user types in, and talks to the sandboxes' workers directly.
 */

const NOT_BUILT = (dir: string) =>
  `The Omega web client is not built: ${join(dir, 'index.html')} is missing.\n` +
  'Run `make web` (or `npm run build:web`) in the Omega checkout, or point OMEGA_WEB_DIR at a built copy.\n' +
  'The API under /v1 works without it.\n';

// The page only talks to this origin (the API) and to the workers (ws:, and http: for the
// reachability probe); CodeMirror and xterm.js insert <style> elements.
const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "connect-src 'self' ws: wss: http: https:",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'none'",
].join('; ');

/** dist/web under the package root, found from this file in the source tree (master/) or the build (dist/master/). */
export function defaultWebDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return join(dir, 'dist', 'web');
    const up = dirname(dir);
    if (up === dir) return resolve('dist', 'web');
    dir = up;
  }
}

function securityHeaders(reply: FastifyReply): void {
  reply.header('x-content-type-options', 'nosniff');
  reply.header('referrer-policy', 'no-referrer');
}

/**
 * Registers `GET /` and the page's assets. The built files are looked up per
 * request, so `make web` while the master runs takes effect at once, and a
 * missing build answers 503 with what to do instead of failing the start.
 *
 * Caching: asset names carry no content hash, so everything is `no-cache`
 * (stored, but revalidated with the ETag on each load): a rebuilt page is never
 * served stale, and an unchanged one costs a 304.
 */
export function registerWeb(app: FastifyInstance, opts: { dir: string; log: Logger }): void {
  const dir = resolve(opts.dir);
  if (!existsSync(join(dir, 'index.html'))) opts.log.warn({ dir }, 'the web client is not built (make web); / answers 503 until it is');
  app.register(async (web) => {
    await web.register(fastifyStatic, {
      root: dir,
      prefix: '/',
      index: false,
      wildcard: true,
      dotfiles: 'ignore',
      cacheControl: false,
      etag: true,
      lastModified: true,
      suppressWarning: true,
      setHeaders(reply, path) {
        securityHeaders(reply);
        reply.header('cache-control', 'no-cache');
        if (path.endsWith('.html')) reply.header('content-security-policy', CSP);
      },
    });
    web.get('/', async (_req, reply) => {
      if (!existsSync(join(dir, 'index.html'))) {
        return reply.status(503).header('cache-control', 'no-store').type('text/plain; charset=utf-8').send(NOT_BUILT(dir));
      }
      return reply.sendFile('index.html');
    });
  });
}
