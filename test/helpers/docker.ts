import { execFileSync } from 'node:child_process';
import type { Test } from 'tap';

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
