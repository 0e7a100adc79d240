// `omega sandbox ...` and `omega hosts` as a person or a script runs them: the
// real CLI as a child process against a real master (Redis, DNS, a manager the
// local provider starts on 127.0.0.47, Docker for the sandboxes).
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { MasterClient } from '../../cli/client/master-client.js';
import { startDns } from '../helpers/dns.js';
import { requireDocker, releaseWorkspaceImages } from '../helpers/docker.js';
import { API_TOKEN, startMaster } from '../helpers/master.js';
import { freePort } from '../helpers/ports.js';
import { TestRedis } from '../helpers/redis.js';

const CLI = new URL('../../cli/cli.ts', import.meta.url).pathname;
// By URL: the CLI runs in a temp dir (so the repo's .omega/ is never read), where a bare `tsx` would not resolve.
const TSX = import.meta.resolve('tsx');
/** The local provider's first host: far from 127.0.0.2/3 that other tests and `make run` use. */
const HOST = '127.0.0.47';
const ANSI = /\u001b\[/;
/** A sandbox token: 32 random bytes, base64url. */
const TOKEN_LIKE = /[A-Za-z0-9_-]{43}/;

const cwd = mkdtempSync(join(tmpdir(), 'omega-client-'));
t.teardown(() => rmSync(cwd, { recursive: true, force: true }));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}
const runs: Run[] = [];

/** The real CLI with only the environment given (no OMEGA_* of the caller's), in a directory with no .omega/. */
function omega(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const base: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('OMEGA_') && k !== 'NO_COLOR') base[k] = v;
  const child = spawn(process.execPath, [`--import=${TSX}`, CLI, ...args], { cwd, env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve) =>
    child.on('close', (code) => {
      const r = { code, stdout, stderr };
      runs.push(r);
      resolve(r);
    }),
  );
}

/** Rows of a table: cells are separated by two or more spaces (a cell never holds two). */
const rows = (table: string) => table.trimEnd().split('\n').map((l) => l.trim().split(/\s{2,}/));

const docker = requireDocker(t, ['omega/sandbox-python:latest', 'omega/sandbox-node:latest']);
const dockerIds = (kind: 'ps' | 'volume') =>
  execFileSync('docker', kind === 'ps' ? ['ps', '-aq', '--filter', `label=omega.host=${HOST}`] : ['volume', 'ls', '-q', '--filter', `label=omega.host=${HOST}`], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean);
if (docker) {
  // Registered first, so it runs last (teardowns run last-first): after the master has stopped its manager.
  t.teardown(() => {
    const containers = dockerIds('ps');
    if (containers.length) execFileSync('docker', ['rm', '-f', ...containers], { stdio: 'ignore' });
    const volumes = dockerIds('volume');
    if (volumes.length) execFileSync('docker', ['volume', 'rm', '-f', ...volumes], { stdio: 'ignore' });
    releaseWorkspaceImages(HOST);
  });
}

const redis = await TestRedis.create();
t.teardown(() => redis.destroy());
const dns = await startDns(t, redis);
// Snapshots in a directory of the test's own, for the master and (through the environment) the manager it starts.
const snapshotDir = mkdtempSync(join(tmpdir(), 'omega-cli-snapshots-'));
t.teardown(() => rmSync(snapshotDir, { recursive: true, force: true }));
process.env.OMEGA_SNAPSHOT_STORE = `file://${snapshotDir}`;
// The manager's pool stays at its size (passed on by the local provider): the test counts containers.
process.env.OMEGA_POOL_MAX = '0';
const { server, call } = await startMaster(t, redis, dns, {
  OMEGA_SNAPSHOT_STORE: `file://${snapshotDir}`,
  OMEGA_PROVIDER: 'local',
  OMEGA_LOCAL_FIRST_ADDRESS: HOST,
  OMEGA_LOCAL_MAX_HOSTS: '1',
  OMEGA_LOCAL_CAPACITY: '4',
  OMEGA_LOCAL_POOL_SIZE: '0',
  OMEGA_LOCAL_MANAGER_PORT: String(await freePort()),
  OMEGA_SCALE_OUT_WAIT_MS: '30000',
});
const master = { OMEGA_MASTER_URL: server.apiUrl, OMEGA_API_TOKEN: API_TOKEN };

