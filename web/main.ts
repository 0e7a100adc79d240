import { SANDBOX_ID_PATTERN } from '../src/protocol/worker.js';
import { ApiError, MasterApi, type SandboxView } from './api.js';
import { byTestId, el, notice } from './dom.js';
import { Session } from './session.js';
import { store } from './store.js';

/**
 * The page: the API token, the template choice and Create, this browser's
 * sandboxes, and the open one, named by the fragment (`/#<id>`) so a second
 * tab on the same address attaches to the same sandbox.
 */

const api = new MasterApi(() => store.apiToken());
const SANDBOX_ID = new RegExp(SANDBOX_ID_PATTERN);
let session: Session | null = null;
/** The sandbox this tab just created, with the create's answer: its session writes the starter file and connects without asking the master again. */
let fresh: { id: string; view: SandboxView } | null = null;

function tokenState(state: 'missing' | 'ok' | 'refused' | 'unreachable'): void {
  const s = byTestId('api-token-state');
  s.dataset.state = state;
  s.textContent = { missing: 'the master needs its API token', ok: 'token ok', refused: 'token refused', unreachable: 'master unreachable' }[state];
}

function apiProblem(what: string, err: unknown): void {
  if (err instanceof ApiError && err.status === 401) {
    tokenState('refused');
    notice('The master refused the API token (401).', 'error', 'Enter the value of OMEGA_API_TOKEN above (make run keeps it in .omega/api-token).');
  } else {
    notice(what, 'error', err instanceof ApiError ? `${err.code}: ${err.message}` : String(err));
  }
}

async function loadTemplates(): Promise<boolean> {
  const select = byTestId<HTMLSelectElement>('template');
  const create = byTestId<HTMLButtonElement>('create');
  create.disabled = true;
  try {
    const templates = await api.templates();
    const previous = select.value || 'python';
    select.replaceChildren(...templates.map((t) => el('option', { text: t, attrs: { value: t } })));
    if (templates.includes(previous)) select.value = previous;
    create.disabled = false;
    tokenState('ok');
    return true;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401 && !store.apiToken()) tokenState('missing');
    else if (err instanceof ApiError && err.status === 0) tokenState('unreachable');
    if (store.apiToken() || !(err instanceof ApiError) || err.status !== 401) apiProblem('Could not list the templates', err);
    return false;
  }
}

async function create(): Promise<void> {
  const button = byTestId<HTMLButtonElement>('create');
  const template = byTestId<HTMLSelectElement>('template').value;
  button.disabled = true;
  button.textContent = 'Creating…';
  notice(null);
  // Marks for the devtools' Performance panel and bench/up.ts: create -> connected.
  performance.clearMarks();
  performance.mark('omega:create');
  try {
    const c = await api.create(template);
    store.saveSandbox({ id: c.id, token: c.token, hostname: c.hostname, template: c.template, createdAt: c.createdAt });
    fresh = { id: c.id, view: c };
    location.hash = c.id;
  } catch (err) {
    apiProblem(`Could not create a ${template} sandbox`, err);
  } finally {
    button.disabled = false;
    button.textContent = 'Create sandbox';
  }
}

function renderList(): void {
  const list = byTestId('sandbox-list');
  const saved = store.sandboxes();
  byTestId('sandbox-count').textContent = String(saved.length);
  const current = session?.id;
  list.replaceChildren(
    ...saved.map((s) =>
      el(
        'li',
        { className: s.id === current ? 'current' : '' },
        el('a', { text: s.id, attrs: { href: `#${s.id}` }, testid: `sandbox-${s.id}` }),
        el('span', { className: 'muted', text: ` ${s.template} · ${new Date(s.createdAt).toLocaleTimeString()}${states.get(s.id) === 'paused' ? ' · paused' : ''}` }),
      ),
    ),
  );
  if (!saved.length) list.append(el('li', { className: 'muted', text: 'None yet.' }));
}

/** The state the master last gave for each listed sandbox (the list says which are paused). */
const states = new Map<string, string>();

/** Forget the sandboxes the master no longer has (their tokens are useless now). */
async function pruneList(): Promise<void> {
  await Promise.all(
    store.sandboxes().map(async (s) => {
      try {
        states.set(s.id, (await api.get(s.id)).state);
      } catch (err) {
        if (err instanceof ApiError && err.status === 404) store.forgetSandbox(s.id);
      }
    }),
  );
  renderList();
}

function onGone(id: string, reason: string, view: SandboxView | null): void {
  // Deleted or expired: nothing brings it back. A lost one stays listed while the master lists it.
  if (view?.state !== 'lost' || reason === 'deleted') store.forgetSandbox(id);
  renderList();
}

function route(): void {
  const id = decodeURIComponent(location.hash.slice(1));
  if (session && session.id === id) return;
  session?.dispose();
  session = null;
  notice(null);
  if (!id || !SANDBOX_ID.test(id)) {
    document.body.dataset.view = 'welcome';
    renderList();
    return;
  }
  session = new Session(id, {
    api,
    fresh: fresh?.id === id,
    created: fresh?.id === id ? fresh.view : undefined,
    onGone,
    reopen: () => {
      session?.dispose();
      session = null;
      route();
    },
  });
  fresh = null;
  void session.start();
  renderList();
}

/**
 * `#token=<api token>` (the sign-in link `omega up` prints): kept as this
 * browser's token and dropped from the address bar at once, so it stays out
 * of history, bookmarks and screenshots. A fragment never reaches a server.
 */
function takeTokenFromFragment(): boolean {
  const m = /^#token=([^&]+)$/.exec(location.hash);
  if (!m) return false;
  store.setApiToken(decodeURIComponent(m[1]!));
  history.replaceState(null, '', location.pathname + location.search);
  return true;
}

function init(): void {
  takeTokenFromFragment();
  const input = byTestId<HTMLInputElement>('api-token');
  input.value = store.apiToken() ?? '';
  const signedIn = () => {
    notice(null);
    void loadTemplates().then((ok) => {
      if (!ok) return;
      void pruneList();
      route();
    });
  };
  byTestId('token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    store.setApiToken(input.value.trim() || null);
    signedIn();
  });
  byTestId('create').addEventListener('click', () => void create());
  // Another tab created or forgot a sandbox, or changed the token.
  window.addEventListener('storage', (ev) => {
    if (ev.key === 'omega.sandboxes') renderList();
    if (ev.key === 'omega.apiToken') input.value = store.apiToken() ?? '';
  });
  window.addEventListener('hashchange', () => {
    if (!takeTokenFromFragment()) return route();
    input.value = store.apiToken() ?? '';
    signedIn();
  });
  renderList();
  if (store.apiToken()) {
    void loadTemplates().then((ok) => {
      if (ok) void pruneList();
    });
  } else {
    // A first visit: nothing to ask the master yet (it would only answer 401).
    byTestId<HTMLButtonElement>('create').disabled = true;
    tokenState('missing');
  }
  route();
}

init();
