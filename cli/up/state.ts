import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkLocalCa, createLocalCa } from '../../src/tls/local-ca.js';

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

/** The local CA's files in the state directory: the certificate to trust (644), its key (600). */
export const CA_FILES = { cert: 'ca.pem', key: 'ca-key.pem' } as const;

/**
 * The CA of this machine's Omega, made once (as mkcert does) and kept: the
 * master issues the zone's certificate from it, and a user trusts it once.
 * Returns its files and whether it was made now.
 */
export async function prepareLocalCa(dir: string): Promise<{ certFile: string; keyFile: string; made: boolean }> {
  const certFile = join(dir, CA_FILES.cert);
  const keyFile = join(dir, CA_FILES.key);
  if (existsSync(certFile) && existsSync(keyFile)) {
    checkLocalCa({ certPem: readFileSync(certFile, 'utf8'), keyPem: readFileSync(keyFile, 'utf8') });
    chmodSync(keyFile, 0o600);
    return { certFile, keyFile, made: false };
  }
  const ca = await createLocalCa(`Omega local CA (${process.env.USER ?? 'this machine'})`);
  // The key first: a certificate without its key would be taken for a whole CA next run.
  writeFileSync(keyFile, ca.keyPem, { mode: 0o600 });
  writeFileSync(certFile, ca.certPem, { mode: 0o644 });
  return { certFile, keyFile, made: true };
}

/** Where clients find the master when no URL is set (not a secret). */
export function writeMasterUrl(dir: string, url: string): void {
  writeFileSync(join(dir, 'master-url'), url + '\n', { mode: 0o644 });
}

/** `omega up`'s pid in its state directory, from its start until it has stopped cleanly. */
const UP_PID = 'up.pid';

/** Another `omega up` runs with the state directory: a second one would share its Redis, ports and containers. */
export class StateDirInUse extends Error {
  constructor(
    readonly dir: string,
    readonly pid: number,
  ) {
    super(`another omega up (pid ${pid}) runs with the state directory ${dir}; stop it first, or give this one another OMEGA_STATE_DIR`);
  }
}

/** Whether `pid` is a running `omega up` (a recorded pid may since belong to another program). */
function isUp(pid: number): boolean {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return argv.includes('up') && /\b(node|omega)\b/.test(argv[0] ?? '');
  } catch {
    return false;
  }
}

/**
 * Take the state directory for this process. Throws StateDirInUse when
 * another live `omega up` holds it. Returns the pid of an earlier `omega up`
 * that held it and never stopped cleanly (killed, crashed, or its cleanup
 * failed): its sandboxes and hosts may still be in Redis, and its
 * containers on this machine; null when the last run stopped cleanly.
 */
export function claimStateDir(dir: string): number | null {
  const path = join(dir, UP_PID);
  let earlier: number | null = null;
  try {
    const pid = Number(readFileSync(path, 'utf8').trim());
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid) earlier = pid;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err; // ENOENT: the last run stopped cleanly, or there was none
  }
  if (earlier !== null && isUp(earlier)) throw new StateDirInUse(dir, earlier);
  writeFileSync(path, `${process.pid}\n`, { mode: 0o600 });
  return earlier;
}

/** After a clean stop (its sandboxes deleted): the next run has nothing of this one to finish. */
export function releaseStateDir(dir: string): void {
  const path = join(dir, UP_PID);
  try {
    if (Number(readFileSync(path, 'utf8').trim()) === process.pid) unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
