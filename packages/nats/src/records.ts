import { DeliverPolicy, type JsMsg, type OrderedConsumerOptions } from '@nats-io/jetstream';
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
 * An agent's record as the leader of bucket `bucket`'s stream has it: a read a replica answers
 * may not have caught up yet with a write just acknowledged. Undefined when there is none, it was
 * deleted, or this build cannot read it.
 */
export async function readRecordFromLeader(conn: ErrandConnection, bucket: string, agentId: string): Promise<AgentRecord | undefined> {
  const m = await (await conn.jsm()).streams.getMessage(`KV_${bucket}`, { last_by_subj: `$KV.${bucket}.${agentId}` }).catch(() => null);
  if (!m || m.data.length === 0) return undefined;
  try {
    return decodeRecord(m.data);
  } catch {
    return undefined;
  }
}

/**
 * Every record in the agents bucket `bucket`, without a get per key (a list of 10,000 agents was
 * 10,000 round trips one after another): an ordered consumer over the bucket's last value of each
 * key, which the server streams, then a second consumer over what was written after the last value
 * the first delivered. The second is there because nats-server 2.9.10's last-per-subject consumer
 * can report nothing pending while the new value of a key rewritten during the read is still to
 * come: that agent was missing from the list. Each agent comes once, in the newest form read, and
 * the read stops once it has caught up with the bucket. Deleted and purged agents are left out, and
 * so is a record this build cannot decode (`onUnreadable` hears of it). Gives up after `timeoutMs`
 * with what it read by then.
 */
export async function readAllRecords(
  conn: ErrandConnection,
  bucket: string,
  options: { onUnreadable?: (agentId: string, err: unknown) => void; timeoutMs?: number } = {},
): Promise<(StoredRecord & { readonly agentId: string })[]> {
  const stream = `KV_${bucket}`;
  const prefix = `$KV.${bucket}.`;
  // By key: a value written while this reads comes after the first, and replaces it.
  const found = new Map<string, StoredRecord & { readonly agentId: string }>();
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  let lastSeq = 0;
  const take = (m: JsMsg): void => {
    lastSeq = Math.max(lastSeq, m.seq);
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
  };
  const caughtUp = await readUntilCaughtUp(conn, stream, { filter_subjects: `${prefix}>`, deliver_policy: DeliverPolicy.LastPerSubject }, deadline, take);
  if (caughtUp && lastSeq > 0) {
    await readUntilCaughtUp(conn, stream, { filter_subjects: `${prefix}>`, deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: lastSeq + 1 }, deadline, take);
  }
  return [...found.values()];
}

/**
 * Hands every message an ordered consumer of `stream` delivers to `take`, until one says nothing
 * more is pending: true then, false when `deadline` came first.
 */
async function readUntilCaughtUp(conn: ErrandConnection, stream: string, opts: Partial<OrderedConsumerOptions>, deadline: number, take: (m: JsMsg) => void): Promise<boolean> {
  const consumer = await conn.js.consumers.get(stream, opts);
  if ((await consumer.info(true)).num_pending === 0) return true;
  const messages = await consumer.consume({ max_messages: 512 });
  const timer = setTimeout(() => void messages.close(), Math.max(0, deadline - Date.now()));
  try {
    for await (const m of messages) {
      take(m);
      if (m.info.pending === 0) return true;
    }
    return false;
  } finally {
    clearTimeout(timer);
    await messages.close();
  }
}
