import { request } from 'undici';
import { OmegaError } from '../src/errors.js';
import { joinHostPort } from '../src/config/settings.js';
import type { GitSource } from '../src/protocol/manager.js';

/** Talks to a sandbox's worker where this host reaches it (its published port, or its container address): readiness and claim. */
export class WorkerClient {
  /** How long a claim that clones a repository may take (the master gives up on the create at its OMEGA_CREATE_TIMEOUT_MS anyway). */
  constructor(private readonly gitTimeoutMs = 120_000) {}

  private url(address: string, port: number, path: string): string {
    return `http://${joinHostPort(address, port)}${path}`;
  }

  /**
   * Poll /healthz until it answers 200. `alive` is asked every second so a
   * container that died is reported at once, not after the whole timeout.
   */
  async waitHealthy(address: string, port: number, timeoutMs: number, alive: () => Promise<boolean>): Promise<void> {
    const end = Date.now() + timeoutMs;
    let lastCheck = Date.now();
    let delay = 5;
    for (;;) {
      try {
        const res = await request(this.url(address, port, '/healthz'), { headersTimeout: 1000, bodyTimeout: 1000 });
        await res.body.dump();
        if (res.statusCode === 200) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > end) throw new OmegaError('SANDBOX_START_FAILED', `the worker did not answer /healthz within ${timeoutMs} ms`);
      if (Date.now() - lastCheck > 1000) {
        lastCheck = Date.now();
        if (!(await alive())) throw new OmegaError('SANDBOX_START_FAILED', 'the container exited before its worker was ready');
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 50);
    }
  }

  /** Bind a (warm or fresh) worker to its sandbox: from now on it serves this token only. */
  async claim(address: string, port: number, claimSecret: string, body: { sandboxId: string; token: string; gitRepo?: string; env?: Record<string, string>; git?: GitSource; publicPreviews?: true }): Promise<void> {
    // With `git` the claim answers once the clone is done: as long as the create may take.
    const timeoutMs = body.git ? this.gitTimeoutMs : 5000;
    const res = await request(this.url(address, port, '/_omega/claim'), {
      method: 'POST',
      headers: { authorization: `Bearer ${claimSecret}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
    const text = await res.body.text();
    if (res.statusCode === 422) {
      let message = text;
      try {
        message = (JSON.parse(text) as { message?: string }).message ?? text;
      } catch {
        // not JSON: the text as it is
      }
      throw new OmegaError('GIT_FAILED', `git clone failed: ${message.slice(0, 1000)}`);
    }
    if (res.statusCode !== 200) {
      throw new OmegaError('SANDBOX_START_FAILED', `the worker refused the claim (${res.statusCode}): ${text.slice(0, 200)}`);
    }
  }

  /** How long the worker has seen no activity, ms; null when it does not answer (it is not judged idle then). */
  async idleMs(address: string, port: number, timeoutMs = 2000): Promise<number | null> {
    try {
      const res = await request(this.url(address, port, '/healthz'), { headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
      if (res.statusCode !== 200) {
        await res.body.dump();
        return null;
      }
      const body = (await res.body.json()) as { idleMs?: unknown };
      return typeof body.idleMs === 'number' ? body.idleMs : null;
    } catch {
      return null;
    }
  }
}
