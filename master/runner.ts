import WebSocket from 'ws';
import { OmegaError } from '../src/errors.js';
import type { Logger } from '../src/log.js';
import type { MasterConfig } from './config.js';
import { describe, type Sandboxes } from './sandboxes.js';
import { joinHostPort } from '../src/config/settings.js';

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
const LANGUAGES: Record<string, { template: string; language: 'python' | 'node' | 'bash' }> = {
  python: { template: 'python', language: 'python' },
  python3: { template: 'python', language: 'python' },
  node: { template: 'node', language: 'node' },
  javascript: { template: 'node', language: 'node' },
  js: { template: 'node', language: 'node' },
  bash: { template: 'python', language: 'bash' },
};

export const RUN_LANGUAGES = Object.keys(LANGUAGES);

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
      return await this.execute(sb.address, sb.port!, sb.token, { language: lang.language, code: req.code, stdin: req.stdin ?? '', timeoutMs }, onOutput);
    } finally {
      // Discarded in the background: the answer need not wait for the container's removal.
      this.sandboxes.delete(sb.id, 'run finished').catch((err: unknown) => this.log.warn({ sandboxId: sb.id, err: describe(err) }, 'discarding a run sandbox failed; it expires'));
    }
  }

  private execute(
    address: string,
    port: number,
    token: string,
    params: { language: string; code: string; stdin: string; timeoutMs: number },
    onOutput?: (stream: 'stdout' | 'stderr', data: string) => void,
  ): Promise<RunResult> {
    const max = this.config.runMaxOutputBytes;
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://${joinHostPort(address, port)}/`, { headers: { authorization: `Bearer ${token}` } });
      const out = { stdout: '', stderr: '' };
      let size = 0;
      let truncated = false;
      let procId: string | null = null;
      // The worker kills the program at timeoutMs; this only guards against a worker that never answers.
      const guard = setTimeout(() => fail(new OmegaError('MANAGER_UNAVAILABLE', 'the sandbox did not finish the run')), params.timeoutMs + 15_000);
      const fail = (err: Error) => {
        clearTimeout(guard);
        ws.terminate();
        reject(err);
      };
      ws.on('error', (err) => fail(new OmegaError('MANAGER_UNAVAILABLE', `the sandbox's worker: ${err.message}`, { cause: err })));
      ws.on('open', () => ws.send(JSON.stringify({ id: 1, method: 'proc.run', params })));
      ws.on('message', (raw) => {
        const m = JSON.parse(String(raw)) as { id?: number; error?: { code: string; message: string }; result?: { procId: string }; event?: string; data?: any };
        if (m.id === 1) {
          if (m.error) return fail(new OmegaError('VALIDATION_FAILED', `${m.error.code}: ${m.error.message}`));
          procId = m.result!.procId;
          return;
        }
        // This connection starts one process in a fresh sandbox: every proc event is its (even one before the reply).
        if (!m.event || (procId && m.data?.procId !== procId)) return;
        if (m.event === 'proc.stdout' || m.event === 'proc.stderr') {
          const stream = m.event === 'proc.stdout' ? 'stdout' : 'stderr';
          let data = m.data.data as string;
          if (size + data.length > max) {
            data = data.slice(0, Math.max(0, max - size));
            truncated = true;
          }
          size += data.length;
          if (data) {
            out[stream] += data;
            onOutput?.(stream, data);
          }
        } else if (m.event === 'proc.exit') {
          clearTimeout(guard);
          ws.close();
          resolve({ ...out, exitCode: m.data.exitCode, signal: m.data.signal, timedOut: m.data.timedOut, truncated, durationMs: m.data.durationMs });
        }
      });
    });
  }
}
