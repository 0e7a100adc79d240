import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { stateDirSetting } from '../../src/config/common.js';
import { ConfigError, loadSettings, type LoadOptions, type Setting } from '../../src/config/settings.js';

/** Where the master is when nothing says otherwise: `make run`'s address. */
export const DEFAULT_MASTER_URL = 'http://127.0.0.1:8080';

const httpUrl = (raw: string): string => {
  let u: URL;
  try {
    u = new URL(raw.trim());
  } catch {
    throw new Error('must be a URL such as http://127.0.0.1:8080');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('must be an http:// or https:// URL');
  return raw.trim().replace(/\/+$/, '');
};

/** The settings of the client commands (`omega sandbox`, `omega hosts`). */
export const clientSettings = {
  masterUrl: {
    env: 'OMEGA_MASTER_URL',
    flag: 'master-url',
    description: 'The master\'s public API',
    default: undefined,
    defaultText: `<state dir>/master-url, else ${DEFAULT_MASTER_URL}`,
    parse: httpUrl,
  } satisfies Setting<string | undefined>,
  apiToken: {
    env: 'OMEGA_API_TOKEN',
    flag: 'api-token',
    description: 'Bearer token of the master\'s API (the variable or the file rather than the flag, which other users see in `ps`)',
    default: undefined,
    defaultText: '<state dir>/api-token',
    secret: true,
    parse: (raw: string) => {
      if (/\s/.test(raw.trim())) throw new Error('must not contain spaces');
      return raw.trim();
    },
  } satisfies Setting<string | undefined>,
  caFile: {
    env: 'OMEGA_CA_FILE',
    flag: 'ca-file',
    description: 'CA certificates (PEM) trusted for an https master beside the system\'s',
    default: undefined,
    defaultText: '<state dir>/ca.pem when it exists',
    parse: (raw: string) => raw.trim(),
  } satisfies Setting<string | undefined>,
  stateDir: stateDirSetting,
};

export interface ClientConfig {
  masterUrl: string;
  /** Where masterUrl came from, for messages: a setting, a file or the default. */
  masterUrlFrom: string;
  token: string | undefined;
  /** Where the token came from (never the token itself), or undefined when there is none. */
  tokenFrom: string | undefined;
  /** The state directory's token file, looked in when no setting gives a token. */
  tokenFile: string;
  /** PEM of the CAs to trust beside the system's (`omega up`'s local CA), or null. */
  caPem: string | null;
}

/** One line of a file of `omega up`'s; null when the file does not exist. */
function readStateFile(path: string, problems: string[]): string | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    problems.push(`${path}: cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    return null;
  }
  const line = text.split('\n')[0]!.trim();
  if (!line) problems.push(`${path}: is empty`);
  return line || null;
}

/**
 * The master's URL and token: a setting (flag over environment) wins, then
 * the files `omega up` writes in the state directory, then (URL only) the
 * default. A missing token is not an error here: a master run with --dev
 * needs none, and a 401 then says where one was looked for.
 */
export function loadClientConfig(opts: LoadOptions): ClientConfig {
  const s = loadSettings(clientSettings, opts);
  const problems: string[] = [];
  const urlFile = join(s.stateDir, 'master-url');
  const tokenFile = join(s.stateDir, 'api-token');

  let masterUrl = s.masterUrl;
  let masterUrlFrom = 'OMEGA_MASTER_URL / --master-url';
  if (!masterUrl) {
    const fromFile = readStateFile(urlFile, problems);
    if (fromFile) {
      try {
        masterUrl = httpUrl(fromFile);
        masterUrlFrom = urlFile;
      } catch (err) {
        problems.push(`${urlFile}: ${(err as Error).message} (got ${JSON.stringify(fromFile)})`);
      }
    } else {
      masterUrl = DEFAULT_MASTER_URL;
      masterUrlFrom = 'the default';
    }
  }

  let token = s.apiToken;
  let tokenFrom: string | undefined = token ? 'OMEGA_API_TOKEN / --api-token' : undefined;
  if (!token) {
    token = readStateFile(tokenFile, problems) ?? undefined;
    if (token) tokenFrom = tokenFile;
  }
  let caPem: string | null = null;
  const caFile = s.caFile ?? join(s.stateDir, 'ca.pem');
  try {
    caPem = readFileSync(caFile, 'utf8');
  } catch (err) {
    // The state directory's CA is looked for; one named by a setting must be there.
    if (s.caFile || (err as NodeJS.ErrnoException).code !== 'ENOENT') problems.push(`${caFile}: cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  if (problems.length) throw new ConfigError(problems);
  return Object.freeze({
    caPem,
    masterUrl: masterUrl!,
    masterUrlFrom,
    token,
    tokenFrom,
    tokenFile,
  });
}
