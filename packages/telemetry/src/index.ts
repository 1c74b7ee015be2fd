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
export { metrics, registry, startMetricsServer, watchConsumerPending, type MetricsServer } from './metrics.js';
