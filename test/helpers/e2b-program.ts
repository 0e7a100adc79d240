/**
 * An E2B SDK program as its users write one, run by test/master/e2b-tls.test.ts
 * in its own process with nothing but the SDK's environment (E2B_API_KEY,
 * E2B_API_URL, E2B_DOMAIN) and NODE_EXTRA_CA_CERTS; OMEGA_TEST_PROXY is the
 * SDK's `proxy` option, a tunnel that resolves names at Omega's DNS. Prints
 * one JSON line of what it saw, the errors the SDK raised once the sandbox
 * was killed among it.
 */
import { Sandbox, SandboxError, SandboxNotFoundError, TimeoutError } from 'e2b';
import { fetch, ProxyAgent } from 'undici';

const proxy = process.env.OMEGA_TEST_PROXY!;
const sbx = await Sandbox.create('node', { proxy });
let seen: Record<string, unknown>;
try {
  const hi = await sbx.commands.run('echo hi');
  await sbx.files.write('hello.txt', 'from the SDK');
  const read = await sbx.files.read('hello.txt');
  await sbx.commands.run(`node -e "require('http').createServer((q, s) => s.end('preview ok')).listen(3000)"`, { background: true });
  const host = sbx.getHost(3000);
  // As in E2B, the preview is public: no token.
  let preview = '';
  for (let i = 0; i < 50 && preview !== 'preview ok'; i++) {
    const res = await fetch(`https://${host}/`, { dispatcher: new ProxyAgent({ uri: proxy, proxyTunnel: true }) });
    preview = await res.text();
    if (preview !== 'preview ok') await new Promise((r) => setTimeout(r, 100));
  }
  seen = { sandboxId: sbx.sandboxId, stdout: hi.stdout, read, host, preview };
} finally {
  await sbx.kill();
}

/** How the SDK failed: its class (and whether it is one of its own), the message. */
const failure = async (what: () => Promise<unknown>) => {
  try {
    await what();
    return { resolved: true };
  } catch (err) {
    const e = err as Error;
    return { name: e.constructor.name, message: e.message, sdkError: e instanceof SandboxError, notFound: e instanceof SandboxNotFoundError, timeout: e instanceof TimeoutError };
  }
};
seen.afterKill = { run: await failure(() => sbx.commands.run('echo')), read: await failure(() => sbx.files.read('hello.txt')) };
console.log(JSON.stringify(seen));
