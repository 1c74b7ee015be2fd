export {
  newTraceparent,
  setupTracing,
  SpanKind,
  startSpan,
  TRACEPARENT,
  traceIdOf,
  traceparentFrom,
  validTraceparent,
  type ErrandSpan,
  type HeaderReader,
  type Tracing,
} from './tracing.js';
export { HealthPath, metrics, registry, startMetricsServer, watchConsumerPending, type MetricsServer, type MetricsServerOptions, type Readiness } from './metrics.js';
