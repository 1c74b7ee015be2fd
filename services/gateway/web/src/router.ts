import { useEffect, useState } from 'preact/hooks';

// A small history router: the gateway serves index.html for every non-/api path, so a deep link
// (the notifier's `/agents/:id`) opens the right view.

export type Route =
  | { view: 'agents' }
  | { view: 'agent'; id: string }
  | { view: 'replay'; id: string; step?: number; diff?: string }
  | { view: 'system' }
  | { view: 'missing'; path: string };

export function parseRoute(pathname: string, search: string): Route {
  const parts = pathname.split('/').filter(Boolean).map(decodeURIComponent);
  const q = new URLSearchParams(search);
  if (parts.length === 0) return { view: 'agents' };
  if (parts[0] === 'agents' && parts.length === 2) return { view: 'agent', id: parts[1]! };
  if (parts[0] === 'replay' && parts.length === 2) {
    const step = Number(q.get('step'));
    const diff = q.get('diff');
    return { view: 'replay', id: parts[1]!, ...(Number.isInteger(step) && step > 0 ? { step } : {}), ...(diff ? { diff } : {}) };
  }
  if (parts[0] === 'system' && parts.length === 1) return { view: 'system' };
  return { view: 'missing', path: pathname };
}

const listeners = new Set<() => void>();

export function navigate(to: string, replace = false): void {
  if (replace) history.replaceState(null, '', to);
  else history.pushState(null, '', to);
  for (const l of listeners) l();
  if (!replace) window.scrollTo(0, 0);
}

export function useRoute(): Route {
  const read = () => parseRoute(location.pathname, location.search);
  const [route, setRoute] = useState(read);
  useEffect(() => {
    const update = () => setRoute(read());
    listeners.add(update);
    window.addEventListener('popstate', update);
    return () => {
      listeners.delete(update);
      window.removeEventListener('popstate', update);
    };
  }, []);
  return route;
}

/** A click on an in-app link navigates without a reload (a modified click opens a tab as usual). */
export function onLinkClick(e: MouseEvent): void {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = (e.target as Element | null)?.closest?.('a');
  if (!a || a.target || a.hasAttribute('download')) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith('/api/') || url.pathname === '/login') return;
  e.preventDefault();
  navigate(url.pathname + url.search + url.hash);
}

export const agentHref = (id: string): string => `/agents/${encodeURIComponent(id)}`;
export const replayHref = (id: string, params: { step?: number; diff?: string } = {}): string => {
  const q = new URLSearchParams();
  if (params.step !== undefined) q.set('step', String(params.step));
  if (params.diff) q.set('diff', params.diff);
  const s = q.toString();
  return `/replay/${encodeURIComponent(id)}${s ? `?${s}` : ''}`;
};
