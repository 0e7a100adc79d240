import { fileURLToPath } from 'node:url';

/**
 * This same `omega` CLI as a child process: run from source through tsx (by
 * its absolute path, so the child works from any directory) or built.
 */
export function selfCommand(...args: string[]): { cmd: string; args: string[] } {
  const fromSource = import.meta.url.endsWith('.ts');
  const cli = fileURLToPath(new URL(`../cli/cli.${fromSource ? 'ts' : 'js'}`, import.meta.url));
  const loader = fromSource ? [`--import=${import.meta.resolve('tsx')}`] : [];
  return { cmd: process.execPath, args: [...loader, cli, ...args] };
}
