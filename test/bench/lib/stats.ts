/**
 * Small statistics for the benches. Stable exports: `percentile(sorted, p)` (nearest rank on an
 * ascending array) and `median(values)` (of any order; the mean of the middle two for even counts).
 */

/** The `p`-th percentile (0–100) of an ascending array, by nearest rank; NaN for an empty one. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

/** The median of `values` (any order); NaN for none. */
export function median(values: readonly number[]): number {
  const s = [...values].filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}
