import type { SandboxView } from './api.js';
import { byTestId, notice } from './dom.js';
import type { ConnState } from './worker.js';

/**
 * The status line (`data-testid=status`, its state in `data-state`) and the
 * explanation when the worker cannot be reached. Its texts never contain
 * "connected" unless the socket is open: the tests look for that word.
 */
export class StatusLine {
  private problemShown = false;

  set(state: string, text: string): void {
    const s = byTestId('status');
    s.dataset.state = state;
    s.textContent = text;
  }

  connected(): void {
    this.set('connected', 'connected');
    performance.mark('omega:connected');
    if (this.problemShown) notice(null);
    this.problemShown = false;
  }

  /** Connecting, or waiting to try again. */
  connection(s: Exclude<ConnState, { state: 'connected' | 'stopped' }>, view: SandboxView, first: boolean): void {
    if (s.state === 'connecting') {
      this.set('connecting', first ? 'connecting…' : 'reconnecting…');
      return;
    }
    const secs = Math.max(1, Math.round(s.retryInMs / 1000));
    if (s.everOpened || s.reachable === null) {
      this.set('reconnecting', `connection lost, reconnecting in ${secs} s`);
    } else if (s.reachable) {
      this.set('refused', `the worker refused this browser's token; retrying in ${secs} s`);
      this.problem('The sandbox\'s worker refused the connection.', 'It answers, but not to the token this browser keeps for the sandbox.');
    } else {
      this.set('unreachable', `cannot reach the worker; retrying in ${secs} s`);
      this.unreachable(view);
    }
  }

  /** The browser could not open the agent's URL: most likely its resolver does not know the zone (or it does not trust the CA). */
  private unreachable(v: SandboxView): void {
    const zone = v.hostname.slice(v.hostname.indexOf('.') + 1);
    this.problem(
      `This browser cannot reach ${v.hostname} (${v.url ?? `port ${v.port}`}).`,
      `Most likely its resolver does not know the zone ${zone}: only Omega's DNS server answers for it. Delegate ${zone} to that server, or point this machine's resolver at it: see docs/dns-delegation.md.`,
      ...(v.url?.startsWith('wss:') ? [`Over wss the browser must also trust the certificate of ${v.hostname}: with make run, import the local CA it names (.omega/ca.pem) as an authority.`] : []),
      `The master reported the address ${v.address} for this sandbox (port ${v.port}). The page does not fall back to the address: the worker and the preview links are reached by name.`,
    );
  }

  private problem(message: string, ...details: string[]): void {
    if (this.problemShown) return;
    this.problemShown = true;
    notice(message, 'error', ...details);
  }
}
