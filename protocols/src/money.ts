/**
 * Costs in US dollars, as stored and as shown. Prices are per million tokens, so a model call's
 * cost is a float product (81 tokens at $0.75/M is 0.000060749999999999986) and sums of them drift
 * further: stored and sent costs are rounded to a nano-dollar, and shown with as many digits as a
 * small amount needs, so nothing reads `$0.00` that cost something.
 */

/** `usd` rounded to 1e-9 $: what records, events, journals and totals carry (`0.00006075`). */
export function roundUsd(usd: number): number {
  return Math.round(usd * 1e9) / 1e9;
}

/**
 * A cost for people: `$12.35` from a dollar up, `$0.50` / `$0.1234` from a cent up, and below a
 * cent two significant digits (`$0.000061`, `$0.00005`); `$0.00` only for nothing (or less than
 * a nano-dollar).
 */
export function formatUsd(usd: number): string {
  if (!Number.isFinite(usd)) return `$${usd}`;
  const sign = usd < 0 ? '-' : '';
  const n = Math.abs(roundUsd(usd));
  if (n === 0) return '$0.00';
  if (n >= 1) return `${sign}$${n.toFixed(2)}`;
  const decimals = n >= 0.01 ? 4 : Math.min(9, 1 - Math.floor(Math.log10(n)));
  // Trailing zeros go, down to cents: $0.50, $0.1234, $0.00005.
  const text = n.toFixed(decimals).replace(/0+$/, '');
  const cents = text.length - text.indexOf('.') - 1 < 2 ? text.padEnd(text.indexOf('.') + 3, '0') : text;
  return `${sign}$${cents}`;
}
