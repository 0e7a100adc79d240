/** Small DOM helpers. Text always goes in through textContent, never as HTML. */

/** The element with `data-testid=<id>` (the page's stable selectors). */
export function byTestId<T extends HTMLElement = HTMLElement>(id: string, root: ParentNode = document): T {
  const found = root.querySelector<T>(`[data-testid="${id}"]`);
  if (!found) throw new Error(`the page has no element data-testid=${id}`);
  return found;
}

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: { className?: string; text?: string; testid?: string; title?: string; attrs?: Record<string, string> } = {},
  ...children: Array<Node | string>
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (props.className) node.className = props.className;
  if (props.text !== undefined) node.textContent = props.text;
  if (props.testid) node.dataset.testid = props.testid;
  if (props.title) node.title = props.title;
  for (const [k, v] of Object.entries(props.attrs ?? {})) node.setAttribute(k, v);
  node.append(...children);
  return node;
}

export type NoticeLevel = 'info' | 'error';

/** The banner under the top bar: one message at a time, with optional extra lines. */
export function notice(message: string | null, level: NoticeLevel = 'info', ...details: Array<Node | string>): void {
  const box = byTestId('notice');
  if (message === null) {
    box.hidden = true;
    box.replaceChildren();
    return;
  }
  box.hidden = false;
  box.dataset.level = level;
  const close = el('button', { className: 'notice-close', text: '×', title: 'Dismiss' });
  close.addEventListener('click', () => notice(null));
  box.replaceChildren(el('div', { className: 'notice-text' }, el('strong', { text: message }), ...details.map((d) => el('div', {}, d))), close);
}

/** Calls `fn` once `ms` after the last of a burst of calls. */
export function debounce(fn: () => void, ms: number): { (): void; cancel(): void; pending(): boolean } {
  let timer: ReturnType<typeof setTimeout> | null = null;
  const call = () => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      fn();
    }, ms);
  };
  call.cancel = () => {
    if (timer) clearTimeout(timer);
    timer = null;
  };
  call.pending = () => timer !== null;
  return call;
}

/** "14m 05s", "2h 03m", "45s". */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (h > 0) return `${h}h ${String(m).padStart(2, '0')}m`;
  if (m > 0) return `${m}m ${String(sec).padStart(2, '0')}s`;
  return `${sec}s`;
}
