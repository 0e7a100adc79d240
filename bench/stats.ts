/** The p-th percentile of `xs` (nearest rank: the smallest value with at least p% of them at or below it). */
export function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}
