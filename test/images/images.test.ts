// The sandbox images against the real engine: what docs/sandbox-contract.md
// promises of them, and that `make images` with nothing changed builds nothing.
import { execFile as execFileCb, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { promisify } from 'node:util';
import t from 'tap';
import { sleep } from '../helpers/ports.js';

const execFile = promisify(execFileCb);
const TEMPLATES = ['node', 'python'] as const;
const BUILD = new URL('../../infra/images/build.sh', import.meta.url).pathname;
// Every container this file starts carries it, so teardown finds them all.
const LABEL = `omega.test=images-${process.pid}`;

async function docker(...args: string[]): Promise<string> {
  const { stdout } = await execFile('docker', args, { maxBuffer: 16 << 20 });
  return stdout.trim();
}

/** `bash -c script` in a throwaway container of the image, as the image's user. */
function sh(image: string, script: string, ...runArgs: string[]): Promise<string> {
  return docker('run', '--rm', '--label', LABEL, ...runArgs, '--entrypoint', 'bash', image, '-c', script);
}

/** GET over node:http (its socket keeps the process alive, unlike fetch's), bounded in time. */
function httpGet(url: string, timeoutMs = 2000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

/** The worker's /healthz once it answers 200; fails at once, with its logs, if the container exits. */
async function healthz(id: string, url: string, timeoutMs = 15_000): Promise<{ status: number; body: string }> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const res = await httpGet(url);
      if (res.status === 200) return res;
      last = `status ${res.status}`;
    } catch (err) {
      last = (err as Error).message;
    }
    if ((await docker('inspect', '-f', '{{.State.Running}}', id)) !== 'true') {
      const logs = await execFile('docker', ['logs', id]).then((r) => r.stdout + r.stderr, (err: Error) => err.message);
      throw new Error(`the container exited; its logs:\n${logs}`);
    }
    if (Date.now() > deadline) throw new Error(`${url} did not answer 200 within ${timeoutMs} ms: ${last}`);
    await sleep(100);
  }
}

function dockerAnswers(): boolean {
  try {
    execFileSync('docker', ['info'], { stdio: 'ignore', timeout: 20_000 });
    return true;
  } catch {
    return false;
  }
}

