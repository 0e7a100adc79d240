import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';

/**
 * The E2B agent's generated protocol (src/protocol/envd/gen) is committed
 * source: this regenerates it from the .proto files with the pinned buf and
 * protoc-gen-es (`npm run generate:envd`) into a temporary directory and
 * checks the committed files are exactly what comes out.
 */
const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const GEN = 'src/protocol/envd/gen';

t.test('the committed envd code is what the .proto files generate', async (t) => {
  const out = await mkdtemp(path.join(tmpdir(), 'omega-envd-gen-'));
  t.teardown(() => rm(out, { recursive: true, force: true }));
  await promisify(execFile)(path.join(ROOT, 'node_modules/.bin/buf'), ['generate', '-o', out], { cwd: ROOT });
  const committed = (await readdir(path.join(ROOT, GEN))).sort();
  t.same((await readdir(path.join(out, GEN))).sort(), committed, 'the same files');
  for (const f of committed) t.equal(await readFile(path.join(out, GEN, f), 'utf8'), await readFile(path.join(ROOT, GEN, f), 'utf8'), `${f} is up to date`);
});
