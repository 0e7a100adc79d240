import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT = new URL('../..', import.meta.url).pathname;

/**
 * A template image with this checkout's worker: `<template>`'s image with the
 * worker bundle built now in place of the one it was built with, tagged
 * `omega-test-<random>/sandbox-<template>:latest` (labelled omega.test=worker-overlay;
 * several templates: one image each under the one prefix)
 * and removed at `t`'s teardown (a tap test, or a bench's own). So a test of the worker in a real container does
 * not depend on `make images` having run since the worker changed, and never
 * touches the shared omega/sandbox-* tags. Returns the image prefix for
 * OMEGA_IMAGE_PREFIX.
 */
export function overlayWorkerImage(t: { teardown(fn: () => void): void }, templates: string | string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'omega-worker-overlay-'));
  try {
    execFileSync('npm', ['run', '-s', 'build:worker', '--', `--outfile=${join(dir, 'worker.mjs')}`], { cwd: ROOT, stdio: 'ignore' });
    const hash = createHash('sha256').update(readFileSync(join(dir, 'worker.mjs'))).digest('hex').slice(0, 16);
    // Its own name per caller: two tests at once must not untag each other's image.
    const prefix = `omega-test-${randomBytes(4).toString('hex')}/sandbox-`;
    for (const template of typeof templates === 'string' ? [templates] : templates) {
      writeFileSync(join(dir, 'Dockerfile'), `FROM omega/sandbox-${template}:latest\nCOPY --chown=0:0 worker.mjs /opt/omega/worker/worker.mjs\nLABEL omega.test=worker-overlay omega.worker=${hash}\n`);
      const image = `${prefix}${template}:latest`;
      execFileSync('docker', ['build', '-q', '-t', image, dir], { stdio: 'ignore' });
      t.teardown(() => {
        try {
          execFileSync('docker', ['rmi', image], { stdio: 'ignore' });
        } catch {
          // still used by a container another teardown removes later; the next run's build retags it
        }
      });
    }
    return prefix;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