if (!dockerAnswers()) {
  // make test starts the engine; in CI its absence is a failure, not a skip.
  if (process.env.CI) t.fail('no Docker engine answers `docker info`');
  else t.plan(0, 'no Docker engine answers `docker info` (make docker starts one)');
} else {
  t.teardown(async () => {
    const ids = (await docker('ps', '-aq', '--filter', `label=${LABEL}`)).split('\n').filter(Boolean);
    if (ids.length) await docker('rm', '-f', ...ids);
  });

  // First: bring the images up to date (a no-op after `make images`), then a
  // second run must find every image and build nothing.
  t.test('build.sh with nothing changed skips every image', async (t) => {
    await execFile(BUILD, [], { maxBuffer: 16 << 20 });
    const { stdout } = await execFile(BUILD, [], { maxBuffer: 16 << 20 });
    // e2b: the template fit for the E2B SDK (its own checks: test/master/e2b-template.test.ts).
    for (const repo of ['rootfs', 'os', 'base', ...TEMPLATES, 'e2b']) {
      t.match(stdout, new RegExp(`omega/sandbox-${repo}:[0-9a-f]{16} exists; skipped`), `sandbox-${repo} skipped`);
    }
    t.match(stdout, /images up to date, nothing to build/);
    t.notMatch(stdout, /Step \d+\/\d+/, 'no docker build ran');
  });

  for (const template of TEMPLATES) {
    const image = `omega/sandbox-${template}:latest`;

    t.test(`${image}: tags, labels and the contract's configuration`, async (t) => {
      const [info] = JSON.parse(await docker('image', 'inspect', image));
      const labels = info.Config.Labels ?? {};
      t.equal(labels['omega.template'], template);
      t.match(labels['omega.hash'], /^[0-9a-f]{16}$/);
      t.ok(
        info.RepoTags.includes(`omega/sandbox-${template}:${labels['omega.hash']}`),
        ':latest and :<omega.hash> are the same image',
      );
      t.equal(info.Config.User, '1000:1000');
      t.equal(info.Config.WorkingDir, '/workspace');
      t.ok(info.Config.Env.includes('HOME=/workspace'));
      t.same(Object.keys(info.Config.ExposedPorts ?? {}), ['8080/tcp']);
      t.same(info.Config.Entrypoint, ['/usr/bin/tini', '--', 'node', '/opt/omega/worker/worker.mjs']);
    });

    t.test(`${image}: runs as 1000 with /workspace its own, and has its tools`, async (t) => {
      const out = await sh(image, 'id -u; id -g; stat -c %u:%g /workspace; node --version; git --version; echo $HOME');
      const [uid, gid, owner, node, git, home] = out.split('\n');
      t.equal(uid, '1000');
      t.equal(gid, '1000');
      t.equal(owner, '1000:1000', '/workspace owned by the sandbox user');
      t.equal(node, process.version, "the host's node");
      t.match(git, /^git version 2\./);
      t.equal(home, '/workspace');

      // A new named volume at /workspace copies the image's ownership.
      const volume = `omega-test-images-${process.pid}-${template}`;
      t.teardown(() => docker('volume', 'rm', '-f', volume));
      t.equal(await sh(image, 'stat -c %u:%g /workspace && touch /workspace/x && echo ok', '-v', `${volume}:/workspace`), '1000:1000\nok');

      if (template === 'node') {
        const [npm, npx] = (await sh(image, 'npm --version; npx --version')).split('\n');
        t.match(npm, /^\d+\.\d+\.\d+$/, 'npm runs');
        t.equal(npx, npm, 'npx is the same npm');
        // Global installs go below $HOME (the root is read-only), also in a login shell.
        const global = await sh(
          image,
          'mkdir /tmp/p && cd /tmp/p && printf \'{"name":"hello","version":"1.0.0","bin":{"hello":"h.js"}}\' >package.json' +
            ' && printf \'#!/usr/bin/env node\\nconsole.log("hello")\\n\' >h.js' +
            ' && npm install --global --offline --no-audit --no-fund . >/dev/null 2>&1 && bash -lc hello',
          '--read-only', '--tmpfs', '/tmp:exec', '--tmpfs', '/workspace:exec,uid=1000,gid=1000',
        );
        t.equal(global, 'hello', 'npm install -g works with a read-only root');
      } else {
        const [python, pip, venv] = (
          await sh(image, 'python3 --version; pip --version; python3 -m venv /tmp/v && /tmp/v/bin/python -c "print(1)"', '--read-only', '--tmpfs', '/tmp')
        ).split('\n');
        t.match(python, /^Python 3\.\d+/);
        t.match(pip, /^pip \d+/);
        t.equal(venv, '1', 'python3 -m venv works with a read-only root');
      }
    });

    t.test(`${image}: the worker answers /healthz on a published 127.0.0.1 port, read-only and without capabilities`, async (t) => {
      const id = await docker(
        'run', '-d', '--label', LABEL,
        '--read-only', '--tmpfs', '/tmp', '--user', '1000:1000', '--cap-drop', 'ALL',
        '--security-opt', 'no-new-privileges', '-e', `OMEGA_WORKER_CLAIM_SECRET=${randomBytes(24).toString('hex')}`,
        '-p', '127.0.0.1::8080', image,
      );
      t.teardown(() => docker('rm', '-f', id));
      const published = await docker('port', id, '8080/tcp');
      const hostPort = published.split('\n')[0]!;
      t.match(hostPort, /^127\.0\.0\.1:\d+$/, 'published on 127.0.0.1 with a port chosen by Docker');
      const res = await healthz(id, `http://${hostPort}/healthz`);
      const body = JSON.parse(res.body) as { status: string; claimed: boolean };
      t.equal(body.status, 'ok');
      t.equal(body.claimed, false, 'a new worker is not claimed');
      const [state] = JSON.parse(await docker('inspect', id));
      t.equal(state.State.Running, true);
      t.equal(state.HostConfig.ReadonlyRootfs, true);
    });
  }

  const image = 'omega/sandbox-python:latest';
  t.test("node-pty (the worker's copy) loads and runs a shell inside the image", async (t) => {
    const script =
      "const pty = require('/opt/omega/worker/node_modules/node-pty');" +
      "const p = pty.spawn('bash', ['-c', 'echo pty-$((6*7))'], {});" +
      "let out = ''; p.onData((d) => (out += d)); p.onExit(() => console.log(out.trim()));";
    const out = await sh(image, `node -e "${script}"`, '--read-only', '--tmpfs', '/tmp', '--cap-drop', 'ALL');
    t.equal(out, 'pty-42');
  });
}
