/**
 * The worker protocol: what a browser (or any client) and the in-sandbox
 * worker say to each other over one WebSocket. Documented in
 * docs/worker-protocol.md; a test checks every method, event and error code
 * below appears there.
 *
 * This file is imported by the worker (bundled alone into the sandbox image)
 * and by future clients, so it imports nothing.
 */

export const PROTOCOL_VERSION = 1;
/** The WebSocket subprotocol a client offers (with `omega.token.<token>`) and the worker selects. */
export const SUBPROTOCOL = 'omega.v1';
export const TOKEN_SUBPROTOCOL_PREFIX = 'omega.token.';

// ---- names ---------------------------------------------------------------

/**
 * One DNS label in the preferred syntax (RFC 1035 §2.3.1), lower case. A
 * sandbox id is one, as it names hosts (`<id>.<zone>`, previews
 * `<port>.<id>.<zone>`); a zone is several joined by dots. Defined here, the
 * one module the worker, the web client and every server may all import.
 */
export const DNS_LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
/** What every API accepts as a sandbox id (the master mints a narrower form: src/ids.ts). */
export const SANDBOX_ID_PATTERN = `^${DNS_LABEL}$`;

// ---- error codes ----------------------------------------------------------

/**
 * Every error the worker reports, over the protocol (`{id, error: {code, message}}`)
 * or over HTTP (`{code, message}` with `status`). Codes are stable; messages are
 * for people and may change.
 */
export const WORKER_ERRORS = {
  BAD_REQUEST: { status: 400, message: 'The message is not a valid request' },
  UNKNOWN_METHOD: { status: 400, message: 'No such method' },
  INVALID_PARAMS: { status: 400, message: 'The parameters are not valid for this method' },
  UNAUTHORIZED: { status: 401, message: 'A valid sandbox token is required' },
  PATH_OUTSIDE_WORKSPACE: { status: 403, message: 'The path leads outside the workspace' },
  PERMISSION_DENIED: { status: 403, message: 'The operating system refused access to the path' },
  NOT_FOUND: { status: 404, message: 'No such file or directory' },
  NO_SUCH_TERMINAL: { status: 404, message: 'No such terminal' },
  NO_SUCH_PROCESS: { status: 404, message: 'No such process' },
  ALREADY_EXISTS: { status: 409, message: 'The path already exists' },
  ALREADY_CLAIMED: { status: 409, message: 'The sandbox is already claimed' },
  NOT_A_DIRECTORY: { status: 409, message: 'A directory was expected' },
  IS_A_DIRECTORY: { status: 409, message: 'A file was expected, not a directory' },
  DIRECTORY_NOT_EMPTY: { status: 409, message: 'The directory is not empty' },
  PROCESS_EXITED: { status: 409, message: 'The process has already exited' },
  FILE_TOO_LARGE: { status: 413, message: 'The file is larger than the worker transfers in one message' },
  LIMIT_REACHED: { status: 429, message: 'Too many running terminals and processes' },
  TOO_MANY_AUTH_FAILURES: { status: 429, message: 'Too many wrong or missing tokens from this address; retry later' },
  GIT_FAILED: { status: 422, message: 'The repository could not be cloned' },
  SPAWN_FAILED: { status: 500, message: 'The program could not be started' },
  INTERNAL: { status: 500, message: 'Internal error' },
  PREVIEW_UNREACHABLE: { status: 502, message: 'Nothing is listening on that port inside the sandbox' },
} as const satisfies Record<string, { status: number; message: string }>;

export type WorkerErrorCode = keyof typeof WORKER_ERRORS;

// ---- envelopes -----------------------------------------------------------

export type RequestId = string | number;

export interface Request<M extends Method = Method> {
  id: RequestId;
  method: M;
  params?: Params<M>;
}

export interface ErrorBody {
  code: WorkerErrorCode;
  message: string;
}

export type Response<M extends Method = Method> = { id: RequestId | null; result: Result<M> } | { id: RequestId | null; error: ErrorBody };

export interface EventMessage<E extends EventName = EventName> {
  event: E;
  data: Events[E];
}

// ---- shared shapes -------------------------------------------------------

export type EntryType = 'file' | 'dir' | 'symlink' | 'other';

export interface Entry {
  name: string;
  type: EntryType;
  size: number;
  mtimeMs: number;
}

export interface Stat {
  path: string;
  type: EntryType;
  size: number;
  mtimeMs: number;
  mode: number;
}

export interface ExitStatus {
  exitCode: number | null;
  signal: string | null;
}

export interface ProcExit extends ExitStatus {
  timedOut: boolean;
  durationMs: number;
}

export interface TerminalInfo {
  termId: string;
  pid: number;
  cols: number;
  rows: number;
  cwd: string;
  startedAt: number;
  attached: number;
  exit: ExitStatus | null;
}

