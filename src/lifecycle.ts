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

/** What stopping logs through: pino's Logger, or the worker's own small logger (which carries no pino). */
type LogFn = (fields: Record<string, unknown> | string, msg?: string) => void;
export interface StopLog {
  info: LogFn;
  warn: LogFn;
  error: LogFn;
}

/**
 * Start a component and stop it on the first SIGTERM or SIGINT. Stopping must
 * finish within `graceMs`, or the process exits 1 anyway; a second signal
 * exits at once.
 */
export async function runUntilSignal(component: Component, log: StopLog, graceMs = 10_000): Promise<void> {
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

/**
 * A task run every `intervalMs` and on demand. Runs that overlap share one
 * pass (a timer tick while a pass is going does not start another); stop()
 * ends the timer and waits for the pass in flight.
 */
export class Periodic<T> {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<T> | null = null;

  constructor(
    private readonly intervalMs: number,
    private readonly pass: () => Promise<T>,
    private readonly onError: (err: unknown) => void,
  ) {}

  start(): void {
    this.timer ??= setInterval(() => this.run().catch(this.onError), this.intervalMs);
    this.timer.unref();
  }

  run(): Promise<T> {
    this.running ??= this.pass().finally(() => (this.running = null));
    return this.running;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running?.catch(() => {});
  }
}
