import { bool, ConfigError, hostPort, int, loadSettings, oneOf, zoneName, type LoadOptions, type Setting, type SettingsValues } from '../src/config/settings.js';
import { SANDBOX_ID_PATTERN } from '../src/protocol/worker.js';
import { runAsOf, type RunAs } from './user.js';

/**
 * The worker's settings. It runs alone in a container, so this imports only
 * the settings helpers (no Redis, no pino): see docs/sandbox-contract.md.
 */

const SANDBOX_ID = new RegExp(SANDBOX_ID_PATTERN);

/** Sandbox ids are DNS labels: they appear in host names (`<port>.<id>.<zone>`). */
export function sandboxIdOf(raw: string): string {
  const v = raw.trim().toLowerCase();
  if (!SANDBOX_ID.test(v)) throw new Error('must be a DNS label: 1-63 letters, digits and -');
  return v;
}

export function tokenOf(raw: string): string {
  if (raw.length < 16 || raw.length > 512) throw new Error('must be 16 to 512 characters');
  if (!/^[\x21-\x7e]+$/.test(raw)) throw new Error('must be printable ASCII without spaces');
  return raw;
}

export const workerSettings = {
  listen: {
    env: 'OMEGA_WORKER_LISTEN',
    flag: 'listen',
    description: 'Address of the WebSocket, HTTP and preview port (the one port the sandbox publishes)',
    default: { host: '0.0.0.0', port: 8080 },
    defaultText: '0.0.0.0:8080',
    parse: hostPort(),
  },
  workspace: {
    env: 'OMEGA_WORKER_WORKSPACE',
    flag: 'workspace',
    description: 'Directory every file path is confined to',
    default: '/workspace',
    parse: (raw: string) => raw,
  } satisfies Setting<string>,
  e2bHome: {
    env: 'OMEGA_WORKER_E2B_HOME',
    flag: 'e2b-home',
    description: "The home E2B clients see, an absolute path that leads to the workspace (a template fit for the SDK: /home/user, a link to it); unset: the workspace's own path",
    default: undefined as string | undefined,
    parse: (raw: string) => {
      if (!raw.startsWith('/')) throw new Error('must be an absolute path');
      return raw.replace(/\/+$/, '') || '/';
    },
  } satisfies Setting<string | undefined>,
  token: {
    env: 'OMEGA_WORKER_TOKEN',
    flag: 'token',
    description: 'The sandbox token, when known at start (otherwise set by POST /_omega/claim)',
    default: undefined as string | undefined,
    secret: true,
    parse: tokenOf,
  } satisfies Setting<string | undefined>,
  claimSecret: {
    env: 'OMEGA_WORKER_CLAIM_SECRET',
    flag: 'claim-secret',
    description: 'Bearer secret of POST /_omega/claim (warm-pool containers)',
    default: undefined as string | undefined,
    secret: true,
    parse: tokenOf,
  } satisfies Setting<string | undefined>,
  sandboxId: {
    env: 'OMEGA_WORKER_SANDBOX_ID',
    flag: 'sandbox-id',
    description: 'The sandbox id, when known at start',
    default: undefined as string | undefined,
    parse: sandboxIdOf,
  } satisfies Setting<string | undefined>,
  user: {
    env: 'OMEGA_WORKER_USER',
    flag: 'user',
    description: "uid:gid user code runs as, apart from the agent (which must then be root; the manager sets 1000:1000). Unset: the worker's own user",
    default: undefined as RunAs | undefined,
    parse: runAsOf,
  } satisfies Setting<RunAs | undefined>,
  zone: { env: 'OMEGA_ZONE', flag: 'zone', description: 'Zone of preview hosts <port>-<id>.<zone> (and <port>.<id>.<zone> over plain http)', default: 'sandbox.test', parse: zoneName } satisfies Setting<string>,
  https: {
    env: 'OMEGA_WORKER_HTTPS',
    flag: 'https',
    description: "Reached only through the host's TLS ingress: previews are told https and their cookies are Secure",
    default: false,
    boolean: true,
    parse: bool(),
  } satisfies Setting<boolean>,
  logLevel: {
    env: 'OMEGA_LOG_LEVEL',
    flag: 'log-level',
    description: 'Log level',
    default: 'info' as const,
    parse: oneOf('error', 'warn', 'info', 'debug', 'silent'),
  },
  maxMessageBytes: {
    env: 'OMEGA_WORKER_MAX_MESSAGE_BYTES',
    flag: 'max-message-bytes',
    description: 'Largest WebSocket message accepted from a client',
    default: 16 << 20,
    parse: int(1024, 256 << 20),
  },
  maxConnectionsPerSource: {
    env: 'OMEGA_WORKER_MAX_CONNECTIONS_PER_SOURCE',
    flag: 'max-connections-per-source',
    description: 'Connections one client address may hold open at once (behind the ingress, the address it names); more are closed at once',
    default: 256,
    parse: int(1, 1_000_000),
  },
  maxFileBytes: {
    env: 'OMEGA_WORKER_MAX_FILE_BYTES',
    flag: 'max-file-bytes',
    description: 'Largest file fs.read returns in one message',
    default: 8 << 20,
    parse: int(1, 256 << 20),
  },
  maxUploadBytes: {
    env: 'OMEGA_WORKER_MAX_UPLOAD_BYTES',
    flag: 'max-upload-bytes',
    description: 'Largest multipart body of the E2B agent\'s POST /files (read whole; each file is also held to the file limit)',
    default: 64 << 20,
    parse: int(1024, 1 << 30),
  },
  maxBufferedBytes: {
    env: 'OMEGA_WORKER_MAX_BUFFERED_BYTES',
    flag: 'max-buffered-bytes',
    description: 'Bytes queued to one slow client before it is disconnected (it re-attaches with scrollback)',
    default: 8 << 20,
    parse: int(65536, 1 << 30),
  },
  scrollbackBytes: {
    env: 'OMEGA_WORKER_SCROLLBACK_BYTES',
    flag: 'scrollback-bytes',
    description: 'Recent output kept per terminal and process, replayed on attach',
    default: 64 << 10,
    parse: int(1024, 16 << 20),
  },
  maxRunning: {
    env: 'OMEGA_WORKER_MAX_RUNNING',
    flag: 'max-running',
    description: 'Most terminals plus processes running at once',
    default: 64,
    parse: int(1, 10_000),
  },
  keepExited: {
    env: 'OMEGA_WORKER_KEEP_EXITED',
    flag: 'keep-exited',
    description: 'Exited terminals and processes kept (each kind) for list and attach',
    default: 32,
    parse: int(0, 10_000),
  },
  maxWatchedDirs: {
    env: 'OMEGA_WORKER_MAX_WATCHED_DIRS',
    flag: 'max-watched-dirs',
    description: 'Most directories watched for live sync (one inotify watch each)',
    default: 4096,
    parse: int(1, 1_000_000),
  },
  cloneTimeoutMs: {
    env: 'OMEGA_WORKER_CLONE_TIMEOUT_MS',
    flag: 'clone-timeout-ms',
    description: 'Time limit of the git clone started by a claim',
    default: 600_000,
    parse: int(1000, 86_400_000),
  },
};

export type WorkerConfig = SettingsValues<typeof workerSettings>;

/** Resolve the worker's settings; throws ConfigError listing every problem. */
export function loadWorkerConfig(opts: LoadOptions): WorkerConfig {
  const s = loadSettings(workerSettings, opts);
  const problems: string[] = [];
  if (!s.token && !s.claimSecret) {
    problems.push('OMEGA_WORKER_TOKEN / --token or OMEGA_WORKER_CLAIM_SECRET / --claim-secret: one is required, or nobody could ever use the worker');
  }
  if (s.token && !s.sandboxId) problems.push('OMEGA_WORKER_SANDBOX_ID / --sandbox-id: required with OMEGA_WORKER_TOKEN (previews are named by it)');
  if (problems.length) throw new ConfigError(problems);
  return s;
}