export interface ProcessInfo {
  procId: string;
  pid: number;
  /** What was run: the language, or the command and its arguments. */
  language: Language | null;
  command: string;
  args: string[];
  cwd: string;
  startedAt: number;
  attached: number;
  exit: ProcExit | null;
}

export type Language = 'python' | 'node' | 'bash';
export type Encoding = 'utf8' | 'base64';
export type ChangeKind = 'created' | 'modified' | 'deleted';
export type OutputStream = 'stdout' | 'stderr';

export interface CloneStatus {
  state: 'none' | 'running' | 'done' | 'failed' | 'skipped';
  /** The repository URL without any credentials in it. */
  url?: string;
  /** Last progress line from git, or why it failed or was skipped. */
  message?: string;
  percent?: number;
}

// ---- methods -------------------------------------------------------------

export interface Methods {
  ping: { params: Record<string, never>; result: { time: number } };
  'fs.list': { params: { path: string }; result: { entries: Entry[]; truncated: boolean } };
  'fs.read': { params: { path: string; encoding?: Encoding }; result: { content: string; encoding: Encoding; size: number; mtimeMs: number } };
  'fs.write': { params: { path: string; content: string; encoding?: Encoding }; result: { size: number; mtimeMs: number; created: boolean } };
  'fs.mkdir': { params: { path: string }; result: { created: boolean } };
  'fs.rename': { params: { from: string; to: string; overwrite?: boolean }; result: Record<string, never> };
  'fs.delete': { params: { path: string }; result: Record<string, never> };
  'fs.stat': { params: { path: string }; result: Stat };
  'term.open': { params: { cols: number; rows: number; cwd?: string; env?: Record<string, string> }; result: { termId: string; pid: number } };
  'term.input': { params: { termId: string; data: string }; result: Record<string, never> };
  'term.resize': { params: { termId: string; cols: number; rows: number }; result: Record<string, never> };
  'term.close': { params: { termId: string }; result: Record<string, never> };
  'term.list': { params: Record<string, never>; result: { terminals: TerminalInfo[] } };
  'term.attach': { params: { termId: string }; result: { termId: string; scrollback: string; truncated: boolean; exit: ExitStatus | null } };
  'term.detach': { params: { termId: string }; result: Record<string, never> };
  'proc.run': { params: RunParams; result: { procId: string; pid: number } };
  'proc.input': { params: { procId: string; data?: string; eof?: boolean }; result: Record<string, never> };
  'proc.kill': { params: { procId: string; signal?: KillSignal }; result: Record<string, never> };
  'proc.list': { params: Record<string, never>; result: { processes: ProcessInfo[] } };
  'proc.attach': {
    params: { procId: string };
    result: { procId: string; output: Array<{ stream: OutputStream; data: string }>; truncated: boolean; exit: ProcExit | null };
  };
  'proc.detach': { params: { procId: string }; result: Record<string, never> };
  'preview.setPublic': { params: { port: number; public: boolean }; result: { port: number; public: boolean } };
  /** `all`: every port is public (the sandbox was created with publicPreviews). */
  'preview.list': { params: Record<string, never>; result: { public: number[]; all?: true } };
}

export type Method = keyof Methods;
export type Params<M extends Method> = Methods[M]['params'];
export type Result<M extends Method> = Methods[M]['result'];

export type KillSignal = 'SIGTERM' | 'SIGKILL' | 'SIGINT' | 'SIGHUP';

interface RunCommon {
  cwd?: string;
  stdin?: string;
  /** Keep stdin open for `proc.input` instead of closing it after `stdin`. */
  interactive?: boolean;
  timeoutMs?: number;
  env?: Record<string, string>;
}
export type RunParams = (RunCommon & { language: Language; code: string }) | (RunCommon & { command: string; args?: string[] });

// ---- events --------------------------------------------------------------

export interface Events {
  hello: { clientId: string; sandboxId: string | null; protocol: number; clone: CloneStatus };
  'fs.changed': { path: string; kind: ChangeKind; type: EntryType | null; by: string | null };
  'term.output': { termId: string; data: string };
  'term.exit': { termId: string } & ExitStatus;
  'proc.stdout': { procId: string; data: string };
  'proc.stderr': { procId: string; data: string };
  'proc.exit': { procId: string } & ProcExit;
  'git.clone': CloneStatus;
  'preview.changed': { port: number; public: boolean };
}

export type EventName = keyof Events;
export const EVENT_NAMES = ['hello', 'fs.changed', 'term.output', 'term.exit', 'proc.stdout', 'proc.stderr', 'proc.exit', 'git.clone', 'preview.changed'] as const satisfies readonly EventName[];

