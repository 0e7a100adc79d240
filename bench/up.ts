/**
 * `make bench-up`: what a newcomer waits for.
 *   start   `omega up` from spawn to "Omega is up." (own Redis, images built,
 *           a local CA made: its ready check is the master's first https answer)
 *   create  a sandbox until a client is connected to its worker (hello received):
 *           from the web client in Debian's chromium (click Create -> status
 *           "connected") against a Node client doing the same calls (POST
 *           /v1/sandboxes, then the WebSocket) in the same run: the ratio is
 *           what the page adds
 *   stop    Ctrl-C with sandboxes running until `omega up` has exited, every
 *           sandbox deleted and nothing left
 */
import { chromium } from 'playwright-core';
import WebSocket from 'ws';
import { join } from 'node:path';
import { homeTrusting } from '../test/helpers/nss.js';
import { startUp } from '../test/helpers/up.js';

// Evaluated in the page, where the DOM exists; this program is typechecked without the DOM library.
declare const document: any;
declare const performance: { getEntriesByName(n: string): { startTime: number }[]; now(): number };

const N = Number(process.env.BENCH_CREATES ?? 15);
const RUNNING_AT_STOP = Number(process.env.BENCH_RUNNING_AT_STOP ?? 5);
const ADDRESS = '127.0.0.120';

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const fmt = (xs: number[]) => `p50 ${pct(xs, 50).toFixed(0)} ms, p90 ${pct(xs, 90).toFixed(0)} ms (n=${xs.length})`;

async function main(): Promise<void> {
  const cleanups: (() => unknown)[] = [];
  try {
    const t0 = performance.now();
    const up = await startUp({ teardown: (fn) => cleanups.push(fn) }, { address: ADDRESS, env: { OMEGA_LOCAL_POOL_SIZE: '2' } });
    const startMs = performance.now() - t0;
    console.log(`omega up start to ready            ${startMs.toFixed(0)} ms`);
    const auth = { authorization: `Bearer ${up.apiToken}` };
    const api = async (method: string, path: string, body?: unknown) => {
      const res = await up.fetch(up.masterUrl + path, { method, headers: { ...auth, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined });
      if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
      return res.json() as Promise<any>;
    };
    /** Both clients start with the same warm pool. */
    const poolReady = async () => {
      for (let i = 0; i < 200; i++) {
        const m = await (await up.fetch(`${up.masterUrl}/metrics`)).text();
        const load = Number(/omega_master_hosts\{status="load"\} (\d+)/.exec(m)?.[1] ?? 0);
        if (load === 0) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      await new Promise((r) => setTimeout(r, 1500)); // the pool refills after a delete
    };

    const node: number[] = [];
    for (let i = 0; i < N; i++) {
      await poolReady();
      const t1 = performance.now();
      const sb = await api('POST', '/v1/sandboxes', { template: 'python' });
      await new Promise<void>((resolve, reject) => {
        // By name at the address Omega's DNS gave, over wss through the host's ingress, trusting the local CA.
        const ws = new WebSocket(sb.url, ['omega.v1', `omega.token.${sb.token}`], {
          ...(up.caPem ? { ca: up.caPem } : {}),
          lookup: ((_h: string, o: { all?: boolean }, cb: (...a: unknown[]) => void) => (o?.all ? cb(null, [{ address: sb.address, family: 4 }]) : cb(null, sb.address, 4))) as never,
        });
        ws.once('message', () => (ws.close(), resolve()));
        ws.once('error', reject);
      });
      node.push(performance.now() - t1);
      await api('DELETE', `/v1/sandboxes/${sb.id}`);
      process.stdout.write('.');
    }

    const probe = await api('POST', '/v1/sandboxes', { template: 'python' });
    const [address] = await up.dig(probe.hostname);
    await api('DELETE', `/v1/sandboxes/${probe.id}`);
    const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', env: { ...process.env, HOME: homeTrusting({ teardown: (fn) => cleanups.push(fn) }, join(up.stateDir, 'ca.pem')) }, args: [`--host-resolver-rules=MAP *.${up.zone} ${address}`, '--no-proxy-server', '--no-sandbox'] });
    cleanups.push(() => browser.close());
    const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
    await page.goto(`${up.masterUrl}/`);
    await page.locator('[data-testid="api-token"]').fill(up.apiToken);
    await page.locator('[data-testid="api-token-save"]').click();
    await page.waitForFunction(() => !document.querySelector('[data-testid="create"]').disabled);
    const web: number[] = [];
    /** The same span measured by the page itself (marks in web/), without playwright's click and polling. */
    const inPage: number[] = [];
    for (let i = 0; i < N; i++) {
      await poolReady();
      await page.goto(`${up.masterUrl}/`);
      await page.waitForFunction(() => !document.querySelector('[data-testid="create"]').disabled);
      await page.locator('[data-testid="template"]').selectOption('python');
      const t1 = performance.now();
      await page.locator('[data-testid="create"]').click();
      await page.waitForFunction(() => document.querySelector('[data-testid="status"]')?.dataset.state === 'connected', null, { polling: 'raf', timeout: 60_000 });
      web.push(performance.now() - t1);
      inPage.push(
        await page.evaluate(() => {
          const [a] = performance.getEntriesByName('omega:create');
          const [b] = performance.getEntriesByName('omega:connected');
          return b!.startTime - a!.startTime;
        }),
      );
      const id = new URL(page.url()).hash.slice(1);
      await api('DELETE', `/v1/sandboxes/${id}`);
      process.stdout.write('.');
    }
    console.log('');
    console.log(`create to connected, Node client    ${fmt(node)}`);
    console.log(`create to connected, web client     ${fmt(web)}`);
    const ratio = pct(web, 50) / pct(node, 50);
    console.log(`  the same, measured in the page     ${fmt(inPage)}`);
    console.log(`web / node (p50)                    ${ratio.toFixed(2)} (in-page ${(pct(inPage, 50) / pct(node, 50)).toFixed(2)})`);

    for (let i = 0; i < RUNNING_AT_STOP; i++) await api('POST', '/v1/sandboxes', { template: 'python' });
    const t2 = performance.now();
    const code = await up.stop('SIGINT');
    const stopMs = performance.now() - t2;
    console.log(`Ctrl-C to exit, ${RUNNING_AT_STOP} sandboxes running    ${stopMs.toFixed(0)} ms (exit ${code})`);
    if (!/deleted \d+ sandbox/.test(up.output())) throw new Error('omega up did not delete the sandboxes');
    console.log(JSON.stringify({ startMs: Math.round(startMs), nodeP50: Math.round(pct(node, 50)), webP50: Math.round(pct(web, 50)), inPageP50: Math.round(pct(inPage, 50)), ratio: Number(ratio.toFixed(2)), stopMs: Math.round(stopMs) }));
  } finally {
    for (const fn of cleanups.reverse()) await fn();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
