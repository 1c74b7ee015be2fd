import { assertPrefix, createSubjects, DEFAULT_PREFIX } from './subjects.js';

/**
 * The largest message Errand publishes or accepts: NATS's default `max_payload` (1 MiB). Bigger
 * payloads (large tool results) go to an object store and travel by reference.
 */
export const MAX_MESSAGE_BYTES = 1024 * 1024;

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;

export type RetentionPolicy = 'limits' | 'workqueue';
export type StorageType = 'file' | 'memory';

/** A JetStream stream as Errand needs it; `@errand/nats` turns it into server config. */
export interface StreamSpec {
  readonly name: string;
  readonly description: string;
  readonly subjects: readonly string[];
  /** `workqueue`: a message is removed once acked, so nothing is lost to age and nothing piles up. */
  readonly retention: RetentionPolicy;
  readonly storage: StorageType;
  readonly replicas: number;
  /** 0 keeps messages forever (until the stream's byte limit or `errand gc`). */
  readonly maxAgeMs: number;
  /** -1 for unlimited. */
  readonly maxBytes: number;
  readonly maxMsgSize: number;
  /** Window in which a repeated `Nats-Msg-Id` is dropped as a duplicate. */
  readonly duplicateWindowMs: number;
  readonly discard: 'old' | 'new';
  /** Compress on disk (S2) when the server supports it (≥ 2.10); ignored on older servers. */
  readonly compress: boolean;
}

/** A JetStream KV bucket as Errand needs it. */
export interface BucketSpec {
  readonly bucket: string;
  readonly description: string;
  /** Values kept per key; 1 is enough for compare-and-set on the revision. */
  readonly history: number;
  /** 0 keeps keys forever. */
  readonly ttlMs: number;
  readonly maxValueSize: number;
  /** -1 for unlimited. */
  readonly maxBytes: number;
  readonly storage: StorageType;
  readonly replicas: number;
}

/** The names of Errand's streams and buckets under one prefix. */
export interface ResourceNames {
  readonly streams: {
    readonly inbox: string;
    readonly events: string;
    readonly work: string;
    readonly logs: string;
    readonly dlq: string;
  };
  readonly buckets: {
    readonly agents: string;
    readonly tools: string;
    readonly effects: string;
    /** The planners' shared rate limit: per model, the time the next call may go (cluster-wide). */
    readonly limits: string;
    /** Schedules (`errand schedule`): each one's cron, goal and next fire time, by schedule id. */
    readonly schedules: string;
  };
  readonly objectStores: { readonly results: string };
}

/**
 * Names derived from the subject prefix: `errand` gives `ERRAND_INBOX` … and `errand_agents` …;
 * `acme.errand` gives `ACME_ERRAND_INBOX` and `acme_errand_agents`. Distinct prefixes never share a
 * stream, which is how tests (and tenants on one server) stay apart.
 */
export function resourceNames(prefix: string = DEFAULT_PREFIX): ResourceNames {
  assertPrefix(prefix);
  const base = prefix.replaceAll('.', '_');
  const upper = base.toUpperCase();
  return {
    streams: {
      inbox: `${upper}_INBOX`,
      events: `${upper}_EVENTS`,
      work: `${upper}_WORK`,
      logs: `${upper}_LOGS`,
      dlq: `${upper}_DLQ`,
    },
    buckets: { agents: `${base}_agents`, tools: `${base}_tools`, effects: `${base}_effects`, limits: `${base}_limits`, schedules: `${base}_schedules` },
    objectStores: { results: `${base}_results` },
  };
}

/** A JetStream object store: large payloads (tool results) that travel by reference. */
export interface ObjectStoreSpec {
  readonly bucket: string;
  readonly description: string;
  /** 0 keeps objects forever. */
  readonly ttlMs: number;
  /** -1 for unlimited. */
  readonly maxBytes: number;
  readonly storage: StorageType;
  readonly replicas: number;
}

/** What may be tuned per deployment; everything else is part of the contract. */
export interface ResourceOptions {
  prefix: string;
  /** JetStream replicas for every stream and bucket: 1 on a single server, 3 (or 5) in a cluster. */
  replicas: number;
  storage: StorageType;
  duplicateWindowMs: number;
  logsMaxAgeMs: number;
  logsMaxBytes: number;
  dlqMaxAgeMs: number;
  /**
   * Bytes of commands waiting in the work stream. When full, a new command is refused (discard
   * new): the publisher gets an error and retries, rather than an older command being dropped.
   */
  workMaxBytes: number;
  /** Bytes of dead letters kept; the oldest go first when full (discard old). */
  dlqMaxBytes: number;
  /** -1 for unlimited; the journal lives here, so keep it unbounded unless you run `errand gc`. */
  eventsMaxBytes: number;
  /** How long services remember a completed command (and its result) to answer a repeat. */
  effectsTtlMs: number;
  /** How long large tool results are kept in the object store. */
  resultsTtlMs: number;
}

export function defaultResourceOptions(): ResourceOptions {
  return {
    prefix: DEFAULT_PREFIX,
    replicas: 1,
    storage: 'file',
    duplicateWindowMs: 5 * MINUTE,
    logsMaxAgeMs: 7 * DAY,
    logsMaxBytes: 1024 * 1024 * 1024,
    dlqMaxAgeMs: 30 * DAY,
    workMaxBytes: 1024 * 1024 * 1024,
    dlqMaxBytes: 256 * 1024 * 1024,
    eventsMaxBytes: -1,
    effectsTtlMs: 7 * DAY,
    resultsTtlMs: 30 * DAY,
  };
}

