import { OmegaError, type ErrorCode } from '../src/errors.js';
import type { Logger } from '../src/log.js';
import { connectWorker, WorkerCallError, WorkerConnectionError, type WorkerConnection } from '../src/protocol/worker-client.js';
import type { Language, OutputStream, Params, WorkerErrorCode } from '../src/protocol/worker.js';
import type { MasterConfig } from './config.js';
import { describe, type Sandboxes } from './sandboxes.js';
import { workerAddressOf, type WorkerAddress, type WorkerRoutes } from './worker-route.js';

export interface RunRequest {
  language: string;
  code: string;
  stdin?: string;
  timeoutMs?: number;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  truncated: boolean;
  durationMs: number;
}

/** Which template runs each language, and the worker's name for it. */
const LANGUAGES: Record<string, { template: string; language: Language }> = {
  python: { template: 'python', language: 'python' },
  python3: { template: 'python', language: 'python' },
  node: { template: 'node', language: 'node' },
  javascript: { template: 'node', language: 'node' },
  js: { template: 'node', language: 'node' },
  bash: { template: 'python', language: 'bash' },
};

export const RUN_LANGUAGES = Object.keys(LANGUAGES);

const CONNECT_TIMEOUT_MS = 10_000;
const EXIT_MARGIN_MS = 15_000;

/**
 * One-shot code execution, as a code runner offers it: a fresh sandbox of
 * the language's template (a claimed warm container, when the host's pool
 * has one), the code run once through the worker, the sandbox discarded, so
 * no two requests ever share one.
 */
export class Runner {
  constructor(
    private readonly config: MasterConfig,
    private readonly sandboxes: Sandboxes,
    private readonly routes: WorkerRoutes,
    private readonly log: Logger,
  ) {}

  async run(req: RunRequest, onOutput?: (stream: 'stdout' | 'stderr', data: string) => void): Promise<RunResult> {
    const lang = LANGUAGES[req.language];
    if (!lang || !this.config.templates.includes(lang.template)) {
      throw new OmegaError('UNKNOWN_TEMPLATE', `cannot run "${req.language}"; languages: ${RUN_LANGUAGES.filter((l) => this.config.templates.includes(LANGUAGES[l]!.template)).join(', ')}`);
    }
    const timeoutMs = Math.min(req.timeoutMs ?? this.config.runDefaultTimeoutMs, this.config.runMaxTimeoutMs);
    const sb = await this.sandboxes.create({ template: lang.template, internal: true, timeoutSeconds: Math.ceil(timeoutMs / 1000) + 60 });
    try {
      return await this.execute(workerAddressOf(sb), sb.token, { language: lang.language, code: req.code, stdin: req.stdin ?? '', timeoutMs }, onOutput);
    } finally {
      // Discarded in the background: the answer need not wait for the container's removal.
      this.sandboxes.delete(sb.id, 'run finished').catch((err: unknown) => this.log.warn({ sandboxId: sb.id, err: describe(err) }, 'discarding a run sandbox failed; it expires'));
    }
  }

  private async execute(
    worker: WorkerAddress,
    token: string,
    params: Params<'proc.run'> & { timeoutMs: number },
    onOutput?: (stream: 'stdout' | 'stderr', data: string) => void,
  ): Promise<RunResult> {
    let conn: WorkerConnection;
    try {
      const { url, socket } = this.routes.ws(worker);
      conn = await connectWorker(url, { token, timeoutMs: CONNECT_TIMEOUT_MS, socket });
    } catch (err) {
      throw apiError(err);
    }
    const max = this.config.runMaxOutputBytes;
    const out = { stdout: '', stderr: '' };
    let size = 0;
    let truncated = false;
    let procId: string | null = null;
    // This connection starts one process in a fresh sandbox: every proc event is its (even one before the reply).
    const ours = (d: { procId: string }) => procId === null || d.procId === procId;
    const take = (stream: OutputStream, d: { procId: string; data: string }) => {
      if (!ours(d)) return;
      let data = d.data;
      if (size + data.length > max) {
        data = data.slice(0, Math.max(0, max - size));
        truncated = true;
      }
      size += data.length;
      if (data) {
        out[stream] += data;
        onOutput?.(stream, data);
      }
    };
    conn.on('proc.stdout', (d) => take('stdout', d));
    conn.on('proc.stderr', (d) => take('stderr', d));
    // The worker kills the program at timeoutMs; the margin only guards against a worker that never answers.
    const exited = conn.next('proc.exit', ours, params.timeoutMs + EXIT_MARGIN_MS);
    const started = conn.call('proc.run', params).then((r) => {
      procId = r.procId;
    });
    try {
      // Both awaited at once: a refused run is the answer, and the exit it will never see fails with it.
      const [, exit] = await Promise.all([started, exited]);
      return { ...out, exitCode: exit.exitCode, signal: exit.signal, timedOut: exit.timedOut, truncated, durationMs: exit.durationMs };
    } catch (err) {
      throw apiError(err);
    } finally {
      void conn.close();
    }
  }
}

/**
 * What a worker's failure means to the API's client. Its own mistakes and a
 * sandbox at its limit keep their meaning; whatever else the worker refuses,
 * the master asked for (the token, the method), so it is the sandbox failing
 * the master: 502. The worker's code goes along as `workerCode`.
 */
const FOR_CLIENT: Partial<Record<WorkerErrorCode, ErrorCode>> = {
  INVALID_PARAMS: 'VALIDATION_FAILED',
  LIMIT_REACHED: 'LIMIT_REACHED',
};

export function apiError(err: unknown): OmegaError {
  if (err instanceof WorkerCallError) {
    return new OmegaError(FOR_CLIENT[err.code] ?? 'WORKER_FAILED', `the sandbox's worker: ${err.code}: ${err.message}`, { cause: err, details: { workerCode: err.code } });
  }
  if (err instanceof WorkerConnectionError) {
    return new OmegaError('WORKER_UNAVAILABLE', `the sandbox's worker: ${err.message}`, { cause: err });
  }
  return err instanceof OmegaError ? err : new OmegaError('WORKER_FAILED', `the sandbox's worker: ${(err as Error).message}`, { cause: err });
}