t.test('usage: the top-level help lists the commands; omega sandbox alone or unknown is a usage error', async (t) => {
  const [top, bare, unknown, help, createHelp, hostsHelp, stray] = await Promise.all([
    omega(['--help']),
    omega(['sandbox']),
    omega(['sandbox', 'explode']),
    omega(['sandbox', '--help']),
    omega(['sandbox', 'create', '--help']),
    omega(['hosts', '--help']),
    omega(['sandbox', 'get', 'abcdefghijklmnop', 'extra'], master),
  ]);
  t.equal(top.code, 0);
  t.match(top.stdout, /Commands[^\n]*\n(?:.*\n)*\s+sandbox\s+Create, list, show and delete sandboxes/);
  t.match(top.stdout, /\n\s+hosts\s+List the master's hosts/);
  t.match(top.stdout, /Programs[^\n]*\n\s+dns\s+Authoritative DNS server/, 'the servers keep their own section');
  t.equal(bare.code, 2, 'no command: exit 2');
  t.match(bare.stderr, /Usage: omega sandbox <command>/);
  t.match(bare.stderr, /create[\s\S]*list[\s\S]*get[\s\S]*delete/);
  t.equal(unknown.code, 2);
  t.match(unknown.stderr, /unknown command "explode"/);
  t.equal(help.code, 0);
  t.match(help.stdout, /Usage: omega sandbox <command>/);
  t.equal(createHelp.code, 0);
  for (const flag of ['--template', '--timeout-seconds', '--idle-seconds', '--metadata', '--show-token', '--json', '--master-url', '--api-token', '--state-dir']) {
    t.match(createHelp.stdout, flag, `create --help names ${flag}`);
  }
  t.match(createHelp.stdout, /OMEGA_MASTER_URL.*\[default: <state dir>\/master-url, else http:\/\/127\.0\.0\.1:8080\]/);
  t.equal(hostsHelp.code, 0);
  t.match(hostsHelp.stdout, /Usage: omega hosts/);
  t.equal(stray.code, 2, 'an extra argument is a usage error');
  t.match(stray.stderr, /omega sandbox get: unexpected argument "extra"/);
});

t.test('errors: the master\'s code on stderr, exit 1; a master that is down is named with what to do', async (t) => {
  const deadUrl = `http://127.0.0.1:${await freePort()}`;
  const [missing, down, badState, badFlag] = await Promise.all([
    omega(['sandbox', 'get', 'abcdefghijklmnop'], master),
    omega(['sandbox', 'list'], { ...master, OMEGA_MASTER_URL: deadUrl }),
    omega(['sandbox', 'list', '--state', 'sleepy'], master),
    omega(['sandbox', 'create', '--timeout-seconds', 'soon'], master),
  ]);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /^omega sandbox get: SANDBOX_NOT_FOUND: no sandbox abcdefghijklmnop\n$/);
  t.equal(missing.stdout, '');
  t.equal(down.code, 1);
  t.match(down.stderr, `cannot reach the master at ${deadUrl} (from OMEGA_MASTER_URL / --master-url): ECONNREFUSED`);
  t.match(down.stderr, /make run/);
  t.equal(badState.code, 1);
  t.match(badState.stderr, /omega sandbox list: VALIDATION_FAILED: /);
  t.equal(badFlag.code, 2, 'a bad flag value is a usage error, before any request');
  t.match(badFlag.stderr, /--timeout-seconds must be a whole number \(got "soon"\)/);
});

