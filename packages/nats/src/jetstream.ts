import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type ConsumerConfig,
  type ConsumerInfo,
} from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { Objm, type ObjectStore } from '@nats-io/obj';
import type { ErrandConnection } from './connect.js';

/** Opens an existing KV bucket (provisioning creates them). */
export async function openBucket(conn: ErrandConnection, bucket: string): Promise<KV> {
  return new Kvm(conn.js).open(bucket);
}

/** Opens an existing object store (provisioning creates them). */
export async function openObjectStore(conn: ErrandConnection, bucket: string): Promise<ObjectStore> {
  return new Objm(conn.js).open(bucket);
}

/**
 * True when a KV `create`/`update` (or a publish with an expected last sequence) failed because
 * someone else wrote first: the compare-and-set lost.
 */
export function isRevisionConflict(err: unknown): boolean {
  return (
    err instanceof JetStreamApiError &&
    (err.code === JetStreamApiCodes.StreamWrongLastSequence || err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)
  );
}

export interface DurableConsumerSpec {
  stream: string;
  name: string;
  filterSubject: string;
  /** How long the server waits for an ack before redelivering. */
  ackWaitMs: number;
  /** Unacked (including delayed) messages the server lets the consumer hold. */
  maxAckPending: number;
  description: string;
}

/**
 * Creates a durable pull consumer, or updates the one that exists, with explicit acks and
 * unlimited deliveries (poison messages are dead-lettered by `consumeMessages`, not dropped by the
 * server). Every process that serves the same work calls this with the same spec and shares it.
 */
export async function ensureConsumer(conn: ErrandConnection, spec: DurableConsumerSpec): Promise<ConsumerInfo> {
  const jsm = await conn.jsm();
  const config: Partial<ConsumerConfig> = {
    durable_name: spec.name,
    description: spec.description,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    filter_subject: spec.filterSubject,
    ack_wait: spec.ackWaitMs * 1_000_000,
    max_ack_pending: spec.maxAckPending,
    max_deliver: -1,
  };
  try {
    await jsm.consumers.info(spec.stream, spec.name);
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound) {
      return jsm.consumers.add(spec.stream, config);
    }
    throw err;
  }
  const { durable_name: _n, deliver_policy: _d, ...update } = config;
  return jsm.consumers.update(spec.stream, spec.name, update);
}

/**
 * Purges a KV bucket's delete and purge markers older than `olderMs`, leaving `liveKeys` alone.
 * It reads the stream's subject list and the last message of each subject that is not a live key
 * (a marker has no value), never the records themselves; a marker is purged by its own sequence,
 * so a value written meanwhile under the same key stays. Returns how many markers went.
 */
export async function purgeOldKvMarkers(
  conn: ErrandConnection,
  bucket: string,
  options: { liveKeys: ReadonlySet<string>; olderMs: number; now?: number; signal?: AbortSignal },
): Promise<number> {
  const jsm = await conn.jsm();
  const stream = `KV_${bucket}`;
  const prefix = `$KV.${bucket}.`;
  const info = await jsm.streams.info(stream, { subjects_filter: '>' });
  const before = (options.now ?? Date.now()) - options.olderMs;
  let purged = 0;
  for (const subject of Object.keys(info.state.subjects ?? {})) {
    if (options.signal?.aborted) break;
    if (options.liveKeys.has(subject.slice(prefix.length))) continue;
    const last = await jsm.streams.getMessage(stream, { last_by_subj: subject }).catch(() => null);
    const operation = last?.header?.get('KV-Operation');
    if (!last || (operation !== 'DEL' && operation !== 'PURGE') || last.time.getTime() > before) continue;
    await jsm.streams.purge(stream, { filter: subject, seq: last.seq + 1 });
    purged += 1;
  }
  return purged;
}
