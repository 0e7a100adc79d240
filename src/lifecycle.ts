import type { Logger } from './log.js';

/** What every Omega server is: started once, stopped (idempotently) once. */
export interface Component {
  start(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Wrap a stop function so concurrent and repeated calls share one run.
 */
export function once(stop: () => Promise<void>): () => Promise<void> {
  let p: Promise<void> | null = null;
  return () => (p ??= stop());
}

/**
 * Start a component and stop it on the first SIGTERM or SIGINT. Stopping must
 * finish within `graceMs`, or the process exits 1 anyway; a second signal
 * exits at once.
 */
export async function runUntilSignal(component: Component, log: Logger, graceMs = 10_000): Promise<void> {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      log.warn({ signal }, 'second signal; exiting now');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, 'stopping');
    const timer = setTimeout(() => {
      log.error({ graceMs }, 'stop took too long; exiting');
      process.exit(1);
    }, graceMs);
    timer.unref();
    component.stop().then(
      () => {
        log.info('stopped');
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  await component.start();
}