t.test('the token: from the state dir when not set, where it was looked for when missing, never echoed', async (t) => {
  const stateDir = mkdtempSync(join(cwd, 'state-'));
  const empty = mkdtempSync(join(cwd, 'empty-'));
  const [none, wrong] = await Promise.all([
    omega(['hosts'], { OMEGA_MASTER_URL: server.apiUrl, OMEGA_STATE_DIR: empty }),
    omega(['hosts', '--api-token', 'not-the-token-0123456789'], { OMEGA_MASTER_URL: server.apiUrl }),
  ]);
  t.equal(none.code, 1);
  t.match(none.stderr, `UNAUTHORIZED: the master needs an API token and none was found: OMEGA_API_TOKEN and --api-token are not set and ${join(empty, 'api-token')} does not exist`);
  t.equal(wrong.code, 1);
  t.match(wrong.stderr, /UNAUTHORIZED: the master refused the API token from OMEGA_API_TOKEN \/ --api-token/);
  t.notMatch(wrong.stderr, /not-the-token/, 'the token given is not echoed');

  // What `omega up` leaves: the URL and the token, one line each.
  writeFileSync(join(stateDir, 'master-url'), `${server.apiUrl}\n`);
  writeFileSync(join(stateDir, 'api-token'), `${API_TOKEN}\n`, { mode: 0o600 });
  chmodSync(join(stateDir, 'api-token'), 0o600);
  const [byEnv, byFlag, overridden] = await Promise.all([
    omega(['hosts', '--json'], { OMEGA_STATE_DIR: stateDir }),
    omega(['hosts', '--json', '--state-dir', stateDir]),
    // A setting wins over the file: this URL is dead, so the answer proves which one was used.
    omega(['hosts', '--json', '--state-dir', stateDir, '--master-url', `http://127.0.0.1:${await freePort()}`]),
  ]);
  t.equal(byEnv.code, 0, byEnv.stderr);
  t.same(JSON.parse(byEnv.stdout), (await call('GET', '/v1/hosts')).body, 'OMEGA_STATE_DIR: URL and token from its files');
  t.equal(byFlag.code, 0, byFlag.stderr);
  t.equal(overridden.code, 1);
  t.match(overridden.stderr, /cannot reach the master/);

  writeFileSync(join(stateDir, 'master-url'), 'not a url\n');
  const badFile = await omega(['hosts', '--state-dir', stateDir]);
  t.equal(badFile.code, 1);
  t.match(badFile.stderr, `${join(stateDir, 'master-url')}: must be a URL`);
});

t.test('hosts and list with no sandboxes yet: tables with their headers only', async (t) => {
  const [hosts, list, listJson] = await Promise.all([omega(['hosts'], master), omega(['sandbox', 'list'], master), omega(['sandbox', 'list', '--json'], master)]);
  t.equal(hosts.code, 0, hosts.stderr);
  t.same(rows(hosts.stdout), [['ID', 'ADDRESS', 'LOAD/CAPACITY', 'HEALTH', 'STARTED']]);
  t.same(rows(list.stdout), [['ID', 'TEMPLATE', 'STATE', 'HOST', 'HOSTNAME:PORT', 'AGE', 'EXPIRES IN']]);
  t.same(JSON.parse(listJson.stdout), []);
});

