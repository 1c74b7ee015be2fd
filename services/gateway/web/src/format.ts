// Words and numbers as the views show them. Pure.

/** `12 ms`, `3.4 s`, `4m05s`, `2h03m`, `3d04h` (as `errand watch` writes them). */
export function duration(ms: number): string {
  if (!Number.isFinite(ms)) return '';
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.floor(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86_400)}d${String(Math.floor((s % 86_400) / 3600)).padStart(2, '0')}h`;
}

/**
 * `$12.35`, `$0.42`, `$0.1234`, and below a cent two significant digits (`$0.000061`): never
 * `$0.00` for something spent. The rule of formatUsd in @errand/protocols (the page bundles no
 * workspace package), which `errand show`/`watch` and the agent's messages use.
 */
export function money(usd: number | undefined): string {
  if (usd === undefined || !Number.isFinite(usd)) return '–';
  const sign = usd < 0 ? '-' : '';
  const n = Math.abs(Math.round(usd * 1e9) / 1e9);
  if (n === 0) return '$0.00';
  if (n >= 1) return `${sign}$${n.toFixed(2)}`;
  const text = n.toFixed(n >= 0.01 ? 4 : Math.min(9, 1 - Math.floor(Math.log10(n)))).replace(/0+$/, '');
  const decimals = text.length - text.indexOf('.') - 1;
  return `${sign}$${decimals < 2 ? text.padEnd(text.indexOf('.') + 3, '0') : text}`;
}

export function count(n: number | undefined): string {
  return n === undefined ? '–' : n.toLocaleString('en-US');
}

export function toMs(t: string | number | undefined): number | undefined {
  if (t === undefined) return undefined;
  const ms = typeof t === 'number' ? t : Date.parse(t);
  return Number.isFinite(ms) ? ms : undefined;
}

/** `12:01:03` in local time. */
export function clock(at: number | string | undefined): string {
  const ms = toMs(at);
  return ms === undefined ? '' : new Date(ms).toTimeString().slice(0, 8);
}

/** `12:01:03` when `at` is today, `Dec 6, 12:01:03` on another day (a deadline a day away). */
export function clockOrDay(at: number | string | undefined, now = Date.now()): string {
  const ms = toMs(at);
  if (ms === undefined) return '';
  const d = new Date(ms);
  if (d.toDateString() === new Date(now).toDateString()) return clock(ms);
  return `${d.toLocaleDateString('en-US', { month: 'short', day: 'numeric' })}, ${clock(ms)}`;
}

export function dateTime(at: number | string | undefined): string {
  const ms = toMs(at);
  return ms === undefined ? '' : new Date(ms).toLocaleString();
}

/** An XState state value as people read it: `acting`, `parent.child`, `a.x, b.y`. */
export function stateText(value: unknown): string {
  if (value === undefined || value === null) return '–';
  if (typeof value === 'string') return value;
  if (typeof value !== 'object') return String(value);
  return Object.entries(value as Record<string, unknown>)
    .map(([k, v]) => (v && typeof v === 'object' && Object.keys(v).length > 1 ? `${k}.(${stateText(v)})` : `${k}.${stateText(v)}`))
    .join(', ');
}

/** JSON for people: two-space indented; a string that holds JSON is shown parsed. */
export function pretty(v: unknown): string {
  if (typeof v === 'string') {
    try {
      const parsed: unknown = JSON.parse(v);
      if (parsed !== null && typeof parsed === 'object') return JSON.stringify(parsed, null, 2);
    } catch {
      // Not JSON: shown as it is.
    }
    return v;
  }
  return JSON.stringify(v, null, 2) ?? String(v);
}

export function oneLine(s: string, max = 160): string {
  const one = s.replace(/\s+/g, ' ').trim();
  return one.length > max ? `${one.slice(0, max - 1)}…` : one;
}

/** The agent a command's subject is addressed to (`<prefix>.agent.<id>.in.<kind>`), if any. */
export function agentOfSubject(subject: string): string | undefined {
  const m = /(?:^|\.)agent\.([^.]+)\.in\.[^.]+$/.exec(subject);
  return m?.[1];
}

/** The tool a work subject names (its last token). */
export function lastToken(subject: string): string {
  return subject.split('.').at(-1) ?? subject;
}

/** `team=ops, env=prod` or `team:ops` → a label filter value `team:ops` / record. */
export function parseLabels(text: string): Record<string, string> | undefined {
  const out: Record<string, string> = {};
  for (const part of text.split(',')) {
    const p = part.trim();
    if (!p) continue;
    const i = p.search(/[=:]/);
    if (i <= 0) return undefined;
    out[p.slice(0, i).trim()] = p.slice(i + 1).trim();
  }
  return out;
}
