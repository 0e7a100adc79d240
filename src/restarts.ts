/**
 * When a supervisor restarts a child that exited unasked (`omega up`'s
 * programs, the local provider's managers): after a pause that doubles with
 * each exit in the last minute (1 s, 2 s, 4 s, 8 s; at most 10 s); the fifth
 * exit within a minute means it will not stay up, and the supervisor gives
 * up on it.
 */
export const RESTART_POLICY = { maxExits: 5, windowMs: 60_000, firstDelayMs: 1000, maxDelayMs: 10_000 } as const;

export class RestartBackoff {
  private exits: number[] = [];

  constructor(private readonly now: () => number = Date.now) {}

  /** Exits counted in the last window (the one just recorded included). */
  get recent(): number {
    return this.exits.length;
  }

  /** Record an unasked exit: the pause before the restart, or null to give up. */
  exited(): number | null {
    const p = RESTART_POLICY;
    const now = this.now();
    this.exits = [...this.exits.filter((t) => now - t < p.windowMs), now];
    if (this.exits.length >= p.maxExits) return null;
    return Math.min(p.maxDelayMs, p.firstDelayMs * 2 ** (this.exits.length - 1));
  }
}
