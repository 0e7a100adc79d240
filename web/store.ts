/**
 * What the page keeps in the browser. localStorage (shared by every tab of
 * this origin): the API token, and each sandbox created here with its token,
 * which the master shows only once, at create, so a second tab on `/#<id>`
 * can attach. sessionStorage (this tab only): the terminal the tab uses, so a
 * reload re-attaches to it.
 */

const API_TOKEN = 'omega.apiToken';
const SANDBOXES = 'omega.sandboxes';

export interface SavedSandbox {
  id: string;
  token: string;
  hostname: string;
  template: string;
  createdAt: string;
}

function readJson<T>(storage: Storage, key: string, fallback: T): T {
  try {
    const raw = storage.getItem(key);
    return raw ? (JSON.parse(raw) as T) : fallback;
  } catch {
    return fallback;
  }
}

export const store = {
  apiToken(): string | null {
    return localStorage.getItem(API_TOKEN);
  },
  setApiToken(token: string | null): void {
    if (token) localStorage.setItem(API_TOKEN, token);
    else localStorage.removeItem(API_TOKEN);
  },

  sandboxes(): SavedSandbox[] {
    const all = readJson<Record<string, SavedSandbox>>(localStorage, SANDBOXES, {});
    return Object.values(all).sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  },
  sandbox(id: string): SavedSandbox | null {
    return readJson<Record<string, SavedSandbox>>(localStorage, SANDBOXES, {})[id] ?? null;
  },
  saveSandbox(s: SavedSandbox): void {
    const all = readJson<Record<string, SavedSandbox>>(localStorage, SANDBOXES, {});
    all[s.id] = s;
    localStorage.setItem(SANDBOXES, JSON.stringify(all));
  },
  forgetSandbox(id: string): void {
    const all = readJson<Record<string, SavedSandbox>>(localStorage, SANDBOXES, {});
    delete all[id];
    localStorage.setItem(SANDBOXES, JSON.stringify(all));
    localStorage.removeItem(`omega.previews.${id}`);
    sessionStorage.removeItem(`omega.term.${id}`);
    sessionStorage.removeItem(`omega.file.${id}`);
  },

  termId(sandboxId: string): string | null {
    return sessionStorage.getItem(`omega.term.${sandboxId}`);
  },
  setTermId(sandboxId: string, termId: string | null): void {
    if (termId) sessionStorage.setItem(`omega.term.${sandboxId}`, termId);
    else sessionStorage.removeItem(`omega.term.${sandboxId}`);
  },

  /** The file this tab had open. */
  openFile(sandboxId: string): string | null {
    return sessionStorage.getItem(`omega.file.${sandboxId}`);
  },
  setOpenFile(sandboxId: string, path: string | null): void {
    if (path) sessionStorage.setItem(`omega.file.${sandboxId}`, path);
    else sessionStorage.removeItem(`omega.file.${sandboxId}`);
  },

  /** Preview ports the user asked for (private ones are not listed by the worker). */
  previewPorts(sandboxId: string): number[] {
    return readJson<number[]>(localStorage, `omega.previews.${sandboxId}`, []);
  },
  setPreviewPorts(sandboxId: string, ports: number[]): void {
    localStorage.setItem(`omega.previews.${sandboxId}`, JSON.stringify(ports));
  },
};
