/**
 * Text from agents, models, tools and submitters is data, never terminal control: a goal holding
 * `\x1b]0;…\x07` must not retitle the window, `\x1b[2J` must not clear it, a bidi override must
 * not reorder what a person reads before they approve it. Everything the CLI prints that it did
 * not write itself goes through {@link terminalSafe}; `--json` output is JSON and stays exact.
 */

// C0 controls (but \t and \n, handled apart), DEL, C1 controls (0x80-0x9f; 0x9b is a one-byte CSI),
// the bidi embeddings/overrides/isolates, and the line and paragraph separators.
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/g;
// eslint-disable-next-line no-control-regex
const UNSAFE_OR_LINE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/g;

const NAMED: Readonly<Record<string, string>> = { '\n': '\\n', '\t': '\\t', '\r': '\\r' };

function visible(ch: string): string {
  const named = NAMED[ch];
  if (named) return named;
  const code = ch.charCodeAt(0);
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

export interface TerminalSafeOptions {
  /** Keep line breaks and tabs (text shown over several lines); otherwise they are shown as `\n`, `\t`. */
  multiline: boolean;
}

/**
 * `text` with every control character, escape sequence introducer and bidi control replaced by a
 * visible escape (`\x1b`, `\x07`, `\u202e`), so printing it cannot drive the terminal. Printable
 * text, including any language's letters and emoji, is unchanged.
 */
export function terminalSafe(text: string, options: Partial<TerminalSafeOptions> = {}): string {
  return text.replace(options.multiline ? UNSAFE : UNSAFE_OR_LINE, visible);
}
