// The web client in a real browser (Debian's chromium through playwright-core)
// against a whole Omega from `omega up`: token, create, the sandbox reached by
// its name (the browser's resolver mapped to what Omega's DNS answers), edit,
// Run with the output in the terminal, a second tab seeing the edits live, a
// preview link, delete and "gone". A screenshot is kept in .tap/screenshots/, and
// with OMEGA_UPDATE_SCREENSHOT=1 written to docs/web-client.png.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import t from 'tap';
import { defaultWebDir } from '../../master/web.js';
import { SANDBOX_ID_FORMAT } from '../../src/ids.js';
import { requireDocker } from '../helpers/docker.js';
import { homeTrusting } from '../helpers/nss.js';
import { startUp } from '../helpers/up.js';

// The functions given to page.evaluate and waitForFunction run in the page; this file is
// typechecked without the DOM library, so their globals are declared here, for this file only.
declare const document: any;
declare const localStorage: any;
declare const location: any;

const CHROMIUM = '/usr/bin/chromium';
/** This file's first host: its own loopback address, so its containers are its own. */
const ADDRESS = '127.0.0.60';
const WAIT_MS = 60_000;
/** Two tabs are driven at once: keep the one in the background running (timers; its frames still slow down, hence bringToFront). */
const CHROMIUM_ARGS = ['--no-proxy-server', '--no-sandbox', '--disable-dev-shm-usage', '--disable-background-timer-throttling', '--disable-renderer-backgrounding'];

/**
 * page.goto, again when Chromium reports ERR_NETWORK_CHANGED: other tests
 * running beside this one add and remove interfaces (network namespaces,
 * veth pairs, Docker networks), and Chromium abandons a navigation in flight
 * when the machine's interfaces change. It says so either way: the error
 * itself, or (seen in CI) the navigation cut short by its error page.
 */
async function goto(page: Page, url: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await page.goto(url);
      return;
    } catch (err) {
      if (attempt >= 5 || !/ERR_NETWORK_CHANGED|interrupted by another navigation to "chrome-error:/.test((err as Error).message)) throw err;
    }
  }
}

function missing(reason: string): void {
  if (process.env.CI) t.fail(reason);
  else t.comment(`skipped: ${reason}`);
}

const ready = (() => {
  if (!existsSync(CHROMIUM)) return missing(`${CHROMIUM} is missing (run infra/scripts/ensure-apt.sh chromium)`), false;
  if (!existsSync(join(defaultWebDir(), 'index.html'))) return missing('the web client is not built (run make web)'), false;
  if (!existsSync('/usr/bin/certutil')) return missing('certutil is missing (run infra/scripts/ensure-apt.sh libnss3-tools)'), false;
  return requireDocker(t, ['omega/sandbox-python:latest']);
})();

/** Waits for `fn` to be true in the page; on timeout fails with `what` and what the page shows. */
async function waitIn(page: Page, what: string, fn: (arg: any) => unknown, arg: string | null, timeout = WAIT_MS): Promise<void> {
  try {
    await page.waitForFunction(fn, arg, { timeout, polling: 100 });
  } catch (err) {
    const shown = await page
      .evaluate(() => ({
        status: document.querySelector('[data-testid="status"]')?.textContent,
        notice: document.querySelector('[data-testid="notice"]')?.textContent,
        file: document.querySelector('[data-testid="editor"]')?.getAttribute('data-path'),
        terminal: document.querySelector('[data-testid="terminal"] .xterm-rows')?.textContent?.slice(-500),
      }))
      .catch(() => null);
    throw new Error(`timed out waiting for ${what}; the page shows ${JSON.stringify(shown)}`, { cause: err });
  }
}

