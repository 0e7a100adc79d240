import { execFileSync } from 'node:child_process';
import type { Test } from 'tap';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_WORKSPACE_IMAGE_DIR } from '../../manager/runtime/disk.js';

/**
 * The real Docker engine and the sandbox images, or a reason they are missing.
 * `make test` installs and starts the engine and builds the images, so in CI
 * (CI set) a missing engine fails the test instead of skipping it.
 */
export function requireDocker(t: Test, images: string[] = []): boolean {
  let reason = '';
  try {
    execFileSync('docker', ['info'], { stdio: 'ignore', timeout: 10_000 });
    for (const image of images) {
      try {
        execFileSync('docker', ['image', 'inspect', image], { stdio: 'ignore' });
      } catch {
        reason = `image ${image} is missing (run make images)`;
        break;
      }
    }
  } catch {
    reason = 'no Docker engine answers (run make docker)';
  }
  if (!reason) return true;
  if (process.env.CI) t.fail(reason);
  else t.comment(`skipped: ${reason}`);
  return false;
}

export function dockerInspect(id: string): any {
  return JSON.parse(execFileSync('docker', ['inspect', id], { encoding: 'utf8' }))[0];
}

export function dockerExists(kind: 'container' | 'volume', name: string): boolean {
  try {
    execFileSync('docker', [kind, 'inspect', name], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Remove every container and volume a test's host made (by label: a killed manager may leave a volume and no container). */
export function removeHostContainers(hostId: string, imageDir = DEFAULT_WORKSPACE_IMAGE_DIR): void {
  const ids = (kind: 'ps' | 'volume') =>
    execFileSync('docker', kind === 'ps' ? ['ps', '-aq', '--filter', `label=omega.host=${hostId}`] : ['volume', 'ls', '-q', '--filter', `label=omega.host=${hostId}`], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean);
  const containers = ids('ps');
  if (containers.length) execFileSync('docker', ['rm', '-f', ...containers], { stdio: 'ignore' });
  const volumes = ids('volume');
  if (volumes.length) execFileSync('docker', ['volume', 'rm', '-f', ...volumes], { stdio: 'ignore' });
  releaseWorkspaceImages(hostId, join(imageDir, hostId));
}

/** The workspace images a host's manager left (its volumes removed by a test, not by the manager): loop devices detached, files deleted. */
export function releaseWorkspaceImages(hostId: string, dir = join(DEFAULT_WORKSPACE_IMAGE_DIR, hostId)): void {
  if (!existsSync(dir)) return;
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.img'))) {
    const img = join(dir, f);
    const devs = execFileSync('losetup', ['--associated', img, '--noheadings', '--output', 'NAME'], { encoding: 'utf8' }).split('\n').map((l) => l.trim()).filter(Boolean);
    for (const d of devs) execFileSync('losetup', ['--detach', d], { stdio: 'ignore' });
    rmSync(img, { force: true });
  }
}
