// What startSpan records once a tracer provider is registered (as setupTracing does with an OTLP
// endpoint): here an in-memory exporter, so the names, kinds, parents, attributes and error
// status of the spans can be read back. Pure, no server; the provider is this file's own.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { startSpan } from '@errand/telemetry';

const exporter = new InMemorySpanExporter();
const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
beforeAll(() => {
  trace.setGlobalTracerProvider(provider);
});
afterAll(async () => {
  await provider.shutdown();
  trace.disable();
});

describe('spans', () => {
  it('are recorded under their parent with the name, kind and attributes given, and the traceparent names the span', () => {
    exporter.reset();
    const parent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const span = startSpan('errand.tool.request', parent, { 'errand.agent_id': 'a1', 'errand.key': 'a1:3:0' });
    span.setAttributes({ 'errand.tool': 'fs_read', 'errand.tool.attempt': 2 });
    span.end();
    const [recorded, ...more] = exporter.getFinishedSpans();
    expect(more).toEqual([]);
    expect(recorded!.name).toBe('errand.tool.request');
    expect(recorded!.kind).toBe(SpanKind.CONSUMER);
    expect(recorded!.spanContext().traceId).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
    expect(recorded!.parentSpanContext?.spanId).toBe('00f067aa0ba902b7');
    expect(recorded!.attributes).toEqual({ 'errand.agent_id': 'a1', 'errand.key': 'a1:3:0', 'errand.tool': 'fs_read', 'errand.tool.attempt': 2 });
    expect(recorded!.status.code).toBe(SpanStatusCode.UNSET);
    expect(span.traceparent).toBe(`00-${recorded!.spanContext().traceId}-${recorded!.spanContext().spanId}-01`);
  });

  it('a span ended with an error is marked failed with the message and the exception recorded', () => {
    exporter.reset();
    const span = startSpan('errand.plan.request', undefined, {}, SpanKind.PRODUCER);
    span.end(new Error('model unreachable'));
    const [recorded] = exporter.getFinishedSpans();
    expect(recorded!.kind).toBe(SpanKind.PRODUCER);
    expect(recorded!.parentSpanContext).toBeUndefined();
    expect(recorded!.status).toEqual({ code: SpanStatusCode.ERROR, message: 'model unreachable' });
    expect(recorded!.events.map((e) => e.name)).toEqual(['exception']);
    expect(recorded!.events[0]!.attributes?.['exception.message']).toBe('model unreachable');
  });

  it('a child of a recorded span is its child in the trace', () => {
    exporter.reset();
    const step = startSpan('errand.step', undefined);
    const call = startSpan('errand.tool.request', step.traceparent);
    call.end();
    step.end();
    const byName = new Map(exporter.getFinishedSpans().map((s) => [s.name, s]));
    expect(byName.get('errand.tool.request')!.parentSpanContext?.spanId).toBe(byName.get('errand.step')!.spanContext().spanId);
    expect(call.traceId).toBe(step.traceId);
  });
});
