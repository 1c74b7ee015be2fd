import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { pretty } from './format.js';

// Small pieces every view uses. Text from the API is always rendered as text (JSX children and
// attributes are escaped by Preact); nothing here sets HTML.

export function StatusBadge({ status }: { status: string | undefined }) {
  const s = status ?? 'unknown';
  return <span class={`badge status-${s}`}>{s.replace('_', ' ')}</span>;
}

export function NeedsYou({ kind }: { kind: string }) {
  return (
    <span class="badge needs-you" title={`waiting for your ${kind}`}>
      needs you
    </span>
  );
}

export function Json({ value, label }: { value: unknown; label?: string }) {
  return (
    <pre class="json" tabIndex={0} aria-label={label}>
      {pretty(value)}
    </pre>
  );
}

export function ErrorNote({ error }: { error: unknown }) {
  if (!error) return null;
  const e = error as { code?: string; message?: string };
  return (
    <p class="error" role="alert">
      {e.code ? <code>{e.code}</code> : null} {e.message ?? String(error)}
    </p>
  );
}

export function Section({ title, children, id, actions }: { title: string; children: ComponentChildren; id?: string; actions?: ComponentChildren }) {
  return (
    <section class="card" aria-labelledby={id ? `${id}-h` : undefined} id={id}>
      <div class="card-head">
        <h2 id={id ? `${id}-h` : undefined}>{title}</h2>
        {actions}
      </div>
      {children}
    </section>
  );
}

/** Re-renders every `ms` while mounted (for ages and running durations). */
export function useNow(ms = 1000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}

/** A value loaded by `load`, reloaded when `deps` change; `reload()` to fetch again. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[]): { data: T | undefined; error: unknown; loading: boolean; reload: () => void } {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setLoading(true);
    load().then(
      (d) => {
        if (!live) return;
        setData(d);
        setError(undefined);
        setLoading(false);
      },
      (err: unknown) => {
        if (!live) return;
        setError(err);
        setLoading(false);
      },
    );
    return () => {
      live = false;
    };
  }, [...deps, tick]);
  return { data, error, loading, reload: () => setTick((t) => t + 1) };
}
