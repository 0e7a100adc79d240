import { parseArgs } from 'node:util';
import { ConfigError, renderSettingsHelp } from '../../src/config/settings.js';
import { clientSettings, loadClientConfig, type ClientConfig } from './config.js';
import { MasterApiError, MasterClient, MasterUnreachableError } from './master-client.js';
import { colorWanted } from './table.js';
import { rootCertificates } from 'node:tls';
import { Agent } from 'undici';

/**
 * The frame every client command runs in: its flags and the client settings
 * parsed together, `--help`, the master client, and one place that turns a
 * failure into a line on stderr and an exit code (0 done, 1 failed, 2 usage).
 */

export interface OptionSpec {
  type: 'string' | 'boolean';
  multiple?: boolean;
  /** The value's placeholder in --help, e.g. `<name>`. */
  value?: string;
  description: string;
}

export interface Io {
  out(text: string): void;
  err(text: string): void;
  /** Colors in what goes to `out`. */
  color: boolean;
}

export interface Context {
  client: MasterClient;
  config: ClientConfig;
  io: Io;
  /** `omega sandbox delete`: the prefix of every message. */
  prefix: string;
  values: Record<string, string | boolean | Array<string | boolean> | undefined>;
  positionals: string[];
}

export interface Command {
  /** What follows the name in the usage line, e.g. `<id>... [options]`. */
  args: string;
  summary: string;
  options: Record<string, OptionSpec>;
  positionals: { min: number; max: number };
  run(ctx: Context): Promise<number>;
}

/** A mistake on the command line: the message, a pointer to --help, exit 2. */
export class UsageError extends Error {
  readonly code = 'USAGE';
}

export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

export function processIo(): Io {
  // `omega sandbox list | head`: the reader leaving is not an error of ours.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    process.exit(0);
  });
  return {
    out: (text) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
    err: (text) => process.stderr.write(text.endsWith('\n') ? text : `${text}\n`),
    color: colorWanted(process.stdout, process.env),
  };
}

export function commandHelp(prefix: string, cmd: Command): string {
  const rows = Object.entries(cmd.options).map(([flag, o]) => ({
    left: `--${flag}${o.type === 'string' ? ` ${o.value ?? '<value>'}` : ''}`,
    right: o.description + (o.multiple ? ' (repeatable)' : ''),
  }));
  rows.push({ left: '-h, --help', right: 'Show this help' });
  const width = Math.max(...rows.map((r) => r.left.length)) + 2;
  return [
    `Usage: ${prefix} ${cmd.args}`,
    '',
    cmd.summary,
    '',
    'Options:',
    ...rows.map((r) => `  ${r.left.padEnd(width)}${r.right}`),
    '',
    'Settings (flag, environment variable, meaning, default):',
    renderSettingsHelp(clientSettings),
  ].join('\n');
}

/** Parse, then run one command; every failure ends here as a message and an exit code. */
export async function runCommand(prefix: string, cmd: Command, argv: string[], io: Io, env: NodeJS.ProcessEnv): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    io.out(commandHelp(prefix, cmd));
    return EXIT.ok;
  }
  let client: MasterClient | undefined;
  let config: ClientConfig | undefined;
  try {
    const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }> = {};
    for (const [flag, o] of Object.entries(cmd.options)) options[flag] = o.multiple ? { type: o.type, multiple: true } : { type: o.type };
    for (const s of Object.values(clientSettings)) options[s.flag] = { type: 'string' };
    let parsed;
    try {
      parsed = parseArgs({ args: argv, options, strict: true, allowPositionals: true });
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    const { values, positionals } = parsed;
    const { min, max } = cmd.positionals;
    if (positionals.length < min) throw new UsageError(`missing ${cmd.args.split(' ')[0]}`);
    if (positionals.length > max) throw new UsageError(`unexpected argument "${positionals[max]}"`);
    // The settings' flags go back through the settings framework, so its checks and messages apply.
    const settingsArgv: string[] = [];
    for (const s of Object.values(clientSettings)) {
      const v = values[s.flag];
      if (typeof v === 'string') settingsArgv.push(`--${s.flag}`, v);
    }
    config = loadClientConfig({ env, argv: settingsArgv });
    client = new MasterClient(config.masterUrl, config.token, config.caPem ? new Agent({ keepAliveTimeout: 5_000, connect: { ca: [...rootCertificates, config.caPem] } }) : undefined);
    return await cmd.run({ client, config, io, prefix, values, positionals });
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`${prefix}: ${err.message}\nRun \`${prefix} --help\` for its options.`);
      return EXIT.usage;
    }
    if (err instanceof ConfigError) {
      io.err(`${prefix}: ${err.message}`);
      return EXIT.failed;
    }
    io.err(`${prefix}: ${describeFailure(err, config)}`);
    return EXIT.failed;
  } finally {
    await client?.close();
  }
}

/** One line for a failure: the master's code and message, or what to do about the network or the token. */
export function describeFailure(err: unknown, config: ClientConfig | undefined): string {
  if (err instanceof MasterUnreachableError) {
    const from = config && config.masterUrlFrom !== 'the default' ? ` (from ${config.masterUrlFrom})` : '';
    return `cannot reach the master at ${err.url}${from}: ${err.reason}. Is it running? \`make run\` starts one; OMEGA_MASTER_URL / --master-url say where another is`;
  }
  if (err instanceof MasterApiError) {
    if (err.status === 401 && config) {
      if (!config.tokenFrom) {
        return `${err.code}: the master needs an API token and none was found: OMEGA_API_TOKEN and --api-token are not set and ${config.tokenFile} does not exist (\`make run\` and \`omega up\` write it)`;
      }
      return `${err.code}: the master refused the API token from ${config.tokenFrom}`;
    }
    return `${err.code}: ${err.message}`;
  }
  return (err as Error).stack ?? String(err);
}
