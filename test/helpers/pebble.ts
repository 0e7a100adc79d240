import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { Agent, request } from 'undici';
import { createLocalCa, issueFromLocalCa } from '../../src/tls/local-ca.js';
import { freePort, waitFor } from './ports.js';

export interface StartedPebble {
  /** The ACME directory (https, served with a certificate from `httpsCaPem`). */
  directoryUrl: string;
  /** The CA of Pebble's own https listener (not of what it issues). */
  httpsCaPem: string;
  httpsCaFile: string;
  /** The root Pebble signs certificates with (made fresh at each start). */
  root(): Promise<string>;
}

/**
 * Debian's `pebble`, a real RFC 8555 CA for tests, on free loopback ports,
 * looking challenges up at `dnsServer` (Omega's DNS). It validates every
 * challenge for real; only its random sleeps are off. Stopped at teardown.
 */
export async function startPebble(t: Test, dnsServer: string): Promise<StartedPebble> {
  const dir = mkdtempSync(join(tmpdir(), 'omega-pebble-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // Pebble's own https listener needs a certificate: one from a CA of the test's.
  const ca = await createLocalCa('Pebble listener test CA');
  const listener = await issueFromLocalCa(ca, { names: ['127.0.0.1', 'localhost'], lifetimeDays: 1 });
  writeFileSync(join(dir, 'ca.pem'), ca.certPem);
  writeFileSync(join(dir, 'cert.pem'), listener.certPem);
  writeFileSync(join(dir, 'key.pem'), listener.keyPem);
  const [port, mgmt, http, tlsPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  writeFileSync(
    join(dir, 'config.json'),
    JSON.stringify({
      pebble: {
        listenAddress: `127.0.0.1:${port}`,
        managementListenAddress: `127.0.0.1:${mgmt}`,
        certificate: join(dir, 'cert.pem'),
        privateKey: join(dir, 'key.pem'),
        httpPort: http,
        tlsPort,
        ocspResponderURL: '',
        externalAccountBindingRequired: false,
      },
    }),
  );
  const proc = spawn('pebble', ['-config', join(dir, 'config.json'), '-dnsserver', dnsServer], {
    // No random sleeps before validating; no nonces rejected at random (acme-client retries them, but slowly);
    // no authorization reused from an earlier order (Pebble reuses half by default): every order is validated.
    env: { ...process.env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0', PEBBLE_AUTHZREUSE: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  proc.stdout!.on('data', (d: Buffer) => (output += d));
  proc.stderr!.on('data', (d: Buffer) => (output += d));
  t.teardown(async () => {
    if (proc.exitCode !== null) return;
    proc.kill('SIGTERM');
    await new Promise((r) => proc.once('exit', r));
  });
  const agent = new Agent({ connect: { ca: ca.certPem } });
  t.teardown(() => agent.close());
  const directoryUrl = `https://127.0.0.1:${port}/dir`;
  await waitFor(
    `pebble answers (${output.slice(-300)})`,
    async () => {
      if (proc.exitCode !== null) throw new Error(`pebble exited ${proc.exitCode}: ${output}`);
      try {
        const r = await request(directoryUrl, { dispatcher: agent });
        await r.body.dump();
        return r.statusCode === 200;
      } catch {
        return false;
      }
    },
    15_000,
    100,
  );
  return {
    directoryUrl,
    httpsCaPem: ca.certPem,
    httpsCaFile: join(dir, 'ca.pem'),
    root: async () => {
      const r = await request(`https://127.0.0.1:${mgmt}/roots/0`, { dispatcher: agent });
      return r.body.text();
    },
  };
}
