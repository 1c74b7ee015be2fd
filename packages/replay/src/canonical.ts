/**
 * Values as they look after a round trip through the record codec: properties that are undefined
 * dropped, keys sorted, undefined array items null. Two snapshots are the same when their
 * canonical JSON is.
 */
export function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map((v) => (v === undefined ? null : canonical(v)));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[k];
      if (v !== undefined && typeof v !== 'function') out[k] = canonical(v);
    }
    return out;
  }
  return value;
}

export function sameValue(a: unknown, b: unknown): boolean {
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
}

const show = (v: unknown) => {
  const s = v === undefined ? 'undefined' : JSON.stringify(v);
  return s.length > 120 ? `${s.slice(0, 117)}…` : s;
};

/**
 * Where `expected` and `actual` differ, one line per differing path (`- path: expected` /
 * `+ path: actual`), at most `limit` paths.
 */
export function differences(expected: unknown, actual: unknown, limit = 20): string[] {
  const out: string[] = [];
  const walk = (e: unknown, a: unknown, path: string) => {
    if (out.length >= limit * 2) return;
    if (sameValue(e, a)) return;
    const bothObjects = e !== null && a !== null && typeof e === 'object' && typeof a === 'object' && Array.isArray(e) === Array.isArray(a);
    if (bothObjects) {
      const keys = new Set([...Object.keys(e as object), ...Object.keys(a as object)]);
      for (const k of keys) walk((e as Record<string, unknown>)[k], (a as Record<string, unknown>)[k], Array.isArray(e) ? `${path}[${k}]` : path ? `${path}.${k}` : k);
      return;
    }
    out.push(`- ${path || '(value)'}: ${show(canonical(e))}`, `+ ${path || '(value)'}: ${show(canonical(a))}`);
  };
  walk(expected, actual, '');
  return out;
}
