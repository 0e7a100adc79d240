#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { dnsSettings } from '../dns/config.js';
import { managerSettings } from '../manager/config.js';
import { masterSettings } from '../master/config.js';
import { workerSettings } from '../worker/config.js';
import { clientSettings } from './client/config.js';
import { upSettings } from './up/settings.js';
import { ConfigError, renderSettingsHelp, type SettingsSpec } from '../src/config/settings.js';
import type { Component } from '../src/lifecycle.js';
import type { Logger } from '../src/log.js';

/**
 * `omega <program> [--flag value ...]`: one executable, one subcommand per
 * program. Every setting is an environment variable and a flag; the flag wins.
 */
interface Program {
  summary: string;
  settings: SettingsSpec;
  /**
   * A command (a client of a running master) runs to completion, handles its
   * own --help and answers its exit code; a program runs until a signal.
   */
  command?: boolean;
  run(argv: string[]): Promise<void | number>;
}

/**
 * A long-running server program: load its config (flags over environment),
 * make a logger, start it, and stop it gracefully on SIGTERM/SIGINT.
 */
function server<C extends { logLevel: string }>(
  name: string,
  summary: string,
  settings: SettingsSpec,
  load: () => Promise<{ loadConfig(o: { env: NodeJS.ProcessEnv; argv: string[] }): C; create(config: C, log: Logger): Component }>,
  graceMs?: number,
): Program {
  return {
    summary,
    settings,
    async run(argv) {
      const [program, { createLogger }, { runUntilSignal }] = await Promise.all([load(), import('../src/log.js'), import('../src/lifecycle.js')]);
      const config = program.loadConfig({ env: process.env, argv });
      const log = createLogger(name, { level: config.logLevel });
      // Started by `omega up` with an IPC channel: when up is gone (killed, crashed), stop as on SIGTERM.
      if (process.channel) {
        process.channel.unref();
        process.once('disconnect', () => {
          // Its output went to up, which is gone: writing there can only fail (and was seen to hang the stop).
          log.level = 'silent';
          process.kill(process.pid, 'SIGTERM');
        });
      }
      await runUntilSignal(program.create(config, log), log, graceMs);
    },
  };
}

const PROGRAMS: Record<string, Program> = {
  dns: server('dns', 'Authoritative DNS server for the sandbox zone, with its HTTP record API', dnsSettings, async () => {
    const [{ loadConfig }, { DnsServer }] = await Promise.all([import('../dns/config.js'), import('../dns/server.js')]);
    return { loadConfig, create: (c, log) => new DnsServer(c, log) };
  }),
  master: server(
    'master',
    'Public API: allocates hosts, scales out, creates, expires and reconciles sandboxes',
    masterSettings,
    async () => {
      const [{ loadConfig }, { MasterServer }] = await Promise.all([import('../master/config.js'), import('../master/server.js')]);
      return { loadConfig, create: (c, log) => new MasterServer(c, log) };
    },
    60_000,
  ),
  manager: server(
    'manager',
    'Per-host daemon: starts sandbox containers with Docker, keeps a warm pool, heart-beats in Redis',
    managerSettings,
    async () => {
      const [{ loadConfig }, { ManagerServer }] = await Promise.all([import('../manager/config.js'), import('../manager/server.js')]);
      return { loadConfig, create: (c, log) => new ManagerServer(c, log) };
    },
    30_000,
  ),
  up: {
    summary: 'A whole Omega on this machine: Redis, dns, the first manager and the master, in the foreground',
    settings: upSettings,
    async run(argv) {
      const { runUp } = await import('./up/main.js');
      await runUp(process.env, argv);
    },
  },
  worker: {
    summary: 'In-sandbox agent: files, terminals, programs and previews over one WebSocket port',
    settings: workerSettings,
    async run(argv) {
      // The worker runs alone in a container with its own small logger and signal handling (worker/run.ts).
      const { runWorker } = await import('../worker/run.js');
      await runWorker(process.env, argv);
    },
  },
  sandbox: {
    summary: 'Create, list, show and delete sandboxes (`omega sandbox --help`)',
    settings: clientSettings,
    command: true,
    run: async (argv) => (await import('./client/commands.js')).runSandbox(argv),
  },
  snapshot: {
    summary: 'List and delete workspace snapshots (`omega snapshot --help`)',
    settings: clientSettings,
    command: true,
    run: async (argv) => (await import('./client/commands.js')).runSnapshot(argv),
  },
  workspace: {
    summary: 'List and delete named workspaces (`omega workspace --help`)',
    settings: clientSettings,
    command: true,
    run: async (argv) => (await import('./client/commands.js')).runWorkspace(argv),
  },
  hosts: {
    summary: 'List the master\'s hosts with their load, capacity and health',
    settings: clientSettings,
    command: true,
    run: async (argv) => (await import('./client/commands.js')).runHosts(argv),
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
  const section = (command: boolean) =>
    Object.entries(PROGRAMS)
      .filter(([, p]) => Boolean(p.command) === command)
      .map(([name, p]) => `  ${name.padEnd(width)}${p.summary}`);
  return [
    'Usage: omega <program|command> [options]',
    '',
    'Programs (servers that run until stopped):',
    ...section(false),
    '',
    'Commands (clients of a running master; --json for scripts):',
    ...section(true),
    '',
    'Run `omega <name> --help` for its settings. Each setting is an environment',
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
  if (program.command) return (await program.run(rest)) ?? 0;
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
