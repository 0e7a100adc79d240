/**
 * How many warm containers a template's pool should hold: enough for the
 * creates that arrive while one refill takes place. The recent create rate
 * (the higher of the last two seconds', for a burst, and the last window's,
 * for a steady stream) times the time a container takes to start (a moving
 * average of this host's own starts), between the floor and the ceiling.
 * With no creates for a window the target is back at the floor.
 */
export interface PoolBounds {
  floor: number;
  ceiling: number;
}

/** How much one start's time moves the average (an exponential moving average). */
const START_WEIGHT = 0.3;
/** A burst is judged over this much of the recent past. */
const BURST_MS = 2000;

export class Demand {
  /** Create times (ms) within the window, oldest first. */
  private readonly creates: number[] = [];
  /** The average container start, ms; a first guess until one is measured. */
  startMs = 500;

  constructor(
    readonly bounds: PoolBounds,
    private readonly windowMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** A create arrived (served warm or not). */
  created(): void {
    this.creates.push(this.now());
    this.forget();
  }

  /** A container start took `ms`. */
  started(ms: number): void {
    this.startMs = this.startMs * (1 - START_WEIGHT) + ms * START_WEIGHT;
  }

  /** Creates per second: the burst's rate or the window's, whichever is higher. */
  rate(): number {
    this.forget();
    const now = this.now();
    let burst = 0;
    for (let i = this.creates.length - 1; i >= 0 && now - this.creates[i]! < BURST_MS; i--) burst++;
    return Math.max(burst / (BURST_MS / 1000), this.creates.length / (this.windowMs / 1000));
  }

  target(): number {
    const { floor, ceiling } = this.bounds;
    if (ceiling <= floor) return floor;
    const want = Math.ceil(this.rate() * (this.startMs / 1000) - 0.25);
    return Math.min(ceiling, Math.max(floor, want));
  }

  private forget(): void {
    const since = this.now() - this.windowMs;
    while (this.creates.length && this.creates[0]! < since) this.creates.shift();
  }
}
