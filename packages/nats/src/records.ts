import { DeliverPolicy } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { decodeRecord, type AgentRecord } from '@errand/protocols';
import type { ErrandConnection } from './connect.js';

/** An agent record as read from the agents bucket, with the revision a compare-and-set needs. */
export interface StoredRecord {
  readonly record: AgentRecord;
  readonly revision: number;
}

/**
 * Reads an agent's record from the agents bucket, with its revision: undefined when there is none
 * (never written, deleted or purged). Throws `CodecError` for a record this build cannot read, and
 * the client's error when the bucket cannot be read.
 */
export async function readStoredRecord(agents: KV, agentId: string): Promise<StoredRecord | undefined> {
  const entry = await agents.get(agentId);
  if (!entry || entry.operation !== 'PUT') return undefined;
  return { record: decodeRecord(entry.value), revision: entry.revision };
}

/** Reads an agent's record: undefined when there is none (never written, deleted or purged). See {@link readStoredRecord}. */
export async function readRecord(agents: KV, agentId: string): Promise<AgentRecord | undefined> {
  return (await readStoredRecord(agents, agentId))?.record;
}

/**
 * Every record in the agents bucket `bucket`, in one pass: an ordered consumer over the bucket's
 * last value of each key, which the server streams, instead of a get per key (a list of 10,000
 * agents was 10,000 round trips one after another). Each agent comes once, in the newest form
 * read (a record written while it reads replaces the one read before), and it stops once it has
 * caught up with the bucket. Deleted and purged agents are left out, and so is a record this build
 * cannot decode (`onUnreadable` hears of it). Gives up after `timeoutMs` with what it read by then.
 */
export async function readAllRecords(
  conn: ErrandConnection,
  bucket: string,
  options: { onUnreadable?: (agentId: string, err: unknown) => void; timeoutMs?: number } = {},
): Promise<(StoredRecord & { readonly agentId: string })[]> {
  const prefix = `$KV.${bucket}.`;
  const consumer = await conn.js.consumers.get(`KV_${bucket}`, { filter_subjects: `${prefix}>`, deliver_policy: DeliverPolicy.LastPerSubject });
  if ((await consumer.info(true)).num_pending === 0) return [];
  // By key: a value written while this reads comes after the first, and replaces it.
  const found = new Map<string, StoredRecord & { readonly agentId: string }>();
  const messages = await consumer.consume({ max_messages: 512 });
  const timer = setTimeout(() => void messages.close(), options.timeoutMs ?? 30_000);
  try {
    for await (const m of messages) {
      const agentId = m.subject.slice(prefix.length);
      const operation = m.headers?.get('KV-Operation');
      if (operation === 'DEL' || operation === 'PURGE') found.delete(agentId);
      else {
        try {
          found.set(agentId, { agentId, record: decodeRecord(m.data), revision: m.seq });
        } catch (err) {
          found.delete(agentId);
          options.onUnreadable?.(agentId, err);
        }
      }
      // Caught up with the bucket: every key's value is in, old or newer.
      if (m.info.pending === 0) break;
    }
  } finally {
    clearTimeout(timer);
    await messages.close();
  }
  return [...found.values()];
}
