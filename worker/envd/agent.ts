import { Code, type Interceptor } from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import { randomBytes } from 'node:crypto';
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { Filesystem } from '../../src/protocol/envd/gen/filesystem_pb.js';
import { Process } from '../../src/protocol/envd/gen/process_pb.js';
import { secretEquals, type Credentials } from '../auth.js';
import type { Clients } from '../clients.js';
import type { Files } from '../files.js';
import type { WorkerLogger } from '../log.js';
import type { Processes } from '../processes.js';
import type { Terminals } from '../terminals.js';
import { toConnectError } from './errors.js';
import { FilesHttp, sendEnvdError } from './files-http.js';
import { filesystemService } from './filesystem.js';
import { checkUser, Home } from './home.js';
import { processService } from './process.js';
import { isEnvdRpcPath } from './routes.js';

export { ENVD_PORT, ENVD_VERSION } from '../../src/protocol/envd/version.js';


export interface EnvdDeps {
  files: Files;
  processes: Processes;
  terminals: Terminals;
  clients: Clients;
  /** The workspace as configured (the home clients see) and its real path. */
  home: { dir: string; realDir: string };
  maxMessageBytes: number;
  maxQueuedBytes: number;
  maxUploadBytes: number;
  log: WorkerLogger;
}

/** The worker's check of a token (or of what proves one: a signature), counted against the source: 'ok', 'wrong', or the seconds it must wait. */
export type TokenCheck = (candidate: string | undefined | ((creds: Credentials) => boolean)) => 'ok' | 'wrong' | number;

/**
 * The E2B agent ("envd") beside the worker's WebSocket protocol, over the same
 * Files, Processes, Terminals and watcher: the Connect services
 * filesystem.Filesystem and process.Process (JSON or binary, unary and
 * server streaming) and the plain HTTP routes /health and /files.
 */
export class EnvdAgent {
  private readonly rpc: ReturnType<typeof connectNodeAdapter>;
  private readonly filesHttp: FilesHttp;
  private readonly shutdown = new AbortController();
  /** A one-off secret that opens the agent to the worker's own warm-up requests only, forgotten once they are done. */
  private warmSecret: string | null = null;

  constructor(private readonly deps: EnvdDeps) {
    const home = new Home(deps.home.dir, deps.home.realDir, deps.files);
    const log = deps.log;
    // One error boundary for every RPC: the user named, then any failure as a Connect code (streams too).
    const boundary: Interceptor = (next) => async (req) => {
      try {
        checkUser(req.header.get('authorization'), null);
        const res = await next(req);
        if (!res.stream) return res;
        const messages = res.message;
        return {
          ...res,
          message: (async function* () {
            try {
              yield* messages;
            } catch (err) {
              throw toConnectError(err, log, req.method.name);
            }
          })(),
        };
      } catch (err) {
        throw toConnectError(err, log, req.method.name);
      }
    };
    this.rpc = connectNodeAdapter({
      routes: (router) => {
        router.service(Filesystem, filesystemService({ files: deps.files, home, clients: deps.clients, maxQueuedBytes: deps.maxQueuedBytes }));
        router.service(Process, processService({ processes: deps.processes, terminals: deps.terminals, home, maxQueuedBytes: deps.maxQueuedBytes }));
      },
      grpc: false,
      grpcWeb: false,
      interceptors: [boundary],
      readMaxBytes: deps.maxMessageBytes,
      shutdownSignal: this.shutdown.signal,
      fallback: (_req, res) => sendEnvdError(res as ServerResponse, 404, 'no such route'),
    });
    this.filesHttp = new FilesHttp(deps.files, home, deps.maxUploadBytes, log);
  }

