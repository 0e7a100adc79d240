import type { IncomingMessage, ServerResponse } from 'node:http';
import { bearer, secretEquals, type Credentials } from './auth.js';
import { checkRepoUrl, type Clone } from './clone.js';
import { checkSandboxEnv, setSandboxEnv } from './jobs.js';
import { sandboxIdOf, tokenOf } from './config.js';
import type { WorkerLogger } from './log.js';
import type { Preview } from './preview.js';
import { sendError, sendJson } from './respond.js';

const MAX_BODY_BYTES = 64 << 10;

/**
 * `POST /_omega/claim`: binds a pooled worker to its sandbox, once.
 * The claim secret is checked before anything else (401), then whether the
 * worker is already bound (409), then the body (400).
 */
export async function handleClaim(req: IncomingMessage, res: ServerResponse, claimSecret: string | undefined, creds: Credentials, clone: Clone, preview: Preview, log: WorkerLogger): Promise<void> {
  if (!secretEquals(bearer(req), claimSecret)) {
    return sendError(res, 401, 'UNAUTHORIZED', 'the claim secret is missing or wrong');
  }
  if (creds.claimed) return sendError(res, 409, 'ALREADY_CLAIMED', 'this worker is already bound to a sandbox');
  let body: { sandboxId?: unknown; token?: unknown; gitRepo?: unknown; env?: unknown; git?: unknown; publicPreviews?: unknown };
  try {
    body = JSON.parse(await readBody(req, MAX_BODY_BYTES)) as typeof body;
    if (body === null || typeof body !== 'object') throw new Error('not an object');
  } catch (err) {
    return sendError(res, 400, 'BAD_REQUEST', `the body must be a JSON object {sandboxId, token, gitRepo?}: ${(err as Error).message}`);
  }
  const problems: string[] = [];
  const field = <T>(name: string, value: unknown, parse: (raw: string) => T): T | undefined => {
    if (typeof value !== 'string') {
      problems.push(`${name}: must be a string`);
      return undefined;
    }
    try {
      return parse(value);
    } catch (err) {
      problems.push(`${name}: ${(err as Error).message}`);
      return undefined;
    }
  };
  const sandboxId = field('sandboxId', body.sandboxId, sandboxIdOf);
  const token = field('token', body.token, tokenOf);
  let gitRepo: string | undefined;
  if (body.gitRepo !== undefined && body.gitRepo !== null) {
    gitRepo = field('gitRepo', body.gitRepo, (raw) => {
      const problem = checkRepoUrl(raw);
      if (problem) throw new Error(problem);
      return raw;
    });
  }
  let env: Record<string, string> | undefined;
  if (body.env !== undefined) {
    const problem = checkSandboxEnv(body.env);
    if (problem) problems.push(problem);
    else env = body.env as Record<string, string>;
  }
  let git: { url: string; ref?: string; depth?: number } | undefined;
  if (body.git !== undefined) {
    const g = body.git as { url?: unknown; ref?: unknown; depth?: unknown } | null;
    const problem =
      !g || typeof g !== 'object' || typeof g.url !== 'string'
        ? 'git must be {url, ref?, depth?}'
        : (checkRepoUrl(g.url) ??
          (g.ref !== undefined && (typeof g.ref !== 'string' || !/^[A-Za-z0-9._/][A-Za-z0-9._/-]{0,199}$/.test(g.ref)) ? 'git.ref must be a branch or tag name' : null) ??
          (g.depth !== undefined && (!Number.isInteger(g.depth) || (g.depth as number) < 1 || (g.depth as number) > 1_000_000) ? 'git.depth must be a whole number of commits' : null));
    if (problem) problems.push(problem);
    else git = g as { url: string; ref?: string; depth?: number };
  }
  if (body.publicPreviews !== undefined && typeof body.publicPreviews !== 'boolean') problems.push('publicPreviews: must be a boolean');
  if (problems.length || !sandboxId || !token) return sendError(res, 400, 'BAD_REQUEST', problems.join('; '));
  // A second claim racing this one reads `claimed` after this line (no await in between), so only one wins.
  if (creds.claimed) return sendError(res, 409, 'ALREADY_CLAIMED', 'this worker is already bound to a sandbox');
  creds.claim(sandboxId, token);
  // With the claim, before its answer: the first preview request may come right after it.
  if (body.publicPreviews === true) preview.allPublic = true;
  if (env) setSandboxEnv(env);
  log.info({ sandboxId, gitRepo: gitRepo !== undefined, git: git !== undefined, env: env ? Object.keys(env).length : 0, publicPreviews: preview.allPublic }, 'claimed');
  if (git) {
    // The create waits for this clone: its answer says whether the repository is there.
    const s = await clone.start(git.url, { ref: git.ref, depth: git.depth });
    if (s.state !== 'done') return sendError(res, 422, 'GIT_FAILED', s.message ?? `git clone ${s.state}`);
    return sendJson(res, 200, { claimed: true, sandboxId, clone: s });
  }
  sendJson(res, 200, { claimed: true, sandboxId });
  if (gitRepo) clone.start(gitRepo).catch((err: unknown) => log.error({ err }, 'git clone could not start'));
}

function readBody(req: IncomingMessage, max: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > max) {
        reject(new Error(`larger than ${max} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