/** Every Errand resource for one deployment. */
export interface ResourceSpecs {
  readonly names: ResourceNames;
  readonly streams: readonly StreamSpec[];
  readonly buckets: readonly BucketSpec[];
  readonly objectStores: readonly ObjectStoreSpec[];
}

/** The streams and buckets Errand needs, from {@link defaultResourceOptions} overridden by `options`. */
export function resourceSpecs(options: Partial<ResourceOptions> = {}): ResourceSpecs {
  const o = { ...defaultResourceOptions(), ...options };
  if (!Number.isInteger(o.replicas) || o.replicas < 1 || o.replicas > 5) {
    throw new RangeError(`replicas must be an integer from 1 to 5, got ${o.replicas}`);
  }
  const names = resourceNames(o.prefix);
  const s = createSubjects(o.prefix);
  const common = { storage: o.storage, replicas: o.replicas, maxMsgSize: MAX_MESSAGE_BYTES, duplicateWindowMs: o.duplicateWindowMs };
  const streams: StreamSpec[] = [
    {
      ...common,
      name: names.streams.inbox,
      description: 'Errand: everything agents receive (goals, results, approvals, input, timers, control)',
      subjects: [s.agentInAll()],
      retention: 'workqueue',
      maxAgeMs: 0,
      maxBytes: -1,
      discard: 'new',
      compress: false,
    },
    {
      ...common,
      name: names.streams.events,
      description: 'Errand: agent progress events and the step journal',
      subjects: [s.agentEventAll()],
      retention: 'limits',
      maxAgeMs: 0,
      maxBytes: o.eventsMaxBytes,
      discard: 'old',
      compress: true,
    },
    {
      ...common,
      name: names.streams.work,
      description: 'Errand: plan, tool, notify and timer commands for the services',
      subjects: [`${o.prefix}.work.>`],
      retention: 'workqueue',
      maxAgeMs: 0,
      maxBytes: o.workMaxBytes,
      discard: 'new',
      compress: false,
    },
    {
      ...common,
      name: names.streams.logs,
      description: 'Errand: structured service logs',
      subjects: [s.logs()],
      retention: 'limits',
      maxAgeMs: o.logsMaxAgeMs,
      maxBytes: o.logsMaxBytes,
      discard: 'old',
      compress: true,
    },
    {
      ...common,
      name: names.streams.dlq,
      description: 'Errand: messages that could not be decoded, validated or handled, with the reason',
      subjects: [s.dlq()],
      retention: 'limits',
      maxAgeMs: o.dlqMaxAgeMs,
      maxBytes: o.dlqMaxBytes,
      // A dead letter is the original body plus headers saying why: allow up to the server's max_payload.
      maxMsgSize: -1,
      discard: 'old',
      compress: true,
    },
  ];
  const buckets: BucketSpec[] = [
    {
      bucket: names.buckets.agents,
      description: 'Errand: agent records (snapshot, step, applied inbox ids, outbox)',
      history: 1,
      ttlMs: 0,
      maxValueSize: MAX_MESSAGE_BYTES,
      maxBytes: -1,
      storage: o.storage,
      replicas: o.replicas,
    },
    {
      bucket: names.buckets.tools,
      description: 'Errand: tool catalog (schemas, policies, live runners)',
      history: 1,
      ttlMs: 0,
      maxValueSize: 256 * 1024,
      maxBytes: -1,
      storage: o.storage,
      replicas: o.replicas,
    },
    {
      bucket: names.buckets.effects,
      description: 'Errand: completed commands by idempotency key, with their results, so a repeat is answered, not re-run',
      history: 1,
      ttlMs: o.effectsTtlMs,
      maxValueSize: MAX_MESSAGE_BYTES,
      maxBytes: -1,
      storage: o.storage,
      replicas: o.replicas,
    },
    {
      bucket: names.buckets.limits,
      description: "Errand: the planners' per-model rate limit, shared by every planner (the next free slot, set with compare-and-set)",
      history: 1,
      // A model not called for a day has no slot to remember.
      ttlMs: DAY,
      maxValueSize: 1024,
      maxBytes: -1,
      storage: o.storage,
      replicas: o.replicas,
    },
    {
      bucket: names.buckets.schedules,
      description: 'Errand: schedules (cron, time zone, goal, overlap and catch-up policy, next and last fire), changed with compare-and-set',
      history: 1,
      ttlMs: 0,
      maxValueSize: 256 * 1024,
      maxBytes: -1,
      storage: o.storage,
      replicas: o.replicas,
    },
  ];
  // The server refuses a duplicate window longer than the stream's max age.
  const fitted = streams.map((st) =>
    st.maxAgeMs > 0 && st.duplicateWindowMs > st.maxAgeMs ? { ...st, duplicateWindowMs: st.maxAgeMs } : st,
  );
  const objectStores: ObjectStoreSpec[] = [
    {
      bucket: names.objectStores.results,
      description: 'Errand: tool results too large for a message; the model gets a preview and this reference',
      ttlMs: o.resultsTtlMs,
      maxBytes: -1,
      storage: o.storage,
      replicas: o.replicas,
    },
  ];
  return { names, streams: fitted, buckets, objectStores };
}
