#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { dnsSettings } from '../dns/config.js';
import { managerSettings } from '../manager/config.js';
import { ConfigError, renderSettingsHelp, type SettingsSpec } from './config/settings.js';

/**
 * `omega <program> [--flag value ...]`: one executable, one subcommand per
 * program. Every setting is an environment variable and a flag; the flag wins.
 */
interface Program {
  summary: string;
  settings: SettingsSpec;
  run(argv: string[]): Promise<void>;
}

const PROGRAMS: Record<string, Program> = {
  dns: {
    summary: 'Authoritative DNS server for the sandbox zone, with its HTTP record API',
    settings: dnsSettings,
    async run(argv) {
      const [{ loadConfig }, { DnsServer }, { createLogger }, { runUntilSignal }] = await Promise.all([
        import('../dns/config.js'),
        import('../dns/server.js'),
        import('./log.js'),
        import('./lifecycle.js'),
      ]);
      const config = loadConfig({ env: process.env, argv });
      const log = createLogger('dns', { level: config.logLevel });
      await runUntilSignal(new DnsServer(config, log), log);
    },
  },
  manager: {
    summary: 'Per-host daemon: starts sandbox containers with Docker, keeps a warm pool, heart-beats in Redis',
    settings: managerSettings,
    async run(argv) {
      const [{ loadConfig }, { ManagerServer }, { createLogger }, { runUntilSignal }] = await Promise.all([
        import('../manager/config.js'),
        import('../manager/server.js'),
        import('./log.js'),
        import('./lifecycle.js'),
      ]);
      const config = loadConfig({ env: process.env, argv });
      const log = createLogger('manager', { level: config.logLevel });
      await runUntilSignal(new ManagerServer(config, log), log, 30_000);
    },
  },
};

/** package.json sits above src/ when run from source and above dist/src/ when built. */
function version(): string {
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version: string };
      if (pkg.name === 'omega') return pkg.version;
    } catch {
      // not here; try one level up
    }
  }
  return 'unknown';
}

function usage(): string {
  const width = Math.max(...Object.keys(PROGRAMS).map((n) => n.length)) + 2;
  return [
    'Usage: omega <program> [options]',
    '',
    'Programs:',
    ...Object.entries(PROGRAMS).map(([name, p]) => `  ${name.padEnd(width)}${p.summary}`),
    '',
    'Run `omega <program> --help` for its settings. Each setting is an environment',
    'variable and a flag; a flag overrides the variable.',
  ].join('\n');
}

async function main(args: string[]): Promise<number> {
  const [cmd, ...rest] = args;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    console.log(usage());
    return 0;
  }
  if (cmd === '--version' || cmd === '-v') {
    console.log(version());
    return 0;
  }
  const program = PROGRAMS[cmd];
  if (!program) {
    console.error(`omega: unknown program "${cmd}"\n\n${usage()}`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(`Usage: omega ${cmd} [options]\n\n${program.summary}\n\nSettings (flag, environment variable, meaning, default):\n${renderSettingsHelp(program.settings)}`);
    return 0;
  }
  try {
    await program.run(rest);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`omega ${cmd}: ${err.message}`);
      return 1;
    }
    console.error(`omega ${cmd}: ${(err as Error).stack ?? String(err)}`);
    return 1;
  }
  return -1; // running; the signal handler exits
}

main(process.argv.slice(2)).then((code) => {
  if (code >= 0) process.exitCode = code;
});