  /** Serve one request: the token (X-Access-Token) checked before any body is read; /health needs none. */
  serve(req: IncomingMessage, res: ServerResponse, checkToken: TokenCheck): void {
    const url = new URL(req.url ?? '/', 'http://envd');
    if (url.pathname === '/health') {
      res.writeHead(204, { 'cache-control': 'no-store' });
      return void res.end();
    }
    const token = req.headers['x-access-token'];
    const rpc = isEnvdRpcPath(url.pathname);
    const auth = this.isWarmUp(req) ? 'ok' : checkToken(typeof token === 'string' || rpc ? (token as string | undefined) : signedUrl(req, url));
    if (auth !== 'ok') {
      const [status, code, message] =
        auth === 'wrong' ? [401, Code.Unauthenticated, 'a valid X-Access-Token (the sandbox token) is required'] : [429, Code.ResourceExhausted, `too many wrong or missing tokens from this address; retry in ${auth} s`];
      const headers: Record<string, string> = typeof auth === 'number' ? { 'retry-after': String(auth) } : {};
      if (req.method === 'POST') headers.connection = 'close';
      if (!rpc) return sendEnvdError(res, status, message, headers);
      // A Connect error (the unary form; a streaming client reads the status): the client's code, not an HTTP guess.
      const body = JSON.stringify(new ConnectErrorBody(code, message));
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers });
      return void res.end(body);
    }
    if (rpc) return void this.rpc(req, res);
    if (url.pathname === '/files') return void this.filesHttp.serve(req, res, url);
    sendEnvdError(res, 404, `no route ${req.method} ${url.pathname}`);
  }

  /**
   * The first RPC a worker serves costs it ~100 ms more than the next
   * (protobuf and Connect code run for the first time), and a pool worker's
   * first is on a create's critical path (`Sandbox.create()` then
   * `commands.run()`). So the worker sends itself, once, a unary call and a
   * server stream that fails (Stat of the home, Connect to no process):
   * nothing in the sandbox changes. Their secret is random, never leaves
   * this process, and is forgotten when they are done.
   */
  async warm(host: string, port: number): Promise<void> {
    this.warmSecret = randomBytes(32).toString('hex');
    const headers = { 'x-access-token': this.warmSecret, 'content-type': 'application/json', connection: 'close' };
    const post = (path: string, body: Buffer | string, contentType = 'application/json') =>
      new Promise<void>((resolve) => {
        const req = httpRequest({ host, port, path, method: 'POST', agent: false, headers: { ...headers, 'content-type': contentType, 'content-length': body.length } }, (res) => {
          res.resume();
          res.on('end', resolve);
          res.on('error', () => resolve());
        });
        req.on('error', (err) => {
          this.deps.log.debug({ err }, 'warming the agent failed');
          resolve();
        });
        req.end(body);
      });
    try {
      await post('/filesystem.Filesystem/Stat', '{"path":""}');
      const message = Buffer.from('{"process":{"pid":0}}');
      await post('/process.Process/Connect', Buffer.concat([Buffer.from([0, 0, 0, 0, message.length]), message]), 'application/connect+json');
    } finally {
      this.warmSecret = null;
    }
  }

  /** Whether a request is the worker's own warm-up (not a client's, so not activity). */
  isWarmUp(req: IncomingMessage): boolean {
    const token = req.headers['x-access-token'];
    return this.warmSecret !== null && typeof token === 'string' && secretEquals(token, this.warmSecret);
  }

  /** End every open stream (watches, process events); the programs go on until the worker stops them. */
  stop(): void {
    this.shutdown.abort();
  }
}

/**
 * A /files URL signed by the SDK's uploadUrl or downloadUrl (`signature`,
 * maybe `signature_expiration` in Unix seconds, past which it is refused):
 * a check of the signature for its path, operation and user, or no token.
 */
function signedUrl(req: IncomingMessage, url: URL): ((creds: Credentials) => boolean) | undefined {
  const signature = url.searchParams.get('signature');
  if (!signature) return undefined;
  const expiration = url.searchParams.get('signature_expiration');
  if (expiration !== null && !(Number(expiration) * 1000 > Date.now())) return () => false;
  const signed = { path: url.searchParams.get('path') ?? '', operation: req.method === 'POST' ? ('write' as const) : ('read' as const), user: url.searchParams.get('username') ?? '', expiration };
  return (creds) => creds.checkFileSignature(signature, signed);
}

/** The Connect protocol's error body: the code's name in snake case. */
class ConnectErrorBody {
  readonly code: string;
  constructor(
    code: Code,
    readonly message: string,
  ) {
    this.code = Code[code].replace(/[A-Z]/g, (c, i: number) => (i ? '_' : '') + c.toLowerCase());
  }
}