const testid = (id: string) => `[data-testid="${CSS_ESCAPE(id)}"]`;
const CSS_ESCAPE = (s: string) => s.replace(/["\\]/g, '\\$&');
/** The editor's text, line by line as CodeMirror renders it (the documents here are small enough to be rendered whole). */
const editorText = (page: Page) =>
  page.evaluate(() => [...document.querySelectorAll('[data-testid="editor"] .cm-content .cm-line')].map((l) => l.textContent).join('\n'));

/** Replaces the editor's whole text, as typed input (not key by key: autocompletion and bracket closing stay out of it). */
async function setEditor(page: Page, text: string): Promise<void> {
  await page.locator(`${testid('editor')} .cm-content`).click();
  await page.keyboard.press('Control+A');
  await page.keyboard.insertText(text);
}

if (ready) {
  const up = await startUp(t, { address: ADDRESS });
  // The browser trusts the local CA as a user would after importing it: in
  // the NSS database Chromium reads on Linux ($HOME/.pki/nssdb), nothing else.
  const browserEnv = { ...process.env, HOME: homeTrusting(t, join(up.stateDir, 'ca.pem')) };
  const api = async (method: string, path: string, body?: unknown) => {
    const res = await up.fetch(up.masterUrl + path, {
      method,
      headers: { authorization: `Bearer ${up.apiToken}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    return { status: res.status, body: (await res.json()) as any };
  };

  let hostAddress = '';
  let browser: Browser | null = null;
  t.teardown(() => browser?.close());
  let page!: Page;
  let page2!: Page;
  let context!: BrowserContext;
  // Overwritten by each run, in tap's own (git-ignored) directory rather than a new temp dir per run.
  const shots = new URL('../../.tap/screenshots/', import.meta.url).pathname;
  mkdirSync(shots, { recursive: true });

  t.test('the browser resolves the zone as Omega\'s DNS answers it', async (t) => {
    // Where Omega's DNS sends this stack's sandbox names: the browser is told the same, nothing else.
    const probe = await api('POST', '/v1/sandboxes', { template: 'python' });
    t.equal(probe.status, 201, `probe sandbox created: ${JSON.stringify(probe.body)}`);
    [hostAddress = ''] = await up.dig(probe.body.hostname);
    t.ok(hostAddress, `Omega's DNS answers ${probe.body.hostname}: ${hostAddress}`);
    await api('DELETE', `/v1/sandboxes/${probe.body.id}`);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      env: browserEnv,
      args: [`--host-resolver-rules=MAP *.${up.zone} ${hostAddress}`, ...CHROMIUM_ARGS],
    });
    context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    page = await context.newPage();
    page2 = await context.newPage();
    t.comment(`screenshots in ${shots}`);
  });

  let id = '';
  let hostname = '';

  t.test('a browser that does not trust the local CA is refused; one that does loads the page over https', async (t) => {
    const untrusting = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    t.teardown(() => untrusting.close());
    const p = await (await untrusting.newContext()).newPage();
    await t.rejects(goto(p, `${up.masterUrl}/`), /ERR_CERT_AUTHORITY_INVALID/);
    t.match(up.masterUrl, /^https:/);
  });

  t.test('token, create, connected by name', async (t) => {
    await page.bringToFront();
    const failures: string[] = [];
    const onResponse = (r: { status(): number; url(): string }) => r.status() >= 400 && failures.push(`${r.status()} ${r.url()}`);
    const onFailed = (r: { url(): string; failure(): { errorText: string } | null }) => failures.push(`failed ${r.url()}: ${r.failure()?.errorText}`);
    page.on('response', onResponse);
    page.on('requestfailed', onFailed);
    // An answer of 400 or more always counts. A request the browser itself
    // gave up on (once in CI, main.js, with other tests starting containers
    // and network namespaces beside it) is said and the visit made again, up
    // to three times: the page must then load with nothing failed.
    for (let attempt = 1; ; attempt++) {
      failures.length = 0;
      await goto(page, `${up.masterUrl}/`);
      await page.waitForLoadState('networkidle');
      if (attempt >= 3 || !failures.length || !failures.every((f) => f.startsWith('failed '))) break;
      t.comment(`the browser gave up on a request; visiting again (${failures.join(', ')})`);
    }
    t.same(failures, [], 'a first visit without a token makes no request that fails');
    page.off('response', onResponse);
    page.off('requestfailed', onFailed);
    t.equal(await page.locator(testid('create')).isDisabled(), true, 'no token yet: Create is disabled');
    await page.locator(testid('api-token')).fill('not-the-token-0123456789');
    await page.locator(testid('api-token-save')).click();
    await waitIn(page, 'the wrong token to be refused', () => document.querySelector('[data-testid="api-token-state"]')?.getAttribute('data-state') === 'refused', null);
    t.match(await page.locator(testid('notice')).innerText(), /401/, 'a 401 is said clearly');

    // The sign-in link omega up prints: the token in the fragment, read once and dropped from the address.
    t.match(up.output(), `${up.masterUrl}/#token=`);
    await goto(page, `${up.masterUrl}/#token=${encodeURIComponent(up.apiToken)}`);
    await waitIn(page, 'Create to be enabled', () => !document.querySelector('[data-testid="create"]').disabled, null);
    t.notMatch(page.url(), up.apiToken, 'the API token is not in the URL');
    t.equal(await page.evaluate(() => localStorage.getItem('omega.apiToken')), up.apiToken, 'kept by this browser');
    await page.locator(testid('template')).selectOption('python');
    await page.locator(testid('create')).click();

    await waitIn(page, 'the sandbox id in the fragment', () => location.hash.length > 1, null);
    id = new URL(page.url()).hash.slice(1);
    t.match(id, SANDBOX_ID_FORMAT);
    await waitIn(page, 'the hostname', (id) => document.querySelector('[data-testid="hostname"]')?.textContent?.startsWith(`${id}.`), id);
    hostname = (await page.locator(testid('hostname')).innerText()).trim();
    t.equal(hostname, `${id}.${up.zone}`);
    t.same(await up.dig(hostname), [hostAddress], `the page's hostname resolves at Omega's DNS to the host (${hostAddress})`);

    await waitIn(page, 'status connected', () => document.querySelector('[data-testid="status"]')?.getAttribute('data-state') === 'connected', null);
    t.match(await page.locator(testid('status')).innerText(), /connected/);
    t.equal(await page.locator(testid(`sandbox-${id}`)).count(), 1, 'listed under "My sandboxes"');
  });

  const marker = `omega-web-${Date.now().toString(36)}`;
  const waitSaved = (p: Page) => waitIn(p, 'the edit saved', () => document.querySelector('[data-testid="save-state"]')?.getAttribute('data-state') === 'saved', null);
  const waitOpen = (p: Page, path: string) => waitIn(p, `${path} open`, (path) => document.querySelector('[data-testid="editor"]')?.getAttribute('data-path') === path, path);

  t.test('New file, edit, Run: the output in the terminal', async (t) => {
    await page.bringToFront();
    await page.locator(testid('new-file')).click();
    await page.locator(testid('new-file-name')).fill('greeting.py');
    await page.keyboard.press('Enter');
    await waitOpen(page, 'greeting.py');
    t.ok(await page.locator(testid('file-greeting.py')).isVisible(), 'the new file is in the tree');
    const greeting = ['import platform', '', '', 'def greet(name: str) -> str:', '    return f"Hello, {name}! (Python {platform.python_version()})"', ''].join('\n');
    await setEditor(page, greeting);
    t.equal(await editorText(page), greeting, 'the editor holds the typed code');
    await waitSaved(page);

    await page.locator(testid('file-main.py')).click();
    await waitOpen(page, 'main.py');
    // The code has the marker in lower case; only running it prints it in upper case.
    const main = ['from greeting import greet', '', `RUN = "${marker}"`, '', 'print(greet("Omega"))', 'print("run", RUN.upper())', ''].join('\n');
    await setEditor(page, main);
    await waitSaved(page);
    await page.locator(testid('run')).click();
    const expected = `run ${marker.toUpperCase()}`;
    await waitIn(page, `"${expected}" in the terminal`, (m) => document.querySelector('[data-testid="terminal"] .xterm-rows')?.textContent?.includes(m), expected);
    const shown = await page.locator(`${testid('terminal')} .xterm-rows`).innerText();
    t.match(shown, /python3 main\.py/, 'Run typed the command');
    t.match(shown, /Hello, Omega! \(Python 3\.\d+/, 'the program ran in the sandbox, with the saved module, and printed into the terminal');

    await page.screenshot({ path: join(shots, 'web-client.png') });
    if (process.env.OMEGA_UPDATE_SCREENSHOT === '1') {
      await page.screenshot({ path: new URL('../../docs/web-client.png', import.meta.url).pathname });
      t.comment('docs/web-client.png updated');
    }
  });

  t.test('a second tab on /#<id> attaches and sees edits live', async (t) => {
    await goto(page2, `${up.masterUrl}/#${id}`);
    await waitIn(page2, 'tab 2 connected', () => document.querySelector('[data-testid="status"]')?.getAttribute('data-state') === 'connected', null);
    await waitOpen(page2, 'main.py');
    t.match(await editorText(page2), `RUN = "${marker}"`, 'tab 2 shows the saved code');

    // A page in the background gets a frame a second: the one typed into comes to the front.
    await page.bringToFront();
    const edited = `print("second edit ${marker}")`;
    await setEditor(page, edited);
    await waitIn(page2, 'the edit from tab 1 in tab 2', (m) => document.querySelector('[data-testid="editor"] .cm-content')?.textContent?.includes(`second edit ${m}`), marker);
    t.equal(await editorText(page2), edited, 'tab 2 has exactly tab 1\'s text');
  });

  t.test('a dropped connection comes back, the terminal re-attached with its scrollback', async (t) => {
    await page.bringToFront();
    await context.setOffline(true);
    await waitIn(page, 'the page to notice the drop', () => document.querySelector('[data-testid="status"]')?.getAttribute('data-state') !== 'connected', null);
    t.pass(`status: ${await page.locator(testid('status')).innerText()}`);
    await context.setOffline(false);
    await waitIn(page, 'connected again', () => document.querySelector('[data-testid="status"]')?.getAttribute('data-state') === 'connected', null);
    const expected = `run ${marker.toUpperCase()}`;
    await waitIn(page, 'the scrollback back in the terminal', (m) => document.querySelector('[data-testid="terminal"] .xterm-rows')?.textContent?.includes(m), expected);
    await page.locator(`${testid('terminal')} .xterm`).click();
    await page.keyboard.type('echo again-$((6*7))\n');
    await waitIn(page, 'the re-attached terminal to take input', () => document.querySelector('[data-testid="terminal"] .xterm-rows')?.textContent?.includes('again-42'), null);
    t.pass('the same shell, re-attached, with its scrollback, takes input');
  });

  t.test('a browser whose resolver does not know the zone says so, and does not fall back to the address', async (t) => {
    const plain = await chromium.launch({ executablePath: CHROMIUM, env: browserEnv, args: CHROMIUM_ARGS });
    t.teardown(() => plain.close());
    const ctx = await plain.newContext({ viewport: { width: 1280, height: 800 } });
    // The same tokens as the first browser: only name resolution differs.
    const storage = await page.evaluate(() => ({ ...localStorage }));
    await ctx.addInitScript((s) => {
      for (const [k, v] of Object.entries(s)) localStorage.setItem(k, v);
    }, storage);
    const p = await ctx.newPage();
    const sockets: string[] = [];
    p.on('websocket', (ws) => sockets.push(ws.url()));
    await goto(p, `${up.masterUrl}/#${id}`);
    await waitIn(p, 'status unreachable', () => document.querySelector('[data-testid="status"]')?.getAttribute('data-state') === 'unreachable', null);
    const text = await p.locator(testid('notice')).innerText();
    t.match(text, `cannot reach ${hostname}`, 'names the host');
    t.match(text, `zone ${up.zone}`, 'names the zone');
    t.match(text, 'docs/dns-delegation.md', 'points at the delegation docs');
    t.match(text, hostAddress, 'shows the address the master reported');
    t.notMatch(await p.locator(testid('status')).innerText(), /\bconnected\b/);
    t.ok(sockets.length > 0, 'it tried');
    t.same(sockets.filter((u) => new URL(u).hostname !== hostname), [], `every WebSocket went to the name: ${sockets.join(' ')}`);
  });

  t.test('time left, preview links', async (t) => {
    await page.bringToFront();
    const left = await page.locator(testid('time-left')).innerText();
    t.match(left, /^\d+(h \d\dm|m \d\ds|s)$/, `time left shown: ${left}`);
    t.ok(Number(await page.locator(testid('time-left')).getAttribute('data-ms')) > 60_000, 'minutes left');

    await page.locator(`${testid('preview-links')} input.preview-port`).fill('8000');
    await page.locator(`${testid('preview-links')} button[type="submit"]`).click();
    const href = await page.locator(testid('preview-8000')).getAttribute('href');
    const sandbox = (await api('GET', `/v1/sandboxes/${id}`)).body;
    const port = sandbox.port === 443 ? '' : `:${sandbox.port}`;
    t.match(href, new RegExp(`^https://8000-${hostname.replace(/\./g, '\\.')}${port}/\\?omega_token=.+`), `preview link over https, one label: ${href}`);

    // A server in the sandbox, started from the page's terminal, opened through the link.
    await page.locator(`${testid('terminal')} .xterm`).click();
    await page.keyboard.type('python3 -m http.server 8000\n');
    const preview = await context.newPage();
    t.teardown(() => preview.close());
    let listing = '';
    for (let i = 0; i < 40 && !listing.includes('main.py'); i++) {
      // A preview not served yet fails its navigation: the loop asks again until it lists the file.
      await goto(preview, href!).catch(() => {});
      listing = await preview.content().catch(() => '');
      if (!listing.includes('main.py')) await preview.waitForTimeout(500);
    }
    t.match(listing, 'main.py', 'the preview shows the workspace listing served from inside the sandbox');
    t.notMatch(preview.url(), 'omega_token', 'the worker took the token out of the address');
  });

  t.test('Pause, then Resume: the same shell goes on', async (t) => {
    await page.bringToFront();
    await page.locator(testid('pause')).click();
    await waitIn(page, 'status paused', () => document.querySelector('[data-testid="status"]')?.getAttribute('data-state') === 'paused', null);
    t.equal((await api('GET', `/v1/sandboxes/${id}`)).body.state, 'paused', 'the master has it paused');
    t.equal(await page.locator(testid('pause')).innerText(), 'Resume');
    // A page loaded now (the welcome page, which opens nothing) lists it as paused.
    const lister = await context.newPage();
    await goto(lister, `${up.masterUrl}/`);
    await waitIn(lister, 'the list to say paused', (sid) => document.querySelector(`[data-testid="sandbox-${sid}"]`)?.parentElement?.textContent?.includes('paused'), id);
    t.pass('the sandbox list says it is paused');
    await lister.close();
    await page.locator(testid('pause')).click();
    await waitIn(page, 'connected again', () => document.querySelector('[data-testid="status"]')?.getAttribute('data-state') === 'connected', null);
    t.equal((await api('GET', `/v1/sandboxes/${id}`)).body.state, 'running');
    await page.locator(`${testid('terminal')} .xterm`).click();
    await page.keyboard.press('Control+C');
    await page.keyboard.type('echo resumed-$((6*7))\n');
    await waitIn(page, 'the resumed terminal to take input', () => document.querySelector('[data-testid="terminal"] .xterm-rows')?.textContent?.includes('resumed-42'), null);
    t.pass('the shell from before the pause answers');
  });

  t.test('delete: both tabs say gone', async (t) => {
    await page.bringToFront();
    page.once('dialog', (d) => void d.accept());
    await page.locator(testid('delete')).click();
    await waitIn(page, 'status gone', () => document.querySelector('[data-testid="status"]')?.getAttribute('data-state') === 'gone', null);
    t.match(await page.locator(testid('status')).innerText(), /gone/);
    await waitIn(page2, 'tab 2 to see it gone', () => document.querySelector('[data-testid="status"]')?.getAttribute('data-state') === 'gone', null);
    t.match(await page2.locator(testid('status')).innerText(), /gone/);
    await waitIn(page, 'the sandbox to leave "My sandboxes"', (id) => !document.querySelector(`[data-testid="sandbox-${id}"]`), id);
    // The page calls it gone from `deleting` on; the master forgets it once the container is removed.
    let after = await api('GET', `/v1/sandboxes/${id}`);
    for (let i = 0; i < 120 && after.status === 200 && after.body.state === 'deleting'; i++) {
      await new Promise((r) => setTimeout(r, 500));
      after = await api('GET', `/v1/sandboxes/${id}`);
    }
    t.equal(after.status, 404, `the master has no such sandbox: ${JSON.stringify(after.body)}`);
  });

  t.test('the last screen', async () => {
    await page?.screenshot({ path: join(shots, 'last.png') });
  });
}
