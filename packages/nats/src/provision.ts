import { isDeepStrictEqual } from 'node:util';
import {
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamManager,
  type StreamConfig,
  type StreamInfo,
} from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import { resourceSpecs, silentLogger, type BucketSpec, type Logger, type ObjectStoreSpec, type ResourceSpecs, type StreamSpec } from '@errand/protocols';
import type { ErrandConnection } from './connect.js';
import { NatsError, NatsErrorCode } from './errors.js';
import type { ServerFeatures } from './features.js';

/** One field that differs between what exists and what Errand needs. */
export interface ProvisionChange {
  readonly field: string;
  readonly from: unknown;
  readonly to: unknown;
}

export interface ProvisionItem {
  readonly kind: 'stream' | 'bucket' | 'object-store';
  /** The stream name, or the bucket name for a bucket. */
  readonly name: string;
  readonly action: 'created' | 'updated' | 'unchanged';
  readonly changes: readonly ProvisionChange[];
}

export interface ProvisionReport {
  readonly items: readonly ProvisionItem[];
  /** False when everything already matched. */
  readonly changed: boolean;
  /** True when nothing was written (`dryRun`). */
  readonly dryRun: boolean;
}

export interface ProvisionOptions {
  /** What to provision; `resourceSpecs()` (prefix `errand`, 1 replica) when absent. */
  specs: ResourceSpecs;
  logger: Logger;
  /** Report what would change without changing it. */
  dryRun: boolean;
}

/** Fields that the server cannot change on an existing stream. */
const IMMUTABLE_FIELDS = ['retention', 'storage'] as const;
const KV_DUPLICATE_WINDOW_MS = 2 * 60_000;

/** The server config for a stream spec, using only what this server supports. */
export function streamConfig(spec: StreamSpec, features: ServerFeatures): Partial<StreamConfig> & { name: string } {
  const config: Partial<StreamConfig> & { name: string } = {
    name: spec.name,
    description: spec.description,
    subjects: [...spec.subjects],
    retention: spec.retention as StreamConfig['retention'],
    storage: spec.storage as StreamConfig['storage'],
    num_replicas: spec.replicas,
    max_age: nanos(spec.maxAgeMs),
    max_bytes: spec.maxBytes,
    max_msgs: -1,
    max_msgs_per_subject: -1,
    max_msg_size: spec.maxMsgSize,
    discard: spec.discard as StreamConfig['discard'],
    duplicate_window: nanos(spec.duplicateWindowMs),
    allow_direct: true,
  };
  if (features.streamCompression) config.compression = (spec.compress ? 's2' : 'none') as StreamConfig['compression'];
  return config;
}

/** The server config of the stream that backs a KV bucket (`KV_<bucket>`), as `@nats-io/kv` reads it. */
export function bucketStreamConfig(spec: BucketSpec, _features: ServerFeatures): Partial<StreamConfig> & { name: string } {
  return {
    name: `KV_${spec.bucket}`,
    description: spec.description,
    subjects: [`$KV.${spec.bucket}.>`],
    retention: 'limits' as StreamConfig['retention'],
    storage: spec.storage as StreamConfig['storage'],
    num_replicas: spec.replicas,
    max_age: nanos(spec.ttlMs),
    max_bytes: spec.maxBytes,
    max_msgs: -1,
    max_msgs_per_subject: spec.history,
    max_msg_size: spec.maxValueSize,
    discard: 'new' as StreamConfig['discard'],
    duplicate_window: nanos(spec.ttlMs > 0 ? Math.min(spec.ttlMs, KV_DUPLICATE_WINDOW_MS) : KV_DUPLICATE_WINDOW_MS),
    allow_rollup_hdrs: true,
    allow_direct: true,
  };
}

/** The server config of the stream that backs an object store (`OBJ_<bucket>`), as `@nats-io/obj` reads it. */
export function objectStoreStreamConfig(spec: ObjectStoreSpec): Partial<StreamConfig> & { name: string } {
  return {
    name: `OBJ_${spec.bucket}`,
    description: spec.description,
    subjects: [`$O.${spec.bucket}.C.>`, `$O.${spec.bucket}.M.>`],
    retention: 'limits' as StreamConfig['retention'],
    storage: spec.storage as StreamConfig['storage'],
    num_replicas: spec.replicas,
    max_age: nanos(spec.ttlMs),
    max_bytes: spec.maxBytes,
    discard: 'new' as StreamConfig['discard'],
    allow_rollup_hdrs: true,
    allow_direct: true,
  };
}