if (docker) {
  const ids: string[] = [];

  t.test('create: --json is the master\'s answer; the table shows where it is and hides the token', async (t) => {
    const viaJson = await omega(['sandbox', 'create', '--json', '--metadata', 'owner=cli-test', '--metadata', 'note=a=b', '--timeout-seconds', '600'], master);
    t.equal(viaJson.code, 0, viaJson.stderr);
    const created = JSON.parse(viaJson.stdout);
    ids.push(created.id);
    t.match(created, { state: 'running', template: 'python', host: HOST, address: HOST, metadata: { owner: 'cli-test', note: 'a=b' }, source: 'cold' });
    t.match(created.token, TOKEN_LIKE, 'the token is in the JSON');
    const got = (await call('GET', `/v1/sandboxes/${created.id}`)).body;
    const { token: _token, source: _source, ...view } = created;
    t.same(view, got, 'the same sandbox as the API shows');
    t.ok(Math.abs(Date.parse(created.expiresAt) - Date.parse(created.createdAt) - 600_000) < 5_000, '--timeout-seconds reached the master');

    // One after the other: the listing below expects them in this order.
    const table = await omega(['sandbox', 'create', '--template', 'node'], master);
    const shown = await omega(['sandbox', 'create', '--show-token'], master);
    t.equal(table.code, 0, table.stderr);
    const fields = Object.fromEntries(rows(table.stdout).map(([k, ...v]) => [k, v.join('  ')]));
    ids.push(fields.id!);
    const api = (await call('GET', `/v1/sandboxes/${fields.id}`)).body;
    t.match(fields, { state: 'running', template: 'node', hostname: api.hostname, port: String(api.port), url: api.url, host: HOST });
    t.match(fields.expires, api.expiresAt);
    t.match(fields.token, /^not shown: .*--show-token or --json/, 'the table says how to get the token');
    t.notMatch(table.stdout, TOKEN_LIKE, 'and does not print it');
    t.notMatch(table.stdout, ANSI, 'no colors into a pipe');
    t.equal(shown.code, 0, shown.stderr);
    const shownFields = Object.fromEntries(rows(shown.stdout).map(([k, v]) => [k, v]));
    ids.push(shownFields.id!);
    t.match(shownFields.token, new RegExp(`^${TOKEN_LIKE.source}$`), '--show-token prints it');
  });

  t.test('get and list: --json as the API has it, tables with the right columns and rows', async (t) => {
    const apiList = (await call('GET', '/v1/sandboxes')).body.sandboxes;
    t.same(apiList.map((s: any) => s.id), ids, 'three sandboxes, in creation order');
    const [getJson, getTable, listJson, listTable, limited, byMeta, lost] = await Promise.all([
      omega(['sandbox', 'get', ids[0]!, '--json'], master),
      omega(['sandbox', 'get', ids[0]!], master),
      omega(['sandbox', 'list', '--json'], master),
      omega(['sandbox', 'list'], master),
      omega(['sandbox', 'list', '--json', '--limit', '2'], master),
      omega(['sandbox', 'list', '--json', '--metadata', 'owner=cli-test', '--state', 'running'], master),
      omega(['sandbox', 'list', '--json', '--state', 'lost'], master),
    ]);
    t.same(JSON.parse(getJson.stdout), apiList[0]);
    t.match(getTable.stdout, /^id\s+\S+\nstate\s+running\n/);
    t.match(getTable.stdout, /\nmetadata\s+owner=cli-test note=a=b\n/);
    t.notMatch(getTable.stdout, /token/, 'get has no token to show');
    t.same(JSON.parse(listJson.stdout), apiList, 'list --json: every item, one array');
    const [header, ...body] = rows(listTable.stdout);
    t.same(header, ['ID', 'TEMPLATE', 'STATE', 'HOST', 'HOSTNAME:PORT', 'AGE', 'EXPIRES IN']);
    t.same(
      body.map((r) => r.slice(0, 5)),
      apiList.map((s: any) => [s.id, s.template, 'running', HOST, `${s.hostname}:${s.port}`]),
    );
    for (const r of body) {
      t.match(r[5], /^\d+[smhd](\d+[smh])?$/, 'AGE');
      t.match(r[6], /^\d+[smhd](\d+[smh])?$/, 'EXPIRES IN');
    }
    t.notMatch(listTable.stdout, ANSI);
    t.same(JSON.parse(limited.stdout).map((s: any) => s.id), ids.slice(0, 2), '--limit');
    t.same(JSON.parse(byMeta.stdout).map((s: any) => s.id), [ids[0]], '--metadata and --state filter');
    t.same(JSON.parse(lost.stdout), []);
  });

  t.test('the client follows the master\'s cursor page by page', async (t) => {
    const client = new MasterClient(server.apiUrl, API_TOKEN);
    t.teardown(() => client.close());
    const pages: number[] = [];
    const page = client.page.bind(client);
    client.page = async (...a) => {
      const p = await page(...a);
      pages.push(p.sandboxes.length);
      return p;
    };
    t.same((await client.list({}, Infinity, 1)).map((s) => s.id), ids, 'all, one a page');
    t.same(pages, [1, 1, 1]);
    pages.length = 0;
    t.same((await client.list({}, 2, 1)).map((s) => s.id), ids.slice(0, 2), 'stops at the limit');
    t.same(pages, [1, 1]);
  });

  t.test('pause and resume: the table says how it is paused; --json is the API\'s view', async (t) => {
    const id = ids[0]!;
    const paused = await omega(['sandbox', 'pause', id], master);
    t.equal(paused.code, 0, paused.stderr);
    const fields = Object.fromEntries(rows(paused.stdout).map(([k, ...v]) => [k, v.join('  ')]));
    t.equal(fields.state, 'paused');
    t.match(fields.paused, /^frozen in memory since .* left once resumed$/);
    const resumed = await omega(['sandbox', 'resume', id, '--json'], master);
    t.equal(resumed.code, 0, resumed.stderr);
    t.same(JSON.parse(resumed.stdout), (await call('GET', `/v1/sandboxes/${id}`)).body, 'the API\'s view');
    t.equal(JSON.parse(resumed.stdout).state, 'running');
    const snap = await omega(['sandbox', 'snapshot', id, '--json'], master);
    t.equal(snap.code, 0, snap.stderr);
    const taken = JSON.parse(snap.stdout);
    t.match(taken, { sandboxId: id });
    const listed = await omega(['snapshot', 'list'], master);
    t.same(rows(listed.stdout)[0], ['ID', 'SANDBOX', 'TEMPLATE', 'SIZE', 'AGE']);
    t.equal(rows(listed.stdout)[1]?.[0], taken.id, 'the snapshot listed');
    const gone = await omega(['snapshot', 'delete', taken.id], master);
    t.equal(gone.stdout.trim(), `${taken.id}  deleted`);
    const stopped = await omega(['sandbox', 'pause', id, '--stop', '--json'], master);
    t.equal(JSON.parse(stopped.stdout).paused.kind, 'stopped', '--stop stops it');
    t.equal((await omega(['sandbox', 'resume', id], master)).code, 0);
  });

  t.test('hosts: the table and --json of GET /v1/hosts', async (t) => {
    const [table, asJson] = await Promise.all([omega(['hosts'], master), omega(['hosts', '--json'], master)]);
    const api = (await call('GET', '/v1/hosts')).body;
    t.same(JSON.parse(asJson.stdout), api);
    const [header, ...body] = rows(table.stdout);
    t.same(header, ['ID', 'ADDRESS', 'LOAD/CAPACITY', 'HEALTH', 'STARTED']);
    t.equal(body.length, 1);
    t.same(body[0]!.slice(0, 4), [HOST, HOST, '3/4', 'alive']);
    t.match(body[0]![4], /^\d+[smhd](\d+[smh])? ago$/);
  });

  t.test('workspace: list shows where a workspace lives and who has it; delete removes it everywhere', async (t) => {
    const sb = (await call('POST', '/v1/sandboxes', { template: 'python', workspace: 'cli-ws' })).body;
    t.equal((await call('DELETE', `/v1/sandboxes/${sb.id}`)).status, 200);
    const listed = await omega(['workspace', 'list'], master);
    t.equal(listed.code, 0, listed.stderr);
    t.same(rows(listed.stdout)[0], ['NAME', 'TEMPLATE', 'HOST', 'SANDBOX', 'SIZE', 'SNAPSHOT', 'AGE']);
    t.same(rows(listed.stdout)[1]?.slice(0, 4), ['cli-ws', 'python', HOST, '-'], 'kept on its host, no sandbox has it');
    const gone = await omega(['workspace', 'delete', 'cli-ws', 'cli-ws'], master);
    t.same(rows(gone.stdout), [['cli-ws', 'deleted'], ['cli-ws', 'was already gone']]);
  });

  t.test('delete: several ids, each deleted or already gone; any failure makes the exit code 1', async (t) => {
    t.same((await call('DELETE', `/v1/sandboxes/${ids[2]}`)).body, { id: ids[2], deleted: true });
    const r = await omega(['sandbox', 'delete', ids[0]!, ids[2]!], master);
    t.equal(r.code, 0, r.stderr);
    t.same(rows(r.stdout), [[ids[0], 'deleted'], [ids[2], 'was already gone']]);
    const mixed = await omega(['sandbox', 'delete', ids[1]!, 'Not_An_Id', '--json'], master);
    t.equal(mixed.code, 1, 'one id could not be deleted');
    const out = JSON.parse(mixed.stdout);
    t.same(out[0], { id: ids[1], deleted: true }, 'the others still are');
    t.match(out[1], { id: 'Not_An_Id', error: { code: 'VALIDATION_FAILED', statusCode: 400 } });
    t.match(mixed.stderr, /^omega sandbox delete: Not_An_Id: VALIDATION_FAILED: /);
    for (const id of ids) t.equal((await call('GET', `/v1/sandboxes/${id}`)).status, 404, `${id} is gone`);
    t.same(dockerIds('ps'), [], 'no container left on the host');
    t.same(dockerIds('volume'), [], 'nor a volume');
  });
}

t.test('no output ever held the API token', async (t) => {
  t.ok(runs.length > 10, `${runs.length} runs`);
  t.same(runs.filter((r) => r.stdout.includes(API_TOKEN) || r.stderr.includes(API_TOKEN)), [], 'none printed it');
});
