// A workspace written to and read from a snapshot store by GNU tar, against a
// real directory store: the round trip keeps links and modes, and a failed
// write leaves nothing under its key, whichever of tar and the store fails
// and whichever finishes first.
import { randomBytes } from 'node:crypto';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import t from 'tap';
import { readArchive, writeArchive } from '../../manager/runtime/archive.js';
import { openSnapshotStore, type SnapshotStore } from '../../src/snapshot-store.js';

const root = mkdtempSync(join(tmpdir(), 'omega-archive-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = (name: string) => {
  const d = join(root, `${name}-${n++}`);
  mkdirSync(d);
  return d;
};

t.test('a workspace comes back as it was written: contents, modes and links (never followed)', async (t) => {
  const work = fresh('work');
  mkdirSync(join(work, 'src'));
  writeFileSync(join(work, 'src/app.js'), 'console.log(1)\n', { mode: 0o640 });
  writeFileSync(join(work, 'run.sh'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
  symlinkSync('/etc/passwd', join(work, 'outside'));
  const storeDir = fresh('store');
  const store = openSnapshotStore(`file://${storeDir}`, { region: 'us-east-1' });
  const { bytes } = await writeArchive(work, store, 'snap1');
  t.ok(bytes > 0, 'its compressed size');
  t.same(readdirSync(storeDir), ['snap1.tar.gz'], 'one archive under its key, nothing partial beside it');
  const back = fresh('back');
  await readArchive(store, 'snap1', back);
  t.equal(readFileSync(join(back, 'src/app.js'), 'utf8'), 'console.log(1)\n');
  t.equal(lstatSync(join(back, 'src/app.js')).mode & 0o777, 0o640);
  t.equal(lstatSync(join(back, 'run.sh')).mode & 0o777, 0o755);
  t.ok(lstatSync(join(back, 'outside')).isSymbolicLink(), 'a link stays a link');
  t.equal(readlinkSync(join(back, 'outside')), '/etc/passwd');
});

t.test('a store that starts reading late (as one across a network does) still gets the whole archive', async (t) => {
  // A small workspace: tar is done before the store reads its first byte (Node drops a finished child's unread output).
  const work = fresh('work');
  writeFileSync(join(work, 'note.txt'), 'small\n');
  const storeDir = fresh('store');
  const real = openSnapshotStore(`file://${storeDir}`, { region: 'us-east-1' });
  const late: SnapshotStore = {
    shown: real.shown,
    get: (key) => real.get(key),
    delete: (key) => real.delete(key),
    put: (key: string, body: Readable) => new Promise((r) => setTimeout(r, 300)).then(() => real.put(key, body)),
  };
  const { bytes } = await writeArchive(work, late, 'late1');
  t.ok(bytes > 0, `${bytes} bytes`);
  const back = fresh('back');
  await readArchive(real, 'late1', back);
  t.equal(readFileSync(join(back, 'note.txt'), 'utf8'), 'small\n', 'its files come back');
});

t.test('tar failing while the store still writes: the truncated archive is not left under its key', async (t) => {
  // A store that starts late (as one across a network does): tar is done, failed, before the store has its first byte.
  const storeDir = fresh('store');
  const real = openSnapshotStore(`file://${storeDir}`, { region: 'us-east-1' });
  const puts: Array<Promise<unknown>> = [];
  const late: SnapshotStore = {
    shown: real.shown,
    get: (key) => real.get(key),
    delete: (key) => real.delete(key),
    put: (key: string, body: Readable) => {
      const p = new Promise((r) => setTimeout(r, 200)).then(() => real.put(key, body));
      puts.push(p);
      return p;
    },
  };
  await t.rejects(writeArchive(join(root, 'gone-under-it'), late, 'snap2'), { code: 'SNAPSHOT_FAILED', message: /tar --create exited 2/ });
  await Promise.allSettled(puts);
  t.same(readdirSync(storeDir), [], 'nothing in the store once all it was asked to write is written');
});

t.test('the store failing: tar is stopped (not left waiting on its pipe) and the write fails', async (t) => {
  const work = fresh('work');
  // More than a pipe holds: tar blocks writing once nobody reads.
  writeFileSync(join(work, 'noise.bin'), randomBytes(4 << 20));
  const refusing: SnapshotStore = {
    shown: 'file:///refusing',
    get: () => Promise.reject(new Error('no')),
    delete: async () => {},
    put: () => Promise.reject(new Error('the store is full')),
  };
  await t.rejects(writeArchive(work, refusing, 'snap3'), { code: 'SNAPSHOT_FAILED', message: /the store is full/ });
});