/**
 * Creates or updates every Errand stream and bucket so that each matches its spec, and reports what
 * it changed. Idempotent: a second run changes nothing. Fields Errand does not specify are left as
 * they are. Throws {@link NatsError} `ERR_PROVISION_CONFLICT` (with what to do) when an existing
 * stream differs in a way that cannot be changed in place, or replicas exceed what the server can
 * hold, and `ERR_PROVISION_FAILED` when the server refuses a change.
 */
export async function provision(conn: ErrandConnection, options: Partial<ProvisionOptions> = {}): Promise<ProvisionReport> {
  const specs = options.specs ?? resourceSpecs();
  const logger = (options.logger ?? silentLogger).child({ component: 'provision' });
  const dryRun = options.dryRun ?? false;
  const { features } = conn;

  const maxReplicas = Math.max(...specs.streams.map((s) => s.replicas), ...specs.buckets.map((b) => b.replicas), ...specs.objectStores.map((b) => b.replicas));
  if (maxReplicas > 1 && !features.clustered) {
    throw new NatsError(
      NatsErrorCode.ProvisionConflict,
      `replicas ${maxReplicas} needs a JetStream cluster, but the server is not clustered; provision with --replicas 1 or connect to a cluster`,
    );
  }

  const jsm = await conn.jsm();
  const items: ProvisionItem[] = [];
  for (const spec of specs.streams) {
    items.push(await ensureStream(jsm, 'stream', spec.name, streamConfig(spec, features), dryRun, logger));
  }
  for (const spec of specs.buckets) {
    items.push(await ensureStream(jsm, 'bucket', spec.bucket, bucketStreamConfig(spec, features), dryRun, logger));
  }
  for (const spec of specs.objectStores) {
    items.push(await ensureStream(jsm, 'object-store', spec.bucket, objectStoreStreamConfig(spec), dryRun, logger));
  }
  return { items, changed: items.some((i) => i.action !== 'unchanged'), dryRun };
}

async function ensureStream(
  jsm: JetStreamManager,
  kind: ProvisionItem['kind'],
  name: string,
  desired: Partial<StreamConfig> & { name: string },
  dryRun: boolean,
  logger: Logger,
): Promise<ProvisionItem> {
  const label = kind === 'stream' ? `stream ${name}` : `${kind} ${name} (stream ${desired.name})`;
  const existing = await streamInfo(jsm, desired.name);
  if (existing === undefined) {
    if (!dryRun) await serverCall(label, () => jsm.streams.add(desired));
    logger.info({ resource: desired.name, dryRun }, `created ${label}`);
    return { kind, name, action: 'created', changes: [] };
  }

  const current = existing.config as unknown as Record<string, unknown>;
  const changes: ProvisionChange[] = [];
  for (const [field, to] of Object.entries(desired)) {
    if (field === 'name') continue;
    const from = current[field];
    if (!isDeepStrictEqual(normalize(field, from), normalize(field, to))) changes.push({ field, from, to });
  }
  if (changes.length === 0) return { kind, name, action: 'unchanged', changes };

  for (const field of IMMUTABLE_FIELDS) {
    const change = changes.find((c) => c.field === field);
    if (change) {
      throw new NatsError(
        NatsErrorCode.ProvisionConflict,
        `${label} exists with ${field} '${String(change.from)}', but Errand needs '${String(change.to)}', and ${field} cannot be changed in place. ` +
          `Back up what you need, delete it (\`nats stream rm ${desired.name}\`) and provision again`,
      );
    }
  }
  if (!dryRun) {
    const { name: _name, ...update } = desired;
    await serverCall(label, () => jsm.streams.update(desired.name, update));
  }
  logger.info({ resource: desired.name, changes, dryRun }, `updated ${label}`);
  return { kind, name, action: 'updated', changes };
}

/** Server-filled defaults that mean the same as what we send. */
function normalize(field: string, value: unknown): unknown {
  if (value === undefined || value === null) {
    switch (field) {
      case 'description':
        return '';
      case 'allow_rollup_hdrs':
      case 'allow_direct':
        return false;
      case 'compression':
        return 'none';
      default:
        return value;
    }
  }
  if (field === 'subjects' && Array.isArray(value)) return [...value].sort();
  return value;
}

async function streamInfo(jsm: JetStreamManager, name: string): Promise<StreamInfo | undefined> {
  try {
    return await jsm.streams.info(name);
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) return undefined;
    throw err;
  }
}

async function serverCall<T>(label: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (cause) {
    if (cause instanceof JetStreamApiError) {
      throw new NatsError(
        NatsErrorCode.ProvisionFailed,
        `the server refused to provision ${label}: ${cause.message} (JetStream error ${cause.code}). ` +
          'If another stream already captures these subjects, remove it or choose another subject prefix',
        { cause },
      );
    }
    throw cause;
  }
}
