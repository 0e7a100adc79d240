import { PREVIEW_TOKEN_PARAM } from '../src/protocol/worker.js';
import { el } from './dom.js';
import { store } from './store.js';
import type { WorkerSocket } from './worker.js';

/**
 * Links to the sandbox's preview hosts, formed from the master's
 * `previewUrl` (`https://{port}-<id>.<zone>/`; `http://{port}.<id>.<zone>:<worker port>/`
 * with TLS off; docs/worker-protocol.md, Previews). Public ports come from preview.list and
 * preview.changed; the user adds others. A private port's link carries the
 * sandbox token once as ?omega_token=, which the worker trades for a cookie
 * and drops from the address.
 */
export class Previews {
  private publicPorts = new Set<number>();
  private readonly off: () => void;

  constructor(
    private readonly box: HTMLElement,
    private readonly sandbox: { id: string; previewUrl: string; token: string },
    private readonly socket: WorkerSocket,
  ) {
    this.off = socket.on('preview.changed', ({ port, public: isPublic }) => {
      if (isPublic) this.publicPorts.add(port);
      else this.publicPorts.delete(port);
      this.render();
    });
    this.render();
  }

  async refresh(): Promise<void> {
    try {
      this.publicPorts = new Set((await this.socket.request('preview.list')).public);
    } catch {
      // offline: keep what we knew
    }
    this.render();
  }

  url(port: number, withToken: boolean): string {
    const base = this.sandbox.previewUrl.replace('{port}', String(port));
    return withToken ? `${base}?${PREVIEW_TOKEN_PARAM}=${encodeURIComponent(this.sandbox.token)}` : base;
  }

  private ports(): number[] {
    return [...new Set([...store.previewPorts(this.sandbox.id), ...this.publicPorts])].sort((a, b) => a - b);
  }

  private render(): void {
    const items = this.ports().map((port) => {
      const isPublic = this.publicPorts.has(port);
      const link = el('a', {
        className: 'preview-link',
        text: `:${port}`,
        testid: `preview-${port}`,
        title: isPublic ? `${this.url(port, false)} (public)` : `${this.url(port, false)} (private: the link carries this sandbox's token)`,
        attrs: { href: this.url(port, !isPublic), target: '_blank', rel: 'noopener noreferrer' },
      });
      const toggle = el('input', { title: 'Public: anyone with the address may open it', attrs: { type: 'checkbox', 'aria-label': `port ${port} public` } });
      toggle.checked = isPublic;
      toggle.addEventListener('change', () => {
        this.socket.request('preview.setPublic', { port, public: toggle.checked }).catch(() => (toggle.checked = !toggle.checked));
      });
      const remove = el('button', { className: 'preview-remove', text: '×', title: 'Remove this link', attrs: { type: 'button' } });
      remove.addEventListener('click', () => {
        store.setPreviewPorts(this.sandbox.id, store.previewPorts(this.sandbox.id).filter((p) => p !== port));
        if (isPublic) this.socket.request('preview.setPublic', { port, public: false }).catch(() => {});
        this.render();
      });
      return el('span', { className: `preview${isPublic ? ' public' : ''}` }, link, el('label', { className: 'preview-public', title: 'public' }, toggle, 'public'), remove);
    });
    const input = el('input', { className: 'preview-port', attrs: { type: 'number', min: '1', max: '65535', placeholder: 'port', 'aria-label': 'preview port' } });
    const add = el('form', { className: 'preview-add' }, input, el('button', { text: '+ preview', attrs: { type: 'submit' } }));
    add.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const port = Number(input.value);
      if (!Number.isInteger(port) || port < 1 || port > 65535) return;
      store.setPreviewPorts(this.sandbox.id, [...new Set([...store.previewPorts(this.sandbox.id), port])]);
      this.render();
    });
    this.box.replaceChildren(el('span', { className: 'label', text: 'Previews' }), ...items, add);
  }

  destroy(): void {
    this.off();
    this.box.replaceChildren();
  }
}
