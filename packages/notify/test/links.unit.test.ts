import { describe, expect, it } from 'vitest';
import { sanitize } from '../src/render.js';

// Links an agent writes never reach a chat, and what is left reads cleanly (#17: `[link removed]]`).
describe('links removed from notification text', () => {
  it('a link in brackets, parentheses or angle brackets goes with its brackets', () => {
    expect(sanitize('see [https://evil.example/x?a=1] now')).toBe('see [link removed] now');
    expect(sanitize('see (https://evil.example/x) now')).toBe('see [link removed] now');
    expect(sanitize('see <https://evil.example/x> now')).toBe('see [link removed] now');
  });

  it('a markdown or Slack link keeps its label', () => {
    expect(sanitize('Read [the report](https://evil.example/r "Report") first')).toBe('Read the report [link removed] first');
    expect(sanitize('Read <https://evil.example/r|the report> first')).toBe('Read the report [link removed] first');
    expect(sanitize('[https://evil.example](https://evil.example/r)')).toBe('[link removed]');
  });

  it('bare links, and text with brackets but no link, as before', () => {
    expect(sanitize('go to https://evil.example/a, then http://b.example.')).toBe('go to [link removed], then [link removed].');
    expect(sanitize('a [note] and (an aside) stay')).toBe('a [note] and (an aside) stay');
    for (const text of ['[https://x.example]', '([https://x.example])', '[a](https://x.example)', '<https://x.example|[a]>']) {
      expect(sanitize(text), text).not.toMatch(/\[link removed\]\]|\[\[link removed\]/);
    }
  });

  it('stays quick on long text with unclosed markup', () => {
    const text = `[a](https://x.example/${'a'.repeat(20_000)}`.repeat(5);
    expect(sanitize(text, 100_000)).toMatch(/^\[a\]\(\[link removed\]/);
  });
});
