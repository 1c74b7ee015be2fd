import { randomFillSync } from 'node:crypto';
import { isSpanContextValid, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, TraceFlags, type Attributes, type Span } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { Header } from '@errand/protocols';

/**
 * W3C trace context across Errand: a goal's trace starts at submit (`traceparent` on the request),
 * the agent's record keeps it, and every command and result carries a `traceparent` NATS header, so
 * a host step, the model call it asked for and the tool calls that followed are one trace — in the
 * logs (`traceId` on every line) and, with an OTLP endpoint, as spans.
 */
export const TRACEPARENT = Header.Traceparent;

/** The API's proxy tracer: it starts delegating once a provider is registered (setupTracing). */
const tracer = trace.getTracer('errand');

const TRACEPARENT_RE = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/**
 * Random ids for traces and spans, cut from a pool filled 4 KiB at a time: one call into the
 * system's random source per step cost about 2% of a busy host's CPU. The ids stay
 * cryptographically random; they are not secrets.
 */
const pool = Buffer.alloc(4096);
let poolAt = pool.length;

function randomHex(bytes: number): string {
  if (poolAt + bytes > pool.length) {
    randomFillSync(pool);
    poolAt = 0;
  }
  poolAt += bytes;
  return pool.toString('hex', poolAt - bytes, poolAt);
}

/** A fresh root context: a new trace id, sampled. */
export function newTraceparent(): string {
  return `00-${randomHex(16)}-${randomHex(8)}-01`;
}

/** The trace id of a `traceparent`, or undefined when it is missing or malformed. */
export function traceIdOf(traceparent: string | undefined): string | undefined {
  return traceparent ? TRACEPARENT_RE.exec(traceparent)?.[1] : undefined;
}

/** `traceparent` when well-formed, else undefined (a malformed header starts no trace). */
export function validTraceparent(value: string | undefined | null): string | undefined {
  return value && TRACEPARENT_RE.test(value) ? value : undefined;
}

/** Something that carries headers, as NATS `MsgHdrs` does. */
export interface HeaderReader {
  get(name: string): string;
}

/** The `traceparent` header of a message, when it has a valid one. */
export function traceparentFrom(headers: HeaderReader | undefined): string | undefined {
  return validTraceparent(headers?.get(TRACEPARENT));
}

/** One unit of work in a trace: a host step, a model call, a tool call. */
export interface ErrandSpan {
  /** The trace this span belongs to. */
  readonly traceId: string;
  /** To carry on the messages this work sends: their receivers' spans become its children. */
  readonly traceparent: string;
  setAttributes(attributes: Attributes): void;
  /** Ends the span; an error marks it failed. */
  end(error?: unknown): void;
}

/**
 * Starts a span under `parent` (a traceparent; a new trace when absent). With no tracer provider
 * registered (no OTLP endpoint), no span is recorded but the context still propagates: the span
 * gets its own id so logs and messages stay linked.
 */
export function startSpan(name: string, parent: string | undefined, attributes: Attributes = {}, kind: SpanKind = SpanKind.CONSUMER): ErrandSpan {
  const match = parent ? TRACEPARENT_RE.exec(parent) : null;
  const parentContext = match
    ? trace.setSpanContext(ROOT_CONTEXT, { traceId: match[1]!, spanId: match[2]!, traceFlags: Number.parseInt(match[3]!, 16), isRemote: true })
    : ROOT_CONTEXT;
  const span: Span = tracer.startSpan(name, { kind, attributes }, parentContext);
  const sc = span.spanContext();
  let traceparent: string;
  if (isSpanContextValid(sc) && sc.spanId !== match?.[2]) {
    traceparent = `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & TraceFlags.SAMPLED ? 1 : 0).toString(16).padStart(2, '0')}`;
  } else {
    // No SDK: a non-recording span echoes its parent. Make a child id ourselves.
    const traceId = match?.[1] ?? randomHex(16);
    traceparent = `00-${traceId}-${randomHex(8)}-${match?.[3] ?? '01'}`;
  }
  return {
    traceId: traceIdOf(traceparent)!,
    traceparent,
    setAttributes: (a) => void span.setAttributes(a),
    end(error) {
      if (error !== undefined) {
        span.recordException(error instanceof Error ? error : new Error(String(error)));
        span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
      }
      span.end();
    },
  };
}

export interface Tracing {
  /** Whether spans are exported (an OTLP endpoint is configured). */
  readonly exporting: boolean;
  /** Sends the spans still buffered. */
  flush(): Promise<void>;
  shutdown(): Promise<void>;
}

let installed: (Tracing & { provider: TracerProvider }) | undefined;

/**
 * Registers the process's tracer provider once: spans are exported over OTLP/HTTP when
 * `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; otherwise
 * nothing is recorded and only the context propagates. Later calls return the first one.
 */
export function setupTracing(serviceName: string, env: Readonly<Record<string, string | undefined>>): Tracing {
  if (installed) return installed;
  const endpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_ENDPOINT;
  if (!endpoint) {
    return { exporting: false, flush: async () => {}, shutdown: async () => {} };
  }
  const url = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || `${endpoint.replace(/\/$/, '')}/v1/traces`;
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ 'service.name': env.OTEL_SERVICE_NAME || serviceName }),
    spanProcessors: [new BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url }), scheduledDelayMillis: 1000 })],
  });
  trace.setGlobalTracerProvider(provider);
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  installed = {
    provider,
    exporting: true,
    flush: () => provider.forceFlush(),
    shutdown: () => provider.shutdown(),
  };
  return installed;
}

export { SpanKind };
