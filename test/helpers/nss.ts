import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A HOME whose NSS database (what Chromium reads on Linux, $HOME/.pki/nssdb)
 * trusts `caFile` as an authority, as a user who imported it has; nothing
 * else is trusted beyond Chromium's own roots. Made with Debian's certutil.
 */
export function homeTrusting(t: { teardown(fn: () => unknown): void }, caFile: string): string {
  const home = mkdtempSync(join(tmpdir(), 'omega-browser-home-'));
  t.teardown(() => rmSync(home, { recursive: true, force: true }));
  const nssdb = join(home, '.pki', 'nssdb');
  mkdirSync(nssdb, { recursive: true });
  execFileSync('certutil', ['-d', `sql:${nssdb}`, '-N', '--empty-password']);
  execFileSync('certutil', ['-d', `sql:${nssdb}`, '-A', '-t', 'C,,', '-n', 'omega-local-ca', '-i', caFile]);
  return home;
}
