import { useEffect, useRef, useState } from 'preact/hooks';
import { getSession } from './api.js';

export type StreamState = 'connecting' | 'live' | 'reconnecting' | 'paused' | 'closed';

const RETRY_MS = 3000;

/**
 * Listens to a server-sent event stream with named events.
 *
 * - EventSource reconnects by itself after a dropped connection and sends `Last-Event-ID`, so the
 *   gateway resumes after the last event seen: no gap, no repeat.
 * - A refused (re)connection (a restarting gateway, a 401) closes an EventSource for good; it is
 *   opened again after a pause with `?after=<last id>`, which resumes the same way.
 * - A hidden tab lets go of its streams and resumes them (`?after=`) when shown again: a browser
 *   keeps at most six connections to one HTTP/1.1 server, and every open stream holds one, so a
 *   few background tabs would otherwise leave none for the visible one.
 *
 * `onReopen` runs when a stream opens again after it was closed or paused (to read again what a
 * stream started "from now" cannot replay). `url` undefined: no stream. Handlers may change
 * between renders without reconnecting.
 */
export function useEventStream(
  url: string | undefined,
  kinds: readonly string[],
  onMessage: (kind: string, data: unknown, id: string) => void,
  onReopen?: () => void,
): StreamState {
  const [state, setState] = useState<StreamState>('connecting');
  const handler = useRef(onMessage);
  handler.current = onMessage;
  const reopened = useRef(onReopen);
  reopened.current = onReopen;
  const kindsKey = kinds.join(',');
  useEffect(() => {
    if (!url) {
      setState('closed');
      return;
    }
    const names = kindsKey.split(',').filter(Boolean);
    let lastId: string | undefined;
    let es: EventSource | undefined;
    let retry: ReturnType<typeof setTimeout> | undefined;
    let stopped = false;
    let opens = 0;
    const listen = (e: Event) => {
      const m = e as MessageEvent<string>;
      if (m.lastEventId) lastId = m.lastEventId;
      let data: unknown;
      try {
        data = JSON.parse(m.data);
      } catch {
        return;
      }
      handler.current(m.type, data, m.lastEventId);
    };
    const close = () => {
      clearTimeout(retry);
      if (!es) return;
      for (const k of names) es.removeEventListener(k, listen);
      es.close();
      es = undefined;
    };
    const open = () => {
      close();
      const target = lastId ? `${url}${url.includes('?') ? '&' : '?'}after=${encodeURIComponent(lastId)}` : url;
      const source = new EventSource(target, { withCredentials: true });
      es = source;
      for (const k of names) source.addEventListener(k, listen);
      source.onopen = () => {
        setState('live');
        if (opens++ > 0) reopened.current?.();
      };
      source.onerror = () => {
        if (source.readyState !== EventSource.CLOSED) {
          setState('reconnecting');
          return;
        }
        setState('closed');
        // Ask the API why (a 401 shows the sign-in note), then try again.
        void getSession().catch(() => undefined);
        if (!stopped) retry = setTimeout(open, RETRY_MS);
      };
    };
    const onVisibility = () => {
      if (document.visibilityState === 'hidden') {
        close();
        setState('paused');
      } else if (!es && !stopped) {
        setState('connecting');
        open();
      }
    };
    document.addEventListener('visibilitychange', onVisibility);
    if (document.visibilityState === 'hidden') setState('paused');
    else {
      setState('connecting');
      open();
    }
    return () => {
      stopped = true;
      document.removeEventListener('visibilitychange', onVisibility);
      close();
    };
  }, [url, kindsKey]);
  return state;
}
