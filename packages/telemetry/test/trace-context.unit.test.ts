// W3C trace context as Errand carries it, with no tracer provider registered (no OTLP endpoint):
// no span is recorded, but every message still continues its parent's trace. Pure, no server.
import { describe, expect, it } from 'vitest';
import { newTraceparent, startSpan, traceIdOf, traceparentFrom, validTraceparent } from '@errand/telemetry';

const FORMAT = /^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

describe('trace context', () => {
  it('newTraceparent starts a sampled trace of its own each time', () => {
    const a = newTraceparent();
    const b = newTraceparent();
    expect(a).toMatch(FORMAT);
    expect(a.endsWith('-01')).toBe(true);
    expect(traceIdOf(a)).not.toBe(traceIdOf(b));
  });

  it('a malformed traceparent is no trace at all', () => {
    for (const bad of ['', 'garbage', '01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', '00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01']) {
      expect(validTraceparent(bad), bad).toBeUndefined();
      expect(traceIdOf(bad), bad).toBeUndefined();
      expect(traceparentFrom({ get: () => bad }), bad).toBeUndefined();
    }
    expect(validTraceparent(undefined)).toBeUndefined();
    expect(traceparentFrom(undefined)).toBeUndefined();
  });

  it('traceparentFrom reads the traceparent header', () => {
    const tp = newTraceparent();
    expect(traceparentFrom({ get: (name) => (name === 'traceparent' ? tp : '') })).toBe(tp);
  });

  it('a span under a parent continues its trace with a span id of its own and the parent flags', () => {
    const parent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00';
    const span = startSpan('errand.step', parent);
    expect(span.traceparent).toMatch(FORMAT);
    expect(span.traceId).toBe('0af7651916cd43dd8448eb211c80319c');
    expect(span.traceparent.split('-')[2]).not.toBe('b7ad6b7169203331');
    expect(span.traceparent.endsWith('-00')).toBe(true);
    span.end();
  });

  it('a span without a parent starts a new trace', () => {
    const a = startSpan('errand.goal', undefined);
    const b = startSpan('errand.goal', undefined);
    expect(a.traceparent).toMatch(FORMAT);
    expect(a.traceId).not.toBe(b.traceId);
    a.end();
    b.end(new Error('ending with an error records nothing without a provider, and does not throw'));
  });
});
