import { useEffect, useRef, useState } from 'preact/hooks';
import { getSession } from './api.js';

export type StreamState = 'connecting' | 'live' | 'reconnecting' | 'closed';

/**
 * Listens to a server-sent event stream with named events. EventSource reconnects by itself and
 * sends `Last-Event-ID`, so the gateway resumes after the last event seen: no gap, no repeat.
 * `url` undefined: no stream. Handlers may change between renders without reconnecting.
 */
export function useEventStream(url: string | undefined, kinds: readonly string[], onMessage: (kind: string, data: unknown, id: string) => void): StreamState {
  const [state, setState] = useState<StreamState>('connecting');
  const handler = useRef(onMessage);
  handler.current = onMessage;
  const kindsKey = kinds.join(',');
  useEffect(() => {
    if (!url) {
      setState('closed');
      return;
    }
    setState('connecting');
    const es = new EventSource(url, { withCredentials: true });
    const listen = (e: Event) => {
      const m = e as MessageEvent<string>;
      let data: unknown;
      try {
        data = JSON.parse(m.data);
      } catch {
        return;
      }
      handler.current(m.type, data, m.lastEventId);
    };
    const names = kindsKey.split(',').filter(Boolean);
    for (const k of names) es.addEventListener(k, listen);
    es.onopen = () => setState('live');
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED) {
        setState('closed');
        // A refused stream (401) closes for good: ask the API why, which shows the sign-in note.
        void getSession().catch(() => undefined);
      } else setState('reconnecting');
    };
    return () => {
      for (const k of names) es.removeEventListener(k, listen);
      es.close();
    };
  }, [url, kindsKey]);
  return state;
}
