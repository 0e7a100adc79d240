import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const TOKEN_FILES = { api: 'api-token', dns: 'dns-token', manager: 'manager-token' } as const;
export type Tokens = Record<keyof typeof TOKEN_FILES, string>;

/**
 * The state directory of `omega up`: private (700), its tokens made once on
 * first run and kept (600), so clients (`omega sandbox`, the web page's
 * user) and later runs use the same ones.
 */
export function prepareState(dir: string): Tokens {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const tokens = {} as Tokens;
  for (const [name, file] of Object.entries(TOKEN_FILES) as [keyof Tokens, string][]) {
    const path = join(dir, file);
    let token = '';
    try {
      token = readFileSync(path, 'utf8').trim();
    } catch {
      // not made yet
    }
    if (token.length < 16) {
      token = randomBytes(24).toString('base64url');
      writeFileSync(path, token + '\n', { mode: 0o600 });
    }
    chmodSync(path, 0o600);
    tokens[name] = token;
  }
  return tokens;
}

/** Where clients find the master when no URL is set (not a secret). */
export function writeMasterUrl(dir: string, url: string): void {
  writeFileSync(join(dir, 'master-url'), url + '\n', { mode: 0o644 });
}
