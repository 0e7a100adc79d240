/**
 * How many warm containers a template's pool should hold: enough for the
 * creates that arrive while one refill takes place. That is the create rate
 * times the time a container takes to start (a moving average of this
 * host's own starts), taken at its peak over the recent window: the most
 * creates that came within any one start time of each other. A steady
 * stream and a burst are measured alike (a burst of 30 within a start time
 * asks for 30), and the pool keeps that size for the window, so the next
 * burst finds it; with no creates for a window it is back at the floor.
 * Between the floor and the ceiling.
 */
export interface PoolBounds {
  floor: number;
  ceiling: number;
}

/** How much one start's time moves the average (an exponential moving average). */
const START_WEIGHT = 0.3;

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

  /** The most creates within any one start time of each other, over the window (two pointers over the sorted times). */
  peak(): number {
    this.forget();
    let most = 0;
    for (let lo = 0, hi = 0; hi < this.creates.length; hi++) {
      while (this.creates[hi]! - this.creates[lo]! > this.startMs) lo++;
      most = Math.max(most, hi - lo + 1);
    }
    return most;
  }

  target(): number {
    const { floor, ceiling } = this.bounds;
    if (ceiling <= floor) return floor;
    return Math.min(ceiling, Math.max(floor, this.peak()));
  }

  private forget(): void {
    const since = this.now() - this.windowMs;
    while (this.creates.length && this.creates[0]! < since) this.creates.shift();
  }
}
