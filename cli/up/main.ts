import { ConfigError } from '../../src/config/settings.js';
import { loadUpConfig } from './settings.js';
import { Up } from './stack.js';

/**
 * `omega up` in the foreground: the first Ctrl-C (or SIGTERM) deletes the
 * sandboxes and stops everything in order; a second one kills at once (and
 * still removes the containers).
 */
export async function runUp(env: NodeJS.ProcessEnv, argv: string[]): Promise<void> {
  const up = new Up(loadUpConfig({ env, argv }), env);
  // A reader that went away (a closed terminal, a dead pipe) must not cut the shutdown short: EPIPE is ignored.
  for (const s of [process.stdout, process.stderr]) s.on('error', () => {});
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals === 1) {
      up.log.info({ signal }, 'stopping (Ctrl-C again to kill everything at once)');
      up.stop().then(
        () => process.exit(0),
        (err: Error) => {
          up.log.error({ err }, 'stop failed');
          process.exit(1);
        },
      );
    } else if (signals === 2) {
      up.log.warn('killing everything now');
      up.kill().finally(() => process.exit(130));
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // Started with an IPC channel (a test, a bench): when the starter is gone, stop as on Ctrl-C, so nothing is left running.
  if (process.channel) {
    process.channel.unref();
    process.once('disconnect', () => onSignal('SIGTERM'));
  }
  up.failed.then(async (name) => {
    up.log.error(`${name} keeps failing; stopping everything`);
    await up.stop();
    process.exit(1);
  });
  try {
    await up.start();
  } catch (err) {
    if ((err as Error).message === 'stopping') return; // a signal came during the start; its handler finishes
    if (!(err instanceof ConfigError)) up.log.error((err as Error).message);
    await up.stop();
    if (err instanceof ConfigError) throw err; // printed by the CLI, every problem with its variable
    process.exit(1);
  }
}
