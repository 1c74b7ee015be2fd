import { describe, expect, it } from 'vitest';
import { formatUsd, roundUsd } from '../src/index.js';

describe('costs in dollars', () => {
  it('are stored rounded to a nano-dollar: no float noise in records, events and totals', () => {
    // One call's cost summed as the agent does: 1 input token at $0.15/M, 4 output tokens at $0.60/M.
    expect(0.15 / 1_000_000 + (4 * 0.6) / 1_000_000).toBe(0.0000025499999999999997);
    expect(roundUsd(0.15 / 1_000_000 + (4 * 0.6) / 1_000_000)).toBe(0.00000255);
    expect(roundUsd(0.1 + 0.2)).toBe(0.3);
    expect(roundUsd(roundUsd(0.00006075) * 3)).toBe(0.00018225);
    expect(roundUsd(1e-10)).toBe(0);
  });

  it('are shown with the digits a small amount needs: never $0.00 for something spent', () => {
    expect(formatUsd(0)).toBe('$0.00');
    expect(formatUsd(0.000060749999999999986)).toBe('$0.000061');
    expect(formatUsd(0.00005)).toBe('$0.00005');
    expect(formatUsd(0.0000000049)).toBe('$0.000000005');
    expect(formatUsd(0.009999)).toBe('$0.01');
    expect(formatUsd(0.05)).toBe('$0.05');
    expect(formatUsd(0.5)).toBe('$0.50');
    expect(formatUsd(0.1234)).toBe('$0.1234');
    expect(formatUsd(0.12345)).toBe('$0.1235');
    expect(formatUsd(1)).toBe('$1.00');
    expect(formatUsd(12.345)).toBe('$12.35');
    expect(formatUsd(1e-11)).toBe('$0.00');
  });
});
