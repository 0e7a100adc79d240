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

/**
 * The SDK's files, commands and terminals, each call through the TLS
 * ingress as a user's program makes it; what each gave back, for the test
 * to check (the same calls are checked one by one against a worker in
 * test/worker/envd-sdk.test.ts).
 */
async function tour(sbx: Sandbox): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
  await sbx.files.write('tour/bin.dat', bytes.buffer);
  out.bytes = Buffer.from(await sbx.files.read('tour/bin.dat', { format: 'bytes' })).equals(Buffer.from(bytes));
  await sbx.files.write([
    { path: 'tour/a.txt', data: 'a' },
    { path: 'tour/b.txt', data: 'b' },
  ]);
  out.list = (await sbx.files.list('tour')).map((e) => e.name).sort();
  out.exists = [await sbx.files.exists('tour/a.txt'), await sbx.files.exists('tour/nope.txt')];
  out.info = (await sbx.files.getInfo('tour')).type;
  out.makeDir = await sbx.files.makeDir('tour/deep/er');
  out.renamed = (await sbx.files.rename('tour/a.txt', 'tour/deep/a.txt')).name;
  const events: string[] = [];
  const watch = await sbx.files.watchDir('tour/deep', (e) => {
    events.push(`${e.type}:${e.name}`);
  });
  await sbx.files.write('tour/deep/new.txt', 'x');
  for (let i = 0; i < 50 && !events.some((e) => e.endsWith(':new.txt')); i++) await new Promise((r) => setTimeout(r, 50));
  await watch.stop();
  out.watched = events.some((e) => e.endsWith(':new.txt'));
  await sbx.files.remove('tour/b.txt');
  out.removed = !(await sbx.files.exists('tour/b.txt'));
  const both = await sbx.commands.run('echo out; echo err >&2');
  out.streams = [both.stdout, both.stderr, both.exitCode];
  out.exit = await sbx.commands.run('exit 7').then(
    () => null,
    (e: { exitCode?: number }) => e.exitCode,
  );
  out.envCwd = (await sbx.commands.run('pwd; echo $NAME', { cwd: 'tour', envs: { NAME: 'omega' } })).stdout;
  const bg = await sbx.commands.run('sleep 0.2; echo done', { background: true });
  out.waited = (await bg.wait()).stdout;
  const cat = await sbx.commands.run('cat', { background: true, stdin: true });
  await sbx.commands.sendStdin(cat.pid, 'typed\n');
  await sbx.commands.closeStdin(cat.pid);
  out.stdin = (await cat.wait()).stdout;
  const sleeper = await sbx.commands.run('sleep 30', { background: true });
  out.listed = (await sbx.commands.list()).some((p) => p.pid === sleeper.pid);
  out.killed = await sbx.commands.kill(sleeper.pid);
  let term = '';
  const pty = await sbx.pty.create({ cols: 80, rows: 24, onData: (d) => {
      term += Buffer.from(d).toString();
    },
  });
  await sbx.pty.resize(pty.pid, { cols: 120, rows: 40 });
  await sbx.pty.sendInput(pty.pid, new TextEncoder().encode('stty size; echo marker-$((6*7))\r'));
  for (let i = 0; i < 100 && !term.includes('marker-42'); i++) await new Promise((r) => setTimeout(r, 50));
  out.pty = [term.includes('marker-42'), term.includes('40 120'), await sbx.pty.kill(pty.pid)];
  return out;
}
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
  seen = { sandboxId: sbx.sandboxId, stdout: hi.stdout, read, host, preview, tour: await tour(sbx) };
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