// ---- JSON schemas of the params ------------------------------------------

/** The subset of JSON Schema (draft 2020-12 keywords) the worker validates with. */
export interface JsonSchema {
  type?: 'object' | 'string' | 'integer' | 'number' | 'boolean' | 'array';
  properties?: Record<string, JsonSchema>;
  required?: readonly string[];
  additionalProperties?: boolean | JsonSchema;
  maxProperties?: number;
  items?: JsonSchema;
  maxItems?: number;
  enum?: readonly unknown[];
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  oneOf?: readonly JsonSchema[];
}

const MAX_PATH = 4096;
const path: JsonSchema = { type: 'string', maxLength: MAX_PATH };
const id: JsonSchema = { type: 'string', minLength: 1, maxLength: 64 };
const dimension = (max: number): JsonSchema => ({ type: 'integer', minimum: 1, maximum: max });
const env: JsonSchema = { type: 'object', additionalProperties: { type: 'string', maxLength: 65536 }, maxProperties: 256 };
const none: JsonSchema = { type: 'object', additionalProperties: false };
const object = (properties: Record<string, JsonSchema>, required: string[] = []): JsonSchema => ({
  type: 'object',
  properties,
  required,
  additionalProperties: false,
});
const runCommon: Record<string, JsonSchema> = {
  cwd: path,
  stdin: { type: 'string' },
  interactive: { type: 'boolean' },
  timeoutMs: { type: 'integer', minimum: 1, maximum: 86_400_000 },
  env,
};

export const PARAM_SCHEMAS: { readonly [M in Method]: JsonSchema } = {
  ping: none,
  'fs.list': object({ path }, ['path']),
  'fs.read': object({ path, encoding: { enum: ['utf8', 'base64'] } }, ['path']),
  'fs.write': object({ path, content: { type: 'string' }, encoding: { enum: ['utf8', 'base64'] } }, ['path', 'content']),
  'fs.mkdir': object({ path }, ['path']),
  'fs.rename': object({ from: path, to: path, overwrite: { type: 'boolean' } }, ['from', 'to']),
  'fs.delete': object({ path }, ['path']),
  'fs.stat': object({ path }, ['path']),
  'term.open': object({ cols: dimension(1000), rows: dimension(1000), cwd: path, env }, ['cols', 'rows']),
  'term.input': object({ termId: id, data: { type: 'string' } }, ['termId', 'data']),
  'term.resize': object({ termId: id, cols: dimension(1000), rows: dimension(1000) }, ['termId', 'cols', 'rows']),
  'term.close': object({ termId: id }, ['termId']),
  'term.list': none,
  'term.attach': object({ termId: id }, ['termId']),
  'term.detach': object({ termId: id }, ['termId']),
  'proc.run': {
    oneOf: [
      object({ ...runCommon, language: { enum: ['python', 'node', 'bash'] }, code: { type: 'string' } }, ['language', 'code']),
      object({ ...runCommon, command: { type: 'string', minLength: 1, maxLength: MAX_PATH }, args: { type: 'array', items: { type: 'string' }, maxItems: 4096 } }, ['command']),
    ],
  },
  'proc.input': object({ procId: id, data: { type: 'string' }, eof: { type: 'boolean' } }, ['procId']),
  'proc.kill': object({ procId: id, signal: { enum: ['SIGTERM', 'SIGKILL', 'SIGINT', 'SIGHUP'] } }, ['procId']),
  'proc.list': none,
  'proc.attach': object({ procId: id }, ['procId']),
  'proc.detach': object({ procId: id }, ['procId']),
  'preview.setPublic': object({ port: { type: 'integer', minimum: 1, maximum: 65535 }, public: { type: 'boolean' } }, ['port', 'public']),
  'preview.list': none,
};

export const METHOD_NAMES = Object.keys(PARAM_SCHEMAS) as Method[];

export function isMethod(name: unknown): name is Method {
  return typeof name === 'string' && Object.prototype.hasOwnProperty.call(PARAM_SCHEMAS, name);
}

// ---- HTTP ------------------------------------------------------------------

/** `POST /_omega/claim` body. */
export interface ClaimBody {
  sandboxId: string;
  token: string;
  gitRepo?: string;
}

/** `GET /healthz` body. */
export interface Health {
  status: 'ok';
  claimed: boolean;
  sandboxId: string | null;
  /** Unix time in ms of the last request, message or connection (not health checks). */
  lastActivityMs: number;
  /** Milliseconds since then, by the worker's clock. */
  idleMs: number;
  /** WebSocket clients connected now. */
  clients: number;
}

/** Name of the cookie that `?omega_token=` sets on a preview host. */
export const PREVIEW_COOKIE = 'omega_preview';
export const PREVIEW_TOKEN_PARAM = 'omega_token';
